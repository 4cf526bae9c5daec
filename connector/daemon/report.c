/*
 * report.c - `cmbridge status` (report.h): gathered once from the state
 * (opened read-only, or the daemon's own), the tenant certificate and the
 * running daemon, then written as text, JSON or one monitoring line.
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
#define IN_FLIGHT_SHOWN 1000

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
	struct cmb_report *r = ud;
	if ((int)kind >= 0 && (int)kind < 3)
		r->quar_kind[kind]++;
	return 0;
}

static int in_flight_key(void *ud, const char *key, const char *batch_id, int64_t since_cycle, int64_t since)
{
	(void)batch_id, (void)since_cycle, (void)since;
	struct cmb_report *r = ud;
	if (r->n_in_flight_keys < IN_FLIGHT_SHOWN) {
		r->in_flight_keys = xrealloc(r->in_flight_keys, (r->n_in_flight_keys + 1) * sizeof(char *));
		r->in_flight_keys[r->n_in_flight_keys++] = xstrdup(key);
	}
	return 0;
}

static void describe_guard(struct cmb_report *r)
{
	if (r->last && strcmp(r->last->status, "change-threshold-exceeded") == 0) {
		r->changes_held = r->last->counts.changes_held;
		return;
	}
	if (!r->last || strcmp(r->last->status, "deletion-threshold-exceeded") != 0)
		return;
	r->held = r->last->counts.removals_held;
	long pct_limit = r->delete_threshold_percent * r->devices / 100;
	if (r->held > r->delete_threshold)
		snprintf(r->guard, sizeof(r->guard), "%ld > %ld = [sync] delete_threshold", r->held,
			 r->delete_threshold);
	else
		snprintf(r->guard, sizeof(r->guard), "%ld > %ld = %ld%% of %ld attached", r->held, pct_limit,
			 r->delete_threshold_percent, r->devices);
}

static void pick_cycles(struct cmb_report *r)
{
	for (size_t i = 0; i < r->n_all; i++) {
		const struct cmb_cycle *cy = &r->all[i];
		if (!cmb_report_real_cycle(cy->status))
			continue;
		if (r->n < CMB_REPORT_CYCLES)
			r->cy[r->n++] = cy;
		if (!r->last && cy->ended)
			r->last = cy;
		if (!r->last_success && cy->ended && (!strcmp(cy->status, "ok") || !strcmp(cy->status, "staging")))
			r->last_success = cy->ended;
	}
}

/* The policy relay's policies by state (docs/policies.md, "States"). */
static int gather_policies(struct cmb_report *r, struct cmb_state *st)
{
	r->n_policy_states = 0;
	for (int i = 0; i < CMB_PSTATE_COUNT && i < CMB_REPORT_N_POLICY_STATES; i++) {
		long n = cmb_state_policies_count(st, (enum cmb_policy_state)i);
		if (n < 0)
			return (int)n;
		r->policies[r->n_policy_states].state = cmb_state_policy_state_name((enum cmb_policy_state)i);
		r->policies[r->n_policy_states++].n = n;
	}
	r->policies_known = 1;
	return 0;
}

static int gather_actions(struct cmb_report *r, struct cmb_state *st)
{
	for (int i = 0; i < CMB_REPORT_N_ACTION_STATES; i++)
		if ((r->actions_by_state[i] = cmb_state_actions_count(st, (enum cmb_action_state)i)) < 0)
			return (int)r->actions_by_state[i];
	if ((r->actions_open = cmb_state_actions_open(st)) < 0)
		return (int)r->actions_open;
	if ((r->outbox = cmb_state_outbox_count(st)) < 0)
		return (int)r->outbox;
	r->actions_failed = r->actions_by_state[CMB_ACTION_STATE_FAILED];
	return cmb_state_actions_recent(st, CMB_REPORT_ACTIONS, &r->recent, &r->n_recent);
}

