/*
 * test_state.c - the state database: schema and migrations, refusals
 * (corrupt, newer schema, second instance), and every table's round trip.
 *
 * Each test works in its own temporary state directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/base/error.h"
#include "connector/store/state.h"
#include "connector/store/state_db.h" /* the store's own helpers, tested directly below */
#include "connector/base/util.h"
#include "connector/base/clock.h"
#include "tests/unit/fixture.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct fx {
	char base[FX_DIR_SIZE]; /* temporary directory */
	char *dir;         /* base/state: created by cmb_state_open */
	char *db;          /* dir/cmbridge.db */
	struct cmb_state *st;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->base, "state") < 0)
		return -1;
	f->dir = fx_path(f->base, "state");
	f->db = xasprintf("%s/%s", f->dir, CMB_STATE_FILE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	fx_rmtree(f->base);
	free(f->dir);
	free(f->db);
	free(f);
	return 0;
}

/* Opens the fixture's state, failing the test with the message if it cannot. */
static struct cmb_state *open_ok(struct fx *f)
{
	int rc = cmb_state_open(&f->st, f->dir);
	if (rc != 0) {
		print_error("cmb_state_open: %s\n", cmb_error_last());
		fail();
	}
	return f->st;
}

static void reopen(struct fx *f)
{
	cmb_state_close(f->st);
	f->st = NULL;
	open_ok(f);
}

/* Runs sql on the database file with a separate connection (state closed). */
static void raw_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		print_error("%s: %s\n", sql, err);
		sqlite3_free(err);
		fail();
	}
	sqlite3_close(db);
}

static long raw_count(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	long n = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* The first column of a one-row query, as text ("(null)" for NULL), into buf. */
static void raw_text(const char *path, const char *sql, char *buf, size_t size)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	const unsigned char *t = sqlite3_column_text(s, 0);
	snprintf(buf, size, "%s", t ? (const char *)t : "(null)");
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void test_open_creates(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_schema_version(st), 6);
	struct stat sb;
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);

	char *lock = xasprintf("%s/cmbridge.lock", f->dir);
	char *text = NULL;
	size_t len;
	assert_int_equal(cmb_file_read(lock, 64, &text, &len), 0);
	char want[32];
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	assert_string_equal(text, want);
	free(text);
	free(lock);

	cmb_state_close(st);
	f->st = NULL;
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 6);
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
					  "('devices', 'cycles', 'quarantine', 'meta', 'collections', "
					  "'actions', 'journal', 'outbox', 'audit')"),
			 9);
	/* Staged records are the connection's (TEMP, schema 6): the file has no pending table. */
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'pending'"), 0);
	cmb_state_close(NULL);
}

static void test_reopen_keeps(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c;
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1000, &c), 0);
	assert_int_equal(cmb_state_device_put(st, "16777220", "tid-1", HASH_A, NULL, c, 1001), 0);
	assert_int_equal(cmb_state_quarantine_put(st, "16777221", CMB_QUARANTINE_MAPPING, "bad name", NULL, c, 1002), 0);
	reopen(f);
	st = f->st;
	assert_int_equal(cmb_state_schema_version(st), 6);
	char hash[65];
	char *tid = NULL;
	assert_int_equal(cmb_state_device_get(st, "16777220", hash, NULL, &tid), 0);
	assert_string_equal(hash, HASH_A);
	assert_string_equal(tid, "tid-1");
	free(tid);
	assert_int_equal(cmb_state_quarantine_count(st), 1);
	struct cmb_cycle *cy;
	size_t n;
	assert_int_equal(cmb_state_cycles_recent(st, 10, &cy, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cy[0].id, c);
	cmb_state_cycles_free(cy, n);
}

static void test_future_version(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->dir, 0700), 0);
	raw_sql(f->db, "PRAGMA user_version = 99");
	assert_int_equal(cmb_state_open(&f->st, f->dir), CMB_ESTATE);
	assert_null(f->st);
	char *want = xasprintf("state database %s has schema version 99, newer than the 6 this cmbridge knows: it "
			       "was written by a newer cmbridge; run that version, or move the state aside to start "
			       "over with a full cycle",
			       f->db);
	assert_string_equal(cmb_error_last(), want);
	free(want);
	/* Refused, not touched. */
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 99);
}

static void overwrite(const char *path, off_t at, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	char *junk = xmalloc(n);
	memset(junk, 'x', n);
	assert_int_equal(pwrite(fd, junk, n, at), (ssize_t)n);
	free(junk);
	close(fd);
}

static void test_corrupt(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 2000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "%08d", i);
		assert_int_equal(cmb_state_device_put(st, key, "t", HASH_A, NULL, 1, 1), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	cmb_state_close(st);
	f->st = NULL;

	/* Pages in the middle of the devices table: found by quick_check. */
	struct stat sb;
	assert_int_equal(stat(f->db, &sb), 0);
	assert_true(sb.st_size > 8 * 4096);
	overwrite(f->db, 4 * 4096, 3 * 4096);
	assert_int_equal(cmb_state_open(&f->st, f->dir), CMB_ESTATE);
	assert_null(f->st);
	char *prefix = xasprintf("state database %s is corrupt (", f->db);
	assert_memory_equal(cmb_error_last(), prefix, strlen(prefix));
	assert_non_null(strstr(cmb_error_last(), "cmbridge will not use it"));

	/* The header itself. */
	overwrite(f->db, 0, 4096);
	assert_int_equal(cmb_state_open(&f->st, f->dir), CMB_ESTATE);
	char *want = xasprintf("state database %s is corrupt (file is not a database); cmbridge will not use it: "
			       "stop cmbridge, move the file (and any -wal and -shm files next to it) aside and start "
			       "again, which rebuilds the state with a full cycle, or restore a backup",
			       f->db);
	assert_string_equal(cmb_error_last(), want);
	free(want);
	free(prefix);
}

static void test_migrate_from_v0(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->dir, 0700), 0);
	raw_sql(f->db, "CREATE TABLE unrelated(x); INSERT INTO unrelated VALUES (42);");
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 0);
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_schema_version(st), 6);
	assert_int_equal(cmb_state_device_count(st), 0);
	cmb_state_close(st);
	f->st = NULL;
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 6);
	assert_int_equal(raw_count(f->db, "SELECT x FROM unrelated"), 42);
}

static void test_lock(void **state)
{
	struct fx *f = *state;
	open_ok(f);
	struct cmb_state *second = NULL;
	assert_int_equal(cmb_state_open(&second, f->dir), CMB_ESTATE);
	assert_null(second);
	char *want = xasprintf("another cmbridge is using %s (pid %ld)", f->dir, (long)getpid());
	assert_string_equal(cmb_error_last(), want);
	free(want);
	/* Released on close. */
	reopen(f);
}

