/*
 * state_sync.h - the sync engine's state (part of state.h: include that).
 *
 * The sync cycles with their counts and errors, the devices as last
 * acknowledged by the tenant, the uploads whose outcome is unknown (in
 * flight), the records staged for upload in the running cycle, quarantined
 * records with their reasons, the per-cycle duplicate detection, and the
 * configManagerCollection records as last uploaded.
 */
#ifndef CMB_STATE_SYNC_H
#define CMB_STATE_SYNC_H

#ifndef CMB_STATE_H_INSIDE
#error "include connector/store/state.h, not state_sync.h"
#endif

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
	long removals_held;      /* removals held back (the deletion guard, or the change guard) */
	long removed;            /* removals acknowledged by the tenant */
	long quarantined;
	long rejected;           /* rejected by the tenant (and quarantined) */
	long upload_requests;
	long utf8_repairs;
	long changes_held;       /* changes the change guard held back (schema 4) */
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
/*
 * Rewrites a known device's hashes in place: the same record, recognised by
 * the hashes of an earlier version (docs/state.md, "Record hashes").
 */
int cmb_state_device_rehash(struct cmb_state *st, const char *key, const char *hash, const char *stable_hash);
/*
 * Records that key was read from the site in cycle_id (it is not a removal
 * candidate). The mark lasts as long as this connection (a TEMP table), so
 * reading an unchanged device writes nothing to the database file.
 */
int cmb_state_device_seen(struct cmb_state *st, const char *key, int64_t cycle_id);
/*
 * Inserts or replaces after the tenant acknowledged the upload. The site
 * properties it was built from are those recorded for the staged record
 * (cmb_state_pending_fields), kept as they were when none were.
 */
int cmb_state_device_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			 const char *stable_hash, int64_t cycle_id, int64_t uploaded);
/* Undoes cmb_state_device_seen() and cmb_state_inflight_seen() for cycle_id (a duplicate found after the read). */
int cmb_state_device_unsee(struct cmb_state *st, const char *key, int64_t cycle_id);
int cmb_state_device_delete(struct cmb_state *st, const char *key);
long cmb_state_device_count(struct cmb_state *st);
/*
 * Calls cb for each key the tenant holds or may hold that was not seen in
 * cycle_id (read on this connection, uploaded or journaled), in key order: the known devices (tenant_id as acknowledged)
 * and the keys in flight that are not known devices (tenant_id NULL).
 * cb returns 0 to go on.
 */
int cmb_state_devices_unseen(struct cmb_state *st, int64_t cycle_id,
			     int (*cb)(void *ctx, const char *key, const char *tenant_id), void *ctx);

/* ---- uploads whose outcome is unknown ("in flight") ---- */
/*
 * Journals key as sent in batch_id of cycle_id, before the batch goes out:
 * until its outcome is recorded the tenant may or may not hold it. A key
 * already in flight keeps since_cycle and since, the start of the doubt.
 * It counts as seen in cycle_id.
 */
int cmb_state_inflight_put(struct cmb_state *st, const char *key, const char *batch_id, int64_t cycle_id,
			   int64_t when);
/* Marks key seen in cycle_id if it is in flight; *in_flight says whether it is. */
int cmb_state_inflight_seen(struct cmb_state *st, const char *key, int64_t cycle_id, int *in_flight);
/*
 * The tenant answered for key: it is no longer in doubt. With
 * first_cycle > 0, only when its doubt began in that cycle (a rejection
 * settles that upload, not an earlier one the tenant may have applied).
 */
int cmb_state_inflight_settle(struct cmb_state *st, const char *key, int64_t first_cycle);
/* 0 (and *since, the epoch seconds its doubt began, when not NULL) when key is in flight; CMB_ENOTFOUND when not. */
int cmb_state_inflight_get(struct cmb_state *st, const char *key, int64_t *since);
long cmb_state_inflight_count(struct cmb_state *st);
/* Calls cb for each key in flight, in key order (since: epoch seconds the doubt began); cb may settle it. */
int cmb_state_inflight_each(struct cmb_state *st,
			    int (*cb)(void *ctx, const char *key, const char *batch_id, int64_t since_cycle,
				      int64_t since),
			    void *ctx);

/* ---- records staged for upload in a cycle ---- */
/*
 * Why a record is staged. The database stores the enum's value (the
 * pending.is_new column: 0, 1, 2); the text is how `cmbridge diff` says it.
 */
#define CMB_PENDING_KINDS(X) \
	X(CMB_PENDING_CHANGE, "change")   /* 0: known to the tenant, content changed */ \
	X(CMB_PENDING_ADD, "add")         /* 1: new to the tenant */ \
	X(CMB_PENDING_REFRESH, "refresh") /* 2: unchanged, sent again (full cycle or details refresh) */
