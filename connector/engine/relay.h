/*
 * relay.h - the remote action relay: actions triggered in the tenant reach
 * the site exactly once, and their outcome goes back (docs/actions.md).
 *
 * Order every step keeps (isync's journal-before-side-effect rule):
 * notifications are committed to the inbox before the cursor moves; the
 * intent of a site call is committed before the call and its outcome after
 * it; a result leaves the outbox only when the tenant acknowledged it. An
 * intent without an outcome is reconciled with the site's own list of
 * operations before anything is sent again.
 */
#ifndef CMB_RELAY_H
#define CMB_RELAY_H

#include <stdint.h>

#include "adapters/site.h"
#include "adapters/tenant.h"
#include "connector/config/config.h"
#include "connector/store/state.h"

/* errorCode values reported to the tenant with a failed or notSupported action. */
enum cmb_relay_error_code {
	CMB_RELAY_OK = 0,
	CMB_RELAY_CLIENT_FAILED = 1,      /* the site counted the client as failed */
	CMB_RELAY_CLIENT_OFFLINE = 2,     /* the client was offline (SMS_CN_ClientStatus) */
	CMB_RELAY_TIMEOUT = 3,            /* no outcome within [actions] status_timeout */
	CMB_RELAY_EXPIRED = 4,            /* expired before it could be delivered: never delivered late */
	CMB_RELAY_SITE_REFUSED = 5,       /* the site refused the operation */
	CMB_RELAY_NOT_ALLOWED = 6,        /* not in [actions] allowed */
	CMB_RELAY_OUT_OF_SCOPE = 7,       /* the device is not attached by this connector now */
	CMB_RELAY_NOT_SUPPORTED = 8,      /* unknown, wipe, or retire without allow_destructive */
	CMB_RELAY_OPERATION_EXPIRED = 9,  /* the site expired the operation before the client answered */
	CMB_RELAY_DELIVERY_UNKNOWN = 10,  /* an interrupted delivery the site cannot confirm: never sent twice */
};

struct cmb_relay_env {
	const struct cmb_config *cfg;
	struct cmb_state *state;
	const struct cmb_site_adapter *site;
	void *ops_st;                     /* from site->ops_open */
	const struct cmb_tenant_adapter *tenant;
	void *notify_st;                  /* from tenant->notify_open */
	int64_t (*clock_ms)(void);        /* epoch milliseconds; NULL: the wall clock (tests simulate time) */
};

struct cmb_relay_stats {
	long polls;
	long received;                    /* new actions in the inbox */
	long replays;                     /* notifications already in the inbox, dropped */
	long refused;                     /* ended notSupported or failed without reaching the site */
	long staged;                      /* received in staging mode: kept, not relayed */
	long operations;                  /* InitiateClientOperation calls that created an operation */
	long targets;                     /* resource ids in those */
	long blocks;                      /* BlockClients calls */
	long adopted;                     /* unknown intents found at the site on reconciliation */
	long reissued;                    /* unknown intents not found and sent */
	long unknown;                     /* unknown intents the site could not settle: failed, not sent again */
	long done, failed;
	long reported;                    /* results the tenant acknowledged */
};

struct cmb_relay;

/*
 * [actions] of cfg against the action table (mapping/actions.h), for every
 * command that loads the configuration and for relay creation: each name
 * in allowed that is no action is an error, all of them in one CMB_ECONFIG
 * message, a line each ("FILE:LINE: [actions] allowed: \"x\" is not an
 * action the connector relays (did you mean y?)"). Settings that load but
 * have no effect (allow_destructive without retire in allowed, retire
 * without allow_destructive, wipe) are warnings, a line each, in
 * *warnings (may be NULL; the caller frees; NULL when none): a half-turned
 * pair of keys refuses what it guards, which is safe, so it is said, not
 * refused (docs/actions.md).
 */
int cmb_relay_check_config(const struct cmb_config *cfg, char **warnings);

/*
 * Checks [actions] (cmb_relay_check_config, logging its warnings) and the
 * adapters; *out is the caller's (cmb_relay_free).
 */
int cmb_relay_new(struct cmb_relay **out, const struct cmb_relay_env *env);
void cmb_relay_free(struct cmb_relay *r);

/*
 * One pass: settle journaled intents (reconcile, read statuses), poll the
 * channel (held up to wait_s), authorize and batch what arrived, send due
 * batches, report results. Returns 0, or the code of the step that failed
 * (the state is consistent either way; the next pass resumes).
 */
int cmb_relay_step(struct cmb_relay *r, long wait_s);

/* 1 when nothing is left to do: no action short of final, outbox empty (staging: last poll brought nothing). */
int cmb_relay_idle(struct cmb_relay *r);

/* Milliseconds until local work is due (a batch window ending, a status read); -1 when none. */
int64_t cmb_relay_next_due_ms(struct cmb_relay *r);

/*
 * The pause after n consecutive failed steps: cmb_backoff_delay(n, base,
 * max) (base/backoff.h), here and in the daemon's relay task.
 */
#define CMB_RELAY_BACKOFF_BASE_S 0.5
#define CMB_RELAY_BACKOFF_MAX_S 30.0

/*
 * Steps until the process-wide stop request (base/stop.h), or with once until idle (then returns 0). Errors of a
 * step are logged and retried after a pause (CMB_RELAY_BACKOFF_*); with once, max_errors
 * consecutive failed steps (or three times as many in all) end the run with the last error, prefixed
 * with what is pending: actions short of final and results not reported.
 * A poll that brings back notifications already in the inbox under an unchanged cursor fails its
 * step: the tenant does not move past them (idle is never concluded from it).
 */
int cmb_relay_run(struct cmb_relay *r, int once, int max_errors);

const struct cmb_relay_stats *cmb_relay_get_stats(const struct cmb_relay *r);

#endif
