/*
 * state_policies.c - what the policy relay keeps (schema v5,
 * docs/policies.md "The engine"): per tenant policy its state, reasons,
 * targets, the wanted document and what the site confirmed, the
 * compliance last read, and the journal of site writes.
 *
 * It only stores and answers: which write is due, and what to journal
 * before it, is the engine's (connector/engine/policy.c). It must never
 * touch the sync engine's or the action relay's tables, never open its own
 * transactions, and never read a stored state, op or outcome it does not
 * know as another one.
 */
#include "connector/store/state_db.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define POL_COLS "id, name, family, modified, state, targets, version, hash, settings, site_version, site_hash, " \
		 "compliance_version, compliance_at, reported_hash, updated"
#define PJ_COLS "id, policy_id, op, version, hash, intended, outcome, message, completed"

const char *const cmb_sdb_policies_sql[S_COUNT] = {
	[S_POL_PUT] = "INSERT INTO policies(id, name, family, modified, state, targets, updated) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
		      "family = excluded.family, modified = excluded.modified, state = excluded.state, "
		      "targets = excluded.targets, updated = excluded.updated",
	[S_POL_STATE] = "UPDATE policies SET state = ?2, updated = ?3 WHERE id = ?1",
	[S_POL_BODY] = "UPDATE policies SET body = ?2 WHERE id = ?1",
	[S_POL_DOCUMENT] = "UPDATE policies SET version = ?2, hash = ?3, document = ?4, settings = ?5 WHERE id = ?1",
	[S_POL_SITE] = "UPDATE policies SET site_version = ?2, site_hash = ?3 WHERE id = ?1",
	[S_POL_REPORTED] = "UPDATE policies SET reported_hash = ?2 WHERE id = ?1",
	[S_POL_GET] = "SELECT " POL_COLS " FROM policies WHERE id = ?1",
	[S_POL_LIST] = "SELECT " POL_COLS " FROM policies ORDER BY id",
	[S_POL_BLOBS] = "SELECT body, document FROM policies WHERE id = ?1",
	[S_POL_DELETE] = "DELETE FROM policies WHERE id = ?1",
	[S_POL_COUNT_STATE] = "SELECT count(*) FROM policies WHERE state = ?1",
	[S_POL_REASONS_CLEAR] = "DELETE FROM policy_reasons WHERE policy_id = ?1",
	[S_POL_REASON_ADD] = "INSERT INTO policy_reasons(policy_id, seq, reason) VALUES (?1, ?2, ?3)",
	[S_POL_REASONS] = "SELECT reason FROM policy_reasons WHERE policy_id = ?1 ORDER BY seq",
	[S_POL_COLLS_CLEAR] = "DELETE FROM policy_compliance WHERE policy_id = ?1",
	[S_POL_COLL_ADD] = "INSERT INTO policy_compliance(policy_id, collection_id, targeted, compliant, non_compliant, "
			   "error, conflict, not_applicable) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_POL_COLLS] = "SELECT collection_id, targeted, compliant, non_compliant, error, conflict, not_applicable "
			"FROM policy_compliance WHERE policy_id = ?1 ORDER BY collection_id",
	[S_POL_DEVS_CLEAR] = "DELETE FROM policy_devices WHERE policy_id = ?1",
	[S_POL_DEV_ADD] = "INSERT INTO policy_devices(policy_id, resource_id, state, failing) VALUES (?1, ?2, ?3, ?4)",
	[S_POL_DEVS] = "SELECT resource_id, state, failing FROM policy_devices WHERE policy_id = ?1 ORDER BY resource_id",
	[S_POL_COMPLIANCE_AT] = "UPDATE policies SET compliance_version = ?2, compliance_at = ?3 WHERE id = ?1",
	[S_PJ_ADD] = "INSERT INTO policy_journal(policy_id, op, version, hash, intended) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_PJ_OUTCOME] = "UPDATE policy_journal SET outcome = ?2, message = ?3, completed = ?4 WHERE id = ?1",
	[S_PJ_OPEN] = "SELECT " PJ_COLS " FROM policy_journal WHERE outcome IS NULL ORDER BY id",
	[S_PJ_RECENT] = "SELECT " PJ_COLS " FROM policy_journal WHERE (?1 IS NULL OR policy_id = ?1) "
			"ORDER BY id DESC LIMIT ?2",
};

