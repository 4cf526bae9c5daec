/*
 * state.c - the state database itself: the lock on state_dir, the SQLite
 * connection in WAL mode, the integrity check, the versioned schema
 * migrated forward, the registry of prepared statements (made once at
 * open), transactions, and the two small tables every part uses: meta and
 * learnt. What the sync engine and the action relay keep is in
 * state_sync.c and state_actions.c; the statement helpers in state_db.c.
 *
 * Callers batch their writes between cmb_state_begin() and
 * cmb_state_commit(); outside a transaction every call commits by itself.
 * This file must never guess: a corrupt database, a schema newer than the
 * binary or a state directory held by another process are refused with a
 * message that says what to do, never worked around. A shipped migration
 * is never edited. docs/state.md explains the schema, durability and
 * locking.
 */
#include "connector/store/state_db.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_FILE "cmbridge.lock"

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
	/* 3 -> 4: uploads whose outcome is unknown, the site properties of each record (docs/safety.md) */
	"CREATE TABLE inflight(\n"            /* a record sent to the tenant whose outcome is not known */
	"  key TEXT PRIMARY KEY NOT NULL,\n"
	"  batch TEXT NOT NULL,\n"            /* batchId of the last batch that carried it */
	"  cycle INTEGER NOT NULL,\n"         /* that batch's cycle */
	"  since_cycle INTEGER NOT NULL,\n"   /* the first cycle it went out without an answer since */
	"  since INTEGER NOT NULL,\n"         /* epoch seconds of that */
	"  seen_cycle INTEGER NOT NULL\n"     /* last cycle that read it from the site */
	") WITHOUT ROWID;\n"
	/* the site properties a record was built from (a bit each, connector/engine/sync.c); NULL: not known */
	"ALTER TABLE devices ADD COLUMN fields INTEGER;\n"
	"ALTER TABLE cycles ADD COLUMN changes_held INTEGER NOT NULL DEFAULT 0;\n",
	/* 4 -> 5: endpoint security policies (docs/policies.md, "The engine") */
	"CREATE TABLE policies(\n"            /* one row per tenant policy the connector has seen */
	"  id TEXT PRIMARY KEY NOT NULL,\n"   /* the Graph policy id */
	"  name TEXT NOT NULL,\n"
	"  family TEXT NOT NULL,\n"           /* templateReference.templateFamily */
	"  modified TEXT NOT NULL,\n"         /* lastModifiedDateTime last read: re-read only when it moves */
	"  state TEXT NOT NULL,\n"            /* pending | applied | rejected | conflict | removing | ignored */
	"  targets TEXT NOT NULL,\n"          /* collection ids, sorted, comma-separated */
	"  body BLOB,\n"                      /* the policy as Graph returned it */
	"  version INTEGER NOT NULL DEFAULT 0,\n" /* content version of the wanted document */
	"  hash TEXT NOT NULL DEFAULT '',\n"  /* its contentHash */
	"  document BLOB,\n"                  /* the wanted document */
	"  settings INTEGER NOT NULL DEFAULT 0,\n"
	"  site_version INTEGER NOT NULL DEFAULT 0,\n" /* what the site confirmed holding; 0: nothing */
	"  site_hash TEXT NOT NULL DEFAULT '',\n"
	"  compliance_version INTEGER NOT NULL DEFAULT 0,\n"
	"  compliance_at INTEGER NOT NULL DEFAULT 0,\n"
	"  reported_hash TEXT NOT NULL DEFAULT '',\n" /* digest of the status the tenant last accepted */
	"  updated INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE policy_reasons(\n"      /* why a policy is rejected or in conflict, in order */
	"  policy_id TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,\n"
	"  seq INTEGER NOT NULL,\n"
	"  reason TEXT NOT NULL,\n"
	"  PRIMARY KEY (policy_id, seq)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE policy_compliance(\n"   /* counts per target collection, as last read from the site */
	"  policy_id TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,\n"
	"  collection_id TEXT NOT NULL,\n"
	"  targeted INTEGER NOT NULL, compliant INTEGER NOT NULL, non_compliant INTEGER NOT NULL,\n"
	"  error INTEGER NOT NULL, conflict INTEGER NOT NULL, not_applicable INTEGER NOT NULL,\n"
	"  PRIMARY KEY (policy_id, collection_id)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE policy_devices(\n"      /* per member device its state, as last read from the site */
	"  policy_id TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,\n"
	"  resource_id INTEGER NOT NULL,\n"
	"  state TEXT NOT NULL,\n"            /* pending | compliant | nonCompliant | error | conflict | notApplicable */
	"  failing TEXT NOT NULL,\n"          /* failing settings' definition ids, comma-separated */
	"  PRIMARY KEY (policy_id, resource_id)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE policy_journal(\n"      /* intent before each site write, outcome after */
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  policy_id TEXT NOT NULL,\n"        /* no foreign key: the row outlives a removed policy */
	"  op TEXT NOT NULL,\n"               /* put | delete */
	"  version INTEGER NOT NULL,\n"
	"  hash TEXT NOT NULL,\n"
	"  intended INTEGER NOT NULL,\n"
	"  outcome TEXT,\n"                   /* NULL: not known | done | adopted | refused | conflict | abandoned */
	"  message TEXT,\n"
	"  completed INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE INDEX policy_journal_policy ON policy_journal(policy_id, id);\n",
	/*
	 * 5 -> 6: a cycle's staged records live in the connection's TEMP
	 * `pending` (state_sync.c), not in the file: they never outlived their
	 * cycle (the read drops leftovers first), and staging them through the
	 * WAL wrote every body twice and grew the file by them.
	 */
	"DROP TABLE pending;\n",
};

