/*
 * run.c - `cmbridge run` (daemon.h): the full sync, the delta sync, the
 * action relay and the policy poll as tasks of one scheduler (sched.h), the control
 * socket's requests (ctl.h), SIGHUP/SIGUSR1, systemd's notifications
 * (sdnotify.h), the view `cmbridge status` gets from the daemon and the
 * snapshot the metrics listener serves (metrics.h).
 *
 * Must never: act in a signal handler or in the control thread (both only
 * set flags or hand over a request; this loop acts), run a task while
 * another runs, or leave a control request unanswered at exit.
 */
#include "connector/daemon/ctl.h"
#include "connector/daemon/daemon.h"
#include "connector/daemon/metrics.h"
#include "connector/daemon/progress.h"
#include "connector/daemon/report.h"
#include "connector/daemon/sched.h"
#include "connector/daemon/sdnotify.h"
#include "connector/daemon/standby.h"
#include "connector/base/backoff.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"
#include "connector/base/util.h"
#include "connector/transport/retry.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUN_MODULES (CMB_DAEMON_SYNC | CMB_DAEMON_RELAY | CMB_DAEMON_POLICIES)
#define N_TASKS 4
/* A policy poll that failed is tried again after half a minute, doubling up to its interval. */
#define POLICY_BACKOFF_BASE_S 30.0
/*
 * A sync that failed is tried again after [sync] interval, then twice and
 * four times that; each run lands up to a twentieth of the interval later
 * than due, so connectors started together drift apart.
 */
#define SYNC_BACKOFF_MAX_INTERVALS 4
#define SYNC_OFFSET_DIVISOR 20
/* Waiting for the site and tenant at start: 1, 2, 4... seconds, at most a minute. */
#define PROBE_BACKOFF_BASE_S 1.0
#define PROBE_BACKOFF_MAX_S 60.0

struct run {
	const struct cmb_config *cfg;    /* in use */
	struct cmb_config *owned;        /* the one a reload loaded (freed when replaced) */
	int verbose;                     /* -v: debug whatever [log] level says */
	struct cmb_daemon_session s;
	struct cmb_sched *sched;
	struct cmb_sched_task *full, *delta, *relay, *policies;
	struct cmb_ctl *ctl;
	struct cmb_metrics *metrics;     /* NULL: [metrics] listen is off */
	int64_t started;
	/* A control request waiting for its task to run, with the options it asked for. */
	struct cmb_ctl_request *req;
	struct cmb_sched_task *req_task;
	struct cmb_sync_opts req_opts;
	/* The cycle the deletion guard holds (0: none), and its removals. */
	int64_t held_cycle;
	long held_removals;
	long held_changes;       /* > 0: the change guard held held_cycle (its removals wait too) */
	int cycle_ended;                 /* a sync task ran in this turn: log the next times */
	char *last_error;
};

/* ---- the view `status` gets over the control socket ---- */

/*
 * When t is due, as an ISO time. From the wall clock's fraction too, so
 * that every view published while t waits names the same second (the
 * status page and `status` read different publications).
 */