static void test_cycles(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1, c2, c3;
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1000, &c1), 0);
	struct cmb_cycle_counts k = { .site_records = 10, .skipped = 1, .unchanged = 2, .added = 3, .changed = 4,
				      .removed = 5, .quarantined = 6, .rejected = 7, .upload_requests = 8,
				      .utf8_repairs = 9 };
	assert_int_equal(cmb_state_cycle_end(st, c1, 1100, "ok", &k, NULL), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2000, &c2), 0);
	struct cmb_cycle_counts k2 = { .site_records = 100000, .upload_requests = 200 };
	assert_int_equal(cmb_state_cycle_end(st, c2, 2100, "failed", &k2, "tenant: 503 Service Unavailable"), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 3000, &c3), 0);
	assert_true(c1 < c2 && c2 < c3);

	assert_int_equal(cmb_state_cycle_end(st, 999, 1, "ok", &k, NULL), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_cycle_begin(st, "a-kind-much-too-long", 1, &c3), CMB_EINVAL);

	struct cmb_cycle *cy = NULL;
	size_t n = 0;
	assert_int_equal(cmb_state_cycles_recent(st, 2, &cy, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(cy[0].id, c3);
	assert_string_equal(cy[0].kind, "delta");
	assert_int_equal(cy[0].started, 3000);
	assert_int_equal(cy[0].ended, 0);
	assert_string_equal(cy[0].status, "running");
	assert_null(cy[0].error);
	assert_int_equal(cy[0].counts.site_records, 0);
	assert_int_equal(cy[1].id, c2);
	assert_string_equal(cy[1].kind, "delta");
	assert_int_equal(cy[1].started, 2000);
	assert_int_equal(cy[1].ended, 2100);
	assert_string_equal(cy[1].status, "failed");
	assert_string_equal(cy[1].error, "tenant: 503 Service Unavailable");
	assert_memory_equal(&cy[1].counts, &k2, sizeof(k2));
	cmb_state_cycles_free(cy, n);

	assert_int_equal(cmb_state_cycles_recent(st, 10, &cy, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(cy[2].id, c1);
	assert_string_equal(cy[2].kind, "full");
	assert_string_equal(cy[2].status, "ok");
	assert_int_equal(cy[2].ended, 1100);
	assert_memory_equal(&cy[2].counts, &k, sizeof(k));
	cmb_state_cycles_free(cy, n);
	cmb_state_cycles_free(NULL, 0);
}

static void test_devices(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	char hash[65];
	char *tid = (char *)0x1;
	assert_int_equal(cmb_state_device_get(st, "k1", hash, NULL, &tid), CMB_ENOTFOUND);
	assert_ptr_equal(tid, (char *)0x1);
	assert_int_equal(cmb_state_device_count(st), 0);

	assert_int_equal(cmb_state_device_put(st, "k1", "tid-1", HASH_A, NULL, 1, 100), 0);
	assert_int_equal(cmb_state_device_put(st, "k2", NULL, HASH_A, NULL, 1, 100), 0);
	assert_int_equal(cmb_state_device_count(st), 2);
	assert_int_equal(cmb_state_device_get(st, "k2", hash, NULL, &tid), 0);
	assert_null(tid);
	assert_int_equal(cmb_state_device_get(st, "k1", hash, NULL, NULL), 0);
	assert_string_equal(hash, HASH_A);

	/* Replace: new hash; a NULL tenant id keeps the known one. */
	assert_int_equal(cmb_state_device_put(st, "k1", NULL, HASH_B, NULL, 2, 200), 0);
	assert_int_equal(cmb_state_device_get(st, "k1", hash, NULL, &tid), 0);
	assert_string_equal(hash, HASH_B);
	assert_string_equal(tid, "tid-1");
	free(tid);
	assert_int_equal(cmb_state_device_put(st, "k1", "tid-9", HASH_B, NULL, 2, 200), 0);
	assert_int_equal(cmb_state_device_get(st, "k1", hash, NULL, &tid), 0);
	assert_string_equal(tid, "tid-9");
	free(tid);
	assert_int_equal(cmb_state_device_count(st), 2);

	/* Seen for an unknown key is not an error and adds nothing. */
	assert_int_equal(cmb_state_device_seen(st, "unknown", 2), 0);
	assert_int_equal(cmb_state_device_count(st), 2);

	assert_int_equal(cmb_state_device_put(st, "k3", "tid-3", "short", NULL, 1, 1), CMB_EINVAL);
	assert_int_equal(cmb_state_device_put(st, "", "tid-3", HASH_A, NULL, 1, 1), CMB_EINVAL);

	assert_int_equal(cmb_state_device_delete(st, "k1"), 0);
	assert_int_equal(cmb_state_device_delete(st, "k1"), 0);
	assert_int_equal(cmb_state_device_get(st, "k1", hash, NULL, NULL), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_device_count(st), 1);

	/* A rolled-back transaction leaves nothing behind. */
	assert_int_equal(cmb_state_begin(st), 0);
	assert_int_equal(cmb_state_device_put(st, "k4", "tid-4", HASH_A, NULL, 1, 1), 0);
	assert_int_equal(cmb_state_device_count(st), 2);
	assert_int_equal(cmb_state_rollback(st), 0);
	assert_int_equal(cmb_state_device_count(st), 1);
	assert_int_equal(cmb_state_rollback(st), 0); /* nothing open: fine */
}

struct keys {
	char buf[8192];
	int n;
	struct cmb_state *st;  /* when set, the callback deletes what it gets */
};

static int collect_unseen(void *ctx, const char *key, const char *tenant_id)
{
	struct keys *k = ctx;
	if (k->st)
		assert_int_equal(cmb_state_device_delete(k->st, key), 0);
	k->n++;
	if (strlen(k->buf) + strlen(key) + 40 < sizeof(k->buf)) {
		strcat(k->buf, key);
		strcat(k->buf, "=");
		strcat(k->buf, tenant_id ? tenant_id : "(null)");
		strcat(k->buf, " ");
	}
	return 0;
}

static int stop_after_two(void *ctx, const char *key, const char *tenant_id)
{
	struct keys *k = ctx;
	return ++k->n == 2 ? 7 : 0;
}

/* A one-number query on the state's own connection (its TEMP tables are its own). */
static long conn_count(struct cmb_state *st, const char *sql)
{
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(st->db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	long n = (long)sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return n;
}

/*
 * Staged records never reach the file (TEMP, schema 6) and go with the
 * connection at the cycle's end, and a new file gives pages back once
 * their rows are dropped (cmb_state_compact).
 */
static void test_compact(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1;
	char key[16], body[2048], text[32];
	memset(body, 'x', sizeof(body));
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	raw_text(f->db, "PRAGMA page_count", text, sizeof(text));
	long empty = strtol(text, NULL, 10);
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		assert_int_equal(cmb_state_pending_add(st, c1, key, HASH_A, HASH_A, CMB_PENDING_ADD, body, sizeof(body)), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	assert_int_equal(cmb_state_pending_count(st, c1), 2000);
	/* 4 MB staged: the state file did not grow by a page. */
	raw_text(f->db, "PRAGMA page_count", text, sizeof(text));
	assert_int_equal(strtol(text, NULL, 10), empty);
	long temp_pages = conn_count(st, "PRAGMA temp.page_count");
	assert_true(temp_pages > 1000);
	/* No pointer-map pages to keep up as the staging grows (they cost a full sync a third more CPU). */
	assert_int_equal(conn_count(st, "PRAGMA temp.auto_vacuum"), 0);
	sqlite3 *old_db = st->db;
	/*
	 * The TEMP file goes with a new connection (a daemon's would live as
	 * long as the process): the staged records and the cycle's marks are
	 * gone, the statements work on the new connection, the lock is held.
	 */
	assert_int_equal(cmb_state_device_seen(st, "PS1:16777220", c1), 0);
	assert_int_equal(conn_count(st, "SELECT count(*) FROM temp.seen"), 1);
	assert_int_equal(cmb_state_compact(st), 0);
	assert_ptr_not_equal(st->db, old_db);
	assert_int_equal(cmb_state_pending_count(st, c1), 0);
	assert_int_equal(conn_count(st, "SELECT count(*) FROM temp.seen"), 0);
	assert_true(conn_count(st, "PRAGMA temp.page_count") < 20);
	assert_int_equal(conn_count(st, "PRAGMA foreign_keys"), 1);
	assert_int_equal(conn_count(st, "PRAGMA synchronous"), 1);
	assert_int_equal(conn_count(st, "PRAGMA temp.cache_size"), -16384);
	struct cmb_state *second = NULL;
	assert_int_equal(cmb_state_open(&second, f->dir), CMB_ESTATE);
	assert_null(second);
	/* Inside a transaction the connection stays: the staged records are dropped. */
	assert_int_equal(cmb_state_begin(st), 0);
	assert_int_equal(cmb_state_pending_add(st, c1, "k0", HASH_A, HASH_A, CMB_PENDING_ADD, body, sizeof(body)), 0);
	old_db = st->db;
	assert_int_equal(cmb_state_compact(st), 0);
	assert_ptr_equal(st->db, old_db);
	assert_int_equal(cmb_state_pending_count(st, c1), 0);
	assert_int_equal(cmb_state_commit(st), 0);

	raw_text(f->db, "PRAGMA auto_vacuum", text, sizeof(text));
	assert_string_equal(text, "2");
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "PS1:%d", 16777220 + i);
		assert_int_equal(cmb_state_device_put(st, key, "7835212c-5657-58fc-b2e0-dc76335f8756", HASH_A, HASH_B, c1,
						      1), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	/* Nothing to give back while the rows are there. */
	assert_int_equal(cmb_state_compact(st), 0);
	raw_text(f->db, "PRAGMA page_count", text, sizeof(text));
	long full = strtol(text, NULL, 10);
	assert_true(full > 500);
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "PS1:%d", 16777220 + i);
		assert_int_equal(cmb_state_device_delete(st, key), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	assert_int_equal(cmb_state_compact(st), 0);
	raw_text(f->db, "PRAGMA page_count", text, sizeof(text));
	assert_true(strtol(text, NULL, 10) < full / 10);
	raw_text(f->db, "PRAGMA freelist_count", text, sizeof(text));
	assert_string_equal(text, "0");
}

static void test_unseen(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1, c2;
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	assert_int_equal(cmb_state_device_put(st, "d", "tid-d", HASH_A, NULL, c1, 1), 0);
	assert_int_equal(cmb_state_device_put(st, "b", NULL, HASH_A, NULL, c1, 1), 0);
	assert_int_equal(cmb_state_device_put(st, "a", "tid-a", HASH_A, NULL, c1, 1), 0);
	assert_int_equal(cmb_state_device_put(st, "c", "tid-c", HASH_A, NULL, c1, 1), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2, &c2), 0);
	assert_int_equal(cmb_state_device_seen(st, "c", c2), 0);
	assert_int_equal(cmb_state_device_put(st, "e", "tid-e", HASH_A, NULL, c2, 2), 0);

	struct keys k = { .n = 0 };
	assert_int_equal(cmb_state_devices_unseen(st, c2, collect_unseen, &k), 0);
	assert_string_equal(k.buf, "a=tid-a b=(null) d=tid-d ");
	memset(&k, 0, sizeof(k));
	assert_int_equal(cmb_state_devices_unseen(st, c1, collect_unseen, &k), 0);
	assert_string_equal(k.buf, "c=tid-c e=tid-e ");
	memset(&k, 0, sizeof(k));
	assert_int_equal(cmb_state_devices_unseen(st, c2, stop_after_two, &k), 7);
	assert_int_equal(k.n, 2);

	/* Across several pages, deleting each device from the callback. */
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 1000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "x%04d", i);
		assert_int_equal(cmb_state_device_put(st, key, "t", HASH_A, NULL, c1, 1), 0);
		if (i % 3 == 0)
			assert_int_equal(cmb_state_device_seen(st, key, c2), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	memset(&k, 0, sizeof(k));
	k.st = st;
	assert_int_equal(cmb_state_devices_unseen(st, c2, collect_unseen, &k), 0);
	assert_int_equal(k.n, 3 + 666);
	/* Left: c, e and the x keys seen in c2. */
	assert_int_equal(cmb_state_device_count(st), 2 + 334);
	memset(&k, 0, sizeof(k));
	assert_int_equal(cmb_state_devices_unseen(st, c2, collect_unseen, &k), 0);
	assert_int_equal(k.n, 0);
}

struct pend {
	char buf[1024];
	char last[32];
	char body[16];       /* the last body, raw */
	size_t body_len;
	int n;
};

static int collect_pending(void *ctx, const char *key, const char *hash, const char *stable_hash,
			   enum cmb_pending_kind kind, const char *json, size_t json_len)
{
	struct pend *p = ctx;
	char line[128];
	/* The kind as the stored integer: 0 changed, 1 new, 2 refresh. */
	snprintf(line, sizeof(line), "%s:%c:%d:%.*s ", key, hash[0], (int)kind, (int)json_len, json);
	strncat(p->buf, line, sizeof(p->buf) - strlen(p->buf) - 1);
	snprintf(p->last, sizeof(p->last), "%s", key);
	p->body_len = json_len;
	memcpy(p->body, json, json_len < sizeof(p->body) ? json_len : sizeof(p->body));
	p->n++;
	return 0;
}

static void test_pending(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1, c2;
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "full", 2, &c2), 0);
	assert_int_equal(cmb_state_pending_add(st, c1, "k3", HASH_A, HASH_B, CMB_PENDING_ADD, "{\"n\":3}", 7), 0);
	assert_int_equal(cmb_state_pending_add(st, c1, "k1", HASH_B, HASH_B, CMB_PENDING_CHANGE, "{\"n\":1}", 7), 0);
	assert_int_equal(cmb_state_pending_add(st, c1, "k2", HASH_A, HASH_B, CMB_PENDING_ADD, "{\"n\":2}", 7), 0);
	assert_int_equal(cmb_state_pending_add(st, c1, "k4", HASH_A, HASH_B, CMB_PENDING_CHANGE, "{\"n\":4}xxx", 7), 0);
	assert_int_equal(cmb_state_pending_add(st, c2, "k0", HASH_A, HASH_B, CMB_PENDING_ADD, "{}", 2), 0);
	/* A second add of the same key replaces the first. */
	assert_int_equal(cmb_state_pending_add(st, c1, "k2", HASH_B, HASH_B, CMB_PENDING_CHANGE, "{\"n\":22}", 8), 0);
	/* Binary-safe: the body is a length, not a C string. */
	assert_int_equal(cmb_state_pending_add(st, c2, "k5", HASH_A, HASH_B, CMB_PENDING_ADD, "a\0b", 3), 0);
	assert_int_equal(cmb_state_pending_count(st, c1), 4);
	assert_int_equal(cmb_state_pending_count(st, c2), 2);

	struct pend p = { .n = 0 };
	assert_int_equal(cmb_state_pending_each(st, c1, NULL, 100, collect_pending, &p), 0);
	assert_string_equal(p.buf, "k1:b:0:{\"n\":1} k2:b:0:{\"n\":22} k3:a:1:{\"n\":3} k4:a:0:{\"n\":4} ");

	/* Paging: two at a time from where the last page ended. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_pending_each(st, c1, NULL, 2, collect_pending, &p), 0);
	assert_string_equal(p.buf, "k1:b:0:{\"n\":1} k2:b:0:{\"n\":22} ");
	char after[32];
	snprintf(after, sizeof(after), "%s", p.last);
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_pending_each(st, c1, after, 2, collect_pending, &p), 0);
	assert_string_equal(p.buf, "k3:a:1:{\"n\":3} k4:a:0:{\"n\":4} ");
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_pending_each(st, c1, "k4", 2, collect_pending, &p), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(cmb_state_pending_each(st, c1, NULL, 0, collect_pending, &p), 0);
	assert_int_equal(p.n, 0);

	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_pending_each(st, c2, "k0", 10, collect_pending, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.body_len, 3);
	assert_memory_equal(p.body, "a\0b", 3);

	assert_int_equal(cmb_state_pending_clear(st), 0);
	assert_int_equal(cmb_state_pending_count(st, c1), 0);
	assert_int_equal(cmb_state_pending_count(st, c2), 0);
}

static int collect_quarantine(void *ctx, const char *key, enum cmb_quarantine_kind kind, const char *reason,
			      int64_t when)
{
	struct pend *p = ctx;
	char line[128];
	snprintf(line, sizeof(line), "%s:%s:%s:%lld ", key, cmb_state_quarantine_kind_name(kind), reason,
		 (long long)when);
	strncat(p->buf, line, sizeof(p->buf) - strlen(p->buf) - 1);
	p->n++;
	return 0;
}

static int collect_dup(void *ctx, const char *key, const char *winner)
{
	struct pend *p = ctx;
	char line[128];
	snprintf(line, sizeof(line), "%s<%s ", key, winner);
	strncat(p->buf, line, sizeof(p->buf) - strlen(p->buf) - 1);
	p->n++;
	return 0;
}

/* Stable hashes, unsee, meta values, duplicate detection and collections (schema v1 additions). */
static void test_sync_support(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1;
	char hash[65], stable[65];
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 1, &c1), 0);
	assert_int_equal(cmb_state_device_put(st, "k1", "t1", HASH_A, HASH_B, c1, 1), 0);
	assert_int_equal(cmb_state_device_get(st, "k1", hash, stable, NULL), 0);
	assert_string_equal(hash, HASH_A);
	assert_string_equal(stable, HASH_B);

	/* unsee only undoes this cycle's mark */
	assert_int_equal(cmb_state_device_seen(st, "k1", c1), 0);
	assert_int_equal(cmb_state_device_unsee(st, "k1", c1 + 1), 0);
	struct pend p = { .n = 0 };
	assert_int_equal(cmb_state_device_unsee(st, "k1", c1), 0);

	int64_t v = 0;
	assert_int_equal(cmb_state_meta_get(st, "last_details_refresh", &v), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_meta_set(st, "last_details_refresh", 1234), 0);
	assert_int_equal(cmb_state_meta_set(st, "last_details_refresh", 5678), 0);
	assert_int_equal(cmb_state_meta_get(st, "last_details_refresh", &v), 0);
	assert_int_equal(v, 5678);

	/* a: hw X (older), b: hw X (newer) -> a loses to b; c: smbios S, d: smbios S same time, higher id -> c loses;
	 * e: no identity at all never matches; f: hw Y alone. */
	assert_int_equal(cmb_state_identity_clear(st), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:1", "X", "", 100, 1), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:2", "X", "", 200, 2), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:3", "", "S", 300, 3), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:4", "", "S", 300, 4), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:5", "", "", 50, 5), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:6", "", "", 60, 6), 0);
	assert_int_equal(cmb_state_identity_add(st, "PS1:7", "Y", "T", 10, 7), 0);
	assert_int_equal(cmb_state_identity_losers(st, collect_dup, &p), 0);
	assert_string_equal(p.buf, "PS1:1<PS1:2 PS1:3<PS1:4 ");
	assert_int_equal(cmb_state_identity_clear(st), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_identity_losers(st, collect_dup, &p), 0);
	assert_int_equal(p.n, 0);

	/* pending_remove says whether something was staged */
	int removed = -1;
	assert_int_equal(cmb_state_pending_add(st, c1, "k1", HASH_A, HASH_B, CMB_PENDING_ADD, "{}", 2), 0);
	assert_int_equal(cmb_state_pending_remove(st, c1, "k1", &removed), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(cmb_state_pending_remove(st, c1, "k1", &removed), 0);
	assert_int_equal(removed, 0);

	/* collections keep their first createdDateTime */
	char created[32];
	assert_int_equal(cmb_state_collection_get(st, "PS1:PS100010", hash, created), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_collection_put(st, "PS1:PS100010", "cid", HASH_A, "2026-01-01T00:00:00Z"), 0);
	assert_int_equal(cmb_state_collection_put(st, "PS1:PS100010", NULL, HASH_B, "2026-05-05T00:00:00Z"), 0);
	assert_int_equal(cmb_state_collection_put(st, "PS1:PS100011", "cid2", HASH_A, "2026-02-02T00:00:00Z"), 0);
	assert_int_equal(cmb_state_collection_get(st, "PS1:PS100010", hash, created), 0);
	assert_string_equal(hash, HASH_B);
	assert_string_equal(created, "2026-01-01T00:00:00Z");
	char **keys;
	size_t n;
	assert_int_equal(cmb_state_collection_keys(st, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0], "PS1:PS100010");
	assert_string_equal(keys[1], "PS1:PS100011");
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	assert_int_equal(cmb_state_collection_delete(st, "PS1:PS100010"), 0);
	assert_int_equal(cmb_state_collection_get(st, "PS1:PS100010", hash, created), CMB_ENOTFOUND);
}

