/*
 * state.h - the connector's state: one SQLite database in state_dir.
 *
 * It holds the devices as last uploaded (key, tenant id, hash of the mapped
 * record), the records staged for upload in the running cycle, the sync
 * cycles with their counts and errors, and quarantined records with their
 * reasons. WAL journal, versioned schema with forward migrations, integrity
 * check at open. Every change that must survive a crash is in a transaction
 * the caller brackets with cmb_state_begin()/cmb_state_commit().
 */
#ifndef CMB_STATE_H
#define CMB_STATE_H

#include <stddef.h>
#include <stdint.h>

struct cmb_state;

#define CMB_STATE_FILE "cmbridge.db"

/* Opens (creating dir and database if needed) state_dir/cmbridge.db. Caller closes. */
int cmb_state_open(struct cmb_state **out, const char *state_dir);
void cmb_state_close(struct cmb_state *st);
int cmb_state_schema_version(struct cmb_state *st);

int cmb_state_begin(struct cmb_state *st);
int cmb_state_commit(struct cmb_state *st);
int cmb_state_rollback(struct cmb_state *st);

/* ---- sync cycles ---- */
struct cmb_cycle_counts {
	long site_records;       /* devices read from the site */
	long skipped;            /* out of scope (no client, obsolete...) */
	long unchanged;
	long added;              /* uploaded, new to the tenant */
	long changed;            /* uploaded, content changed */
	long refreshed;          /* uploaded though unchanged (full cycle) or for volatile details only */
	long duplicates;         /* active devices sharing hardware with a newer one: not uploaded */
	long no_entra_id;        /* uploaded without an Entra device id (flagged) */
	long unknown_workloads;  /* devices with co-management flag bits mapping does not know */
	long removals_held;      /* removals the deletion guard held back */
	long removed;            /* removals acknowledged by the tenant */
	long quarantined;
	long rejected;           /* rejected by the tenant (and quarantined) */
	long upload_requests;
	long utf8_repairs;
};

struct cmb_cycle {
	int64_t id;
	char kind[16];           /* "full" | "delta" */
	int64_t started;         /* epoch seconds */
	int64_t ended;           /* 0 while running */
	char status[48];         /* "running" | "ok" | "failed" | ... */
	char *error;             /* NULL or message; owned by the struct */
	struct cmb_cycle_counts counts;
};

int cmb_state_cycle_begin(struct cmb_state *st, const char *kind, int64_t started, int64_t *cycle_id);
int cmb_state_cycle_end(struct cmb_state *st, int64_t cycle_id, int64_t ended, const char *status,
			const struct cmb_cycle_counts *counts, const char *error);
/* The n most recent cycles, newest first, into a newly allocated array (*out, caller frees with cmb_state_cycles_free). */
int cmb_state_cycles_recent(struct cmb_state *st, size_t n, struct cmb_cycle **out, size_t *count);
void cmb_state_cycles_free(struct cmb_cycle *cycles, size_t count);

/* ---- devices as last uploaded ---- */
/*
 * 0 and fills hash (and stable_hash, *tenant_id — caller frees — when not NULL) when known;
 * CMB_ENOTFOUND when not.
 */
int cmb_state_device_get(struct cmb_state *st, const char *key, char hash[65], char stable_hash[65],
			 char **tenant_id);
/* Records that key was read from the site in cycle_id (it is not a removal candidate). */
int cmb_state_device_seen(struct cmb_state *st, const char *key, int64_t cycle_id);
/* Inserts or replaces after the tenant acknowledged the upload. */
int cmb_state_device_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			 const char *stable_hash, int64_t cycle_id, int64_t uploaded);
/* Undoes cmb_state_device_seen() for cycle_id (a duplicate found after the read). */
int cmb_state_device_unsee(struct cmb_state *st, const char *key, int64_t cycle_id);
int cmb_state_device_delete(struct cmb_state *st, const char *key);
long cmb_state_device_count(struct cmb_state *st);
/* Calls cb for each known device not seen in cycle_id, in key order; cb returns 0 to go on. */
int cmb_state_devices_unseen(struct cmb_state *st, int64_t cycle_id,
			     int (*cb)(void *ctx, const char *key, const char *tenant_id), void *ctx);