CMB_SDB_ENUM(cmb_policy_state, cmb_state_policy_state, CMB_POLICY_STATES, "policy state", "policies", "state")
CMB_SDB_ENUM(cmb_pdevice_state, cmb_state_pdevice_state, CMB_PDEVICE_STATES, "device compliance state",
	     "policy_devices", "state")
CMB_SDB_ENUM(cmb_pjournal_op, cmb_state_pjournal_op, CMB_PJOURNAL_OPS, "policy journal op", "policy_journal", "op")
CMB_SDB_ENUM(cmb_pjournal_outcome, cmb_state_pjournal_outcome, CMB_PJOURNAL_OUTCOMES, "policy journal outcome",
	     "policy_journal", "outcome")

/* ---- policies ---- */

void cmb_state_policy_clear(struct cmb_policy_row *p)
{
	if (!p)
		return;
	free(p->id);
	free(p->name);
	free(p->family);
	free(p->targets);
	memset(p, 0, sizeof(*p));
}

static int read_policy(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_policy_row *p = row;
	int state = 0;
	p->id = cmb_sdb_column_dup_or_empty(s, 0);
	p->name = cmb_sdb_column_dup_or_empty(s, 1);
	p->family = cmb_sdb_column_dup_or_empty(s, 2);
	cmb_sdb_column_copy(s, 3, p->modified, sizeof(p->modified));
	int ret = cmb_sdb_column_enum(st, s, 4, &cmb_state_policy_state_enum, p->id, 0, &state);
	p->state = (enum cmb_policy_state)state;
	p->targets = cmb_sdb_column_dup_or_empty(s, 5);
	p->version = sqlite3_column_int64(s, 6);
	cmb_sdb_column_copy(s, 7, p->hash, sizeof(p->hash));
	p->settings = (long)sqlite3_column_int64(s, 8);
	p->site_version = sqlite3_column_int64(s, 9);
	cmb_sdb_column_copy(s, 10, p->site_hash, sizeof(p->site_hash));
	p->compliance_version = sqlite3_column_int64(s, 11);
	p->compliance_at = sqlite3_column_int64(s, 12);
	cmb_sdb_column_copy(s, 13, p->reported_hash, sizeof(p->reported_hash));
	p->updated = sqlite3_column_int64(s, 14);
	return ret;
}

static void clear_policy(void *row)
{
	cmb_state_policy_clear(row);
}

static const struct cmb_sdb_rows policy_rows = { .size = sizeof(struct cmb_policy_row), .read = read_policy,
						 .clear = clear_policy };

void cmb_state_policies_free(struct cmb_policy_row *list, size_t n)
{
	cmb_sdb_rows_free(&policy_rows, list, n);
}

int cmb_state_policy_put(struct cmb_state *st, const struct cmb_policy_row *p)
{
	const char *state;
	if (!p->id || !p->id[0])
		return cmb_error_set(CMB_EINVAL, "storing a policy: empty policy id");
	int ret = cmb_sdb_enum_text(&cmb_state_policy_state_enum, (int)p->state, "storing a policy", &state);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_POL_PUT];
	int b = cmb_sdb_bind(s, "tttttti", p->id, p->name ? p->name : "", p->family ? p->family : "", p->modified,
			     state, p->targets ? p->targets : "", p->updated);
	return cmb_sdb_step_done(st, s, b, "storing policy \"%s\"", p->id);
}

/* Steps an UPDATE of one policy; CMB_ENOTFOUND when there is no such policy. */
static int update_one(struct cmb_state *st, sqlite3_stmt *s, int b, const char *id, const char *what)
{
	int ret = cmb_sdb_step_done(st, s, b, "%s of policy \"%s\"", what, id);
	if (ret == 0 && sqlite3_changes(st->db) == 0)
		ret = cmb_error_set(CMB_ENOTFOUND, "state database %s: no policy \"%s\"", st->path, id);
	return ret;
}

int cmb_state_policy_set_state(struct cmb_state *st, const char *id, enum cmb_policy_state state, int64_t updated)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_policy_state_enum, (int)state, "moving a policy", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_POL_STATE];
	return update_one(st, s, cmb_sdb_bind(s, "tti", id, text, updated), id, "moving the state");
}

int cmb_state_policy_set_body(struct cmb_state *st, const char *id, const char *body, size_t len)
{
	sqlite3_stmt *s = st->stmt[S_POL_BODY];
	return update_one(st, s, cmb_sdb_bind(s, "tb", id, body ? body : "", body ? len : 0), id, "storing the body");
}

