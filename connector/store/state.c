/*
 * state.c - the state database: SQLite in WAL mode, one connection, prepared
 * statements made once at open, a versioned schema migrated forward.
 *
 * Callers batch their writes between cmb_state_begin() and
 * cmb_state_commit(); outside a transaction every call commits by itself.
 * This file must never guess: a corrupt database, a schema newer than the
 * binary or a state directory held by another process are refused with a
 * message that says what to do, never worked around.
 * docs/state.md explains the schema, durability and locking.
 */
#include "connector/store/state.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_FILE "cmbridge.lock"

/* Cycles older than the newest CYCLES_KEPT are dropped when a cycle begins. */
#define CYCLES_KEPT 20000

/* Rows copied per step when iterating, so callbacks may change the table. */
#define ITER_PAGE 256

/*
 * Migration i takes the schema from version i to version i + 1. A shipped
 * step is never edited: a change is a new step appended here.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE devices(\n"
	"  key TEXT PRIMARY KEY NOT NULL,\n"   /* the site's device key */
	"  tenant_id TEXT,\n"                  /* the id the tenant gave it, when known */
	"  hash TEXT NOT NULL,\n"              /* sha-256 hex of the mapped record as uploaded */
	"  stable_hash TEXT NOT NULL DEFAULT '',\n" /* the same without volatile check-in times */
	"  seen_cycle INTEGER NOT NULL,\n"     /* last cycle that read it from the site */
	"  uploaded_cycle INTEGER NOT NULL,\n" /* cycle of the last acknowledged upload */
	"  uploaded INTEGER NOT NULL\n"        /* epoch seconds of that acknowledgement */
	") WITHOUT ROWID;\n"
	"CREATE TABLE cycles(\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n" /* never reused: devices.seen_cycle compares ids */
	"  kind TEXT NOT NULL,\n"
	"  started INTEGER NOT NULL,\n"
	"  ended INTEGER NOT NULL DEFAULT 0,\n"
	"  status TEXT NOT NULL DEFAULT 'running',\n"
	"  error TEXT,\n"
	"  site_records INTEGER NOT NULL DEFAULT 0,\n"
	"  skipped INTEGER NOT NULL DEFAULT 0,\n"
	"  unchanged INTEGER NOT NULL DEFAULT 0,\n"
	"  added INTEGER NOT NULL DEFAULT 0,\n"
	"  changed INTEGER NOT NULL DEFAULT 0,\n"
	"  refreshed INTEGER NOT NULL DEFAULT 0,\n"
	"  duplicates INTEGER NOT NULL DEFAULT 0,\n"
	"  no_entra_id INTEGER NOT NULL DEFAULT 0,\n"
	"  unknown_workloads INTEGER NOT NULL DEFAULT 0,\n"
	"  removals_held INTEGER NOT NULL DEFAULT 0,\n"
	"  removed INTEGER NOT NULL DEFAULT 0,\n"
	"  quarantined INTEGER NOT NULL DEFAULT 0,\n"
	"  rejected INTEGER NOT NULL DEFAULT 0,\n"
	"  upload_requests INTEGER NOT NULL DEFAULT 0,\n"
	"  utf8_repairs INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE TABLE pending(\n"
	"  cycle INTEGER NOT NULL REFERENCES cycles(id) ON DELETE CASCADE,\n"
	"  key TEXT NOT NULL,\n"
	"  hash TEXT NOT NULL,\n"
	"  stable_hash TEXT NOT NULL,\n"
	"  is_new INTEGER NOT NULL CHECK (is_new IN (0, 1, 2)),\n"
	"  body BLOB NOT NULL,\n"
	"  PRIMARY KEY (cycle, key)\n"
	");\n"
	"CREATE TABLE quarantine(\n"
	"  key TEXT PRIMARY KEY NOT NULL,\n"
	"  kind TEXT NOT NULL,\n"            /* mapping | rejected | duplicate */
	"  reason TEXT NOT NULL,\n"
	"  hash TEXT,\n"                     /* rejected: the record's hash, retried when it changes */
	"  cycle INTEGER NOT NULL,\n"         /* the cycle that last quarantined it */
	"  since INTEGER NOT NULL\n"          /* epoch seconds, first quarantined */
	");\n"
	"CREATE TABLE meta(\n"                /* small named values, e.g. last_details_refresh */
	"  name TEXT PRIMARY KEY NOT NULL,\n"
	"  value INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE collections(\n"         /* configManagerCollection records as last uploaded */
	"  key TEXT PRIMARY KEY NOT NULL,\n"
	"  tenant_id TEXT,\n"
	"  hash TEXT NOT NULL,\n"
	"  created TEXT NOT NULL\n"           /* createdDateTime sent at the first upload, kept */
	") WITHOUT ROWID;\n",
	/* 1 -> 2: remote actions (docs/actions.md) */
	"CREATE TABLE actions(\n"             /* the inbox: one row per action id, replays dropped */
	"  id TEXT PRIMARY KEY NOT NULL,\n"   /* the tenant's action id */
	"  device_id TEXT NOT NULL,\n"        /* managedDevice id */
	"  key TEXT NOT NULL,\n"              /* the site's device key */
	"  resource_id INTEGER NOT NULL,\n"   /* from the key; 0 when it has none */
	"  action TEXT NOT NULL,\n"
	"  requested_by TEXT NOT NULL,\n"
	"  requested INTEGER NOT NULL,\n"     /* epoch seconds */
	"  expires INTEGER NOT NULL,\n"       /* epoch seconds: min(notification expiry, requested + ttl) */
	"  received_ms INTEGER NOT NULL,\n"   /* epoch milliseconds it reached the inbox */
	"  state TEXT NOT NULL,\n"            /* received | intent | delivered | done | failed | notSupported */
	"  delivery TEXT NOT NULL,\n"         /* actionDeliveryStatus */
	"  op_type INTEGER NOT NULL DEFAULT 0,\n"
	"  intent_id INTEGER NOT NULL DEFAULT 0,\n" /* journal row of its site call */
	"  error_code INTEGER NOT NULL DEFAULT 0,\n"
	"  message TEXT,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX actions_state ON actions(state, received_ms);\n"
	"CREATE INDEX actions_intent ON actions(intent_id);\n"
	"CREATE TABLE journal(\n"             /* intent before each site call, outcome after */
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  kind TEXT NOT NULL,\n"             /* operation | block */
	"  op_type INTEGER NOT NULL,\n"       /* client notification type (operation) */
	"  targets TEXT NOT NULL,\n"          /* JSON array of ResourceIDs, ascending */
	"  marker TEXT NOT NULL,\n"           /* sha-256 of the batch's action ids, sorted: the client-side key */
	"  intended INTEGER NOT NULL,\n"      /* epoch seconds the intent was journaled */
	"  operation_id INTEGER NOT NULL DEFAULT -1,\n" /* the site's OperationID once known */
	"  outcome TEXT,\n"                   /* NULL: unknown | issued | adopted | refused | blocked */
	"  last_polled INTEGER NOT NULL DEFAULT 0,\n"
	"  completed INTEGER NOT NULL DEFAULT 0\n" /* epoch seconds its actions became final */
	");\n"
	"CREATE TABLE outbox(\n"              /* the latest result of each action not yet acknowledged */
	"  action_id TEXT PRIMARY KEY NOT NULL,\n"
	"  delivery TEXT NOT NULL,\n"
	"  state TEXT NOT NULL,\n"
	"  error_code INTEGER NOT NULL,\n"
	"  message TEXT,\n"
	"  updated INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE audit(\n"               /* append-only: every action, accepted or refused */
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  at INTEGER NOT NULL,\n"
	"  action_id TEXT NOT NULL,\n"
	"  requested_by TEXT NOT NULL,\n"
	"  device_id TEXT NOT NULL,\n"
	"  key TEXT NOT NULL,\n"
	"  action TEXT NOT NULL,\n"
	"  requested INTEGER NOT NULL,\n"
	"  event TEXT NOT NULL,\n"            /* received | refused | staging | delivered | done | failed */
	"  outcome TEXT NOT NULL,\n"          /* actionState at that point */
	"  reason TEXT\n"
	");\n"
	"CREATE INDEX audit_action ON audit(action_id, seq);\n"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;\n"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;\n"
	"CREATE TABLE notify_cursor(\n"       /* the notification channel's cursor, stored with the inbox */
	"  id INTEGER PRIMARY KEY CHECK (id = 1),\n"
	"  cursor TEXT NOT NULL\n"
	");\n",
	/* 2 -> 3: what adapters learnt about their services (the site's schema) */
	"CREATE TABLE learnt(\n"
	"  name TEXT PRIMARY KEY NOT NULL,\n"  /* e.g. site.schema */
	"  text TEXT NOT NULL,\n"
	"  at INTEGER NOT NULL\n"              /* epoch seconds it was written */
	") WITHOUT ROWID;\n",
};

