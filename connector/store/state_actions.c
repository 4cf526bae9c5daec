/*
 * state_actions.c - what the action relay keeps (schema v2, docs/actions.md):
 * the inbox of remote actions and their states, the journal of site calls,
 * the outbox of results not yet acknowledged by the tenant, the
 * append-only audit trail and the notification channel's cursor.
 *
 * It only stores and answers: the state machine itself (which move is
 * allowed when, what to journal before a site call) is the relay's
 * (connector/engine/relay.c). It must never touch the sync engine's tables,
 * never open its own transactions (the relay commits each move with its
 * audit row and outbox entry), never update or delete an audit row, and
 * never read a stored state, kind, outcome or event it does not know as
 * another one.
 */
#include "connector/store/state_db.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ACT_COLS "id, device_id, key, resource_id, action, requested_by, requested, expires, received_ms, state, " \
		 "delivery, op_type, intent_id, error_code, message, updated"
#define INTENT_COLS "id, kind, op_type, targets, marker, intended, operation_id, outcome, last_polled, completed"

const char *const cmb_sdb_actions_sql[S_COUNT] = {
	[S_ACT_ADD] = "INSERT INTO actions(" ACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		      "?14, ?15, ?16) ON CONFLICT(id) DO NOTHING",
	[S_ACT_GET] = "SELECT " ACT_COLS " FROM actions WHERE id = ?1",
	[S_ACT_UPDATE] = "UPDATE actions SET state = ?2, delivery = ?3, error_code = ?4, message = ?5, "
			 "intent_id = CASE WHEN ?6 >= 0 THEN ?6 ELSE intent_id END, "
			 "op_type = CASE WHEN ?7 >= 0 THEN ?7 ELSE op_type END, updated = ?8 WHERE id = ?1",
	[S_ACT_BY_STATE] = "SELECT " ACT_COLS " FROM actions WHERE state = ?1 ORDER BY received_ms, id LIMIT ?2",
	[S_ACT_BY_INTENT] = "SELECT " ACT_COLS " FROM actions WHERE intent_id = ?1 ORDER BY resource_id, id",
	/* ?1.. the final states */
	[S_ACT_OPEN] = "SELECT count(*) FROM actions WHERE state NOT IN (?1, ?2, ?3)",
	[S_ACT_RECENT] = "SELECT " ACT_COLS " FROM actions ORDER BY received_ms DESC, id LIMIT ?1",
	[S_ACT_COUNT_STATE] = "SELECT count(*) FROM actions WHERE state = ?1",
	[S_INTENT_ADD] = "INSERT INTO journal(kind, op_type, targets, marker, intended) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_INTENT_OUTCOME] = "UPDATE journal SET operation_id = ?2, outcome = ?3 WHERE id = ?1",
	[S_INTENT_POLLED] = "UPDATE journal SET last_polled = ?2 WHERE id = ?1",
	[S_INTENT_COMPLETE] = "UPDATE journal SET completed = ?2 WHERE id = ?1",
	[S_INTENT_OPEN] = "SELECT " INTENT_COLS " FROM journal WHERE completed = 0 ORDER BY id",
	/* ?2 the operation kind */
	[S_INTENT_KNOWN] = "SELECT count(*) FROM journal WHERE operation_id = ?1 AND kind = ?2",
	[S_OUTBOX_PUT] = "INSERT INTO outbox(action_id, delivery, state, error_code, message, updated) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(action_id) DO UPDATE SET delivery = excluded.delivery, "
			 "state = excluded.state, error_code = excluded.error_code, message = excluded.message, "
			 "updated = excluded.updated",
	[S_OUTBOX_LIST] = "SELECT action_id, delivery, state, error_code, message, updated FROM outbox "
			  "ORDER BY updated, action_id LIMIT ?1",
	[S_OUTBOX_DELETE] = "DELETE FROM outbox WHERE action_id = ?1 AND delivery = ?2 AND state = ?3",
	[S_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
	[S_AUDIT_ADD] = "INSERT INTO audit(at, action_id, requested_by, device_id, key, action, requested, event, "
			"outcome, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[S_AUDIT_EACH] = "SELECT seq, at, action_id, requested_by, device_id, key, action, requested, event, outcome, "
			 "reason FROM audit WHERE (?1 IS NULL OR action_id = ?1) AND seq > ?2 ORDER BY seq LIMIT ?3",
	[S_CURSOR_GET] = "SELECT cursor FROM notify_cursor WHERE id = 1",
	[S_CURSOR_SET] = "INSERT INTO notify_cursor(id, cursor) VALUES (1, ?1) "
			 "ON CONFLICT(id) DO UPDATE SET cursor = excluded.cursor",
};

CMB_SDB_ENUM(cmb_action_state, cmb_state_action_state, CMB_ACTION_STATES, "action state", "actions", "state")
CMB_SDB_ENUM(cmb_intent_kind, cmb_state_intent_kind, CMB_INTENT_KINDS, "journal kind", "journal", "kind")
CMB_SDB_ENUM(cmb_intent_outcome, cmb_state_intent_outcome, CMB_INTENT_OUTCOMES, "journal outcome", "journal",
	     "outcome")
CMB_SDB_ENUM(cmb_audit_event, cmb_state_audit_event, CMB_AUDIT_EVENTS, "audit event", "audit", "event")

/* ---- the inbox ---- */

void cmb_state_action_clear(struct cmb_action *a)
{
	if (!a)
		return;
	free(a->id);
	free(a->device_id);
	free(a->key);
	free(a->action);
	free(a->requested_by);
	free(a->message);
	memset(a, 0, sizeof(*a));
}

static int read_action(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_action *a = row;
	int state = 0;
	a->id = cmb_sdb_column_dup_or_empty(s, 0);
	a->device_id = cmb_sdb_column_dup_or_empty(s, 1);
	a->key = cmb_sdb_column_dup_or_empty(s, 2);
	a->resource_id = (uint32_t)sqlite3_column_int64(s, 3);
	a->action = cmb_sdb_column_dup_or_empty(s, 4);
	a->requested_by = cmb_sdb_column_dup_or_empty(s, 5);
	a->requested = sqlite3_column_int64(s, 6);
	a->expires = sqlite3_column_int64(s, 7);
	a->received_ms = sqlite3_column_int64(s, 8);
	int ret = cmb_sdb_column_enum(st, s, 9, &cmb_state_action_state_enum, a->id, 0, &state);
	a->state = (enum cmb_action_state)state;
	cmb_sdb_column_copy(s, 10, a->delivery, sizeof(a->delivery));
	a->op_type = sqlite3_column_int(s, 11);
	a->intent_id = sqlite3_column_int64(s, 12);
	a->error_code = (long)sqlite3_column_int64(s, 13);
	a->message = cmb_sdb_column_dup(s, 14);
	a->updated = sqlite3_column_int64(s, 15);
	return ret;
}

static void clear_action(void *row)
{
	cmb_state_action_clear(row);
}

static const struct cmb_sdb_rows action_rows = { .size = sizeof(struct cmb_action), .read = read_action,
						 .clear = clear_action };

void cmb_state_actions_free(struct cmb_action *list, size_t n)
{
	cmb_sdb_rows_free(&action_rows, list, n);
}

int cmb_state_action_add(struct cmb_state *st, const struct cmb_action *a, int *added)
{
	const char *state;
	if (!a->id || !a->id[0])
		return cmb_error_set(CMB_EINVAL, "adding an action: empty action id");
	int ret = cmb_sdb_enum_text(&cmb_state_action_state_enum, (int)a->state, "adding an action", &state);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_ACT_ADD];
	int b = cmb_sdb_bind(s, "tttittiiittdilti", a->id, a->device_id ? a->device_id : "", a->key ? a->key : "",
			     (int64_t)a->resource_id, a->action ? a->action : "", a->requested_by ? a->requested_by : "",
			     a->requested, a->expires, a->received_ms, state, a->delivery, a->op_type, a->intent_id,
			     a->error_code, a->message, a->updated);
	ret = cmb_sdb_step_done(st, s, b, "adding action \"%s\" to the inbox", a->id);
	if (ret == 0 && added)
		*added = sqlite3_changes(st->db) > 0;
	return ret;
}

