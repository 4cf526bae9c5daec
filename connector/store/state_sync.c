/*
 * state_sync.c - what the sync engine keeps between cycles: the cycles with
 * their counts, the devices as last acknowledged by the tenant, the uploads
 * whose outcome is unknown (in flight), the records staged for upload, the
 * quarantine, the per-cycle duplicate detection (a TEMP table) and the
 * collections as last uploaded.
 *
 * It only stores and answers: deciding what is new, changed, a duplicate or
 * a removal is the sync engine's (connector/engine/sync.c). It must never
 * touch the action relay's tables, never open its own transactions (the
 * caller brackets them), and never read a stored kind it does not know as
 * another one.
 */
#include "connector/store/state_db.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Cycles older than the newest CYCLES_KEPT are dropped when a cycle begins. */
#define CYCLES_KEPT 20000

/* The cycle counters, in struct and column order. */
#define CYCLE_COUNTS(X) \
	X(site_records) X(skipped) X(unchanged) X(added) X(changed) X(refreshed) X(duplicates) X(no_entra_id) X(unknown_workloads) \
	X(removals_held) X(removed) X(quarantined) X(rejected) \
	X(upload_requests) X(utf8_repairs) X(changes_held)
#define COUNT_COL(name) ", " #name
#define COUNT_SET(name) ", " #name " = ?"