#define SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The cycle counters, in struct and column order. */
#define CYCLE_COUNTS(X) \
	X(site_records) X(skipped) X(unchanged) X(added) X(changed) X(refreshed) X(duplicates) X(no_entra_id) X(unknown_workloads) \
	X(removals_held) X(removed) X(quarantined) X(rejected) \
	X(upload_requests) X(utf8_repairs)
#define COUNT_COL(name) ", " #name
#define COUNT_SET(name) ", " #name " = ?"
#define COUNT_ONE(name) +1
#define N_COUNTS (0 CYCLE_COUNTS(COUNT_ONE))

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_CYCLE_BEGIN,
	S_CYCLE_PRUNE,
	S_CYCLE_END,
	S_CYCLES_RECENT,
	S_DEVICE_GET,
	S_DEVICE_SEEN,
	S_DEVICE_PUT,
	S_DEVICE_DELETE,
	S_DEVICE_COUNT,
	S_DEVICES_UNSEEN,
	S_PENDING_ADD,
	S_PENDING_EACH,
	S_PENDING_COUNT,
	S_PENDING_CLEAR,
	S_QUAR_PUT,
	S_QUAR_REMOVE,
	S_QUAR_COUNT,
	S_QUAR_EACH,
	S_QUAR_GET,
	S_DEVICE_UNSEE,
	S_META_GET,
	S_META_SET,
	S_LEARNT_GET,
	S_LEARNT_SET,
	S_IDENT_ADD,
	S_IDENT_CLEAR,
	S_IDENT_LOSERS,
	S_COLL_GET,
	S_COLL_PUT,
	S_COLL_DELETE,
	S_COLL_EACH,
	S_PENDING_REMOVE,
	S_ACT_ADD,
	S_ACT_GET,
	S_ACT_UPDATE,
	S_ACT_BY_STATE,
	S_ACT_BY_INTENT,
	S_ACT_OPEN,
	S_ACT_RECENT,
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
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_CYCLE_BEGIN] = "INSERT INTO cycles(kind, started) VALUES (?1, ?2)",
	[S_CYCLE_PRUNE] = "DELETE FROM cycles WHERE id <= ?1",
	/* ?1 ended, ?2 status, ?3 error, ?4.. counts, last: id */
	[S_CYCLE_END] = "UPDATE cycles SET ended = ?, status = ?, error = ?" CYCLE_COUNTS(COUNT_SET) " WHERE id = ?",
	[S_CYCLES_RECENT] = "SELECT id, kind, started, ended, status, error" CYCLE_COUNTS(COUNT_COL)
			    " FROM cycles ORDER BY id DESC LIMIT ?1",
	[S_DEVICE_GET] = "SELECT hash, tenant_id, stable_hash FROM devices WHERE key = ?1",
	[S_DEVICE_SEEN] = "UPDATE devices SET seen_cycle = ?2 WHERE key = ?1",
	[S_DEVICE_PUT] = "INSERT INTO devices(key, tenant_id, hash, seen_cycle, uploaded_cycle, uploaded, stable_hash) "
			 "VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6) ON CONFLICT(key) DO UPDATE SET "
			 "tenant_id = coalesce(excluded.tenant_id, devices.tenant_id), hash = excluded.hash, "
			 "stable_hash = excluded.stable_hash, "
			 "seen_cycle = excluded.seen_cycle, uploaded_cycle = excluded.uploaded_cycle, "
			 "uploaded = excluded.uploaded",
	[S_DEVICE_DELETE] = "DELETE FROM devices WHERE key = ?1",
	[S_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	[S_DEVICES_UNSEEN] = "SELECT key, tenant_id FROM devices WHERE key > ?1 AND seen_cycle IS NOT ?2 "
			     "ORDER BY key LIMIT ?3",
	[S_PENDING_ADD] = "INSERT INTO pending(cycle, key, hash, is_new, body, stable_hash) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			  "ON CONFLICT(cycle, key) DO UPDATE SET hash = excluded.hash, is_new = excluded.is_new, "
			  "stable_hash = excluded.stable_hash, "
			  "body = excluded.body",
	[S_PENDING_EACH] = "SELECT key, hash, is_new, body, stable_hash FROM pending WHERE cycle = ?1 AND key > ?2 "
			   "ORDER BY key LIMIT ?3",
	[S_PENDING_COUNT] = "SELECT count(*) FROM pending WHERE cycle = ?1",
	[S_PENDING_CLEAR] = "DELETE FROM pending",
	[S_QUAR_PUT] = "INSERT INTO quarantine(key, reason, cycle, since, kind, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
		       "ON CONFLICT(key) DO UPDATE SET reason = excluded.reason, cycle = excluded.cycle, "
		       "kind = excluded.kind, hash = excluded.hash, "
		       "since = CASE WHEN quarantine.kind = excluded.kind THEN quarantine.since ELSE excluded.since END",
	[S_QUAR_GET] = "SELECT kind, hash FROM quarantine WHERE key = ?1",
	[S_DEVICE_UNSEE] = "UPDATE devices SET seen_cycle = 0 WHERE key = ?1 AND seen_cycle = ?2",
	[S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[S_META_SET] = "INSERT INTO meta(name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	[S_LEARNT_GET] = "SELECT text FROM learnt WHERE name = ?1",
	[S_LEARNT_SET] = "INSERT INTO learnt(name, text, at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET "
			 "text = excluded.text, at = excluded.at",
	[S_IDENT_ADD] = "INSERT OR REPLACE INTO temp.identity(key, hardware_id, smbios_guid, last_active, resource_id) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_IDENT_CLEAR] = "DELETE FROM temp.identity",
	/*
	 * A device loses to another active device that shares its HardwareID or
	 * SMBIOSGUID and is newer: later LastActiveTime, then higher ResourceID.
	 * Each loser is listed once, with the newest device it shares with.
	 */
	[S_IDENT_LOSERS] = "SELECT a.key, (SELECT b.key FROM temp.identity b WHERE b.key <> a.key AND "
			   "((a.hardware_id <> '' AND b.hardware_id = a.hardware_id) OR "
			   " (a.smbios_guid <> '' AND b.smbios_guid = a.smbios_guid)) AND "
			   "(b.last_active > a.last_active OR (b.last_active = a.last_active AND b.resource_id > a.resource_id)) "
			   "ORDER BY b.last_active DESC, b.resource_id DESC LIMIT 1) AS winner "
			   "FROM temp.identity a WHERE winner IS NOT NULL ORDER BY a.key",
	[S_COLL_GET] = "SELECT hash, created, tenant_id FROM collections WHERE key = ?1",
	[S_COLL_PUT] = "INSERT INTO collections(key, tenant_id, hash, created) VALUES (?1, ?2, ?3, ?4) "
		       "ON CONFLICT(key) DO UPDATE SET tenant_id = coalesce(excluded.tenant_id, collections.tenant_id), "
		       "hash = excluded.hash",
	[S_COLL_DELETE] = "DELETE FROM collections WHERE key = ?1",
	[S_COLL_EACH] = "SELECT key FROM collections ORDER BY key",
	[S_PENDING_REMOVE] = "DELETE FROM pending WHERE cycle = ?1 AND key = ?2",
	[S_QUAR_REMOVE] = "DELETE FROM quarantine WHERE key = ?1",
	[S_QUAR_COUNT] = "SELECT count(*) FROM quarantine",
	[S_QUAR_EACH] = "SELECT key, reason, since, kind FROM quarantine WHERE key > ?1 ORDER BY key LIMIT ?2",
#define ACT_COLS "id, device_id, key, resource_id, action, requested_by, requested, expires, received_ms, state, " \
		 "delivery, op_type, intent_id, error_code, message, updated"
	[S_ACT_ADD] = "INSERT INTO actions(" ACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		      "?14, ?15, ?16) ON CONFLICT(id) DO NOTHING",
	[S_ACT_GET] = "SELECT " ACT_COLS " FROM actions WHERE id = ?1",
	[S_ACT_UPDATE] = "UPDATE actions SET state = ?2, delivery = ?3, error_code = ?4, message = ?5, "
			 "intent_id = CASE WHEN ?6 >= 0 THEN ?6 ELSE intent_id END, "
			 "op_type = CASE WHEN ?7 >= 0 THEN ?7 ELSE op_type END, updated = ?8 WHERE id = ?1",
	[S_ACT_BY_STATE] = "SELECT " ACT_COLS " FROM actions WHERE state = ?1 ORDER BY received_ms, id LIMIT ?2",
	[S_ACT_BY_INTENT] = "SELECT " ACT_COLS " FROM actions WHERE intent_id = ?1 ORDER BY resource_id, id",
	[S_ACT_OPEN] = "SELECT count(*) FROM actions WHERE state NOT IN ('done', 'failed', 'notSupported')",
	[S_ACT_RECENT] = "SELECT " ACT_COLS " FROM actions ORDER BY received_ms DESC, id LIMIT ?1",
#define INTENT_COLS "id, kind, op_type, targets, marker, intended, operation_id, coalesce(outcome, ''), last_polled, completed"
	[S_INTENT_ADD] = "INSERT INTO journal(kind, op_type, targets, marker, intended) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_INTENT_OUTCOME] = "UPDATE journal SET operation_id = ?2, outcome = ?3 WHERE id = ?1",
	[S_INTENT_POLLED] = "UPDATE journal SET last_polled = ?2 WHERE id = ?1",
	[S_INTENT_COMPLETE] = "UPDATE journal SET completed = ?2 WHERE id = ?1",
	[S_INTENT_OPEN] = "SELECT " INTENT_COLS " FROM journal WHERE completed = 0 ORDER BY id",
	[S_INTENT_KNOWN] = "SELECT count(*) FROM journal WHERE operation_id = ?1 AND kind = 'operation'",
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

struct cmb_state {
	sqlite3 *db;
	char *dir;
	char *path;                  /* dir/cmbridge.db, for messages */
	int lock_fd;
	int version;
	int pending_iterating;       /* S_PENDING_EACH is stepping: no re-entry */
	sqlite3_stmt *stmt[S_COUNT];
};

/* ---- errors ---- */

__attribute__((format(printf, 2, 3))) static int db_error(struct cmb_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	cmb_error_set(CMB_ESTATE, "state database %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
	free(what);
	return CMB_ESTATE;
}

static int is_corrupt(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static int corrupt_error(struct cmb_state *st, const char *detail)
{
	return cmb_error_set(CMB_ESTATE,
			     "state database %s is corrupt (%s); cmbridge will not use it: stop cmbridge, move "
			     "the file (and any -wal and -shm files next to it) aside and start again, which "
			     "rebuilds the state with a full cycle, or restore a backup",
			     st->path, detail);
}

/* Runs sql (no rows expected) at open time; corruption gets its own message. */
static int exec_sql(struct cmb_state *st, const char *sql, const char *what)
{
	char *err = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		int ret = is_corrupt(rc) ? corrupt_error(st, err ? err : sqlite3_errstr(rc))
					 : cmb_error_set(CMB_ESTATE, "state database %s: %s: %s", st->path, what,
							 err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		return ret;
	}
	return 0;
}

/* Runs a one-row query at open time, copying the first column as text into *out (caller frees). */
static int query_text(struct cmb_state *st, const char *sql, const char *what, char **out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(s, 0);
			*out = xstrdup(t ? t : "");
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			*out = xstrdup("");
			rc = SQLITE_OK;
		}
	}
	int ret = 0;
	if (rc != SQLITE_OK)
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : db_error(st, "%s", what);
	sqlite3_finalize(s);
	return ret;
}

/* ---- opening ---- */

static int make_dir(const char *dir)
{
	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return cmb_error_set(CMB_ESTATE, "cannot create state directory %s: %s", dir, strerror(errno));
	struct stat sb;
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return cmb_error_set(CMB_ESTATE, "state directory %s exists but is not a directory", dir);
	return 0;
}

/*
 * An flock() on state_dir/cmbridge.lock held as long as the state is open.
 * flock locks belong to the open file description, so a second open in the
 * same process conflicts too; the kernel drops the lock when the process
 * dies, so a crash never leaves a stale lock behind.
 */
static int take_lock(struct cmb_state *st)
{
	char *lock_path = xasprintf("%s/%s", st->dir, LOCK_FILE);
	int ret = 0;
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = cmb_error_set(CMB_ESTATE, "cannot open lock file %s: %s", lock_path, strerror(errno));
		goto done;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			char buf[32] = "";
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
			long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
			if (pid > 0)
				ret = cmb_error_set(CMB_ESTATE, "another cmbridge is using %s (pid %ld)", st->dir, pid);
			else
				ret = cmb_error_set(CMB_ESTATE, "another cmbridge is using %s (pid unknown)", st->dir);
		} else {
			ret = cmb_error_set(CMB_ESTATE, "cannot lock %s: %s", lock_path, strerror(errno));
		}
		close(fd);
		goto done;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
		ret = cmb_error_set(CMB_ESTATE, "cannot write pid to %s: %s", lock_path, strerror(errno));
		close(fd);
		goto done;
	}
	st->lock_fd = fd;
done:
	free(lock_path);
	return ret;
}

