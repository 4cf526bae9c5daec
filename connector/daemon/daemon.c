/*
 * daemon.c - the modules of a session in their order, the signal flags,
 * the log settings, and the main loop of `cmbridge run` (daemon.h).
 */
#include "connector/daemon/daemon.h"
#include "connector/daemon/sched.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- modules, opened in table order and closed in the reverse ---------- */

static int state_open(struct cmb_daemon_session *s)
{
	return cmb_state_open(&s->state, s->cfg->state_dir);
}

static void state_close(struct cmb_daemon_session *s)
{
	cmb_state_close(s->state);
}

static int site_open(struct cmb_daemon_session *s)
{
	s->site = cmb_site_adapter_find(s->cfg->site_adapter);
	if (!s->site)
		return cmb_error_set(CMB_ECONFIG, "%s: [site] adapter: unknown adapter '%s'", s->cfg->path,
				     s->cfg->site_adapter);
	/* An adapter built against another table would call through the wrong members. */
	if (s->site->version != CMB_SITE_ADAPTER_VERSION)
		return cmb_error_set(CMB_ERROR, "site adapter %s implements table version %d, this cmbridge needs %d",
				     s->site->name, s->site->version, CMB_SITE_ADAPTER_VERSION);
	return s->site->open(&s->site_st, s->cfg);
}

static void site_close(struct cmb_daemon_session *s)
{
	if (s->site && s->site_st)
		s->site->close(s->site_st);
}

static int tenant_open(struct cmb_daemon_session *s)
{
	s->tenant = &cmb_tenant_gateway;
	if (s->tenant->version != CMB_TENANT_ADAPTER_VERSION)
		return cmb_error_set(CMB_ERROR, "tenant adapter %s implements table version %d, this cmbridge needs %d",
				     s->tenant->name, s->tenant->version, CMB_TENANT_ADAPTER_VERSION);
	return s->tenant->open(&s->tenant_st, s->cfg);
}

static void tenant_close(struct cmb_daemon_session *s)
{
	if (s->tenant && s->tenant_st)
		s->tenant->close(s->tenant_st);
}

static int ops_open(struct cmb_daemon_session *s)
{
	if (!s->site->ops_open || !s->tenant->notify_open)
		return cmb_error_set(CMB_ECONFIG, "the configured adapters cannot relay actions");
	return s->site->ops_open(&s->ops_st, s->site_st);
}

static void ops_close(struct cmb_daemon_session *s)
{
	if (s->ops_st)
		s->site->ops_close(s->ops_st);
}

static int notify_open(struct cmb_daemon_session *s)
{
	return s->tenant->notify_open(&s->notify_st, s->tenant_st, s->cfg);
}

static void notify_close(struct cmb_daemon_session *s)
{
	if (s->notify_st)
		s->tenant->notify_close(s->notify_st);
}

static int relay_open(struct cmb_daemon_session *s)
{
	struct cmb_relay_env env = {
		.cfg = s->cfg, .state = s->state, .site = s->site, .ops_st = s->ops_st, .tenant = s->tenant,
		.notify_st = s->notify_st,
	};
	return cmb_relay_new(&s->relay, &env);
}

static void relay_close(struct cmb_daemon_session *s)
{
	cmb_relay_free(s->relay);
}

static const struct module {
	unsigned flag;               /* enum cmb_daemon_module */
	int (*open)(struct cmb_daemon_session *s);
	void (*close)(struct cmb_daemon_session *s);
} modules[] = {
	{ CMB_DAEMON_STATE, state_open, state_close },
	{ CMB_DAEMON_SITE, site_open, site_close },
	{ CMB_DAEMON_TENANT, tenant_open, tenant_close },
	{ CMB_DAEMON_RELAY, ops_open, ops_close },
	{ CMB_DAEMON_RELAY, notify_open, notify_close },
	{ CMB_DAEMON_RELAY, relay_open, relay_close },
};
#define N_MODULES (sizeof(modules) / sizeof(modules[0]))

/* Closes the wanted modules before end, last first. */
static void close_from(struct cmb_daemon_session *s, unsigned wanted, size_t end)
{
	for (size_t i = end; i-- > 0;)
		if (wanted & modules[i].flag)
			modules[i].close(s);
	memset(s, 0, sizeof(*s));
}

int cmb_daemon_session_open(struct cmb_daemon_session *s, const struct cmb_config *cfg, unsigned wanted)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	if (wanted & CMB_DAEMON_RELAY)
		wanted |= CMB_DAEMON_SYNC;
	for (size_t i = 0; i < N_MODULES; i++) {
		if (!(wanted & modules[i].flag))
			continue;
		int rc = modules[i].open(s);
		if (rc < 0) {
			close_from(s, wanted, i + 1);
			return rc;
		}
	}
	return 0;
}

