/*
 * report.c - `cmbridge status` (report.h): gathered once from the state
 * (opened read-only), the tenant certificate and the running daemon, then
 * written as text, JSON or one monitoring line.
 */
#include "connector/daemon/report.h"
#include "connector/daemon/ctl.h"
#include "connector/transport/auth.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cycles read to find the newest real ones among dry runs. */
#define CYCLES_READ 200
#define CYCLES_SHOWN 10
#define IN_FLIGHT_SHOWN 1000

struct report {
	const struct cmb_config *cfg;
	char *no_state;                  /* "no state yet ..." when there is none */
	struct cmb_cycle *all;
	size_t n_all;
	const struct cmb_cycle *cy[CYCLES_SHOWN]; /* the newest real cycles, newest first */
	size_t n;
	const struct cmb_cycle *last;    /* the newest real cycle that ended */
	long devices, quarantined, quar_kind[3];
	long actions_open, actions_failed, outbox;
	int cert_rc;                     /* 0: the certificate below was read */
	int64_t not_after, days_left;
	char *subject;
	int soon;
	yajl_val daemon;                 /* the daemon's view (ctl.h), NULL when none runs */
	long held;                       /* removals the deletion guard holds (last cycle) */
	long changes_held;               /* changes the change guard holds (last cycle), with its removals */
	long in_flight;                  /* uploads whose outcome is unknown (docs/safety.md) */
	char **in_flight_keys;           /* the first IN_FLIGHT_SHOWN of them */
	size_t n_in_flight_keys;
	char guard[256];                 /* why, as "300 > 180 = 10% of 1801 attached" */
	long max_age;
};

void cmb_report_counts_json(yajl_gen g, const struct cmb_cycle_counts *c)
{
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "siteRecords", c->site_records);
	cmb_json_kv_int(g, "skipped", c->skipped);
	cmb_json_kv_int(g, "unchanged", c->unchanged);
	cmb_json_kv_int(g, "added", c->added);
	cmb_json_kv_int(g, "changed", c->changed);
	cmb_json_kv_int(g, "refreshed", c->refreshed);
	cmb_json_kv_int(g, "duplicates", c->duplicates);
	cmb_json_kv_int(g, "noEntraDeviceId", c->no_entra_id);
	cmb_json_kv_int(g, "unknownWorkloadBits", c->unknown_workloads);
	cmb_json_kv_int(g, "removalsHeld", c->removals_held);
	cmb_json_kv_int(g, "uploaded", c->added + c->changed + c->refreshed);
	cmb_json_kv_int(g, "removed", c->removed);
	cmb_json_kv_int(g, "quarantined", c->quarantined);
	cmb_json_kv_int(g, "rejected", c->rejected);
	cmb_json_kv_int(g, "uploadRequests", c->upload_requests);
	cmb_json_kv_int(g, "utf8Repairs", c->utf8_repairs);
	cmb_json_kv_int(g, "changesHeld", c->changes_held);
	yajl_gen_map_close(g);
}

int cmb_report_real_cycle(const char *status)
{
	return strcmp(status, "dry-run") != 0;
}

/* ---- gathering ---- */

static int count_kind(void *ud, const char *key, enum cmb_quarantine_kind kind, const char *reason, int64_t since)
{
	(void)key, (void)reason, (void)since;
	struct report *r = ud;
	if ((int)kind >= 0 && (int)kind < 3)
		r->quar_kind[kind]++;
	return 0;
}

static int in_flight_key(void *ud, const char *key, const char *batch_id, int64_t since_cycle, int64_t since)
{
	(void)batch_id, (void)since_cycle, (void)since;
	struct report *r = ud;
	if (r->n_in_flight_keys < IN_FLIGHT_SHOWN) {
		r->in_flight_keys = xrealloc(r->in_flight_keys, (r->n_in_flight_keys + 1) * sizeof(char *));
		r->in_flight_keys[r->n_in_flight_keys++] = xstrdup(key);
	}
	return 0;
}

