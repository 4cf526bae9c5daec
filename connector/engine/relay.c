/*
 * relay.c - the remote action relay engine (docs/actions.md).
 *
 * State machine of one action (the actions table):
 *   received  -> (refused)  failed | notSupported
 *   received  -> intent     (journaled with its batch, before the site call)
 *   intent    -> delivered  (the site returned an OperationID, or it was found there)
 *   delivered -> done | failed
 * Each move is one SQLite transaction together with its audit row and its
 * outbox entry. The site is called only between the commit of an intent and
 * the commit of its outcome; an intent found without an outcome (a crash, a
 * lost reply) is reconciled with SMS_ClientOperation before anything else.
 *
 * Must never: call the site before the intent is committed; issue an
 * operation for an intent without first looking for it at the site; deliver
 * an action at or after its expiry; forget a result the tenant has not
 * acknowledged; relay anything in staging mode.
 */
#include "connector/engine/relay.h"
#include "connector/base/backoff.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"
#include "mapping/actions.h"
#include "connector/base/clock.h"
#include "connector/base/stop.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TARGETS 500          /* resource ids per operation */
#define MAX_RESULTS 500          /* results per NotificationResult (wire format) */
#define INBOX_PAGE 5000          /* received actions considered per pass */
#define RECONCILE_SLACK_S 300    /* site clock vs ours when matching an operation's RequestedTime */
#define OFFLINE_SLICE_S 0.1      /* wall time of the offline list's read a pass gives it, after dispatch */

/* A finished operation with mixed results, waiting for an offline list read after it finished. */
struct waiting_op {
	int64_t intent_id;
	int64_t since_ms;            /* when its status was found finished (relay clock) */
	struct cmb_site_operation_status os;
};

struct cmb_relay {
	struct cmb_relay_env env;
	const struct cmb_config *cfg;
	struct cmb_state *st;
	struct cmb_relay_stats stats;
	int staging;
	long last_poll_count;        /* new notifications in the last poll */
	int polled_once;
	int64_t next_due_ms;         /* -1 none */
	/*
	 * The site's offline clients, shared by every mixed outcome (check_status):
	 * the last complete list and when its read began (-1: none yet), and the
	 * read under way, advanced a slice a pass after dispatch (offline_advance)
	 * so new actions never wait behind it.
	 */
	uint32_t *offline;
	size_t n_offline;
	int64_t offline_at_ms;
	int offline_reading;
	int64_t offline_reading_since_ms;
	char *offline_error;         /* why the last read failed; NULL after one completes */
	struct waiting_op *waiting;
	size_t n_waiting;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct cmb_relay *r)
{
	return r->env.clock_ms ? r->env.clock_ms() : wall_ms();
}

static int cmp_rid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Correlation ids (docs/operations.md, "Logs"): every line of one action's
 * handling carries "action-<its id>" (the tenant's GUID; an id of another
 * shape is hashed), every line of one journal row (one site call for
 * several actions) "journal-<row>"; each action's "journaled in row N"
 * line links the two. The pass's own id ("relay") comes back after each.
 */
static void action_cid(const char *id, char out[64])
{
	size_t n = strlen(id);
	if (n > 0 && n <= 48 &&
	    strspn(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") == n) {
		snprintf(out, 64, "action-%s", id);
	} else {
		char h[65];
		cmb_sha256_hex(id, n, h);
		snprintf(out, 64, "action-%.16s", h);
	}
}

/*
 * One line of relay.c's line `at` under cid, then the pass's cid again. It
 * carries the tenant's strings: control characters are shown as '.', never
 * written raw.
 */
static void log_under(enum cmb_log_level level, int at, const char *cid, const char *line)
{
	char saved[64];
	snprintf(saved, sizeof(saved), "%s", cmb_log_get_cid());
	char *shown = cmb_str_printable(line, strlen(line), 4096, 0);
	cmb_log_set_cid(cid);
	cmb_log_at(level, __FILE__, at, "%s", shown);
	cmb_log_set_cid(saved[0] ? saved : NULL);
	free(shown);
}

/* "relay: action ID: ..." under the action's correlation id (log_action()). */
__attribute__((format(printf, 4, 5))) static void log_action_at(int at, enum cmb_log_level level, const char *id,
								const char *fmt, ...)
{
	if (level > cmb_log_get_level())
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	char cid[64];
	action_cid(id, cid);
	char *line = xasprintf("relay: action %s: %s", id, msg);
	log_under(level, at, cid, line);
	free(line);
	free(msg);
}
#define log_action(level, id, ...) log_action_at(__LINE__, level, id, __VA_ARGS__)

/* A line about journal row `row` (the message names it), under the row's correlation id (log_journal()). */
__attribute__((format(printf, 4, 5))) static void log_journal_at(int at, enum cmb_log_level level, int64_t row,
								 const char *fmt, ...)
{
	if (level > cmb_log_get_level())
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	char cid[64];
	snprintf(cid, sizeof(cid), "journal-%" PRId64, row);
	log_under(level, at, cid, msg);
	free(msg);
}
#define log_journal(level, row, ...) log_journal_at(__LINE__, level, row, __VA_ARGS__)

static int stopped(const struct cmb_relay *r)
{
	(void)r;
	return cmb_stop_requested();
}

static void due_at(struct cmb_relay *r, int64_t when_ms)
{
	if (r->next_due_ms < 0 || when_ms < r->next_due_ms)
		r->next_due_ms = when_ms;
}

static int in_allowed(const struct cmb_config *cfg, const char *action)
{
	const char *list = cfg->actions_allowed ? cfg->actions_allowed : "";
	size_t n = strlen(action);
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && strncmp(p, action, n) == 0)
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* "FILE:LINE: [actions] KEY" for messages about a value found after loading. */
static void where(struct cmb_buf *b, const struct cmb_config *cfg, const char *key)
{
	int line = cmb_config_line(cfg, "actions", key);
	const char *path = cfg->path ? cfg->path : "config";
	if (line > 0)
		cmb_buf_printf(b, "%s:%d: [actions] %s", path, line, key);
	else
		cmb_buf_printf(b, "%s: [actions] %s", path, key);
}

/* One error line for a name of allowed that is no action, with the nearest action name when there is one. */
static void unknown_action(struct cmb_buf *b, const struct cmb_config *cfg, const char *name)
{
	size_t n;
	const struct cmb_action_map *table = cmb_map_actions(&n);
	const char *names[32];
	for (size_t i = 0; i < n && i < sizeof(names) / sizeof(names[0]); i++)
		names[i] = table[i].action;
	const char *sug = cmb_suggest(name, names, n < 32 ? n : 32);
	char *shown = cmb_str_printable(name, strlen(name), 80, 1);
	if (b->len)
		cmb_buf_addstr(b, "\n");
	where(b, cfg, "allowed");
	if (sug)
		cmb_buf_printf(b, ": \"%s\" is not an action the connector relays (did you mean %s?)", shown, sug);
	else
		cmb_buf_printf(b, ": \"%s\" is not an action the connector relays (see docs/actions.md)", shown);
	free(shown);
}

/* The warnings of cmb_relay_check_config: a pair of keys half turned. */
static void destructive_warnings(struct cmb_buf *w, const struct cmb_config *cfg)
{
	if (cfg->actions_allow_destructive && !in_allowed(cfg, "retire")) {
		where(w, cfg, "allow_destructive");
		cmb_buf_addstr(w, " = yes has no effect: retire is not in allowed, so it is still refused (add retire "
				  "to allowed to relay it, or remove the line)\n");
	}
	if (!cfg->actions_allow_destructive && in_allowed(cfg, "retire")) {
		where(w, cfg, "allowed");
		cmb_buf_addstr(w, ": retire is refused all the same while allow_destructive = no (set allow_destructive "
				  "= yes to relay it, or take retire out of allowed)\n");
	}
	if (in_allowed(cfg, "wipe")) {
		where(w, cfg, "allowed");
		cmb_buf_printf(w, ": wipe is never relayed: %s (take it out of allowed)\n", cmb_map_action("wipe")->reason);
	}
}

int cmb_relay_check_config(const struct cmb_config *cfg, char **warnings)
{
	struct cmb_buf err = CMB_BUF_INIT(64 * 1024), w = CMB_BUF_INIT(64 * 1024);
	const char *list = cfg->actions_allowed ? cfg->actions_allowed : "";
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *name = xstrndup(p, len);
		if (!cmb_map_action(name))
			unknown_action(&err, cfg, name);
		free(name);
		if (!e)
			break;
		p = e + 1;
	}
	int rc = 0;
	if (err.len) {
		rc = cmb_error_set(CMB_ECONFIG, "%s", err.data);
	} else {
		destructive_warnings(&w, cfg);
		if (w.len)
			w.data[--w.len] = '\0'; /* the last newline */
	}
	cmb_buf_free(&err);
	if (warnings)
		*warnings = w.len ? cmb_buf_detach(&w, NULL) : NULL;
	cmb_buf_free(&w);
	return rc;
}

