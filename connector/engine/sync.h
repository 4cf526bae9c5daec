/*
 * sync.h - one sync cycle: read the site, map, diff against the state,
 * upload what changed, remove what left.
 *
 * Order of a cycle (the invariant every step keeps): nothing reaches the
 * tenant before the site has been read completely and successfully; the
 * keys of a batch are journaled as in flight before it is sent, and the
 * state records an upload only after the tenant acknowledged it.
 */
#ifndef CMB_SYNC_H
#define CMB_SYNC_H

#include "adapters/site.h"
#include "adapters/tenant.h"
#include "connector/config/config.h"
#include "connector/store/state.h"

struct cmb_sync_opts {
	int full;          /* upload every record, not only the changed ones */
	int dry_run;       /* read, map and diff; write nothing to the tenant */
	long allow_deletes;/* approve up to this many removals past the deletion guard */
	long allow_changes;/* approve up to this many changes past the change guard */
};

struct cmb_sync_result {
	int64_t cycle_id;
	char status[48];                   /* ok | failed | dry-run | staging | deletion-threshold-exceeded |
					      change-threshold-exceeded */
	struct cmb_cycle_counts counts;
	long pending_uploads;              /* what a dry run would have uploaded */
	long pending_removals;             /* keys in flight whose device is gone included */
	int removals_would_hold;           /* the deletion guard holds them, past opts' approval */
	int changes_would_hold;            /* the change guard holds the changes, past opts' approval */
	int details_refresh;               /* volatile check-in times were refreshed this cycle */
	long collections_uploaded;
	long collections_removed;
	double seconds;
	struct cmb_site_read_stats site;
	struct cmb_tenant_stats tenant;
	struct cmb_map_tally devices;      /* the records mapped this cycle (duplicates included) */
};

struct cmb_sync_env {
	const struct cmb_config *cfg;
	struct cmb_state *state;
	const struct cmb_site_adapter *site;
	void *site_st;
	const struct cmb_tenant_adapter *tenant;
	void *tenant_st;
};

/* Runs one cycle. Returns 0 when it completed; res is filled either way. */
int cmb_sync_run(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts, struct cmb_sync_result *res);

#endif