void cmb_daemon_session_close(struct cmb_daemon_session *s)
{
	/* Every close accepts a module that was not opened (its members are NULL). */
	close_from(s, ~0u, N_MODULES);
}

struct cmb_sync_env cmb_daemon_sync_env(const struct cmb_daemon_session *s)
{
	return (struct cmb_sync_env){
		.cfg = s->cfg, .state = s->state, .site = s->site, .site_st = s->site_st,
		.tenant = s->tenant, .tenant_st = s->tenant_st,
	};
}

/* ---- signals: handlers only set flags --------------------------------- */

static volatile int stop_flag;    /* SIGINT, SIGTERM: the process-wide stop request */
static volatile int hup_flag;     /* SIGHUP during `run`: reload; also ends an idle long poll */

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	hup_flag = 1;
}

void cmb_daemon_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	cmb_stop_set_flag(&stop_flag);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- log settings ------------------------------------------------------ */

int cmb_daemon_log_apply(const struct cmb_config *cfg, int verbose)
{
	if (cmb_log_open(cfg->log_file) < 0)
		return CMB_ECONFIG; /* the message names the file */
	int lvl = cmb_log_level_parse(cfg->log_level ? cfg->log_level : "info");
	cmb_log_set_level(verbose ? CMB_LOG_DEBUG : (enum cmb_log_level)(lvl < 0 ? CMB_LOG_INFO : lvl));
	return 0;
}

/* ---- run --------------------------------------------------------------- */

#define RUN_MODULES (CMB_DAEMON_SYNC | CMB_DAEMON_RELAY)
/*
 * A sync that failed is tried again after [sync] interval, then twice and
 * four times that; each run lands up to a twentieth of the interval later
 * than due, so connectors started together drift apart.
 */
#define SYNC_BACKOFF_MAX_INTERVALS 4
#define SYNC_OFFSET_DIVISOR 20

struct run {
	const struct cmb_config *cfg;    /* in use */
	struct cmb_config *owned;        /* the one a reload loaded (freed when replaced) */
	int verbose;                     /* -v: debug whatever [log] level says */
	struct cmb_daemon_session s;
	struct cmb_sched *sched;
	struct cmb_sched_task *full, *delta, *relay;
};

static int sync_cycle(struct run *r, int full)
{
	struct cmb_sync_opts opts = { .full = full };
	struct cmb_sync_env env = cmb_daemon_sync_env(&r->s);
	struct cmb_sync_result res;
	int src = cmb_sync_run(&env, &opts, &res);
	if (src < 0 && src != CMB_ECANCELED)
		cmb_error_log("run: cycle %lld %s: %s", (long long)res.cycle_id, res.status, cmb_error_last());
	else
		cmb_info("run: cycle %lld (%s) %s", (long long)res.cycle_id, opts.full ? "full" : "delta", res.status);
	return src;
}

static int run_full(void *ud, double wait_s)
{
	(void)wait_s;
	struct run *r = ud;
	int rc = sync_cycle(r, 1);
	/* A full cycle sends what a delta would have: the next delta is an interval away. */
	if (rc != CMB_ECANCELED)
		cmb_sched_postpone(r->delta);
	return rc;
}

static int run_delta(void *ud, double wait_s)
{
	(void)wait_s;
	return sync_cycle(ud, 0);
}

static int run_relay(void *ud, double wait_s)
{
	struct run *r = ud;
	long wait = r->cfg->actions_poll_wait;
	if ((double)wait > wait_s)
		wait = (long)wait_s;
	cmb_log_set_cid("relay");
	int rc = cmb_relay_step(r->s.relay, wait < 0 ? 0 : wait);
	cmb_log_set_cid(NULL);
	if (rc < 0 && rc != CMB_ECANCELED)
		cmb_error_log("run: relay: %s", cmb_error_last());
	return rc;
}