static void due_iso(const struct cmb_sched_task *t, char iso[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	cmb_time_iso8601((int64_t)((double)ts.tv_sec + ts.tv_nsec / 1e9 + cmb_sched_task_due_in(t) + 0.5), iso);
}

static void kv_due(yajl_gen g, const char *key, const struct cmb_sched_task *t)
{
	char iso[32];
	due_iso(t, iso);
	cmb_json_kv_str(g, key, iso);
}

static void publish_view(struct run *r)
{
	if ((!r->ctl && !r->metrics) || !r->sched)
		return;
	char started[32];
	cmb_time_iso8601(r->started, started);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", 1);
	cmb_json_kv_int(g, "pid", (long long)getpid());
	cmb_json_kv_str(g, "version", CMB_VERSION);
	cmb_json_kv_str(g, "config", r->cfg->path);
	cmb_json_kv_str(g, "started", started);
	cmb_json_kv_str(g, "activity", cmb_progress_text());
	kv_due(g, "nextDelta", r->delta);
	kv_due(g, "nextFull", r->full);
	cmb_json_kv_int(g, "deltaFailures", cmb_sched_task_failures(r->delta));
	cmb_json_kv_int(g, "fullFailures", cmb_sched_task_failures(r->full));
	cmb_json_kv_int(g, "relayFailures", cmb_sched_task_failures(r->relay));
	kv_due(g, "nextPolicies", r->policies);
	cmb_json_kv_int(g, "policiesFailures", cmb_sched_task_failures(r->policies));
	cmb_json_kv_str(g, "lastError", r->last_error);
	yajl_gen_map_close(g);
	char *view = cmb_json_take(g, NULL);
	cmb_metrics_view(r->metrics, view);
	cmb_ctl_publish(r->ctl, view);
}

/* What the metrics listener serves, gathered here between tasks from the daemon's own state connection. */
static void publish_report(struct run *r)
{
	struct cmb_report *rep = NULL;
	if (!r->metrics || !r->s.state)
		return;
	if (cmb_report_gather(&rep, r->cfg, r->s.state) < 0)
		cmb_warn("run: metrics: %s (serving the previous snapshot)", cmb_error_last());
	else
		cmb_metrics_publish(r->metrics, rep);
}

static struct run *view_run; /* for the progress listener: one run per process */

static void on_progress(void)
{
	if (view_run)
		publish_view(view_run);
}

static void set_last_error(struct run *r, const char *msg)
{
	free(r->last_error);
	r->last_error = msg ? xstrdup(msg) : NULL;
}

static void log_next_times(struct run *r)
{
	char d[32], f[32];
	due_iso(r->delta, d);
	due_iso(r->full, f);
	cmb_info("run: next delta at %s, next full at %s", d, f);
}

/* ---- the sync tasks ---- */

/* The answer to `sync ...` on the control socket: the cycle as it ended. */
static char *cycle_reply(const struct cmb_sync_result *res, const struct cmb_sync_opts *o, int rc)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", rc == 0);
	cmb_json_kv_int(g, "cycle", res->cycle_id);
	cmb_json_kv_str(g, "kind", o->full ? "full" : "delta");
	cmb_json_kv_str(g, "status", res->status);
	cmb_json_kv_int(g, "allowDeletes", o->allow_deletes);
	cmb_json_kv_int(g, "allowChanges", o->allow_changes);
	cmb_json_kv_int(g, "removals", res->pending_removals);
	cmb_json_kv_str(g, "error", rc < 0 ? cmb_error_last() : NULL);
	cmb_json_key(g, "counts");
	cmb_report_counts_json(g, &res->counts);
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

/* A staging cycle that ended well: the warm standby's import of the tenant's records. */
static void standby_import(struct run *r, const struct cmb_sync_env *env, int64_t cycle)
{
	char cid[32];
	snprintf(cid, sizeof(cid), "cycle-%lld", (long long)cycle);
	cmb_log_set_cid(cid);
	cmb_progress_activity("standby: reading the tenant's records");
	struct cmb_standby_stats st;
	if (cmb_standby_import(env, cycle, &st) < 0) {
		cmb_error_log("run: %s", cmb_error_last());
		set_last_error(r, cmb_error_last());
	} else {
		cmb_info("standby: %ld tenant records in %ld pages: %ld as the site has them, %ld but for check-in "
			 "times, %ld different, %ld forgotten, %ld matching no site device; diff base updated",
			 st.tenant_records, st.pages, st.same, st.refresh, st.differ, st.forgotten, st.unmatched);
	}
}

/* Remembers what the deletion guard holds, for `sync --allow-deletes` over the socket. */
static void note_guard(struct run *r, const struct cmb_sync_result *res, int rc)
{
	if (rc == CMB_EGUARD) {
		r->held_cycle = res->cycle_id;
		r->held_removals = res->counts.removals_held;
		r->held_changes = res->counts.changes_held;
	} else if (rc == 0) {
		r->held_cycle = 0;
		r->held_removals = 0;
		r->held_changes = 0;
	}
}

static int sync_cycle(struct run *r, struct cmb_sched_task *self, int full)
{
	struct cmb_sync_opts opts = { .full = full };
	struct cmb_ctl_request *req = NULL;
	if (r->req && r->req_task == self) {
		req = r->req;
		opts = r->req_opts;
		r->req = NULL;
	}
	cmb_log_set_component("sync");
	cmb_progress_activity("%s sync", opts.full ? "full" : "delta");
	struct cmb_sync_env env = cmb_daemon_sync_env(&r->s);
	struct cmb_sync_result res;
	int rc = cmb_sync_run(&env, &opts, &res);
	char cid[32];
	snprintf(cid, sizeof(cid), "cycle-%lld", (long long)res.cycle_id);
	cmb_log_set_cid(cid);
	if (rc == CMB_ECANCELED) {
		cmb_info("run: cycle %lld (%s) %s: %s", (long long)res.cycle_id, opts.full ? "full" : "delta", res.status,
			 cmb_error_last());
	} else if (rc < 0) {
		cmb_error_log("run: cycle %lld %s: %s", (long long)res.cycle_id, res.status, cmb_error_last());
		set_last_error(r, cmb_error_last());
	} else {
		cmb_info("run: cycle %lld (%s) %s", (long long)res.cycle_id, opts.full ? "full" : "delta", res.status);
	}
	note_guard(r, &res, rc);
	if (req)
		cmb_ctl_answer(req, cycle_reply(&res, &opts, rc));
	if (rc == 0 && r->cfg->mode == CMB_MODE_STAGING && strcmp(res.status, "staging") == 0)
		standby_import(r, &env, res.cycle_id);
	cmb_metrics_cycle(r->metrics, opts.full, &res);
	publish_report(r);
	cmb_progress_activity(NULL);
	r->cycle_ended = 1;
	return rc;
}

static int run_full(void *ud, double wait_s)
{
	(void)wait_s;
	struct run *r = ud;
	int rc = sync_cycle(r, r->full, 1);
	/* A full cycle sends what a delta would have: the next delta is an interval away. */
	if (rc != CMB_ECANCELED)
		cmb_sched_postpone(r->delta);
	return rc;
}

static int run_delta(void *ud, double wait_s)
{
	(void)wait_s;
	struct run *r = ud;
	return sync_cycle(r, r->delta, 0);
}

static char *relay_reply(const struct cmb_relay_stats *st, int rc)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", rc == 0);
	cmb_json_kv_str(g, "error", rc < 0 ? cmb_error_last() : NULL);
	cmb_json_kv_int(g, "received", st->received);
	cmb_json_kv_int(g, "refused", st->refused);
	cmb_json_kv_int(g, "operations", st->operations);
	cmb_json_kv_int(g, "done", st->done);
	cmb_json_kv_int(g, "failed", st->failed);
	cmb_json_kv_int(g, "reported", st->reported);
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

static int run_relay(void *ud, double wait_s)
{
	struct run *r = ud;
	struct cmb_ctl_request *req = r->req && r->req_task == r->relay ? r->req : NULL;
	long wait = req ? 0 : r->cfg->actions_poll_wait; /* asked for: one pass, no long poll */
	if ((double)wait > wait_s)
		wait = (long)wait_s;
	if (req)
		r->req = NULL;
	cmb_log_set_component("relay");
	cmb_log_set_cid("relay");
	struct cmb_relay_stats before = *cmb_relay_get_stats(r->s.relay);
	int rc = cmb_relay_step(r->s.relay, wait < 0 ? 0 : wait);
	const struct cmb_relay_stats *after = cmb_relay_get_stats(r->s.relay);
	cmb_metrics_relay(r->metrics, &before, after, rc);
	if (memcmp(&before, after, sizeof(before)) != 0)
		publish_report(r); /* actions moved: their counts and the recent ones */
	if (rc < 0 && rc != CMB_ECANCELED) {
		cmb_error_log("run: relay: %s", cmb_error_last());
		set_last_error(r, cmb_error_last());
	}
	if (req)
		cmb_ctl_answer(req, relay_reply(cmb_relay_get_stats(r->s.relay), rc == CMB_ECANCELED ? 0 : rc));
	cmb_log_set_cid(NULL);
	cmb_log_set_component(NULL);
	return rc;
}

/*
 * One policy poll (docs/policies.md, "The engine"): bounded work between
 * two relay passes, so actions wait at most one poll.
 */
/* The answer to `policies` on the control socket: the poll's counts. */
static char *policies_reply(const struct cmb_policy_stats *st, int rc)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", rc == 0);
	cmb_json_kv_str(g, "error", rc < 0 ? cmb_error_last() : NULL);
	cmb_json_kv_int(g, "listed", st->listed);
	cmb_json_kv_int(g, "read", st->read);
	cmb_json_kv_int(g, "accepted", st->accepted);
	cmb_json_kv_int(g, "rejected", st->rejected);
	cmb_json_kv_int(g, "conflicts", st->conflicts);
	cmb_json_kv_int(g, "written", st->written);
	cmb_json_kv_int(g, "removed", st->removed);
	cmb_json_kv_int(g, "reported", st->reported);
	cmb_json_kv_bool(g, "staged", st->staged);
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

static int run_policies(void *ud, double wait_s)
{
	(void)wait_s;
	struct run *r = ud;
	struct cmb_ctl_request *req = r->req && r->req_task == r->policies ? r->req : NULL;
	if (req)
		r->req = NULL;
	cmb_log_set_component("policy");
	cmb_log_set_cid("policy");
	cmb_progress_activity("policy poll");
	struct cmb_policy_env env = cmb_daemon_policy_env(&r->s);
	struct cmb_policy_stats st;
	int rc = cmb_policy_poll(&env, NULL, &st);
	if (rc < 0 && rc != CMB_ECANCELED) {
		cmb_error_log("run: policies: %s", cmb_error_last());
		set_last_error(r, cmb_error_last());
	}
	if (req)
		cmb_ctl_answer(req, policies_reply(&st, rc == CMB_ECANCELED ? 0 : rc));
	publish_report(r);
	cmb_progress_activity(NULL);
	cmb_log_set_cid(NULL);
	cmb_log_set_component(NULL);
	return rc;
}

/* The tasks' timing from the configuration in use (at start and after a reload). */
static void task_opts(const struct run *r, struct cmb_sched_task_opts o[N_TASKS])
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
	double pi = (double)r->cfg->policies_interval;
	o[3] = (struct cmb_sched_task_opts){
		.name = "policies", .interval_s = pi, .first_delay_s = 0, .random_offset_s = pi / SYNC_OFFSET_DIVISOR,
		.backoff_base_s = POLICY_BACKOFF_BASE_S < pi ? POLICY_BACKOFF_BASE_S : pi, .backoff_max_s = pi,
		.run = run_policies, .ud = (void *)r,
	};
}