static int check_integrity(struct cmb_state *st)
{
	sqlite3_stmt *s = NULL;
	int ret = 0;
	int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
	if (rc != SQLITE_OK) {
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : db_error(st, "checking integrity");
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (!t || strcmp(t, "ok") != 0)
			ret = corrupt_error(st, t ? t : "quick_check failed");
	} else {
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : db_error(st, "checking integrity");
	}
done:
	sqlite3_finalize(s);
	return ret;
}

static int migrate(struct cmb_state *st)
{
	char *text = NULL;
	int ret = query_text(st, "PRAGMA user_version", "reading the schema version", &text);
	if (ret < 0)
		return ret;
	long version = strtol(text, NULL, 10);
	free(text);
	if (version > SCHEMA_LATEST)
		return cmb_error_set(CMB_ESTATE,
				     "state database %s has schema version %ld, newer than the %d this cmbridge knows: "
				     "it was written by a newer cmbridge; run that version, or move the state aside "
				     "to start over with a full cycle",
				     st->path, version, SCHEMA_LATEST);
	if (version < 0)
		return cmb_error_set(CMB_ESTATE, "state database %s has an invalid schema version %ld", st->path,
				     version);
	for (int v = (int)version; v < SCHEMA_LATEST; v++) {
		char what[96];
		snprintf(what, sizeof(what), "migrating the schema from version %d to %d", v, v + 1);
		char *bump = xasprintf("PRAGMA user_version = %d", v + 1);
		if ((ret = exec_sql(st, "BEGIN IMMEDIATE", what)) == 0) {
			if ((ret = exec_sql(st, migrations[v], what)) == 0 && (ret = exec_sql(st, bump, what)) == 0)
				ret = exec_sql(st, "COMMIT", what);
			if (ret < 0 && !sqlite3_get_autocommit(st->db))
				sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		}
		free(bump);
		if (ret < 0)
			return ret;
	}
	st->version = SCHEMA_LATEST;
	return 0;
}