const char *const cmb_sdb_sync_sql[S_COUNT] = {
	[S_CYCLE_BEGIN] = "INSERT INTO cycles(kind, started) VALUES (?1, ?2)",
	[S_CYCLE_PRUNE] = "DELETE FROM cycles WHERE id <= ?1",
	/* ?1 ended, ?2 status, ?3 error, ?4.. counts, last: id */
	[S_CYCLE_END] = "UPDATE cycles SET ended = ?, status = ?, error = ?" CYCLE_COUNTS(COUNT_SET) " WHERE id = ?",
	[S_CYCLES_RECENT] = "SELECT id, kind, started, ended, status, error" CYCLE_COUNTS(COUNT_COL)
			    " FROM cycles ORDER BY id DESC LIMIT ?1",
	[S_DEVICE_GET] = "SELECT hash, tenant_id, stable_hash FROM devices WHERE key = ?1",
	[S_DEVICE_REHASH] = "UPDATE devices SET hash = ?2, stable_hash = ?3 WHERE key = ?1",
	/* Seen marks go to temp.seen: a read costs no write to the file (an upload or a journal writes seen_cycle). */
	[S_DEVICE_SEEN] = "INSERT INTO temp.seen(key, cycle) VALUES (?1, ?2) "
			  "ON CONFLICT(key) DO UPDATE SET cycle = excluded.cycle",
	[S_DEVICE_UNSEE] = "UPDATE devices SET seen_cycle = 0 WHERE key = ?1 AND seen_cycle = ?2",
	[S_SEEN_UNSEE] = "DELETE FROM temp.seen WHERE key = ?1 AND cycle = ?2",
	/* The site properties are those of the record staged for the key (kept when none were recorded). */
	[S_DEVICE_PUT] = "INSERT INTO devices(key, tenant_id, hash, seen_cycle, uploaded_cycle, uploaded, stable_hash, "
			 "fields) "
			 "VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, (SELECT fields FROM temp.staged_fields WHERE key = ?1)) "
			 "ON CONFLICT(key) DO UPDATE SET "
			 "tenant_id = coalesce(excluded.tenant_id, devices.tenant_id), hash = excluded.hash, "
			 "stable_hash = excluded.stable_hash, "
			 "seen_cycle = excluded.seen_cycle, uploaded_cycle = excluded.uploaded_cycle, "
			 "uploaded = excluded.uploaded, fields = coalesce(excluded.fields, devices.fields)",
	[S_DEVICE_DELETE] = "DELETE FROM devices WHERE key = ?1",
	[S_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	/*
	 * Removal candidates: known devices, and keys in flight the tenant may
	 * hold without the state knowing them. Both arms walk their primary
	 * key, so SQLite merges them in key order and the LIMIT stops it early.
	 * A key's last cycle seen is the later of its column (the last upload
	 * or journal) and its mark in temp.seen (the last read): cycle ids
	 * only grow.
	 */
	[S_DEVICES_UNSEEN] = "SELECT key, tenant_id FROM devices d WHERE key > ?1 AND "
			     "max(seen_cycle, coalesce((SELECT cycle FROM temp.seen s WHERE s.key = d.key), 0)) IS NOT ?2 "
			     "UNION ALL "
			     "SELECT key, NULL FROM inflight i WHERE key > ?1 AND "
			     "max(seen_cycle, coalesce((SELECT cycle FROM temp.seen s WHERE s.key = i.key), 0)) IS NOT ?2 "
			     "AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.key = i.key) "
			     "ORDER BY 1 LIMIT ?3",
	[S_PENDING_ADD] = "INSERT INTO pending(cycle, key, hash, is_new, body, stable_hash) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			  "ON CONFLICT(cycle, key) DO UPDATE SET hash = excluded.hash, is_new = excluded.is_new, "
			  "stable_hash = excluded.stable_hash, "
			  "body = excluded.body",
	[S_PENDING_EACH] = "SELECT key, hash, is_new, body, stable_hash FROM pending WHERE cycle = ?1 AND key > ?2 "
			   "ORDER BY key LIMIT ?3",
	[S_PENDING_COUNT] = "SELECT count(*) FROM pending WHERE cycle = ?1",
	[S_PENDING_REMOVE] = "DELETE FROM pending WHERE cycle = ?1 AND key = ?2",
	[S_PENDING_CLEAR] = "DELETE FROM pending",
	[S_QUAR_PUT] = "INSERT INTO quarantine(key, reason, cycle, since, kind, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
		       "ON CONFLICT(key) DO UPDATE SET reason = excluded.reason, cycle = excluded.cycle, "
		       "kind = excluded.kind, hash = excluded.hash, "
		       "since = CASE WHEN quarantine.kind = excluded.kind THEN quarantine.since ELSE excluded.since END",
	[S_QUAR_GET] = "SELECT kind, hash, key FROM quarantine WHERE key = ?1",
	[S_QUAR_REHASH] = "UPDATE quarantine SET hash = ?2 WHERE key = ?1",
	[S_QUAR_REMOVE] = "DELETE FROM quarantine WHERE key = ?1",
	[S_QUAR_COUNT] = "SELECT count(*) FROM quarantine",
	[S_QUAR_KEYS] = "SELECT key FROM quarantine ORDER BY key",
	[S_QUAR_EACH] = "SELECT key, reason, since, kind FROM quarantine WHERE key > ?1 ORDER BY key LIMIT ?2",
	[S_IDENT_ADD] = "INSERT OR REPLACE INTO temp.identity(key, hardware_id, smbios_guid, last_active, resource_id) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_IDENT_CLEAR] = "DELETE FROM temp.identity",
	/*
	 * A device loses to another active device that shares its HardwareID or
	 * SMBIOSGUID and is newer: later LastActiveTime, then higher ResourceID.
	 * Each loser is listed once, with the newest device it shares with, in
	 * pages by key. Only devices holding an identity another device holds
	 * can lose or win: those are copied to temp.dup_candidates first (one
	 * grouped pass over each identity, then one pass over the devices), and
	 * the search runs there, so temp.identity needs no index of its own.
	 */
	[S_IDENT_SHARED_CLEAR] = "DELETE FROM temp.shared_ids",
	[S_IDENT_SHARED_FILL] = "INSERT OR IGNORE INTO temp.shared_ids(id) "
				"SELECT hardware_id FROM temp.identity WHERE hardware_id <> '' GROUP BY hardware_id "
				"HAVING count(*) > 1 UNION "
				"SELECT smbios_guid FROM temp.identity WHERE smbios_guid <> '' GROUP BY smbios_guid "
				"HAVING count(*) > 1",
	[S_IDENT_CAND_CLEAR] = "DELETE FROM temp.dup_candidates",
	[S_IDENT_CAND_FILL] = "INSERT INTO temp.dup_candidates(key, hardware_id, smbios_guid, last_active, resource_id) "
			      "SELECT key, hardware_id, smbios_guid, last_active, resource_id FROM temp.identity i "
			      "WHERE EXISTS (SELECT 1 FROM temp.shared_ids WHERE id = i.hardware_id) OR "
			      "EXISTS (SELECT 1 FROM temp.shared_ids WHERE id = i.smbios_guid)",
	[S_IDENT_LOSERS] = "SELECT a.key, (SELECT b.key FROM temp.dup_candidates b WHERE b.key <> a.key AND "
			   "((a.hardware_id <> '' AND b.hardware_id = a.hardware_id) OR "
			   " (a.smbios_guid <> '' AND b.smbios_guid = a.smbios_guid)) AND "
			   "(b.last_active > a.last_active OR (b.last_active = a.last_active AND b.resource_id > a.resource_id)) "
			   "ORDER BY b.last_active DESC, b.resource_id DESC LIMIT 1) AS winner "
			   "FROM temp.dup_candidates a WHERE a.key > ?1 AND winner IS NOT NULL ORDER BY a.key LIMIT ?2",
	[S_COLL_GET] = "SELECT hash, created, tenant_id FROM collections WHERE key = ?1",
	[S_COLL_PUT] = "INSERT INTO collections(key, tenant_id, hash, created) VALUES (?1, ?2, ?3, ?4) "
		       "ON CONFLICT(key) DO UPDATE SET tenant_id = coalesce(excluded.tenant_id, collections.tenant_id), "
		       "hash = excluded.hash",
	[S_COLL_DELETE] = "DELETE FROM collections WHERE key = ?1",
	[S_COLL_KEYS] = "SELECT key FROM collections ORDER BY key",
	[S_PENDING_FIELDS] = "INSERT OR REPLACE INTO temp.staged_fields(key, fields) VALUES (?1, ?2)",
	[S_PENDING_FIELDS_CLEAR] = "DELETE FROM temp.staged_fields",
	/* Per kind, and per set of site properties an acknowledged record had and the staged one has not. */
	[S_PENDING_SUMMARY] = "SELECT p.is_new, coalesce(d.fields & ~f.fields, 0) AS lost, count(*) FROM pending p "
			      "LEFT JOIN temp.staged_fields f ON f.key = p.key LEFT JOIN devices d ON d.key = p.key "
			      "WHERE p.cycle = ?1 GROUP BY p.is_new, lost",
	[S_INFLIGHT_PUT] = "INSERT INTO inflight(key, batch, cycle, since_cycle, since, seen_cycle) "
			   "VALUES (?1, ?2, ?3, ?3, ?4, ?3) ON CONFLICT(key) DO UPDATE SET batch = excluded.batch, "
			   "cycle = excluded.cycle, seen_cycle = excluded.seen_cycle",
	[S_INFLIGHT_SEEN] = "INSERT INTO temp.seen(key, cycle) SELECT key, ?2 FROM inflight WHERE key = ?1 "
			    "ON CONFLICT(key) DO UPDATE SET cycle = excluded.cycle",
	[S_INFLIGHT_GET] = "SELECT key, batch, since_cycle, since FROM inflight WHERE key = ?1",
	[S_INFLIGHT_UNSEE] = "UPDATE inflight SET seen_cycle = 0 WHERE key = ?1 AND seen_cycle = ?2",
	[S_INFLIGHT_SETTLE] = "DELETE FROM inflight WHERE key = ?1 AND (?2 <= 0 OR since_cycle = ?2)",
	[S_INFLIGHT_COUNT] = "SELECT count(*) FROM inflight",
	[S_INFLIGHT_EACH] = "SELECT key, batch, since_cycle, since FROM inflight WHERE key > ?1 ORDER BY key LIMIT ?2",
};

/*
 * Per-connection scratch of the running cycle, TEMP so it never reaches
 * the database file: who shares hardware (duplicate detection), the
 * site properties of each staged record (the change guard; the
 * acknowledgement keeps them in devices.fields), and the last cycle that
 * read each key (removal candidates are the keys a cycle did not read).
 */
const char cmb_sdb_sync_temp_schema[] =
	"CREATE TEMP TABLE identity(key TEXT PRIMARY KEY NOT NULL, hardware_id TEXT NOT NULL, "
	"smbios_guid TEXT NOT NULL, last_active INTEGER NOT NULL, resource_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TEMP TABLE dup_candidates(key TEXT PRIMARY KEY NOT NULL, hardware_id TEXT NOT NULL, "
	"smbios_guid TEXT NOT NULL, last_active INTEGER NOT NULL, resource_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX temp.dup_candidates_hw ON dup_candidates(hardware_id);"
	"CREATE INDEX temp.dup_candidates_smbios ON dup_candidates(smbios_guid);"
	"CREATE TEMP TABLE staged_fields(key TEXT PRIMARY KEY NOT NULL, fields INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TEMP TABLE seen(key TEXT PRIMARY KEY NOT NULL, cycle INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TEMP TABLE shared_ids(id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;"
	/*
	 * The records a cycle stages for upload (schema 6 moved them here): the
	 * connection's own, so they cost no WAL write, no checkpoint and no
	 * growth of the state file; the read phase drops a cycle's leftovers
	 * first, so nothing ever read them after their cycle. A rowid table: the
	 * ~1.2 KB bodies split a key B-tree's pages (WITHOUT ROWID measured
	 * slower, docs/performance.md).
	 */
	"CREATE TEMP TABLE pending(cycle INTEGER NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, "
	"stable_hash TEXT NOT NULL, is_new INTEGER NOT NULL CHECK (is_new IN (0, 1, 2)), body BLOB NOT NULL, "
	"PRIMARY KEY (cycle, key));";

CMB_SDB_ENUM(cmb_pending_kind, cmb_state_pending_kind, CMB_PENDING_KINDS, "pending kind", "pending", "is_new")
CMB_SDB_ENUM(cmb_quarantine_kind, cmb_state_quarantine_kind, CMB_QUARANTINE_KINDS, "quarantine kind", "quarantine",
	     "kind")

/* pending.is_new stores the enum's value, and databases written before the enum existed hold these. */
_Static_assert(CMB_PENDING_CHANGE == 0 && CMB_PENDING_ADD == 1 && CMB_PENDING_REFRESH == 2,
	       "pending.is_new: 0 changed, 1 new, 2 refresh");

/* A row of a key and one more text column: (key, tenant_id) of a device, (key, winner) of a duplicate. */
struct keyed_text {
	char *key;
	char *text;              /* NULL when the column is */
};

static int read_keyed_text(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct keyed_text *r = row;
	r->key = cmb_sdb_column_dup_or_empty(s, 0);
	r->text = cmb_sdb_column_dup(s, 1);
	return 0;
}

static void clear_keyed_text(void *row)
{
	struct keyed_text *r = row;
	free(r->key);
	free(r->text);
}

/* A walk by key: the callback and, for devices_unseen, the cycle. */
struct key_walk {
	int64_t cycle_id;
	int (*cb)(void *ctx, const char *key, const char *text);
	void *ctx;
};

static int visit_keyed_text(void *ctx, const void *row)
{
	const struct key_walk *w = ctx;
	const struct keyed_text *r = row;
	return w->cb(w->ctx, r->key, r->text);
}

/* ---- cycles ---- */

int cmb_state_cycle_begin(struct cmb_state *st, const char *kind, int64_t started, int64_t *cycle_id)
{
	if (!kind || !kind[0] || strlen(kind) >= sizeof(((struct cmb_cycle *)0)->kind))
		return cmb_error_set(CMB_EINVAL, "cycle kind \"%s\" is empty or too long", kind ? kind : "");
	sqlite3_stmt *s = st->stmt[S_CYCLE_BEGIN];
	int ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", kind, started), "recording the start of a %s cycle",
				    kind);
	if (ret < 0)
		return ret;
	int64_t id = sqlite3_last_insert_rowid(st->db);
	if (id > CYCLES_KEPT) {
		s = st->stmt[S_CYCLE_PRUNE];
		if ((ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "i", id - CYCLES_KEPT),
					     "dropping cycles older than the last %d", CYCLES_KEPT)) < 0)
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
	int b = cmb_sdb_bind(s, "itt", ended, status, error);
	int i = 4;