int cmb_relay_new(struct cmb_relay **out, const struct cmb_relay_env *env)
{
	const struct cmb_config *cfg = env->cfg;
	char *warnings = NULL;
	int rc = cmb_relay_check_config(cfg, &warnings);
	if (rc < 0)
		return rc;
	for (char *line = warnings, *nl; line && *line; line = nl ? nl + 1 : line + strlen(line)) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		cmb_warn("relay: %s", line);
	}
	free(warnings);
	if (!env->site->initiate_operation || !env->site->find_operations || !env->site->operation_status ||
	    !env->site->offline_clients || !env->site->block_clients)
		return cmb_error_set(CMB_ECONFIG, "site adapter %s cannot run operations", env->site->name);
	if (!env->tenant->poll_notifications || !env->tenant->post_results)
		return cmb_error_set(CMB_ECONFIG, "tenant adapter %s has no notification channel", env->tenant->name);
	struct cmb_relay *r = xcalloc(1, sizeof(*r));
	r->env = *env;
	r->cfg = cfg;
	r->st = env->state;
	r->staging = cfg->mode == CMB_MODE_STAGING;
	r->next_due_ms = -1;
	r->offline_at_ms = -1;
	*out = r;
	return 0;
}

void cmb_relay_free(struct cmb_relay *r)
{
	if (!r)
		return;
	free(r->offline);
	free(r->offline_error);
	free(r->waiting);
	free(r);
}

const struct cmb_relay_stats *cmb_relay_get_stats(const struct cmb_relay *r)
{
	return &r->stats;
}

/* ---- moving an action: state, outbox and audit in the caller's transaction ---- */

/* tenant_state: the tenant's actionState to report (outbox) and audit with event. */
static int move(struct cmb_relay *r, const struct cmb_action *a, enum cmb_action_state state, const char *delivery,
		const char *tenant_state, long code, const char *message, enum cmb_audit_event event)
{
	int64_t now = now_ms(r) / 1000;
	int rc = cmb_state_action_update(r->st, a->id, state, delivery, code, message, -1, -1, now);
	if (rc == 0 && !r->staging)
		rc = cmb_state_outbox_put(r->st, a->id, delivery, tenant_state, code, message, now);
	if (rc == 0) {
		struct cmb_audit_entry e = {
			.at = now, .action_id = a->id, .requested_by = a->requested_by, .device_id = a->device_id,
			.key = a->key, .action = a->action, .requested = a->requested, .event = event,
			.outcome = tenant_state, .reason = message,
		};
		rc = cmb_state_audit_add(r->st, &e);
	}
	return rc;
}

/* A final move for a batch of actions, one transaction. */
static int finish_actions(struct cmb_relay *r, struct cmb_action *list, size_t n, const int *ok, const long *codes,
			  char **messages, int64_t intent_id)
{
	int rc = cmb_state_begin(r->st);
	for (size_t i = 0; i < n && rc == 0; i++) {
		int done = ok[i];
		rc = move(r, &list[i], done ? CMB_ACTION_STATE_DONE : CMB_ACTION_STATE_FAILED, "deliveredToOnPremisesServer",
			  done ? "done" : "failed", done ? 0 : codes[i], messages ? messages[i] : NULL,
			  done ? CMB_AUDIT_DONE : CMB_AUDIT_FAILED);
	}
	if (rc == 0 && intent_id > 0)
		rc = cmb_state_intent_complete(r->st, intent_id, now_ms(r) / 1000);
	if (rc == 0)
		rc = cmb_state_commit(r->st);
	if (rc < 0) {
		cmb_state_rollback(r->st);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		const char *m = messages && messages[i] ? messages[i] : NULL;
		if (ok[i])
			r->stats.done++;
		else
			r->stats.failed++;
		if (ok[i])
			log_action(CMB_LOG_INFO, list[i].id, "done (journal row %" PRId64 ")%s%s", intent_id, m ? ": " : "",
				   m ? m : "");
		else
			log_action(CMB_LOG_WARN, list[i].id, "failed, errorCode %ld (journal row %" PRId64 ")%s%s", codes[i],
				   intent_id, m ? ": " : "", m ? m : "");
	}
	return 0;
}

/* ---- the notification channel ---- */

struct ingest {
	struct cmb_relay *r;
	long seen;
	long added;
	int rc;
};

static uint32_t resource_of(const char *key)
{
	const char *colon = key ? strrchr(key, ':') : NULL;
	if (!colon || !colon[1])
		return 0;
	char *end;
	unsigned long v = strtoul(colon + 1, &end, 10);
	return *end || v > UINT32_MAX ? 0 : (uint32_t)v;
}

