/*
 * daemon.c - the modules of a session in their order, the signal flags and
 * the log settings (daemon.h); the main loop of `cmbridge run` is run.c.
 */
#include "connector/daemon/daemon.h"
#include "connector/daemon/watch.h"
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

static int snapshot_open(struct cmb_daemon_session *s)
{
	return cmb_state_open_snapshot(&s->state, s->cfg->state_dir);
}

static void state_close(struct cmb_daemon_session *s)
{
	cmb_state_close(s->state);
	s->state = NULL; /* the state and the snapshot rows both close it */
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

static int policies_open(struct cmb_daemon_session *s)
{
	if (!s->site->policy_open)
		return cmb_error_set(CMB_ECONFIG, "the site adapter %s has no policy store: policies cannot be relayed",
				     s->site->name);
	return s->site->policy_open(&s->policy_st, s->site_st);
}

static void policies_close(struct cmb_daemon_session *s)
{
	if (s->policy_st)
		s->site->policy_close(s->policy_st);
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
	{ CMB_DAEMON_SNAPSHOT, snapshot_open, state_close },
	{ CMB_DAEMON_SITE, site_open, site_close },
	{ CMB_DAEMON_TENANT, tenant_open, tenant_close },
	{ CMB_DAEMON_POLICIES, policies_open, policies_close },
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
	if (wanted & CMB_DAEMON_POLICIES)
		wanted |= CMB_DAEMON_SITE | CMB_DAEMON_TENANT;
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
	struct cmb_sync_env env = {
		.cfg = s->cfg, .state = s->state, .site = s->site, .site_st = s->site_st,
		.tenant = s->tenant, .tenant_st = s->tenant_st,
	};
	cmb_watch_sync_env(&env); /* progress, and a batch in flight finishes after SIGTERM */
	return env;
}

struct cmb_policy_env cmb_daemon_policy_env(const struct cmb_daemon_session *s)
{
	return (struct cmb_policy_env){
		.cfg = s->cfg, .state = s->state, .site = s->site, .policy_st = s->policy_st, .tenant = s->tenant,
		.tenant_st = s->tenant_st,
	};
}

/* ---- signals: handlers only set flags --------------------------------- */

static volatile int stop_flag;    /* SIGINT, SIGTERM: the process-wide stop request */
volatile int cmb_daemon_hup;      /* SIGHUP during `run`: reload */
volatile int cmb_daemon_usr1;     /* SIGUSR1 during `run`: a delta cycle now */
volatile int cmb_daemon_wake;     /* any of these or a control request: the loop looks; ends an idle wait */

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_run_signal(int sig)
{
	if (sig == SIGHUP)
		cmb_daemon_hup = 1;
	else
		cmb_daemon_usr1 = 1;
	cmb_daemon_wake = 1;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigaction(sig, &sa, NULL);
}

void cmb_daemon_run_signals_init(void)
{
	handle(SIGHUP, on_run_signal);
	handle(SIGUSR1, on_run_signal);
	/* A reload or a control request may cut an idle long poll short; nothing else. */
	cmb_interrupt_set_flag(&cmb_daemon_wake);
}

void cmb_daemon_signals_init(void)
{
	handle(SIGINT, on_stop);
	handle(SIGTERM, on_stop);
	cmb_stop_set_flag(&stop_flag);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- log settings ------------------------------------------------------ */

int cmb_daemon_log_apply(const struct cmb_config *cfg, int verbose)
{
	if (cmb_log_open(cfg->log_file) < 0)
		return CMB_ECONFIG; /* the message names the file */
	int lvl = cmb_log_level_parse(cfg->log_level ? cfg->log_level : "info");
	int fmt = cmb_log_format_parse(cfg->log_format ? cfg->log_format : "text");
	cmb_log_set_level(verbose ? CMB_LOG_DEBUG : (enum cmb_log_level)(lvl < 0 ? CMB_LOG_INFO : lvl));
	cmb_log_set_format(fmt < 0 ? CMB_LOG_TEXT : (enum cmb_log_format)fmt);
	cmb_log_set_max_size(cfg->log_max_size);
	return 0;
}