int cmb_state_action_get(struct cmb_state *st, const char *id, struct cmb_action *out)
{
	sqlite3_stmt *s = st->stmt[S_ACT_GET];
	struct cmb_action a;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", id), &action_rows, &a, "reading action \"%s\"", id);
	if (ret == 0)
		*out = a;
	return ret;
}

int cmb_state_action_update(struct cmb_state *st, const char *id, enum cmb_action_state state,
			    const char *delivery, long error_code, const char *message, int64_t intent_id, int op_type,
			    int64_t updated)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_action_state_enum, (int)state, "moving an action", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_ACT_UPDATE];
	int b = cmb_sdb_bind(s, "tttltidi", id, text, delivery, error_code, message, intent_id, op_type, updated);
	ret = cmb_sdb_step_done(st, s, b, "moving action \"%s\" to %s", id, text);
	if (ret == 0 && sqlite3_changes(st->db) == 0)
		ret = cmb_error_set(CMB_ENOTFOUND, "state database %s: no action \"%s\"", st->path, id);
	return ret;
}

/* Collects the actions s (bound with bind_rc) returns; *out untouched on failure. */
static int collect_actions(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *what,
			   struct cmb_action **out, size_t *n)
{
	void *list = NULL;
	int ret = cmb_sdb_collect(st, s, bind_rc, &action_rows, &list, n, "%s", what);
	if (ret == 0)
		*out = list;
	return ret;
}