/* ---- records staged for upload in a cycle ---- */
/* is_new: 1 new to the tenant, 0 changed, 2 unchanged but sent again by a full cycle. */
int cmb_state_pending_add(struct cmb_state *st, int64_t cycle_id, const char *key, const char *hash,
			  const char *stable_hash, int is_new, const char *json, size_t json_len);
/*
 * Calls cb for up to limit staged records of cycle_id with key > after_key
 * (NULL = from the start), in key order. Pointers are valid during cb only.
 */
int cmb_state_pending_each(struct cmb_state *st, int64_t cycle_id, const char *after_key, size_t limit,
			   int (*cb)(void *ctx, const char *key, const char *hash, const char *stable_hash,
				     int is_new, const char *json, size_t json_len),
			   void *ctx);
long cmb_state_pending_count(struct cmb_state *st, int64_t cycle_id);
/* Drops one staged record; *removed (may be NULL) says whether there was one. */
int cmb_state_pending_remove(struct cmb_state *st, int64_t cycle_id, const char *key, int *removed);
/* Drops all staged records (of every cycle). */
int cmb_state_pending_clear(struct cmb_state *st);

/* ---- quarantine ---- */
/*
 * kind: "mapping" (could not be mapped; re-evaluated every cycle),
 * "rejected" (the tenant refused it; retried when its hash changes: hash is
 * the rejected record's), "duplicate" (a newer device shares its hardware).
 * `since` is kept while the kind stays the same.
 */
int cmb_state_quarantine_put(struct cmb_state *st, const char *key, const char *kind, const char *reason,
			     const char *hash, int64_t cycle_id, int64_t when);
/* 0 and fills kind and hash ("" when none) when quarantined; CMB_ENOTFOUND when not. */
int cmb_state_quarantine_get(struct cmb_state *st, const char *key, char kind[16], char hash[65]);
int cmb_state_quarantine_remove(struct cmb_state *st, const char *key);
long cmb_state_quarantine_count(struct cmb_state *st);
int cmb_state_quarantine_each(struct cmb_state *st,
			      int (*cb)(void *ctx, const char *key, const char *kind, const char *reason, int64_t when),
			      void *ctx);

/* ---- small named values (e.g. "last_details_refresh") ---- */
int cmb_state_meta_get(struct cmb_state *st, const char *name, int64_t *value); /* CMB_ENOTFOUND when unset */
int cmb_state_meta_set(struct cmb_state *st, const char *name, int64_t value);
/*
 * What an adapter learnt about its service (the site's schema), by name:
 * *text newly allocated (the caller's), CMB_ENOTFOUND when none is kept.
 */
int cmb_state_learnt_get(struct cmb_state *st, const char *name, char **text);
int cmb_state_learnt_set(struct cmb_state *st, const char *name, const char *text, int64_t at);

/* ---- duplicate detection within a cycle (a TEMP table, never written to the file) ---- */
int cmb_state_identity_clear(struct cmb_state *st);
int cmb_state_identity_add(struct cmb_state *st, const char *key, const char *hardware_id, const char *smbios_guid,
			   int64_t last_active, uint32_t resource_id);
/*
 * Calls cb for every device that shares a non-empty HardwareID or SMBIOSGUID
 * with a newer one (later last_active, then higher ResourceID), with the
 * newest such device as winner.
 */
int cmb_state_identity_losers(struct cmb_state *st, int (*cb)(void *ctx, const char *key, const char *winner),
			      void *ctx);