/* ---- reload ---- */

static void retune(struct run *r, long old_interval, long old_full, long old_policies)
{
	struct cmb_sched_task_opts o[N_TASKS];
	task_opts(r, o);
	cmb_sched_task_tune(r->full, &o[0]);
	cmb_sched_task_tune(r->delta, &o[1]);
	cmb_sched_task_tune(r->relay, &o[2]);
	cmb_sched_task_tune(r->policies, &o[3]);
	if (old_policies != r->cfg->policies_interval)
		cmb_sched_task_retime(r->policies);
	/* A new interval counts from the last run, not after the old one has passed. */
	if (old_full != r->cfg->sync_full_interval)
		cmb_sched_task_retime(r->full);
	if (old_interval != r->cfg->sync_interval)
		cmb_sched_task_retime(r->delta);
}

/* Loads and checks the configuration again; *fresh is the caller's on success. */
static int load_fresh(struct run *r, struct cmb_config **fresh)
{
	const struct cmb_config *old = r->cfg;
	*fresh = NULL;
	if (cmb_config_load(fresh, old->path) < 0 || cmb_config_check_reload(old, *fresh) < 0 ||
	    cmb_daemon_log_apply(*fresh, r->verbose) < 0) {
		int rc = cmb_error_wrap(CMB_ECONFIG, "keeping the running configuration");
		cmb_config_free(*fresh);
		*fresh = NULL;
		return rc;
	}
	return 0;
}