int cmb_state_policy_set_document(struct cmb_state *st, const char *id, int64_t version, const char *hash,
				  const char *doc, size_t len, long settings)
{
	sqlite3_stmt *s = st->stmt[S_POL_DOCUMENT];
	int b = cmb_sdb_bind(s, "titbl", id, version, hash ? hash : "", doc ? doc : "", doc ? len : 0, settings);
	return update_one(st, s, b, id, "storing the document");
}

int cmb_state_policy_set_site(struct cmb_state *st, const char *id, int64_t version, const char *hash)
{
	sqlite3_stmt *s = st->stmt[S_POL_SITE];
	return update_one(st, s, cmb_sdb_bind(s, "tit", id, version, hash ? hash : ""), id,
			  "recording what the site holds");
}

int cmb_state_policy_set_reported(struct cmb_state *st, const char *id, const char *hash)
{
	sqlite3_stmt *s = st->stmt[S_POL_REPORTED];
	return update_one(st, s, cmb_sdb_bind(s, "tt", id, hash ? hash : ""), id, "recording the reported status");
}

int cmb_state_policy_get(struct cmb_state *st, const char *id, struct cmb_policy_row *out)
{
	sqlite3_stmt *s = st->stmt[S_POL_GET];
	struct cmb_policy_row p;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", id), &policy_rows, &p, "reading policy \"%s\"", id);
	if (ret == 0)
		*out = p;
	return ret;
}

int cmb_state_policies_list(struct cmb_state *st, struct cmb_policy_row **out, size_t *n)
{
	void *list = NULL;
	int ret = cmb_sdb_collect(st, st->stmt[S_POL_LIST], SQLITE_OK, &policy_rows, &list, n, "listing the policies");
	if (ret == 0)
		*out = list;
	return ret;
}

/* A blob column newly allocated with a NUL after it; NULL and 0 for SQL NULL. */
static char *column_blob(sqlite3_stmt *s, int col, size_t *len)
{
	*len = 0;
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	const void *p = sqlite3_column_blob(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);
	char *out = xmalloc(n + 1);
	if (n)
		memcpy(out, p, n);
	out[n] = '\0';
	*len = n;
	return out;
}

struct blobs_row {
	char *body, *doc;
	size_t body_len, doc_len;
};

static int read_blobs(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	(void)st;
	struct blobs_row *b = row;
	b->body = column_blob(s, 0, &b->body_len);
	b->doc = column_blob(s, 1, &b->doc_len);
	return 0;
}

static void clear_blobs(void *row)
{
	struct blobs_row *b = row;
	free(b->body);
	free(b->doc);
}

static const struct cmb_sdb_rows blobs_rows = { .size = sizeof(struct blobs_row), .read = read_blobs,
						.clear = clear_blobs };

int cmb_state_policy_blobs(struct cmb_state *st, const char *id, char **body, size_t *body_len, char **doc,
			   size_t *doc_len)
{
	sqlite3_stmt *s = st->stmt[S_POL_BLOBS];
	struct blobs_row b;
	int ret = cmb_sdb_get_row(st, s, cmb_sdb_bind(s, "t", id), &blobs_rows, &b, "reading the body of policy \"%s\"",
				  id);
	if (ret < 0)
		return ret;
	if (body) {
		*body = b.body;
		*body_len = b.body_len;
	} else {
		free(b.body);
	}
	if (doc) {
		*doc = b.doc;
		*doc_len = b.doc_len;
	} else {
		free(b.doc);
	}
	return 0;
}

int cmb_state_policy_delete(struct cmb_state *st, const char *id)
{
	sqlite3_stmt *s = st->stmt[S_POL_DELETE];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", id), "forgetting policy \"%s\"", id);
}

long cmb_state_policies_count(struct cmb_state *st, enum cmb_policy_state state)
{
	const char *text = cmb_state_policy_state_name(state);
	if (!text)
		return cmb_error_set(CMB_EINVAL, "counting policies: unknown policy state %d", (int)state);
	sqlite3_stmt *s = st->stmt[S_POL_COUNT_STATE];
	return cmb_sdb_count(st, s, cmb_sdb_bind(s, "t", text), "counting policies by state");
}

/* ---- reasons ---- */