#define SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* This file's statements; the others are in state_sync.c and state_actions.c. */
static const char *const core_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[S_META_SET] = "INSERT INTO meta(name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	[S_LEARNT_GET] = "SELECT text FROM learnt WHERE name = ?1",
	[S_LEARNT_SET] = "INSERT INTO learnt(name, text, at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET "
			 "text = excluded.text, at = excluded.at",
};

/* The registry: every statement id has its SQL in exactly one of these. */
static const char *const *const stmt_tables[] = { core_sql, cmb_sdb_sync_sql, cmb_sdb_actions_sql, cmb_sdb_policies_sql };

/* ---- opening ---- */

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
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : cmb_sdb_error(st, "%s", what);
	sqlite3_finalize(s);
	return ret;
}

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
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : cmb_sdb_error(st, "checking integrity");
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (!t || strcmp(t, "ok") != 0)
			ret = corrupt_error(st, t ? t : "quick_check failed");
	} else {
		ret = is_corrupt(rc) ? corrupt_error(st, sqlite3_errmsg(st->db)) : cmb_sdb_error(st, "checking integrity");
	}
done:
	sqlite3_finalize(s);
	return ret;
}

static int read_version(struct cmb_state *st, long *version)
{
	char *text = NULL;
	int ret = query_text(st, "PRAGMA user_version", "reading the schema version", &text);
	if (ret == 0)
		*version = strtol(text, NULL, 10);
	free(text);
	return ret;
}

static int migrate(struct cmb_state *st)
{
	long version = 0;
	int ret = read_version(st, &version);
	if (ret < 0)
		return ret;
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

/* Prepares every statement of the registry once, for the life of the connection. */
static int prepare_all(struct cmb_state *st)
{
	for (int i = 0; i < S_COUNT; i++) {
		const char *sql = NULL;
		int owners = 0;
		for (size_t t = 0; t < sizeof(stmt_tables) / sizeof(stmt_tables[0]); t++) {
			if (stmt_tables[t][i]) {
				sql = stmt_tables[t][i];
				owners++;
			}
		}
		if (owners != 1)
			return cmb_error_set(CMB_ESTATE, "state database %s: statement %d has %d definitions instead of one "
					     "(a bug in cmbridge)", st->path, i, owners);
		if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) != SQLITE_OK)
			return cmb_sdb_error(st, "preparing \"%s\"", sql);
	}
	return 0;
}

static int open_file(struct cmb_state *st, int flags)
{
	int rc = sqlite3_open_v2(st->path, &st->db, flags, NULL);
	if (rc != SQLITE_OK)
		return cmb_error_set(CMB_ESTATE, "cannot open state database %s: %s", st->path,
				     st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);
	return 0;
}