#define BIND_COUNT(name) \
	if (b == SQLITE_OK) \
		b = sqlite3_bind_int64(s, i++, counts->name);
	CYCLE_COUNTS(BIND_COUNT)
#undef BIND_COUNT
	if (b == SQLITE_OK)
		b = sqlite3_bind_int64(s, i++, cycle_id);
	int ret = cmb_sdb_step_done(st, s, b, "recording the end of cycle %" PRId64, cycle_id);
	if (ret == 0 && sqlite3_changes(st->db) == 0)
		ret = cmb_error_set(CMB_ENOTFOUND, "state database %s: no cycle %" PRId64 " to end", st->path,
				    cycle_id);
	return ret;
}

static int read_cycle(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_cycle *c = row;
	int col = 0;
	c->id = sqlite3_column_int64(s, col++);
	cmb_sdb_column_copy(s, col++, c->kind, sizeof(c->kind));
	c->started = sqlite3_column_int64(s, col++);
	c->ended = sqlite3_column_int64(s, col++);
	cmb_sdb_column_copy(s, col++, c->status, sizeof(c->status));
	c->error = cmb_sdb_column_dup(s, col++);
#define READ_COUNT(name) c->counts.name = (long)sqlite3_column_int64(s, col++);
	CYCLE_COUNTS(READ_COUNT)
#undef READ_COUNT
	return 0;
}