static int on_notification(void *ctx, const struct cmb_tenant_notification *n)
{
	struct ingest *in = ctx;
	struct cmb_relay *r = in->r;
	in->seen++;
	int64_t now = now_ms(r);
	int64_t requested = now / 1000, expires = 0;
	if (n->requested && cmb_time_parse(n->requested, &requested) < 0)
		requested = now / 1000;
	/* Never after the tenant's own expiry, never after our ttl: the earlier wins. */
	int64_t ttl_end = requested + r->cfg->actions_ttl;
	if (!n->expires || cmb_time_parse(n->expires, &expires) < 0 || expires > ttl_end)
		expires = ttl_end;
	struct cmb_action a = {
		.id = (char *)n->id, .device_id = (char *)(n->device_id ? n->device_id : ""),
		.key = (char *)(n->key ? n->key : ""), .resource_id = resource_of(n->key),
		.action = (char *)(n->action ? n->action : ""),
		.requested_by = (char *)(n->requested_by ? n->requested_by : ""), .requested = requested,
		.expires = expires, .received_ms = now, .state = CMB_ACTION_STATE_RECEIVED, .updated = now / 1000,
	};
	snprintf(a.delivery, sizeof(a.delivery), "deliveredToConnectorService");
	int added = 0;
	int rc = cmb_state_action_add(r->st, &a, &added);
	if (rc < 0)
		return rc;
	if (!added) {
		r->stats.replays++;
		return 0;
	}
	r->stats.received++;
	in->added++;
	if (!r->staging)
		rc = cmb_state_outbox_put(r->st, a.id, a.delivery, "pending", 0, NULL, now / 1000);
	struct cmb_audit_entry e = {
		.at = now / 1000, .action_id = a.id, .requested_by = a.requested_by, .device_id = a.device_id,
		.key = a.key, .action = a.action, .requested = requested, .event = CMB_AUDIT_RECEIVED,
		.outcome = "pending",
	};
	if (rc == 0)
		rc = cmb_state_audit_add(r->st, &e);
	if (rc == 0 && r->staging) {
		r->stats.staged++;
		e.event = CMB_AUDIT_STAGING;
		e.reason = "[connector] mode = staging: kept in the inbox, not relayed";
		rc = cmb_state_audit_add(r->st, &e);
	}
	char until[32];
	cmb_time_iso8601(expires, until);
	log_action(CMB_LOG_INFO, a.id, "\"%s\" for \"%s\" by \"%s\" received, deliverable until %s%s", a.action, a.key,
		   a.requested_by, until, r->staging ? " (staging: kept in the inbox, not relayed)" : "");
	return rc;
}

/* One poll; its notifications, audit rows, outbox entries and the next cursor in one transaction. */
static int poll_channel(struct cmb_relay *r, long wait_s)
{
	char *cursor = NULL, *next = NULL;
	int rc = cmb_state_cursor_get(r->st, &cursor);
	if (rc < 0)
		return rc;
	/*
	 * The poll's callback writes inside a transaction opened first; a long
	 * poll holds it while the tenant waits, which is fine: this process is
	 * the only writer (the state is locked).
	 */
	struct ingest in = { .r = r };
	if ((rc = cmb_state_begin(r->st)) == 0) {
		rc = r->env.tenant->poll_notifications(r->env.notify_st, cursor, wait_s, on_notification, &in, &next);
		if (rc == 0 && strcmp(next, cursor) != 0)
			rc = cmb_state_cursor_set(r->st, next);
		if (rc == 0)
			rc = cmb_state_commit(r->st);
		if (rc < 0)
			cmb_state_rollback(r->st);
	}
	r->stats.polls++;
	if (rc == 0 && in.seen > in.added && strcmp(next, cursor) == 0) {
		/*
		 * Notifications come after the cursor sent: the same ones again under
		 * the same cursor mean the tenant does not move past them, and
		 * whatever comes after them can never be read. Idle must not be
		 * concluded from such a poll (what was new is kept).
		 */
		char *shown = cmb_str_printable(next, strlen(next), 80, 1);
		rc = cmb_error_set(CMB_EPROTO, "notification channel: cursor '%s' came back with %ld notification%s already "
				   "in the inbox: the tenant does not move past them, so the actions after them cannot be "
				   "read (does it ignore the cursor?)", shown, in.seen - in.added,
				   in.seen - in.added == 1 ? "" : "s");
		free(shown);
	}
	if (rc == 0) {
		/* Replays do not count: a channel that repeats itself must not keep --once running. */
		r->last_poll_count = in.added;
		r->polled_once = 1;
	}
	free(cursor);
	free(next);
	return rc;
}

/* ---- authorization ---- */

/*
 * 0 when the action may go to the site; otherwise fills why and the final
 * state it is refused with (failed or notSupported) and returns the errorCode.
 */
static long authorize(struct cmb_relay *r, const struct cmb_action *a, const struct cmb_action_map **map,
		      enum cmb_action_state *refused, char *why, size_t whylen)
{
	const struct cmb_config *cfg = r->cfg;
	*map = cmb_map_action(a->action);
	*refused = CMB_ACTION_STATE_FAILED;
	if (!*map) {
		*refused = CMB_ACTION_STATE_NOT_SUPPORTED;
		snprintf(why, whylen, "\"%s\": %s", a->action, cmb_map_action_unknown_reason());
		return CMB_RELAY_NOT_SUPPORTED;
	}
	if ((*map)->kind == CMB_ACTION_UNSUPPORTED || ((*map)->destructive && !cfg->actions_allow_destructive)) {
		*refused = CMB_ACTION_STATE_NOT_SUPPORTED;
		snprintf(why, whylen, "%s", (*map)->reason);
		return CMB_RELAY_NOT_SUPPORTED;
	}
	if (!in_allowed(cfg, a->action)) {
		snprintf(why, whylen, "%s is not in [actions] allowed of this connector", a->action);
		return CMB_RELAY_NOT_ALLOWED;
	}
	if (now_ms(r) / 1000 >= a->expires) {
		char t[32];
		cmb_time_iso8601(a->expires, t);
		snprintf(why, whylen, "expired at %s before it could be delivered", t);
		return CMB_RELAY_EXPIRED;
	}
	size_t sl = strlen(cfg->site_code);
	char hash[65], *tenant_id = NULL;
	int found = a->resource_id != 0 && strncmp(a->key, cfg->site_code, sl) == 0 && a->key[sl] == ':' &&
		    cmb_state_device_get(r->st, a->key, hash, NULL, &tenant_id) == 0;
	int same = !found || !tenant_id || !*tenant_id || !*a->device_id || strcmp(tenant_id, a->device_id) == 0;
	free(tenant_id);
	if (!found || !same) {
		snprintf(why, whylen, "device \"%s\" (%s) is not attached by this connector (site %s) or not in its scope",
			 a->key, a->device_id, cfg->site_code);
		return CMB_RELAY_OUT_OF_SCOPE;
	}
	return 0;
}

/* ---- sending a batch ---- */