int cmb_state_open(struct cmb_state **out, const char *state_dir)
{
	int ret;
	struct cmb_state *st = xcalloc(1, sizeof(*st));
	st->lock_fd = -1;
	st->dir = xstrdup(state_dir);
	st->path = xasprintf("%s/%s", state_dir, CMB_STATE_FILE);

	if ((ret = make_dir(state_dir)) < 0 || (ret = take_lock(st)) < 0)
		goto done;

	int rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		ret = cmb_error_set(CMB_ESTATE, "cannot open state database %s: %s", st->path,
				    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		goto done;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);

	char *mode = NULL;
	if ((ret = query_text(st, "PRAGMA journal_mode = WAL", "enabling the WAL journal", &mode)) < 0)
		goto done;
	if (strcmp(mode, "wal") != 0) {
		ret = cmb_error_set(CMB_ESTATE,
				    "state database %s: the WAL journal cannot be enabled (journal mode is \"%s\"): "
				    "put state_dir on a local file system",
				    st->path, mode);
		free(mode);
		goto done;
	}
	free(mode);
	/* journal_size_limit: the -wal file shrinks back after a big cycle instead of keeping its peak size. */
	if ((ret = exec_sql(st, "PRAGMA synchronous = NORMAL", "setting synchronous")) < 0 ||
	    (ret = exec_sql(st, "PRAGMA journal_size_limit = 67108864", "limiting the WAL size")) < 0 ||
	    (ret = exec_sql(st, "PRAGMA foreign_keys = ON", "enabling foreign keys")) < 0 ||
	    (ret = check_integrity(st)) < 0 || (ret = migrate(st)) < 0)
		goto done;
	/*
	 * Per-connection scratch for duplicate detection: who shares hardware
	 * within the running cycle. TEMP, so it never reaches the database file.
	 */
	if ((ret = exec_sql(st,
			    "CREATE TEMP TABLE identity(key TEXT PRIMARY KEY NOT NULL, hardware_id TEXT NOT NULL, "
			    "smbios_guid TEXT NOT NULL, last_active INTEGER NOT NULL, resource_id INTEGER NOT NULL);"
			    "CREATE INDEX temp.identity_hw ON identity(hardware_id);"
			    "CREATE INDEX temp.identity_smbios ON identity(smbios_guid);",
			    "creating the duplicate-detection table")) < 0)
		goto done;

	for (int i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			ret = db_error(st, "preparing \"%s\"", stmt_sql[i]);
			goto done;
		}
	}
	*out = st;
	st = NULL;
	ret = 0;
done:
	cmb_state_close(st);
	return ret;
}

void cmb_state_close(struct cmb_state *st)
{
	if (!st)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db) {
		/* A transaction left open by a failed caller is rolled back, never half-committed. */
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(st->db);
	}
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	free(st->dir);
	free(st->path);
	free(st);
}

int cmb_state_schema_version(struct cmb_state *st)
{
	return st->version;
}

/* ---- statement helpers ---- */

/* Steps a statement that returns no rows, then resets it. */
static int step_done(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int step_done(struct cmb_state *st, sqlite3_stmt *s, int bind_rc, const char *fmt, ...)
{
	int rc = bind_rc == SQLITE_OK ? sqlite3_step(s) : bind_rc;
	int ret = 0;
	if (rc != SQLITE_DONE) {
		va_list ap;
		va_start(ap, fmt);
		char *what = xvasprintf(fmt, ap);
		va_end(ap);
		ret = db_error(st, "%s", what);
		free(what);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return ret;
}

static void finish_stmt(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int bad_key(const char *key, const char *what)
{
	if (!key || !key[0])
		return cmb_error_set(CMB_EINVAL, "%s: empty device key", what);
	return 0;
}

/* Returns the count, or CMB_ESTATE. */
static long count_rows(struct cmb_state *st, sqlite3_stmt *s, const char *what)
{
	long ret;
	if (sqlite3_step(s) == SQLITE_ROW)
		ret = (long)sqlite3_column_int64(s, 0);
	else
		ret = db_error(st, "%s", what);
	finish_stmt(s);
	return ret;
}

/* ---- transactions ---- */

int cmb_state_begin(struct cmb_state *st)
{
	return step_done(st, st->stmt[S_BEGIN], SQLITE_OK, "beginning a transaction");
}

int cmb_state_commit(struct cmb_state *st)
{
	return step_done(st, st->stmt[S_COMMIT], SQLITE_OK, "committing");
}

int cmb_state_rollback(struct cmb_state *st)
{
	if (sqlite3_get_autocommit(st->db))
		return 0; /* nothing to roll back (an error may already have ended it) */
	return step_done(st, st->stmt[S_ROLLBACK], SQLITE_OK, "rolling back");
}

/* ---- cycles ---- */

int cmb_state_cycle_begin(struct cmb_state *st, const char *kind, int64_t started, int64_t *cycle_id)
{
	if (!kind || !kind[0] || strlen(kind) >= sizeof(((struct cmb_cycle *)0)->kind))
		return cmb_error_set(CMB_EINVAL, "cycle kind \"%s\" is empty or too long", kind ? kind : "");
	sqlite3_stmt *s = st->stmt[S_CYCLE_BEGIN];
	int b = sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 2, started);
	int ret = step_done(st, s, b, "recording the start of a %s cycle", kind);
	if (ret < 0)
		return ret;
	int64_t id = sqlite3_last_insert_rowid(st->db);
	if (id > CYCLES_KEPT) {
		s = st->stmt[S_CYCLE_PRUNE];
		b = sqlite3_bind_int64(s, 1, id - CYCLES_KEPT);
		if ((ret = step_done(st, s, b, "dropping cycles older than the last %d", CYCLES_KEPT)) < 0)
			return ret;
	}
	*cycle_id = id;
	return 0;
}

int cmb_state_cycle_end(struct cmb_state *st, int64_t cycle_id, int64_t ended, const char *status,
			const struct cmb_cycle_counts *counts, const char *error)
{
	if (!status || !status[0] || strlen(status) >= sizeof(((struct cmb_cycle *)0)->status))
		return cmb_error_set(CMB_EINVAL, "cycle status \"%s\" is empty or too long", status ? status : "");
	static const struct cmb_cycle_counts zero;
	if (!counts)
		counts = &zero;
	sqlite3_stmt *s = st->stmt[S_CYCLE_END];
	int i = 1;
	int b = sqlite3_bind_int64(s, i++, ended);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, i++, status, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = error ? sqlite3_bind_text(s, i++, error, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i++);
#define BIND_COUNT(name) \
	if (b == SQLITE_OK) \
		b = sqlite3_bind_int64(s, i++, counts->name);
	CYCLE_COUNTS(BIND_COUNT)
#undef BIND_COUNT
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, i++, cycle_id);
	int ret = step_done(st, s, b, "recording the end of cycle %" PRId64, cycle_id);
	if (ret == 0 && sqlite3_changes(st->db) == 0)
		ret = cmb_error_set(CMB_ENOTFOUND, "state database %s: no cycle %" PRId64 " to end", st->path,
				    cycle_id);
	return ret;
}

static void copy_text(char *dst, size_t size, const unsigned char *src)
{
	snprintf(dst, size, "%s", src ? (const char *)src : "");
}

int cmb_state_cycles_recent(struct cmb_state *st, size_t n, struct cmb_cycle **out, size_t *count)
{
	sqlite3_stmt *s = st->stmt[S_CYCLES_RECENT];
	struct cmb_cycle *list = NULL;
	size_t len = 0, cap = 0;
	int ret = 0, rc;
	sqlite3_bind_int64(s, 1, n > INT64_MAX ? INT64_MAX : (int64_t)n);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof(*list));
		}
		struct cmb_cycle *c = &list[len++];
		memset(c, 0, sizeof(*c));
		int col = 0;
		c->id = sqlite3_column_int64(s, col++);
		copy_text(c->kind, sizeof(c->kind), sqlite3_column_text(s, col++));
		c->started = sqlite3_column_int64(s, col++);
		c->ended = sqlite3_column_int64(s, col++);
		copy_text(c->status, sizeof(c->status), sqlite3_column_text(s, col++));
		const unsigned char *e = sqlite3_column_text(s, col++);
		c->error = e ? xstrdup((const char *)e) : NULL;