static void clear_cycle(void *row)
{
	free(((struct cmb_cycle *)row)->error);
}

static const struct cmb_sdb_rows cycle_rows = { .size = sizeof(struct cmb_cycle), .read = read_cycle,
						.clear = clear_cycle };

int cmb_state_cycles_recent(struct cmb_state *st, size_t n, struct cmb_cycle **out, size_t *count)
{
	sqlite3_stmt *s = st->stmt[S_CYCLES_RECENT];
	void *list = NULL;
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "i", cmb_sdb_limit(n)), &cycle_rows, &list, count,
				  "reading recent cycles");
	if (ret == 0)
		*out = list;
	return ret;
}

void cmb_state_cycles_free(struct cmb_cycle *cycles, size_t count)
{
	cmb_sdb_rows_free(&cycle_rows, cycles, count);
}

/* ---- devices ---- */

struct device_row {
	char hash[65];
	char stable_hash[65];
	char *tenant_id;
};

static int read_device(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct device_row *d = row;
	cmb_sdb_column_copy(s, 0, d->hash, sizeof(d->hash));
	d->tenant_id = cmb_sdb_column_dup(s, 1);
	cmb_sdb_column_copy(s, 2, d->stable_hash, sizeof(d->stable_hash));
	return 0;
}

static void clear_device(void *row)
{
	free(((struct device_row *)row)->tenant_id);
}

static const struct cmb_sdb_rows device_rows = { .size = sizeof(struct device_row), .read = read_device,
						 .clear = clear_device };

int cmb_state_device_get(struct cmb_state *st, const char *key, char hash[65], char stable_hash[65],
			 char **tenant_id)
{
	int ret = cmb_sdb_check_key(key, "looking up a device");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_GET];
	struct device_row d;
	ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", key), &device_rows, &d, "looking up device \"%s\"", key);
	if (ret < 0)
		return ret;
	memcpy(hash, d.hash, sizeof(d.hash));
	if (stable_hash)
		memcpy(stable_hash, d.stable_hash, sizeof(d.stable_hash));
	if (tenant_id)
		*tenant_id = d.tenant_id;
	else
		free(d.tenant_id);
	return 0;
}

int cmb_state_device_rehash(struct cmb_state *st, const char *key, const char *hash, const char *stable_hash)
{
	int ret = cmb_sdb_check_key(key, "rewriting a device's hashes");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_REHASH];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ttt", key, hash, stable_hash),
				 "rewriting the hashes of device \"%s\"", key);
}

int cmb_state_device_seen(struct cmb_state *st, const char *key, int64_t cycle_id)
{
	int ret = cmb_sdb_check_key(key, "marking a device seen");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_SEEN];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, cycle_id),
				 "marking device \"%s\" seen in cycle %" PRId64, key, cycle_id);
}

int cmb_state_device_unsee(struct cmb_state *st, const char *key, int64_t cycle_id)
{
	int ret = cmb_sdb_check_key(key, "unmarking a device");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_DEVICE_UNSEE];
	if ((ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, cycle_id),
				     "unmarking device \"%s\" in cycle %" PRId64, key, cycle_id)) < 0)
		return ret;
	s = st->stmt[S_INFLIGHT_UNSEE];
	if ((ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, cycle_id),
				     "unmarking device \"%s\" in flight in cycle %" PRId64, key, cycle_id)) < 0)
		return ret;
	s = st->stmt[S_SEEN_UNSEE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, cycle_id),
				 "unmarking device \"%s\" read in cycle %" PRId64, key, cycle_id);
}