static char *targets_json(const uint32_t *ids, size_t n)
{
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	cmb_buf_add(&b, "[", 1);
	for (size_t i = 0; i < n; i++)
		cmb_buf_printf(&b, "%s%" PRIu32, i ? "," : "", ids[i]);
	cmb_buf_add(&b, "]", 1);
	return cmb_buf_detach(&b, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The client-side idempotency marker: SHA-256 of the batch's action ids, sorted, one a line. */
static void batch_marker(struct cmb_action *const *batch, size_t n, char out[65])
{
	char **ids = xcalloc(n ? n : 1, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = batch[i]->id;
	qsort(ids, n, sizeof(*ids), cmp_str);
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	for (size_t i = 0; i < n; i++) {
		cmb_buf_addstr(&b, ids[i]);
		cmb_buf_add(&b, "\n", 1);
	}
	cmb_sha256_hex(b.data ? b.data : "", b.len, out);
	cmb_buf_free(&b);
	free(ids);
}

static uint32_t *parse_targets(const char *json, size_t *n_out)
{
	size_t n = 0, cap = 16;
	uint32_t *ids = xmalloc(cap * sizeof(*ids));
	for (const char *p = json; *p;) {
		if (*p >= '0' && *p <= '9') {
			char *end;
			unsigned long v = strtoul(p, &end, 10);
			if (n == cap) {
				cap *= 2;
				ids = xrealloc(ids, cap * sizeof(*ids));
			}
			ids[n++] = (uint32_t)v;
			p = end;
		} else {
			p++;
		}
	}
	*n_out = n;
	return ids;
}

/* The site answered for the intent: record it, actions delivered (or final for a block). */
static int record_issued(struct cmb_relay *r, int64_t intent_id, enum cmb_intent_kind kind, int64_t operation_id,
			 enum cmb_intent_outcome outcome)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc = cmb_state_actions_by_intent(r->st, intent_id, &list, &n);
	if (rc < 0)
		return rc;
	int block = kind == CMB_INTENT_BLOCK;
	if ((rc = cmb_state_begin(r->st)) == 0) {
		rc = cmb_state_intent_outcome(r->st, intent_id, operation_id, outcome);
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (list[i].state != CMB_ACTION_STATE_INTENT)
				continue;
			if (block)
				rc = move(r, &list[i], CMB_ACTION_STATE_DONE, "deliveredToOnPremisesServer", "done", 0,
					  "the ConfigMgr client is blocked; the device leaves the tenant at the next sync",
					  CMB_AUDIT_DONE);
			else
				rc = move(r, &list[i], CMB_ACTION_STATE_DELIVERED, "deliveredToOnPremisesServer", "active",
					  0, NULL, CMB_AUDIT_DELIVERED);
		}
		if (rc == 0 && block)
			rc = cmb_state_intent_complete(r->st, intent_id, now_ms(r) / 1000);
		if (rc == 0)
			rc = cmb_state_commit(r->st);
		if (rc < 0)
			cmb_state_rollback(r->st);
	}
	if (rc == 0 && block)
		r->stats.done += (long)n;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (list[i].state != CMB_ACTION_STATE_INTENT)
			continue;
		if (block)
			log_action(CMB_LOG_INFO, list[i].id, "done: the ConfigMgr client is blocked (journal row %" PRId64 ")",
				   intent_id);
		else
			log_action(CMB_LOG_INFO, list[i].id, "delivered to the site: OperationID %" PRId64 " (journal row %"
				   PRId64 ")", operation_id, intent_id);
	}
	cmb_state_actions_free(list, n);
	return rc;
}

/* The site refused the intent, it can no longer be sent, or its fate is unknown: its actions fail. */
static int record_failed(struct cmb_relay *r, int64_t intent_id, enum cmb_intent_outcome outcome, long code,
			 const char *why)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc = cmb_state_actions_by_intent(r->st, intent_id, &list, &n);
	if (rc < 0)
		return rc;
	if ((rc = cmb_state_begin(r->st)) == 0) {
		rc = cmb_state_intent_outcome(r->st, intent_id, -1, outcome);
		for (size_t i = 0; i < n && rc == 0; i++)
			if (list[i].state == CMB_ACTION_STATE_INTENT)
				rc = move(r, &list[i], CMB_ACTION_STATE_FAILED, "deliveredToConnectorService", "failed", code,
					  why, CMB_AUDIT_FAILED);
		if (rc == 0)
			rc = cmb_state_intent_complete(r->st, intent_id, now_ms(r) / 1000);
		if (rc == 0)
			rc = cmb_state_commit(r->st);
		if (rc < 0)
			cmb_state_rollback(r->st);
	}
	if (rc == 0)
		r->stats.failed += (long)n;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (list[i].state == CMB_ACTION_STATE_INTENT)
			log_action(CMB_LOG_WARN, list[i].id, "failed, errorCode %ld (journal row %" PRId64 "): %s", code,
				   intent_id, why);
	cmb_state_actions_free(list, n);
	return rc;
}

/* Calls the site for a journaled intent. 0 when its outcome is recorded; < 0 leaves it unknown. */
static int issue(struct cmb_relay *r, int64_t intent_id, enum cmb_intent_kind kind, int op_type,
		 const uint32_t *ids, size_t n)
{
	int block = kind == CMB_INTENT_BLOCK;
	int64_t opid = -1;
	int rc = block ? r->env.site->block_clients(r->env.ops_st, ids, n)
		       : r->env.site->initiate_operation(r->env.ops_st, op_type, r->cfg->actions_target_collection, ids,
							 n, &opid);
	if (rc == CMB_EHTTP) {
		/* The site answered and said no: nothing was created. */
		char *why = xasprintf("the site refused the operation: %s", cmb_error_last());
		log_journal(CMB_LOG_WARN, intent_id, "relay: journal row %" PRId64 ": %s", intent_id, why);
		rc = record_failed(r, intent_id, CMB_OUTCOME_REFUSED, CMB_RELAY_SITE_REFUSED, why);
		free(why);
		return rc;
	}
	if (rc < 0) {
		cmb_error_wrap(rc, "relay: journal row %" PRId64 " (%s %s, Type %d, %zu targets) left to reconcile",
			       intent_id, cmb_state_intent_kind_name(kind), block ? "BlockClients" : cmb_map_operation_name(op_type),
			       op_type, n);
		return rc;
	}
	if (block)
		r->stats.blocks++;
	else {
		r->stats.operations++;
		r->stats.targets += (long)n;
	}
	if (block)
		log_journal(CMB_LOG_INFO, intent_id, "relay: journal row %" PRId64 ": BlockClients for %zu devices", intent_id,
			    n);
	else
		log_journal(CMB_LOG_INFO, intent_id,
			    "relay: journal row %" PRId64 ": %s (Type %d) for %zu devices, OperationID %" PRId64, intent_id,
			    cmb_map_operation_name(op_type), op_type, n, opid);
	return record_issued(r, intent_id, kind, opid, block ? CMB_OUTCOME_BLOCKED : CMB_OUTCOME_ISSUED);
}

