/*
 * state_db.h - the state database's internals, shared by state.c,
 * state_sync.c, state_actions.c and state_policies.c (and the store's unit test). Nothing
 * outside connector/store includes it: callers see only state.h.
 *
 * It holds the connection struct, the ids of the prepared statements (each
 * file provides the SQL of its own), and the one way of doing each thing
 * with a statement: binding (cmb_sdb_bind), stepping a write
 * (cmb_sdb_step_done), reading one row (cmb_sdb_get_row), collecting rows
 * into an array (cmb_sdb_collect), walking a table page by page
 * (cmb_sdb_each_page), and turning stored texts into enums
 * (CMB_SDB_ENUM). Every failure is CMB_ESTATE with the database path and
 * what was being done.
 */
#ifndef CMB_STATE_DB_H
#define CMB_STATE_DB_H

#include "connector/store/state.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Rows copied per page by cmb_sdb_each_page, so callbacks may change the table. */
#define CMB_SDB_PAGE 256

/* Every prepared statement, grouped by the file that holds its SQL. */
enum cmb_sdb_stmt {
	/* state.c */
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_META_GET,
	S_META_SET,
	S_LEARNT_GET,
	S_LEARNT_SET,
	/* state_sync.c */
	S_CYCLE_BEGIN,
	S_CYCLE_PRUNE,
	S_CYCLE_END,
	S_CYCLES_RECENT,
	S_DEVICE_GET,
	S_DEVICE_REHASH,
	S_DEVICE_SEEN,
	S_DEVICE_UNSEE,
	S_SEEN_UNSEE,
	S_DEVICE_PUT,
	S_DEVICE_DELETE,
	S_DEVICE_COUNT,
	S_DEVICES_UNSEEN,
	S_PENDING_ADD,
	S_PENDING_EACH,
	S_PENDING_COUNT,
	S_PENDING_REMOVE,
	S_PENDING_CLEAR,
	S_QUAR_PUT,
	S_QUAR_GET,
	S_QUAR_REHASH,
	S_QUAR_REMOVE,
	S_QUAR_COUNT,
	S_QUAR_KEYS,
	S_QUAR_EACH,
	S_IDENT_ADD,
	S_IDENT_CLEAR,
	S_IDENT_SHARED_CLEAR,
	S_IDENT_SHARED_FILL,
	S_IDENT_CAND_CLEAR,
	S_IDENT_CAND_FILL,
	S_IDENT_LOSERS,
	S_COLL_GET,
	S_COLL_PUT,
	S_COLL_DELETE,
	S_COLL_KEYS,
	S_INFLIGHT_PUT,
	S_INFLIGHT_SEEN,
	S_INFLIGHT_GET,
	S_INFLIGHT_UNSEE,
	S_INFLIGHT_SETTLE,
	S_INFLIGHT_COUNT,
	S_INFLIGHT_EACH,
	S_PENDING_FIELDS,
	S_PENDING_FIELDS_CLEAR,
	S_PENDING_SUMMARY,
	/* state_actions.c */
	S_ACT_ADD,
	S_ACT_GET,
	S_ACT_UPDATE,
	S_ACT_BY_STATE,
	S_ACT_BY_INTENT,
	S_ACT_OPEN,
	S_ACT_RECENT,
	S_ACT_COUNT_STATE,
	S_INTENT_ADD,
	S_INTENT_OUTCOME,
	S_INTENT_POLLED,
	S_INTENT_COMPLETE,
	S_INTENT_OPEN,
	S_INTENT_KNOWN,
	S_OUTBOX_PUT,
	S_OUTBOX_LIST,
	S_OUTBOX_DELETE,
	S_OUTBOX_COUNT,
	S_AUDIT_ADD,
	S_AUDIT_EACH,
	S_CURSOR_GET,
	S_CURSOR_SET,
	/* state_policies.c */
	S_POL_PUT,
	S_POL_STATE,
	S_POL_BODY,
	S_POL_DOCUMENT,
	S_POL_SITE,
	S_POL_REPORTED,
	S_POL_GET,
	S_POL_LIST,
	S_POL_BLOBS,
	S_POL_DELETE,
	S_POL_COUNT_STATE,
	S_POL_REASONS_CLEAR,
	S_POL_REASON_ADD,
	S_POL_REASONS,
	S_POL_COLLS_CLEAR,
	S_POL_COLL_ADD,
	S_POL_COLLS,
	S_POL_DEVS_CLEAR,
	S_POL_DEV_ADD,
	S_POL_DEVS,
	S_POL_COMPLIANCE_AT,
	S_PJ_ADD,
	S_PJ_OUTCOME,
	S_PJ_OPEN,
	S_PJ_RECENT,
	S_COUNT
};