int cmb_state_device_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			 const char *stable_hash, int64_t cycle_id, int64_t uploaded)
{
	int ret = cmb_sdb_check_key(key, "recording an upload");
	if (ret < 0)
		return ret;
	if (!hash || strlen(hash) != 64)
		return cmb_error_set(CMB_EINVAL, "recording device \"%s\": the hash must be 64 hex characters", key);
	sqlite3_stmt *s = st->stmt[S_DEVICE_PUT];
	int b = cmb_sdb_bind(s, "tttiit", key, tenant_id, hash, cycle_id, uploaded, stable_hash ? stable_hash : "");
	return cmb_sdb_step_done(st, s, b, "recording the upload of device \"%s\"", key);
}

/* Runs a delete whose one parameter is a device key; what: "deleting device" (an empty key is refused). */
static int delete_key(struct cmb_state *st, enum cmb_sdb_stmt id, const char *key, const char *what)
{
	int ret = cmb_sdb_check_key(key, what);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[id];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", key), "%s \"%s\"", what, key);
}

int cmb_state_device_delete(struct cmb_state *st, const char *key)
{
	return delete_key(st, S_DEVICE_DELETE, key, "deleting device");
}

long cmb_state_device_count(struct cmb_state *st)
{
	return cmb_sdb_count(st, st->stmt[S_DEVICE_COUNT], SQLITE_OK, "counting devices");
}

static int bind_unseen(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	const struct keyed_text *after = last;
	const struct key_walk *w = ctx;
	/* Keys are never empty, so "" sorts before every key. */
	return cmb_sdb_bind(s, "tid", after ? after->key : "", w->cycle_id, limit);
}

static const struct cmb_sdb_pager unseen_pager = {
	.rows = { .size = sizeof(struct keyed_text), .read = read_keyed_text, .clear = clear_keyed_text },
	.bind = bind_unseen,
	.visit = visit_keyed_text,
};

int cmb_state_devices_unseen(struct cmb_state *st, int64_t cycle_id,
			     int (*cb)(void *ctx, const char *key, const char *tenant_id), void *ctx)
{
	struct key_walk w = { .cycle_id = cycle_id, .cb = cb, .ctx = ctx };
	return cmb_sdb_each_page(st, st->stmt[S_DEVICES_UNSEEN], &unseen_pager, &w,
				 "listing devices not seen in cycle %" PRId64, cycle_id);
}

/* ---- in flight ---- */

int cmb_state_inflight_put(struct cmb_state *st, const char *key, const char *batch_id, int64_t cycle_id,
			   int64_t when)
{
	int ret = cmb_sdb_check_key(key, "journaling an upload");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INFLIGHT_PUT];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ttii", key, batch_id ? batch_id : "", cycle_id, when),
				 "journaling the upload of device \"%s\" in cycle %" PRId64, key, cycle_id);
}

int cmb_state_inflight_seen(struct cmb_state *st, const char *key, int64_t cycle_id, int *in_flight)
{
	int ret = cmb_sdb_check_key(key, "marking an upload in flight seen");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INFLIGHT_SEEN];
	ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, cycle_id),
				"marking device \"%s\" in flight seen in cycle %" PRId64, key, cycle_id);
	if (ret == 0)
		*in_flight = sqlite3_changes(st->db) > 0;
	return ret;
}

int cmb_state_inflight_settle(struct cmb_state *st, const char *key, int64_t first_cycle)
{
	int ret = cmb_sdb_check_key(key, "settling an upload in flight");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INFLIGHT_SETTLE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, first_cycle),
				 "settling the upload of device \"%s\"", key);
}

long cmb_state_inflight_count(struct cmb_state *st)
{
	return cmb_sdb_count(st, st->stmt[S_INFLIGHT_COUNT], SQLITE_OK, "counting uploads in flight");
}

struct inflight_row {
	char *key;
	char *batch;
	int64_t since_cycle, since;
};

static int read_inflight(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct inflight_row *r = row;
	r->key = cmb_sdb_column_dup_or_empty(s, 0);
	r->batch = cmb_sdb_column_dup_or_empty(s, 1);
	r->since_cycle = sqlite3_column_int64(s, 2);
	r->since = sqlite3_column_int64(s, 3);
	return 0;
}

static void clear_inflight(void *row)
{
	struct inflight_row *r = row;
	free(r->key);
	free(r->batch);
}

struct inflight_walk {
	int (*cb)(void *ctx, const char *key, const char *batch_id, int64_t since_cycle, int64_t since);
	void *ctx;
};

static int bind_inflight(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	const struct inflight_row *after = last;
	return cmb_sdb_bind(s, "td", after ? after->key : "", limit);
}

static int visit_inflight(void *ctx, const void *row)
{
	const struct inflight_walk *w = ctx;
	const struct inflight_row *r = row;
	return w->cb(w->ctx, r->key, r->batch, r->since_cycle, r->since);
}