/*
 * SIGHUP or `reload` (unbound's reload): [log] file is reopened first,
 * whatever becomes of the rest (logrotate moved it). Then the whole
 * configuration is read again and swapped in: a file that does not load,
 * changes an option that needs a restart, or names a log file that cannot
 * be opened is refused and the running configuration kept. The session
 * is reopened with the new one, or, if that fails, with the old one again.
 * Returns 0 when the new configuration is in use (the message says what
 * happened either way).
 */
static int run_reload(struct run *r, const char *why)
{
	const struct cmb_config *old = r->cfg;
	long old_interval = old->sync_interval, old_full = old->sync_full_interval, old_policies = old->policies_interval;
	cmb_sd_reloading();
	if (cmb_daemon_log_apply(old, r->verbose) < 0)
		cmb_error_log("run: %s: %s (still writing to the log file opened before)", why, cmb_error_last());
	struct cmb_config *fresh = NULL;
	int rc = load_fresh(r, &fresh);
	if (rc == 0) {
		cmb_daemon_session_close(&r->s);
		if ((rc = cmb_daemon_session_open(&r->s, fresh, RUN_MODULES)) < 0) {
			rc = cmb_error_wrap(rc, "the new configuration cannot be used, keeping the running one");
			char *msg = xstrdup(cmb_error_last());
			cmb_config_free(fresh);
			cmb_daemon_log_apply(old, r->verbose);
			if (cmb_daemon_session_open(&r->s, old, RUN_MODULES) < 0)
				cmb_error_log("run: reopening with the running configuration failed too: %s", cmb_error_last());
			cmb_error_set(rc, "%s", msg);
			free(msg);
		}
	}
	if (rc == 0) {
		cmb_config_free(r->owned);
		r->owned = fresh;
		r->cfg = fresh;
		retune(r, old_interval, old_full, old_policies);
		publish_report(r);
		cmb_info("run: %s: configuration reloaded from %s", why, fresh->path);
		cmb_error_set(CMB_OK, "configuration reloaded from %s", fresh->path);
	} else {
		cmb_error_log("run: %s: %s", why, cmb_error_last());
	}
	cmb_sd_notify("READY=1\nSTATUS=%s", cmb_progress_text());
	return rc;
}