static void describe_guard(struct report *r)
{
	const struct cmb_config *c = r->cfg;
	if (r->last && strcmp(r->last->status, "change-threshold-exceeded") == 0) {
		r->changes_held = r->last->counts.changes_held;
		return;
	}
	if (!r->last || strcmp(r->last->status, "deletion-threshold-exceeded") != 0)
		return;
	r->held = r->last->counts.removals_held;
	long pct_limit = c->sync_delete_threshold_percent * r->devices / 100;
	if (r->held > c->sync_delete_threshold)
		snprintf(r->guard, sizeof(r->guard), "%ld > %ld = [sync] delete_threshold", r->held,
			 c->sync_delete_threshold);
	else
		snprintf(r->guard, sizeof(r->guard), "%ld > %ld = %ld%% of %ld attached", r->held, pct_limit,
			 c->sync_delete_threshold_percent, r->devices);
}

static int gather_state(struct report *r, struct cmb_state *st)
{
	int rc = cmb_state_cycles_recent(st, CYCLES_READ, &r->all, &r->n_all);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->n_all; i++) {
		const struct cmb_cycle *cy = &r->all[i];
		if (!cmb_report_real_cycle(cy->status))
			continue;
		if (r->n < CYCLES_SHOWN)
			r->cy[r->n++] = cy;
		if (!r->last && cy->ended)
			r->last = cy;
	}
	r->devices = cmb_state_device_count(st);
	r->quarantined = cmb_state_quarantine_count(st);
	if ((rc = cmb_state_quarantine_each(st, count_kind, r)) < 0)
		return rc;
	if ((r->in_flight = cmb_state_inflight_count(st)) < 0)
		return (int)r->in_flight;
	if ((rc = cmb_state_inflight_each(st, in_flight_key, r)) < 0)
		return rc;
	r->actions_open = cmb_state_actions_open(st);
	r->outbox = cmb_state_outbox_count(st);
	struct cmb_action *failed = NULL;
	size_t n_failed = 0;
	if (cmb_state_actions_by_state(st, CMB_ACTION_STATE_FAILED, SIZE_MAX, &failed, &n_failed) == 0)
		r->actions_failed = (long)n_failed;
	cmb_state_actions_free(failed, n_failed);
	describe_guard(r);
	return 0;
}

static void gather_cert(struct report *r)
{
	r->cert_rc = -1;
	if (!r->cfg->tenant_client_certificate_file)
		return;
	/* The tenant credential's certificate: the one thing that expires on its own. */
	if ((r->cert_rc = cmb_auth_cert_expiry(r->cfg->tenant_client_certificate_file, &r->not_after, &r->subject)) ==
	    0) {
		r->days_left = (r->not_after - cmb_now()) / 86400;
		r->soon = r->not_after - cmb_now() < CMB_AUTH_CERT_WARN_S;
	}
}

static int gather(struct report *r)
{
	struct cmb_state *st = NULL;
	r->max_age = r->cfg->sync_max_age > 0 ? r->cfg->sync_max_age : 3 * r->cfg->sync_interval;
	int rc = cmb_state_open_readonly(&st, r->cfg->state_dir);
	if (rc == CMB_ENOTFOUND)
		r->no_state = xstrdup(cmb_error_last());
	else if (rc < 0)
		return rc;
	else if ((rc = gather_state(r, st)) < 0) {
		cmb_state_close(st);
		return rc;
	}
	cmb_state_close(st);
	gather_cert(r);
	if (cmb_ctl_call(r->cfg->state_dir, "status", &r->daemon) < 0)
		r->daemon = NULL; /* no daemon: nothing of it to show */
	return 0;
}

static void report_free(struct report *r)
{
	cmb_state_cycles_free(r->all, r->n_all);
	free(r->no_state);
	free(r->subject);
	for (size_t i = 0; i < r->n_in_flight_keys; i++)
		free(r->in_flight_keys[i]);
	free(r->in_flight_keys);
	yajl_tree_free(r->daemon);
}