/* ---- configManagerCollection records as last uploaded ---- */
int cmb_state_collection_get(struct cmb_state *st, const char *key, char hash[65], char created[32]);
int cmb_state_collection_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			     const char *created);
int cmb_state_collection_delete(struct cmb_state *st, const char *key);
/* All collection keys, sorted, in a newly allocated array of allocated strings (caller frees all). */
int cmb_state_collection_keys(struct cmb_state *st, char ***out, size_t *n);

/* ---- remote actions (schema v2; docs/actions.md) ---- */

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
	char state[16];          /* received | intent | delivered | done | failed | notSupported */
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
int cmb_state_action_update(struct cmb_state *st, const char *id, const char *state, const char *delivery,
			    long error_code, const char *message, int64_t intent_id, int op_type, int64_t updated);
/* Actions in state (oldest received first, at most limit), or of a journal row, into a new array (caller frees). */
int cmb_state_actions_by_state(struct cmb_state *st, const char *state, size_t limit, struct cmb_action **out,
			       size_t *n);
int cmb_state_actions_by_intent(struct cmb_state *st, int64_t intent_id, struct cmb_action **out, size_t *n);
/* The newest limit actions, newest first (caller frees). */
int cmb_state_actions_recent(struct cmb_state *st, size_t limit, struct cmb_action **out, size_t *n);
/* Actions not final yet (not done, failed or notSupported); negative on error. */
long cmb_state_actions_open(struct cmb_state *st);

/* One journal row: the intent of a site call, and its outcome once known. */
struct cmb_intent {
	int64_t id;
	char kind[16];           /* operation | block */
	int op_type;
	char *targets;           /* JSON array of ResourceIDs, ascending; owned */
	char marker[65];
	int64_t intended;        /* epoch seconds */
	int64_t operation_id;    /* -1 until known */
	char outcome[16];        /* "" unknown | issued | adopted | refused | blocked */
	int64_t last_polled;
	int64_t completed;
};

void cmb_state_intents_free(struct cmb_intent *list, size_t n);
int cmb_state_intent_add(struct cmb_state *st, const char *kind, int op_type, const char *targets_json,
			 const char *marker, int64_t intended, int64_t *intent_id);
int cmb_state_intent_outcome(struct cmb_state *st, int64_t intent_id, int64_t operation_id, const char *outcome);
int cmb_state_intent_polled(struct cmb_state *st, int64_t intent_id, int64_t when);
int cmb_state_intent_complete(struct cmb_state *st, int64_t intent_id, int64_t when);
/* Journal rows whose actions are not final yet, oldest first (caller frees). */
int cmb_state_intents_open(struct cmb_state *st, struct cmb_intent **out, size_t *n);
/* *known: whether a journal row already holds this site OperationID. */
int cmb_state_intent_operation_known(struct cmb_state *st, int64_t operation_id, int *known);

/* The outbox: the latest result of each action until the tenant acknowledges it. */
struct cmb_outbox_entry {
	char *action_id, *delivery, *state, *message;
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

/* The append-only audit table. */
struct cmb_audit_entry {
	int64_t seq;             /* set when read */
	int64_t at;
	const char *action_id, *requested_by, *device_id, *key, *action;
	int64_t requested;
	const char *event;       /* received | refused | staging | delivered | done | failed */
	const char *outcome;     /* actionState at that point */
	const char *reason;      /* may be NULL */
};

int cmb_state_audit_add(struct cmb_state *st, const struct cmb_audit_entry *e);
/* Calls cb for each row (of action_id only, when not NULL), oldest first; pointers valid during cb. */
int cmb_state_audit_each(struct cmb_state *st, const char *action_id,
			 int (*cb)(void *ctx, const struct cmb_audit_entry *e), void *ctx);

/* The notification channel's cursor: *out "" when none yet (caller frees). */
int cmb_state_cursor_get(struct cmb_state *st, char **out);
int cmb_state_cursor_set(struct cmb_state *st, const char *cursor);

#endif