/* The three tasks' timing from the configuration in use (at start and after a reload). */
static void task_opts(const struct run *r, struct cmb_sched_task_opts o[3])
{
	double interval = (double)r->cfg->sync_interval, full = (double)r->cfg->sync_full_interval;
	double backoff_max = SYNC_BACKOFF_MAX_INTERVALS * interval;
	o[0] = (struct cmb_sched_task_opts){
		.name = "full sync", .interval_s = full, .first_delay_s = 0,
		.random_offset_s = interval / SYNC_OFFSET_DIVISOR, .backoff_base_s = interval / 2,
		.backoff_max_s = backoff_max < full ? backoff_max : full, .run = run_full, .ud = (void *)r,
	};
	o[1] = (struct cmb_sched_task_opts){
		.name = "delta sync", .interval_s = interval, .first_delay_s = interval,
		.random_offset_s = interval / SYNC_OFFSET_DIVISOR, .backoff_base_s = interval / 2,
		.backoff_max_s = backoff_max, .run = run_delta, .ud = (void *)r,
	};
	o[2] = (struct cmb_sched_task_opts){
		.name = "relay", .interval_s = 0, .first_delay_s = 0, .backoff_base_s = CMB_RELAY_BACKOFF_BASE_S,
		.backoff_max_s = CMB_RELAY_BACKOFF_MAX_S, .run = run_relay, .ud = (void *)r,
	};
}

/*
 * SIGHUP (unbound's reload): [log] file is reopened first, whatever becomes
 * of the rest (logrotate moved it). Then the whole configuration is read
 * again and swapped in: a file that does not load, changes an option that
 * needs a restart, or names a log file that cannot be opened is refused and
 * the running configuration kept. The session is reopened with the new
 * one, or, if that fails, with the old one again.
 */
static void run_reload(struct run *r)
{
	const struct cmb_config *old = r->cfg;
	if (cmb_daemon_log_apply(old, r->verbose) < 0)
		cmb_error_log("run: SIGHUP: %s (still writing to the log file opened before)", cmb_error_last());
	struct cmb_config *fresh = NULL;
	if (cmb_config_load(&fresh, old->path) < 0 || cmb_config_check_reload(old, fresh) < 0 ||
	    cmb_daemon_log_apply(fresh, r->verbose) < 0) {
		cmb_error_log("run: SIGHUP: keeping the running configuration: %s", cmb_error_last());
		cmb_config_free(fresh);
		return;
	}
	cmb_daemon_session_close(&r->s);
	if (cmb_daemon_session_open(&r->s, fresh, RUN_MODULES) < 0) {
		cmb_error_log("run: SIGHUP: the new configuration cannot be used, keeping the running one: %s",
			      cmb_error_last());
		cmb_config_free(fresh);
		cmb_daemon_log_apply(old, r->verbose);
		if (cmb_daemon_session_open(&r->s, old, RUN_MODULES) < 0)
			cmb_error_log("run: reopening with the running configuration failed too: %s", cmb_error_last());
		return;
	}
	cmb_config_free(r->owned);
	r->owned = fresh;
	r->cfg = fresh;
	struct cmb_sched_task_opts o[3];
	task_opts(r, o);
	cmb_sched_task_tune(r->full, &o[0]);
	cmb_sched_task_tune(r->delta, &o[1]);
	cmb_sched_task_tune(r->relay, &o[2]);
	cmb_info("run: SIGHUP: configuration reloaded from %s", fresh->path);
}

int cmb_daemon_run(const struct cmb_config *cfg, int verbose)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	/* A reload may cut an idle long poll short; nothing else. */
	cmb_interrupt_set_flag(&hup_flag);
	struct run r = { .cfg = cfg, .verbose = verbose };
	int rc = cmb_daemon_session_open(&r.s, cfg, RUN_MODULES);
	if (rc < 0)
		return rc;
	cmb_info("run: sync every %ld s (full every %ld s) and the action relay; SIGTERM stops", cfg->sync_interval,
		 cfg->sync_full_interval);
	struct cmb_sched_task_opts o[3];
	task_opts(&r, o);
	cmb_sched_new(&r.sched, NULL);
	/* In this order: on a tie the full sync goes first, then the delta, then the relay. */
	r.full = cmb_sched_add(r.sched, &o[0]);
	r.delta = cmb_sched_add(r.sched, &o[1]);
	r.relay = cmb_sched_add(r.sched, &o[2]);
	while (!cmb_stop_requested()) {
		if (hup_flag) {
			hup_flag = 0;
			cmb_log_set_cid(NULL);
			run_reload(&r);
			if (!r.s.relay)
				break;
			continue;
		}
		cmb_sched_step(r.sched);
	}
	cmb_sched_free(r.sched);
	cmb_daemon_session_close(&r.s);
	cmb_config_free(r.owned);
	cmb_interrupt_set_flag(NULL);
	if (!cmb_stop_requested())
		return cmb_error_set(CMB_ERROR, "run: no usable configuration after a reload; stopping");
	cmb_info("run: stopping on request");
	return 0;
}