/* Journals one batch (intent committed), then sends it. */
static int send_batch(struct cmb_relay *r, const struct cmb_action_map *map, struct cmb_action **batch, size_t n)
{
	enum cmb_intent_kind kind = map->kind == CMB_ACTION_BLOCK ? CMB_INTENT_BLOCK : CMB_INTENT_OPERATION;
	uint32_t *ids = xcalloc(n, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = batch[i]->resource_id;
	qsort(ids, n, sizeof(*ids), cmp_u32);
	char *targets = targets_json(ids, n);
	char marker[65];
	batch_marker(batch, n, marker);
	int64_t intent_id = 0;
	int rc = cmb_state_begin(r->st);
	if (rc == 0)
		rc = cmb_state_intent_add(r->st, kind, map->client_type, targets, marker, now_ms(r) / 1000, &intent_id);
	/* Not reported nor audited: to the tenant it is still in the connector service. */
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cmb_state_action_update(r->st, batch[i]->id, CMB_ACTION_STATE_INTENT, "deliveredToConnectorService",
					     0, NULL, intent_id, map->client_type, now_ms(r) / 1000);
	if (rc == 0)
		rc = cmb_state_commit(r->st);
	if (rc < 0) {
		cmb_state_rollback(r->st);
	} else {
		for (size_t i = 0; i < n; i++)
			log_action(CMB_LOG_INFO, batch[i]->id, "journaled in row %" PRId64 ": %s for %zu device%s", intent_id,
				   map->operation, n, n == 1 ? "" : "s");
		/* The intent is durable: from here a crash leaves something to reconcile, never to repeat. */
		rc = issue(r, intent_id, kind, map->client_type, ids, n);
	}
	free(targets);
	free(ids);
	return rc;
}

/* ---- reconciliation ---- */

static int same_targets(const struct cmb_site_operation *op, const uint32_t *ids, size_t n)
{
	if (op->n_targets != n)
		return 0;
	uint32_t *t = xmalloc((n ? n : 1) * sizeof(*t));
	memcpy(t, op->targets, n * sizeof(*t));
	qsort(t, n, sizeof(*t), cmp_u32);
	int same = memcmp(t, ids, n * sizeof(*t)) == 0;
	free(t);
	return same;
}

/* Ends every action of an intent failed with code: the site cannot say whether it got it. */
static int record_unknown(struct cmb_relay *r, const struct cmb_intent *it, const char *why)
{
	log_journal(CMB_LOG_WARN, it->id, "relay: journal row %" PRId64 ": %s", it->id, why);
	r->stats.unknown++;
	return record_failed(r, it->id, CMB_OUTCOME_UNKNOWN, CMB_RELAY_DELIVERY_UNKNOWN, why);
}

/*
 * An intent without an outcome: the call may or may not have reached the
 * site. Look for it among the site's operations of the same Type on the
 * same collection, requested in the window around the intent by this
 * connector's account, not already claimed by another journal row:
 *  - one whose TargetResourceIDs are exactly the intent's is adopted;
 *  - on a site that does not list TargetResourceIDs, a single unclaimed
 *    candidate is adopted; several cannot be told apart, and the actions
 *    end failed with "delivery unknown" rather than be sent twice;
 *  - none at all: the site never created it, and it is sent (if still in
 *    time).
 * When the site's list cannot be read for good (a final error), nothing is
 * sent blind either: "delivery unknown" again. A transient failure leaves
 * the intent for the next pass.
 */
static int reconcile(struct cmb_relay *r, const struct cmb_intent *it)
{
	size_t n = 0;
	uint32_t *ids = parse_targets(it->targets, &n);
	int rc = 0;
	if (it->kind == CMB_INTENT_BLOCK) {
		/* BlockClients is idempotent: sending it again is the reconciliation. */
		r->stats.reissued++;
		rc = issue(r, it->id, it->kind, it->op_type, ids, n);
		free(ids);
		return rc;
	}
	int64_t now = now_ms(r) / 1000;
	const struct cmb_site_operation_query q = {
		.type = it->op_type, .collection_id = r->cfg->actions_target_collection,
		.since = it->intended - RECONCILE_SLACK_S, .until = now + RECONCILE_SLACK_S,
	};
	struct cmb_site_operation *ops = NULL;
	size_t n_ops = 0;
	rc = r->env.site->find_operations(r->env.ops_st, &q, &ops, &n_ops);
	if (rc < 0) {
		free(ids);
		if (cmb_error_retry_class(rc) != CMB_RETRY_NEVER || rc == CMB_EAUTH)
			return cmb_error_wrap(rc, "relay: reconciling journal row %" PRId64, it->id);
		char *why = xasprintf("delivery unknown: the site's operations cannot be read (%s); not sent again",
				      cmb_error_last());
		rc = record_unknown(r, it, why);
		free(why);
		return rc;
	}
	int64_t exact = -1, untargeted = -1;
	long n_untargeted = 0;
	for (size_t i = 0; i < n_ops && rc == 0; i++) {
		int known = 0;
		if ((rc = cmb_state_intent_operation_known(r->st, ops[i].id, &known)) < 0 || known)
			continue;
		if (ops[i].has_targets) {
			if (same_targets(&ops[i], ids, n) && (exact < 0 || ops[i].id < exact))
				exact = ops[i].id;
		} else {
			n_untargeted++;
			untargeted = ops[i].id;
		}
	}
	cmb_site_operations_free(ops, n_ops);
	if (rc < 0) {
		free(ids);
		return rc;
	}
	if (exact >= 0 || n_untargeted == 1) {
		int64_t found = exact >= 0 ? exact : untargeted;
		log_journal(CMB_LOG_INFO, it->id,
			    "relay: journal row %" PRId64 " was issued before the interruption: adopting OperationID %" PRId64
			    "%s", it->id, found, exact >= 0 ? "" : " (matched by type, collection, account and time: the "
								  "site does not list TargetResourceIDs)");
		r->stats.adopted++;
		rc = record_issued(r, it->id, it->kind, found, CMB_OUTCOME_ADOPTED);
	} else if (n_untargeted > 1) {
		char *why = xasprintf("delivery unknown: %ld %s operations (Type %d) by this account in the window, and "
				      "the site does not list their targets; not sent again", n_untargeted,
				      cmb_map_operation_name(it->op_type), it->op_type);
		rc = record_unknown(r, it, why);
		free(why);
	} else {
		/* Not at the site: send it now, unless one of its actions expired meanwhile (never late). */
		struct cmb_action *list = NULL;
		size_t na = 0;
		if ((rc = cmb_state_actions_by_intent(r->st, it->id, &list, &na)) == 0) {
			int expired = 0;
			for (size_t i = 0; i < na; i++)
				if (now >= list[i].expires)
					expired = 1;
			cmb_state_actions_free(list, na);
			if (expired) {
				rc = record_failed(r, it->id, CMB_OUTCOME_EXPIRED, CMB_RELAY_EXPIRED,
						    "expired before the interrupted delivery could be completed");
			} else {
				log_journal(CMB_LOG_INFO, it->id, "relay: journal row %" PRId64 " is not at the site: sending it",
					    it->id);
				r->stats.reissued++;
				rc = issue(r, it->id, it->kind, it->op_type, ids, n);
			}
		}
	}
	free(ids);
	return rc;
}

/* ---- outcomes ---- */

static int fail_all(struct cmb_relay *r, const struct cmb_intent *it, long code, const char *why)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc = cmb_state_actions_by_intent(r->st, it->id, &list, &n);
	if (rc < 0)
		return rc;
	int *ok = xcalloc(n ? n : 1, sizeof(int));
	long *codes = xcalloc(n ? n : 1, sizeof(long));
	char **msgs = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		codes[i] = code;
		msgs[i] = (char *)why;
	}
	rc = finish_actions(r, list, n, ok, codes, msgs, it->id);
	free(ok);
	free(codes);
	free(msgs);
	cmb_state_actions_free(list, n);
	return rc;
}

