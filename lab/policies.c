/*
 * policies.c - endpoint security policies, the tenant's half
 * (docs/wire-format.md §9, docs/lab.md "Endpoint security policies"):
 *
 *  Graph   POST/GET /beta/deviceManagement/configurationPolicies, GET/PATCH/
 *          DELETE .../{id}, GET .../{id}/settings, .../{id}/assignments,
 *          POST .../{id}/assign: policies authored as Microsoft documents
 *          them, validated against the reference CSDL by schema.c, the
 *          $filter grammar of odata.c;
 *  gateway POST /api/gateway/PolicyStatusPost: compliance from the connector
 *          in cmbridge's own envelope, gzip and batchId idempotency through
 *          tenant.c's one body decoder and batch memory;
 *  Graph   GET .../configManagerCollections/getPolicySummary(policyId='…')
 *          and the DeviceStatusesByConfigurationProfile export job
 *          (POST/GET .../reports/exportJobs, the zip at its url): what was
 *          posted, shown the way Microsoft documents it;
 *  CLI     `policy`.
 *
 * Everything lives in lab.db (tenant_policy, tenant_policy_status,
 * tenant_policy_device, tenant_export_job). Never logs a token.
 */
#include "policies.h"
#include "actions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <zlib.h>

#define POLICY_TYPE "deviceManagementConfigurationPolicy"
#define GRAPH_POLICY_TYPE "microsoft.graph." POLICY_TYPE
#define DEFAULT_TOP 25           /* a page without $top (lab choice, docs/lab.md) */
#define MAX_TOP 100
#define MAX_SETTINGS 1000
#define MAX_STATUS_POLICIES 100
#define MAX_STATUS_DEVICES 5000
#define REPORT_NAME "DeviceStatusesByConfigurationProfile"
#define EXPORT_TTL_S (6 * 3600)  /* expirationDateTime of a completed export (Microsoft's example: ~6 h) */

const char *const lab_policy_families[] = {
	"endpointSecurityAntivirus", "endpointSecurityDiskEncryption", "endpointSecurityFirewall",
	"endpointSecurityEndpointDetectionAndResponse", "endpointSecurityAttackSurfaceReduction",
	"endpointSecurityAccountProtection", "endpointSecurityApplicationControl", NULL};

int lab_policy_family(const char *s)
{
	for (int i = 0; lab_policy_families[i]; i++)
		if (!strcmp(lab_policy_families[i], s))
			return i;
	return -1;
}

/* ---- configuration ---------------------------------------------------------------- */

void lab_policies_conf_defaults(struct lab_conf *c)
{
	c->pol_compliant_rate = 0.85;
	c->pol_error_rate = 0.03;
	c->pol_conflict_rate = 0.02;
	c->pol_not_applicable_rate = 0.05;
	c->pol_report_delay_ms = 300;
	c->pol_max_document = 1024 * 1024;
}

int lab_policies_conf_entry(struct lab_conf *c, const char *name, const char *value)
{
	char *e;
	double *rate = !strcmp(name, "compliant_rate") ? &c->pol_compliant_rate
		     : !strcmp(name, "error_rate") ? &c->pol_error_rate
		     : !strcmp(name, "conflict_rate") ? &c->pol_conflict_rate
		     : !strcmp(name, "not_applicable_rate") ? &c->pol_not_applicable_rate : NULL;
	if (rate) {
		double d = strtod(value, &e);
		if (!*value || *e || !(d >= 0 && d <= 1))
			return 0;
		*rate = d;
		return 1;
	}
	if (!strcmp(name, "report_delay_ms") || !strcmp(name, "max_document")) {
		long v = strtol(value, &e, 10);
		bool delay = name[0] == 'r';
		if (!*value || *e || v < (delay ? 0 : 1024) || v > (delay ? 100000000 : 64L * 1024 * 1024))
			return 0;
		*(delay ? &c->pol_report_delay_ms : &c->pol_max_document) = (int)v;
		return 1;
	}
	return 0;
}

int lab_policies_conf_check(const struct lab_conf *c)
{
	if (c->pol_compliant_rate + c->pol_error_rate + c->pol_conflict_rate + c->pol_not_applicable_rate > 1.0 + 1e-9) {
		fprintf(stderr, LAB_NAME ": %s/lab.conf: [policies] compliant_rate + error_rate + conflict_rate + "
			"not_applicable_rate must be at most 1 (the rest is nonCompliant)\n", c->dir);
		return -1;
	}
	return 0;
}

void lab_policies_conf_save(const struct lab_conf *c, struct lab_buf *b)
{
	lab_buf_addf(b, "[policies]\ncompliant_rate = %g\nerror_rate = %g\nconflict_rate = %g\nnot_applicable_rate = %g\n"
		     "report_delay_ms = %d\nmax_document = %d\n", c->pol_compliant_rate, c->pol_error_rate,
		     c->pol_conflict_rate, c->pol_not_applicable_rate, c->pol_report_delay_ms, c->pol_max_document);
}

/* ---- up ------------------------------------------------------------------------------ */

int lab_policies_up(struct lab *lab, char *err, size_t errlen)
{
	static const char *const sql =
		"CREATE TABLE IF NOT EXISTS tenant_policy(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
		" object TEXT NOT NULL, settings TEXT NOT NULL, assignments TEXT NOT NULL, modified_ms INTEGER NOT NULL);"
		"CREATE TABLE IF NOT EXISTS tenant_policy_status(policy_id TEXT PRIMARY KEY, state TEXT NOT NULL,"
		" reasons TEXT NOT NULL, collections TEXT NOT NULL, updated TEXT NOT NULL);"
		"CREATE TABLE IF NOT EXISTS tenant_policy_device(policy_id TEXT NOT NULL, key TEXT NOT NULL,"
		" state TEXT NOT NULL, failing TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY(policy_id, key));"
		"CREATE TABLE IF NOT EXISTS tenant_export_job(id TEXT PRIMARY KEY, request TEXT NOT NULL, policy_id TEXT NOT NULL,"
		" sig TEXT NOT NULL, requested TEXT NOT NULL, completed TEXT, expires TEXT, name TEXT, data BLOB);";
	if (sqlite3_exec(lab->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "lab.db: cannot create the policy tables: %s", sqlite3_errmsg(lab->db));
		return -1;
	}
	lab->policies = lab_xcalloc(1, sizeof *lab->policies);
	return lab_policystore_up(lab, err, errlen);
}

void lab_policies_free(struct lab *lab)
{
	free(lab->policies);
	lab->policies = NULL;
}

bool lab_policies_write_route(bool site, const char *method, const char *url)
{
	if (site)
		return (!strcmp(method, "PUT") || !strcmp(method, "DELETE")) &&
		       !strncmp(url, "/AdminService/v1.0/CmbridgePolicy(", 34);
	return !strcmp(method, "POST") && !strcmp(url, "/api/gateway/PolicyStatusPost");
}

/* ---- small helpers --------------------------------------------------------------------- */

static yajl_val jget(yajl_val o, const char *k)
{
	if (!o || !YAJL_IS_OBJECT(o))
		return NULL;
	for (size_t i = 0; i < o->u.object.len; i++)
		if (!strcmp(o->u.object.keys[i], k))
			return o->u.object.values[i];
	return NULL;
}