static char *reload_reply(int rc)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", rc == 0);
	cmb_json_kv_str(g, rc == 0 ? "message" : "error", cmb_error_last());
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

/* ---- control requests (ctl.h): sync [full] | sync allow-deletes N [allow-changes M] | relay | policies | reload ---- */

/* Queues req for task with opts; it is answered when the task has run. */
static void queue_for(struct run *r, struct cmb_ctl_request *req, struct cmb_sched_task *task,
		      const struct cmb_sync_opts *opts)
{
	if (r->req) {
		cmb_ctl_answer_error(req, "busy: a cycle or relay pass asked for earlier has not run yet");
		return;
	}
	r->req = req;
	r->req_task = task;
	r->req_opts = opts ? *opts : (struct cmb_sync_opts){ 0 };
	cmb_sched_run_now(task);
}

/* N of "allow-deletes N" / "allow-changes N", or -1. */
static long approval_number(const char *text)
{
	char *end;
	long n = text ? strtol(text, &end, 10) : -1;
	return !text || *end || end == text || n < 0 ? -1 : n;
}

/*
 * sync allow-deletes N | sync allow-changes N | both: approves the held
 * cycle's removals or changes in a new delta cycle, when N covers them.
 */
static void approve(struct run *r, struct cmb_ctl_request *req)
{
	char msg[320];
	struct cmb_sync_opts o = { 0 };
	int argc = cmb_ctl_request_argc(req);
	for (int i = 1; i < argc; i += 2) {
		const char *what = cmb_ctl_request_arg(req, i);
		long n = approval_number(i + 1 < argc ? cmb_ctl_request_arg(req, i + 1) : NULL);
		long *slot = strcmp(what, "allow-deletes") == 0 ? &o.allow_deletes
			     : strcmp(what, "allow-changes") == 0 ? &o.allow_changes : NULL;
		if (!slot || n < 0) {
			cmb_ctl_answer_error(req, "sync allow-deletes N and sync allow-changes N take a number");
			return;
		}
		*slot = n;
	}
	if (!r->held_cycle) {
		cmb_ctl_answer_error(req, "nothing to approve: no cycle is held by the deletion or the change guard");
		return;
	}
	if (r->held_changes && o.allow_changes < r->held_changes) {
		snprintf(msg, sizeof(msg), "cycle %lld held %ld changes (change guard) and %ld is below that; nothing was "
			 "approved (approve them with: cmbridge sync --allow-changes %ld)", (long long)r->held_cycle,
			 r->held_changes, o.allow_changes, r->held_changes);
		cmb_ctl_answer_error(req, msg);
		return;
	}
	if (!r->held_changes && o.allow_deletes < r->held_removals) {
		snprintf(msg, sizeof(msg), "%ld is below the %ld removals cycle %lld held; nothing was approved "
			 "(approve them with: cmbridge sync --allow-deletes %ld)", o.allow_deletes, r->held_removals,
			 (long long)r->held_cycle, r->held_removals);
		cmb_ctl_answer_error(req, msg);
		return;
	}
	cmb_info("run: control: approving up to %ld removals and %ld changes (cycle %lld held %ld and %ld)",
		 o.allow_deletes, o.allow_changes, (long long)r->held_cycle, r->held_removals, r->held_changes);
	queue_for(r, req, r->delta, &o);
}

