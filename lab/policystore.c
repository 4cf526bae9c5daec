/*
 * policystore.c - endpoint security policies, the site's half
 * (docs/wire-format.md §9, docs/lab.md "Endpoint security policies"): the
 * policy document store on the AdminService's v1.0 route, which is
 * cmbridge's own (ConfigMgr's path from tenant attach to its clients is
 * internal and not published):
 *
 *   PUT    /AdminService/v1.0/CmbridgePolicy('{id}')   store a document
 *   DELETE /AdminService/v1.0/CmbridgePolicy('{id}')
 *   GET    /AdminService/v1.0/CmbridgePolicy            what is stored
 *   GET    /AdminService/v1.0/CmbridgePolicy('{id}')   the document
 *   GET    .../CmbridgePolicy('{id}')/Compliance        simulated compliance
 *
 * Documents are hostile input: libxml2 without network, DTD or entities,
 * a size limit, and a strict check of the one shape §9 defines. Compliance
 * is drawn from the lab's seed, the document and each target's members
 * (inventory.c), never from the wall clock except for the report delay.
 * Documents live in lab.db (site_policy).
 */
#include "policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#define NS "urn:cmbridge:policy:1"
#define MAX_TARGETS LAB_NCOLL
#define MAX_DEFS 10000

/* ---- up, stats ---------------------------------------------------------------------------- */

int lab_policystore_up(struct lab *lab, char *err, size_t errlen)
{
	/* the key is the id as the connector sends it; duplicates are counted
	 * case-insensitively (a GUID sent in another case is a second document) */
	static const char *const sql =
		"CREATE TABLE IF NOT EXISTS site_policy(tenant_policy_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
		" content_hash TEXT NOT NULL, family TEXT NOT NULL, name TEXT NOT NULL, targets TEXT NOT NULL,"
		" document BLOB NOT NULL, updated TEXT NOT NULL, updated_ms INTEGER NOT NULL);";
	if (sqlite3_exec(lab->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "lab.db: cannot create the policy document table: %s", sqlite3_errmsg(lab->db));
		return -1;
	}
	xmlInitParser();
	return 0;
}

void lab_policystore_stats(struct lab *lab, struct lab_buf *b)
{
	struct lab_policies *pl = lab->policies;
	long long docs = 0, dups = 0;
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	if (pl && sqlite3_prepare_v2(lab->db, "SELECT count(*), count(*) - count(DISTINCT lower(tenant_policy_id)) FROM site_policy",
				     -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			docs = sqlite3_column_int64(st, 0);
			dups = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&lab->db_lock);
#define C(x) (pl ? (long long)pl->x : 0)
	lab_buf_addf(b, ",\"siteDocuments\":%lld,\"sitePuts\":%lld,\"siteCreated\":%lld,\"siteUpdated\":%lld,\"siteRepeats\":%lld,"
		     "\"siteRejected\":%lld,\"siteConflicts\":%lld,\"siteDeletes\":%lld,\"siteDeletesUnknown\":%lld,"
		     "\"duplicateDocuments\":%lld,\"complianceReads\":%lld",
		     docs, C(site_puts), C(site_created), C(site_updated), C(site_repeats), C(site_rejected), C(site_conflicts),
		     C(site_deletes), C(site_delete_unknown), dups, C(compliance_reads));
#undef C
}

/* ---- the document ------------------------------------------------------------------------------ */

struct pdoc {
	char *id, *hash, *family, *name, *modified;
	long long version;
	char *targets[MAX_TARGETS];
	int ntargets;
	char **defs;                 /* every setting's definitionId, in document order */
	size_t ndefs;
};

static void pdoc_free(struct pdoc *d)
{
	xmlFree(d->id);
	xmlFree(d->hash);
	xmlFree(d->family);
	xmlFree(d->name);
	xmlFree(d->modified);
	for (int i = 0; i < d->ntargets; i++)
		xmlFree(d->targets[i]);
	for (size_t i = 0; i < d->ndefs; i++)
		xmlFree(d->defs[i]);
	free(d->defs);
	memset(d, 0, sizeof *d);
}

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

static bool blank(const xmlChar *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return false;
	return true;
}

/* The next element child from n on, skipping comments and whitespace;
 * anything else (text, CDATA, an entity reference, a processing
 * instruction) is an error naming where. */
static int next_elem(xmlNode *n, xmlNode **out, const char *where, char *err, size_t en)
{
	for (; n; n = n->next) {
		if (n->type == XML_ELEMENT_NODE) {
			*out = n;
			return 0;
		}
		if (n->type == XML_COMMENT_NODE || (n->type == XML_TEXT_NODE && blank(n->content)))
			continue;
		return bad(err, en, "%s (line %ld): unexpected %s", where, (long)xmlGetLineNo(n),
			   n->type == XML_TEXT_NODE ? "text" : n->type == XML_ENTITY_REF_NODE ? "entity reference" : "node");
	}
	*out = NULL;
	return 0;
}

static bool in_ns(const xmlNode *n)
{
	return n->ns && n->ns->href && !strcmp((const char *)n->ns->href, NS);
}

/* The attributes of element n: exactly the names in allowed (all required),
 * no others, none in a namespace. vals gets xmlGetProp copies. */
static int attrs(xmlNode *n, const char *where, const char *const *allowed, char **vals, char *err, size_t en)
{
	for (xmlAttr *a = n->properties; a; a = a->next) {
		bool known = !a->ns;
		for (int i = 0; known && allowed[i]; i++)
			if (!strcmp((const char *)a->name, allowed[i]))
				goto ok;
		return bad(err, en, "%s (line %ld): unknown attribute '%s'", where, (long)xmlGetLineNo(n), (const char *)a->name);
ok:;
	}
	for (int i = 0; allowed[i]; i++) {
		vals[i] = (char *)xmlGetProp(n, (const xmlChar *)allowed[i]);
		if (!vals[i])
			return bad(err, en, "%s (line %ld): attribute '%s' is required", where, (long)xmlGetLineNo(n), allowed[i]);
	}
	return 0;
}

static bool is_utc(const char *s)
{
	int y, mo, d, h, mi, se, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19)
		return false;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return !strcmp(p, "Z") && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 60;
}