int cmb_state_policy_set_reasons(struct cmb_state *st, const char *id, const char *const *r, size_t n)
{
	sqlite3_stmt *s = st->stmt[S_POL_REASONS_CLEAR];
	int ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", id), "clearing the reasons of policy \"%s\"", id);
	for (size_t i = 0; i < n && ret == 0; i++) {
		s = st->stmt[S_POL_REASON_ADD];
		ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "tit", id, (int64_t)i, r[i]),
					"storing a reason of policy \"%s\"", id);
	}
	return ret;
}

int cmb_state_policy_reasons(struct cmb_state *st, const char *id, char ***out, size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_POL_REASONS];
	void *list = NULL;
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "t", id), &cmb_sdb_text_rows, &list, n,
				  "reading the reasons of policy \"%s\"", id);
	if (ret == 0)
		*out = list;
	return ret;
}

/* ---- compliance ---- */

static int read_counts(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	(void)st;
	struct cmb_pcoll_counts *c = row;
	cmb_sdb_column_copy(s, 0, c->collection_id, sizeof(c->collection_id));
	long *v[] = { &c->targeted, &c->compliant, &c->non_compliant, &c->error, &c->conflict, &c->not_applicable };
	for (int i = 0; i < 6; i++)
		*v[i] = (long)sqlite3_column_int64(s, i + 1);
	return 0;
}

static const struct cmb_sdb_rows counts_rows = { .size = sizeof(struct cmb_pcoll_counts), .read = read_counts };

static int read_pdevice(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_pdevice *d = row;
	int state = 0;
	d->resource_id = (uint32_t)sqlite3_column_int64(s, 0);
	int ret = cmb_sdb_column_enum(st, s, 1, &cmb_state_pdevice_state_enum, NULL, d->resource_id, &state);
	d->state = (enum cmb_pdevice_state)state;
	d->failing = cmb_sdb_column_dup_or_empty(s, 2);
	return ret;
}

static void clear_pdevice(void *row)
{
	free(((struct cmb_pdevice *)row)->failing);
}

static const struct cmb_sdb_rows pdevice_rows = { .size = sizeof(struct cmb_pdevice), .read = read_pdevice,
						  .clear = clear_pdevice };

void cmb_state_pdevices_free(struct cmb_pdevice *list, size_t n)
{
	cmb_sdb_rows_free(&pdevice_rows, list, n);
}

static int add_counts(struct cmb_state *st, const char *id, const struct cmb_pcoll_counts *c)
{
	sqlite3_stmt *s = st->stmt[S_POL_COLL_ADD];
	int b = cmb_sdb_bind(s, "ttllllll", id, c->collection_id, c->targeted, c->compliant, c->non_compliant, c->error,
			     c->conflict, c->not_applicable);
	return cmb_sdb_step_done(st, s, b, "storing the compliance of policy \"%s\" in %s", id, c->collection_id);
}

static int add_pdevice(struct cmb_state *st, const char *id, const struct cmb_pdevice *d)
{
	const char *state;
	int ret = cmb_sdb_enum_text(&cmb_state_pdevice_state_enum, (int)d->state, "storing a device's compliance",
				    &state);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_POL_DEV_ADD];
	int b = cmb_sdb_bind(s, "titt", id, (int64_t)d->resource_id, state, d->failing ? d->failing : "");
	return cmb_sdb_step_done(st, s, b, "storing the compliance of device %u with policy \"%s\"", d->resource_id,
				 id);
}

int cmb_state_policy_set_compliance(struct cmb_state *st, const char *id, int64_t version, int64_t at,
				    const struct cmb_pcoll_counts *c, size_t n_c, const struct cmb_pdevice *d,
				    size_t n_d)
{
	sqlite3_stmt *s = st->stmt[S_POL_COMPLIANCE_AT];
	int ret = update_one(st, s, cmb_sdb_bind(s, "tii", id, version, at), id, "recording the compliance read");
	if (ret == 0) {
		s = st->stmt[S_POL_COLLS_CLEAR];
		ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", id), "clearing the compliance of policy \"%s\"", id);
	}
	if (ret == 0) {
		s = st->stmt[S_POL_DEVS_CLEAR];
		ret = cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "t", id), "clearing the devices of policy \"%s\"", id);
	}
	for (size_t i = 0; i < n_c && ret == 0; i++)
		ret = add_counts(st, id, &c[i]);
	for (size_t i = 0; i < n_d && ret == 0; i++)
		ret = add_pdevice(st, id, &d[i]);
	return ret;
}