enum cmb_pending_kind { CMB_PENDING_KINDS(CMB_STATE_ENUM_ITEM) };
/* The kind's text (static), NULL when kind is none of them. */
const char *cmb_state_pending_kind_name(enum cmb_pending_kind kind);
/* 0 and *out when text is a kind's text; CMB_EINVAL (with a message listing the kinds) when not. */
int cmb_state_pending_kind_parse(const char *text, enum cmb_pending_kind *out);

int cmb_state_pending_add(struct cmb_state *st, int64_t cycle_id, const char *key, const char *hash,
			  const char *stable_hash, enum cmb_pending_kind kind, const char *json, size_t json_len);
/*
 * Calls cb for up to limit staged records of cycle_id with key > after_key
 * (NULL = from the start), in key order. Pointers are valid during cb only.
 */
int cmb_state_pending_each(struct cmb_state *st, int64_t cycle_id, const char *after_key, size_t limit,
			   int (*cb)(void *ctx, const char *key, const char *hash, const char *stable_hash,
				     enum cmb_pending_kind kind, const char *json, size_t json_len),
			   void *ctx);
long cmb_state_pending_count(struct cmb_state *st, int64_t cycle_id);
/* Drops one staged record; *removed (may be NULL) says whether there was one. */
int cmb_state_pending_remove(struct cmb_state *st, int64_t cycle_id, const char *key, int *removed);
/*
 * Records the site properties the record staged for key in the running
 * cycle was built from (a bit each: connector/engine/sync.c), for the
 * change guard; its acknowledgement keeps them with the device. Kept per
 * connection (TEMP), dropped with the staged records.
 */
int cmb_state_pending_fields(struct cmb_state *st, const char *key, int64_t fields);
/* Drops all staged records (of every cycle) and their site properties. */
int cmb_state_pending_clear(struct cmb_state *st);
/* What is staged for a cycle, for the change guard. */
struct cmb_pending_summary {
	long staged[CMB_PENDING_REFRESH + 1]; /* by enum cmb_pending_kind */
	long blanking;           /* changes and refreshes staged without site properties their acknowledged record had */
	int64_t lost;            /* those properties, all bits OR-ed */
};
int cmb_state_pending_summary(struct cmb_state *st, int64_t cycle_id, struct cmb_pending_summary *out);

/* ---- quarantine ---- */
/* Why a record is held back; the text is what quarantine.kind stores. */
#define CMB_QUARANTINE_KINDS(X) \
	X(CMB_QUARANTINE_MAPPING, "mapping")     /* could not be mapped; re-evaluated every cycle */ \
	X(CMB_QUARANTINE_REJECTED, "rejected")   /* the tenant refused it; retried when its hash changes */ \
	X(CMB_QUARANTINE_DUPLICATE, "duplicate") /* a newer device shares its hardware */
enum cmb_quarantine_kind { CMB_QUARANTINE_KINDS(CMB_STATE_ENUM_ITEM) };
/* The kind's text (static), NULL when kind is none of them. */
const char *cmb_state_quarantine_kind_name(enum cmb_quarantine_kind kind);
/* 0 and *out when text is a kind's text; CMB_EINVAL (with a message listing the kinds) when not. */
int cmb_state_quarantine_kind_parse(const char *text, enum cmb_quarantine_kind *out);

/*
 * hash is the rejected record's (NULL for the other kinds). `since` is kept
 * while the kind stays the same.
 */
int cmb_state_quarantine_put(struct cmb_state *st, const char *key, enum cmb_quarantine_kind kind,
			     const char *reason, const char *hash, int64_t cycle_id, int64_t when);
/* 0 and fills *kind and hash ("" when none) when quarantined; CMB_ENOTFOUND when not. */
int cmb_state_quarantine_get(struct cmb_state *st, const char *key, enum cmb_quarantine_kind *kind, char hash[65]);
/* Rewrites a rejected record's hash in place (the same record, an earlier version's hash). */
int cmb_state_quarantine_rehash(struct cmb_state *st, const char *key, const char *hash);
int cmb_state_quarantine_remove(struct cmb_state *st, const char *key);
long cmb_state_quarantine_count(struct cmb_state *st);
/* The quarantined keys in key order (strcmp's); the caller frees each and the array. */
int cmb_state_quarantine_keys(struct cmb_state *st, char ***keys, size_t *n);
/* Calls cb for each quarantined record, in key order (since: first quarantined); cb may release it. */
int cmb_state_quarantine_each(struct cmb_state *st,
			      int (*cb)(void *ctx, const char *key, enum cmb_quarantine_kind kind, const char *reason,
					int64_t since),
			      void *ctx);

/* ---- duplicate detection within a cycle (a TEMP table, never written to the file) ---- */
int cmb_state_identity_clear(struct cmb_state *st);
int cmb_state_identity_add(struct cmb_state *st, const char *key, const char *hardware_id, const char *smbios_guid,
			   int64_t last_active, uint32_t resource_id);
/*
 * Calls cb for every device that shares a non-empty HardwareID or SMBIOSGUID
 * with a newer one (later last_active, then higher ResourceID), with the
 * newest such device as winner, in key order.
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

#endif