static const char *jstr(yajl_val o, const char *k)
{
	yajl_val v = jget(o, k);
	return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/* Graph's DateTimeOffset form, with the seven fraction digits Graph writes. */
static void iso_ms(int64_t ms, char out[40])
{
	char t[32];
	lab_iso8601(ms / 1000, t);
	t[strlen(t) - 1] = 0;     /* the Z */
	snprintf(out, 40, "%s.%03lld0000Z", t, (long long)(ms % 1000));
}

static void echo_request_id(const struct lab_req *q, struct lab_reply *r)
{
	const char *cr = q->header(q->hctx, "client-request-id");
	if (cr && strlen(cr) < 100 && !strpbrk(cr, "\r\n"))
		lab_reply_hdr(r, "client-request-id", cr);
}

static void graph_json(struct lab_reply *r, int status, struct lab_buf *b)
{
	lab_reply_json(r, status, b);
	r->ctype = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
}

/* Validation messages: up to five, each "path: what", joined by "; ". */
struct errs {
	struct lab_buf msg;
	int n;
	const char *prefix;
};

static void collect(void *ctx, const char *path, const char *msg)
{
	struct errs *e = ctx;
	if (e->n < 5) {
		if (e->n)
			lab_buf_adds(&e->msg, "; ");
		if (e->prefix && *e->prefix)
			lab_buf_addf(&e->msg, "%s%s%s: %s", e->prefix, *path ? "." : "", path, msg);
		else
			lab_buf_addf(&e->msg, "%s: %s", *path ? path : "(body)", msg);
	}
	e->n++;
}

static void errs_add(struct errs *e, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errs_add(struct errs *e, const char *path, const char *fmt, ...)
{
	char m[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	const char *pre = e->prefix;
	e->prefix = NULL;
	collect(e, path, m);
	e->prefix = pre;
}

/* 400 with the collected messages; frees them. */
static void errs_reply(struct errs *e, struct lab_reply *r)
{
	if (e->n > 5)
		lab_buf_addf(&e->msg, " (and %d more)", e->n - 5);
	lab_reply_graph_error(r, 400, "BadRequest", "%s", e->msg.p ? e->msg.p : "invalid request body");
	lab_buf_free(&e->msg);
}

/* Validates the object members of v other than the navigation properties
 * (settings, assignments: the CSDL extract keeps none), as type. */
static void validate_props(struct lab *lab, const char *type, yajl_val v, struct errs *e)
{
	size_t n = v->u.object.len, k = 0;
	const char **keys = lab_xcalloc(n + 1, sizeof *keys);
	yajl_val *vals = lab_xcalloc(n + 1, sizeof *vals);
	for (size_t i = 0; i < n; i++) {
		const char *key = v->u.object.keys[i];
		if (!strcmp(key, "settings") || !strcmp(key, "assignments"))
			continue;
		keys[k] = key;
		vals[k++] = v->u.object.values[i];
	}
	struct yajl_val_s shallow;
	memset(&shallow, 0, sizeof shallow);
	shallow.type = yajl_t_object;
	shallow.u.object.keys = keys;
	shallow.u.object.values = vals;
	shallow.u.object.len = k;
	e->prefix = NULL;
	lab_schema_validate(lab->schema, type, &shallow, collect, e);
	free(keys);
	free(vals);
}

/* settings of a body: each a deviceManagementConfigurationSetting with a
 * settingInstance; returns the stored form (ids "0", "1", ... as Graph
 * numbers them) or NULL when e got errors. */
static char *settings_of(struct lab *lab, yajl_val a, struct errs *e, long *count)
{
	if (!YAJL_IS_ARRAY(a)) {
		errs_add(e, "settings", "expected an array of graph.deviceManagementConfigurationSetting");
		return NULL;
	}
	if (a->u.array.len > MAX_SETTINGS) {
		errs_add(e, "settings", "more than %d settings in one policy (lab limit)", MAX_SETTINGS);
		return NULL;
	}
	int before = e->n;
	struct lab_buf b = {0};
	lab_buf_addc(&b, '[');
	for (size_t i = 0; i < a->u.array.len; i++) {
		yajl_val s = a->u.array.values[i];
		char path[32];
		snprintf(path, sizeof path, "settings[%zu]", i);
		e->prefix = path;
		lab_schema_validate(lab->schema, "deviceManagementConfigurationSetting", s, collect, e);
		yajl_val inst = jget(s, "settingInstance");
		if (YAJL_IS_OBJECT(s) && !inst)
			collect(e, "settingInstance", "required");
		if (e->n > before)
			continue;
		lab_buf_addf(&b, "%s{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationSetting\",\"id\":\"%zu\","
			     "\"settingInstance\":", i ? "," : "", i);
		lab_buf_json_val(&b, inst);
		lab_buf_addc(&b, '}');
	}
	e->prefix = NULL;
	lab_buf_addc(&b, ']');
	if (e->n > before) {
		lab_buf_free(&b);
		return NULL;
	}
	*count = (long)a->u.array.len;
	return lab_buf_steal(&b, NULL);
}

/* ---- the stored policy ------------------------------------------------------------------- */

/* templateReference with the four members Graph always returns (a body may
 * give only templateId and templateFamily); an @odata.type is dropped. */
static void template_ref(struct lab_buf *b, yajl_val t)
{
	static const char *const m[] = {"templateId", "templateFamily", "templateDisplayName", "templateDisplayVersion"};
	lab_buf_addc(b, '{');
	for (int i = 0; i < 4; i++) {
		yajl_val x = jget(t, m[i]);
		lab_buf_addf(b, "%s\"%s\":", i ? "," : "", m[i]);
		if (x)
			lab_buf_json_val(b, x);
		else
			lab_buf_adds(b, i == 0 ? "\"\"" : i == 1 ? "\"none\"" : "null");
	}
	lab_buf_addc(b, '}');
}

/* The properties a policy shows, in the order Graph serialises them, each
 * from the body, else the stored object, else its default. id, the dates,
 * settingCount and isAssigned are the tenant's. */
static char *build_object(const char *id, yajl_val body, yajl_val old, const char *created, const char *modified,
			  long nsettings, bool assigned)
{
	static const struct { const char *name, *dflt; } props[] = {
		{"createdDateTime", NULL}, {"creationSource", "null"}, {"description", "\"\""},
		{"lastModifiedDateTime", NULL}, {"name", "\"\""}, {"platforms", "\"none\""},
		{"roleScopeTagIds", "[\"0\"]"}, {"settingCount", NULL}, {"technologies", "\"none\""}, {"id", NULL},
		{"templateReference", "{\"templateId\":\"\",\"templateFamily\":\"none\",\"templateDisplayName\":null,"
				      "\"templateDisplayVersion\":null}"},
		{"isAssigned", NULL},
	};
	struct lab_buf b = {0};
	lab_buf_addc(&b, '{');
	for (size_t i = 0; i < sizeof props / sizeof *props; i++) {
		const char *n = props[i].name;
		lab_buf_addf(&b, "%s\"%s\":", i ? "," : "", n);
		yajl_val v;
		if (!strcmp(n, "id"))
			lab_buf_json_cstr(&b, id);
		else if (!strcmp(n, "createdDateTime"))
			lab_buf_json_cstr(&b, created);
		else if (!strcmp(n, "lastModifiedDateTime"))
			lab_buf_json_cstr(&b, modified);
		else if (!strcmp(n, "settingCount"))
			lab_buf_addf(&b, "%ld", nsettings);
		else if (!strcmp(n, "isAssigned"))
			lab_buf_adds(&b, assigned ? "true" : "false");
		else if (!strcmp(n, "templateReference") && (v = jget(body, n)) && YAJL_IS_OBJECT(v))
			template_ref(&b, v);
		else if ((v = jget(body, n)) || (v = jget(old, n)))
			lab_buf_json_val(&b, v);
		else
			lab_buf_adds(&b, props[i].dflt);
	}
	lab_buf_addc(&b, '}');
	return lab_buf_steal(&b, NULL);
}

struct stored {
	int64_t seq, modified_ms;
	char *object, *settings, *assignments;
};

static void stored_free(struct stored *s)
{
	free(s->object);
	free(s->settings);
	free(s->assignments);
	memset(s, 0, sizeof *s);
}

/* Caller holds db_lock. 0, or -1 when there is no such policy. */
static int load(struct lab *lab, const char *id, struct stored *s)
{
	sqlite3_stmt *st;
	int rc = -1;
	memset(s, 0, sizeof *s);
	sqlite3_prepare_v2(lab->db, "SELECT seq, object, settings, assignments, modified_ms FROM tenant_policy WHERE id=?",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		s->seq = sqlite3_column_int64(st, 0);
		s->object = lab_xstrdup(col_text(st, 1));
		s->settings = lab_xstrdup(col_text(st, 2));
		s->assignments = lab_xstrdup(col_text(st, 3));
		s->modified_ms = sqlite3_column_int64(st, 4);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

#define EXPAND_SETTINGS 1u
#define EXPAND_ASSIGNMENTS 2u

/* One policy as Graph shows it: @odata.type, then the selected properties
 * (id always) or all of them, then the expanded navigations. */
static void emit_policy(struct lab_buf *b, const char *object, const char *settings, const char *assignments,
			const struct lab_graph_sel *sel, unsigned expand)
{
	yajl_val o = yajl_tree_parse(object, NULL, 0);
	lab_buf_adds(b, "{\"@odata.type\":\"#microsoft.graph." POLICY_TYPE "\"");
	if (!sel || !sel->n) {
		for (size_t i = 0; o && i < o->u.object.len; i++) {
			lab_buf_addc(b, ',');
			lab_buf_json_cstr(b, o->u.object.keys[i]);
			lab_buf_addc(b, ':');
			lab_buf_json_val(b, o->u.object.values[i]);
		}
	} else {
		lab_buf_adds(b, ",\"id\":");
		lab_buf_json_val(b, jget(o, "id"));
		for (int i = 0; i < sel->n; i++) {
			if (!strcmp(sel->names[i], "id"))
				continue;
			lab_buf_addc(b, ',');
			lab_buf_json_cstr(b, sel->names[i]);
			lab_buf_addc(b, ':');
			lab_buf_json_val(b, jget(o, sel->names[i]));
		}
	}
	if (expand & EXPAND_SETTINGS)
		lab_buf_addf(b, ",\"settings\":%s", settings);
	if (expand & EXPAND_ASSIGNMENTS)
		lab_buf_addf(b, ",\"assignments\":%s", assignments);
	lab_buf_addc(b, '}');
	yajl_tree_free(o);
}

/* $expand=settings,assignments (either or both). 0, or -1 with r (400). */
static int parse_expand(const char *s, unsigned *out, struct lab_reply *r)
{
	*out = 0;
	if (!s)
		return 0;
	char *dup = lab_xstrdup(s), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		char *e = t + strlen(t);
		while (e > t && e[-1] == ' ')
			*--e = 0;
		if (!strcmp(t, "settings"))
			*out |= EXPAND_SETTINGS;
		else if (!strcmp(t, "assignments"))
			*out |= EXPAND_ASSIGNMENTS;
		else {
			if (strchr(t, '('))
				lab_reply_graph_error(r, 400, "BadRequest", "The lab's $expand takes settings and assignments "
						      "without nested options; '%s' is not supported.", t);
			else
				lab_reply_graph_error(r, 400, "BadRequest", "Could not find a property named '%s' on type '"
						      GRAPH_POLICY_TYPE "'.", t);
			rc = -1;
			break;
		}
	}
	free(dup);
	return rc;
}

/* ---- $filter ------------------------------------------------------------------------------ */

/* The properties a $filter may name: the policy's own, and the two of
 * templateReference public clients filter on. col is an index into this
 * table (these are not AdminService columns). */
enum { F_ID, F_NAME, F_DESC, F_PLATFORMS, F_TECH, F_SOURCE, F_CREATED, F_MODIFIED, F_COUNT, F_ASSIGNED, F_FAMILY,
       F_TEMPLATE };
#define FP(name, col, edm, flags) {name, (enum lab_col)(col), edm, flags, "the reference CSDL"}
static const struct lab_odata_prop filter_props[] = {
	FP("id", F_ID, LAB_EDM_STRING, 0), FP("name", F_NAME, LAB_EDM_STRING, 0),
	FP("description", F_DESC, LAB_EDM_STRING, 0), FP("platforms", F_PLATFORMS, LAB_EDM_STRING, LAB_P_FLAGS),
	FP("technologies", F_TECH, LAB_EDM_STRING, LAB_P_FLAGS), FP("creationSource", F_SOURCE, LAB_EDM_STRING, 0),
	FP("createdDateTime", F_CREATED, LAB_EDM_DATE, 0), FP("lastModifiedDateTime", F_MODIFIED, LAB_EDM_DATE, 0),
	FP("settingCount", F_COUNT, LAB_EDM_INT32, 0), FP("isAssigned", F_ASSIGNED, LAB_EDM_BOOL, 0),
	FP("templateReference/templateFamily", F_FAMILY, LAB_EDM_STRING, 0),
	FP("templateReference/templateId", F_TEMPLATE, LAB_EDM_STRING, 0),
	{NULL, 0, 0, 0, NULL}};
#undef FP

static int64_t parse_iso(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static void filter_get(void *ctx, const void *row, const struct lab_odata_prop *p, struct lab_odata_val *v)
{
	(void)ctx;
	yajl_val o = (yajl_val)row, x = NULL;
	static const char *const names[] = {"id", "name", "description", "platforms", "technologies", "creationSource",
					    "createdDateTime", "lastModifiedDateTime", "settingCount", "isAssigned"};
	int col = (int)p->col;
	if (col == F_FAMILY || col == F_TEMPLATE)
		x = jget(jget(o, "templateReference"), col == F_FAMILY ? "templateFamily" : "templateId");
	else
		x = jget(o, names[col]);
	if (!x || YAJL_IS_NULL(x)) {
		v->t = LAB_V_NULL;
	} else if (p->edm == LAB_EDM_DATE) {
		v->t = LAB_V_DATE;
		v->i = parse_iso(YAJL_IS_STRING(x) ? x->u.string : NULL);
	} else if (p->edm == LAB_EDM_BOOL) {
		v->t = LAB_V_BOOL;
		v->i = YAJL_IS_TRUE(x);
	} else if (p->edm == LAB_EDM_INT32) {
		v->t = LAB_V_INT;
		v->i = YAJL_IS_INTEGER(x) ? x->u.number.i : 0;
	} else if (YAJL_IS_STRING(x)) {
		v->t = LAB_V_STR;
		v->s = x->u.string;
		v->n = strlen(x->u.string);
	} else {
		v->t = LAB_V_NULL;
	}
}

/* An enumeration literal must be a member, as ODL requires: checked by
 * the schema (an object with just that property). */
static int check_enum_literals(struct lab *lab, const struct lab_odata_query *fq, struct lab_reply *r)
{
	for (int i = 0; i < fq->ncond; i++) {
		int col = (int)fq->cond[i].p->col;
		if ((col != F_PLATFORMS && col != F_TECH && col != F_FAMILY) || fq->cond[i].lit.t != LAB_V_STR)
			continue;
		struct lab_buf probe = {0};
		if (col == F_FAMILY)
			lab_buf_adds(&probe, "{\"templateReference\":{\"templateFamily\":");
		else
			lab_buf_addf(&probe, "{\"%s\":", col == F_TECH ? "technologies" : "platforms");
		lab_buf_json_str(&probe, fq->cond[i].lit.s, fq->cond[i].lit.n);
		lab_buf_adds(&probe, col == F_FAMILY ? "}}" : "}");
		yajl_val pv = yajl_tree_parse(probe.p, NULL, 0);
		struct errs e = {0};
		lab_schema_validate(lab->schema, POLICY_TYPE, pv, collect, &e);
		yajl_tree_free(pv);
		lab_buf_free(&probe);
		if (e.n) {
			const char *m = strstr(e.msg.p, ": ");
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid filter clause: %s", m ? m + 2 : e.msg.p);
			lab_buf_free(&e.msg);
			return -1;
		}
	}
	return 0;
}

/* ---- Graph routes ---------------------------------------------------------------------------- */

static void entity_reply(struct lab *lab, const struct lab_req *q, int status, const char *object,
			 struct lab_reply *r)
{
	char host[256];
	lab_graph_host(lab, q, host, sizeof host);
	struct lab_buf b = {0}, d = {0};
	emit_policy(&d, object, NULL, NULL, NULL, 0);
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/configurationPolicies/$entity\",",
		     host);
	lab_buf_add(&b, d.p + 1, d.len - 1);
	lab_buf_free(&d);
	graph_json(r, status, &b);
}

static void handle_create(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	yajl_val v = NULL;
	char *settings = NULL, *object = NULL;
	struct errs e = {0};
	long nsettings = 0;
	if (lab_gateway_body(lab, q, &v, r) < 0)
		return;
	if (!v || !YAJL_IS_OBJECT(v)) {
		lab_reply_graph_error(r, 400, "BadRequest", "The request body must be a JSON object (graph." POLICY_TYPE ").");
		goto done;
	}
	validate_props(lab, POLICY_TYPE, v, &e);
	static const char *const required[] = {"name", "platforms", "technologies"};
	for (int i = 0; i < 3; i++) {
		yajl_val x = jget(v, required[i]);
		if (!x || (YAJL_IS_STRING(x) && !*x->u.string))
			errs_add(&e, required[i], "required");
	}
	if (jget(v, "assignments"))
		errs_add(&e, "assignments", "the lab takes assignments through POST .../configurationPolicies/{id}/assign only");
	yajl_val sv = jget(v, "settings");
	if (sv)
		settings = settings_of(lab, sv, &e, &nsettings);
	if (e.n) {
		errs_reply(&e, r);
		goto done;
	}
	char id[37], now[40];
	lab_guid(id);
	int64_t ms = lab_now_ms();
	iso_ms(ms, now);
	object = build_object(id, v, NULL, now, now, nsettings, false);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "INSERT INTO tenant_policy(id,object,settings,assignments,modified_ms) VALUES(?,?,?,'[]',?)",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, settings ? settings : "[]", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, ms);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (rc != SQLITE_DONE) {
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the policy.");
		goto done;
	}
	atomic_fetch_add(&lab->policies->graph_writes, 1);
	entity_reply(lab, q, 201, object, r);
done:
	free(settings);
	free(object);
	yajl_tree_free(v);
}

/* Strictly later than the stored time: two writes within a millisecond still
 * move lastModifiedDateTime forward. */
static int64_t bump(int64_t old_ms)
{
	int64_t ms = lab_now_ms();
	return ms > old_ms ? ms : old_ms + 1;
}

static void handle_patch(struct lab *lab, const struct lab_req *q, const char *id, struct lab_reply *r)
{
	yajl_val v = NULL, old = NULL;
	char *settings = NULL, *object = NULL;
	struct errs e = {0};
	struct stored s;
	long nsettings = 0;
	if (lab_gateway_body(lab, q, &v, r) < 0)
		return;
	pthread_mutex_lock(&lab->db_lock);
	if (load(lab, id, &s) < 0) {
		pthread_mutex_unlock(&lab->db_lock);
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no " POLICY_TYPE " with id '%s'.", id);
		goto done;
	}
	if (!v || !YAJL_IS_OBJECT(v)) {
		pthread_mutex_unlock(&lab->db_lock);
		lab_reply_graph_error(r, 400, "BadRequest", "The request body must be a JSON object (graph." POLICY_TYPE ").");
		goto done;
	}
	old = yajl_tree_parse(s.object, NULL, 0);
	validate_props(lab, POLICY_TYPE, v, &e);
	/* what a policy is for does not change once it exists */
	static const char *const fixed[] = {"platforms", "technologies", "templateReference"};
	for (int i = 0; i < 3 && !e.n; i++) {
		yajl_val nv = jget(v, fixed[i]);
		if (!nv)
			continue;
		struct lab_buf a = {0}, b = {0};
		lab_buf_json_val(&a, nv);
		lab_buf_json_val(&b, jget(old, fixed[i]));
		if (strcmp(a.p, b.p))
			errs_add(&e, fixed[i], "cannot be changed on an existing policy (create a new policy)");
		lab_buf_free(&a);
		lab_buf_free(&b);
	}
	if (jget(v, "assignments"))
		errs_add(&e, "assignments", "the lab takes assignments through POST .../configurationPolicies/{id}/assign only");
	yajl_val sv = jget(v, "settings");
	if (sv)
		settings = settings_of(lab, sv, &e, &nsettings);
	if (e.n) {
		pthread_mutex_unlock(&lab->db_lock);
		errs_reply(&e, r);
		goto done;
	}
	if (!sv) {
		yajl_val c = jget(old, "settingCount");
		nsettings = c && YAJL_IS_INTEGER(c) ? (long)c->u.number.i : 0;
	}
	int64_t ms = bump(s.modified_ms);
	char now[40];
	iso_ms(ms, now);
	yajl_val assigned = jget(old, "isAssigned");
	object = build_object(id, v, old, jstr(old, "createdDateTime"), now, nsettings, assigned && YAJL_IS_TRUE(assigned));
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "UPDATE tenant_policy SET object=?, settings=?, modified_ms=? WHERE id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, object, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, settings ? settings : s.settings, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ms);
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (rc != SQLITE_DONE) {
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the policy.");
		goto done;
	}
	atomic_fetch_add(&lab->policies->graph_writes, 1);
	entity_reply(lab, q, 200, object, r);
done:
	stored_free(&s);
	free(settings);
	free(object);
	yajl_tree_free(old);
	yajl_tree_free(v);
}

static void handle_delete(struct lab *lab, const char *id, struct lab_reply *r)
{
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_exec(lab->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	static const char *const sql[] = {"DELETE FROM tenant_policy WHERE id=?", "DELETE FROM tenant_policy_status WHERE policy_id=?",
					  "DELETE FROM tenant_policy_device WHERE policy_id=?"};
	int gone = 0;
	for (int i = 0; i < 3; i++) {
		sqlite3_stmt *st;
		sqlite3_prepare_v2(lab->db, sql[i], -1, &st, NULL);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		if (!i)
			gone = sqlite3_changes(lab->db);
		sqlite3_finalize(st);
	}
	sqlite3_exec(lab->db, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&lab->db_lock);
	if (!gone) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no " POLICY_TYPE " with id '%s'.", id);
		return;
	}
	atomic_fetch_add(&lab->policies->graph_writes, 1);
	r->status = 204;
	r->body = lab_xstrdup("");
	r->len = 0;
}

/* A target's identity within one policy (assignment ids are
 * {policyId}_{target}, as Intune forms them for groups). */
static const char *target_key(yajl_val t, char *buf, size_t n)
{
	const char *ty = jstr(t, "@odata.type");
	ty = ty ? (ty[0] == '#' ? ty + 1 : ty) : "";
	if (!strncmp(ty, "microsoft.graph.", 16))
		ty += 16;
	const char *c = jstr(t, "collectionId"), *g = jstr(t, "groupId");
	snprintf(buf, n, "%s", c ? c : g ? g : !strcmp(ty, "allDevicesAssignmentTarget") ? "acacacac-9df4-4c7d-9d50-4ef0226f57a9" : ty);
	return buf;
}

static void handle_assign(struct lab *lab, const struct lab_req *q, const char *id, struct lab_reply *r)
{
	yajl_val v = NULL;
	struct errs e = {0};
	struct stored s;
	memset(&s, 0, sizeof s);
	char host[256];
	lab_graph_host(lab, q, host, sizeof host);
	if (lab_gateway_body(lab, q, &v, r) < 0)
		return;
	yajl_val a = jget(v, "assignments");
	if (!v || !YAJL_IS_OBJECT(v)) {
		lab_reply_graph_error(r, 400, "BadRequest", "The request body must be a JSON object {\"assignments\":[...]}.");
		goto done;
	}
	for (size_t i = 0; i < v->u.object.len; i++)
		if (strcmp(v->u.object.keys[i], "assignments"))
			errs_add(&e, v->u.object.keys[i], "not a parameter of the assign action (assignments)");
	if (!a || !YAJL_IS_ARRAY(a))
		errs_add(&e, "assignments", "missing or not an array of graph.deviceManagementConfigurationPolicyAssignment");
	struct lab_buf out = {0};
	lab_buf_addc(&out, '[');
	char **keys = lab_xcalloc(a && YAJL_IS_ARRAY(a) ? a->u.array.len + 1 : 1, sizeof *keys);
	size_t nk = 0;
	for (size_t i = 0; !e.n && a && YAJL_IS_ARRAY(a) && i < a->u.array.len; i++) {
		yajl_val x = a->u.array.values[i], t = jget(x, "target");
		char path[64], kb[128];
		snprintf(path, sizeof path, "assignments[%zu]", i);
		e.prefix = path;
		lab_schema_validate(lab->schema, "deviceManagementConfigurationPolicyAssignment", x, collect, &e);
		e.prefix = NULL;
		if (e.n)
			break;
		snprintf(path, sizeof path, "assignments[%zu].target", i);
		const char *ty = jstr(t, "@odata.type");
		if (!t || YAJL_IS_NULL(t)) {
			errs_add(&e, path, "required");
			break;
		}
		if (ty && strstr(ty, "configurationManagerCollectionAssignmentTarget")) {
			const char *c = jstr(t, "collectionId");
			if (!c || !*c) {
				snprintf(path, sizeof path, "assignments[%zu].target.collectionId", i);
				errs_add(&e, path, "required for a configurationManagerCollectionAssignmentTarget");
				break;
			}
		}
		target_key(t, kb, sizeof kb);
		for (size_t k = 0; k < nk; k++)
			if (!strcmp(keys[k], kb))
				errs_add(&e, path, "the same target as an earlier assignment");
		keys[nk++] = lab_xstrdup(kb);
		lab_buf_addf(&out, "%s{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationPolicyAssignment\",\"id\":",
			     i ? "," : "");
		char *aid = lab_xasprintf("%s_%s", id, kb);
		lab_buf_json_cstr(&out, aid);
		free(aid);
		lab_buf_adds(&out, ",\"target\":");
		lab_buf_json_val(&out, t);
		lab_buf_addc(&out, '}');
	}
	lab_buf_addc(&out, ']');
	for (size_t k = 0; k < nk; k++)
		free(keys[k]);
	free(keys);
	if (e.n) {
		lab_buf_free(&out);
		errs_reply(&e, r);
		goto done;
	}
	pthread_mutex_lock(&lab->db_lock);
	if (load(lab, id, &s) < 0) {
		pthread_mutex_unlock(&lab->db_lock);
		lab_buf_free(&out);
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no " POLICY_TYPE " with id '%s'.", id);
		goto done;
	}
	yajl_val old = yajl_tree_parse(s.object, NULL, 0), c = jget(old, "settingCount");
	int64_t ms = bump(s.modified_ms);
	char now[40];
	iso_ms(ms, now);
	char *object = build_object(id, NULL, old, jstr(old, "createdDateTime"), now,
				    c && YAJL_IS_INTEGER(c) ? (long)c->u.number.i : 0, a->u.array.len > 0);
	yajl_tree_free(old);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "UPDATE tenant_policy SET object=?, assignments=?, modified_ms=? WHERE id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, object, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, out.p, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ms);
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	free(object);
	if (rc != SQLITE_DONE) {
		lab_buf_free(&out);
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the assignments.");
		goto done;
	}
	atomic_fetch_add(&lab->policies->graph_writes, 1);
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#Collection(microsoft.graph."
		     "deviceManagementConfigurationPolicyAssignment)\",\"value\":%s}", host, out.p);
	lab_buf_free(&out);
	graph_json(r, 200, &b);
done:
	stored_free(&s);
	yajl_tree_free(v);
}

/* Query options a route takes; any other $option is a 400. */
static int only_options(const struct lab_req *q, const char *const *ok, struct lab_reply *r)
{
	for (int i = 0; i < q->nargs; i++) {
		const char *k = q->args[i].k;
		if (k[0] != '$')
			continue;
		bool found = false;
		for (int j = 0; ok[j] && !found; j++)
			found = !strcmp(ok[j], k);
		if (!found) {
			lab_reply_graph_error(r, 400, "BadRequest", "Query option '%s' is not supported by the lab on this route.", k);
			return -1;
		}
	}
	return 0;
}

static void handle_list(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	static const char *const opts[] = {"$top", "$skiptoken", "$select", "$filter", "$expand", NULL};
	char host[256], err[512];
	struct lab_graph_sel sel = {0};
	struct lab_odata_query fq;
	unsigned expand = 0;
	long top = DEFAULT_TOP;
	long long after = 0;
	memset(&fq, 0, sizeof fq);
	lab_graph_host(lab, q, host, sizeof host);
	if (only_options(q, opts, r) < 0)
		return;
	const char *ts = lab_req_arg(q, "$top"), *tok = lab_req_arg(q, "$skiptoken"), *ss = lab_req_arg(q, "$select"),
		   *f = lab_req_arg(q, "$filter"), *ex = lab_req_arg(q, "$expand");
	if (ts) {
		char *e;
		top = strtol(ts, &e, 10);
		if (!*ts || *e || top < 1) {
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid $top value '%s': a positive integer is required.", ts);
			return;
		}
		if (top > MAX_TOP)
			top = MAX_TOP;
	}
	if (tok) {
		char *e;
		after = strtoll(tok, &e, 10);
		if (!*tok || *e || after < 1) {
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid $skiptoken '%s'.", tok);
			return;
		}
	}
	if (lab_odata_parse_filter(lab, filter_props, GRAPH_POLICY_TYPE, "Invalid filter clause: ", f, &fq, err,
				   sizeof err) < 0) {
		lab_odata_query_free(&fq);
		lab_reply_graph_error(r, 400, "BadRequest", "%s", err);
		return;
	}
	if (check_enum_literals(lab, &fq, r) < 0 || (ss && lab_graph_select(lab, POLICY_TYPE, ss, &sel, r) < 0) ||
	    parse_expand(ex, &expand, r) < 0)
		goto done;
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/configurationPolicies\",\"value\":[",
		     host);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT seq, object, settings, assignments FROM tenant_policy WHERE seq > ? ORDER BY seq",
			   -1, &st, NULL);
	sqlite3_bind_int64(st, 1, after);
	long n = 0;
	long long last = 0;
	bool more = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		yajl_val o = yajl_tree_parse(col_text(st, 1), NULL, 0);
		bool match = o && lab_odata_match(&fq, filter_get, NULL, o);
		yajl_tree_free(o);
		if (!match)
			continue;
		if (n == top) {
			more = true;
			break;
		}
		if (n)
			lab_buf_addc(&b, ',');
		emit_policy(&b, col_text(st, 1), col_text(st, 2), col_text(st, 3), &sel, expand);
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_addc(&b, ']');
	if (more) {
		struct lab_buf l = {0};
		lab_buf_addf(&l, "https://%s/beta/deviceManagement/configurationPolicies?$top=%ld", host, top);
		if (f) { lab_buf_adds(&l, "&$filter="); lab_buf_urlenc(&l, f); }
		if (ss) { lab_buf_adds(&l, "&$select="); lab_buf_urlenc(&l, ss); }
		if (ex) { lab_buf_adds(&l, "&$expand="); lab_buf_urlenc(&l, ex); }
		lab_buf_addf(&l, "&$skiptoken=%lld", last);
		lab_buf_adds(&b, ",\"@odata.nextLink\":");
		lab_buf_json_str(&b, l.p, l.len);
		lab_buf_free(&l);
	}
	lab_buf_addc(&b, '}');
	graph_json(r, 200, &b);
done:
	lab_odata_query_free(&fq);
	lab_graph_select_free(&sel);
}