/* The per-connection settings of a writer's connection to the file (WAL is the file's own). */
static int writer_pragmas(struct cmb_state *st)
{
	int ret;
#ifdef CMB_TEST_HOOKS
	cmb_sdb_test_hooks(st);   /* test builds only: docs/reliability.md */
#endif
	/* journal_size_limit: the -wal file shrinks back after a big cycle instead of keeping its peak size. */
	if ((ret = exec_sql(st, "PRAGMA synchronous = NORMAL", "setting synchronous")) < 0 ||
	    (ret = exec_sql(st, "PRAGMA journal_size_limit = 67108864", "limiting the WAL size")) < 0)
		return ret;
	return exec_sql(st, "PRAGMA foreign_keys = ON", "enabling foreign keys");
}

/* The per-connection TEMP tables and every prepared statement: the last step of every open. */
static int open_finish(struct cmb_state *st)
{
	/*
	 * The cycle's TEMP tables (a row or two a device) stay in memory up to
	 * this, then spill to a temporary file: 16 MiB holds 100,000 devices.
	 */
	int ret = exec_sql(st, "PRAGMA temp.cache_size = -16384", "sizing the per-connection cache");
	if (ret == 0)
		ret = exec_sql(st, cmb_sdb_sync_temp_schema, "creating the per-connection tables");
	return ret < 0 ? ret : prepare_all(st);
}

static struct cmb_state *state_new(const char *state_dir)
{
	struct cmb_state *st = xcalloc(1, sizeof(*st));
	st->lock_fd = -1;
	st->dir = xstrdup(state_dir);
	st->path = xasprintf("%s/%s", state_dir, CMB_STATE_FILE);
	return st;
}

static int pragma_count(struct cmb_state *st, const char *sql, long *out);