static const struct cmb_sdb_pager inflight_pager = {
	.rows = { .size = sizeof(struct inflight_row), .read = read_inflight, .clear = clear_inflight },
	.bind = bind_inflight,
	.visit = visit_inflight,
};

int cmb_state_inflight_get(struct cmb_state *st, const char *key, int64_t *since)
{
	int ret = cmb_sdb_check_key(key, "looking up an upload in flight");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_INFLIGHT_GET];
	struct inflight_row r;
	ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", key), &inflight_pager.rows, &r,
			      "looking up the upload of device \"%s\"", key);
	if (ret < 0)
		return ret;
	if (since)
		*since = r.since;
	clear_inflight(&r);
	return 0;
}

int cmb_state_inflight_each(struct cmb_state *st,
			    int (*cb)(void *ctx, const char *key, const char *batch_id, int64_t since_cycle,
				      int64_t since),
			    void *ctx)
{
	struct inflight_walk w = { .cb = cb, .ctx = ctx };
	return cmb_sdb_each_page(st, st->stmt[S_INFLIGHT_EACH], &inflight_pager, &w, "listing uploads in flight");
}

/* ---- pending ---- */

int cmb_state_pending_add(struct cmb_state *st, int64_t cycle_id, const char *key, const char *hash,
			  const char *stable_hash, enum cmb_pending_kind kind, const char *json, size_t json_len)
{
	const char *text;
	int ret = cmb_sdb_check_key(key, "staging a record");
	if (ret < 0)
		return ret;
	if (!hash || !json)
		return cmb_error_set(CMB_EINVAL, "staging device \"%s\": no hash or no record", key);
	if ((ret = cmb_sdb_enum_text(&cmb_state_pending_kind_enum, (int)kind, "staging a record", &text)) < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_PENDING_ADD];
	int b = cmb_sdb_bind(s, "ittdbt", cycle_id, key, hash, (int)kind, json, json_len, stable_hash ? stable_hash : "");
	return cmb_sdb_step_done(st, s, b, "staging device \"%s\" for cycle %" PRId64, key, cycle_id);
}

int cmb_state_pending_fields(struct cmb_state *st, const char *key, int64_t fields)
{
	sqlite3_stmt *s = st->stmt[S_PENDING_FIELDS];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "ti", key, fields),
				 "recording the site properties of device \"%s\"", key);
}

/*
 * Steps the statement directly, so the record bodies are not copied: the
 * callback must not add or drop staged records of this cycle (other tables
 * are fine) and must not call cmb_state_pending_each() itself.
 */
int cmb_state_pending_each(struct cmb_state *st, int64_t cycle_id, const char *after_key, size_t limit,
			   int (*cb)(void *ctx, const char *key, const char *hash, const char *stable_hash,
				     enum cmb_pending_kind kind, const char *json, size_t json_len),
			   void *ctx)
{
	if (st->pending_iterating)
		return cmb_error_set(CMB_ESTATE, "cmb_state_pending_each called from its own callback");
	sqlite3_stmt *s = st->stmt[S_PENDING_EACH];
	/* Keys are never empty, so "" sorts before every key. */
	int rc = cmb_sdb_bind(s, "iti", cycle_id, after_key ? after_key : "", cmb_sdb_limit(limit));
	int ret = 0;
	st->pending_iterating = 1;
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		const char *key = (const char *)sqlite3_column_text(s, 0);
		const char *hash = (const char *)sqlite3_column_text(s, 1);
		int kind = 0;
		if ((ret = cmb_sdb_column_enum_value(st, s, 2, &cmb_state_pending_kind_enum, key, 0, &kind)) < 0)
			break;
		const char *body = sqlite3_column_blob(s, 3);
		size_t body_len = (size_t)sqlite3_column_bytes(s, 3);
		const char *stable = (const char *)sqlite3_column_text(s, 4);
		if ((ret = cb(ctx, key ? key : "", hash ? hash : "", stable ? stable : "", (enum cmb_pending_kind)kind,
			      body ? body : "", body_len)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = cmb_sdb_error(st, "reading the records staged for cycle %" PRId64, cycle_id);
	st->pending_iterating = 0;
	cmb_sdb_finish(s);
	return ret;
}

long cmb_state_pending_count(struct cmb_state *st, int64_t cycle_id)
{
	sqlite3_stmt *s = st->stmt[S_PENDING_COUNT];
	return cmb_sdb_count(st, s, cmb_sdb_bind(s, "i", cycle_id), "counting staged records");
}

int cmb_state_pending_remove(struct cmb_state *st, int64_t cycle_id, const char *key, int *removed)
{
	sqlite3_stmt *s = st->stmt[S_PENDING_REMOVE];
	int ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "it", cycle_id, key), "unstaging device \"%s\"", key);
	if (ret == 0 && removed)
		*removed = sqlite3_changes(st->db) > 0;
	return ret;
}

int cmb_state_pending_clear(struct cmb_state *st)
{
	int ret = cmb_sdb_step_done(st, st->stmt[S_PENDING_CLEAR], SQLITE_OK, "dropping staged records");
	if (ret == 0)
		ret = cmb_sdb_step_done(st, st->stmt[S_PENDING_FIELDS_CLEAR], SQLITE_OK,
					"dropping the site properties of staged records");
	return ret;
}

struct summary_row {
	int kind;
	int64_t lost;
	long n;
};