static void handle_get(struct lab *lab, const struct lab_req *q, const char *id, int what, struct lab_reply *r)
{
	static const char *const one_opts[] = {"$select", "$expand", NULL}, *const nav_opts[] = {NULL};
	char host[256];
	struct lab_graph_sel sel = {0};
	unsigned expand = 0;
	struct stored s;
	lab_graph_host(lab, q, host, sizeof host);
	if (only_options(q, what == P_GET ? one_opts : nav_opts, r) < 0)
		return;
	const char *ss = lab_req_arg(q, "$select");
	if ((ss && lab_graph_select(lab, POLICY_TYPE, ss, &sel, r) < 0) || parse_expand(lab_req_arg(q, "$expand"), &expand, r) < 0)
		goto done;
	pthread_mutex_lock(&lab->db_lock);
	int found = load(lab, id, &s);
	pthread_mutex_unlock(&lab->db_lock);
	if (found < 0) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no " POLICY_TYPE " with id '%s'.", id);
		goto done;
	}
	struct lab_buf b = {0}, d = {0};
	if (what == P_GET) {
		emit_policy(&d, s.object, s.settings, s.assignments, &sel, expand);
		lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/configurationPolicies/$entity\",",
			     host);
		lab_buf_add(&b, d.p + 1, d.len - 1);
	} else {
		bool set = what == P_SETTINGS;
		lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/configurationPolicies('%s')/%s\","
			     "\"value\":%s}", host, id, set ? "settings" : "assignments", set ? s.settings : s.assignments);
	}
	lab_buf_free(&d);
	stored_free(&s);
	graph_json(r, 200, &b);