int cmb_state_policy_compliance(struct cmb_state *st, const char *id, struct cmb_pcoll_counts **c, size_t *n_c,
				struct cmb_pdevice **d, size_t *n_d)
{
	void *lc = NULL, *ld = NULL;
	sqlite3_stmt *s = st->stmt[S_POL_COLLS];
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "t", id), &counts_rows, &lc, n_c,
				  "reading the compliance of policy \"%s\"", id);
	if (ret < 0)
		return ret;
	s = st->stmt[S_POL_DEVS];
	ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "t", id), &pdevice_rows, &ld, n_d,
			      "reading the device compliance of policy \"%s\"", id);
	if (ret < 0) {
		free(lc);
		return ret;
	}
	*c = lc;
	*d = ld;
	return 0;
}

/* ---- the journal ---- */

static int read_pjournal(struct cmb_state *st, sqlite3_stmt *s, void *row)
{
	struct cmb_pjournal *j = row;
	int op = 0, outcome = 0;
	j->id = sqlite3_column_int64(s, 0);
	j->policy_id = cmb_sdb_column_dup_or_empty(s, 1);
	int ret = cmb_sdb_column_enum(st, s, 2, &cmb_state_pjournal_op_enum, NULL, j->id, &op);
	if (ret == 0)
		ret = cmb_sdb_column_enum(st, s, 6, &cmb_state_pjournal_outcome_enum, NULL, j->id, &outcome);
	j->op = (enum cmb_pjournal_op)op;
	j->outcome = (enum cmb_pjournal_outcome)outcome;
	j->version = sqlite3_column_int64(s, 3);
	cmb_sdb_column_copy(s, 4, j->hash, sizeof(j->hash));
	j->intended = sqlite3_column_int64(s, 5);
	j->message = cmb_sdb_column_dup(s, 7);
	j->completed = sqlite3_column_int64(s, 8);
	return ret;
}

static void clear_pjournal(void *row)
{
	struct cmb_pjournal *j = row;
	free(j->policy_id);
	free(j->message);
}

static const struct cmb_sdb_rows pjournal_rows = { .size = sizeof(struct cmb_pjournal), .read = read_pjournal,
						   .clear = clear_pjournal };

void cmb_state_pjournal_free(struct cmb_pjournal *list, size_t n)
{
	cmb_sdb_rows_free(&pjournal_rows, list, n);
}

int cmb_state_pjournal_add(struct cmb_state *st, const char *policy_id, enum cmb_pjournal_op op, int64_t version,
			   const char *hash, int64_t intended, int64_t *journal_id)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_pjournal_op_enum, (int)op, "journaling a policy write", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_PJ_ADD];
	int b = cmb_sdb_bind(s, "ttiti", policy_id, text, version, hash ? hash : "", intended);
	ret = cmb_sdb_step_done(st, s, b, "journaling the %s of policy \"%s\"", text, policy_id);
	if (ret == 0)
		*journal_id = sqlite3_last_insert_rowid(st->db);
	return ret;
}

int cmb_state_pjournal_outcome(struct cmb_state *st, int64_t journal_id, enum cmb_pjournal_outcome outcome,
			       const char *message, int64_t completed)
{
	const char *text;
	int ret = cmb_sdb_enum_text(&cmb_state_pjournal_outcome_enum, (int)outcome, "recording a policy write", &text);
	if (ret < 0)
		return ret;
	sqlite3_stmt *s = st->stmt[S_PJ_OUTCOME];
	return cmb_sdb_step_done(st, s, cmb_sdb_bind(s, "itti", journal_id, text, message, completed),
				 "recording the outcome of policy journal row %" PRId64, journal_id);
}

int cmb_state_pjournal_open(struct cmb_state *st, struct cmb_pjournal **out, size_t *n)
{
	void *list = NULL;
	int ret = cmb_sdb_collect(st, st->stmt[S_PJ_OPEN], SQLITE_OK, &pjournal_rows, &list, n,
				  "listing the open policy journal rows");
	if (ret == 0)
		*out = list;
	return ret;
}

int cmb_state_pjournal_recent(struct cmb_state *st, const char *policy_id, size_t limit, struct cmb_pjournal **out,
			      size_t *n)
{
	sqlite3_stmt *s = st->stmt[S_PJ_RECENT];
	void *list = NULL;
	int ret = cmb_sdb_collect(st, s, cmb_sdb_bind(s, "ti", policy_id, cmb_sdb_limit(limit)), &pjournal_rows, &list,
				  n, "listing the policy journal");
	if (ret == 0)
		*out = list;
	return ret;
}
