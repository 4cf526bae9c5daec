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
#include "connector/base/util.h"
#include "connector/base/clock.h"

#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct fx {
	char base[64];     /* temporary directory */
	char *dir;         /* base/state: created by cmb_state_open */
	char *db;          /* dir/cmbridge.db */
	struct cmb_state *st;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	snprintf(f->base, sizeof(f->base), "%s/cmbstate.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->base))
		return -1;
	f->dir = xasprintf("%s/state", f->base);
	f->db = xasprintf("%s/%s", f->dir, CMB_STATE_FILE);
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	nftw(f->base, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
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

static void test_open_creates(void **state)
{
	struct fx *f = *state;
	struct cmb_state *st = open_ok(f);
	assert_int_equal(cmb_state_schema_version(st), 3);
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
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 3);
	assert_int_equal(raw_count(f->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
					  "('devices', 'pending', 'cycles', 'quarantine', 'meta', 'collections', "
					  "'actions', 'journal', 'outbox', 'audit')"),
			 10);
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
	assert_int_equal(cmb_state_schema_version(st), 3);
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
	char *want = xasprintf("state database %s has schema version 99, newer than the 3 this cmbridge knows: it "
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
	assert_int_equal(cmb_state_schema_version(st), 3);
	assert_int_equal(cmb_state_device_count(st), 0);
	cmb_state_close(st);
	f->st = NULL;
	assert_int_equal(raw_count(f->db, "PRAGMA user_version"), 3);
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
	/* Staging needs a cycle that exists (foreign key). */
	assert_int_equal(cmb_state_pending_add(st, 999, "k9", HASH_A, HASH_B, CMB_PENDING_ADD, "{}", 2), CMB_ESTATE);

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

int main(void)
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
		T(test_pending),
		T(test_quarantine),
		T(test_sync_support),
		T(test_100k),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