#define READ_COUNT(name) c->counts.name = (long)sqlite3_column_int64(s, col++);
		CYCLE_COUNTS(READ_COUNT)
#undef READ_COUNT
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "reading recent cycles");
	finish_stmt(s);
	if (ret < 0) {
		cmb_state_cycles_free(list, len);
		return ret;
	}
	*out = list;
	*count = len;
	return 0;
}

void cmb_state_cycles_free(struct cmb_cycle *cycles, size_t count)
{
	if (!cycles)
		return;
	for (size_t i = 0; i < count; i++)
		free(cycles[i].error);
	free(cycles);
}

/* ---- devices ---- */

int cmb_state_device_get(struct cmb_state *st, const char *key, char hash[65], char stable_hash[65],
			 char **tenant_id)
{
	int ret = bad_key(key, "looking up a device");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_GET];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		copy_text(hash, 65, sqlite3_column_text(s, 0));
		if (stable_hash)
			copy_text(stable_hash, 65, sqlite3_column_text(s, 2));
		if (tenant_id) {
			const unsigned char *t = sqlite3_column_text(s, 1);
			*tenant_id = t ? xstrdup((const char *)t) : NULL;
		}
	} else if (rc == SQLITE_DONE) {
		ret = CMB_ENOTFOUND; /* an answer, not a failure: no message */
	} else {
		ret = db_error(st, "looking up device \"%s\"", key);
	}
	finish_stmt(s);
	return ret;
}

int cmb_state_device_seen(struct cmb_state *st, const char *key, int64_t cycle_id)
{
	int ret = bad_key(key, "marking a device seen");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_SEEN];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 2, cycle_id);
	return step_done(st, s, b, "marking device \"%s\" seen in cycle %" PRId64, key, cycle_id);
}

int cmb_state_device_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			 const char *stable_hash, int64_t cycle_id, int64_t uploaded)
{
	int ret = bad_key(key, "recording an upload");
	if (ret < 0)
		return ret;
	if (!hash || strlen(hash) != 64)
		return cmb_error_set(CMB_EINVAL, "recording device \"%s\": the hash must be 64 hex characters", key);
	sqlite3_stmt *s = st->stmt[S_DEVICE_PUT];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = tenant_id ? sqlite3_bind_text(s, 2, tenant_id, -1, SQLITE_STATIC) : sqlite3_bind_null(s, 2);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 4, cycle_id);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 5, uploaded);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 6, stable_hash ? stable_hash : "", -1, SQLITE_STATIC);
	return step_done(st, s, b, "recording the upload of device \"%s\"", key);
}

int cmb_state_device_delete(struct cmb_state *st, const char *key)
{
	int ret = bad_key(key, "deleting a device");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_DELETE];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return step_done(st, s, b, "deleting device \"%s\"", key);
}

long cmb_state_device_count(struct cmb_state *st)
{
	return count_rows(st, st->stmt[S_DEVICE_COUNT], "counting devices");
}

struct key_page {
	char *a[ITER_PAGE];
	char *b[ITER_PAGE];
	char *c[ITER_PAGE];
	int64_t n[ITER_PAGE];
	size_t len;
};

static void page_clear(struct key_page *p)
{
	for (size_t i = 0; i < p->len; i++) {
		free(p->a[i]);
		free(p->b[i]);
		free(p->c[i]);
		p->c[i] = NULL;
	}
	p->len = 0;
}

static char *dup_column(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? xstrdup((const char *)t) : NULL;
}

/*
 * Devices are read ITER_PAGE at a time into memory, the statement is reset,
 * and only then are the callbacks called: a callback may change the state
 * (delete the device it was given, for instance) without disturbing the
 * iteration, and memory stays bounded whatever the number of devices.
 */
int cmb_state_devices_unseen(struct cmb_state *st, int64_t cycle_id,
			     int (*cb)(void *ctx, const char *key, const char *tenant_id), void *ctx)
{
	struct key_page page = { .len = 0 };
	char *after = xstrdup("");
	int ret = 0;
	for (;;) {
		sqlite3_stmt *s = st->stmt[S_DEVICES_UNSEEN];
		sqlite3_bind_text(s, 1, after, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, cycle_id);
		sqlite3_bind_int(s, 3, ITER_PAGE);
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			page.a[page.len] = dup_column(s, 0);
			page.b[page.len] = dup_column(s, 1);
			page.len++;
		}
		if (rc != SQLITE_DONE)
			ret = db_error(st, "listing devices not seen in cycle %" PRId64, cycle_id);
		finish_stmt(s);
		if (ret < 0 || page.len == 0)
			break;
		for (size_t i = 0; i < page.len && ret == 0; i++)
			ret = cb(ctx, page.a[i], page.b[i]);
		if (ret != 0 || page.len < ITER_PAGE)
			break;
		free(after);
		after = page.a[page.len - 1];
		page.a[page.len - 1] = NULL;
		page_clear(&page);
	}
	page_clear(&page);
	free(after);
	return ret;
}

/* ---- pending ---- */

int cmb_state_pending_add(struct cmb_state *st, int64_t cycle_id, const char *key, const char *hash,
			  const char *stable_hash, int is_new, const char *json, size_t json_len)
{
	int ret = bad_key(key, "staging a record");
	if (ret < 0)
		return ret;
	if (!hash || !json)
		return cmb_error_set(CMB_EINVAL, "staging device \"%s\": no hash or no record", key);
	if (is_new < 0 || is_new > 2)
		return cmb_error_set(CMB_EINVAL, "staging device \"%s\": is_new must be 0, 1 or 2", key);
	sqlite3_stmt *s = st->stmt[S_PENDING_ADD];
	int b = sqlite3_bind_int64(s, 1, cycle_id);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int(s, 4, is_new);
	if (b == SQLITE_OK)
		b = sqlite3_bind_blob64(s, 5, json, (sqlite3_uint64)json_len, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 6, stable_hash ? stable_hash : "", -1, SQLITE_STATIC);
	return step_done(st, s, b, "staging device \"%s\" for cycle %" PRId64, key, cycle_id);
}

/*
 * Steps the statement directly, so the record bodies are not copied: the
 * callback must not add or drop staged records of this cycle (other tables
 * are fine) and must not call cmb_state_pending_each() itself.
 */