int cmb_state_actions_by_state(struct cmb_state *st, enum cmb_action_state state, size_t limit,
			       struct cmb_action **out, size_t *n)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_action_state_enum, (int)state, "listing actions by state", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_ACT_BY_STATE];
	return collect_actions(st, s, cmb_sdb_bind(s, "ti", text, cmb_sdb_limit(limit)), "listing actions by state",
			       out, n);
}

int cmb_state_actions_by_intent(struct cmb_state *st, int64_t intent_id, struct cmb_action **out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_ACT_BY_INTENT];
	return collect_actions(st, s, cmb_sdb_bind(s, "i", intent_id), "listing the actions of a journal row", out, n);
}

int cmb_state_actions_recent(struct cmb_state *st, size_t limit, struct cmb_action **out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_ACT_RECENT];
	return collect_actions(st, s, cmb_sdb_bind(s, "i", cmb_sdb_limit(limit)), "listing recent actions", out, n);
}

long cmb_state_actions_open(struct cmb_state *st)
{
	sqlite3_stmt *s = st->stmt[S_ACT_OPEN];
	int b = cmb_sdb_bind(s, "ttt", cmb_state_action_state_name(CMB_ACTION_STATE_DONE),
			     cmb_state_action_state_name(CMB_ACTION_STATE_FAILED),
			     cmb_state_action_state_name(CMB_ACTION_STATE_NOT_SUPPORTED));
	return cmb_sdb_count(st, s, b, "counting open actions");
}

long cmb_state_actions_count(struct cmb_state *st, enum cmb_action_state state)
{
	sqlite3_stmt *s = st->stmt[S_ACT_COUNT_STATE];
	return cmb_sdb_count(st, s, cmb_sdb_bind(s, "t", cmb_state_action_state_name(state)), "counting actions by state");
}

/* ---- the journal ---- */

static int read_intent(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_intent *it = row;
	int kind = 0, outcome = 0;
	it->id = sqlite3_column_int64(s, 0);
	int ret = cmb_sdb_column_enum(st, s, 1, &cmb_state_intent_kind_enum, NULL, it->id, &kind);
	if (ret == 0)
		ret = cmb_sdb_column_enum(st, s, 7, &cmb_state_intent_outcome_enum, NULL, it->id, &outcome);
	it->kind = (enum cmb_intent_kind)kind;
	it->outcome = (enum cmb_intent_outcome)outcome;
	it->op_type = sqlite3_column_int(s, 2);
	it->targets = cmb_sdb_column_dup_or_empty(s, 3);
	cmb_sdb_column_copy(s, 4, it->marker, sizeof(it->marker));
	it->intended = sqlite3_column_int64(s, 5);
	it->operation_id = sqlite3_column_int64(s, 6);
	it->last_polled = sqlite3_column_int64(s, 8);
	it->completed = sqlite3_column_int64(s, 9);
	return ret;
}

static void clear_intent(void *row)
{
	free(((struct cmb_intent *)row)->targets);
}

static const struct cmb_sdb_rows intent_rows = { .size = sizeof(struct cmb_intent), .read = read_intent,
						 .clear = clear_intent };

void cmb_state_intents_free(struct cmb_intent *list, size_t n)
{
	cmb_sdb_rows_free(&intent_rows, list, n);
}

