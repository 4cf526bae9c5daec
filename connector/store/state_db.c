/*
 * state_db.c - the one way the store does each thing with a prepared
 * statement: bind, step a write, read one row, collect rows into an array,
 * walk a table page by page, read and write enums stored as text.
 *
 * Shared by state.c, state_sync.c and state_actions.c through state_db.h.
 * It knows no table: it must never hold SQL of its own, and never map a
 * stored value it does not know to another one.
 */
#include "connector/store/state_db.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- errors ---- */

__attribute__((format(printf, 2, 0))) static int verror(struct cmb_state *st, const char *fmt, va_list ap)
{
	char *what = xvasprintf(fmt, ap);
	cmb_error_set(CMB_ESTATE, "state database %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
	free(what);
	return CMB_ESTATE;
}

int cmb_sdb_error(struct cmb_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = verror(st, fmt, ap);
	va_end(ap);
	return ret;
}

int cmb_sdb_check_key(const char *key, const char *what)
{
	if (!key || !key[0])
		return cmb_error_set(CMB_EINVAL, "%s: empty device key", what);
	return 0;
}

/* ---- statements ---- */

int cmb_sdb_bind(sqlite3_stmt *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int b = SQLITE_OK;
	for (int i = 0; fmt[i] && b == SQLITE_OK; i++) {
		switch (fmt[i]) {
		case 't': {
			const char *v = va_arg(ap, const char *);
			b = v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i + 1);
			break;
		}
		case 'b': {
			const void *v = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);
			b = sqlite3_bind_blob64(s, i + 1, v, (sqlite3_uint64)len, SQLITE_STATIC);
			break;
		}
		case 'i': b = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
		case 'l': b = sqlite3_bind_int64(s, i + 1, (int64_t)va_arg(ap, long)); break;
		case 'd': b = sqlite3_bind_int(s, i + 1, va_arg(ap, int)); break;
		default: b = SQLITE_MISUSE; break;
		}
	}
	va_end(ap);
	return b;
}

int64_t cmb_sdb_limit(size_t limit)
{
	return limit > INT64_MAX ? INT64_MAX : (int64_t)limit;
}