int cmb_state_pending_each(struct cmb_state *st, int64_t cycle_id, const char *after_key, size_t limit,
			   int (*cb)(void *ctx, const char *key, const char *hash, const char *stable_hash,
				     int is_new, const char *json, size_t json_len),
			   void *ctx)
{
	if (st->pending_iterating)
		return cmb_error_set(CMB_ESTATE, "cmb_state_pending_each called from its own callback");
	sqlite3_stmt *s = st->stmt[S_PENDING_EACH];
	int ret = 0, rc;
	sqlite3_bind_int64(s, 1, cycle_id);
	/* Keys are never empty, so "" sorts before every key. */
	sqlite3_bind_text(s, 2, after_key ? after_key : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	st->pending_iterating = 1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(s, 0);
		const char *hash = (const char *)sqlite3_column_text(s, 1);
		int is_new = sqlite3_column_int(s, 2);
		const char *body = sqlite3_column_blob(s, 3);
		size_t body_len = (size_t)sqlite3_column_bytes(s, 3);
		const char *stable = (const char *)sqlite3_column_text(s, 4);
		if ((ret = cb(ctx, key ? key : "", hash ? hash : "", stable ? stable : "", is_new, body ? body : "",
			      body_len)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_error(st, "reading the records staged for cycle %" PRId64, cycle_id);
	st->pending_iterating = 0;
	finish_stmt(s);
	return ret;
}

long cmb_state_pending_count(struct cmb_state *st, int64_t cycle_id)
{
	sqlite3_stmt *s = st->stmt[S_PENDING_COUNT];
	sqlite3_bind_int64(s, 1, cycle_id);
	return count_rows(st, s, "counting staged records");
}

int cmb_state_pending_clear(struct cmb_state *st)
{
	return step_done(st, st->stmt[S_PENDING_CLEAR], SQLITE_OK, "dropping staged records");
}

/* ---- quarantine ---- */

int cmb_state_quarantine_put(struct cmb_state *st, const char *key, const char *kind, const char *reason,
			     const char *hash, int64_t cycle_id, int64_t when)
{
	int ret = bad_key(key, "quarantining a record");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_PUT];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 2, reason ? reason : "", -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 3, cycle_id);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 4, when);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 5, kind ? kind : "mapping", -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = hash ? sqlite3_bind_text(s, 6, hash, -1, SQLITE_STATIC) : sqlite3_bind_null(s, 6);
	return step_done(st, s, b, "quarantining device \"%s\"", key);
}

int cmb_state_quarantine_remove(struct cmb_state *st, const char *key)
{
	int ret = bad_key(key, "releasing a record from quarantine");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_REMOVE];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return step_done(st, s, b, "releasing device \"%s\" from quarantine", key);
}

long cmb_state_quarantine_count(struct cmb_state *st)
{
	return count_rows(st, st->stmt[S_QUAR_COUNT], "counting quarantined records");
}

/* Paged like cmb_state_devices_unseen: the callback may release what it is given. */
int cmb_state_quarantine_each(struct cmb_state *st,
			      int (*cb)(void *ctx, const char *key, const char *kind, const char *reason, int64_t when),
			      void *ctx)
{
	struct key_page page = { .len = 0 };
	char *after = xstrdup("");
	int ret = 0;
	for (;;) {
		sqlite3_stmt *s = st->stmt[S_QUAR_EACH];
		sqlite3_bind_text(s, 1, after, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, ITER_PAGE);
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			page.a[page.len] = dup_column(s, 0);
			page.b[page.len] = dup_column(s, 1);
			page.n[page.len] = sqlite3_column_int64(s, 2);
			page.c[page.len] = dup_column(s, 3);
			page.len++;
		}
		if (rc != SQLITE_DONE)
			ret = db_error(st, "listing quarantined records");
		finish_stmt(s);
		if (ret < 0 || page.len == 0)
			break;
		for (size_t i = 0; i < page.len && ret == 0; i++)
			ret = cb(ctx, page.a[i], page.c[i] ? page.c[i] : "", page.b[i] ? page.b[i] : "", page.n[i]);
		if (ret != 0 || page.len < ITER_PAGE)
			break;
		free(after);
		after = page.a[page.len - 1];
		page.a[page.len - 1] = NULL;
		page_clear(&page);
	}
	page_clear(&page);
	free(after);
	return ret;
}

int cmb_state_quarantine_get(struct cmb_state *st, const char *key, char kind[16], char hash[65])
{
	int ret = bad_key(key, "looking up a quarantined record");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_GET];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		copy_text(kind, 16, sqlite3_column_text(s, 0));
		copy_text(hash, 65, sqlite3_column_text(s, 1));
	} else if (rc == SQLITE_DONE) {
		ret = CMB_ENOTFOUND;
	} else {
		ret = db_error(st, "looking up quarantined record \"%s\"", key);
	}
	finish_stmt(s);
	return ret;
}

int cmb_state_device_unsee(struct cmb_state *st, const char *key, int64_t cycle_id)
{
	int ret = bad_key(key, "unmarking a device");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_UNSEE];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 2, cycle_id);
	return step_done(st, s, b, "unmarking device \"%s\" in cycle %" PRId64, key, cycle_id);
}

/* ---- meta ---- */

int cmb_state_meta_get(struct cmb_state *st, const char *name, int64_t *value)
{
	sqlite3_stmt *s = st->stmt[S_META_GET];
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	int ret = 0, rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		ret = CMB_ENOTFOUND;
	else
		ret = db_error(st, "reading %s", name);
	finish_stmt(s);
	return ret;
}

int cmb_state_meta_set(struct cmb_state *st, const char *name, int64_t value)
{
	sqlite3_stmt *s = st->stmt[S_META_SET];
	int b = sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 2, value);
	return step_done(st, s, b, "writing %s", name);
}

/* ---- what adapters learnt ---- */

int cmb_state_learnt_get(struct cmb_state *st, const char *name, char **text)
{
	sqlite3_stmt *s = st->stmt[S_LEARNT_GET];
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	int ret = 0, rc = sqlite3_step(s);
	*text = NULL;
	if (rc == SQLITE_ROW)
		*text = xstrdup((const char *)sqlite3_column_text(s, 0));
	else if (rc == SQLITE_DONE)
		ret = CMB_ENOTFOUND;
	else
		ret = db_error(st, "reading %s", name);
	finish_stmt(s);
	return ret;
}

int cmb_state_learnt_set(struct cmb_state *st, const char *name, const char *text, int64_t at)
{
	sqlite3_stmt *s = st->stmt[S_LEARNT_SET];
	int b = sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 3, at);
	return step_done(st, s, b, "writing %s", name);
}

/* ---- duplicate detection ---- */

int cmb_state_identity_clear(struct cmb_state *st)
{
	return step_done(st, st->stmt[S_IDENT_CLEAR], SQLITE_OK, "clearing the duplicate-detection table");
}

int cmb_state_identity_add(struct cmb_state *st, const char *key, const char *hardware_id, const char *smbios_guid,
			   int64_t last_active, uint32_t resource_id)
{
	sqlite3_stmt *s = st->stmt[S_IDENT_ADD];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 2, hardware_id ? hardware_id : "", -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 3, smbios_guid ? smbios_guid : "", -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 4, last_active);
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, 5, resource_id);
	return step_done(st, s, b, "recording the hardware identity of \"%s\"", key);
}

int cmb_state_identity_losers(struct cmb_state *st, int (*cb)(void *ctx, const char *key, const char *winner),
			      void *ctx)
{
	/* Collected first: the callback changes other tables while we would still be stepping. */
	sqlite3_stmt *s = st->stmt[S_IDENT_LOSERS];
	char **keys = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 64;
			keys = xrealloc(keys, cap * sizeof(*keys));
		}
		keys[n++] = dup_column(s, 0);
		keys[n++] = dup_column(s, 1);
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "finding duplicate devices");
	finish_stmt(s);
	for (size_t i = 0; i + 1 < n && ret == 0; i += 2)
		ret = cb(ctx, keys[i], keys[i + 1]);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return ret;
}

/* ---- collections ---- */