static const char *dstr(const struct report *r, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val v = r->daemon ? yajl_tree_get(r->daemon, path, yajl_t_string) : NULL;
	return v ? v->u.string : NULL;
}

static long long dint(const struct report *r, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val v = r->daemon ? yajl_tree_get(r->daemon, path, yajl_t_number) : NULL;
	return v && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0;
}

/* ---- JSON ---- */

void cmb_report_kv_time(yajl_gen g, const char *key, int64_t t)
{
	char iso[32];
	cmb_time_iso8601(t, iso);
	cmb_json_kv_str(g, key, iso);
}

static void json_cycle(yajl_gen g, const struct cmb_cycle *cy)
{
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "id", cy->id);
	cmb_json_kv_str(g, "kind", cy->kind);
	cmb_json_kv_str(g, "status", cy->status);
	cmb_report_kv_time(g, "started", cy->started);
	if (cy->ended)
		cmb_report_kv_time(g, "ended", cy->ended);
	else
		cmb_json_kv_str(g, "ended", NULL);
	cmb_json_kv_str(g, "error", cy->error);
	cmb_json_key(g, "counts");
	cmb_report_counts_json(g, &cy->counts);
	yajl_gen_map_close(g);
}

static void json_daemon(yajl_gen g, const struct report *r)
{
	cmb_json_key(g, "daemon");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "running", r->daemon != NULL);
	if (r->daemon) {
		cmb_json_kv_int(g, "pid", dint(r, "pid"));
		cmb_json_kv_str(g, "started", dstr(r, "started"));
		cmb_json_kv_str(g, "activity", dstr(r, "activity"));
		cmb_json_kv_str(g, "nextDelta", dstr(r, "nextDelta"));
		cmb_json_kv_str(g, "nextFull", dstr(r, "nextFull"));
		cmb_json_kv_str(g, "lastError", dstr(r, "lastError"));
	}
	yajl_gen_map_close(g);
}

static void json_guard_actions(yajl_gen g, const struct report *r)
{
	cmb_json_key(g, "deletionGuard");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "holding", r->held > 0);
	cmb_json_kv_int(g, "removalsHeld", r->held);
	if (r->held) {
		cmb_json_kv_int(g, "cycle", r->last->id);
		cmb_json_kv_str(g, "limit", r->guard);
	}
	cmb_json_kv_int(g, "deleteThreshold", r->cfg->sync_delete_threshold);
	cmb_json_kv_int(g, "deleteThresholdPercent", r->cfg->sync_delete_threshold_percent);
	yajl_gen_map_close(g);
	cmb_json_key(g, "changeGuard");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "holding", r->changes_held > 0);
	cmb_json_kv_int(g, "changesHeld", r->changes_held);
	if (r->changes_held) {
		cmb_json_kv_int(g, "cycle", r->last->id);
		cmb_json_kv_str(g, "reason", r->last->error);
	}
	cmb_json_kv_int(g, "changeThreshold", r->cfg->sync_change_threshold);
	cmb_json_kv_int(g, "changeThresholdPercent", r->cfg->sync_change_threshold_percent);
	yajl_gen_map_close(g);
	cmb_json_key(g, "actions");
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "pending", r->actions_open);
	cmb_json_kv_int(g, "failed", r->actions_failed);
	cmb_json_kv_int(g, "resultsWaiting", r->outbox);
	yajl_gen_map_close(g);
}

static void json_cert(yajl_gen g, const struct report *r)
{
	if (r->cert_rc != 0)
		return;
	cmb_json_key(g, "certificate");
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "subject", r->subject);
	cmb_report_kv_time(g, "notAfter", r->not_after);
	cmb_json_kv_int(g, "daysLeft", r->days_left);
	cmb_json_kv_bool(g, "expiresSoon", r->soon);
	yajl_gen_map_close(g);
}

static const char *last_error(const struct report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->cy[i]->error)
			return r->cy[i]->error;
	return dstr(r, "lastError");
}