static void handle_request(struct run *r, struct cmb_ctl_request *req)
{
	int argc = cmb_ctl_request_argc(req);
	const char *cmd = cmb_ctl_request_arg(req, 0), *a1 = cmb_ctl_request_arg(req, 1);
	cmb_info("run: control request: %s%s%s", cmd, a1 ? " " : "", a1 ? a1 : "");
	if (strcmp(cmd, "sync") == 0 && a1 && strncmp(a1, "allow-", 6) == 0 && (argc == 3 || argc == 5)) {
		approve(r, req);
	} else if (strcmp(cmd, "sync") == 0 && (argc == 1 || (argc == 2 && strcmp(a1, "full") == 0))) {
		struct cmb_sync_opts o = { .full = argc == 2 };
		queue_for(r, req, o.full ? r->full : r->delta, &o);
	} else if (strcmp(cmd, "relay") == 0 && argc == 1) {
		queue_for(r, req, r->relay, NULL);
	} else if (strcmp(cmd, "policies") == 0 && argc == 1) {
		queue_for(r, req, r->policies, NULL);
	} else if (strcmp(cmd, "reload") == 0 && argc == 1) {
		int rc = run_reload(r, "reload request");
		cmb_ctl_answer(req, reload_reply(rc));
	} else {
		cmb_ctl_answer_error(req, "unknown request (known: status, sync, sync full, sync allow-deletes N, sync allow-changes N, "
				     "relay, policies, reload)");
	}
}

/* Flags set by signals and the control thread, acted on between tasks. */
static void handle_wake(struct run *r)
{
	cmb_daemon_wake = 0;
	cmb_log_set_cid(NULL);
	if (cmb_daemon_hup) {
		cmb_daemon_hup = 0;
		run_reload(r, "SIGHUP");
	}
	if (cmb_daemon_usr1) {
		cmb_daemon_usr1 = 0;
		cmb_info("run: SIGUSR1: a delta cycle now");
		cmb_sched_run_now(r->delta);
	}
	struct cmb_ctl_request *req;
	while (r->s.relay && (req = cmb_ctl_take(r->ctl)))
		handle_request(r, req);
}

/* ---- start and stop ---- */

/* The deletion guard's hold as the state has it (a restart keeps what `--allow-deletes` approves). */
static void load_guard(struct run *r)
{
	struct cmb_cycle *cy = NULL;
	size_t n = 0;
	if (cmb_state_cycles_recent(r->s.state, 20, &cy, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cy[i].status, "dry-run") == 0 || strcmp(cy[i].status, "running") == 0)
			continue; /* not a cycle that decided anything */
		if (strcmp(cy[i].status, "deletion-threshold-exceeded") == 0 ||
		    strcmp(cy[i].status, "change-threshold-exceeded") == 0) {
			r->held_cycle = cy[i].id;
			r->held_removals = cy[i].counts.removals_held;
			r->held_changes = cy[i].counts.changes_held;
		}
		break;
	}
	cmb_state_cycles_free(cy, n);
}

/* Both ends answer (site: a device key read; tenant: a token), or 0 and the reason. */
static int probe_once(struct run *r)
{
	int rc = r->s.site->check(r->s.site_st);
	if (rc < 0)
		return cmb_error_wrap(rc, "site");
	long expires = 0;
	if ((rc = r->s.tenant->check(r->s.tenant_st, &expires)) < 0)
		return cmb_error_wrap(rc, "tenant");
	return 0;
}