done:
	lab_graph_select_free(&sel);
}

/* ---- PolicyStatusPost ------------------------------------------------------------------------ */

static const char *const policy_states[] = {"applied", "rejected", "conflict", "pending", NULL};
static const char *const device_states[] = {"compliant", "nonCompliant", "error", "conflict", "notApplicable", NULL};
static const char *const count_names[] = {"targeted", "compliant", "nonCompliant", "error", "conflict", "notApplicable"};

static bool in_set(const char *s, const char *const *set)
{
	for (int i = 0; s && set[i]; i++)
		if (!strcmp(set[i], s))
			return true;
	return false;
}

static bool string_array(yajl_val a)
{
	if (!a || !YAJL_IS_ARRAY(a))
		return false;
	for (size_t i = 0; i < a->u.array.len; i++)
		if (!YAJL_IS_STRING(a->u.array.values[i]))
			return false;
	return true;
}

/* The envelope of wire-format §9, checked whole before anything is stored:
 * NULL, or what is wrong and where (whybuf). */
static const char *status_check(yajl_val root, char *whybuf, size_t n)
{
	if (!root || !YAJL_IS_OBJECT(root))
		return "The request body must be a JSON object.";
	for (size_t i = 0; i < root->u.object.len; i++) {
		const char *k = root->u.object.keys[i];
		if (strcmp(k, "batchId") && strcmp(k, "siteCode") && strcmp(k, "policies")) {
			snprintf(whybuf, n, "%s: not a member of the PolicyStatusPost envelope (batchId, siteCode, policies).", k);
			return whybuf;
		}
	}
	yajl_val b = jget(root, "batchId"), s = jget(root, "siteCode"), ps = jget(root, "policies");
	if (!b || !YAJL_IS_STRING(b) || !*b->u.string)
		return "batchId: missing or not a non-empty string.";
	if (!s || !YAJL_IS_STRING(s) || !*s->u.string)
		return "siteCode: missing or not a non-empty string.";
	if (!ps || !YAJL_IS_ARRAY(ps))
		return "policies: missing or not an array.";
	if (ps->u.array.len > MAX_STATUS_POLICIES) {
		snprintf(whybuf, n, "policies: more than %d policies in one batch.", MAX_STATUS_POLICIES);
		return whybuf;
	}
	for (size_t i = 0; i < ps->u.array.len; i++) {
		yajl_val p = ps->u.array.values[i];
		if (!YAJL_IS_OBJECT(p)) {
			snprintf(whybuf, n, "policies[%zu]: not an object.", i);
			return whybuf;
		}
		for (size_t k = 0; k < p->u.object.len; k++) {
			const char *key = p->u.object.keys[k];
			if (strcmp(key, "policyId") && strcmp(key, "state") && strcmp(key, "reasons") && strcmp(key, "collections") &&
			    strcmp(key, "devices")) {
				snprintf(whybuf, n, "policies[%zu].%s: not a member (policyId, state, reasons, collections, devices).", i, key);
				return whybuf;
			}
		}
		const char *pid = jstr(p, "policyId"), *st = jstr(p, "state");
		yajl_val rs = jget(p, "reasons"), cs = jget(p, "collections"), ds = jget(p, "devices");
		if (!pid || !*pid) {
			snprintf(whybuf, n, "policies[%zu].policyId: missing or not a non-empty string.", i);
			return whybuf;
		}
		if (!in_set(st, policy_states)) {
			snprintf(whybuf, n, "policies[%zu].state: missing or not one of applied, rejected, conflict, pending.", i);
			return whybuf;
		}
		if (rs && !string_array(rs)) {
			snprintf(whybuf, n, "policies[%zu].reasons: not an array of strings.", i);
			return whybuf;
		}
		if (cs && !YAJL_IS_ARRAY(cs)) {
			snprintf(whybuf, n, "policies[%zu].collections: not an array.", i);
			return whybuf;
		}
		for (size_t c = 0; cs && c < cs->u.array.len; c++) {
			yajl_val x = cs->u.array.values[c];
			const char *cid = jstr(x, "collectionId");
			if (!YAJL_IS_OBJECT(x) || !cid || !*cid) {
				snprintf(whybuf, n, "policies[%zu].collections[%zu].collectionId: missing or not a non-empty string.", i, c);
				return whybuf;
			}
			for (size_t k = 0; k < x->u.object.len; k++) {
				const char *key = x->u.object.keys[k];
				bool known = !strcmp(key, "collectionId");
				for (int m = 0; m < 6; m++)
					known |= !strcmp(key, count_names[m]);
				if (!known) {
					snprintf(whybuf, n, "policies[%zu].collections[%zu].%s: not a member.", i, c, key);
					return whybuf;
				}
			}
			long long sum = 0, targeted = 0;
			for (int m = 0; m < 6; m++) {
				yajl_val cnt = jget(x, count_names[m]);
				if (!cnt || !YAJL_IS_INTEGER(cnt) || cnt->u.number.i < 0 || cnt->u.number.i > 10000000) {
					snprintf(whybuf, n, "policies[%zu].collections[%zu].%s: missing or not a non-negative integer.", i, c,
						 count_names[m]);
					return whybuf;
				}
				if (m)
					sum += cnt->u.number.i;
				else
					targeted = cnt->u.number.i;
			}
			if (sum > targeted) {
				snprintf(whybuf, n, "policies[%zu].collections[%zu]: the states add up to %lld, more than targeted (%lld).",
					 i, c, sum, targeted);
				return whybuf;
			}
		}
		if (ds && (!YAJL_IS_ARRAY(ds) || ds->u.array.len > MAX_STATUS_DEVICES)) {
			snprintf(whybuf, n, "policies[%zu].devices: not an array of at most %d devices.", i, MAX_STATUS_DEVICES);
			return whybuf;
		}
		for (size_t d = 0; ds && d < ds->u.array.len; d++) {
			yajl_val x = ds->u.array.values[d];
			const char *key = jstr(x, "key"), *dst = jstr(x, "state");
			yajl_val fs = jget(x, "failingSettings");
			if (!YAJL_IS_OBJECT(x) || !key || !*key) {
				snprintf(whybuf, n, "policies[%zu].devices[%zu].key: missing or not a non-empty string.", i, d);
				return whybuf;
			}
			for (size_t k = 0; k < x->u.object.len; k++) {
				const char *m = x->u.object.keys[k];
				if (strcmp(m, "key") && strcmp(m, "state") && strcmp(m, "failingSettings")) {
					snprintf(whybuf, n, "policies[%zu].devices[%zu].%s: not a member (key, state, failingSettings).", i, d, m);
					return whybuf;
				}
			}
			if (!in_set(dst, device_states)) {
				snprintf(whybuf, n, "policies[%zu].devices[%zu].state: missing or not one of compliant, nonCompliant, "
					 "error, conflict, notApplicable.", i, d);
				return whybuf;
			}
			if (fs && !string_array(fs)) {
				snprintf(whybuf, n, "policies[%zu].devices[%zu].failingSettings: not an array of strings.", i, d);
				return whybuf;
			}
		}
	}
	return NULL;
}