static void status_json(const struct report *r)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "version", CMB_VERSION);
	cmb_json_kv_str(g, "siteCode", r->cfg->site_code);
	cmb_json_kv_str(g, "mode", r->cfg->mode == CMB_MODE_STAGING ? "staging" : "normal");
	cmb_json_kv_str(g, "state", r->no_state ? "none" : "ok");
	cmb_json_kv_str(g, "stateMessage", r->no_state);
	cmb_json_kv_int(g, "devicesAttached", r->devices);
	cmb_json_kv_int(g, "quarantined", r->quarantined);
	cmb_json_kv_int(g, "inFlight", r->in_flight);
	cmb_json_key(g, "inFlightKeys"); /* the first IN_FLIGHT_SHOWN, in key order */
	yajl_gen_array_open(g);
	for (size_t i = 0; i < r->n_in_flight_keys; i++)
		cmb_json_str(g, r->in_flight_keys[i]);
	yajl_gen_array_close(g);
	cmb_json_key(g, "quarantineByKind");
	yajl_gen_map_open(g);
	for (int k = 0; k < 3; k++)
		cmb_json_kv_int(g, cmb_state_quarantine_kind_name((enum cmb_quarantine_kind)k), r->quar_kind[k]);
	yajl_gen_map_close(g);
	json_guard_actions(g, r);
	json_cert(g, r);
	cmb_json_kv_str(g, "lastError", last_error(r));
	json_daemon(g, r);
	cmb_json_key(g, "cycles");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < r->n; i++)
		json_cycle(g, r->cy[i]);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	cmb_json_flush(g, stdout);
	fputc('\n', stdout);
	yajl_gen_free(g);
}

/* ---- text ---- */

static void text_daemon(const struct report *r)
{
	if (!r->daemon) {
		printf("daemon:      not running (no `cmbridge run` answers on %s/%s)\n", r->cfg->state_dir,
		       CMB_CTL_SOCKET);
		return;
	}
	printf("daemon:      running, pid %lld, since %s: %s\n", dint(r, "pid"), dstr(r, "started"),
	       dstr(r, "activity"));
	printf("next:        delta at %s, full at %s\n", dstr(r, "nextDelta"), dstr(r, "nextFull"));
}

static void text_cycles(const struct report *r)
{
	if (r->n == 0)
		printf("no sync cycle has run yet\n");
	for (size_t i = 0; i < r->n; i++) {
		const struct cmb_cycle *cy = r->cy[i];
		char a[32];
		cmb_time_iso8601(cy->started, a);
		const struct cmb_cycle_counts *c = &cy->counts;
		printf("  cycle %lld %-5s %s %-8s read %ld, uploaded %ld (+%ld ~%ld =%ld), removed %ld, "
		       "rejected %ld, quarantined %ld%s%s\n",
		       (long long)cy->id, cy->kind, a, cy->status, c->site_records,
		       c->added + c->changed + c->refreshed, c->added, c->changed, c->refreshed, c->removed, c->rejected,
		       c->quarantined, cy->error ? ": " : "", cy->error ? cy->error : "");
	}
}