/* <setting definitionId csp type>value</setting> */
static int check_setting(xmlNode *n, const char *where, struct pdoc *d, char *err, size_t en)
{
	static const char *const names[] = {"definitionId", "csp", "type", NULL};
	char *v[3] = {NULL, NULL, NULL};
	int rc = -1;
	if (attrs(n, where, names, v, err, en) < 0)
		goto done;
	if (!*v[0]) {
		bad(err, en, "%s (line %ld): definitionId is empty", where, (long)xmlGetLineNo(n));
		goto done;
	}
	if (strncmp(v[1], "./", 2) || strlen(v[1]) < 4) {
		bad(err, en, "%s (line %ld): csp '%s' is not an OMA-URI (./Device/Vendor/MSFT/..., ./Vendor/MSFT/...)", where,
		    (long)xmlGetLineNo(n), v[1]);
		goto done;
	}
	for (xmlNode *c = n->children; c; c = c->next)
		if (c->type != XML_TEXT_NODE) {
			bad(err, en, "%s (line %ld): a setting holds its value as text only", where, (long)xmlGetLineNo(n));
			goto done;
		}
	char *val = (char *)xmlNodeGetContent(n);
	const char *t = v[2];
	bool ok = true;
	if (!strcmp(t, "int")) {
		char *e;
		long long x = strtoll(val ? val : "", &e, 10);
		ok = val && *val && !*e && x >= INT32_MIN && x <= INT32_MAX;
	} else if (!strcmp(t, "bool")) {
		ok = val && (!strcmp(val, "true") || !strcmp(val, "false"));
	} else if (strcmp(t, "string")) {
		xmlFree(val);
		bad(err, en, "%s (line %ld): type '%s' is not int, bool or string", where, (long)xmlGetLineNo(n), t);
		goto done;
	}
	if (!ok) {
		bad(err, en, "%s (line %ld): '%s' is not a value of type %s", where, (long)xmlGetLineNo(n), val ? val : "", t);
		xmlFree(val);
		goto done;
	}
	xmlFree(val);
	if (d->ndefs == MAX_DEFS) {
		bad(err, en, "%s: more than %d settings in one document", where, MAX_DEFS);
		goto done;
	}
	d->defs = lab_xrealloc(d->defs, (d->ndefs + 1) * sizeof *d->defs);
	d->defs[d->ndefs++] = v[0];
	v[0] = NULL;
	rc = 0;
done:
	for (int i = 0; i < 3; i++)
		xmlFree(v[i]);
	return rc;
}