static void handle_status_post(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	struct lab_policies *pl = lab->policies;
	atomic_fetch_add(&lab->st.writes, 1);
	atomic_fetch_add(&pl->status_posts, 1);
	yajl_val root = NULL;
	char whybuf[256], *bkey = NULL;
	if (lab_gateway_body(lab, q, &root, r) < 0)
		return;
	const char *why = status_check(root, whybuf, sizeof whybuf);
	if (why) {
		lab_reply_graph_error(r, 400, "BadRequest", "%s", why);
		goto done;
	}
	const char *bid = jstr(root, "batchId");
	bkey = lab_xasprintf("policystatus:%s", bid);
	yajl_val ps = jget(root, "policies");
	pthread_mutex_lock(&lab->db_lock);
	if (lab_gateway_replay(lab, bkey, bid, r)) {
		pthread_mutex_unlock(&lab->db_lock);
		atomic_fetch_add(&pl->status_replayed, 1);
		goto done;
	}
	sqlite3 *db = lab->db;
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	char now[40];
	iso_ms(lab_now_ms(), now);
	struct lab_buf res = {0};
	int ok = 0;
	long long accepted = 0, devices = 0;
	lab_buf_adds(&res, "\"results\":[");
	for (size_t i = 0; i < ps->u.array.len; i++) {
		yajl_val p = ps->u.array.values[i], ds = jget(p, "devices");
		const char *pid = jstr(p, "policyId");
		sqlite3_stmt *st;
		sqlite3_prepare_v2(db, "SELECT 1 FROM tenant_policy WHERE id=?", -1, &st, NULL);
		sqlite3_bind_text(st, 1, pid, -1, SQLITE_STATIC);
		bool known = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
		lab_buf_addf(&res, "%s{\"policyId\":", i ? "," : "");
		lab_buf_json_cstr(&res, pid);
		if (!known) {
			lab_buf_adds(&res, ",\"status\":\"unknown\"}");
			continue;
		}
		struct lab_buf reasons = {0}, colls = {0};
		lab_buf_json_val(&reasons, jget(p, "reasons"));
		if (!jget(p, "reasons"))
			lab_buf_adds(&reasons, "[]");
		lab_buf_json_val(&colls, jget(p, "collections"));
		if (!jget(p, "collections"))
			lab_buf_adds(&colls, "[]");
		/* the reasons and counts replace the last ones; devices are upserted by key
		 * (a connector may spread a policy's devices over several batches) */
		sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO tenant_policy_status(policy_id,state,reasons,collections,updated)"
				   " VALUES(?,?,?,?,?)", -1, &st, NULL);
		sqlite3_bind_text(st, 1, pid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, jstr(p, "state"), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, reasons.p, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, colls.p, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
		ok |= sqlite3_step(st) != SQLITE_DONE;
		sqlite3_finalize(st);
		lab_buf_free(&reasons);
		lab_buf_free(&colls);
		long long nd = 0, unknown = 0;
		sqlite3_stmt *up, *dev;
		sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO tenant_policy_device(policy_id,key,state,failing,updated) VALUES(?,?,?,?,?)",
				   -1, &up, NULL);
		sqlite3_prepare_v2(db, "SELECT 1 FROM tenant_device WHERE key=?", -1, &dev, NULL);
		for (size_t d = 0; ds && d < ds->u.array.len; d++) {
			yajl_val x = ds->u.array.values[d];
			struct lab_buf fs = {0};
			lab_buf_json_val(&fs, jget(x, "failingSettings"));
			if (!jget(x, "failingSettings"))
				lab_buf_adds(&fs, "[]");
			sqlite3_reset(up);
			sqlite3_bind_text(up, 1, pid, -1, SQLITE_STATIC);
			sqlite3_bind_text(up, 2, jstr(x, "key"), -1, SQLITE_STATIC);
			sqlite3_bind_text(up, 3, jstr(x, "state"), -1, SQLITE_STATIC);
			sqlite3_bind_text(up, 4, fs.p, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(up, 5, now, -1, SQLITE_STATIC);
			ok |= sqlite3_step(up) != SQLITE_DONE;
			lab_buf_free(&fs);
			sqlite3_reset(dev);
			sqlite3_bind_text(dev, 1, jstr(x, "key"), -1, SQLITE_STATIC);
			if (sqlite3_step(dev) != SQLITE_ROW)
				unknown++;
			nd++;
		}
		sqlite3_finalize(up);
		sqlite3_finalize(dev);
		lab_buf_addf(&res, ",\"status\":\"accepted\",\"devices\":%lld,\"unknownDevices\":%lld}", nd, unknown);
		accepted++;
		devices += nd;
	}
	lab_buf_addc(&res, ']');
	if (ok == 0 && lab_gateway_remember(lab, bkey, res.p) < 0)
		ok = 1;
	if (ok == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ok = 1;
	if (ok) {
		char dberr[256];
		snprintf(dberr, sizeof dberr, "%s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		pthread_mutex_unlock(&lab->db_lock);
		lab_buf_free(&res);
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the batch: %s", dberr);
		goto done;
	}
	pthread_mutex_unlock(&lab->db_lock);
	atomic_fetch_add(&pl->status_accepted, accepted);
	atomic_fetch_add(&pl->status_devices, devices);
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"batchId\":");
	lab_buf_json_cstr(&b, bid);
	lab_buf_adds(&b, ",\"replayed\":false,");
	lab_buf_add(&b, res.p, res.len);
	lab_buf_addc(&b, '}');
	lab_buf_free(&res);
	lab_reply_json(r, 200, &b);
done:
	free(bkey);
	yajl_tree_free(root);
}

/* ---- Graph: what was posted ---------------------------------------------------------------------- */

/* GET /beta/deviceManagement/configManagerCollections/getPolicySummary(policyId='…'):
 * Graph beta's configManagerPolicySummary, summed over the collections the
 * connector reported; failed = error + conflict, pending = targeted − the
 * rest, enforced 0 (the envelope has no remediated state). */
static void handle_summary(struct lab *lab, const struct lab_req *q, const char *pid, struct lab_reply *r)
{
	char host[256];
	lab_graph_host(lab, q, host, sizeof host);
	long long c[6] = {0};
	pthread_mutex_lock(&lab->db_lock);
	struct stored s;
	int found = load(lab, pid, &s);
	stored_free(&s);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT collections FROM tenant_policy_status WHERE policy_id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, pid, -1, SQLITE_STATIC);
	if (found == 0 && sqlite3_step(st) == SQLITE_ROW) {
		yajl_val a = yajl_tree_parse(col_text(st, 0), NULL, 0);
		for (size_t i = 0; a && YAJL_IS_ARRAY(a) && i < a->u.array.len; i++)
			for (int m = 0; m < 6; m++) {
				yajl_val x = jget(a->u.array.values[i], count_names[m]);
				c[m] += x && YAJL_IS_INTEGER(x) ? x->u.number.i : 0;
			}
		yajl_tree_free(a);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (found < 0) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no " POLICY_TYPE " with id '%s'.", pid);
		return;
	}
	long long pending = c[0] - c[1] - c[2] - c[3] - c[4] - c[5];
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#microsoft.graph.configManagerPolicySummary\","
		     "\"@odata.type\":\"#microsoft.graph.configManagerPolicySummary\",\"targetedDeviceCount\":%lld,"
		     "\"compliantDeviceCount\":%lld,\"nonCompliantDeviceCount\":%lld,\"failedDeviceCount\":%lld,"
		     "\"pendingDeviceCount\":%lld,\"enforcedDeviceCount\":0}",
		     host, c[0], c[1], c[2], c[3] + c[4], pending > 0 ? pending : 0);
	graph_json(r, 200, &b);
}