/* ---- the offline list: one read shared by every mixed outcome ---- */

static struct waiting_op *waiting_find(struct cmb_relay *r, int64_t intent_id)
{
	for (size_t i = 0; i < r->n_waiting; i++)
		if (r->waiting[i].intent_id == intent_id)
			return &r->waiting[i];
	return NULL;
}

static void waiting_drop(struct cmb_relay *r, int64_t intent_id)
{
	struct waiting_op *w = waiting_find(r, intent_id);
	if (w)
		*w = r->waiting[--r->n_waiting];
}

/* A read of the offline list is wanted: one begins (after this pass's dispatch) unless one is under way. */
static void offline_want(struct cmb_relay *r, int64_t now)
{
	if (!r->offline_reading) {
		r->offline_reading = 1;
		r->offline_reading_since_ms = now;
	}
}

/* "OperationID N: a of b clients completed, ...": what the site's summary of it says. */
static void status_summary(const struct cmb_intent *it, const struct cmb_site_operation_status *os, char out[200])
{
	snprintf(out, 200, "OperationID %" PRId64 ": %ld of %ld clients completed, %ld failed, %ld offline%s",
		 it->operation_id, os->completed, os->total, os->failed, os->offline,
		 os->expired ? ", operation expired" : "");
}

/* The last complete list, when its read began no earlier than `every` before since_ms. */
static int offline_usable(const struct cmb_relay *r, int64_t since_ms)
{
	return r->offline_at_ms >= 0 && r->offline_at_ms >= since_ms - r->cfg->actions_status_poll_interval * 1000;
}

/*
 * One slice of the offline list's read (OFFLINE_SLICE_S of wall time, at
 * least a page), when one is under way. On completion the list replaces the
 * last one and the waiting outcomes are due at once; on error the read is
 * dropped (the next pass starts another for whoever still waits).
 */
static int offline_advance(struct cmb_relay *r)
{
	if (!r->offline_reading)
		return 0;
	double until = cmb_now_mono() + OFFLINE_SLICE_S;
	int rc;
	do {
		uint32_t *ids = NULL;
		size_t n = 0;
		if ((rc = r->env.site->offline_clients(r->env.ops_st, &ids, &n)) == 1) {
			free(r->offline);
			r->offline = ids;
			r->n_offline = n;
			r->offline_at_ms = r->offline_reading_since_ms;
			r->offline_reading = 0;
			free(r->offline_error);
			r->offline_error = NULL;
			cmb_debug("relay: %zu clients offline at the site", n);
			due_at(r, now_ms(r));
			return 0;
		}
	} while (rc == 0 && cmb_now_mono() < until && !stopped(r));
	if (rc < 0) {
		r->offline_reading = 0;
		free(r->offline_error);
		r->offline_error = xstrdup(cmb_error_last());
		return cmb_error_wrap(rc, "relay: per-device status of %zu finished operation%s", r->n_waiting,
				      r->n_waiting == 1 ? "" : "s");
	}
	due_at(r, now_ms(r));
	return 0;
}

/* Settles the actions of a finished operation (a mixed outcome against the shared offline list). */
static int settle_finished(struct cmb_relay *r, const struct cmb_intent *it, const struct cmb_site_operation_status *os)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc;
	if ((rc = cmb_state_actions_by_intent(r->st, it->id, &list, &n)) < 0)
		return rc;
	int *ok = xcalloc(n ? n : 1, sizeof(int));
	long *codes = xcalloc(n ? n : 1, sizeof(long));
	char **msgs = xcalloc(n ? n : 1, sizeof(char *));
	char summary[200];
	status_summary(it, os, summary);
	if (os->completed >= os->total && os->total > 0) {
		for (size_t i = 0; i < n; i++)
			ok[i] = 1;
	} else if (os->completed == 0) {
		/* All failed: every target failed (offline ones included). */
		long code = os->offline >= os->total ? CMB_RELAY_CLIENT_OFFLINE
			    : os->expired && os->failed == 0 ? CMB_RELAY_OPERATION_EXPIRED : CMB_RELAY_CLIENT_FAILED;
		for (size_t i = 0; i < n; i++) {
			codes[i] = code;
			msgs[i] = xstrdup(summary);
		}
	} else {
		/*
		 * Mixed: the summary only counts. As the wire format says, a device
		 * offline now (SMS_CN_ClientStatus, the shared list) is reported failed
		 * (client offline) and the others done; when the site also counted
		 * failures among online clients it does not say which, and the done
		 * results carry the counts.
		 */
		for (size_t i = 0; i < n; i++) {
			uint32_t rid = list[i].resource_id;
			/* Not listed offline is online (a target without a ResourceID never is). */
			int online = rid != 0 && !bsearch(&rid, r->offline, r->n_offline, sizeof(*r->offline), cmp_rid);
			if (!online) {
				codes[i] = CMB_RELAY_CLIENT_OFFLINE;
				msgs[i] = xasprintf("client offline; %s", summary);
			} else {
				ok[i] = 1;
				if (os->failed)
					msgs[i] = xasprintf("the site counted failed clients without naming them; %s", summary);
			}
		}
	}
	rc = finish_actions(r, list, n, ok, codes, msgs, it->id);
	for (size_t i = 0; i < n; i++)
		free(msgs[i]);
	free(ok);
	free(codes);
	free(msgs);
	cmb_state_actions_free(list, n);
	return rc;
}

/*
 * Reads an issued operation's status when due; settles its actions once it
 * is finished. A mixed outcome needs the offline list read after it
 * finished (at most status_poll_interval before): it waits for one without
 * holding up the pass, the read advancing after dispatch (offline_advance).
 */