static int read_summary(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct summary_row *r = row;
	r->lost = sqlite3_column_int64(s, 1);
	r->n = (long)sqlite3_column_int64(s, 2);
	return cmb_sdb_column_enum_value(st, s, 0, &cmb_state_pending_kind_enum, NULL, 0, &r->kind);
}

int cmb_state_pending_summary(struct cmb_state *st, int64_t cycle_id, struct cmb_pending_summary *out)
{
	static const struct cmb_sdb_rows rows = { .size = sizeof(struct summary_row), .read = read_summary };
	sqlite3_stmt *s = st->stmt[S_PENDING_SUMMARY];
	void *list = NULL;
	size_t n = 0;
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "i", cycle_id), &rows, &list, &n,
				  "summing up the records staged for cycle %" PRId64, cycle_id);
	if (ret < 0)
		return ret;
	struct cmb_pending_summary sum = { .blanking = 0 };
	const struct summary_row *r = list;
	for (size_t i = 0; i < n; i++) {
		sum.staged[r[i].kind] += r[i].n;
		if (r[i].lost && r[i].kind != CMB_PENDING_ADD) {
			sum.blanking += r[i].n;
			sum.lost |= r[i].lost;
		}
	}
	cmb_sdb_rows_free(&rows, list, n);
	*out = sum;
	return 0;
}

/* ---- quarantine ---- */

int cmb_state_quarantine_put(struct cmb_state *st, const char *key, enum cmb_quarantine_kind kind,
			     const char *reason, const char *hash, int64_t cycle_id, int64_t when)
{
	const char *text;
	int ret = cmb_sdb_check_key(key, "quarantining a record");
	if (ret < 0 ||
	    (ret = cmb_sdb_enum_text(&cmb_state_quarantine_kind_enum, (int)kind, "quarantining a record", &text)) < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_PUT];
	int b = cmb_sdb_bind(s, "ttiitt", key, reason ? reason : "", cycle_id, when, text, hash);
	return cmb_sdb_step_done(st, s, b, "quarantining device \"%s\"", key);
}

struct quarantine_hit {
	enum cmb_quarantine_kind kind;
	char hash[65];
};

static int read_quarantine_hit(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct quarantine_hit *q = row;
	int kind = 0;
	int ret = cmb_sdb_column_enum(st, s, 0, &cmb_state_quarantine_kind_enum, (const char *)sqlite3_column_text(s, 2),
				      0, &kind);
	q->kind = (enum cmb_quarantine_kind)kind;
	cmb_sdb_column_copy(s, 1, q->hash, sizeof(q->hash));
	return ret;
}

int cmb_state_quarantine_rehash(struct cmb_state *st, const char *key, const char *hash)
{
	int ret = cmb_sdb_check_key(key, "rewriting a quarantined record's hash");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_REHASH];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "tt", key, hash),
				 "rewriting the hash of quarantined record \"%s\"", key);
}

int cmb_state_quarantine_get(struct cmb_state *st, const char *key, enum cmb_quarantine_kind *kind, char hash[65])
{
	int ret = cmb_sdb_check_key(key, "looking up a quarantined record");
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_QUAR_GET];
	const struct cmb_sdb_rows rows = { .size = sizeof(struct quarantine_hit), .read = read_quarantine_hit };
	struct quarantine_hit q;
	ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", key), &rows, &q, "looking up quarantined record \"%s\"", key);
	if (ret == 0) {
		*kind = q.kind;
		memcpy(hash, q.hash, sizeof(q.hash));
	}
	return ret;
}

int cmb_state_quarantine_remove(struct cmb_state *st, const char *key)
{
	return delete_key(st, S_QUAR_REMOVE, key, "releasing quarantined device");
}

long cmb_state_quarantine_count(struct cmb_state *st)
{
	return cmb_sdb_count(st, st->stmt[S_QUAR_COUNT], SQLITE_OK, "counting quarantined records");
}

struct quarantine_row {
	char *key;
	char *reason;
	int64_t since;
	enum cmb_quarantine_kind kind;
};

static int read_quarantine(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct quarantine_row *q = row;
	int kind = 0;
	q->key = cmb_sdb_column_dup_or_empty(s, 0);
	q->reason = cmb_sdb_column_dup_or_empty(s, 1);
	q->since = sqlite3_column_int64(s, 2);
	int ret = cmb_sdb_column_enum(st, s, 3, &cmb_state_quarantine_kind_enum, q->key, 0, &kind);
	q->kind = (enum cmb_quarantine_kind)kind;
	return ret;
}

static void clear_quarantine(void *row)
{
	struct quarantine_row *q = row;
	free(q->key);
	free(q->reason);
}

struct quarantine_walk {
	int (*cb)(void *ctx, const char *key, enum cmb_quarantine_kind kind, const char *reason, int64_t since);
	void *ctx;
};

static int bind_quarantine(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	const struct quarantine_row *after = last;
	return cmb_sdb_bind(s, "td", after ? after->key : "", limit);
}

static int visit_quarantine(void *ctx, const void *row)
{
	const struct quarantine_walk *w = ctx;
	const struct quarantine_row *q = row;
	return w->cb(w->ctx, q->key, q->kind, q->reason, q->since);
}