static int gather_state(struct cmb_report *r, struct cmb_state *st)
{
	int rc = cmb_state_cycles_recent(st, CYCLES_READ, &r->all, &r->n_all);
	if (rc < 0)
		return rc;
	pick_cycles(r);
	r->devices = cmb_state_device_count(st);
	r->quarantined = cmb_state_quarantine_count(st);
	if ((rc = cmb_state_quarantine_each(st, count_kind, r)) < 0)
		return rc;
	if ((r->in_flight = cmb_state_inflight_count(st)) < 0)
		return (int)r->in_flight;
	if ((rc = cmb_state_inflight_each(st, in_flight_key, r)) < 0 || (rc = gather_actions(r, st)) < 0 ||
	    (rc = gather_policies(r, st)) < 0)
		return rc;
	describe_guard(r);
	return 0;
}

static void gather_cert(struct cmb_report *r, const struct cmb_config *cfg)
{
	r->cert_rc = -1;
	if (!cfg->tenant_client_certificate_file)
		return;
	/* The tenant credential's certificate: the one thing that expires on its own. */
	if ((r->cert_rc = cmb_auth_cert_expiry(cfg->tenant_client_certificate_file, &r->not_after, &r->subject)) == 0) {
		r->days_left = (r->not_after - cmb_now()) / 86400;
		r->soon = r->not_after - cmb_now() < CMB_AUTH_CERT_WARN_S;
	}
}

static struct cmb_report *report_new(const struct cmb_config *cfg)
{
	struct cmb_report *r = xcalloc(1, sizeof(*r));
	r->site_code = xstrdup(cfg->site_code);
	r->staging = cfg->mode == CMB_MODE_STAGING;
	r->delete_threshold = cfg->sync_delete_threshold;
	r->delete_threshold_percent = cfg->sync_delete_threshold_percent;
	r->change_threshold = cfg->sync_change_threshold;
	r->change_threshold_percent = cfg->sync_change_threshold_percent;
	r->max_age = cfg->sync_max_age > 0 ? cfg->sync_max_age : 3 * cfg->sync_interval;
	return r;
}

int cmb_report_gather(struct cmb_report **out, const struct cmb_config *cfg, struct cmb_state *st)
{
	struct cmb_report *r = report_new(cfg);
	struct cmb_state *own = NULL;
	int rc = 0;
	if (!st && (rc = cmb_state_open_readonly(&own, cfg->state_dir)) == CMB_ENOTFOUND) {
		r->no_state = xstrdup(cmb_error_last());
		rc = 0;
	} else if (rc == 0) {
		rc = gather_state(r, st ? st : own);
	}
	cmb_state_close(own);
	if (rc < 0) {
		cmb_report_free(r);
		return rc;
	}
	gather_cert(r, cfg);
	if (!st && cmb_ctl_call(cfg->state_dir, "status", &r->daemon) < 0)
		r->daemon = NULL; /* no daemon: nothing of it to show */
	*out = r;
	return 0;
}

void cmb_report_free(struct cmb_report *r)
{
	if (!r)
		return;
	free(r->site_code);
	cmb_state_cycles_free(r->all, r->n_all);
	cmb_state_actions_free(r->recent, r->n_recent);
	free(r->no_state);
	free(r->subject);
	for (size_t i = 0; i < r->n_in_flight_keys; i++)
		free(r->in_flight_keys[i]);
	free(r->in_flight_keys);
	yajl_tree_free(r->daemon);
	free(r);
}

const char *cmb_report_daemon_str(const struct cmb_report *r, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val v = r->daemon ? yajl_tree_get(r->daemon, path, yajl_t_string) : NULL;
	return v ? v->u.string : NULL;
}

long long cmb_report_daemon_int(const struct cmb_report *r, const char *name)
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

static void json_daemon(yajl_gen g, const struct cmb_report *r)
{
	cmb_json_key(g, "daemon");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "running", r->daemon != NULL);
	if (r->daemon) {
		cmb_json_kv_int(g, "pid", cmb_report_daemon_int(r, "pid"));
		cmb_json_kv_str(g, "started", cmb_report_daemon_str(r, "started"));
		cmb_json_kv_str(g, "activity", cmb_report_daemon_str(r, "activity"));
		cmb_json_kv_str(g, "nextDelta", cmb_report_daemon_str(r, "nextDelta"));
		cmb_json_kv_str(g, "nextFull", cmb_report_daemon_str(r, "nextFull"));
		cmb_json_kv_str(g, "nextPolicies", cmb_report_daemon_str(r, "nextPolicies"));
		cmb_json_kv_str(g, "lastError", cmb_report_daemon_str(r, "lastError"));
	}
	yajl_gen_map_close(g);
}