/* The document's one shape (wire-format §9). 0, or -1 with err naming the
 * element or attribute at fault. */
static int parse_doc(const struct lab *lab, const char *body, size_t len, struct pdoc *d, char *err, size_t en)
{
	memset(d, 0, sizeof *d);
	xmlResetLastError();
	/* no network, no DTD loading, no entity substitution, no messages on stderr */
	xmlDoc *doc = xmlReadMemory(body, (int)len, "CmbridgePolicy.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	int rc = -1;
	if (!doc) {
		xmlErrorPtr e = xmlGetLastError();
		char msg[256] = "not well-formed";
		if (e && e->message) {
			snprintf(msg, sizeof msg, "%s", e->message);
			msg[strcspn(msg, "\n")] = 0;
		}
		return bad(err, en, "malformed XML at line %d: %s", e ? e->line : 0, msg);
	}
	if (doc->intSubset || doc->extSubset) {
		bad(err, en, "a document type declaration (DTD) is not allowed");
		goto done;
	}
	xmlNode *root = xmlDocGetRootElement(doc), *targets, *settings, *extra;
	if (!root || strcmp((const char *)root->name, "cmbridgePolicy") || !in_ns(root)) {
		bad(err, en, "the root element must be cmbridgePolicy in namespace " NS " (got '%s')",
		    root ? (const char *)root->name : "");
		goto done;
	}
	static const char *const rnames[] = {"tenantPolicyId", "version", "contentHash", "family", "name", "lastModified", NULL};
	char *rv[6] = {NULL};
	int arc = attrs(root, "cmbridgePolicy", rnames, rv, err, en);
	d->id = rv[0], d->hash = rv[2], d->family = rv[3], d->name = rv[4], d->modified = rv[5];
	if (arc < 0) {
		xmlFree(rv[1]);
		goto done;
	}
	char *e;
	d->version = strtoll(rv[1], &e, 10);
	bool vok = rv[1][0] >= '1' && rv[1][0] <= '9' && !*e && d->version > 0 && d->version <= (1LL << 53);
	xmlFree(rv[1]);
	if (!vok) {
		bad(err, en, "cmbridgePolicy: version must be a positive integer");
		goto done;
	}
	if (!*d->id || strlen(d->id) > 64 || strpbrk(d->id, "'\"/\\ ")) {
		bad(err, en, "cmbridgePolicy: tenantPolicyId '%s' is not a policy id", d->id);
		goto done;
	}
	bool hex = strlen(d->hash) == 64;
	for (const char *p = d->hash; hex && *p; p++)
		hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
	if (!hex) {
		bad(err, en, "cmbridgePolicy: contentHash must be 64 lowercase hexadecimal digits (SHA-256)");
		goto done;
	}
	if (lab_policy_family(d->family) < 0) {
		bad(err, en, "cmbridgePolicy: family '%s' is not an endpoint security template family "
		    "(endpointSecurityAntivirus, endpointSecurityDiskEncryption, endpointSecurityFirewall, "
		    "endpointSecurityEndpointDetectionAndResponse, endpointSecurityAttackSurfaceReduction, "
		    "endpointSecurityAccountProtection, endpointSecurityApplicationControl)", d->family);
		goto done;
	}
	if (!*d->name) {
		bad(err, en, "cmbridgePolicy: name is empty");
		goto done;
	}
	if (!is_utc(d->modified)) {
		bad(err, en, "cmbridgePolicy: lastModified '%s' is not a UTC time (YYYY-MM-DDTHH:MM:SS[.fff]Z)", d->modified);
		goto done;
	}
	if (next_elem(root->children, &targets, "cmbridgePolicy", err, en) < 0)
		goto done;
	if (!targets || strcmp((const char *)targets->name, "targets") || !in_ns(targets)) {
		bad(err, en, "cmbridgePolicy: the first element must be targets");
		goto done;
	}
	if (next_elem(targets->next, &settings, "cmbridgePolicy", err, en) < 0)
		goto done;
	if (!settings || strcmp((const char *)settings->name, "settings") || !in_ns(settings)) {
		bad(err, en, "cmbridgePolicy: settings must follow targets");
		goto done;
	}
	if (next_elem(settings->next, &extra, "cmbridgePolicy", err, en) < 0)
		goto done;
	if (extra) {
		bad(err, en, "cmbridgePolicy (line %ld): unexpected element '%s' after settings", (long)xmlGetLineNo(extra),
		    (const char *)extra->name);
		goto done;
	}
	static const char *const none[] = {NULL};
	char *nv[1];
	if (attrs(targets, "targets", none, nv, err, en) < 0 || attrs(settings, "settings", none, nv, err, en) < 0)
		goto done;
	xmlNode *c = NULL;
	for (xmlNode *n = targets->children;; n = c->next) {
		if (next_elem(n, &c, "targets", err, en) < 0)
			goto done;
		if (!c)
			break;
		char where[48];
		snprintf(where, sizeof where, "targets/collection[%d]", d->ntargets + 1);
		if (strcmp((const char *)c->name, "collection") || !in_ns(c)) {
			bad(err, en, "targets (line %ld): unexpected element '%s' (collection only)", (long)xmlGetLineNo(c),
			    (const char *)c->name);
			goto done;
		}
		static const char *const cn[] = {"id", NULL};
		char *cv[1] = {NULL};
		if (attrs(c, where, cn, cv, err, en) < 0)
			goto done;
		int ci = -1;
		for (int k = 0; k < LAB_NCOLL; k++)
			if (!strcmp(lab_colls[k].id, cv[0]))
				ci = k;
		bool dup = false;
		for (int k = 0; k < d->ntargets; k++)
			dup |= !strcmp(d->targets[k], cv[0]);
		if (ci < 0 || lab_colls[ci].type != 2 || dup || d->ntargets == MAX_TARGETS) {
			bad(err, en, "%s: collection '%s' %s", where, cv[0],
			    ci < 0 ? "does not exist at this site"
			    : lab_colls[ci].type != 2 ? "is a user collection (endpoint security policies target devices)"
			    : "is named twice");
			xmlFree(cv[0]);
			goto done;
		}
		d->targets[d->ntargets++] = cv[0];
		(void)lab;
	}
	int ns = 0;
	for (xmlNode *n = settings->children;; n = c->next) {
		if (next_elem(n, &c, "settings", err, en) < 0)
			goto done;
		if (!c)
			break;
		char where[64];
		ns++;
		if (in_ns(c) && !strcmp((const char *)c->name, "setting")) {
			snprintf(where, sizeof where, "settings/setting[%d]", ns);
			if (check_setting(c, where, d, err, en) < 0)
				goto done;
			continue;
		}
		if (!in_ns(c) || strcmp((const char *)c->name, "group")) {
			bad(err, en, "settings (line %ld): unexpected element '%s' (setting or group)", (long)xmlGetLineNo(c),
			    (const char *)c->name);
			goto done;
		}
		snprintf(where, sizeof where, "settings/group[%d]", ns);
		static const char *const gn[] = {"definitionId", "csp", NULL};
		char *gv[2] = {NULL, NULL};
		int grc = attrs(c, where, gn, gv, err, en);
		bool gok = grc == 0 && *gv[0] && !strncmp(gv[1], "./", 2);
		xmlFree(gv[0]);
		xmlFree(gv[1]);
		if (grc < 0)
			goto done;
		if (!gok) {
			bad(err, en, "%s (line %ld): definitionId empty or csp not an OMA-URI", where, (long)xmlGetLineNo(c));
			goto done;
		}
		xmlNode *g = NULL;
		int k = 0;
		for (xmlNode *m = c->children;; m = g->next) {
			if (next_elem(m, &g, where, err, en) < 0)
				goto done;
			if (!g)
				break;
			char gw[96];
			snprintf(gw, sizeof gw, "%s/setting[%d]", where, ++k);
			if (!in_ns(g) || strcmp((const char *)g->name, "setting")) {
				bad(err, en, "%s (line %ld): unexpected element '%s' (setting only)", where, (long)xmlGetLineNo(g),
				    (const char *)g->name);
				goto done;
			}
			if (check_setting(g, gw, d, err, en) < 0)
				goto done;
		}
		if (!k) {
			bad(err, en, "%s (line %ld): a group holds at least one setting", where, (long)xmlGetLineNo(c));
			goto done;
		}
	}
	rc = 0;
done:
	xmlFreeDoc(doc);
	if (rc < 0)
		pdoc_free(d);
	return rc;
}

/* ---- routes ---------------------------------------------------------------------------------------- */

static void odata_err(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void odata_err(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lab_odata_error(r, status, code, msg);
}

static void targets_json(struct lab_buf *b, const struct pdoc *d)
{
	lab_buf_addc(b, '[');
	for (int i = 0; i < d->ntargets; i++) {
		if (i)
			lab_buf_addc(b, ',');
		lab_buf_json_cstr(b, d->targets[i]);
	}
	lab_buf_addc(b, ']');
}

static void site_put(struct lab *lab, const struct lab_req *q, const char *id, struct lab_reply *r)
{
	struct lab_policies *pl = lab->policies;
	atomic_fetch_add(&pl->site_puts, 1);
	const char *ct = q->header(q->hctx, "Content-Type");
	char err[768];
	struct pdoc d;
	if (!ct || strncasecmp(ct, "application/xml", 15) || (ct[15] && ct[15] != ';' && ct[15] != ' ')) {
		atomic_fetch_add(&pl->site_rejected, 1);
		odata_err(r, 415, "UnsupportedMediaType", "A policy document is sent as Content-Type: application/xml (got '%s').",
			  ct ? ct : "");
		return;
	}
	if (q->body_len > (size_t)lab->conf.pol_max_document) {
		atomic_fetch_add(&pl->site_rejected, 1);
		odata_err(r, 413, "RequestEntityTooLarge", "The policy document is larger than %d bytes ([policies] max_document).",
			  lab->conf.pol_max_document);
		return;
	}
	if (parse_doc(lab, q->body, q->body_len, &d, err, sizeof err) < 0) {
		atomic_fetch_add(&pl->site_rejected, 1);
		odata_err(r, 400, "BadRequest", "The policy document is not valid: %s.", err);
		return;
	}
	if (strcmp(d.id, id)) {
		atomic_fetch_add(&pl->site_rejected, 1);
		odata_err(r, 400, "BadRequest", "The policy document is not valid: tenantPolicyId '%s' differs from the key in "
			  "the URL '%s'.", d.id, id);
		pdoc_free(&d);
		return;
	}
	struct lab_buf tg = {0};
	targets_json(&tg, &d);
	int64_t ms = lab_now_ms();
	char now[32];
	lab_iso8601(ms / 1000, now);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT version, content_hash FROM site_policy WHERE tenant_policy_id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bool exists = sqlite3_step(st) == SQLITE_ROW;
	long long sv = exists ? sqlite3_column_int64(st, 0) : 0;
	char shash[65] = "";
	if (exists)
		snprintf(shash, sizeof shash, "%s", (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	const char *state = NULL;
	int status = 0;
	if (!exists) {
		state = "created";
		status = 201;
	} else if (d.version == sv && !strcmp(d.hash, shash)) {
		state = "unchanged";
		status = 200;
	} else if (d.version > sv) {
		state = "updated";
		status = 200;
	}
	if (!state) {
		pthread_mutex_unlock(&lab->db_lock);
		atomic_fetch_add(&pl->site_conflicts, 1);
		if (d.version == sv)
			odata_err(r, 409, "Conflict", "Policy '%s' version %lld is stored with another contentHash; a change needs "
				  "a higher version.", id, sv);
		else
			odata_err(r, 409, "Conflict", "Policy '%s' is stored at version %lld; version %lld is older.", id, sv, d.version);
		goto done;
	}
	if (strcmp(state, "unchanged")) {
		sqlite3_prepare_v2(lab->db, "INSERT OR REPLACE INTO site_policy(tenant_policy_id,version,content_hash,family,name,"
				   "targets,document,updated,updated_ms) VALUES(?,?,?,?,?,?,?,?,?)", -1, &st, NULL);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, d.version);
		sqlite3_bind_text(st, 3, d.hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, d.family, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, d.name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, tg.p, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 7, q->body, (int)q->body_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, now, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 9, ms);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			pthread_mutex_unlock(&lab->db_lock);
			odata_err(r, 500, "InternalServerError", "The lab could not store the policy document.");
			goto done;
		}
	}
	pthread_mutex_unlock(&lab->db_lock);
	atomic_fetch_add(!strcmp(state, "created") ? &pl->site_created : !strcmp(state, "updated") ? &pl->site_updated
												     : &pl->site_repeats, 1);
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"tenantPolicyId\":");
	lab_buf_json_cstr(&b, id);
	lab_buf_addf(&b, ",\"version\":%lld,\"contentHash\":\"%s\",\"state\":\"%s\"}", d.version, d.hash, state);
	lab_reply_json(r, status, &b);
done:
	lab_buf_free(&tg);
	pdoc_free(&d);
}

static void site_delete(struct lab *lab, const char *id, struct lab_reply *r)
{
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "DELETE FROM site_policy WHERE tenant_policy_id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_step(st);
	int gone = sqlite3_changes(lab->db);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (!gone) {
		atomic_fetch_add(&lab->policies->site_delete_unknown, 1);
		odata_err(r, 404, "NotFound", "No policy document for tenantPolicyId '%s'.", id);
		return;
	}
	atomic_fetch_add(&lab->policies->site_deletes, 1);
	r->status = 204;
	r->body = lab_xstrdup("");
	r->len = 0;
}

static void site_list(struct lab *lab, const char *host, struct lab_reply *r)
{
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/v1.0/$metadata#CmbridgePolicy\",\"value\":[", host);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT tenant_policy_id, version, content_hash, family, targets, updated FROM site_policy"
			   " ORDER BY tenant_policy_id", -1, &st, NULL);
	for (int n = 0; sqlite3_step(st) == SQLITE_ROW; n++) {
		lab_buf_adds(&b, n ? ",{\"tenantPolicyId\":" : "{\"tenantPolicyId\":");
		lab_buf_json_cstr(&b, (const char *)sqlite3_column_text(st, 0));
		lab_buf_addf(&b, ",\"version\":%lld,\"contentHash\":\"%s\",\"family\":\"%s\",\"targets\":%s,\"updated\":\"%s\"}",
			     (long long)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
			     (const char *)sqlite3_column_text(st, 3), (const char *)sqlite3_column_text(st, 4),
			     (const char *)sqlite3_column_text(st, 5));
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_adds(&b, "]}");
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

/* Loads a stored document (caller frees *doc); 0 or -1. */
static int load_doc(struct lab *lab, const char *id, char **doc, size_t *len, int64_t *updated_ms)
{
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	int rc = -1;
	sqlite3_prepare_v2(lab->db, "SELECT document, updated_ms FROM site_policy WHERE tenant_policy_id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 0);
		*doc = lab_xmalloc((size_t)n + 1);
		memcpy(*doc, sqlite3_column_blob(st, 0), (size_t)n);
		(*doc)[n] = 0;
		*len = (size_t)n;
		*updated_ms = sqlite3_column_int64(st, 1);
		rc = 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	return rc;
}

static void site_get(struct lab *lab, const char *id, struct lab_reply *r)
{
	char *doc;
	size_t len;
	int64_t ms;
	if (load_doc(lab, id, &doc, &len, &ms) < 0) {
		odata_err(r, 404, "NotFound", "No policy document for tenantPolicyId '%s'.", id);
		return;
	}
	r->status = 200;
	r->body = doc;
	r->len = len;
	r->ctype = "application/xml";
}

/* ---- simulated compliance ------------------------------------------------------------------------- */

enum { S_PENDING, S_COMPLIANT, S_NONCOMPLIANT, S_ERROR, S_CONFLICT, S_NA };
static const char *const state_names[] = {"pending", "compliant", "nonCompliant", "error", "conflict", "notApplicable"};

/* What a device's draw depends on besides the seed: the document's content
 * (its contentHash) and version, not the tenant's random policy id, so the
 * same documents give the same compliance in every run. */
static uint64_t policy_hash(const char *content_hash, long long version)
{
	unsigned char md[32];
	unsigned int n;
	EVP_Digest(content_hash, strlen(content_hash), md, &n, EVP_sha256(), NULL);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | md[i];
	return h ^ (uint64_t)version * 0x9e3779b97f4a7c15ULL;
}

/* A device's state for one version of a document: devices without an
 * active client never report (pending); the others, once the delay is
 * over, draw their state from the seed with the lab.conf rates. */
static int device_state(const struct lab *lab, const struct lab_device *d, uint64_t ph, bool reported, struct lab_prng *r)
{
	r->s = lab->conf.seed * 0xd1b54a32d192ed03ULL ^ ph ^ (uint64_t)d->resource_id * 0x8cb92ba72f3d8dd7ULL;
	lab_prng_next(r);
	if (!reported || d->client != 1 || d->active_status != 1)
		return S_PENDING;
	double u = (double)(lab_prng_next(r) >> 11) * (1.0 / 9007199254740992.0), a;
	const struct lab_conf *c = &lab->conf;
	if (u < (a = c->pol_not_applicable_rate))
		return S_NA;
	if (u < (a += c->pol_error_rate))
		return S_ERROR;
	if (u < (a += c->pol_conflict_rate))
		return S_CONFLICT;
	if (u < a + c->pol_compliant_rate)
		return S_COMPLIANT;
	return S_NONCOMPLIANT;
}

struct devrow {
	int64_t rid;
	size_t dev;                  /* index in the inventory */
};

static int cmp_rid(const void *a, const void *b)
{
	int64_t x = ((const struct devrow *)a)->rid, y = ((const struct devrow *)b)->rid;
	return x < y ? -1 : x > y;
}

static void site_compliance(struct lab *lab, const char *host, const char *id, struct lab_reply *r)
{
	char *doc, err[768];
	size_t len;
	int64_t updated_ms;
	struct pdoc d;
	atomic_fetch_add(&lab->policies->compliance_reads, 1);
	if (load_doc(lab, id, &doc, &len, &updated_ms) < 0) {
		odata_err(r, 404, "NotFound", "No policy document for tenantPolicyId '%s'.", id);
		return;
	}
	int prc = parse_doc(lab, doc, len, &d, err, sizeof err);
	free(doc);
	if (prc < 0) {
		odata_err(r, 500, "InternalServerError", "The stored document no longer parses: %s.", err);
		return;
	}
	int64_t report_ms = updated_ms + lab->conf.pol_report_delay_ms;
	bool reported = lab_now_ms() >= report_ms;
	uint64_t ph = policy_hash(d.hash, d.version);
	struct lab_buf b = {0};
	char when[32];
	lab_iso8601((report_ms + 999) / 1000, when);
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/v1.0/$metadata#CmbridgePolicyCompliance\","
		     "\"tenantPolicyId\":", host);
	lab_buf_json_cstr(&b, d.id);
	lab_buf_addf(&b, ",\"version\":%lld,\"contentHash\":\"%s\",\"reported\":%s,\"reportsFrom\":\"%s\",\"collections\":[",
		     d.version, d.hash, reported ? "true" : "false", when);
	pthread_rwlock_rdlock(&lab->inv_lock);
	const struct lab_inventory *inv = &lab->inv;
	bool *seen = lab_xcalloc(inv->n + 1, 1);
	struct devrow *rows = lab_xmalloc((inv->n + 1) * sizeof *rows);
	size_t nrows = 0;
	struct lab_prng pr;
	for (int t = 0; t < d.ntargets; t++) {
		int ci = 0;
		while (ci < LAB_NCOLL && strcmp(lab_colls[ci].id, d.targets[t]))
			ci++;
		long cnt[6] = {0}, targeted = 0;
		for (size_t i = 0; ci < LAB_NCOLL && i < inv->n; i++) {
			const struct lab_device *dv = &inv->dev[i];
			if (!lab_coll_member(ci, dv, lab->conf.seed))
				continue;
			targeted++;
			cnt[device_state(lab, dv, ph, reported, &pr)]++;
			if (!seen[i]) {
				seen[i] = true;
				rows[nrows].rid = dv->resource_id;
				rows[nrows++].dev = i;
			}
		}
		lab_buf_addf(&b, "%s{\"collectionId\":\"%s\",\"targeted\":%ld,\"compliant\":%ld,\"nonCompliant\":%ld,\"error\":%ld,"
			     "\"conflict\":%ld,\"notApplicable\":%ld}", t ? "," : "", d.targets[t], targeted, cnt[S_COMPLIANT],
			     cnt[S_NONCOMPLIANT], cnt[S_ERROR], cnt[S_CONFLICT], cnt[S_NA]);
	}
	lab_buf_adds(&b, "],\"devices\":[");
	qsort(rows, nrows, sizeof *rows, cmp_rid);
	for (size_t k = 0; k < nrows; k++) {
		int s = device_state(lab, &inv->dev[rows[k].dev], ph, reported, &pr);
		lab_buf_addf(&b, "%s{\"ResourceID\":%lld,\"state\":\"%s\",\"failingSettings\":[", k ? "," : "",
			     (long long)rows[k].rid, state_names[s]);
		if ((s == S_NONCOMPLIANT || s == S_ERROR || s == S_CONFLICT) && d.ndefs) {
			/* one to three distinct settings of the document, from the same draw */
			size_t want = 1 + lab_prng_below(&pr, d.ndefs < 3 ? (uint32_t)d.ndefs : 3), got = 0;
			size_t pick[3];
			while (got < want) {
				size_t x = lab_prng_below(&pr, (uint32_t)d.ndefs);
				bool dup = false;
				for (size_t j = 0; j < got; j++)
					dup |= pick[j] == x || !strcmp(d.defs[pick[j]], d.defs[x]);
				if (dup && d.ndefs > got && want > 1) {
					want--;     /* a document repeating one definitionId may have fewer distinct ones */
					continue;
				}
				pick[got++] = x;
				lab_buf_addf(&b, "%s", got > 1 ? "," : "");
				lab_buf_json_cstr(&b, d.defs[x]);
			}
		}
		lab_buf_adds(&b, "]}");
	}
	pthread_rwlock_unlock(&lab->inv_lock);
	lab_buf_adds(&b, "]}");
	free(seen);
	free(rows);
	pdoc_free(&d);
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

/* ---- routing ------------------------------------------------------------------------------------------ */

int lab_policies_site(struct lab *lab, const struct lab_req *q, const char *host, const char *rest,
		      struct lab_reply *r)
{
	if (!lab->policies || strncmp(rest, "/v1.0/", 6))
		return 0;
	const char *seg = rest + 6, *m = q->method;
	static const char es[] = "CmbridgePolicy";
	int route = -1;
	char *id = NULL;
	const char *allow = "GET";
	if (!strcmp(seg, es)) {
		route = P_SITE_LIST;
	} else if (!strncmp(seg, es, sizeof es - 1) && seg[sizeof es - 1] == '(' && seg[sizeof es] == '\'') {
		const char *k = seg + sizeof es + 1, *e = strstr(k, "')");
		if (e && e > k) {
			id = lab_xstrndup(k, (size_t)(e - k));
			if (!e[2]) {
				route = !strcmp(m, "PUT") ? P_SITE_PUT : !strcmp(m, "DELETE") ? P_SITE_DELETE : P_SITE_GET;
				allow = "GET, PUT, DELETE";
			} else if (!strcmp(e + 2, "/Compliance")) {
				route = P_SITE_COMPLIANCE;
			}
		}
	}
	if (route < 0) {
		free(id);
		atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
		odata_err(r, 404, "NotFound", "Resource not found for the segment '%s'.", seg);
		return 1;
	}
	atomic_fetch_add(&lab->routes[R_POL_FIRST + route], 1);
	bool method_ok = route == P_SITE_PUT || route == P_SITE_DELETE || !strcmp(m, "GET");
	if (!method_ok) {
		odata_err(r, 405, "MethodNotAllowed", "The HTTP method '%s' is not allowed here; use %s.", m, allow);
		lab_reply_hdr(r, "Allow", allow);
		goto done;
	}
	for (int i = 0; i < q->nargs; i++)
		if (q->args[i].k[0] == '$') {
			/* ASP.NET OData's QueryParameterNotSupported, as on the wmi route */
			odata_err(r, 400, "", "The query parameter '%s' is not supported.", q->args[i].k);
			goto done;
		}
	switch (route) {
	case P_SITE_PUT: site_put(lab, q, id, r); break;
	case P_SITE_DELETE: site_delete(lab, id, r); break;
	case P_SITE_LIST: site_list(lab, host, r); break;
	case P_SITE_GET: site_get(lab, id, r); break;
	default: site_compliance(lab, host, id, r); break;
	}
done:
	free(id);
	return 1;
}