static const struct cmb_sdb_pager quarantine_pager = {
	.rows = { .size = sizeof(struct quarantine_row), .read = read_quarantine, .clear = clear_quarantine },
	.bind = bind_quarantine,
	.visit = visit_quarantine,
};

int cmb_state_quarantine_each(struct cmb_state *st,
			      int (*cb)(void *ctx, const char *key, enum cmb_quarantine_kind kind, const char *reason,
					int64_t since),
			      void *ctx)
{
	struct quarantine_walk w = { .cb = cb, .ctx = ctx };
	return cmb_sdb_each_page(st, st->stmt[S_QUAR_EACH], &quarantine_pager, &w, "listing quarantined records");
}

/* ---- duplicate detection ---- */

int cmb_state_identity_clear(struct cmb_state *st)
{
	return cmb_sdb_step_done(st, st->stmt[S_IDENT_CLEAR], SQLITE_OK, "clearing the duplicate-detection table");
}

int cmb_state_identity_add(struct cmb_state *st, const char *key, const char *hardware_id, const char *smbios_guid,
			   int64_t last_active, uint32_t resource_id)
{
	sqlite3_stmt *s = st->stmt[S_IDENT_ADD];
	int b = cmb_sdb_bind(s, "tttii", key, hardware_id ? hardware_id : "", smbios_guid ? smbios_guid : "", last_active,
			     (int64_t)resource_id);
	return cmb_sdb_step_done(st, s, b, "recording the hardware identity of \"%s\"", key);
}

static int bind_losers(sqlite3_stmt *s, const void *last, int limit, void *ctx)
{
	const struct keyed_text *after = last;
	return cmb_sdb_bind(s, "td", after ? after->key : "", limit);
}

static const struct cmb_sdb_pager losers_pager = {
	.rows = { .size = sizeof(struct keyed_text), .read = read_keyed_text, .clear = clear_keyed_text },
	.bind = bind_losers,
	.visit = visit_keyed_text,
};

/* Paged: the callback changes other tables (pending, devices, quarantine) while the walk goes on. */
int cmb_state_identity_losers(struct cmb_state *st, int (*cb)(void *ctx, const char *key, const char *winner),
			      void *ctx)
{
	struct key_walk w = { .cb = cb, .ctx = ctx };
	int ret = cmb_sdb_step_done(st, st->stmt[S_IDENT_SHARED_CLEAR], SQLITE_OK, "finding duplicate devices");
	if (ret == 0)
		ret = cmb_sdb_step_done(st, st->stmt[S_IDENT_SHARED_FILL], SQLITE_OK, "finding shared hardware identities");
	if (ret == 0)
		ret = cmb_sdb_step_done(st, st->stmt[S_IDENT_CAND_CLEAR], SQLITE_OK, "finding duplicate devices");
	if (ret == 0)
		ret = cmb_sdb_step_done(st, st->stmt[S_IDENT_CAND_FILL], SQLITE_OK, "finding devices that share hardware");
	if (ret == 0)
		ret = cmb_sdb_each_page(st, st->stmt[S_IDENT_LOSERS], &losers_pager, &w, "finding duplicate devices");
	return ret;
}

/* ---- collections ---- */

struct collection_row {
	char hash[65];
	char created[32];
};

static int read_collection(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct collection_row *c = row;
	cmb_sdb_column_copy(s, 0, c->hash, sizeof(c->hash));
	cmb_sdb_column_copy(s, 1, c->created, sizeof(c->created));
	return 0;
}

int cmb_state_collection_get(struct cmb_state *st, const char *key, char hash[65], char created[32])
{
	sqlite3_stmt *s = st->stmt[S_COLL_GET];
	const struct cmb_sdb_rows rows = { .size = sizeof(struct collection_row), .read = read_collection };
	struct collection_row c;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", key), &rows, &c, "looking up collection \"%s\"", key);
	if (ret == 0) {
		memcpy(hash, c.hash, sizeof(c.hash));
		memcpy(created, c.created, sizeof(c.created));
	}
	return ret;
}

int cmb_state_collection_put(struct cmb_state *st, const char *key, const char *tenant_id, const char *hash,
			     const char *created)
{
	sqlite3_stmt *s = st->stmt[S_COLL_PUT];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "tttt", key, tenant_id, hash, created),
				 "recording collection \"%s\"", key);
}

int cmb_state_collection_delete(struct cmb_state *st, const char *key)
{
	sqlite3_stmt *s = st->stmt[S_COLL_DELETE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", key), "forgetting collection \"%s\"", key);
}

int cmb_state_quarantine_keys(struct cmb_state *st, char ***out, size_t *n)
{
	void *keys = NULL;
	int ret = cmb_sdb_collect(st, st->stmt[S_QUAR_KEYS], SQLITE_OK, &cmb_sdb_text_rows, &keys, n,
				  "listing quarantined records");
	if (ret == 0)
		*out = keys;
	return ret;
}

int cmb_state_collection_keys(struct cmb_state *st, char ***out, size_t *n)
{
	void *keys = NULL;
	int ret = cmb_sdb_collect(st, st->stmt[S_COLL_KEYS], SQLITE_OK, &cmb_sdb_text_rows, &keys, n,
				  "listing collections");
	if (ret == 0)
		*out = keys;
	return ret;
}