static void json_guard_actions(yajl_gen g, const struct cmb_report *r)
{
	cmb_json_key(g, "deletionGuard");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "holding", r->held > 0);
	cmb_json_kv_int(g, "removalsHeld", r->held);
	if (r->held) {
		cmb_json_kv_int(g, "cycle", r->last->id);
		cmb_json_kv_str(g, "limit", r->guard);
	}
	cmb_json_kv_int(g, "deleteThreshold", r->delete_threshold);
	cmb_json_kv_int(g, "deleteThresholdPercent", r->delete_threshold_percent);
	yajl_gen_map_close(g);
	cmb_json_key(g, "changeGuard");
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "holding", r->changes_held > 0);
	cmb_json_kv_int(g, "changesHeld", r->changes_held);
	if (r->changes_held) {
		cmb_json_kv_int(g, "cycle", r->last->id);
		cmb_json_kv_str(g, "reason", r->last->error);
	}
	cmb_json_kv_int(g, "changeThreshold", r->change_threshold);
	cmb_json_kv_int(g, "changeThresholdPercent", r->change_threshold_percent);
	yajl_gen_map_close(g);
	cmb_json_key(g, "actions");
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "pending", r->actions_open);
	cmb_json_kv_int(g, "failed", r->actions_failed);
	cmb_json_kv_int(g, "resultsWaiting", r->outbox);
	cmb_json_key(g, "byState");
	yajl_gen_map_open(g);
	for (int i = 0; i < CMB_REPORT_N_ACTION_STATES; i++)
		cmb_json_kv_int(g, cmb_state_action_state_name((enum cmb_action_state)i), r->actions_by_state[i]);
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
}

/* One action as `actions --json` and `status --json` show it (docs/operations.md). */
void cmb_report_action_json(yajl_gen g, const struct cmb_action *a)
{
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "id", a->id);
	cmb_json_kv_str(g, "deviceId", a->device_id);
	cmb_json_kv_str(g, "key", a->key);
	cmb_json_kv_int(g, "resourceId", a->resource_id);
	cmb_json_kv_str(g, "action", a->action);
	cmb_json_kv_str(g, "requestedBy", a->requested_by);
	cmb_report_kv_time(g, "requestedDateTime", a->requested);
	cmb_report_kv_time(g, "expirationDateTime", a->expires);
	cmb_json_kv_str(g, "state", cmb_state_action_state_name(a->state));
	cmb_json_kv_str(g, "actionDeliveryStatus", a->delivery);
	cmb_json_kv_int(g, "operationType", a->op_type);
	cmb_json_kv_int(g, "journal", a->intent_id);
	cmb_json_kv_int(g, "errorCode", a->error_code);
	cmb_json_kv_str(g, "message", a->message);
	cmb_report_kv_time(g, "lastUpdatedDateTime", a->updated);
	yajl_gen_map_close(g);
}


/* The newest actions: what the tenant asked, for which device, and where it is. */
static void json_recent_actions(yajl_gen g, const struct cmb_report *r)
{
	cmb_json_key(g, "recentActions");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < r->n_recent; i++) {
		cmb_report_action_json(g, &r->recent[i]);
	}
	yajl_gen_array_close(g);
	if (!r->policies_known)
		return;
	cmb_json_key(g, "policiesByState");
	yajl_gen_map_open(g);
	for (size_t i = 0; i < r->n_policy_states; i++)
		cmb_json_kv_int(g, r->policies[i].state, r->policies[i].n);
	yajl_gen_map_close(g);
}

static void json_cert(yajl_gen g, const struct cmb_report *r)
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

const char *cmb_report_last_error(const struct cmb_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->cy[i]->error)
			return r->cy[i]->error;
	return cmb_report_daemon_str(r, "lastError");
}

