/*
 * daemon.h - the daemon layer under the commands: the modules a command
 * works with, opened in one order and closed in the reverse (chrony's
 * main.c), the process's signal flags, the log settings, and `cmbridge
 * run`: the full sync, the delta sync, the action relay and the policy
 * poll as tasks of one scheduler (sched.h), with SIGHUP reloading the configuration.
 *
 * Must never: act in a signal handler (handlers only set flags; the loop
 * acts), keep a second stop flag beside base/stop.h's, or open an adapter
 * twice for one session (the relay's site operations and notification
 * channel share the adapters' connections and tokens).
 */
#ifndef CMB_DAEMON_H
#define CMB_DAEMON_H

#include "adapters/site.h"
#include "adapters/tenant.h"
#include "connector/config/config.h"
#include "connector/engine/policy.h"
#include "connector/engine/relay.h"
#include "connector/engine/sync.h"
#include "connector/store/state.h"

/* Which modules a session opens (in this order; closed in the reverse). */
enum cmb_daemon_module {
	CMB_DAEMON_STATE = 1 << 0,   /* the state (SQLite, [connector] state_dir) */
	CMB_DAEMON_SITE = 1 << 1,    /* the [site] adapter (open does no I/O) */
	CMB_DAEMON_TENANT = 1 << 2,  /* the tenant adapter (open does no I/O) */
	/* The relay: site operations and notification channel over the two adapters; implies the three above. */
	CMB_DAEMON_RELAY = 1 << 3,
	/* Instead of the state: a private copy of it (cmb_state_open_snapshot), no lock; for dry runs. */
	CMB_DAEMON_SNAPSHOT = 1 << 4,
	/* The policy relay's site store (site->policy_open over the site adapter); implies the two adapters. */
	CMB_DAEMON_POLICIES = 1 << 5,
};
#define CMB_DAEMON_SYNC (CMB_DAEMON_STATE | CMB_DAEMON_SITE | CMB_DAEMON_TENANT)
/* A dry run (diff, sync --dry-run): works while `run` runs, writes nothing to the state's file. */
#define CMB_DAEMON_DRY_RUN (CMB_DAEMON_SNAPSHOT | CMB_DAEMON_SITE | CMB_DAEMON_TENANT)

/* The open modules; members of modules not asked for are NULL. */
struct cmb_daemon_session {
	const struct cmb_config *cfg;      /* borrowed: outlives the session */
	struct cmb_state *state;
	const struct cmb_site_adapter *site;
	void *site_st;
	const struct cmb_tenant_adapter *tenant;
	void *tenant_st;
	void *ops_st;                      /* site->ops_open over site_st */
	void *notify_st;                   /* tenant->notify_open over tenant_st */
	void *policy_st;                   /* site->policy_open over site_st */
	struct cmb_relay *relay;
};

/*
 * Opens the modules of `modules` (enum cmb_daemon_module) in order. On
 * failure closes what it opened, leaves *s zeroed and returns the code
 * (the message names the module's option). Close with
 * cmb_daemon_session_close (also fine on a zeroed session).
 */
int cmb_daemon_session_open(struct cmb_daemon_session *s, const struct cmb_config *cfg, unsigned modules);
void cmb_daemon_session_close(struct cmb_daemon_session *s);
/* The sync engine's view of an open session (pointers into s). */
struct cmb_sync_env cmb_daemon_sync_env(const struct cmb_daemon_session *s);
/* The policy relay's view of a session opened with CMB_DAEMON_POLICIES (pointers into s). */
struct cmb_policy_env cmb_daemon_policy_env(const struct cmb_daemon_session *s);

/*
 * SIGINT and SIGTERM set the process-wide stop request (base/stop.h);
 * SIGPIPE is ignored. For every command.
 */
void cmb_daemon_signals_init(void);
/*
 * For `run`: SIGHUP sets cmb_daemon_hup, SIGUSR1 cmb_daemon_usr1, and both
 * cmb_daemon_wake, the interrupt flag (base/stop.h) that the control
 * socket sets too: it ends an idle wait so the loop looks at once.
 */
void cmb_daemon_run_signals_init(void);
extern volatile int cmb_daemon_hup, cmb_daemon_usr1, cmb_daemon_wake;

/*
 * The [log] settings of cfg: (re)opens [log] file (NULL: stderr), then
 * sets [log] level, or debug when verbose (-v, kept across reloads). On
 * failure nothing changes and CMB_ECONFIG names the file.
 */
int cmb_daemon_log_apply(const struct cmb_config *cfg, int verbose);

/*
 * `cmbridge run` (run.c): opens every module once, binds the control
 * socket (ctl.h), waits until the site and the tenant answer (then READY
 * to systemd), then runs until the stop request: a full sync at once and
 * every [sync] full_interval, a delta sync every [sync] interval, the
 * relay in between (its long poll ends when a sync is due). SIGHUP and
 * the `reload` request reopen [log] file and reload the configuration
 * between tasks (whole, or not at all, with the reason logged); SIGUSR1
 * runs a delta cycle now. cfg is borrowed. 0 when stopped on request.
 */
int cmb_daemon_run(const struct cmb_config *cfg, int verbose);

#endif