static int check_status(struct cmb_relay *r, const struct cmb_intent *it)
{
	int64_t now = now_ms(r), now_s = now / 1000;
	long every = r->cfg->actions_status_poll_interval;
	struct waiting_op *w = waiting_find(r, it->id);
	if (w) {
		if (!offline_usable(r, w->since_ms) && r->offline_error &&
		    now - w->since_ms >= r->cfg->actions_status_timeout * 1000) {
			/* The list keeps failing: which clients were offline is not to be had; say so and why. */
			char summary[200];
			status_summary(it, &w->os, summary);
			char *why = xasprintf("the site's offline clients could not be read within %ld s of the outcome (%s); %s",
					      r->cfg->actions_status_timeout, r->offline_error, summary);
			waiting_drop(r, it->id);
			int rc = fail_all(r, it, CMB_RELAY_TIMEOUT, why);
			free(why);
			return rc;
		}
		if (!offline_usable(r, w->since_ms)) {
			offline_want(r, now);
			return 0;
		}
		struct cmb_site_operation_status os = w->os;
		waiting_drop(r, it->id);
		return settle_finished(r, it, &os);
	}
	if (it->last_polled && now_s - it->last_polled < every) {
		due_at(r, (it->last_polled + every) * 1000);
		return 0;
	}
	struct cmb_site_operation_status os;
	int rc = r->env.site->operation_status(r->env.ops_st, it->operation_id, &os);
	if (rc < 0 && rc != CMB_ENOTFOUND)
		return cmb_error_wrap(rc, "relay: status of OperationID %" PRId64, it->operation_id);
	int finished = rc == 0 && ((os.total > 0 && os.completed + os.failed + os.offline >= os.total) || os.expired);
	if (!finished) {
		if (now_s - it->intended >= r->cfg->actions_status_timeout) {
			char why[160];
			snprintf(why, sizeof(why), "no outcome from the site within %ld s (OperationID %" PRId64 ")",
				 r->cfg->actions_status_timeout, it->operation_id);
			return fail_all(r, it, CMB_RELAY_TIMEOUT, why);
		}
		if ((rc = cmb_state_intent_polled(r->st, it->id, now_s)) < 0)
			return rc;
		due_at(r, (now_s + every) * 1000);
		return 0;
	}
	int mixed = !(os.completed >= os.total && os.total > 0) && os.completed != 0;
	if (mixed && !offline_usable(r, now)) {
		r->waiting = xrealloc(r->waiting, (r->n_waiting + 1) * sizeof(*r->waiting));
		r->waiting[r->n_waiting++] = (struct waiting_op){ .intent_id = it->id, .since_ms = now, .os = os };
		offline_want(r, now);
		return cmb_state_intent_polled(r->st, it->id, now_s);
	}
	return settle_finished(r, it, &os);
}

/* Every open journal row: reconcile unknown outcomes, read statuses. Stops at the first site failure. */
static int settle_intents(struct cmb_relay *r)
{
	struct cmb_intent *its = NULL;
	size_t n = 0;
	int rc = cmb_state_intents_open(r->st, &its, &n);
	for (size_t i = 0; i < n && rc == 0 && !stopped(r); i++) {
		if (its[i].outcome == CMB_OUTCOME_NONE)
			rc = reconcile(r, &its[i]);
		else if (its[i].kind == CMB_INTENT_OPERATION && its[i].operation_id >= 0)
			rc = check_status(r, &its[i]);
	}
	cmb_state_intents_free(its, n);
	return rc;
}

/* ---- the inbox: authorize, batch, send ---- */

struct group {
	const struct cmb_action_map *map;
	struct cmb_action **items;
	size_t n;
	int64_t oldest_ms;
};

static int dispatch(struct cmb_relay *r)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc = cmb_state_actions_by_state(r->st, CMB_ACTION_STATE_RECEIVED, INBOX_PAGE, &list, &n);
	if (rc < 0)
		return rc;
	struct group groups[16];
	size_t n_groups = 0;
	int64_t now = now_ms(r);
	/* Refusals first, in one transaction. */
	if ((rc = cmb_state_begin(r->st)) < 0)
		goto done;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct cmb_action_map *map;
		enum cmb_action_state refused;
		char why[512];
		long code = authorize(r, &list[i], &map, &refused, why, sizeof(why));
		if (code) {
			log_action(CMB_LOG_INFO, list[i].id, "\"%s\" for \"%s\" by \"%s\" refused: %s", list[i].action,
				   list[i].key, list[i].requested_by, why);
			/* failed and notSupported are spelled the same in the tenant's actionState. */
			rc = move(r, &list[i], refused, "deliveredToConnectorService", cmb_state_action_state_name(refused),
				  code, why, CMB_AUDIT_REFUSED);
			r->stats.refused++;
			continue;
		}
		size_t g = 0;
		/* By what goes to the site: refreshMachinePolicy and syncDevice share Type 8. */
		while (g < n_groups && (groups[g].map->kind != map->kind || groups[g].map->client_type != map->client_type))
			g++;
		if (g == n_groups) {
			if (n_groups == sizeof(groups) / sizeof(groups[0]))
				continue; /* more kinds than the table has: cannot happen; left for the next pass */
			groups[n_groups++] = (struct group){ .map = map, .items = xcalloc(n, sizeof(struct cmb_action *)),
							     .oldest_ms = list[i].received_ms };
		}
		groups[g].items[groups[g].n++] = &list[i];
	}
	if (rc == 0)
		rc = cmb_state_commit(r->st);
	if (rc < 0) {
		cmb_state_rollback(r->st);
		goto done;
	}
	int64_t window = r->cfg->actions_batch_window * 1000;
	for (size_t g = 0; g < n_groups && rc == 0 && !stopped(r); g++) {
		struct group *gr = &groups[g];
		if (now - gr->oldest_ms < window && gr->n < MAX_TARGETS) {
			due_at(r, gr->oldest_ms + window);
			continue;
		}
		/* Operations of at most MAX_TARGETS distinct devices; a second action for a device goes in the next. */
		struct cmb_action **batch = xcalloc(gr->n, sizeof(*batch));
		uint32_t *seen = xcalloc(gr->n, sizeof(*seen));
		size_t left = gr->n;
		while (left > 0 && rc == 0 && !stopped(r)) {
			size_t nb = 0;
			for (size_t i = 0; i < gr->n && nb < MAX_TARGETS; i++) {
				if (!gr->items[i])
					continue;
				int dup = 0;
				for (size_t k = 0; k < nb && !dup; k++)
					dup = seen[k] == gr->items[i]->resource_id;
				if (dup)
					continue;
				seen[nb] = gr->items[i]->resource_id;
				batch[nb++] = gr->items[i];
				gr->items[i] = NULL;
			}
			left -= nb;
			rc = send_batch(r, gr->map, batch, nb);
		}
		free(seen);
		free(batch);
	}