void cmb_report_json(yajl_gen g, const struct cmb_report *r)
{
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "version", CMB_VERSION);
	cmb_json_kv_str(g, "siteCode", r->site_code);
	cmb_json_kv_str(g, "mode", r->staging ? "staging" : "normal");
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
	for (int k = 0; k < CMB_REPORT_N_QUARANTINE_KINDS; k++)
		cmb_json_kv_int(g, cmb_state_quarantine_kind_name((enum cmb_quarantine_kind)k), r->quar_kind[k]);
	yajl_gen_map_close(g);
	json_guard_actions(g, r);
	json_recent_actions(g, r);
	json_cert(g, r);
	cmb_json_kv_str(g, "lastError", cmb_report_last_error(r));
	if (r->last_success)
		cmb_report_kv_time(g, "lastSuccess", r->last_success);
	else
		cmb_json_kv_str(g, "lastSuccess", NULL);
	json_daemon(g, r);
	cmb_json_key(g, "cycles");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < r->n; i++)
		json_cycle(g, r->cy[i]);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

/* ---- text ---- */

void cmb_report_guard_text(const struct cmb_report *r, int change, char *out, size_t cap)
{
	if (change && r->changes_held)
		snprintf(out, cap, "holding %ld changes (and the removals) of cycle %lld: %s; approve with: cmbridge "
			 "sync --allow-changes %ld", r->changes_held, (long long)r->last->id,
			 r->last->error ? r->last->error : "the change guard tripped", r->changes_held);
	else if (change)
		snprintf(out, cap, "holding nothing (limits: %ld changes, %ld%%)", r->change_threshold,
			 r->change_threshold_percent);
	else if (r->held)
		snprintf(out, cap, "holding %ld removals of cycle %lld: %s; approve with: cmbridge sync "
			 "--allow-deletes %ld", r->held, (long long)r->last->id, r->guard, r->held);
	else
		snprintf(out, cap, "holding nothing (limits: %ld removals, %ld%% of attached devices)",
			 r->delete_threshold, r->delete_threshold_percent);
}

static void text_daemon(const struct cmb_report *r, const char *state_dir)
{
	if (!r->daemon) {
		printf("daemon:      not running (no `cmbridge run` answers on %s/%s)\n", state_dir, CMB_CTL_SOCKET);
		return;
	}
	printf("daemon:      running, pid %lld, since %s: %s\n", cmb_report_daemon_int(r, "pid"), cmb_report_daemon_str(r, "started"),
	       cmb_report_daemon_str(r, "activity"));
	printf("next:        delta at %s, full at %s, policies at %s\n", cmb_report_daemon_str(r, "nextDelta"),
	       cmb_report_daemon_str(r, "nextFull"), cmb_report_daemon_str(r, "nextPolicies"));
}

static void text_cycles(const struct cmb_report *r)
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

static void status_text(const struct cmb_report *r, const char *state_dir)
{
	printf("cmbridge %s, site %s, mode %s: %ld devices attached, %ld quarantined\n", CMB_VERSION,
	       r->site_code, r->staging ? "staging" : "normal", r->devices,
	       r->quarantined);
	if (r->no_state)
		printf("state:       %s\n", r->no_state);
	text_daemon(r, state_dir);
	printf("quarantine:  %ld mapping, %ld rejected, %ld duplicate\n", r->quar_kind[0], r->quar_kind[1],
	       r->quar_kind[2]);
	if (r->in_flight) {
		/* Uploads whose reply never came: the tenant may hold them; the next good cycle settles them. */
		printf("in flight:   %ld uploads in flight, outcome unknown, settled by the next cycle:", r->in_flight);
		for (size_t i = 0; i < r->n_in_flight_keys && i < 10; i++)
			printf("%s %s", i ? "," : "", r->in_flight_keys[i]);
		printf("%s\n", r->in_flight > 10 ? ", ..." : "");
	}
	char guard[1024];
	cmb_report_guard_text(r, r->changes_held > 0, guard, sizeof(guard));
	printf("guard:       %s\n", guard);
	printf("actions:     %ld pending, %ld failed, %ld results waiting to be reported\n", r->actions_open,
	       r->actions_failed, r->outbox);
	if (r->policies_known) {
		printf("policies:   ");
		for (size_t i = 0; i < r->n_policy_states; i++)
			printf(" %ld %s%s", r->policies[i].n, r->policies[i].state, i + 1 < r->n_policy_states ? "," : "\n");
	}
	if (r->cert_rc == 0) {
		char na[32];
		cmb_time_iso8601(r->not_after, na);
		printf("certificate: %s expires %s (%lld days)%s\n", r->subject, na, (long long)r->days_left,
		       r->soon ? ": renew it and upload the new one to the app registration" : "");
	}
	const char *err = cmb_report_last_error(r);
	printf("last error:  %s\n", err ? err : "none");
	text_cycles(r);
}

