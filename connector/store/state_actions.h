/*
 * state_actions.h - the action relay's state (part of state.h: include that;
 * schema v2, docs/actions.md).
 *
 * The inbox of remote actions with each action's state, the journal of site
 * calls (intent before the call, outcome after it), the outbox of results
 * the tenant has not acknowledged yet, the append-only audit trail, and the
 * notification channel's cursor.
 */
#ifndef CMB_STATE_ACTIONS_H
#define CMB_STATE_ACTIONS_H

#ifndef CMB_STATE_H_INSIDE
#error "include connector/store/state.h, not state_actions.h"
#endif

/* ---- the inbox ---- */

/* Where an action is in the relay (docs/actions.md); the text is what actions.state stores. */
#define CMB_ACTION_STATES(X) \
	X(CMB_ACTION_STATE_RECEIVED, "received")          /* in the inbox, not checked yet */ \
	X(CMB_ACTION_STATE_INTENT, "intent")              /* journaled with its batch; the site call may be under way */ \
	X(CMB_ACTION_STATE_DELIVERED, "delivered")        /* the site has its operation; outcome not known yet */ \
	X(CMB_ACTION_STATE_DONE, "done")                  /* final */ \
	X(CMB_ACTION_STATE_FAILED, "failed")              /* final */ \
	X(CMB_ACTION_STATE_NOT_SUPPORTED, "notSupported") /* final: refused as something the connector cannot relay */
enum cmb_action_state { CMB_ACTION_STATES(CMB_STATE_ENUM_ITEM) };
/* The state's text (static), NULL when state is none of them. */
const char *cmb_state_action_state_name(enum cmb_action_state state);
/* 0 and *out when text is a state's text; CMB_EINVAL (with a message listing the states) when not. */
int cmb_state_action_state_parse(const char *text, enum cmb_action_state *out);

/* One action of the inbox. Strings are owned by the struct (cmb_state_action_clear). */
struct cmb_action {
	char *id;                /* the tenant's action id */
	char *device_id;         /* managedDevice id */
	char *key;               /* the site's device key */
	uint32_t resource_id;
	char *action;
	char *requested_by;
	int64_t requested;       /* epoch seconds */
	int64_t expires;         /* epoch seconds: never delivered at or after */
	int64_t received_ms;     /* epoch milliseconds */
	enum cmb_action_state state;
	char delivery[40];       /* actionDeliveryStatus */
	int op_type;
	int64_t intent_id;       /* journal row, 0 when none */
	long error_code;
	char *message;           /* NULL or why */
	int64_t updated;
};

void cmb_state_action_clear(struct cmb_action *a);
void cmb_state_actions_free(struct cmb_action *list, size_t n);
/* Inserts a into the inbox unless its id is known; *added (may be NULL): 1 inserted, 0 a replay. */
int cmb_state_action_add(struct cmb_state *st, const struct cmb_action *a, int *added);
/* 0 and fills *out (caller clears) when known; CMB_ENOTFOUND when not. */
int cmb_state_action_get(struct cmb_state *st, const char *id, struct cmb_action *out);
/* Moves an action; intent_id and op_type change only when >= 0. */
int cmb_state_action_update(struct cmb_state *st, const char *id, enum cmb_action_state state,
			    const char *delivery, long error_code, const char *message, int64_t intent_id, int op_type,
			    int64_t updated);
/*
 * Actions in state (oldest received first, at most limit), or of a journal
 * row, into a newly allocated array (caller frees with cmb_state_actions_free).
 */
int cmb_state_actions_by_state(struct cmb_state *st, enum cmb_action_state state, size_t limit,
			       struct cmb_action **out, size_t *n);
int cmb_state_actions_by_intent(struct cmb_state *st, int64_t intent_id, struct cmb_action **out, size_t *n);
/* The newest limit actions, newest first (caller frees with cmb_state_actions_free). */
int cmb_state_actions_recent(struct cmb_state *st, size_t limit, struct cmb_action **out, size_t *n);
/* Actions not final yet (not done, failed or notSupported); negative on error. */
long cmb_state_actions_open(struct cmb_state *st);
/* Actions in state; negative on error. */
long cmb_state_actions_count(struct cmb_state *st, enum cmb_action_state state);

/* ---- the journal ---- */

/* What a journal row calls at the site; the text is what journal.kind stores. */
#define CMB_INTENT_KINDS(X) \
	X(CMB_INTENT_OPERATION, "operation") /* InitiateClientOperationEx: an OperationID to follow */ \
	X(CMB_INTENT_BLOCK, "block")         /* BlockClients: final once the site accepts it */
enum cmb_intent_kind { CMB_INTENT_KINDS(CMB_STATE_ENUM_ITEM) };
const char *cmb_state_intent_kind_name(enum cmb_intent_kind kind);
int cmb_state_intent_kind_parse(const char *text, enum cmb_intent_kind *out);

/* What became of a journal row's site call; the text is what journal.outcome stores. */
#define CMB_INTENT_OUTCOMES(X) \
	X(CMB_OUTCOME_NONE, NULL)        /* none recorded: the call's fate is not known, reconcile first */ \
	X(CMB_OUTCOME_ISSUED, "issued")  /* the site returned an OperationID */ \
	X(CMB_OUTCOME_ADOPTED, "adopted")/* found at the site after an interruption */ \
	X(CMB_OUTCOME_REFUSED, "refused")/* the site said no: nothing was created */ \
	X(CMB_OUTCOME_BLOCKED, "blocked")/* BlockClients accepted */ \
	X(CMB_OUTCOME_UNKNOWN, "unknown")/* the site cannot tell whether it got it: not sent again */ \
	X(CMB_OUTCOME_EXPIRED, "expired")/* expired before an interrupted delivery could be completed */