static void status_text(const struct report *r)
{
	printf("cmbridge %s, site %s, mode %s: %ld devices attached, %ld quarantined\n", CMB_VERSION,
	       r->cfg->site_code, r->cfg->mode == CMB_MODE_STAGING ? "staging" : "normal", r->devices,
	       r->quarantined);
	if (r->no_state)
		printf("state:       %s\n", r->no_state);
	text_daemon(r);
	printf("quarantine:  %ld mapping, %ld rejected, %ld duplicate\n", r->quar_kind[0], r->quar_kind[1],
	       r->quar_kind[2]);
	if (r->in_flight) {
		/* Uploads whose reply never came: the tenant may hold them; the next good cycle settles them. */
		printf("in flight:   %ld uploads in flight, outcome unknown, settled by the next cycle:", r->in_flight);
		for (size_t i = 0; i < r->n_in_flight_keys && i < 10; i++)
			printf("%s %s", i ? "," : "", r->in_flight_keys[i]);
		printf("%s\n", r->in_flight > 10 ? ", ..." : "");
	}
	if (r->changes_held)
		printf("guard:       holding %ld changes (and the removals) of cycle %lld: %s; approve with: cmbridge "
		       "sync --allow-changes %ld\n", r->changes_held, (long long)r->last->id,
		       r->last->error ? r->last->error : "the change guard tripped", r->changes_held);
	else if (r->held)
		printf("guard:       holding %ld removals of cycle %lld: %s; approve with: cmbridge sync "
		       "--allow-deletes %ld\n", r->held, (long long)r->last->id, r->guard, r->held);
	else
		printf("guard:       holding nothing (limits: %ld removals, %ld%% of attached devices)\n",
		       r->cfg->sync_delete_threshold, r->cfg->sync_delete_threshold_percent);
	printf("actions:     %ld pending, %ld failed, %ld results waiting to be reported\n", r->actions_open,
	       r->actions_failed, r->outbox);
	if (r->cert_rc == 0) {
		char na[32];
		cmb_time_iso8601(r->not_after, na);
		printf("certificate: %s expires %s (%lld days)%s\n", r->subject, na, (long long)r->days_left,
		       r->soon ? ": renew it and upload the new one to the app registration" : "");
	}
	const char *err = last_error(r);
	printf("last error:  %s\n", err ? err : "none");
	text_cycles(r);
}

/* ---- --check ---- */

static int check_line(const struct report *r)
{
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
	char what[1024];
	int st = CMB_CHECK_OK;
	const struct cmb_cycle *c = r->last;
	int64_t age = c ? cmb_now() - c->ended : 0;
	if (r->no_state) {
		st = CMB_CHECK_UNKNOWN;
		snprintf(what, sizeof(what), "%s", r->no_state);
	} else if (!c) {
		st = CMB_CHECK_UNKNOWN;
		snprintf(what, sizeof(what), "no sync cycle has ended yet");
	} else if (strcmp(c->status, "failed") == 0) {
		st = CMB_CHECK_CRITICAL;
		snprintf(what, sizeof(what), "cycle %lld (%s) failed %lld s ago: %s", (long long)c->id, c->kind,
			 (long long)age, c->error ? c->error : "no reason kept");
	} else if (age > r->max_age) {
		st = CMB_CHECK_CRITICAL;
		snprintf(what, sizeof(what), "the last cycle (%lld, %s) ended %lld s ago, more than [sync] max_age = %ld s",
			 (long long)c->id, c->status, (long long)age, r->max_age);
	} else if (r->changes_held) {
		st = CMB_CHECK_WARNING;
		snprintf(what, sizeof(what), "cycle %lld holds %ld changes (change guard); approve with: cmbridge sync "
			 "--allow-changes %ld", (long long)c->id, r->changes_held, r->changes_held);
	} else if (r->held) {
		st = CMB_CHECK_WARNING;
		snprintf(what, sizeof(what), "cycle %lld holds %ld removals: %s; approve with: cmbridge sync "
			 "--allow-deletes %ld", (long long)c->id, r->held, r->guard, r->held);
	} else {
		snprintf(what, sizeof(what), "cycle %lld (%s) %s %lld s ago; %ld devices attached", (long long)c->id,
			 c->kind, c->status, (long long)age, r->devices);
	}
	printf("CMBRIDGE %s - %s | age=%llds;;%ld devices=%ld quarantined=%ld removals_held=%ld\n", names[st], what,
	       (long long)age, r->max_age, r->devices, r->quarantined, r->held);
	return st;
}

int cmb_report_status(const struct cmb_config *cfg, int json, int check)
{
	struct report r = { .cfg = cfg };
	int rc = gather(&r);
	if (rc < 0) {
		if (check) {
			printf("CMBRIDGE UNKNOWN - %s\n", cmb_error_last());
			rc = CMB_CHECK_UNKNOWN;
		}
	} else if (check) {
		rc = check_line(&r);
	} else if (json) {
		status_json(&r);
	} else {
		status_text(&r);
	}
	report_free(&r);
	return rc;
}