/*
 * The SQL of each file's statements, indexed by statement id (NULL for the
 * ids of other files). cmb_state_open() prepares them all once; an id with
 * no SQL, or with SQL in two files, is refused there.
 */
extern const char *const cmb_sdb_sync_sql[S_COUNT];
extern const char *const cmb_sdb_actions_sql[S_COUNT];
extern const char *const cmb_sdb_policies_sql[S_COUNT];
/* Run at open before preparing: the sync state's per-connection TEMP tables. */
extern const char cmb_sdb_sync_temp_schema[];

struct cmb_state {
	sqlite3 *db;
	char *dir;
	char *path;                  /* dir/cmbridge.db, for messages */
	int lock_fd;
	int version;
	int readonly;                /* cmb_state_open_readonly: no lock, the file opened read-only */
	int pending_iterating;       /* S_PENDING_EACH is stepping: no re-entry */
	sqlite3_stmt *stmt[S_COUNT];
};

/* ---- errors ---- */

/* Sets "state database PATH: WHAT: sqlite's message" and returns CMB_ESTATE. */
int cmb_sdb_error(struct cmb_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* CMB_EINVAL "WHAT: empty device key" when key is NULL or empty, else 0. */
int cmb_sdb_check_key(const char *key, const char *what);

#ifdef CMB_TEST_HOOKS
/*
 * Test builds only (cmbridge-test, docs/reliability.md): with
 * CMB_CRASH_AFTER_COMMIT=N in the environment, the process _exits with
 * CMB_CRASH_EXIT right after its N-th commit to the state file.
 */
#define CMB_CRASH_EXIT 99
void cmb_sdb_test_hooks(struct cmb_state *st);
#endif

/* ---- statements ---- */

/*
 * Binds ?1.. in order from a format: 't' text (NULL binds NULL), 'i'
 * int64_t, 'l' long, 'd' int, 'b' blob (const void *, size_t). Texts and
 * blobs are not copied: they must outlive the step. Returns SQLITE_OK or
 * the first bind code that is not.
 */
int cmb_sdb_bind(sqlite3_stmt *s, const char *fmt, ...);
/* A size_t limit as SQLite's int64 (LIMIT -1 would mean none). */
int64_t cmb_sdb_limit(size_t limit);
/* Resets s and clears its bindings, ready for the next use. */
void cmb_sdb_finish(sqlite3_stmt *s);
/*
 * Steps a statement that returns no rows (when bind_rc is SQLITE_OK), then
 * finishes it: 0, or CMB_ESTATE with "what" from fmt.
 */
int cmb_sdb_step_done(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Steps a count(*) statement and finishes it: the count, or CMB_ESTATE. */
long cmb_sdb_count(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *what);

/* ---- columns ---- */

/* A column's text newly allocated (caller frees), NULL for SQL NULL. */
char *cmb_sdb_column_dup(sqlite3_stmt *s, int col);
/* The same with "" for SQL NULL: never NULL. */
char *cmb_sdb_column_dup_or_empty(sqlite3_stmt *s, int col);
/* A column's text into dst (truncated to size; "" for SQL NULL). */
void cmb_sdb_column_copy(sqlite3_stmt *s, int col, char *dst, size_t size);

/* ---- rows ---- */

/* How one row is copied out of a statement into a caller's struct. */
struct cmb_sdb_rows {
	size_t size;             /* of the struct */
	/* Fills row (zeroed) from the current row of s: 0, or an error with its message. */
	int (*read)(struct cmb_state *st, sqlite3_stmt *s, void *row);
	/* Frees what read allocated in row (also after a failed read); NULL when nothing is. */
	void (*clear)(void *row);
};

/*
 * Steps s (bound by the caller; bind_rc its bind result) to its end,
 * copying each row into a newly allocated array: *out (NULL when there is
 * no row; caller frees with cmb_sdb_rows_free) and *n. Finishes s. On
 * failure (fmt says what was being done) frees what it read and leaves
 * *out and *n untouched.
 */
int cmb_sdb_collect(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const struct cmb_sdb_rows *rows,
		    void **out, size_t *n, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Rows of one text (column 0, "" for NULL) into a char *: the row is a newly allocated string. */
extern const struct cmb_sdb_rows cmb_sdb_text_rows;

/* Clears each of the n rows of list and frees it; list may be NULL. */
void cmb_sdb_rows_free(const struct cmb_sdb_rows *rows, void *list, size_t n);

/*
 * Steps s (bound by the caller) once: 0 and row filled by rows->read when
 * there is a row, CMB_ENOTFOUND (no message) when there is none, an error
 * otherwise. Finishes s. On failure row is cleared: the caller's *out
 * stays untouched if it reads into a local and copies on success.
 */
int cmb_sdb_get_row(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const struct cmb_sdb_rows *rows,
		    void *row, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * A walk over a table in key order, CMB_SDB_PAGE rows at a time: each page
 * is collected (copied out, statement finished) before its rows are
 * visited, so a visit may change the state, including deleting the row it
 * is given, and memory stays bounded whatever the table's size. Rows after
 * the current page are read after the visits, so changes to them are seen.
 */
struct cmb_sdb_pager {
	struct cmb_sdb_rows rows;
	/*
	 * Binds the query for the page after `last` (the previous page's last
	 * row; NULL for the first page), at most `limit` rows. Returns the bind
	 * result (SQLITE_OK).
	 */
	int (*bind)(sqlite3_stmt *s, const void *last, int limit, void *ctx);
	/* Hands one row to the caller; non-zero stops the walk and is returned. */
	int (*visit)(void *ctx, const void *row);
};

/* 0 when every row was visited, an error, or the non-zero value a visit returned. */
int cmb_sdb_each_page(struct cmb_state *st, sqlite3_stmt *s, const struct cmb_sdb_pager *pager, void *ctx,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- enums stored as text ---- */

/* One enum's texts, for the generated functions and for errors naming where a bad text was read. */
struct cmb_sdb_enum {
	const char *noun;            /* "action state" */
	const char *table, *column;  /* where it is stored */
	const char *const *texts;    /* indexed by value; NULL: stored as SQL NULL */
	size_t n;
};

/* The text of value v, NULL when v is out of range (or stored as NULL). */
const char *cmb_sdb_enum_name(const struct cmb_sdb_enum *e, int v);
/* 0 and *v for text (NULL matches the value stored as NULL); CMB_EINVAL with a message listing the texts. */
int cmb_sdb_enum_parse(const struct cmb_sdb_enum *e, const char *text, int *v);
/* 0 and *text for writing v; CMB_EINVAL "WHAT: unknown NOUN V" when v is out of range. */
int cmb_sdb_enum_text(const struct cmb_sdb_enum *e, int v, const char *what, const char **text);
/*
 * Reads column col as one of e's texts into *v. A text e does not know is
 * CMB_ESTATE naming the table, the row's key (key_text quoted, or key_num
 * when key_text is NULL), the column and the value.
 */
int cmb_sdb_column_enum(struct cmb_state *st, sqlite3_stmt *s, int col, const struct cmb_sdb_enum *e,
			const char *key_text, int64_t key_num, int *v);
/* The same for an enum stored as its value (an integer in [0, n)). */
int cmb_sdb_column_enum_value(struct cmb_state *st, sqlite3_stmt *s, int col, const struct cmb_sdb_enum *e,
			      const char *key_text, int64_t key_num, int *v);

#define CMB_SDB_ENUM_TEXT(constant, text) [constant] = text,
/*
 * Defines, from an X-macro LIST of X(constant, text), the public
 * fn_name()/fn_parse() pair declared in state_*.h and a static
 * struct cmb_sdb_enum fn_enum for reading and writing the column.
 */
#define CMB_SDB_ENUM(type, fn, LIST, noun_, table_, column_) \
	static const char *const fn##_texts[] = { LIST(CMB_SDB_ENUM_TEXT) }; \
	static const struct cmb_sdb_enum fn##_enum = { \
		.noun = noun_, .table = table_, .column = column_, \
		.texts = fn##_texts, .n = sizeof(fn##_texts) / sizeof(fn##_texts[0]), \
	}; \
	const char *fn##_name(enum type value) \
	{ \
		return cmb_sdb_enum_name(&fn##_enum, (int)value); \
	} \
	int fn##_parse(const char *text, enum type *out) \
	{ \
		int v = 0; \
		int rc = cmb_sdb_enum_parse(&fn##_enum, text, &v); \
		if (rc == 0) \
			*out = (enum type)v; \
		return rc; \
	}

#endif