enum cmb_intent_outcome { CMB_INTENT_OUTCOMES(CMB_STATE_ENUM_ITEM) };
/* The outcome's text (static); NULL for CMB_OUTCOME_NONE (stored as SQL NULL) and for none of them. */
const char *cmb_state_intent_outcome_name(enum cmb_intent_outcome outcome);
/* text NULL is CMB_OUTCOME_NONE; CMB_EINVAL (with a message listing the outcomes) for an unknown text. */
int cmb_state_intent_outcome_parse(const char *text, enum cmb_intent_outcome *out);

/* One journal row: the intent of a site call, and its outcome once known. */
struct cmb_intent {
	int64_t id;
	enum cmb_intent_kind kind;
	int op_type;
	char *targets;           /* JSON array of ResourceIDs, ascending; owned */
	char marker[65];
	int64_t intended;        /* epoch seconds */
	int64_t operation_id;    /* -1 until known */
	enum cmb_intent_outcome outcome;
	int64_t last_polled;
	int64_t completed;
};

void cmb_state_intents_free(struct cmb_intent *list, size_t n);
int cmb_state_intent_add(struct cmb_state *st, enum cmb_intent_kind kind, int op_type, const char *targets_json,
			 const char *marker, int64_t intended, int64_t *intent_id);
int cmb_state_intent_outcome(struct cmb_state *st, int64_t intent_id, int64_t operation_id,
			     enum cmb_intent_outcome outcome);
int cmb_state_intent_polled(struct cmb_state *st, int64_t intent_id, int64_t when);
int cmb_state_intent_complete(struct cmb_state *st, int64_t intent_id, int64_t when);
/* Journal rows whose actions are not final yet, oldest first (caller frees with cmb_state_intents_free). */
int cmb_state_intents_open(struct cmb_state *st, struct cmb_intent **out, size_t *n);
/* *known: whether an operation journal row already holds this site OperationID. */
int cmb_state_intent_operation_known(struct cmb_state *st, int64_t operation_id, int *known);

/* ---- the outbox: the latest result of each action until the tenant acknowledges it ---- */
struct cmb_outbox_entry {
	char *action_id;
	char *delivery;          /* actionDeliveryStatus */
	char *state;             /* the tenant's actionState (pending, active, done, failed, notSupported) */
	char *message;           /* NULL or why */
	long error_code;
	int64_t updated;
};

int cmb_state_outbox_put(struct cmb_state *st, const char *action_id, const char *delivery, const char *state,
			 long error_code, const char *message, int64_t updated);
/* Oldest first, at most limit (caller frees with cmb_state_outbox_free). */
int cmb_state_outbox_list(struct cmb_state *st, size_t limit, struct cmb_outbox_entry **out, size_t *n);
void cmb_state_outbox_free(struct cmb_outbox_entry *list, size_t n);
/* Drops the entry only while it still holds that delivery and state (a newer one stays). */
int cmb_state_outbox_delete(struct cmb_state *st, const char *action_id, const char *delivery, const char *state);
long cmb_state_outbox_count(struct cmb_state *st);

/* ---- the append-only audit table ---- */

/* What happened to an action; the text is what audit.event stores. */
#define CMB_AUDIT_EVENTS(X) \
	X(CMB_AUDIT_RECEIVED, "received")   /* reached the inbox */ \
	X(CMB_AUDIT_REFUSED, "refused")     /* not allowed, out of scope, expired or not supported */ \
	X(CMB_AUDIT_STAGING, "staging")     /* kept in the inbox: [connector] mode = staging */ \
	X(CMB_AUDIT_DELIVERED, "delivered") /* the site has its operation */ \
	X(CMB_AUDIT_DONE, "done") \
	X(CMB_AUDIT_FAILED, "failed")
enum cmb_audit_event { CMB_AUDIT_EVENTS(CMB_STATE_ENUM_ITEM) };
const char *cmb_state_audit_event_name(enum cmb_audit_event event);
int cmb_state_audit_event_parse(const char *text, enum cmb_audit_event *out);

struct cmb_audit_entry {
	int64_t seq;             /* set when read */
	int64_t at;
	const char *action_id, *requested_by, *device_id, *key, *action;
	int64_t requested;
	enum cmb_audit_event event;
	const char *outcome;     /* the tenant's actionState at that point */
	const char *reason;      /* may be NULL */
};

int cmb_state_audit_add(struct cmb_state *st, const struct cmb_audit_entry *e);
/* Calls cb for each row (of action_id only, when not NULL), oldest first; pointers valid during cb. */
int cmb_state_audit_each(struct cmb_state *st, const char *action_id,
			 int (*cb)(void *ctx, const struct cmb_audit_entry *e), void *ctx);

/* ---- the notification channel's cursor ---- */
/* *out "" when none yet (newly allocated, caller frees). */
int cmb_state_cursor_get(struct cmb_state *st, char **out);
int cmb_state_cursor_set(struct cmb_state *st, const char *cursor);

#endif