static void test_quarantine(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_quarantine_count(st), 0);
	assert_int_equal(cmb_state_quarantine_put(st, "k2", CMB_QUARANTINE_MAPPING, "name is not UTF-8", NULL, 1, 100), 0);
	assert_int_equal(cmb_state_quarantine_put(st, "k1", CMB_QUARANTINE_REJECTED, "rejected by tenant: 400", HASH_A, 1,
						  110),
			 0);
	assert_int_equal(cmb_state_quarantine_put(st, "k3", CMB_QUARANTINE_MAPPING, "too big", NULL, 1, 120), 0);
	/* Quarantined again: new reason, but "since" stays the first time. */
	assert_int_equal(cmb_state_quarantine_put(st, "k2", CMB_QUARANTINE_MAPPING, "still not UTF-8", NULL, 2, 200), 0);
	assert_int_equal(cmb_state_quarantine_count(st), 3);
	struct pend p = { .n = 0 };
	assert_int_equal(cmb_state_quarantine_each(st, collect_quarantine, &p), 0);
	assert_string_equal(p.buf,
			    "k1:rejected:rejected by tenant: 400:110 k2:mapping:still not UTF-8:100 k3:mapping:too big:120 ");
	enum cmb_quarantine_kind kind;
	char hash[65];
	assert_int_equal(cmb_state_quarantine_get(st, "k1", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_REJECTED);
	assert_string_equal(hash, HASH_A);
	assert_int_equal(cmb_state_quarantine_get(st, "k3", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_MAPPING);
	assert_string_equal(hash, "");
	assert_int_equal(cmb_state_quarantine_get(st, "k9", &kind, hash), CMB_ENOTFOUND);
	/* A change of kind restarts "since". */
	assert_int_equal(cmb_state_quarantine_put(st, "k3", CMB_QUARANTINE_DUPLICATE, "dup of k4", NULL, 3, 300), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_quarantine_each(st, collect_quarantine, &p), 0);
	assert_string_equal(p.buf, "k1:rejected:rejected by tenant: 400:110 k2:mapping:still not UTF-8:100 "
				   "k3:duplicate:dup of k4:300 ");
	assert_int_equal(cmb_state_quarantine_remove(st, "k2"), 0);
	assert_int_equal(cmb_state_quarantine_remove(st, "nope"), 0);
	assert_int_equal(cmb_state_quarantine_count(st), 2);
	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_quarantine_each(st, collect_quarantine, &p), 0);
	assert_string_equal(p.buf, "k1:rejected:rejected by tenant: 400:110 k3:duplicate:dup of k4:300 ");
}