int cmb_state_intent_add(struct cmb_state *st, enum cmb_intent_kind kind, int op_type, const char *targets_json,
			 const char *marker, int64_t intended, int64_t *intent_id)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_intent_kind_enum, (int)kind, "journaling an intent", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INTENT_ADD];
	int b = cmb_sdb_bind(s, "tdtti", text, op_type, targets_json, marker, intended);
	ret = cmb_sdb_step_done(st, s, b, "journaling the intent of a %s", text);
	if (ret == 0)
		*intent_id = sqlite3_last_insert_rowid(st->db);
	return ret;
}

int cmb_state_intent_outcome(struct cmb_state *st, int64_t intent_id, int64_t operation_id,
			     enum cmb_intent_outcome outcome)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_intent_outcome_enum, (int)outcome, "recording an outcome", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INTENT_OUTCOME];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "iit", intent_id, operation_id, text),
				 "recording the outcome of journal row %" PRId64, intent_id);
}

int cmb_state_intent_polled(struct cmb_state *st, int64_t intent_id, int64_t when)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_POLLED];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ii", intent_id, when),
				 "recording a status read of journal row %" PRId64, intent_id);
}

int cmb_state_intent_complete(struct cmb_state *st, int64_t intent_id, int64_t when)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_COMPLETE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ii", intent_id, when), "completing journal row %" PRId64,
				 intent_id);
}

int cmb_state_intents_open(struct cmb_state *st, struct cmb_intent **out, size_t *n)
{
	void *list = NULL;
	int ret = cmb_sdb_collect(st, st->stmt[S_INTENT_OPEN], SQLITE_OK, &intent_rows, &list, n,
				  "listing open journal rows");
	if (ret == 0)
		*out = list;
	return ret;
}

int cmb_state_intent_operation_known(struct cmb_state *st, int64_t operation_id, int *known)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_KNOWN];
	int b = cmb_sdb_bind(s, "it", operation_id, cmb_state_intent_kind_name(CMB_INTENT_OPERATION));
	long c = cmb_sdb_count(st, s, b, "looking up a site operation in the journal");
	if (c < 0)
		return (int)c;
	*known = c > 0;
	return 0;
}

/* ---- the outbox ---- */

int cmb_state_outbox_put(struct cmb_state *st, const char *action_id, const char *delivery, const char *state,
			 long error_code, const char *message, int64_t updated)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_PUT];
	int b = cmb_sdb_bind(s, "tttlti", action_id, delivery, state, error_code, message, updated);
	return cmb_sdb_step_done(st, s, b, "queueing the result of action \"%s\"", action_id);
}

static int read_outbox_entry(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_outbox_entry *e = row;
	e->action_id = cmb_sdb_column_dup_or_empty(s, 0);
	e->delivery = cmb_sdb_column_dup_or_empty(s, 1);
	e->state = cmb_sdb_column_dup_or_empty(s, 2);
	e->error_code = (long)sqlite3_column_int64(s, 3);
	e->message = cmb_sdb_column_dup(s, 4);
	e->updated = sqlite3_column_int64(s, 5);
	return 0;
}

static void clear_outbox_entry(void *row)
{
	struct cmb_outbox_entry *e = row;
	free(e->action_id);
	free(e->delivery);
	free(e->state);
	free(e->message);
}

static const struct cmb_sdb_rows outbox_rows = { .size = sizeof(struct cmb_outbox_entry),
						 .read = read_outbox_entry, .clear = clear_outbox_entry };

void cmb_state_outbox_free(struct cmb_outbox_entry *list, size_t n)
{
	cmb_sdb_rows_free(&outbox_rows, list, n);
}

int cmb_state_outbox_list(struct cmb_state *st, size_t limit, struct cmb_outbox_entry **out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_LIST];
	void *list = NULL;
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "i", cmb_sdb_limit(limit)), &outbox_rows, &list, n,
				  "listing the outbox");
	if (ret == 0)
		*out = list;
	return ret;
}

int cmb_state_outbox_delete(struct cmb_state *st, const char *action_id, const char *delivery, const char *state)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_DELETE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ttt", action_id, delivery, state),
				 "dropping the acknowledged result of action \"%s\"", action_id);
}

long cmb_state_outbox_count(struct cmb_state *st)
{
	return cmb_sdb_count(st, st->stmt[S_OUTBOX_COUNT], SQLITE_OK, "counting the outbox");
}

/* ---- the audit trail ---- */