int cmb_state_collection_get(struct cmb_state *st, const char *key, char hash[65], char created[32])
{
	sqlite3_stmt *s = st->stmt[S_COLL_GET];
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int ret = 0, rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		copy_text(hash, 65, sqlite3_column_text(s, 0));
		copy_text(created, 32, sqlite3_column_text(s, 1));
	} else if (rc == SQLITE_DONE) {
		ret = CMB_ENOTFOUND;
	} else {
		ret = db_error(st, "looking up collection \"%s\"", key);
	}
	finish_stmt(s);
	return ret;
}

int cmb_state_collection_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			     const char *created)
{
	sqlite3_stmt *s = st->stmt[S_COLL_PUT];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = tenant_id ? sqlite3_bind_text(s, 2, tenant_id, -1, SQLITE_STATIC) : sqlite3_bind_null(s, 2);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 4, created, -1, SQLITE_STATIC);
	return step_done(st, s, b, "recording collection \"%s\"", key);
}

int cmb_state_collection_delete(struct cmb_state *st, const char *key)
{
	sqlite3_stmt *s = st->stmt[S_COLL_DELETE];
	int b = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return step_done(st, s, b, "forgetting collection \"%s\"", key);
}

int cmb_state_collection_keys(struct cmb_state *st, char ***out, size_t *n_out)
{
	sqlite3_stmt *s = st->stmt[S_COLL_EACH];
	char **keys = NULL;
	size_t n = 0;
	int ret = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		keys = xrealloc(keys, (n + 1) * sizeof(*keys));
		keys[n++] = dup_column(s, 0);
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "listing collections");
	finish_stmt(s);
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
		return ret;
	}
	*out = keys;
	*n_out = n;
	return 0;
}

int cmb_state_pending_remove(struct cmb_state *st, int64_t cycle_id, const char *key, int *removed)
{
	sqlite3_stmt *s = st->stmt[S_PENDING_REMOVE];
	int b = sqlite3_bind_int64(s, 1, cycle_id);
	if (b == SQLITE_OK)
		b = sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	int ret = step_done(st, s, b, "unstaging device \"%s\"", key);
	if (ret == 0 && removed)
		*removed = sqlite3_changes(st->db) > 0;
	return ret;
}

/* ---- remote actions (schema v2) ---- */

/*
 * Binds ?1.. from a format: 't' text (NULL binds NULL), 'i' int64, 'l'
 * long, 'd' int. Returns the first SQLite bind code that is not SQLITE_OK.
 */
static int bind_fmt(sqlite3_stmt *s, const char *fmt, ...)
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
		case 'i': b = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
		case 'l': b = sqlite3_bind_int64(s, i + 1, (int64_t)va_arg(ap, long)); break;
		default: b = sqlite3_bind_int(s, i + 1, va_arg(ap, int)); break;
		}
	}
	va_end(ap);
	return b;
}

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

void cmb_state_actions_free(struct cmb_action *list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		cmb_state_action_clear(&list[i]);
	free(list);
}

static char *dup_or_empty(sqlite3_stmt *s, int col)
{
	char *v = dup_column(s, col);
	return v ? v : xstrdup("");
}

static void read_action(sqlite3_stmt *s, struct cmb_action *a)
{
	memset(a, 0, sizeof(*a));
	a->id = dup_or_empty(s, 0);
	a->device_id = dup_or_empty(s, 1);
	a->key = dup_or_empty(s, 2);
	a->resource_id = (uint32_t)sqlite3_column_int64(s, 3);
	a->action = dup_or_empty(s, 4);
	a->requested_by = dup_or_empty(s, 5);
	a->requested = sqlite3_column_int64(s, 6);
	a->expires = sqlite3_column_int64(s, 7);
	a->received_ms = sqlite3_column_int64(s, 8);
	copy_text(a->state, sizeof(a->state), sqlite3_column_text(s, 9));
	copy_text(a->delivery, sizeof(a->delivery), sqlite3_column_text(s, 10));
	a->op_type = sqlite3_column_int(s, 11);
	a->intent_id = sqlite3_column_int64(s, 12);
	a->error_code = (long)sqlite3_column_int64(s, 13);
	a->message = dup_column(s, 14);
	a->updated = sqlite3_column_int64(s, 15);
}

int cmb_state_action_add(struct cmb_state *st, const struct cmb_action *a, int *added)
{
	if (!a->id || !a->id[0])
		return cmb_error_set(CMB_EINVAL, "adding an action: empty action id");
	sqlite3_stmt *s = st->stmt[S_ACT_ADD];
	int b = bind_fmt(s, "tttittiiittdilti", a->id, a->device_id ? a->device_id : "", a->key ? a->key : "",
			 (int64_t)a->resource_id, a->action ? a->action : "", a->requested_by ? a->requested_by : "",
			 a->requested, a->expires, a->received_ms, a->state, a->delivery, a->op_type, a->intent_id,
			 a->error_code, a->message, a->updated);
	int ret = step_done(st, s, b, "adding action \"%s\" to the inbox", a->id);
	if (ret == 0 && added)
		*added = sqlite3_changes(st->db) > 0;
	return ret;
}

int cmb_state_action_get(struct cmb_state *st, const char *id, struct cmb_action *out)
{
	sqlite3_stmt *s = st->stmt[S_ACT_GET];
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	int ret = 0, rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		read_action(s, out);
	else if (rc == SQLITE_DONE)
		ret = CMB_ENOTFOUND;
	else
		ret = db_error(st, "reading action \"%s\"", id);
	finish_stmt(s);
	return ret;
}

int cmb_state_action_update(struct cmb_state *st, const char *id, const char *state, const char *delivery,
			    long error_code, const char *message, int64_t intent_id, int op_type, int64_t updated)
{
	sqlite3_stmt *s = st->stmt[S_ACT_UPDATE];
	int b = bind_fmt(s, "tttltidi", id, state, delivery, error_code, message, intent_id, op_type, updated);
	int ret = step_done(st, s, b, "moving action \"%s\" to %s", id, state);
	if (ret == 0 && sqlite3_changes(st->db) == 0)
		ret = cmb_error_set(CMB_ENOTFOUND, "state database %s: no action \"%s\"", st->path, id);
	return ret;
}

static int read_actions(struct cmb_state *st, sqlite3_stmt *s, const char *what, struct cmb_action **out,
			size_t *n_out)
{
	struct cmb_action *list = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			list = xrealloc(list, cap * sizeof(*list));
		}
		read_action(s, &list[n++]);
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "%s", what);
	finish_stmt(s);
	if (ret < 0) {
		cmb_state_actions_free(list, n);
		return ret;
	}
	*out = list;
	*n_out = n;
	return 0;
}

static int64_t clamp_limit(size_t limit)
{
	return limit > INT64_MAX ? INT64_MAX : (int64_t)limit;
}

int cmb_state_actions_by_state(struct cmb_state *st, const char *state, size_t limit, struct cmb_action **out,
			       size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_ACT_BY_STATE];
	bind_fmt(s, "ti", state, clamp_limit(limit));
	return read_actions(st, s, "listing actions by state", out, n);
}

int cmb_state_actions_by_intent(struct cmb_state *st, int64_t intent_id, struct cmb_action **out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_ACT_BY_INTENT];
	bind_fmt(s, "i", intent_id);
	return read_actions(st, s, "listing the actions of a journal row", out, n);
}

int cmb_state_actions_recent(struct cmb_state *st, size_t limit, struct cmb_action **out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_ACT_RECENT];
	bind_fmt(s, "i", clamp_limit(limit));
	return read_actions(st, s, "listing recent actions", out, n);
}

long cmb_state_actions_open(struct cmb_state *st)
{
	return count_rows(st, st->stmt[S_ACT_OPEN], "counting open actions");
}

void cmb_state_intents_free(struct cmb_intent *list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i].targets);
	free(list);
}