int cmb_state_open(struct cmb_state **out, const char *state_dir)
{
	int ret;
	struct cmb_state *st = state_new(state_dir);

	if ((ret = make_dir(state_dir)) < 0 || (ret = take_lock(st)) < 0 ||
	    (ret = open_file(st, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) < 0)
		goto done;

	/*
	 * Before WAL, which writes the first page: a new file frees the pages
	 * it no longer uses (cmb_state_compact). An existing file keeps its
	 * mode (changing it takes a VACUUM) and is not written before the
	 * integrity check: setting the pragma on it would rewrite its header,
	 * and a corrupt state is left exactly as it was found.
	 */
	long pages = -1;
	if (pragma_count(st, "PRAGMA page_count", &pages) == 0 && pages == 0 &&
	    (ret = exec_sql(st, "PRAGMA auto_vacuum = INCREMENTAL", "setting auto_vacuum")) < 0)
		goto done;
	cmb_error_clear();
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
	if ((ret = writer_pragmas(st)) < 0 || (ret = check_integrity(st)) < 0 || (ret = migrate(st)) < 0 ||
	    (ret = open_finish(st)) < 0)
		goto done;
	*out = st;
	st = NULL;
	ret = 0;
done:
	cmb_state_close(st);
	return ret;
}

/* ---- readers: no lock, nothing created, nothing written to the file ---- */

/*
 * A reader's schema must be the binary's own: migrating is a write, and an
 * older or newer schema cannot be read with this binary's statements.
 */
static int reader_version(struct cmb_state *st)
{
	long version = 0;
	int ret = read_version(st, &version);
	if (ret < 0)
		return ret;
	if (version == 0)
		return cmb_error_set(CMB_ENOTFOUND, "no state yet in %s: %s holds no schema (no cycle has run)",
				     st->dir, st->path);
	if (version != SCHEMA_LATEST)
		return cmb_error_set(CMB_ESTATE,
				     "state database %s has schema version %ld, this cmbridge reads version %d: %s",
				     st->path, version, SCHEMA_LATEST,
				     version < SCHEMA_LATEST ? "the next `cmbridge sync` or `cmbridge run` migrates it"
							     : "it was written by a newer cmbridge; run that version");
	st->version = SCHEMA_LATEST;
	return 0;
}

/* Opens the file for reading; CMB_ENOTFOUND (with a message) when there is no state yet. */
static int open_reader(struct cmb_state *st)
{
	struct stat sb;
	if (stat(st->path, &sb) < 0) {
		if (errno == ENOENT)
			return cmb_error_set(CMB_ENOTFOUND, "no state yet in %s (no cycle has run: the first "
					     "`cmbridge sync` or `cmbridge run` creates it)", st->dir);
		return cmb_error_set(CMB_ESTATE, "cannot read state database %s: %s", st->path, strerror(errno));
	}
	int ret = open_file(st, SQLITE_OPEN_READONLY);
	if (ret == 0)
		ret = check_integrity(st);
	return ret < 0 ? ret : reader_version(st);
}

int cmb_state_open_readonly(struct cmb_state **out, const char *state_dir)
{
	struct cmb_state *st = state_new(state_dir);
	int ret = open_reader(st);
	if (ret == 0)
		ret = open_finish(st);
	if (ret < 0) {
		cmb_state_close(st);
		return ret;
	}
	st->readonly = 1;
	*out = st;
	return 0;
}

/*
 * A private database SQLite deletes at close: "" is a temporary file, its
 * cache bounded like any file's, so a dry run's copy and what it stages
 * cost disk, not memory (an in-memory copy of a million devices is GBs).
 */
static int open_private(sqlite3 **out)
{
	if (sqlite3_open_v2("", out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK)
		return 0;
	sqlite3_close(*out);
	*out = NULL;
	return -1;
}

/* Copies the database (a consistent read, WAL included) into a private one (open_private). */
static int copy_to_private(struct cmb_state *st)
{
	sqlite3 *mem = NULL;
	if (open_private(&mem) < 0)
		return cmb_error_set(CMB_ESTATE, "state database %s: cannot open a private copy", st->path);
	sqlite3_backup *b = sqlite3_backup_init(mem, "main", st->db, "main");
	int rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(mem);
	if (b)
		sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		int ret = cmb_error_set(CMB_ESTATE, "state database %s: copying it for a dry run: %s", st->path,
					sqlite3_errstr(rc));
		sqlite3_close(mem);
		return ret;
	}
	sqlite3_close(st->db);
	st->db = mem;
	sqlite3_extended_result_codes(st->db, 1);
	return exec_sql(st, "PRAGMA foreign_keys = ON", "enabling foreign keys");
}

int cmb_state_open_snapshot(struct cmb_state **out, const char *state_dir)
{
	struct cmb_state *st = state_new(state_dir);
	int ret = open_reader(st);
	if (ret == CMB_ENOTFOUND) {
		/* No state yet: the dry run starts from an empty one, as a first cycle would. */
		sqlite3_close(st->db);
		st->db = NULL;
		if (open_private(&st->db) < 0)
			ret = cmb_error_set(CMB_ESTATE, "state database %s: cannot open a private database", st->path);
		else
			sqlite3_extended_result_codes(st->db, 1);
		if (ret == CMB_ENOTFOUND && (ret = exec_sql(st, "PRAGMA foreign_keys = ON", "enabling foreign keys")) == 0)
			ret = migrate(st);
	} else if (ret == 0) {
		ret = copy_to_private(st);
	}
	if (ret == 0)
		ret = open_finish(st);
	if (ret < 0) {
		cmb_state_close(st);
		return ret;
	}
	*out = st;
	return 0;
}

/* Closes st's connection and its statements (st->db and st->stmt cleared). */
static void disconnect(struct cmb_state *st)
{
	for (int i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(st->stmt[i]);
		st->stmt[i] = NULL;
	}
	if (st->db) {
		/* A transaction left open by a failed caller is rolled back, never half-committed. */
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(st->db);
		st->db = NULL;
	}
}

void cmb_state_close(struct cmb_state *st)
{
	if (!st)
		return;
	disconnect(st);
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

int cmb_state_is_readonly(const struct cmb_state *st)
{
	return st->readonly;
}

/* ---- transactions ---- */

int cmb_state_begin(struct cmb_state *st)
{
	return cmb_sdb_step_done(st, st->stmt[S_BEGIN], SQLITE_OK, "beginning a transaction");
}

int cmb_state_commit(struct cmb_state *st)
{
	return cmb_sdb_step_done(st, st->stmt[S_COMMIT], SQLITE_OK, "committing");
}

int cmb_state_rollback(struct cmb_state *st)
{
	if (sqlite3_get_autocommit(st->db))
		return 0; /* nothing to roll back (an error may already have ended it) */
	return cmb_sdb_step_done(st, st->stmt[S_ROLLBACK], SQLITE_OK, "rolling back");
}

/* ---- meta ---- */

struct meta_row {
	int64_t value;
};

static int read_meta(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	((struct meta_row *)row)->value = sqlite3_column_int64(s, 0);
	return 0;
}

static const struct cmb_sdb_rows meta_rows = { .size = sizeof(struct meta_row), .read = read_meta };

int cmb_state_meta_get(struct cmb_state *st, const char *name, int64_t *value)
{
	sqlite3_stmt *s = st->stmt[S_META_GET];
	struct meta_row row;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", name), &meta_rows, &row, "reading %s", name);
	if (ret == 0)
		*value = row.value;
	return ret;
}

int cmb_state_meta_set(struct cmb_state *st, const char *name, int64_t value)
{
	sqlite3_stmt *s = st->stmt[S_META_SET];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", name, value), "writing %s", name);
}

/* ---- size ---- */

static int pragma_count(struct cmb_state *st, const char *sql, long *out)
{
	char *text = NULL;
	int ret = query_text(st, sql, "measuring the state database", &text);
	if (ret == 0)
		*out = strtol(text, NULL, 10);
	free(text);
	return ret;
}

/*
 * A new connection to the file in place of st's, the lock kept: the old
 * connection's TEMP tables go with it, their file and all, in no time
 * however much a cycle staged (a DELETE of a million staged records took
 * 12 to 16 s, and temp.auto_vacuum cost a full sync a third more CPU:
 * docs/performance.md). The file was checked and migrated when st opened
 * it. On failure st is left as it was.
 */
static int reconnect(struct cmb_state *st)
{
	struct cmb_state fresh = { .dir = st->dir, .path = st->path, .lock_fd = -1, .version = st->version };
	int ret = open_file(&fresh, SQLITE_OPEN_READWRITE);
	if (ret == 0)
		ret = writer_pragmas(&fresh);
	if (ret == 0)
		ret = open_finish(&fresh);
	if (ret < 0) {
		disconnect(&fresh);
		return ret;
	}
	disconnect(st);
	st->db = fresh.db;
	memcpy(st->stmt, fresh.stmt, sizeof(st->stmt));
	return 0;
}

int cmb_state_compact(struct cmb_state *st)
{
	long mode = 0, pages = 0, free_pages = 0;
	/*
	 * The cycle's scratch first: a writer takes a new connection (in a
	 * daemon the old one's TEMP file would keep the largest cycle's size for
	 * as long as it runs); a private copy (a dry run) or a failed reconnect
	 * drops the staged records.
	 */
	int ret = st->lock_fd >= 0 && sqlite3_get_autocommit(st->db) ? reconnect(st) : CMB_ENOTFOUND;
	if (ret < 0) {
		/* A failed reconnect's error is the one returned, unless dropping them fails too. */
		int cleared = cmb_state_pending_clear(st);
		return ret == CMB_ENOTFOUND || cleared < 0 ? cleared : ret;
	}
	if ((ret = pragma_count(st, "PRAGMA auto_vacuum", &mode)) < 0 || mode != 2 ||
	    (ret = pragma_count(st, "PRAGMA page_count", &pages)) < 0 ||
	    (ret = pragma_count(st, "PRAGMA freelist_count", &free_pages)) < 0 || free_pages * 4 <= pages)
		return ret;
	return exec_sql(st, "PRAGMA incremental_vacuum", "giving unused pages back to the file system");
}

/* ---- what adapters learnt ---- */

int cmb_state_learnt_get(struct cmb_state *st, const char *name, char **text)
{
	sqlite3_stmt *s = st->stmt[S_LEARNT_GET];
	char *got = NULL;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", name), &cmb_sdb_text_rows, &got, "reading %s", name);
	if (ret == 0)
		*text = got;
	return ret;
}

int cmb_state_learnt_set(struct cmb_state *st, const char *name, const char *text, int64_t at)
{
	sqlite3_stmt *s = st->stmt[S_LEARNT_SET];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "tti", name, text, at), "writing %s", name);
}