/* ---- --check ---- */

const char *cmb_report_check_name(enum cmb_check_status st)
{
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
	return (unsigned)st < 4 ? names[st] : "UNKNOWN";
}

enum cmb_check_status cmb_report_check(const struct cmb_report *r, int64_t now, char *what, size_t cap,
				       int64_t *age_out)
{
	const struct cmb_cycle *c = r->last;
	int64_t age = c ? now - c->ended : 0;
	enum cmb_check_status st = CMB_CHECK_OK;
	*age_out = age;
	if (r->no_state) {
		st = CMB_CHECK_UNKNOWN;
		snprintf(what, cap, "%s", r->no_state);
	} else if (!c) {
		st = CMB_CHECK_UNKNOWN;
		snprintf(what, cap, "no sync cycle has ended yet");
	} else if (strcmp(c->status, "failed") == 0) {
		st = CMB_CHECK_CRITICAL;
		snprintf(what, cap, "cycle %lld (%s) failed %lld s ago: %s", (long long)c->id, c->kind, (long long)age,
			 c->error ? c->error : "no reason kept");
	} else if (age > r->max_age) {
		st = CMB_CHECK_CRITICAL;
		snprintf(what, cap, "the last cycle (%lld, %s) ended %lld s ago, more than [sync] max_age = %ld s",
			 (long long)c->id, c->status, (long long)age, r->max_age);
	} else if (r->changes_held) {
		st = CMB_CHECK_WARNING;
		snprintf(what, cap, "cycle %lld holds %ld changes (change guard); approve with: cmbridge sync "
			 "--allow-changes %ld", (long long)c->id, r->changes_held, r->changes_held);
	} else if (r->held) {
		st = CMB_CHECK_WARNING;
		snprintf(what, cap, "cycle %lld holds %ld removals: %s; approve with: cmbridge sync --allow-deletes %ld",
			 (long long)c->id, r->held, r->guard, r->held);
	} else {
		snprintf(what, cap, "cycle %lld (%s) %s %lld s ago; %ld devices attached", (long long)c->id, c->kind,
			 c->status, (long long)age, r->devices);
	}
	return st;
}

static int check_line(const struct cmb_report *r)
{
	char what[1024];
	int64_t age;
	enum cmb_check_status st = cmb_report_check(r, cmb_now(), what, sizeof(what), &age);
	printf("CMBRIDGE %s - %s | age=%llds;;%ld devices=%ld quarantined=%ld removals_held=%ld\n",
	       cmb_report_check_name(st), what, (long long)age, r->max_age, r->devices, r->quarantined, r->held);
	return (int)st;
}

int cmb_report_status(const struct cmb_config *cfg, int json, int check)
{
	struct cmb_report *r = NULL;
	int rc = cmb_report_gather(&r, cfg, NULL);
	if (rc < 0) {
		if (check) {
			printf("CMBRIDGE UNKNOWN - %s\n", cmb_error_last());
			rc = CMB_CHECK_UNKNOWN;
		}
	} else if (check) {
		rc = check_line(r);
	} else if (json) {
		yajl_gen g = cmb_json_new(0);
		cmb_report_json(g, r);
		cmb_json_flush(g, stdout);
		fputc('\n', stdout);
		yajl_gen_free(g);
	} else {
		status_text(r, cfg->state_dir);
	}
	cmb_report_free(r);
	return rc;
}