int cmb_state_intent_add(struct cmb_state *st, const char *kind, int op_type, const char *targets_json,
			 const char *marker, int64_t intended, int64_t *intent_id)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_ADD];
	int b = bind_fmt(s, "tdtti", kind, op_type, targets_json, marker, intended);
	int ret = step_done(st, s, b, "journaling the intent of a %s", kind);
	if (ret == 0)
		*intent_id = sqlite3_last_insert_rowid(st->db);
	return ret;
}

int cmb_state_intent_outcome(struct cmb_state *st, int64_t intent_id, int64_t operation_id, const char *outcome)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_OUTCOME];
	int b = bind_fmt(s, "iit", intent_id, operation_id, outcome);
	return step_done(st, s, b, "recording the outcome of journal row %" PRId64, intent_id);
}

int cmb_state_intent_polled(struct cmb_state *st, int64_t intent_id, int64_t when)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_POLLED];
	int b = bind_fmt(s, "ii", intent_id, when);
	return step_done(st, s, b, "recording a status read of journal row %" PRId64, intent_id);
}

int cmb_state_intent_complete(struct cmb_state *st, int64_t intent_id, int64_t when)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_COMPLETE];
	int b = bind_fmt(s, "ii", intent_id, when);
	return step_done(st, s, b, "completing journal row %" PRId64, intent_id);
}

int cmb_state_intents_open(struct cmb_state *st, struct cmb_intent **out, size_t *n_out)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_OPEN];
	struct cmb_intent *list = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof(*list));
		}
		struct cmb_intent *it = &list[n++];
		memset(it, 0, sizeof(*it));
		it->id = sqlite3_column_int64(s, 0);
		copy_text(it->kind, sizeof(it->kind), sqlite3_column_text(s, 1));
		it->op_type = sqlite3_column_int(s, 2);
		it->targets = dup_or_empty(s, 3);
		copy_text(it->marker, sizeof(it->marker), sqlite3_column_text(s, 4));
		it->intended = sqlite3_column_int64(s, 5);
		it->operation_id = sqlite3_column_int64(s, 6);
		copy_text(it->outcome, sizeof(it->outcome), sqlite3_column_text(s, 7));
		it->last_polled = sqlite3_column_int64(s, 8);
		it->completed = sqlite3_column_int64(s, 9);
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "listing open journal rows");
	finish_stmt(s);
	if (ret < 0) {
		cmb_state_intents_free(list, n);
		return ret;
	}
	*out = list;
	*n_out = n;
	return 0;
}

int cmb_state_intent_operation_known(struct cmb_state *st, int64_t operation_id, int *known)
{
	sqlite3_stmt *s = st->stmt[S_INTENT_KNOWN];
	bind_fmt(s, "i", operation_id);
	long c = count_rows(st, s, "looking up a site operation in the journal");
	if (c < 0)
		return (int)c;
	*known = c > 0;
	return 0;
}

int cmb_state_outbox_put(struct cmb_state *st, const char *action_id, const char *delivery, const char *state,
			 long error_code, const char *message, int64_t updated)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_PUT];
	int b = bind_fmt(s, "tttlti", action_id, delivery, state, error_code, message, updated);
	return step_done(st, s, b, "queueing the result of action \"%s\"", action_id);
}

void cmb_state_outbox_free(struct cmb_outbox_entry *list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++) {
		free(list[i].action_id);
		free(list[i].delivery);
		free(list[i].state);
		free(list[i].message);
	}
	free(list);
}

int cmb_state_outbox_list(struct cmb_state *st, size_t limit, struct cmb_outbox_entry **out, size_t *n_out)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_LIST];
	bind_fmt(s, "i", clamp_limit(limit));
	struct cmb_outbox_entry *list = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			list = xrealloc(list, cap * sizeof(*list));
		}
		struct cmb_outbox_entry *e = &list[n++];
		e->action_id = dup_or_empty(s, 0);
		e->delivery = dup_or_empty(s, 1);
		e->state = dup_or_empty(s, 2);
		e->error_code = (long)sqlite3_column_int64(s, 3);
		e->message = dup_column(s, 4);
		e->updated = sqlite3_column_int64(s, 5);
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "listing the outbox");
	finish_stmt(s);
	if (ret < 0) {
		cmb_state_outbox_free(list, n);
		return ret;
	}
	*out = list;
	*n_out = n;
	return 0;
}

int cmb_state_outbox_delete(struct cmb_state *st, const char *action_id, const char *delivery, const char *state)
{
	sqlite3_stmt *s = st->stmt[S_OUTBOX_DELETE];
	int b = bind_fmt(s, "ttt", action_id, delivery, state);
	return step_done(st, s, b, "dropping the acknowledged result of action \"%s\"", action_id);
}

long cmb_state_outbox_count(struct cmb_state *st)
{
	return count_rows(st, st->stmt[S_OUTBOX_COUNT], "counting the outbox");
}

int cmb_state_audit_add(struct cmb_state *st, const struct cmb_audit_entry *e)
{
	sqlite3_stmt *s = st->stmt[S_AUDIT_ADD];
	int b = bind_fmt(s, "itttttittt", e->at, e->action_id, e->requested_by ? e->requested_by : "",
			 e->device_id ? e->device_id : "", e->key ? e->key : "", e->action ? e->action : "",
			 e->requested, e->event, e->outcome ? e->outcome : "", e->reason);
	return step_done(st, s, b, "auditing action \"%s\"", e->action_id);
}

struct audit_row {
	int64_t seq, at, requested;
	char *v[8];              /* action_id requested_by device_id key action event outcome reason */
};

int cmb_state_audit_each(struct cmb_state *st, const char *action_id,
			 int (*cb)(void *ctx, const struct cmb_audit_entry *e), void *ctx)
{
	int64_t after = 0;
	int ret = 0;
	for (;;) {
		/* Paged (copied out, statement reset) so cb may write to the state. */
		struct audit_row rows[ITER_PAGE];
		size_t n = 0;
		sqlite3_stmt *s = st->stmt[S_AUDIT_EACH];
		bind_fmt(s, "tid", action_id, after, ITER_PAGE);
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct audit_row *r = &rows[n++];
			r->seq = sqlite3_column_int64(s, 0);
			r->at = sqlite3_column_int64(s, 1);
			r->requested = sqlite3_column_int64(s, 7);
			int map[8] = { 2, 3, 4, 5, 6, 8, 9, 10 };
			for (int k = 0; k < 8; k++)
				r->v[k] = dup_column(s, map[k]);
		}
		if (rc != SQLITE_DONE)
			ret = db_error(st, "reading the audit table");
		finish_stmt(s);
		for (size_t i = 0; i < n; i++) {
			struct audit_row *r = &rows[i];
			struct cmb_audit_entry e = {
				.seq = r->seq, .at = r->at, .action_id = r->v[0], .requested_by = r->v[1],
				.device_id = r->v[2], .key = r->v[3], .action = r->v[4], .requested = r->requested,
				.event = r->v[5], .outcome = r->v[6], .reason = r->v[7],
			};
			if (ret == 0)
				ret = cb(ctx, &e);
			after = r->seq;
			for (int k = 0; k < 8; k++)
				free(r->v[k]);
		}
		if (ret != 0 || n < ITER_PAGE)
			break;
	}
	return ret;
}

int cmb_state_cursor_get(struct cmb_state *st, char **out)
{
	sqlite3_stmt *s = st->stmt[S_CURSOR_GET];
	int ret = 0, rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = dup_or_empty(s, 0);
	else if (rc == SQLITE_DONE)
		*out = xstrdup("");
	else
		ret = db_error(st, "reading the notification cursor");
	finish_stmt(s);
	return ret;
}

int cmb_state_cursor_set(struct cmb_state *st, const char *cursor)
{
	sqlite3_stmt *s = st->stmt[S_CURSOR_SET];
	int b = bind_fmt(s, "t", cursor ? cursor : "");
	return step_done(st, s, b, "storing the notification cursor");
}