/* What the sync engine does per site device, for 100,000 devices in one transaction. */
static void test_100k(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	const int n = 100000;
	int64_t c1, c2;
	char key[32], hash[65];

	double t0 = cmb_now_mono();
	assert_int_equal(cmb_state_begin(st), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%d", 16777216 + i);
		assert_int_equal(cmb_state_device_get(st, key, hash, NULL, NULL), CMB_ENOTFOUND);
		assert_int_equal(cmb_state_device_seen(st, key, c1), 0);
		assert_int_equal(cmb_state_device_put(st, key, NULL, HASH_A, NULL, c1, 1), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	double t1 = cmb_now_mono();

	assert_int_equal(cmb_state_begin(st), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2, &c2), 0);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%d", 16777216 + i);
		assert_int_equal(cmb_state_device_get(st, key, hash, NULL, NULL), 0);
		assert_int_equal(cmb_state_device_seen(st, key, c2), 0);
		if (i % 10 == 0)
			assert_int_equal(cmb_state_pending_add(st, c2, key, HASH_B, HASH_B, CMB_PENDING_CHANGE,
							       "{\"displayName\":\"PC\"}", 20),
					 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	double t2 = cmb_now_mono();

	assert_int_equal(cmb_state_device_count(st), n);
	assert_int_equal(cmb_state_pending_count(st, c2), n / 10);
	struct keys k = { .n = 0 };
	assert_int_equal(cmb_state_devices_unseen(st, c2, collect_unseen, &k), 0);
	assert_int_equal(k.n, 0);
	print_message("100k devices: first cycle (get+seen+put) %.2f s, second (get+seen, 10%% staged) %.2f s\n",
		      t1 - t0, t2 - t1);
}

/* ---- typed values: the texts each enum stores, pinned as earlier cmbridge wrote them ---- */

struct pinned {
	int value;
	const char *text;
};

#define COUNT_ONE(constant, text) +1

static void check_pinned(const struct pinned *p, size_t n, size_t listed, const char *(*name)(int),
			 int (*parse)(const char *, int *))
{
	assert_int_equal(n, listed); /* every value of the X-macro list is pinned here */
	for (size_t i = 0; i < n; i++) {
		int v = -1;
		if (p[i].text)
			assert_string_equal(name(p[i].value), p[i].text);
		else
			assert_null(name(p[i].value));
		assert_int_equal(parse(p[i].text, &v), 0);
		assert_int_equal(v, p[i].value);
	}
	int untouched = 42;
	assert_null(name((int)n + 5));
	assert_null(name(-1));
	assert_int_equal(parse("bogus", &untouched), CMB_EINVAL);
	assert_int_equal(untouched, 42);
	assert_non_null(strstr(cmb_error_last(), "\"bogus\" (known: "));
}

/* int-typed views of the generated functions, so one checker serves every enum. */
#define INT_VIEW(fn, type) \
	static const char *fn##_n(int v) { return fn##_name((type)v); } \
	static int fn##_p(const char *t, int *v) \
	{ \
		type e; \
		int rc = fn##_parse(t, &e); \
		if (rc == 0) \
			*v = (int)e; \
		return rc; \
	}
INT_VIEW(cmb_state_action_state, enum cmb_action_state)
INT_VIEW(cmb_state_intent_kind, enum cmb_intent_kind)
INT_VIEW(cmb_state_intent_outcome, enum cmb_intent_outcome)
INT_VIEW(cmb_state_audit_event, enum cmb_audit_event)
INT_VIEW(cmb_state_quarantine_kind, enum cmb_quarantine_kind)
INT_VIEW(cmb_state_pending_kind, enum cmb_pending_kind)
#define CHECK_PINNED(fn, table, LIST) \
	check_pinned(table, sizeof(table) / sizeof(table[0]), 0 LIST(COUNT_ONE), fn##_n, fn##_p)

static void test_enum_texts(void **state)
{
	static const struct pinned action_states[] = {
		{ CMB_ACTION_STATE_RECEIVED, "received" }, { CMB_ACTION_STATE_INTENT, "intent" },
		{ CMB_ACTION_STATE_DELIVERED, "delivered" }, { CMB_ACTION_STATE_DONE, "done" },
		{ CMB_ACTION_STATE_FAILED, "failed" }, { CMB_ACTION_STATE_NOT_SUPPORTED, "notSupported" },
	};
	static const struct pinned intent_kinds[] = {
		{ CMB_INTENT_OPERATION, "operation" }, { CMB_INTENT_BLOCK, "block" },
	};
	static const struct pinned outcomes[] = {
		{ CMB_OUTCOME_NONE, NULL }, { CMB_OUTCOME_ISSUED, "issued" }, { CMB_OUTCOME_ADOPTED, "adopted" },
		{ CMB_OUTCOME_REFUSED, "refused" }, { CMB_OUTCOME_BLOCKED, "blocked" }, { CMB_OUTCOME_UNKNOWN, "unknown" },
		{ CMB_OUTCOME_EXPIRED, "expired" },
	};
	static const struct pinned events[] = {
		{ CMB_AUDIT_RECEIVED, "received" }, { CMB_AUDIT_REFUSED, "refused" }, { CMB_AUDIT_STAGING, "staging" },
		{ CMB_AUDIT_DELIVERED, "delivered" }, { CMB_AUDIT_DONE, "done" }, { CMB_AUDIT_FAILED, "failed" },
	};
	static const struct pinned quarantine_kinds[] = {
		{ CMB_QUARANTINE_MAPPING, "mapping" }, { CMB_QUARANTINE_REJECTED, "rejected" },
		{ CMB_QUARANTINE_DUPLICATE, "duplicate" },
	};
	/* Stored as the value (pending.is_new); the text is what `cmbridge diff` prints. */
	static const struct pinned pending_kinds[] = {
		{ 0, "change" }, { 1, "add" }, { 2, "refresh" },
	};
	CHECK_PINNED(cmb_state_action_state, action_states, CMB_ACTION_STATES);
	CHECK_PINNED(cmb_state_intent_kind, intent_kinds, CMB_INTENT_KINDS);
	CHECK_PINNED(cmb_state_intent_outcome, outcomes, CMB_INTENT_OUTCOMES);
	CHECK_PINNED(cmb_state_audit_event, events, CMB_AUDIT_EVENTS);
	CHECK_PINNED(cmb_state_quarantine_kind, quarantine_kinds, CMB_QUARANTINE_KINDS);
	CHECK_PINNED(cmb_state_pending_kind, pending_kinds, CMB_PENDING_KINDS);
	assert_int_equal(CMB_PENDING_CHANGE, 0);
	assert_int_equal(CMB_PENDING_ADD, 1);
	assert_int_equal(CMB_PENDING_REFRESH, 2);
	/* Text and NULL do not mix: only the outcome has a value stored as NULL. */
	enum cmb_action_state as = CMB_ACTION_STATE_DONE;
	assert_int_equal(cmb_state_action_state_parse(NULL, &as), CMB_EINVAL);
	assert_int_equal(as, CMB_ACTION_STATE_DONE);
	enum cmb_intent_outcome oc = CMB_OUTCOME_ISSUED;
	assert_int_equal(cmb_state_intent_outcome_parse("", &oc), CMB_EINVAL);
	assert_int_equal(oc, CMB_OUTCOME_ISSUED);
}

/*
 * Rows exactly as cmbridge wrote them before its values were enums (dumped
 * from a database the earlier code wrote), over the unchanged schema v3
 * (its pending rows left out: schema 6 stages in TEMP, see
 * test_migrate_from_v3 for a file that still has them).
 */
static const char old_rows[] =
	"INSERT INTO cycles(id, kind, started) VALUES (1, 'full', 1000);"
	"INSERT INTO quarantine VALUES('PS1:4','mapping','bad name',NULL,1,1001);"
	"INSERT INTO quarantine VALUES('PS1:5','rejected','rejected by the tenant: 400','" HASH_A "',1,1002);"
	"INSERT INTO quarantine VALUES('PS1:6','duplicate','dup of PS1:7',NULL,1,1003);"
	"INSERT INTO actions VALUES('a0','dev','PS1:10',10,'syncDevice','admin@x',2000,9000,2000000,'received',"
	"'deliveredToConnectorService',0,0,0,NULL,2000);"
	"INSERT INTO actions VALUES('a1','dev','PS1:11',11,'syncDevice','admin@x',2001,9000,2000001,'intent',"
	"'deliveredToConnectorService',0,0,0,NULL,2001);"
	"INSERT INTO actions VALUES('a2','dev','PS1:12',12,'syncDevice','admin@x',2002,9000,2000002,'delivered',"
	"'deliveredToConnectorService',0,0,0,NULL,2002);"
	"INSERT INTO actions VALUES('a3','dev','PS1:13',13,'syncDevice','admin@x',2003,9000,2000003,'done',"
	"'deliveredToConnectorService',0,0,0,NULL,2003);"
	"INSERT INTO actions VALUES('a4','dev','PS1:14',14,'syncDevice','admin@x',2004,9000,2000004,'failed',"
	"'deliveredToConnectorService',0,0,0,NULL,2004);"
	"INSERT INTO actions VALUES('a5','dev','PS1:15',15,'syncDevice','admin@x',2005,9000,2000005,'notSupported',"
	"'deliveredToConnectorService',0,0,0,NULL,2005);"
	"INSERT INTO journal VALUES(1,'operation',8,'[10,11]','" HASH_A "',4000,-1,NULL,0,0);"
	"INSERT INTO journal VALUES(2,'operation',8,'[10,11]','" HASH_A "',4001,101,'issued',0,0);"
	"INSERT INTO journal VALUES(3,'operation',8,'[10,11]','" HASH_A "',4002,102,'adopted',0,0);"
	"INSERT INTO journal VALUES(4,'operation',8,'[10,11]','" HASH_A "',4003,103,'refused',0,0);"
	"INSERT INTO journal VALUES(5,'block',8,'[10,11]','" HASH_A "',4004,-1,'blocked',0,0);"
	"INSERT INTO journal VALUES(6,'operation',8,'[10,11]','" HASH_A "',4005,105,'unknown',0,0);"
	"INSERT INTO journal VALUES(7,'operation',8,'[10,11]','" HASH_A "',4006,106,'expired',0,0);"
	"INSERT INTO audit VALUES(1,3000,'a0','admin@x','dev','PS1:10','syncDevice',2000,'received','pending',NULL);"
	"INSERT INTO audit VALUES(2,3001,'a1','admin@x','dev','PS1:11','syncDevice',2001,'refused','pending','why');"
	"INSERT INTO audit VALUES(3,3002,'a2','admin@x','dev','PS1:12','syncDevice',2002,'staging','pending',NULL);"
	"INSERT INTO audit VALUES(4,3003,'a3','admin@x','dev','PS1:13','syncDevice',2003,'delivered','pending',NULL);"
	"INSERT INTO audit VALUES(5,3004,'a4','admin@x','dev','PS1:14','syncDevice',2004,'done','pending',NULL);"
	"INSERT INTO audit VALUES(6,3005,'a5','admin@x','dev','PS1:15','syncDevice',2005,'failed','pending',NULL);";

static int collect_audit(void *ctx, const struct cmb_audit_entry *e)
{
	struct pend *p = ctx;
	char line[128];
	snprintf(line, sizeof(line), "%lld:%s:%s:%s ", (long long)e->seq, e->action_id,
		 cmb_state_audit_event_name(e->event), e->reason ? e->reason : "-");
	strncat(p->buf, line, sizeof(p->buf) - strlen(p->buf) - 1);
	p->n++;
	return 0;
}

/* A database written with the old strings reads the same, and what is written now is spelled as before. */
static void test_old_database(void **state)
{
	struct fx *f = *state;
	cmb_state_close(open_ok(f)); /* the schema, made by the unchanged migrations */
	f->st = NULL;
	raw_sql(f->db, old_rows);
	struct cmb_state *st = open_ok(f);

	struct pend p = { .n = 0 };
	assert_int_equal(cmb_state_quarantine_each(st, collect_quarantine, &p), 0);
	assert_string_equal(p.buf, "PS1:4:mapping:bad name:1001 PS1:5:rejected:rejected by the tenant: 400:1002 "
				   "PS1:6:duplicate:dup of PS1:7:1003 ");
	enum cmb_quarantine_kind qk;
	char hash[65];
	assert_int_equal(cmb_state_quarantine_get(st, "PS1:5", &qk, hash), 0);
	assert_int_equal(qk, CMB_QUARANTINE_REJECTED);
	assert_string_equal(hash, HASH_A);

	struct cmb_action *list = NULL;
	size_t n = 0;
	assert_int_equal(cmb_state_actions_recent(st, 10, &list, &n), 0);
	assert_int_equal(n, 6);
	const enum cmb_action_state newest_first[] = {
		CMB_ACTION_STATE_NOT_SUPPORTED, CMB_ACTION_STATE_FAILED, CMB_ACTION_STATE_DONE,
		CMB_ACTION_STATE_DELIVERED, CMB_ACTION_STATE_INTENT, CMB_ACTION_STATE_RECEIVED,
	};
	for (size_t i = 0; i < n; i++)
		assert_int_equal(list[i].state, newest_first[i]);
	assert_string_equal(list[0].id, "a5");
	assert_string_equal(list[0].delivery, "deliveredToConnectorService");
	cmb_state_actions_free(list, n);
	assert_int_equal(cmb_state_actions_by_state(st, CMB_ACTION_STATE_INTENT, 10, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, "a1");
	cmb_state_actions_free(list, n);
	assert_int_equal(cmb_state_actions_open(st), 3);
	for (size_t i = 0; i < 6; i++) /* one action in each state */
		assert_int_equal(cmb_state_actions_count(st, newest_first[i]), 1);

	struct cmb_intent *its = NULL;
	assert_int_equal(cmb_state_intents_open(st, &its, &n), 0);
	assert_int_equal(n, 7);
	const enum cmb_intent_outcome outcomes[] = {
		CMB_OUTCOME_NONE, CMB_OUTCOME_ISSUED, CMB_OUTCOME_ADOPTED, CMB_OUTCOME_REFUSED,
		CMB_OUTCOME_BLOCKED, CMB_OUTCOME_UNKNOWN, CMB_OUTCOME_EXPIRED,
	};
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(its[i].id, (int64_t)i + 1);
		assert_int_equal(its[i].outcome, outcomes[i]);
		assert_int_equal(its[i].kind, i == 4 ? CMB_INTENT_BLOCK : CMB_INTENT_OPERATION);
	}
	assert_string_equal(its[0].targets, "[10,11]");
	cmb_state_intents_free(its, n);
	int known = -1;
	assert_int_equal(cmb_state_intent_operation_known(st, 101, &known), 0);
	assert_int_equal(known, 1);
	assert_int_equal(cmb_state_intent_operation_known(st, 999, &known), 0);
	assert_int_equal(known, 0);

	memset(&p, 0, sizeof(p));
	assert_int_equal(cmb_state_audit_each(st, NULL, collect_audit, &p), 0);
	assert_string_equal(p.buf, "1:a0:received:- 2:a1:refused:why 3:a2:staging:- 4:a3:delivered:- 5:a4:done:- "
				   "6:a5:failed:- ");

	/* Written now: the same spellings, read back by another connection. */
	int64_t id;
	char text[64];
	struct cmb_action a = { .id = "n1", .device_id = "dev", .key = "PS1:20", .action = "syncDevice",
				.state = CMB_ACTION_STATE_RECEIVED, .delivery = "deliveredToConnectorService" };
	assert_int_equal(cmb_state_action_add(st, &a, NULL), 0);
	assert_int_equal(cmb_state_action_update(st, "n1", CMB_ACTION_STATE_NOT_SUPPORTED, "deliveredToConnectorService",
						 0, NULL, -1, -1, 1),
			 0);
	assert_int_equal(cmb_state_intent_add(st, CMB_INTENT_BLOCK, 0, "[20]", HASH_B, 5000, &id), 0);
	assert_int_equal(cmb_state_intent_add(st, CMB_INTENT_OPERATION, 8, "[21]", HASH_B, 5001, &id), 0);
	assert_int_equal(cmb_state_intent_outcome(st, id, 77, CMB_OUTCOME_ADOPTED), 0);
	struct cmb_audit_entry e = { .at = 1, .action_id = "n1", .event = CMB_AUDIT_STAGING, .outcome = "pending" };
	assert_int_equal(cmb_state_audit_add(st, &e), 0);
	assert_int_equal(cmb_state_quarantine_put(st, "PS1:20", CMB_QUARANTINE_DUPLICATE, "dup", NULL, 1, 1), 0);
	assert_int_equal(cmb_state_pending_add(st, 1, "PS1:21", HASH_B, HASH_B, CMB_PENDING_REFRESH, "{}", 2), 0);
	/* The staged record is the connection's (TEMP): its kind stored as the value. */
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(st->db, "SELECT is_new FROM temp.pending WHERE key = 'PS1:21'", -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 2);
	sqlite3_finalize(q);
	cmb_state_close(st);
	f->st = NULL;
	raw_text(f->db, "SELECT state FROM actions WHERE id = 'n1'", text, sizeof(text));
	assert_string_equal(text, "notSupported");
	raw_text(f->db, "SELECT group_concat(kind || '/' || coalesce(outcome, 'NULL'), ' ') FROM journal WHERE id > 7",
		 text, sizeof(text));
	assert_string_equal(text, "block/NULL operation/adopted");
	raw_text(f->db, "SELECT event FROM audit WHERE action_id = 'n1'", text, sizeof(text));
	assert_string_equal(text, "staging");
	raw_text(f->db, "SELECT kind FROM quarantine WHERE key = 'PS1:20'", text, sizeof(text));
	assert_string_equal(text, "duplicate");
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'pending'"), 0);
}

/* Opens the fixture's database, runs sql over the raw file, and reopens. */
static struct cmb_state *reopen_after(struct fx *f, const char *sql)
{
	cmb_state_close(f->st);
	f->st = NULL;
	raw_sql(f->db, sql);
	return open_ok(f);
}

static int count_only(void *ctx, const struct cmb_audit_entry *e)
{
	(*(int *)ctx)++;
	return 0;
}

static int count_quarantined(void *ctx, const char *key, enum cmb_quarantine_kind kind, const char *reason,
			     int64_t since)
{
	(*(int *)ctx)++;
	return 0;
}

/* A stored value this cmbridge does not know is an error naming table, key and value: never mapped. */
static void test_unknown_values(void **state)
{
	struct fx *f = *state;
	open_ok(f);
	reopen_after(f, old_rows);
	struct cmb_state *st = reopen_after(f, "UPDATE actions SET state = 'paused' WHERE id = 'a2'");
	struct cmb_action *list = (struct cmb_action *)0x1;
	size_t n = 99;
	assert_int_equal(cmb_state_actions_recent(st, 10, &list, &n), CMB_ESTATE);
	assert_ptr_equal(list, (struct cmb_action *)0x1); /* untouched */
	assert_int_equal(n, 99);
	char *want = xasprintf("state database %s: table actions, key \"a2\": unknown state \"paused\" (this cmbridge "
			       "knows received, intent, delivered, done, failed, notSupported); the database was "
			       "changed by another program or a newer cmbridge, and this one will not guess what it "
			       "means",
			       f->db);
	assert_string_equal(cmb_error_last(), want);
	free(want);
	struct cmb_action a = { .id = (char *)"untouched" };
	assert_int_equal(cmb_state_action_get(st, "a2", &a), CMB_ESTATE);
	assert_string_equal(a.id, "untouched");
	assert_int_equal(cmb_state_action_get(st, "a1", &a), 0);
	assert_int_equal(a.state, CMB_ACTION_STATE_INTENT);
	cmb_state_action_clear(&a);

	st = reopen_after(f, "UPDATE journal SET outcome = '' WHERE id = 3");
	struct cmb_intent *its = NULL;
	assert_int_equal(cmb_state_intents_open(st, &its, &n), CMB_ESTATE);
	assert_non_null(strstr(cmb_error_last(), ": table journal, key 3: unknown outcome \"\" (this cmbridge knows "
						 "issued, adopted, refused, blocked, unknown, expired)"));
	st = reopen_after(f, "UPDATE journal SET outcome = NULL WHERE id = 3; UPDATE journal SET kind = 'Block' WHERE id = 5");
	assert_int_equal(cmb_state_intents_open(st, &its, &n), CMB_ESTATE);
	assert_non_null(strstr(cmb_error_last(), ": table journal, key 5: unknown kind \"Block\" (this cmbridge "
						 "knows operation, block)"));

	/* The walk stops at the bad row: rows before it were visited, none after. */
	st = reopen_after(f, "INSERT INTO audit VALUES(7, 3006, 'a5', 'admin@x', 'dev', 'PS1:15', 'syncDevice', 2005, "
			     "'archived', 'failed', NULL)");
	int visited = 0;
	assert_int_equal(cmb_state_audit_each(st, NULL, count_only, &visited), CMB_ESTATE);
	assert_int_equal(visited, 0); /* the first page holds the bad row: it is never half-visited */
	assert_non_null(strstr(cmb_error_last(), ": table audit, key 7: unknown event \"archived\""));

	st = reopen_after(f, "UPDATE quarantine SET kind = 'Mapping' WHERE key = 'PS1:4'");
	visited = 0;
	assert_int_equal(cmb_state_quarantine_each(st, count_quarantined, &visited), CMB_ESTATE);
	assert_int_equal(visited, 0);
	assert_non_null(strstr(cmb_error_last(), ": table quarantine, key \"PS1:4\": unknown kind \"Mapping\""));
	enum cmb_quarantine_kind qk = CMB_QUARANTINE_DUPLICATE;
	char hash[65] = "untouched";
	assert_int_equal(cmb_state_quarantine_get(st, "PS1:4", &qk, hash), CMB_ESTATE);
	assert_int_equal(qk, CMB_QUARANTINE_DUPLICATE);
	assert_string_equal(hash, "untouched");

	/* pending.is_new is CHECKed, and a row changed behind the connection's back is never read as a kind. */
	assert_int_equal(cmb_state_pending_add(st, 1, "PS1:1", HASH_A, HASH_A, CMB_PENDING_CHANGE, "{}", 2), 0);
	assert_int_equal(cmb_state_pending_add(st, 1, "PS1:2", HASH_A, HASH_A, CMB_PENDING_ADD, "{}", 2), 0);
	assert_int_equal(sqlite3_exec(st->db, "UPDATE pending SET is_new = 7 WHERE key = 'PS1:2'", NULL, NULL, NULL),
			 SQLITE_CONSTRAINT_CHECK);
	assert_int_equal(sqlite3_exec(st->db, "PRAGMA ignore_check_constraints = ON; UPDATE pending SET is_new = 7 "
					      "WHERE key = 'PS1:2'; PRAGMA ignore_check_constraints = OFF",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	struct pend p = { .n = 0 };
	assert_int_equal(cmb_state_pending_each(st, 1, NULL, 10, collect_pending, &p), CMB_ESTATE);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(cmb_error_last(), ": table pending, key \"PS1:2\": unknown is_new 7 (this cmbridge "
						 "knows change, add, refresh)"));

	/* Writing a value that is none of the enum's is refused before SQLite sees it. */
	assert_int_equal(cmb_state_action_update(st, "a0", (enum cmb_action_state)17, "x", 0, NULL, -1, -1, 1),
			 CMB_EINVAL);
	assert_string_equal(cmb_error_last(), "moving an action: unknown action state 17");
	assert_int_equal(cmb_state_quarantine_put(st, "PS1:9", (enum cmb_quarantine_kind)-1, "r", NULL, 1, 1),
			 CMB_EINVAL);
	assert_int_equal(cmb_state_pending_add(st, 1, "PS1:9", HASH_A, HASH_A, (enum cmb_pending_kind)3, "{}", 2),
			 CMB_EINVAL);
	int64_t id;
	assert_int_equal(cmb_state_intent_add(st, (enum cmb_intent_kind)2, 0, "[]", HASH_A, 1, &id), CMB_EINVAL);
	assert_int_equal(cmb_state_intent_outcome(st, 1, 1, (enum cmb_intent_outcome)7), CMB_EINVAL);
	struct cmb_audit_entry e = { .action_id = "a0", .event = (enum cmb_audit_event)6 };
	assert_int_equal(cmb_state_audit_add(st, &e), CMB_EINVAL);
	assert_int_equal(cmb_state_actions_by_state(st, (enum cmb_action_state)6, 1, &list, &n), CMB_EINVAL);
}

/* ---- the store's helpers, on a table of the test's own ---- */

struct kv {
	char *k;
	int64_t v;
};

static int read_kv(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct kv *r = row;
	r->k = cmb_sdb_column_dup(s, 0);
	r->v = sqlite3_column_int64(s, 1);
	if (r->v < 0)
		return cmb_error_set(CMB_ESTATE, "negative v at %s", r->k);
	return 0;
}

static void clear_kv(void *row)
{
	free(((struct kv *)row)->k);
}

static const struct cmb_sdb_rows kv_rows = { .size = sizeof(struct kv), .read = read_kv, .clear = clear_kv };

struct kv_walk {
	struct cmb_state *st;
	sqlite3_stmt *del;
	int binds, visits, stop_at;
	int64_t sum;
	char last[16];
};

static int bind_kv(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	struct kv_walk *w = ctx;
	const struct kv *after = last;
	w->binds++;
	return cmb_sdb_bind(s, "td", after ? after->k : "", limit);
}

/* Deletes the row it is given and the one 300 keys on: the latter is then never visited. */
static int visit_kv(void *ctx, const void *row)
{
	struct kv_walk *w = ctx;
	const struct kv *r = row;
	assert_true(strcmp(r->k, w->last) > 0); /* key order, each once */
	snprintf(w->last, sizeof(w->last), "%s", r->k);
	w->visits++;
	w->sum += r->v;
	if (w->del) {
		char ahead[32];
		snprintf(ahead, sizeof(ahead), "k%04lld", (long long)r->v + 300);
		assert_int_equal(cmb_sdb_step_done(w->st, w->del, cmb_sdb_bind(w->del, "tt", r->k, ahead), "deleting"), 0);
	}
	return w->visits == w->stop_at ? 7 : 0;
}

static const struct cmb_sdb_pager kv_pager = { .rows = { .size = sizeof(struct kv), .read = read_kv,
							  .clear = clear_kv },
					       .bind = bind_kv, .visit = visit_kv };

static void test_row_helpers(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(sqlite3_exec(st->db, "CREATE TEMP TABLE kv(k TEXT PRIMARY KEY, v INTEGER)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_stmt *ins, *all, *one, *page, *del, *count;
	assert_int_equal(sqlite3_prepare_v2(st->db, "INSERT INTO kv VALUES (?1, ?2)", -1, &ins, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(st->db, "SELECT k, v FROM kv ORDER BY k", -1, &all, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(st->db, "SELECT k, v FROM kv WHERE k = ?1", -1, &one, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(st->db, "SELECT k, v FROM kv WHERE k > ?1 ORDER BY k LIMIT ?2", -1, &page,
					    NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(st->db, "DELETE FROM kv WHERE k IN (?1, ?2)", -1, &del, NULL), SQLITE_OK);

	/* No rows: an empty array, NULL. */
	void *list = (void *)0x1;
	size_t n = 99;
	assert_int_equal(cmb_sdb_collect(st, all, SQLITE_OK, &kv_rows, &list, &n, "reading kv"), 0);
	assert_null(list);
	assert_int_equal(n, 0);
	struct kv row;
	assert_int_equal(cmb_sdb_get_row(st, one, cmb_sdb_bind(one, "t", "k0001"), &kv_rows, &row, "reading %s", "k0001"),
			 CMB_ENOTFOUND);

	/* 1000 rows, 2.5 pages at the 256 the helper copies at a time... */
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 1000; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%04d", i);
		assert_int_equal(cmb_sdb_step_done(st, ins, cmb_sdb_bind(ins, "ti", k, (int64_t)i), "adding %s", k), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	assert_int_equal(cmb_sdb_collect(st, all, SQLITE_OK, &kv_rows, &list, &n, "reading kv"), 0);
	assert_int_equal(n, 1000);
	struct kv *kvs = list;
	assert_string_equal(kvs[0].k, "k0000");
	assert_string_equal(kvs[999].k, "k0999");
	assert_int_equal(kvs[999].v, 999);
	cmb_sdb_rows_free(&kv_rows, list, n);
	assert_int_equal(cmb_sdb_get_row(st, one, cmb_sdb_bind(one, "t", "k0042"), &kv_rows, &row, "reading k0042"), 0);
	assert_int_equal(row.v, 42);
	clear_kv(&row);

	/* ...walked in pages: one bind per page, and a last, empty page when the count is a multiple. */
	struct kv_walk w = { .st = st };
	assert_int_equal(cmb_sdb_each_page(st, page, &kv_pager, &w, "walking kv"), 0);
	assert_int_equal(w.visits, 1000);
	assert_int_equal(w.binds, 4);
	assert_int_equal(w.sum, 999 * 1000 / 2);
	memset(&w, 0, sizeof(w));
	w.stop_at = 300; /* a non-zero visit stops the walk and is returned, in the second page */
	assert_int_equal(cmb_sdb_each_page(st, page, &kv_pager, &w, "walking kv"), 7);
	assert_int_equal(w.visits, 300);
	assert_int_equal(w.binds, 2);

	/*
	 * Deleting from the visit: its own row and the row 300 keys ahead. Rows
	 * of later pages are read after the visits, so a deleted one is never
	 * visited; rows of the current page are copies, visited even if a visit
	 * before them deleted them. Page 1 (k0000-k0255) deletes k0300-k0555;
	 * page 2 is then k0256-k0299 and k0556-k0767, which delete k0556-k0599
	 * (in the page: still visited) and k0856-k0999; page 3, k0768-k0855, is
	 * the last. 600 visits, and the table ends empty.
	 */
	memset(&w, 0, sizeof(w));
	w.st = st;
	w.del = del;
	assert_int_equal(cmb_sdb_each_page(st, page, &kv_pager, &w, "walking kv"), 0);
	assert_int_equal(w.visits, 600);
	assert_int_equal(w.binds, 3);
	assert_int_equal(w.sum, (0 + 299) * 300 / 2 + (556 + 855) * 300 / 2);
	assert_int_equal(sqlite3_prepare_v2(st->db, "SELECT count(*) FROM kv", -1, &count, NULL), SQLITE_OK);
	assert_int_equal(cmb_sdb_count(st, count, SQLITE_OK, "counting kv"), 0);
	sqlite3_finalize(ins);

	/* A row that cannot be read: the error is the reader's, nothing leaks, *out untouched. */
	assert_int_equal(sqlite3_exec(st->db, "INSERT INTO kv VALUES ('a', 1), ('b', -1), ('c', 3)", NULL, NULL, NULL),
			 SQLITE_OK);
	list = (void *)0x1;
	n = 99;
	assert_int_equal(cmb_sdb_collect(st, all, SQLITE_OK, &kv_rows, &list, &n, "reading kv"), CMB_ESTATE);
	assert_ptr_equal(list, (void *)0x1);
	assert_int_equal(n, 99);
	assert_string_equal(cmb_error_last(), "negative v at b");
	memset(&w, 0, sizeof(w));
	assert_int_equal(cmb_sdb_each_page(st, page, &kv_pager, &w, "walking kv"), CMB_ESTATE);
	assert_int_equal(w.visits, 0);
	row.k = (char *)"untouched";
	assert_int_equal(cmb_sdb_get_row(st, one, cmb_sdb_bind(one, "t", "b"), &kv_rows, &row, "reading b"),
			 CMB_ESTATE);
	/* A bind that fails is an error with what was being done. */
	assert_int_equal(cmb_sdb_collect(st, all, SQLITE_RANGE, &kv_rows, &list, &n, "reading kv %d", 2), CMB_ESTATE);
	assert_non_null(strstr(cmb_error_last(), ": reading kv 2: "));
	assert_int_equal(cmb_sdb_bind(one, "x", 1), SQLITE_MISUSE);
	cmb_sdb_finish(one);
	sqlite3_finalize(all);
	sqlite3_finalize(one);
	sqlite3_finalize(page);
	sqlite3_finalize(del);
	sqlite3_finalize(count);
}

struct dup_walk {
	int n;
	char last[16];
	struct cmb_state *st;
};

static int check_dup(void *ctx, const char *key, const char *winner)
{
	struct dup_walk *w = ctx;
	assert_true(strcmp(key, w->last) > 0);
	snprintf(w->last, sizeof(w->last), "%s", key);
	/* key PS1:aNNN loses to PS1:bNNN */
	assert_int_equal(key[4], 'a');
	assert_int_equal(winner[4], 'b');
	assert_string_equal(key + 5, winner + 5);
	/* The sync engine writes other tables from here. */
	assert_int_equal(cmb_state_quarantine_put(w->st, key, CMB_QUARANTINE_DUPLICATE, winner, NULL, 1, 1), 0);
	w->n++;
	return 0;
}

/* More losers than a page: every one, once, in key order, with its winner. */
static void test_identity_pages(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 600; i++) {
		char a[16], b[16], hw[16];
		snprintf(a, sizeof(a), "PS1:a%03d", i);
		snprintf(b, sizeof(b), "PS1:b%03d", i);
		snprintf(hw, sizeof(hw), "hw%d", i);
		assert_int_equal(cmb_state_identity_add(st, a, hw, "", 100, (uint32_t)i), 0);
		assert_int_equal(cmb_state_identity_add(st, b, hw, "", 200, (uint32_t)i + 1000), 0);
	}
	struct dup_walk w = { .st = st };
	assert_int_equal(cmb_state_identity_losers(st, check_dup, &w), 0);
	assert_int_equal(cmb_state_commit(st), 0);
	assert_int_equal(w.n, 600);
	assert_int_equal(cmb_state_quarantine_count(st), 600);
}

static int count_audit_rows(void *ctx, const struct cmb_audit_entry *e)
{
	struct dup_walk *w = ctx;
	char seq[16];
	snprintf(seq, sizeof(seq), "%08d", (int)e->seq);
	assert_true(strcmp(seq, w->last) > 0);
	snprintf(w->last, sizeof(w->last), "%s", seq);
	assert_string_equal(e->action_id, "one");
	assert_int_equal(e->event, w->n % 2 ? CMB_AUDIT_DELIVERED : CMB_AUDIT_RECEIVED);
	w->n++;
	/* Appending from the callback (another action) does not disturb the walk. */
	struct cmb_audit_entry more = { .at = 9, .action_id = "other", .event = CMB_AUDIT_DONE, .outcome = "done" };
	assert_int_equal(cmb_state_audit_add(w->st, &more), 0);
	return 0;
}

/* The audit trail walked by seq across pages, for one action among others. */
static void test_audit_pages(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 600; i++) {
		/* "one" gets i % 3 == 1 and 2: received, delivered, received, delivered... */
		struct cmb_audit_entry e = { .at = i, .action_id = i % 3 ? "one" : "two",
					     .event = i % 3 == 2 ? CMB_AUDIT_DELIVERED : CMB_AUDIT_RECEIVED,
					     .outcome = "pending" };
		assert_int_equal(cmb_state_audit_add(st, &e), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	struct dup_walk w = { .st = st };
	assert_int_equal(cmb_state_audit_each(st, "one", count_audit_rows, &w), 0);
	assert_int_equal(w.n, 400);
	int all = 0;
	assert_int_equal(cmb_state_audit_each(st, NULL, count_only, &all), 0);
	assert_int_equal(all, 600 + 400);
}

/* ---- uploads in flight, site properties, schema 4 ---- */

struct flight {
	char buf[1024];
	int n;
	struct cmb_state *st;  /* when set, the callback settles what it gets */
};

static int collect_in_flight(void *ctx, const char *key, const char *batch_id, int64_t since_cycle, int64_t since)
{
	struct flight *l = ctx;
	if (l->st)
		assert_int_equal(cmb_state_inflight_settle(l->st, key, 0), 0);
	if (l->n++ < 8) {
		char line[128];
		snprintf(line, sizeof(line), "%s:%s:%lld:%lld ", key, batch_id, (long long)since_cycle, (long long)since);
		strncat(l->buf, line, sizeof(l->buf) - strlen(l->buf) - 1);
	}
	return 0;
}

static void test_in_flight(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1, c2, c3;
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	assert_int_equal(cmb_state_device_put(st, "k1", "tid-1", HASH_A, NULL, c1, 1), 0);
	/* Journaled before the batch goes out: k1 known, k2 and k3 new. */
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2, &c2), 0);
	assert_int_equal(cmb_state_inflight_put(st, "k1", "batch-1", c2, 100), 0);
	assert_int_equal(cmb_state_inflight_put(st, "k2", "batch-1", c2, 100), 0);
	assert_int_equal(cmb_state_inflight_put(st, "k3", "batch-1", c2, 100), 0);
	assert_int_equal(cmb_state_inflight_count(st), 3);
	int64_t since = 0;
	assert_int_equal(cmb_state_inflight_get(st, "k2", &since), 0);
	assert_int_equal(since, 100);
	assert_int_equal(cmb_state_inflight_get(st, "k9", NULL), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_inflight_put(st, "", "batch-1", c2, 100), CMB_EINVAL);
	/* Kept across a restart: a kill mid-upload leaves them in doubt. */
	reopen(f);
	st = f->st;
	assert_int_equal(cmb_state_inflight_count(st), 3);

	/* The next cycle: k1 and k2 still at the site, k3 gone. */
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 3, &c3), 0);
	int in_flight = -1;
	assert_int_equal(cmb_state_device_seen(st, "k1", c3), 0);
	assert_int_equal(cmb_state_inflight_seen(st, "k1", c3, &in_flight), 0);
	assert_int_equal(in_flight, 1);
	assert_int_equal(cmb_state_inflight_seen(st, "k2", c3, &in_flight), 0);
	assert_int_equal(in_flight, 1);
	assert_int_equal(cmb_state_inflight_seen(st, "k8", c3, &in_flight), 0);
	assert_int_equal(in_flight, 0);
	/* Removal candidates: known devices and keys in flight, each once, in key order. */
	struct keys k = { .n = 0 };
	assert_int_equal(cmb_state_devices_unseen(st, c3, collect_unseen, &k), 0);
	assert_string_equal(k.buf, "k3=(null) ");
	/* A duplicate found after the read: unseen in both tables. */
	assert_int_equal(cmb_state_device_unsee(st, "k1", c3), 0);
	assert_int_equal(cmb_state_device_unsee(st, "k2", c3), 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(cmb_state_devices_unseen(st, c3, collect_unseen, &k), 0);
	assert_string_equal(k.buf, "k1=tid-1 k2=(null) k3=(null) ");

	/* Sent again in c3: since_cycle and since stay where the doubt began. */
	assert_int_equal(cmb_state_inflight_put(st, "k2", "batch-2", c3, 300), 0);
	struct flight l = { .n = 0 };
	assert_int_equal(cmb_state_inflight_each(st, collect_in_flight, &l), 0);
	char want[256];
	snprintf(want, sizeof(want), "k1:batch-1:%lld:100 k2:batch-2:%lld:100 k3:batch-1:%lld:100 ", (long long)c2,
		 (long long)c2, (long long)c2);
	assert_string_equal(l.buf, want);
	/* A rejection in c3 settles only a doubt that began in c3. */
	assert_int_equal(cmb_state_inflight_settle(st, "k2", c3), 0);
	assert_int_equal(cmb_state_inflight_get(st, "k2", NULL), 0);
	assert_int_equal(cmb_state_inflight_settle(st, "k2", c2), 0);
	assert_int_equal(cmb_state_inflight_get(st, "k2", NULL), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_inflight_settle(st, "k3", 0), 0);
	assert_int_equal(cmb_state_inflight_count(st), 1);

	/* Paged: 600 keys, each settled from the callback. */
	assert_int_equal(cmb_state_begin(st), 0);
	for (int i = 0; i < 600; i++) {
		char key[16];
		snprintf(key, sizeof(key), "y%04d", i);
		assert_int_equal(cmb_state_inflight_put(st, key, "b", c3, 1), 0);
	}
	assert_int_equal(cmb_state_commit(st), 0);
	memset(&l, 0, sizeof(l));
	l.st = st;
	assert_int_equal(cmb_state_inflight_each(st, collect_in_flight, &l), 0);
	assert_int_equal(l.n, 601);
	assert_int_equal(cmb_state_inflight_count(st), 0);
}

/* Stages key with hash and its site properties. */
static void stage(struct cmb_state *st, int64_t cycle, const char *key, const char *hash, enum cmb_pending_kind kind,
		  int64_t fields)
{
	assert_int_equal(cmb_state_pending_add(st, cycle, key, hash, hash, kind, "{}", 2), 0);
	assert_int_equal(cmb_state_pending_fields(st, key, fields), 0);
}

static void test_site_fields(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	int64_t c1, c2;
	struct cmb_pending_summary sum;
	/* Staged with their site properties; the acknowledgement keeps them. */
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1, &c1), 0);
	stage(st, c1, "a", HASH_A, CMB_PENDING_ADD, 0x7);
	stage(st, c1, "b", HASH_A, CMB_PENDING_ADD, 0x3);
	assert_int_equal(cmb_state_pending_add(st, c1, "c", HASH_A, HASH_A, CMB_PENDING_ADD, "{}", 2), 0); /* none */
	assert_int_equal(cmb_state_pending_summary(st, c1, &sum), 0);
	assert_int_equal(sum.staged[CMB_PENDING_ADD], 3);
	assert_int_equal(sum.blanking, 0);
	assert_int_equal(cmb_state_device_put(st, "a", "t", HASH_A, HASH_A, c1, 1), 0);
	assert_int_equal(cmb_state_device_put(st, "b", "t", HASH_A, HASH_A, c1, 1), 0);
	assert_int_equal(cmb_state_device_put(st, "c", "t", HASH_A, HASH_A, c1, 1), 0); /* not known */
	assert_int_equal(cmb_state_pending_clear(st), 0);
	char got[32];
	raw_text(f->db, "SELECT group_concat(key || '=' || coalesce(fields, 'null'), ' ') FROM devices", got,
		 sizeof(got));
	assert_string_equal(got, "a=7 b=3 c=null");

	/* The next cycle stages changes: a loses bit 2, b gains it, c had none recorded, d is new. */
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2, &c2), 0);
	stage(st, c2, "a", HASH_B, CMB_PENDING_CHANGE, 0x3);
	stage(st, c2, "b", HASH_B, CMB_PENDING_CHANGE, 0x7);
	stage(st, c2, "c", HASH_B, CMB_PENDING_REFRESH, 0x0);
	stage(st, c2, "d", HASH_B, CMB_PENDING_ADD, 0x0);
	assert_int_equal(cmb_state_pending_summary(st, c2, &sum), 0);
	assert_int_equal(sum.staged[CMB_PENDING_CHANGE], 2);
	assert_int_equal(sum.staged[CMB_PENDING_REFRESH], 1);
	assert_int_equal(sum.staged[CMB_PENDING_ADD], 1);
	assert_int_equal(sum.blanking, 1);  /* a; c's acknowledged record has none known; d is new */
	assert_int_equal(sum.lost, 0x4);
	/* A duplicate dropped after the read is not counted. */
	int removed = 0;
	assert_int_equal(cmb_state_pending_remove(st, c2, "a", &removed), 0);
	assert_int_equal(cmb_state_pending_summary(st, c2, &sum), 0);
	assert_int_equal(sum.blanking, 0);
	assert_int_equal(sum.lost, 0);
	/* Cleared with the staged records: an acknowledgement without them keeps what was known. */
	assert_int_equal(cmb_state_pending_clear(st), 0);
	assert_int_equal(cmb_state_device_put(st, "b", "t", HASH_B, HASH_B, c2, 2), 0);
	stage(st, c2, "b", HASH_B, CMB_PENDING_CHANGE, 0x1);
	assert_int_equal(cmb_state_pending_summary(st, c2, &sum), 0);
	assert_int_equal(sum.blanking, 1);
	assert_int_equal(sum.lost, 0x2);
}

static void test_migrate_from_v3(void **state)
{
	struct fx *f = *state;
	cmb_state_close(open_ok(f));
	f->st = NULL;
	/* Back to what schema 3 had, with a device and a cycle in it. */
	raw_sql(f->db, "CREATE TABLE pending(cycle INTEGER NOT NULL REFERENCES cycles(id) ON DELETE CASCADE, "
		       "key TEXT NOT NULL, hash TEXT NOT NULL, stable_hash TEXT NOT NULL, is_new INTEGER NOT NULL "
		       "CHECK (is_new IN (0, 1, 2)), body BLOB NOT NULL, PRIMARY KEY (cycle, key)); "
		       "DROP TABLE policy_journal; DROP TABLE policy_devices; DROP TABLE policy_compliance; "
		       "DROP TABLE policy_reasons; DROP TABLE policies; "
		       "DROP TABLE inflight; ALTER TABLE devices DROP COLUMN fields; "
		       "ALTER TABLE cycles DROP COLUMN changes_held; PRAGMA user_version = 3; "
		       "INSERT INTO cycles(id, kind, started, status) VALUES (1, 'full', 1000, 'ok'); "
		       "INSERT INTO devices VALUES ('PS1:1', 'tid-1', '" HASH_A "', '" HASH_A "', 1, 1, 1001); "
		       "INSERT INTO pending VALUES (1, 'PS1:1', '" HASH_A "', '" HASH_A "', 1, X'7b7d');");
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_schema_version(st), 6);
	/* Schema 6: the file's pending table (a leftover in it, as a killed cycle leaves) is gone. */
	assert_int_equal(cmb_state_pending_count(st, 1), 0);
	assert_int_equal(cmb_state_device_count(st), 1);
	assert_int_equal(cmb_state_inflight_count(st), 0);
	struct cmb_cycle *cy;
	size_t n;
	assert_int_equal(cmb_state_cycles_recent(st, 10, &cy, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cy[0].counts.changes_held, 0);
	cmb_state_cycles_free(cy, n);
	/* Its site properties are not known: a change of it never counts as blanking. */
	int64_t c2;
	struct cmb_pending_summary sum;
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 2, &c2), 0);
	stage(st, c2, "PS1:1", HASH_B, CMB_PENDING_CHANGE, 0);
	assert_int_equal(cmb_state_pending_summary(st, c2, &sum), 0);
	assert_int_equal(sum.staged[CMB_PENDING_CHANGE], 1);
	assert_int_equal(sum.blanking, 0);
	cmb_state_close(st);
	f->st = NULL;
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM devices WHERE fields IS NULL"), 1);
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'pending'"), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_open_creates),
		T(test_reopen_keeps),
		T(test_future_version),
		T(test_corrupt),
		T(test_migrate_from_v0),
		T(test_lock),
		T(test_cycles),
		T(test_devices),
		T(test_unseen),
		T(test_compact),
		T(test_pending),
		T(test_quarantine),
		T(test_sync_support),
		T(test_enum_texts),
		T(test_old_database),
		T(test_unknown_values),
		T(test_row_helpers),
		T(test_identity_pages),
		T(test_audit_pages),
		T(test_in_flight),
		T(test_site_fields),
		T(test_migrate_from_v3),
	};
	/* 100,000 devices take seconds (minutes under the sanitizers): the bench label's, not the unit suite's. */
	const struct CMUnitTest bench[] = {
		T(test_100k),
	};
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return cmocka_run_group_tests(bench, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
