/*
 * state.h - the connector's state: one SQLite database in state_dir.
 *
 * The one header callers include. It declares the database itself (open,
 * close, transactions, small named values, what adapters learnt) and pulls
 * in the three parts of what the database keeps:
 *   state_sync.h     the sync engine's state: cycles, devices, staged
 *                    records, quarantine, duplicate detection, collections;
 *   state_actions.h  the action relay's state: inbox, journal, outbox,
 *                    audit, notification cursor;
 *   state_policies.h the policy relay's state: policies, their reasons,
 *                    compliance and the journal of site writes.
 * WAL journal, versioned schema with forward migrations, integrity check at
 * open. Every change that must survive a crash is in a transaction the
 * caller brackets with cmb_state_begin()/cmb_state_commit().
 *
 * Values with a fixed vocabulary (an action's state, a quarantine kind...)
 * are enums. Each is listed once, by an X-macro LIST(X) of X(constant,
 * text), where text is what the database stores; the store generates the
 * enum and its _name()/_parse() functions from that list. An unknown text
 * read from the database is an error naming the table, the row and the
 * value, never mapped to something else.
 */
#ifndef CMB_STATE_H
#define CMB_STATE_H

#include <stddef.h>
#include <stdint.h>

struct cmb_state;

#define CMB_STATE_FILE "cmbridge.db"

/* Makes an enum's constant from an X(constant, text) item. */
#define CMB_STATE_ENUM_ITEM(constant, text) constant,

/* Opens (creating dir and database if needed) state_dir/cmbridge.db. Caller closes. */
int cmb_state_open(struct cmb_state **out, const char *state_dir);
/*
 * For readers (status, quarantine, actions) while another cmbridge writes:
 * the file opened read-only, no lock taken, nothing created (SQLite's WAL
 * lets readers see the last commit). CMB_ENOTFOUND, with a message saying
 * so, when there is no state yet; CMB_ESTATE when the schema is not this
 * binary's (migrating is a writer's job). Every write fails. Caller closes.
 */
int cmb_state_open_readonly(struct cmb_state **out, const char *state_dir);
/*
 * For dry runs (diff, sync --dry-run): a private copy of the state (a
 * temporary file SQLite deletes at close, so memory stays bounded), read
 * like cmb_state_open_readonly, then writable like cmb_state_open; nothing
 * written reaches the state's file. No state yet: an empty one. Caller
 * closes.
 */
int cmb_state_open_snapshot(struct cmb_state **out, const char *state_dir);
void cmb_state_close(struct cmb_state *st);
int cmb_state_schema_version(struct cmb_state *st);
/* 1 when st was opened with cmb_state_open_readonly. */
int cmb_state_is_readonly(const struct cmb_state *st);

int cmb_state_begin(struct cmb_state *st);
int cmb_state_commit(struct cmb_state *st);
int cmb_state_rollback(struct cmb_state *st);

/*
 * Ends a cycle's scratch and gives the pages the database no longer uses
 * back to the file system. A writer (cmb_state_open) takes a new connection
 * to the file, the lock kept: the old one's TEMP tables (the staged
 * records, up to 1.2 GB at a million devices, and the cycle's seen marks
 * and identities) go with their file, which in a daemon would otherwise
 * live as long as the process. A private copy drops the staged records
 * (cmb_state_pending_clear). Then the state file's free pages, when they
 * are more than a quarter of it. Outside a transaction. State files created
 * before auto_vacuum was set keep their free pages.
 */
int cmb_state_compact(struct cmb_state *st);

/* ---- small named values (e.g. "last_details_refresh") ---- */
int cmb_state_meta_get(struct cmb_state *st, const char *name, int64_t *value); /* CMB_ENOTFOUND when unset */
int cmb_state_meta_set(struct cmb_state *st, const char *name, int64_t value);
/*
 * What an adapter learnt about its service (the site's schema), by name:
 * *text newly allocated (the caller's), CMB_ENOTFOUND when none is kept.
 */
int cmb_state_learnt_get(struct cmb_state *st, const char *name, char **text);
int cmb_state_learnt_set(struct cmb_state *st, const char *name, const char *text, int64_t at);

#define CMB_STATE_H_INSIDE
#include "connector/store/state_sync.h"
#include "connector/store/state_actions.h"
#include "connector/store/state_policies.h"
#undef CMB_STATE_H_INSIDE

#endif