/* Waits, with backoff, until the site and the tenant have answered: READY means the service can work. */
static int wait_until_reachable(struct run *r)
{
	cmb_progress_activity("starting: reaching the site and the tenant");
	for (int tries = 1; !cmb_stop_requested(); tries++) {
		if (probe_once(r) == 0)
			return 0;
		double wait = cmb_backoff_delay(tries, PROBE_BACKOFF_BASE_S, PROBE_BACKOFF_MAX_S);
		cmb_warn("run: not ready: %s; trying again in %.0f s", cmb_error_last(), wait);
		set_last_error(r, cmb_error_last());
		cmb_sd_notify("STATUS=waiting: %s", cmb_error_last());
		for (double end = cmb_now_mono() + wait; cmb_now_mono() < end && !cmb_stop_requested();)
			cmb_retry_sleep(0.2);
	}
	return CMB_ECANCELED;
}

static int run_start(struct run *r)
{
	int rc = cmb_daemon_session_open(&r->s, r->cfg, RUN_MODULES);
	if (rc < 0)
		return rc;
	/* The control socket is bound after the state lock is ours: one daemon per state_dir owns it. */
	if (cmb_ctl_start(&r->ctl, r->cfg->state_dir, &cmb_daemon_wake) < 0)
		cmb_error_log("run: %s; running without it (status still reads the state; sync --now, relay --now "
			      "and reload cannot reach this daemon)", cmb_error_last());
	if (cmb_metrics_start(&r->metrics, r->cfg) < 0)
		cmb_error_log("run: %s; running without /metrics, /healthz and the status page", cmb_error_last());
	load_guard(r);
	struct cmb_sched_task_opts o[N_TASKS];
	task_opts(r, o);
	cmb_sched_new(&r->sched, NULL);
	/* In this order: on a tie the full sync goes first (it uploads the collections policies target), then the
	 * delta, the relay and the policy poll. */
	r->full = cmb_sched_add(r->sched, &o[0]);
	r->delta = cmb_sched_add(r->sched, &o[1]);
	r->relay = cmb_sched_add(r->sched, &o[2]);
	r->policies = cmb_sched_add(r->sched, &o[3]);
	publish_view(r);
	publish_report(r);
	if ((rc = wait_until_reachable(r)) < 0)
		return rc;
	cmb_progress_activity(NULL);
	cmb_sd_notify("READY=1\nSTATUS=ready: site and tenant answered");
	cmb_info("run: sync every %ld s (full every %ld s), the action relay, policies every %ld s; signals: TERM stops, "
		 "HUP reloads, USR1 runs a delta cycle", r->cfg->sync_interval, r->cfg->sync_full_interval,
		 r->cfg->policies_interval);
	return 0;
}

static void run_finish(struct run *r)
{
	cmb_sd_notify("STOPPING=1\nSTATUS=stopping");
	if (r->req)
		cmb_ctl_answer_error(r->req, "stopping: the daemon is shutting down");
	r->req = NULL;
	cmb_ctl_stop(r->ctl);
	cmb_metrics_stop(r->metrics);
	view_run = NULL;
	cmb_progress_set_listener(NULL);
	cmb_sched_free(r->sched);
	cmb_daemon_session_close(&r->s);
	cmb_config_free(r->owned);
	free(r->last_error);
	cmb_interrupt_set_flag(NULL);
	cmb_stop_set_heartbeat(NULL);
}

static void run_loop(struct run *r)
{
	while (!cmb_stop_requested()) {
		if (cmb_daemon_wake) {
			handle_wake(r);
			if (!r->s.relay)
				break; /* no usable session after a reload */
		} else {
			cmb_sched_step(r->sched);
		}
		if (r->cycle_ended && !cmb_stop_requested())
			log_next_times(r);
		r->cycle_ended = 0;
		publish_view(r);
		cmb_sd_watchdog();
	}
}

int cmb_daemon_run(const struct cmb_config *cfg, int verbose)
{
	struct run r = { .cfg = cfg, .verbose = verbose, .started = cmb_now() };
	cmb_sd_init();
	cmb_stop_set_heartbeat(cmb_sd_watchdog);
	cmb_daemon_run_signals_init();
	view_run = &r;
	cmb_progress_set_listener(on_progress);
	int rc = run_start(&r);
	if (rc == 0)
		run_loop(&r);
	int stopped = cmb_stop_requested();
	run_finish(&r);
	if (rc == CMB_ECANCELED || (rc == 0 && stopped)) {
		cmb_info("run: stopping on request");
		return 0;
	}
	if (rc == 0)
		return cmb_error_set(CMB_ERROR, "run: no usable configuration after a reload; stopping");
	return rc;
}
