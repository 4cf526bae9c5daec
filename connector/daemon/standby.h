/*
 * standby.h - the warm standby's diff base: a staging instance
 * ([connector] mode = staging) imports the tenant's current device
 * records after each of its cycles, as Entra Connect's staging server
 * imports from both sides, so that promoting it (mode = normal) uploads
 * only what really differs (docs/safety.md, "Warm standby").
 *
 * How: the tenant's listing (tenant->list_devices) is matched to the
 * records the staging cycle staged, by configurationManagerClientInformation
 * .clientIdentifier, else azureADDeviceId (each used only where the tenant
 * holds it once). A staged record the tenant holds with the same values is
 * recorded as known with the record's own hashes (the next cycle finds it
 * unchanged); one that differs only in the check-in times keeps the stable
 * hash (a details refresh sends it); any other difference is recorded with
 * the tenant's id and a hash of what the tenant holds, so it stays a
 * change. Known devices the tenant no longer holds are forgotten (they are
 * adds again). The listing carries no site key, so a tenant record that
 * matches no site device cannot be removed by the standby: it is counted.
 *
 * Must never: write to the tenant, import after a failed or partial
 * listing, or run outside staging mode.
 */
#ifndef CMB_STANDBY_H
#define CMB_STANDBY_H

#include "connector/engine/sync.h"

struct cmb_standby_stats {
	long tenant_records;     /* listed */
	long pages;
	long same;               /* staged records the tenant holds as they are */
	long refresh;            /* ... but for the check-in times */
	long differ;             /* ... with other values */
	long forgotten;          /* known devices the tenant no longer holds */
	long unmatched;          /* tenant records no staged or known device matched */
};

/*
 * After staging cycle cycle_id (it ended with status staging): lists the
 * tenant's devices and updates the diff base in one state transaction.
 * On failure nothing is changed (the message says why).
 */
int cmb_standby_import(const struct cmb_sync_env *env, int64_t cycle_id, struct cmb_standby_stats *out);

#endif