void cmb_sdb_finish(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

int cmb_sdb_step_done(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *fmt, ...)
{
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	int ret = 0;
	if (rc != SQLITE_DONE) {
		va_list ap;
		va_start(ap, fmt);
		ret = verror(st, fmt, ap);
		va_end(ap);
	}
	cmb_sdb_finish(s);
	return ret;
}

long cmb_sdb_count(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *what)
{
	long ret;
	if (bind_rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		ret = (long)sqlite3_column_int64(s, 0);
	else
		ret = cmb_sdb_error(st, "%s", what);
	cmb_sdb_finish(s);
	return ret;
}

/* ---- columns ---- */

char *cmb_sdb_column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? xstrdup((const char *)t) : NULL;
}

char *cmb_sdb_column_dup_or_empty(sqlite3_stmt *s, int col)
{
	char *v = cmb_sdb_column_dup(s, col);
	return v ? v : xstrdup("");
}

void cmb_sdb_column_copy(sqlite3_stmt *s, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* ---- rows ---- */

static int read_text(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	*(char **)row = cmb_sdb_column_dup_or_empty(s, 0);
	return 0;
}

static void clear_text(void *row)
{
	free(*(char **)row);
}

const struct cmb_sdb_rows cmb_sdb_text_rows = { .size = sizeof(char *), .read = read_text, .clear = clear_text };

void cmb_sdb_rows_free(const struct cmb_sdb_rows *rows, void *list, size_t n)
{
	if (!list)
		return;
	if (rows->clear)
		for (size_t i = 0; i < n; i++)
			rows->clear((char *)list + i * rows->size);
	free(list);
}

__attribute__((format(printf, 7, 0))) static int vcollect(struct cmb_state *st, sqlite3_stmt *s, int bind_rc,
							     const struct cmb_sdb_rows *rows, void **out, size_t *n_out,
							     const char *fmt, va_list ap)
{
	char *list = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	while (rc == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * rows->size);
		}
		void *row = list + n * rows->size;
		memset(row, 0, rows->size);
		if ((ret = rows->read(st, s, row)) < 0) {
			if (rows->clear)
				rows->clear(row);
			break;
		}
		n++;
		rc = sqlite3_step(s);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = verror(st, fmt, ap);
	cmb_sdb_finish(s);
	if (ret < 0) {
		cmb_sdb_rows_free(rows, list, n);
	} else {
		*out = list;
		*n_out = n;
	}
	return ret;
}

int cmb_sdb_collect(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const struct cmb_sdb_rows *rows,
		    void **out, size_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int ret = vcollect(st, s, bind_rc, rows, out, n, fmt, ap);
	va_end(ap);
	return ret;
}

int cmb_sdb_get_row(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const struct cmb_sdb_rows *rows,
		    void *row, const char *fmt, ...)
{
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	int ret = 0;
	memset(row, 0, rows->size);
	if (rc == SQLITE_ROW) {
		ret = rows->read(st, s, row);
	} else if (rc == SQLITE_DONE) {
		ret = CMB_ENOTFOUND; /* an answer, not a failure: no message */
	} else {
		va_list ap;
		va_start(ap, fmt);
		ret = verror(st, fmt, ap);
		va_end(ap);
	}
	if (ret < 0 && rows->clear)
		rows->clear(row);
	cmb_sdb_finish(s);
	return ret;
}

int cmb_sdb_each_page(struct cmb_state *st, sqlite3_stmt *s, const struct cmb_sdb_pager *pager, void *ctx,
		      const char *fmt, ...)
{
	const struct cmb_sdb_rows *rows = &pager->rows;
	char *prev = NULL;       /* the previous page: its last row is where the next one starts */
	size_t n_prev = 0;
	int ret = 0;
	va_list ap;
	va_start(ap, fmt);
	for (;;) {
		void *page = NULL;
		size_t n = 0;
		const void *last = prev ? prev + (n_prev - 1) * rows->size : NULL;
		va_list again;
		va_copy(again, ap);
		ret = vcollect(st, s, pager->bind(s, last, CMB_SDB_PAGE, ctx), rows, &page, &n, fmt, again);
		va_end(again);
		/* The bindings pointing into prev were cleared when the page was collected. */
		cmb_sdb_rows_free(rows, prev, n_prev);
		prev = NULL;
		if (ret < 0)
			break;
		for (size_t i = 0; i < n && ret == 0; i++)
			ret = pager->visit(ctx, (char *)page + i * rows->size);
		if (ret != 0 || n < CMB_SDB_PAGE) {
			cmb_sdb_rows_free(rows, page, n);
			break;
		}
		prev = page;
		n_prev = n;
	}
	va_end(ap);
	return ret;
}

/* ---- enums stored as text ---- */

const char *cmb_sdb_enum_name(const struct cmb_sdb_enum *e, int v)
{
	return v >= 0 && (size_t)v < e->n ? e->texts[v] : NULL;
}

/* The value whose text is text (NULL: the one stored as NULL), -1 when none. */
static int enum_find(const struct cmb_sdb_enum *e, const char *text)
{
	for (size_t i = 0; i < e->n; i++) {
		const char *t = e->texts[i];
		if (text ? t && strcmp(t, text) == 0 : !t)
			return (int)i;
	}
	return -1;
}

/* "received, intent, done" (the texts that are not NULL), newly allocated: caller frees. */
static char *enum_known(const struct cmb_sdb_enum *e)
{
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	for (size_t i = 0; i < e->n; i++)
		if (e->texts[i])
			cmb_buf_printf(&b, "%s%s", b.len ? ", " : "", e->texts[i]);
	return cmb_buf_detach(&b, NULL);
}

int cmb_sdb_enum_parse(const struct cmb_sdb_enum *e, const char *text, int *v)
{
	int i = enum_find(e, text);
	if (i >= 0) {
		*v = i;
		return 0;
	}
	char *known = enum_known(e);
	cmb_error_set(CMB_EINVAL, "unknown %s %s%s%s (known: %s)", e->noun, text ? "\"" : "", text ? text : "NULL",
		      text ? "\"" : "", known);
	free(known);
	return CMB_EINVAL;
}

int cmb_sdb_enum_text(const struct cmb_sdb_enum *e, int v, const char *what, const char **text)
{
	if (v < 0 || (size_t)v >= e->n)
		return cmb_error_set(CMB_EINVAL, "%s: unknown %s %d", what, e->noun, v);
	*text = e->texts[v];
	return 0;
}

/* The error for a stored value e does not know; value is already quoted as it should be shown. */
static int bad_value(struct cmb_state *st, const struct cmb_sdb_enum *e, const char *key_text, int64_t key_num,
		     const char *value)
{
	char *known = enum_known(e);
	char num[24];
	snprintf(num, sizeof(num), "%" PRId64, key_num);
	cmb_error_set(CMB_ESTATE,
		      "state database %s: table %s, key %s%s%s: unknown %s %s (this cmbridge knows %s); the "
		      "database was changed by another program or a newer cmbridge, and this one will not guess "
		      "what it means",
		      st->path, e->table, key_text ? "\"" : "", key_text ? key_text : num, key_text ? "\"" : "",
		      e->column, value, known);
	free(known);
	return CMB_ESTATE;
}

int cmb_sdb_column_enum(struct cmb_state *st, sqlite3_stmt *s, int col, const struct cmb_sdb_enum *e,
			const char *key_text, int64_t key_num, int *v)
{
	const char *text = (const char *)sqlite3_column_text(s, col);
	int i = enum_find(e, text);
	if (i >= 0) {
		*v = i;
		return 0;
	}
	char *quoted = text ? xasprintf("\"%s\"", text) : xstrdup("NULL");
	int ret = bad_value(st, e, key_text, key_num, quoted);
	free(quoted);
	return ret;
}

int cmb_sdb_column_enum_value(struct cmb_state *st, sqlite3_stmt *s, int col, const struct cmb_sdb_enum *e,
			      const char *key_text, int64_t key_num, int *v)
{
	int64_t x = sqlite3_column_int64(s, col);
	if (sqlite3_column_type(s, col) == SQLITE_INTEGER && x >= 0 && (uint64_t)x < e->n) {
		*v = (int)x;
		return 0;
	}
	const char *text = (const char *)sqlite3_column_text(s, col);
	return bad_value(st, e, key_text, key_num, text ? text : "NULL");
}

#ifdef CMB_TEST_HOOKS
/* ---- test builds only: exit right after the N-th commit (docs/reliability.md) ---- */

static long crash_after;   /* N from CMB_CRASH_AFTER_COMMIT; 0: off */
static long commits;       /* commits to the state file by this process */

/*
 * SQLite calls a WAL hook once a commit has taken place and its write lock
 * is released: the commit is in the file, nothing after it has run. The
 * hook replaces SQLite's auto-checkpoint, so it does what that one does.
 */
static int crash_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	if (++commits == crash_after) {
		static const char msg[] = "cmbridge: CMB_CRASH_AFTER_COMMIT reached: exiting without cleanup\n";
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) { /* exiting anyway */ }
		_exit(CMB_CRASH_EXIT);
	}
	if (pages >= 1000)   /* SQLITE_DEFAULT_WAL_AUTOCHECKPOINT */
		sqlite3_wal_checkpoint(db, name);
	return SQLITE_OK;
}

void cmb_sdb_test_hooks(struct cmb_state *st)
{
	const char *n = getenv("CMB_CRASH_AFTER_COMMIT");
	if (n && (crash_after = strtol(n, NULL, 10)) > 0)
		sqlite3_wal_hook(st->db, crash_hook, NULL);
}
#endif