/* The DeviceStatusesByConfigurationProfile report: its columns as
 * Microsoft's "Intune reports and properties available using Graph API"
 * lists them, and its filterable columns. */
static const char *const report_columns[] = {
	"AssignmentFilterIds", "DeviceName", "IntuneDeviceId", "Manufacturer", "Model", "PolicyId", "PolicyName",
	"PolicyStatus", "PspdpuLastModifiedTimeUtc", "ReportStatus", "TemplateVersion", "UnifiedPolicyPlatformType",
	"UnifiedPolicyType", "UPN", NULL};
enum { RF_POLICY, RF_BASE, RF_STATUS, RF_TYPE };
#define RP(name, col, edm) {name, (enum lab_col)(col), edm, 0, "memdocs reports-export-graph-available-reports.md"}
static const struct lab_odata_prop report_filter[] = {
	RP("PolicyId", RF_POLICY, LAB_EDM_STRING), RP("PolicyBaseTypeName", RF_BASE, LAB_EDM_STRING),
	RP("PolicyStatus", RF_STATUS, LAB_EDM_STRING), RP("PolicyTypeName", RF_TYPE, LAB_EDM_STRING),
	{NULL, 0, 0, 0, NULL}};
#undef RP

/* A device state as the report writes it: PolicyStatus is Graph's
 * complianceStatus number (unknown 0, notApplicable 1, compliant 2,
 * remediated 3, nonCompliant 4, error 5, conflict 6), ReportStatus its word. */
static void report_status(const char *state, const char **code, const char **word)
{
	static const struct { const char *state, *code, *word; } t[] = {
		{"compliant", "2", "Succeeded"}, {"notApplicable", "1", "NotApplicable"}, {"nonCompliant", "4", "NonCompliant"},
		{"error", "5", "Error"}, {"conflict", "6", "Conflict"}};
	*code = "0";
	*word = "Unknown";
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (!strcmp(t[i].state, state)) {
			*code = t[i].code;
			*word = t[i].word;
		}
}

static void csv_field(struct lab_buf *b, const char *s)
{
	lab_buf_addc(b, '"');
	for (; s && *s; s++) {
		if (*s == '"')
			lab_buf_addc(b, '"');
		lab_buf_addc(b, *s);
	}
	lab_buf_addc(b, '"');
}

/* A zip archive holding one stored (uncompressed) file, as the export url
 * serves it. */
static char *zip_one(const char *name, const char *data, size_t n, size_t *outlen)
{
	struct lab_buf z = {0};
	uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)data, (uInt)n);
	size_t nl = strlen(name);
	unsigned char h[46];
#define LE16(p, v) do { (p)[0] = (unsigned char)((v) & 0xff); (p)[1] = (unsigned char)(((v) >> 8) & 0xff); } while (0)
#define LE32(p, v) do { LE16(p, (v) & 0xffff); LE16((p) + 2, ((v) >> 16) & 0xffff); } while (0)
	memset(h, 0, sizeof h);
	LE32(h, 0x04034b50u);
	LE16(h + 4, 20);
	LE16(h + 10, 0);                  /* time */
	LE16(h + 12, (46 << 9) | (1 << 5) | 1); /* 2026-01-01 */
	LE32(h + 14, crc);
	LE32(h + 18, (uint32_t)n);
	LE32(h + 22, (uint32_t)n);
	LE16(h + 26, nl);
	lab_buf_add(&z, h, 30);
	lab_buf_add(&z, name, nl);
	lab_buf_add(&z, data, n);
	size_t cd = z.len;
	memset(h, 0, sizeof h);
	LE32(h, 0x02014b50u);
	LE16(h + 4, 20);
	LE16(h + 6, 20);
	LE16(h + 14, (46 << 9) | (1 << 5) | 1);
	LE32(h + 16, crc);
	LE32(h + 20, (uint32_t)n);
	LE32(h + 24, (uint32_t)n);
	LE16(h + 28, nl);
	lab_buf_add(&z, h, 46);
	lab_buf_add(&z, name, nl);
	size_t cdlen = z.len - cd;
	memset(h, 0, sizeof h);
	LE32(h, 0x06054b50u);
	LE16(h + 8, 1);
	LE16(h + 10, 1);
	LE32(h + 12, (uint32_t)cdlen);
	LE32(h + 16, (uint32_t)cd);
	lab_buf_add(&z, h, 22);
#undef LE16
#undef LE32
	return lab_buf_steal(&z, outlen);
}

/* The report's rows for one policy: the devices the connector posted that
 * the tenant has (their managedDevice ids), in key order. Caller holds
 * db_lock. cols: the selected columns; loc: add PolicyStatus_loc. */
static void report_rows(struct lab *lab, const char *pid, const char *const *cols, int ncols, bool loc, bool replace,
			bool json, struct lab_buf *out)
{
	struct stored s;
	load(lab, pid, &s);
	yajl_val po = yajl_tree_parse(s.object ? s.object : "{}", NULL, 0);
	stored_free(&s);
	const char *pname = jstr(po, "name"), *plat = jstr(po, "platforms");
	const char *tver = jstr(jget(po, "templateReference"), "templateDisplayVersion");
	if (json) {
		lab_buf_adds(out, "{\"Schema\":[");
		for (int i = 0; i < ncols; i++) {
			lab_buf_addf(out, "%s{\"Column\":\"%s\",\"PropertyType\":\"String\"}", i ? "," : "", cols[i]);
			if (loc && !strcmp(cols[i], "PolicyStatus"))
				lab_buf_adds(out, ",{\"Column\":\"PolicyStatus_loc\",\"PropertyType\":\"String\"}");
		}
		lab_buf_adds(out, "],\"Values\":[");
	} else {
		for (int i = 0; i < ncols; i++) {
			if (i)
				lab_buf_addc(out, ',');
			csv_field(out, cols[i]);
			if (loc && !strcmp(cols[i], "PolicyStatus")) {
				lab_buf_addc(out, ',');
				csv_field(out, "PolicyStatus_loc");
			}
		}
		lab_buf_adds(out, "\r\n");
	}
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT d.id, d.managed_device, p.state, p.updated FROM tenant_policy_device p"
			   " JOIN tenant_device d ON d.key = p.key WHERE p.policy_id=? ORDER BY p.key", -1, &st, NULL);
	sqlite3_bind_text(st, 1, pid, -1, SQLITE_STATIC);
	long rows = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		yajl_val md = yajl_tree_parse(col_text(st, 1), NULL, 0);
		const char *code, *word;
		report_status(col_text(st, 2), &code, &word);
		if (json)
			lab_buf_addf(out, "%s[", rows ? "," : "");
		for (int i = 0; i < ncols; i++) {
			const char *c = cols[i], *v = "";
			if (!strcmp(c, "DeviceName")) v = jstr(md, "deviceName");
			else if (!strcmp(c, "IntuneDeviceId")) v = col_text(st, 0);
			else if (!strcmp(c, "Manufacturer")) v = jstr(md, "manufacturer");
			else if (!strcmp(c, "Model")) v = jstr(md, "model");
			else if (!strcmp(c, "PolicyId")) v = pid;
			else if (!strcmp(c, "PolicyName")) v = pname;
			else if (!strcmp(c, "PolicyStatus")) v = replace ? word : code;
			else if (!strcmp(c, "PspdpuLastModifiedTimeUtc")) v = col_text(st, 3);
			else if (!strcmp(c, "ReportStatus")) v = word;
			else if (!strcmp(c, "TemplateVersion")) v = tver;
			else if (!strcmp(c, "UnifiedPolicyPlatformType")) v = plat;
			else if (!strcmp(c, "UnifiedPolicyType")) v = "DeviceManagementConfigurationPolicy";
			else if (!strcmp(c, "UPN")) v = jstr(md, "userPrincipalName");
			if (i)
				lab_buf_addc(out, ',');
			if (json)
				lab_buf_json_cstr(out, v ? v : "");
			else
				csv_field(out, v);
			if (loc && !strcmp(c, "PolicyStatus")) {
				lab_buf_addc(out, ',');
				if (json)
					lab_buf_json_cstr(out, word);
				else
					csv_field(out, word);
			}
		}
		if (json)
			lab_buf_addc(out, ']');
		else
			lab_buf_adds(out, "\r\n");
		yajl_tree_free(md);
		rows++;
	}
	sqlite3_finalize(st);
	if (json)
		lab_buf_addf(out, "],\"TotalRowCount\":%ld}", rows);
	yajl_tree_free(po);
}

static void job_json(struct lab_buf *b, const char *host, const char *request, const char *id, const char *status,
		     const char *url, const char *requested, const char *expires)
{
	yajl_val rq = yajl_tree_parse(request, NULL, 0);
	lab_buf_addf(b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/reports/exportJobs/$entity\","
		     "\"@odata.type\":\"#microsoft.graph.deviceManagementExportJob\",\"id\":\"%s\",\"reportName\":\"" REPORT_NAME "\","
		     "\"filter\":", host, id);
	lab_buf_json_val(b, jget(rq, "filter"));
	lab_buf_adds(b, ",\"select\":");
	if (jget(rq, "select"))
		lab_buf_json_val(b, jget(rq, "select"));
	else
		lab_buf_adds(b, "[]");
	const char *fmt = jstr(rq, "format"), *lt = jstr(rq, "localizationType");
	lab_buf_addf(b, ",\"format\":\"%s\",\"snapshotId\":null,\"localizationType\":\"%s\",\"status\":\"%s\",\"url\":",
		     fmt ? fmt : "csv", lt ? lt : "LocalizedValuesAsAdditionalColumn", status);
	if (url)
		lab_buf_json_cstr(b, url);
	else
		lab_buf_adds(b, "null");
	lab_buf_addf(b, ",\"requestDateTime\":\"%s\",\"expirationDateTime\":\"%s\"}", requested,
		     expires ? expires : "0001-01-01T00:00:00Z");
	yajl_tree_free(rq);
}