int cmb_state_audit_add(struct cmb_state *st, const struct cmb_audit_entry *e)
{
	const char *event;
	int ret = cmb_sdb_enum_text(&cmb_state_audit_event_enum, (int)e->event, "auditing an action", &event);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_AUDIT_ADD];
	int b = cmb_sdb_bind(s, "itttttittt", e->at, e->action_id, e->requested_by ? e->requested_by : "",
			     e->device_id ? e->device_id : "", e->key ? e->key : "", e->action ? e->action : "",
			     e->requested, event, e->outcome ? e->outcome : "", e->reason);
	return cmb_sdb_step_done(st, s, b, "auditing action \"%s\"", e->action_id);
}

/* An audit row as copied out of its page: the strings cmb_audit_entry points to. */
struct audit_row {
	int64_t seq, at, requested;
	char *action_id, *requested_by, *device_id, *key, *action, *outcome, *reason;
	enum cmb_audit_event event;
};

static int read_audit(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct audit_row *r = row;
	int event = 0;
	r->seq = sqlite3_column_int64(s, 0);
	r->at = sqlite3_column_int64(s, 1);
	r->action_id = cmb_sdb_column_dup_or_empty(s, 2);
	r->requested_by = cmb_sdb_column_dup_or_empty(s, 3);
	r->device_id = cmb_sdb_column_dup_or_empty(s, 4);
	r->key = cmb_sdb_column_dup_or_empty(s, 5);
	r->action = cmb_sdb_column_dup_or_empty(s, 6);
	r->requested = sqlite3_column_int64(s, 7);
	int ret = cmb_sdb_column_enum(st, s, 8, &cmb_state_audit_event_enum, NULL, r->seq, &event);
	r->event = (enum cmb_audit_event)event;
	r->outcome = cmb_sdb_column_dup_or_empty(s, 9);
	r->reason = cmb_sdb_column_dup(s, 10);
	return ret;
}

static void clear_audit(void *row)
{
	struct audit_row *r = row;
	free(r->action_id);
	free(r->requested_by);
	free(r->device_id);
	free(r->key);
	free(r->action);
	free(r->outcome);
	free(r->reason);
}

struct audit_walk {
	const char *action_id;   /* NULL: every action */
	int (*cb)(void *ctx, const struct cmb_audit_entry *e);
	void *ctx;
};

static int bind_audit(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	const struct audit_row *after = last;
	const struct audit_walk *w = ctx;
	return cmb_sdb_bind(s, "tid", w->action_id, after ? after->seq : (int64_t)0, limit);
}

static int visit_audit(void *ctx, const void *row)
{
	const struct audit_walk *w = ctx;
	const struct audit_row *r = row;
	const struct cmb_audit_entry e = {
		.seq = r->seq, .at = r->at, .action_id = r->action_id, .requested_by = r->requested_by,
		.device_id = r->device_id, .key = r->key, .action = r->action, .requested = r->requested,
		.event = r->event, .outcome = r->outcome, .reason = r->reason,
	};
	return w->cb(w->ctx, &e);
}

static const struct cmb_sdb_pager audit_pager = {
	.rows = { .size = sizeof(struct audit_row), .read = read_audit, .clear = clear_audit },
	.bind = bind_audit,
	.visit = visit_audit,
};

/* Paged by seq, so cb may write to the state. */
int cmb_state_audit_each(struct cmb_state *st, const char *action_id,
			 int (*cb)(void *ctx, const struct cmb_audit_entry *e), void *ctx)
{
	struct audit_walk w = { .action_id = action_id, .cb = cb, .ctx = ctx };
	return cmb_sdb_each_page(st, st->stmt[S_AUDIT_EACH], &audit_pager, &w, "reading the audit table");
}

/* ---- the notification cursor ---- */

int cmb_state_cursor_get(struct cmb_state *st, char **out)
{
	char *cursor = NULL;
	int ret = cmb_sdb_get_row(st, st->stmt[S_CURSOR_GET], SQLITE_OK, &cmb_sdb_text_rows, &cursor,
				  "reading the notification cursor");
	if (ret == CMB_ENOTFOUND) {
		cursor = xstrdup("");
		ret = 0;
	}
	if (ret == 0)
		*out = cursor;
	return ret;
}

int cmb_state_cursor_set(struct cmb_state *st, const char *cursor)
{
	sqlite3_stmt *s = st->stmt[S_CURSOR_SET];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", cursor ? cursor : ""), "storing the notification cursor");
}