done:
	for (size_t g = 0; g < n_groups; g++)
		free(groups[g].items);
	cmb_state_actions_free(list, n);
	return rc;
}

/* ---- the outbox ---- */

static int report(struct cmb_relay *r)
{
	for (;;) {
		struct cmb_outbox_entry *list = NULL;
		size_t n = 0;
		int rc = cmb_state_outbox_list(r->st, MAX_RESULTS, &list, &n);
		if (rc < 0 || n == 0) {
			cmb_state_outbox_free(list, n);
			return rc;
		}
		struct cmb_tenant_action_result *res = xcalloc(n, sizeof(*res));
		char (*times)[32] = xcalloc(n, sizeof(*times));
		int *acked = xcalloc(n, sizeof(int));
		for (size_t i = 0; i < n; i++) {
			cmb_time_iso8601(list[i].updated, times[i]);
			res[i] = (struct cmb_tenant_action_result){
				.id = list[i].action_id, .delivery = list[i].delivery, .state = list[i].state,
				.error_code = list[i].error_code, .updated = times[i], .message = list[i].message,
			};
		}
		rc = r->env.tenant->post_results(r->env.notify_st, res, n, acked);
		size_t gone = 0;
		if (rc == 0 && (rc = cmb_state_begin(r->st)) == 0) {
			for (size_t i = 0; i < n && rc == 0; i++)
				if (acked[i]) {
					rc = cmb_state_outbox_delete(r->st, list[i].action_id, list[i].delivery, list[i].state);
					gone++;
					log_action(CMB_LOG_DEBUG, list[i].action_id, "the tenant took its result %s / %s",
						   list[i].delivery, list[i].state);
				}
			if (rc == 0)
				rc = cmb_state_commit(r->st);
			if (rc < 0)
				cmb_state_rollback(r->st);
			else
				r->stats.reported += (long)gone;
		}
		free(res);
		free(times);
		free(acked);
		cmb_state_outbox_free(list, n);
		if (rc < 0)
			return cmb_error_wrap(rc, "relay: reporting results");
		if (gone == 0 || n < MAX_RESULTS)
			return 0; /* nothing acknowledged: try again next pass, not in a loop */
	}
}

/* ---- one pass ---- */

int cmb_relay_step(struct cmb_relay *r, long wait_s)
{
	int rc = 0, first = 0;
	r->next_due_ms = -1;
	if (!r->staging) {
		/* Intents first: nothing new goes out while an earlier call's fate is unknown. */
		if ((rc = settle_intents(r)) < 0)
			goto out;
		if ((rc = report(r)) < 0 && !first)
			first = rc;
		rc = 0;
		if (r->offline_reading)
			wait_s = 0; /* the read goes on after dispatch: poll, do not wait */
		if (r->next_due_ms >= 0) {
			int64_t until = (r->next_due_ms - now_ms(r) + 999) / 1000;
			if (until < wait_s)
				wait_s = until < 0 ? 0 : until;
		}
		long open = cmb_state_actions_open(r->st);
		struct cmb_action *recv = NULL;
		size_t nrecv = 0;
		if (cmb_state_actions_by_state(r->st, CMB_ACTION_STATE_RECEIVED, 1, &recv, &nrecv) == 0 && nrecv) {
			int64_t until = (recv[0].received_ms + r->cfg->actions_batch_window * 1000 - now_ms(r) + 999) / 1000;
			if (until < wait_s)
				wait_s = until < 0 ? 0 : until;
		}
		cmb_state_actions_free(recv, nrecv);
		if (open < 0) {
			rc = (int)open;
			goto out;
		}
	}
	if (stopped(r))
		goto out;
	if ((rc = poll_channel(r, wait_s)) < 0 && !first)
		first = rc;
	rc = 0;
	if (r->staging || stopped(r))
		goto out;
	r->next_due_ms = -1;
	if ((rc = dispatch(r)) < 0)
		goto out;
	/* Statuses of what just went out are read next pass; results are reported now. */
	if ((rc = report(r)) < 0)
		goto out;
	/* New actions are out: the offline list's read may have its slice. */
	rc = offline_advance(r);
out:
	return rc < 0 ? rc : first;
}

int64_t cmb_relay_next_due_ms(struct cmb_relay *r)
{
	if (r->next_due_ms < 0)
		return -1;
	int64_t d = r->next_due_ms - now_ms(r);
	return d < 0 ? 0 : d;
}

int cmb_relay_idle(struct cmb_relay *r)
{
	if (r->staging)
		return r->polled_once && r->last_poll_count == 0;
	long open = cmb_state_actions_open(r->st);
	long out = cmb_state_outbox_count(r->st);
	return r->polled_once && r->last_poll_count == 0 && open == 0 && out == 0;
}

/* --once gives up: the last error, with what is left undone (the state keeps it for the next run). */
static int give_up_once(struct cmb_relay *r, int rc, int errors, int in_a_row)
{
	long open = cmb_state_actions_open(r->st), out = cmb_state_outbox_count(r->st);
	char *last = xstrdup(cmb_error_last());
	cmb_error_set(rc, "relay --once gave up after %d failed passes%s; pending: %ld action%s short of final, %ld "
		      "result%s not reported to the tenant (kept in the state for the next run); last error: %s", errors,
		      in_a_row ? " in a row" : "", open, open == 1 ? "" : "s", out, out == 1 ? "" : "s", last);
	free(last);
	return rc;
}

int cmb_relay_run(struct cmb_relay *r, int once, int max_errors)
{
	int errors = 0, failed = 0, rc = 0;
	while (!stopped(r)) {
		rc = cmb_relay_step(r, once ? 0 : r->cfg->actions_poll_wait);
		if (rc < 0 && stopped(r))
			break; /* a transfer ended by the stop request is not an error */
		if (rc < 0) {
			errors++;
			failed++;
			cmb_error_log("relay: %s", cmb_error_last());
			/* Bounded: max_errors failures in a row, or three times that in all (a server failing on and off). */
			if (once && max_errors > 0 && (errors >= max_errors || failed >= 3 * max_errors))
				return give_up_once(r, rc, errors >= max_errors ? errors : failed, errors >= max_errors);
			/* A failed step is retried: the journal keeps what is unknown. Back off a little. */
			cmb_retry_sleep(cmb_backoff_delay(errors, CMB_RELAY_BACKOFF_BASE_S, CMB_RELAY_BACKOFF_MAX_S));
			continue;
		}
		errors = 0;
		if (once && cmb_relay_idle(r))
			return 0;
		if (once) {
			/* No long poll to wait in: sleep until local work is due (at most 1 s, to poll again). */
			int64_t d = cmb_relay_next_due_ms(r);
			double s = d < 0 || d > 1000 ? 1.0 : (double)d / 1000.0;
			if (r->last_poll_count == 0 && s > 0)
				cmb_retry_sleep(s);
		}
	}
	return stopped(r) ? CMB_ECANCELED : rc;
}