/* POST /beta/deviceManagement/reports/exportJobs: the lab serves the one
 * report of per-policy device status for configuration policies. */
static void handle_export_post(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	yajl_val v = NULL;
	char err[512], host[256];
	struct lab_odata_query fq;
	memset(&fq, 0, sizeof fq);
	lab_graph_host(lab, q, host, sizeof host);
	if (lab_gateway_body(lab, q, &v, r) < 0)
		return;
	const char *name = jstr(v, "reportName"), *f = jstr(v, "filter"), *fmt = jstr(v, "format"),
		   *lt = jstr(v, "localizationType"), *pid = NULL;
	yajl_val sel = jget(v, "select");
	if (!v || !YAJL_IS_OBJECT(v)) {
		lab_reply_graph_error(r, 400, "BadRequest", "The request body must be a JSON object (graph.deviceManagementExportJob).");
		goto done;
	}
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		if (strcmp(k, "reportName") && strcmp(k, "filter") && strcmp(k, "select") && strcmp(k, "format") &&
		    strcmp(k, "localizationType") && strcmp(k, "@odata.type")) {
			lab_reply_graph_error(r, 400, "BadRequest", "%s: not a parameter of an export job (reportName, filter, "
					      "select, format, localizationType).", k);
			goto done;
		}
	}
	if (!name || strcmp(name, REPORT_NAME)) {
		lab_reply_graph_error(r, 400, "BadRequest", "reportName: the lab exports only '" REPORT_NAME "' (got '%s').",
				      name ? name : "");
		goto done;
	}
	if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "json")) {
		lab_reply_graph_error(r, 400, "BadRequest", "format: '%s' is not csv or json.", fmt);
		goto done;
	}
	if (lt && strcasecmp(lt, "LocalizedValuesAsAdditionalColumn") && strcasecmp(lt, "ReplaceLocalizableValues")) {
		lab_reply_graph_error(r, 400, "BadRequest", "localizationType: '%s' is not LocalizedValuesAsAdditionalColumn or "
				      "ReplaceLocalizableValues.", lt);
		goto done;
	}
	if (sel && !string_array(sel)) {
		lab_reply_graph_error(r, 400, "BadRequest", "select: not an array of column names.");
		goto done;
	}
	for (size_t i = 0; sel && i < sel->u.array.len; i++) {
		const char *c = sel->u.array.values[i]->u.string;
		bool known = false;
		for (int k = 0; report_columns[k]; k++)
			known |= !strcmp(report_columns[k], c);
		if (!known) {
			lab_reply_graph_error(r, 400, "BadRequest", "select: '%s' is not a column of " REPORT_NAME ".", c);
			goto done;
		}
	}
	if (lab_odata_parse_filter(lab, report_filter, REPORT_NAME, "Invalid filter: ", f, &fq, err, sizeof err) < 0) {
		lab_reply_graph_error(r, 400, "BadRequest", "%s", err);
		goto done;
	}
	for (int i = 0; i < fq.ncond; i++)
		if ((int)fq.cond[i].p->col == RF_POLICY && fq.cond[i].op == LAB_OP_EQ && fq.cond[i].lit.t == LAB_V_STR)
			pid = fq.cond[i].str;
	if (!pid) {
		lab_reply_graph_error(r, 400, "BadRequest", "filter: the lab needs (PolicyId eq '<policy id>') for " REPORT_NAME ".");
		goto done;
	}
	char guid[37], sig[33], now[40];
	unsigned char rnd[16];
	lab_guid(guid);
	lab_random(rnd, sizeof rnd);
	for (int i = 0; i < 16; i++)
		snprintf(sig + 2 * i, 3, "%02x", rnd[i]);
	iso_ms(lab_now_ms(), now);
	char *id = lab_xasprintf(REPORT_NAME "_%s", guid);
	struct lab_buf rq = {0};
	lab_buf_json_val(&rq, v);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "INSERT INTO tenant_export_job(id,request,policy_id,sig,requested) VALUES(?,?,?,?,?)",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rq.p, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, sig, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (rc != SQLITE_DONE) {
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the export job.");
	} else {
		struct lab_buf b = {0};
		job_json(&b, host, rq.p, id, "notStarted", NULL, now, NULL);
		graph_json(r, 201, &b);
	}
	lab_buf_free(&rq);
	free(id);
done:
	lab_odata_query_free(&fq);
	yajl_tree_free(v);
}

/* GET .../exportJobs('{id}'): the first read after the request completes
 * the job (a snapshot of the posted states, zipped) and gives its url. */
static void handle_export_get(struct lab *lab, const struct lab_req *q, const char *id, struct lab_reply *r)
{
	char host[256];
	lab_graph_host(lab, q, host, sizeof host);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT request, policy_id, sig, requested, completed, expires FROM tenant_export_job WHERE id=?",
			   -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		pthread_mutex_unlock(&lab->db_lock);
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no deviceManagementExportJob with id '%s'.", id);
		return;
	}
	char *request = lab_xstrdup(col_text(st, 0)), *pid = lab_xstrdup(col_text(st, 1)), *sig = lab_xstrdup(col_text(st, 2)),
	     *requested = lab_xstrdup(col_text(st, 3)), *expires = NULL;
	bool done = sqlite3_column_type(st, 4) != SQLITE_NULL;
	if (done)
		expires = lab_xstrdup(col_text(st, 5));
	sqlite3_finalize(st);
	if (!done) {
		yajl_val rq = yajl_tree_parse(request, NULL, 0), sel = jget(rq, "select");
		const char *fmt = jstr(rq, "format"), *lt = jstr(rq, "localizationType");
		bool json = fmt && !strcmp(fmt, "json"), replace = lt && !strcasecmp(lt, "ReplaceLocalizableValues");
		const char *cols[32];
		int ncols = 0;
		for (size_t i = 0; sel && YAJL_IS_ARRAY(sel) && i < sel->u.array.len && ncols < 32; i++)
			cols[ncols++] = sel->u.array.values[i]->u.string;
		if (!ncols)      /* no select: every column, in the documented order */
			for (ncols = 0; report_columns[ncols]; ncols++)
				cols[ncols] = report_columns[ncols];
		struct lab_buf data = {0};
		report_rows(lab, pid, cols, ncols, !replace, replace, json, &data);
		char *fname = lab_xasprintf("%s.%s", id, json ? "json" : "csv");
		size_t zl;
		char *zip = zip_one(fname, data.p ? data.p : "", data.len, &zl);
		int64_t ms = lab_now_ms();
		char now[40], exp[40];
		iso_ms(ms, now);
		iso_ms(ms + (int64_t)EXPORT_TTL_S * 1000, exp);
		expires = lab_xstrdup(exp);
		sqlite3_prepare_v2(lab->db, "UPDATE tenant_export_job SET completed=?, expires=?, name=?, data=? WHERE id=?", -1, &st, NULL);
		sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, exp, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, fname, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, zip, (int)zl, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
		free(zip);
		free(fname);
		lab_buf_free(&data);
		yajl_tree_free(rq);
	}
	pthread_mutex_unlock(&lab->db_lock);
	char *url = lab_xasprintf("https://%s/reportexports/%s.zip?sv=2019-02-02&sr=b&sp=r&sig=%s", host, id, sig);
	struct lab_buf b = {0};
	job_json(&b, host, request, id, "completed", url, requested, expires);
	graph_json(r, 200, &b);
	free(url);
	free(request);
	free(pid);
	free(sig);
	free(requested);
	free(expires);
}

/* GET /reportexports/{id}.zip?…&sig=…: the archive, as a storage URL with a
 * shared access signature serves it (no bearer token; the signature is the
 * credential, and the job's expiry ends it). */
static void handle_download(struct lab *lab, const struct lab_req *q, const char *name, struct lab_reply *r)
{
	const char *sig = lab_req_arg(q, "sig");
	size_t nl = strlen(name);
	if (nl < 5 || strcmp(name + nl - 4, ".zip")) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "The specified blob does not exist.");
		return;
	}
	char *id = lab_xstrndup(name, nl - 4);
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT sig, expires, data FROM tenant_export_job WHERE id=? AND data IS NOT NULL", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "The specified blob does not exist.");
	} else if (!sig || strcmp(sig, col_text(st, 0)) || parse_iso(col_text(st, 1)) < lab_now_ms() / 1000) {
		lab_reply_graph_error(r, 403, "AuthenticationFailed", "Server failed to authenticate the request: the signature "
				      "is missing, wrong or expired.");
	} else {
		int n = sqlite3_column_bytes(st, 2);
		free(r->body);
		r->body = lab_xmalloc((size_t)n + 1);
		memcpy(r->body, sqlite3_column_blob(st, 2), (size_t)n);
		r->len = (size_t)n;
		r->status = 200;
		r->ctype = "application/zip";
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	free(id);
}

/* ---- tenant routing ----------------------------------------------------------------------------- */

/* "{id}" or "('{id}')" at p (key segment forms Graph takes); the id is
 * malloc'd, *rest is what follows it. */
static char *key_segment(const char *p, const char **rest)
{
	if (p[0] == '(' && p[1] == '\'') {
		const char *e = strstr(p + 2, "')");
		if (!e)
			return NULL;
		*rest = e + 2;
		return lab_xstrndup(p + 2, (size_t)(e - p - 2));
	}
	if (*p != '/' || !p[1])
		return NULL;
	const char *e = strchr(p + 1, '/');
	*rest = e ? e : p + strlen(p);
	return lab_xstrndup(p + 1, (size_t)(*rest - p - 1));
}

