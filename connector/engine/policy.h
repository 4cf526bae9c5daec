/*
 * policy.h - the policy relay (docs/policies.md, "The engine"): one poll
 * reads the tenant's endpoint security policies, maps, validates and
 * merges them (mapping/policy.h), writes one document per policy to the
 * site's policy store and removes those the tenant no longer targets,
 * reads their compliance back from the site and uploads it to the tenant.
 *
 * Every site write is journaled before it is sent and its outcome
 * recorded after it (state_policies.h); a poll starts by reading back what
 * the site holds, so an interrupted write is never sent twice and a
 * document is never left half-applied. Staging ([connector] mode =
 * staging) and dry runs write nothing to the site and post nothing to the
 * tenant. Must never: write a rejected policy, or a setting two policies
 * set differently; send a write it has not journaled; log a setting value.
 */
#ifndef CMB_ENGINE_POLICY_H
#define CMB_ENGINE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/site.h"
#include "adapters/tenant.h"
#include "connector/config/config.h"
#include "connector/store/state.h"

struct cmb_policy_env {
	const struct cmb_config *cfg;
	struct cmb_state *state;
	const struct cmb_site_adapter *site;
	void *policy_st;         /* site->policy_open over the site adapter's state */
	const struct cmb_tenant_adapter *tenant;
	void *tenant_st;
};

/* What one poll would do (or did) for one policy, for `cmbridge diff --policies`. */
enum cmb_policy_action {
	CMB_PACT_NONE = 0,       /* the site holds what is wanted (or nothing is, and nothing is wanted) */
	CMB_PACT_PUT,            /* store the document at version */
	CMB_PACT_DELETE,         /* remove the site's document */
};

struct cmb_policy_plan {
	const char *id;
	const char *name;
	enum cmb_policy_state state;
	enum cmb_policy_action action;
	int64_t version;         /* PUT: the version written; DELETE: the version removed */
	int64_t site_version;    /* what the site holds (0: nothing) */
	const char *hash;        /* PUT: the document's contentHash */
	long settings;           /* PUT: settings in it */
	const char *targets;     /* comma-separated collection ids */
	const char *const *reasons;
	size_t n_reasons;
};

struct cmb_policy_opts {
	int dry_run;             /* write nothing to the site, post nothing (diff): as staging, on any state */
	/* Called once per policy after the plan is made (may be NULL). */
	void (*plan)(void *ctx, const struct cmb_policy_plan *p);
	void *plan_ctx;
};

struct cmb_policy_stats {
	long listed;             /* policies in the tenant's listing */
	long read;               /* of them read again (new, or lastModifiedDateTime moved) */
	long ignored;            /* not for configManager */
	long accepted, rejected, conflicts, unassigned;
	long written;            /* documents the site stored (created or updated) */
	long unchanged;          /* PUTs the site already held (after an interruption) */
	long removed;            /* documents removed */
	long refused;            /* PUTs the site refused (400) or held newer (409) */
	long adopted;            /* journal rows found done at the site after an interruption */
	long compliance;         /* compliance reads */
	long reported;           /* policies whose status the tenant accepted */
	int staged;              /* nothing written: staging or dry run */
};

/*
 * One poll. 0 when it ran to its end (rejections and site refusals are
 * outcomes, not failures); a negative code when the tenant or the site
 * could not be read or written (the journal keeps what was under way; the
 * next poll reconciles), CMB_ECANCELED on a stop request.
 */
int cmb_policy_poll(const struct cmb_policy_env *env, const struct cmb_policy_opts *opts,
		    struct cmb_policy_stats *stats);

#endif