int lab_policies_tenant(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *p = q->path, *m = q->method;
	if (!lab->policies)
		return 0;
	static const char cp[] = "/beta/deviceManagement/configurationPolicies";
	static const char sp[] = "/beta/deviceManagement/configManagerCollections/getPolicySummary(policyId='";
	static const char ep[] = "/beta/deviceManagement/reports/exportJobs";
	int route = -1;
	const char *want = "GET";
	char *id = NULL;
	if (!strcmp(p, "/api/gateway/PolicyStatusPost")) {
		route = P_STATUS_POST;
		want = "POST";
	} else if (!strncmp(p, "/reportexports/", 15) && p[15] && !strchr(p + 15, '/')) {
		route = P_EXPORT_DOWNLOAD;
		id = lab_xstrdup(p + 15);
	} else if (!strncmp(p, sp, sizeof sp - 1)) {
		size_t n = strlen(p);
		if (n < sizeof sp + 1 || strcmp(p + n - 2, "')"))
			return 0;
		route = P_SUMMARY;
		id = lab_xstrndup(p + sizeof sp - 1, n - (sizeof sp - 1) - 2);
	} else if (!strncmp(p, ep, sizeof ep - 1)) {
		const char *rest = NULL;
		if (!p[sizeof ep - 1]) {
			route = P_EXPORT_POST;
			want = "POST";
		} else if ((id = key_segment(p + sizeof ep - 1, &rest)) && !*rest) {
			route = P_EXPORT_GET;
		} else {
			free(id);
			return 0;
		}
	} else if (!strncmp(p, cp, sizeof cp - 1)) {
		const char *t = p + sizeof cp - 1, *rest = NULL;
		if (!*t) {
			route = !strcmp(m, "POST") ? P_CREATE : P_LIST;
			want = route == P_CREATE ? "POST" : "GET";
		} else if ((id = key_segment(t, &rest))) {
			if (!*rest) {
				route = !strcmp(m, "PATCH") ? P_PATCH : !strcmp(m, "DELETE") ? P_DELETE : P_GET;
				want = route == P_PATCH ? "PATCH" : route == P_DELETE ? "DELETE" : "GET";
			} else if (!strcmp(rest, "/settings")) {
				route = P_SETTINGS;
			} else if (!strcmp(rest, "/assignments")) {
				route = P_ASSIGNMENTS;
			} else if (!strcmp(rest, "/assign") || !strcmp(rest, "/microsoft.graph.assign")) {
				route = P_ASSIGN;
				want = "POST";
			}
		}
		if (route < 0) {
			free(id);
			return 0;
		}
	} else {
		return 0;
	}
	atomic_fetch_add(&lab->routes[R_POL_FIRST + route], 1);
	echo_request_id(q, r);
	if (strcmp(m, want)) {
		lab_reply_graph_error(r, 405, "MethodNotAllowed", "Use %s for this route.",
				      route == P_GET ? "GET, PATCH or DELETE" : route == P_LIST ? "GET or POST" : want);
		goto done;
	}
	if (route != P_EXPORT_DOWNLOAD && lab_tenant_bearer(lab, q, r) != 0)
		goto done;
	switch (route) {
	case P_CREATE: handle_create(lab, q, r); break;
	case P_LIST: handle_list(lab, q, r); break;
	case P_GET: case P_SETTINGS: case P_ASSIGNMENTS: handle_get(lab, q, id, route, r); break;
	case P_PATCH: handle_patch(lab, q, id, r); break;
	case P_DELETE: handle_delete(lab, id, r); break;
	case P_ASSIGN: handle_assign(lab, q, id, r); break;
	case P_STATUS_POST: handle_status_post(lab, q, r); break;
	case P_SUMMARY: handle_summary(lab, q, id, r); break;
	case P_EXPORT_POST: handle_export_post(lab, q, r); break;
	case P_EXPORT_GET: handle_export_get(lab, q, id, r); break;
	case P_EXPORT_DOWNLOAD: handle_download(lab, q, id, r); break;
	default: break;
	}
done:
	free(id);
	return 1;
}

/* ---- stats ---------------------------------------------------------------------------------------- */

void lab_policies_stats(struct lab *lab, struct lab_buf *b)
{
	struct lab_policies *pl = lab->policies;
	long long n = 0, posted = 0;
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	if (pl && sqlite3_prepare_v2(lab->db, "SELECT (SELECT count(*) FROM tenant_policy), (SELECT count(*) FROM tenant_policy_device)",
				     -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			n = sqlite3_column_int64(st, 0);
			posted = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_addf(b, "\"policies\":{\"tenantPolicies\":%lld,\"graphWrites\":%lld,\"statusPosts\":%lld,\"statusReplayed\":%lld,"
		     "\"statusPoliciesAccepted\":%lld,\"statusDevicesReceived\":%lld,\"statusDevicesStored\":%lld",
		     n, pl ? (long long)pl->graph_writes : 0, pl ? (long long)pl->status_posts : 0,
		     pl ? (long long)pl->status_replayed : 0, pl ? (long long)pl->status_accepted : 0,
		     pl ? (long long)pl->status_devices : 0, posted);
	lab_policystore_stats(lab, b);     /* the site's counters */
	lab_buf_adds(b, "},");
}

/* ---- CLI -------------------------------------------------------------------------------------------- */

static int cli_usage(void)
{
	fprintf(stderr, LAB_NAME ": usage: policy DIR create FILE.json\n"
		"       policy DIR update ID FILE.json\n"
		"       policy DIR assign ID [COLLECTION...]\n"
		"       policy DIR delete ID\n"
		"       policy DIR list [--json]\n");
	return 2;
}

static bool id_ok(const char *s)
{
	size_t n = strlen(s);
	return n && n < 100 && !strpbrk(s, "/?#'\"\\ %");
}

int lab_policies_cmd(int argc, char **argv)
{
	if (argc < 3)
		return cli_usage();
	const char *dir = argv[1], *verb = argv[2];
	bool json = false;
	int nargs = argc - 3;
	char **args = argv + 3;
	if (!strcmp(verb, "list")) {
		if (nargs > 1 || (nargs == 1 && strcmp(args[0], "--json")))
			return cli_usage();
		json = nargs == 1;
	} else if (!strcmp(verb, "create")) {
		if (nargs != 1)
			return cli_usage();
	} else if (!strcmp(verb, "update")) {
		if (nargs != 2 || !id_ok(args[0]))
			return cli_usage();
	} else if (!strcmp(verb, "delete")) {
		if (nargs != 1 || !id_ok(args[0]))
			return cli_usage();
	} else if (!strcmp(verb, "assign")) {
		if (nargs < 1 || !id_ok(args[0]))
			return cli_usage();
		for (int i = 1; i < nargs; i++)
			if (!id_ok(args[i])) {
				fprintf(stderr, LAB_NAME ": policy assign: '%s' is not a collection id\n", args[i]);
				return 2;
			}
	} else {
		fprintf(stderr, LAB_NAME ": policy: unknown verb '%s' (create, update, assign, delete, list)\n", verb);
		return 2;
	}
	char *file = NULL;
	const char *fname = !strcmp(verb, "create") ? args[0] : !strcmp(verb, "update") ? args[1] : NULL;
	if (fname && !(file = lab_read_file(fname, NULL))) {
		fprintf(stderr, LAB_NAME ": policy %s: %s: %s\n", verb, fname, strerror(errno));
		return 1;
	}
	struct lab_conf c;
	if (lab_conf_load(&c, dir) < 0) {
		free(file);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = 1;
	struct lab_buf out = {0}, body = {0};
	char *route = NULL;
	char *auth = lab_cli_admin_auth(&c, "policy");
	if (!auth)
		goto done;
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	long st;
	if (!strcmp(verb, "list")) {
		struct lab_buf all = {0};
		char *next = lab_xstrdup("/beta/deviceManagement/configurationPolicies?$expand=assignments&$top=100");
		int pages = 0;
		lab_buf_adds(&all, "{\"value\":[");
		bool first = true;
		rc = 0;
		while (next && rc == 0) {
			lab_buf_free(&out);
			st = lab_cli_call(&c, NULL, next, h, NULL, &out);
			free(next);
			next = NULL;
			yajl_val v = st == 200 ? yajl_tree_parse(out.p ? out.p : "", NULL, 0) : NULL;
			yajl_val arr = jget(v, "value");
			if (!arr || !YAJL_IS_ARRAY(arr)) {
				if (st >= 0)
					fprintf(stderr, LAB_NAME ": policy list %s: %ld %s\n", c.dir, st, lab_cli_err_message(out.p));
				rc = 1;
				yajl_tree_free(v);
				break;
			}
			for (size_t i = 0; i < arr->u.array.len; i++) {
				yajl_val pv = arr->u.array.values[i];
				if (json) {
					if (!first)
						lab_buf_addc(&all, ',');
					lab_buf_json_val(&all, pv);
				} else {
					yajl_val as = jget(pv, "assignments"), cnt = jget(pv, "settingCount");
					const char *fam = jstr(jget(pv, "templateReference"), "templateFamily");
					const char *tech = jstr(pv, "technologies"), *mod = jstr(pv, "lastModifiedDateTime");
					printf("%s %s %s %s %s ", jstr(pv, "id") ? jstr(pv, "id") : "-", tech ? tech : "-", fam ? fam : "-",
					       cnt && YAJL_IS_NUMBER(cnt) ? cnt->u.number.r : "0", mod ? mod : "-");
					int na = 0;
					for (size_t k = 0; as && YAJL_IS_ARRAY(as) && k < as->u.array.len; k++) {
						const char *col = jstr(jget(as->u.array.values[k], "target"), "collectionId");
						if (col)
							printf("%s%s", na++ ? "," : "", col);
					}
					printf("%s %s\n", na ? "" : "-", jstr(pv, "name") ? jstr(pv, "name") : "");
				}
				first = false;
			}
			const char *nl = jstr(v, "@odata.nextLink");
			const char *path = nl ? strstr(nl, "/beta/") : NULL;
			if (path && ++pages < 10000)
				next = lab_xstrdup(path);
			yajl_tree_free(v);
		}
		lab_buf_adds(&all, "]}");
		if (rc == 0 && json)
			printf("%s\n", all.p);
		lab_buf_free(&all);
		goto done;
	}
	const char *method = NULL;
	int ok_status = 200;
	if (!strcmp(verb, "create")) {
		route = lab_xstrdup("/beta/deviceManagement/configurationPolicies");
		lab_buf_adds(&body, file);
		ok_status = 201;
	} else if (!strcmp(verb, "update")) {
		route = lab_xasprintf("/beta/deviceManagement/configurationPolicies/%s", args[0]);
		lab_buf_adds(&body, file);
		method = "PATCH";
	} else if (!strcmp(verb, "delete")) {
		route = lab_xasprintf("/beta/deviceManagement/configurationPolicies/%s", args[0]);
		method = "DELETE";
		ok_status = 204;
	} else {
		route = lab_xasprintf("/beta/deviceManagement/configurationPolicies/%s/assign", args[0]);
		lab_buf_adds(&body, "{\"assignments\":[");
		for (int i = 1; i < nargs; i++)
			lab_buf_addf(&body, "%s{\"target\":{\"@odata.type\":\"#microsoft.graph.configurationManagerCollectionAssignmentTarget\","
				     "\"collectionId\":\"%s\"}}", i > 1 ? "," : "", args[i]);
		lab_buf_adds(&body, "]}");
	}
	st = lab_cli_call(&c, method, route, h, body.p, &out);
	if (st == ok_status) {
		yajl_val v = yajl_tree_parse(out.p ? out.p : "", NULL, 0);
		if (!strcmp(verb, "create") || !strcmp(verb, "update"))
			printf("%s\n", jstr(v, "id") ? jstr(v, "id") : "");
		yajl_tree_free(v);
		rc = 0;
	} else if (st >= 0) {
		fprintf(stderr, LAB_NAME ": policy %s %s: %ld %s\n", verb, c.dir, st, lab_cli_err_message(out.p));
	}
done:
	free(route);
	free(auth);
	free(file);
	lab_buf_free(&out);
	lab_buf_free(&body);
	curl_global_cleanup();
	lab_conf_free(&c);
	return rc;
}
