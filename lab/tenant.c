/*
 * tenant.c - the cloud tenant stand-in (docs/wire-format.md §2-4): Entra ID
 * v2 token endpoint (client credentials), the connector gateway upload
 * (POST /api/gateway/DevicePost) and the Graph admin surface
 * (GET /beta/deviceManagement/managedDevices), plus the lab's own admin
 * routes /_lab/stats and /_lab/mutate. Tenant data lives in lab.db.
 */
#include "lab.h"
#include "auth.h"
#include "actions.h"
#include "policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>

#define GRAPH_AUD "https://graph.microsoft.com"
#define MAX_BODY (64u * 1024 * 1024)
#define MAX_BATCH 1000

void lab_reply_graph_error(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char date[32], rid[37];
	lab_iso8601(lab_tenant_time(), date);
	lab_guid(rid);
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"error\":{\"code\":");
	lab_buf_json_cstr(&b, code);
	lab_buf_adds(&b, ",\"message\":");
	lab_buf_json_cstr(&b, msg);
	lab_buf_addf(&b, ",\"innerError\":{\"date\":\"%s\",\"request-id\":\"%s\"}}}", date, rid);
	lab_reply_json(r, status, &b);
}

/* ---- token endpoint --------------------------------------------------- */

struct form {
	char *k[32], *v[32];
	int n;
};

static void form_parse(struct form *f, const char *body, size_t len)
{
	char *s = lab_xstrndup(body, len), *save = NULL;
	for (char *t = strtok_r(s, "&", &save); t && f->n < 32; t = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(t, '=');
		if (eq)
			*eq = 0;
		f->k[f->n] = lab_xstrdup(t);
		f->v[f->n] = lab_xstrdup(eq ? eq + 1 : "");
		lab_urldecode(f->k[f->n]);
		lab_urldecode(f->v[f->n]);
		f->n++;
	}
	free(s);
}

static const char *form_get(const struct form *f, const char *k)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->k[i], k))
			return f->v[i];
	return NULL;
}

static void form_free(struct form *f)
{
	for (int i = 0; i < f->n; i++) {
		free(f->k[i]);
		free(f->v[i]);
	}
}

static void token_error(struct lab *lab, const struct lab_req *q, struct lab_reply *r, int status,
			const char *err, int code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void token_error(struct lab *lab, const struct lab_req *q, struct lab_reply *r, int status,
			const char *err, int code, const char *fmt, ...)
{
	char msg[768], trace[37], corr[37], ts[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lab_guid(trace);
	const char *cr = q->header(q->hctx, "client-request-id");
	if (cr && strlen(cr) == 36 && !strpbrk(cr, "\"\\"))
		snprintf(corr, sizeof corr, "%s", cr);
	else
		lab_guid(corr);
	time_t now = (time_t)lab_tenant_time();
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%SZ", &tm);
	struct lab_buf b = {0}, d = {0};
	lab_buf_addf(&d, "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code, msg, trace, corr, ts);
	lab_buf_adds(&b, "{\"error\":");
	lab_buf_json_cstr(&b, err);
	lab_buf_adds(&b, ",\"error_description\":");
	lab_buf_json_str(&b, d.p, d.len);
	lab_buf_addf(&b, ",\"error_codes\":[%d],\"timestamp\":\"%s\",\"trace_id\":\"%s\",\"correlation_id\":\"%s\","
		     "\"error_uri\":\"https://login.microsoftonline.com/error?code=%d\"}",
		     code, ts, trace, corr, code);
	lab_buf_free(&d);
	lab_reply_json(r, status, &b);
	lab_reply_hdr(r, "Cache-Control", "no-store, no-cache");
	atomic_fetch_add(&lab->st.token_errors, 1);
}

static void derived_guid(const char *a, const char *b, char out[37])
{
	unsigned char md[32];
	unsigned int n;
	char *s = lab_xasprintf("%s|%s", a, b);
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	free(s);
	md[6] = (md[6] & 0x0f) | 0x50;
	md[8] = (md[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
		 md[12], md[13], md[14], md[15]);
}

/*
 * "\"roles\":[\"A\",\"B\"]," from [tenant] roles (conf.c refuses quotes):
 * Entra leaves the claim out when the app holds no application role.
 */
static char *roles_json(const char *list)
{
	if (!*list)
		return lab_xstrdup("");
	struct lab_buf b = {0};
	lab_buf_adds(&b, "\"roles\":[\"");
	for (const char *p = list; *p; p++) {
		if (*p == ',')
			lab_buf_adds(&b, "\",\"");
		else
			lab_buf_addf(&b, "%c", *p);
	}
	lab_buf_adds(&b, "\"],");
	char *out = lab_xstrdup(b.p);
	lab_buf_free(&b);
	return out;
}

static void handle_token(struct lab *lab, const struct lab_req *q, const char *tenant, struct lab_reply *r)
{
	struct lab_conf *c = &lab->conf;
	struct form f = {0};
	const char *ct = q->header(q->hctx, "Content-Type");
	if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33))
		form_parse(&f, q->body, q->body_len);
	const char *gt = form_get(&f, "grant_type"), *cid = form_get(&f, "client_id"),
		   *sec = form_get(&f, "client_secret"), *scope = form_get(&f, "scope");
	size_t sl = scope ? strlen(scope) : 0;
	struct lab_auth_err ae;
	char tok_url[512];           /* an assertion's aud: this endpoint as requested */
	snprintf(tok_url, sizeof tok_url, "https://%s%s", q->host && *q->host ? q->host : "127.0.0.1", q->path);
	if (strcmp(tenant, c->tenant_id)) {
		token_error(lab, q, r, 400, "invalid_tenant", 90002,
			    "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
			    tenant);
	} else if (!gt || !*gt) {
		token_error(lab, q, r, 400, "invalid_request", 900144,
			    "The request body must contain the following parameter: 'grant_type'.");
	} else if (strcmp(gt, "client_credentials")) {
		token_error(lab, q, r, 400, "unsupported_grant_type", 70003,
			    "The app requested an unsupported grant type '%s'.", gt);
	} else if (!cid || !*cid) {
		token_error(lab, q, r, 400, "invalid_request", 900144,
			    "The request body must contain the following parameter: 'client_id'.");
	} else if (strcmp(cid, c->client_id)) {
		token_error(lab, q, r, 400, "unauthorized_client", 700016,
			    "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			    cid, c->tenant_id);
	} else if (!scope || !*scope) {
		token_error(lab, q, r, 400, "invalid_request", 900144,
			    "The request body must contain the following parameter: 'scope'.");
	} else if (sl < 9 || strcmp(scope + sl - 9, "/.default")) {
		token_error(lab, q, r, 400, "invalid_scope", 1002012,
			    "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
			    scope);
	} else if (strcmp(scope, GRAPH_AUD "/.default") && strcmp(scope, "00000003-0000-0000-c000-000000000000/.default") &&
		   strcmp(scope, GRAPH_AUD "//.default") && !lab_auth_site_scope(lab, scope)) {
		token_error(lab, q, r, 400, "invalid_resource", 500011,
			    "The resource principal named %.*s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
			    (int)(sl - 9), scope, c->tenant_id);
	} else if (lab_auth_client(lab, cid, sec, form_get(&f, "client_assertion_type"), form_get(&f, "client_assertion"),
				   tok_url, &ae) < 0) {
		/* secret or certificate credential (auth_assertion.c) */
		token_error(lab, q, r, ae.status, ae.error, ae.code, "%s", ae.msg);
	} else {
		int64_t now = lab_tenant_time();
		char oid[37], uti[37];
		derived_guid(c->tenant_id, c->client_id, oid);
		lab_guid(uti);
		char *roles = roles_json(c->token_roles);
		char *claims = lab_xasprintf(
			"{\"aud\":\"%s\",\"iss\":\"https://sts.windows.net/%s/\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
			"\"app_displayname\":\"cmbridge\",\"appid\":\"%s\",\"appidacr\":\"1\",\"idp\":\"https://sts.windows.net/%s/\","
			"\"idtyp\":\"app\",\"oid\":\"%s\",%s\"sub\":\"%s\",\"tid\":\"%s\",\"uti\":\"%s\",\"ver\":\"1.0\"}",
			lab_auth_site_scope(lab, scope) ? c->bearer_audience : GRAPH_AUD, c->tenant_id, (long long)now,
			(long long)now - 300, (long long)(now + c->token_lifetime),
			c->client_id, c->tenant_id, oid, roles, oid, c->tenant_id, uti);
		free(roles);
		char *tok = lab_jwt_sign(lab->jwt_key, lab->jwt_kid, claims);
		free(claims);
		if (!tok) {
			token_error(lab, q, r, 500, "server_error", 50000, "The lab could not sign the token.");
		} else {
			struct lab_buf b = {0};
			lab_buf_addf(&b, "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,\"access_token\":\"%s\"}",
				     c->token_lifetime, c->token_lifetime, tok);
			free(tok);
			lab_reply_json(r, 200, &b);
			lab_reply_hdr(r, "Cache-Control", "no-store, no-cache");
			lab_reply_hdr(r, "Pragma", "no-cache");
			atomic_fetch_add(&lab->st.tokens_issued, 1);
		}
	}
	form_free(&f);
}

/* 1 when the token's roles claim holds one of any_of (NULL-terminated). */
static int has_role(yajl_val claims, const char *const *any_of)
{
	const char *pr[] = {"roles", NULL};
	yajl_val roles = yajl_tree_get(claims, pr, yajl_t_array);
	for (size_t i = 0; roles && i < roles->u.array.len; i++)
		for (const char *const *w = any_of; *w; w++)
			if (YAJL_IS_STRING(roles->u.array.values[i]) && !strcmp(roles->u.array.values[i]->u.string, *w))
				return 1;
	return 0;
}

/*
 * A valid token without the application role the route needs: 403, worded
 * as Intune's Graph endpoints word it ("Application is not authorized to
 * perform this operation. Application must have one of the following
 * scopes: ..."; docs/lab.md).
 */
static void forbidden(struct lab_reply *r, const struct lab_req *q, const char *const *any_of)
{
	struct lab_buf b = {0};
	for (const char *const *w = any_of; *w; w++)
		lab_buf_addf(&b, "%s%s", w == any_of ? "" : ", ", *w);
	char aid[37];
	lab_guid(aid);
	lab_reply_graph_error(r, 403, "Forbidden",
			      "{\"_version\": 3, \"Message\": \"Application is not authorized to perform this operation. "
			      "Application must have one of the following scopes: %s - Operation ID (for customer support): "
			      "00000000-0000-0000-0000-000000000000 - Activity ID: %s - Url: %.200s\"}", b.p, aid, q->path);
	lab_buf_free(&b);
}

static int check_bearer_roles(struct lab *lab, const struct lab_req *q, struct lab_reply *r, const char *const *any_of);

/* 0 when the request carries a valid token of this lab; else fills r. */
static int check_bearer(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	return check_bearer_roles(lab, q, r, NULL);
}

/* check_bearer, and (any_of not NULL) the token holds one of those roles: else 403. */
static int check_bearer_roles(struct lab *lab, const struct lab_req *q, struct lab_reply *r, const char *const *any_of)
{
	const char *a = q->header(q->hctx, "Authorization");
	const char *why = NULL;
	yajl_val claims = NULL;
	if (!a || !*a) {
		why = "Access token is empty.";
	} else if (strncasecmp(a, "Bearer ", 7)) {
		why = "Access token validation failure: the Authorization header is not a Bearer token.";
	} else {
		const char *t = a + 7;
		while (*t == ' ')
			t++;
		if (lab_jwt_verify(lab->jwt_key, t, &claims, &why) == 0) {
			const char *pa[] = {"aud", NULL}, *pe[] = {"exp", NULL}, *pn[] = {"nbf", NULL},
				   *pt[] = {"tid", NULL};
			yajl_val aud = yajl_tree_get(claims, pa, yajl_t_string);
			yajl_val exp = yajl_tree_get(claims, pe, yajl_t_number);
			yajl_val nbf = yajl_tree_get(claims, pn, yajl_t_number);
			yajl_val tid = yajl_tree_get(claims, pt, yajl_t_string);
			long long now = (long long)lab_tenant_time();
			if (!aud || (strcmp(aud->u.string, GRAPH_AUD) && strcmp(aud->u.string, GRAPH_AUD "/") &&
				     strcmp(aud->u.string, "00000003-0000-0000-c000-000000000000")))
				why = "Invalid audience.";
			else if (!exp || !YAJL_IS_INTEGER(exp) || exp->u.number.i <= now)
				why = "Lifetime validation failed, the token is expired.";
			else if (nbf && YAJL_IS_INTEGER(nbf) && nbf->u.number.i > now + 300)
				why = "Lifetime validation failed, the token is not yet valid.";
			else if (!tid || strcmp(tid->u.string, lab->conf.tenant_id))
				why = "Access token validation failure: the token is for another tenant.";
			else
				why = NULL;
		}
	}
	int allowed = !why && (!any_of || has_role(claims, any_of));
	yajl_tree_free(claims);
	if (allowed)
		return 0;
	atomic_fetch_add(&lab->st.auth_failures, 1);
	if (!why) {
		forbidden(r, q, any_of);
		return -1;
	}
	lab_reply_graph_error(r, 401, "InvalidAuthenticationToken", "%s", why);
	char *h = lab_xasprintf("Bearer realm=\"\", authorization_uri=\"https://127.0.0.1:%d/%s/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
				lab->conf.tenant_port, lab->conf.tenant_id);
	lab_reply_hdr(r, "WWW-Authenticate", h);
	free(h);
	return -1;
}

/* ---- gateway upload --------------------------------------------------- */

static int gunzip(const char *in, size_t n, char **out, size_t *outlen, size_t *bad_at)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -1;
	size_t cap = n * 4 + 1024, len = 0;
	if (cap > MAX_BODY + 1)
		cap = MAX_BODY + 1;
	char *buf = lab_xmalloc(cap + 1);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	int rc;
	for (;;) {
		if (len == cap) {
			if (cap > MAX_BODY) {
				inflateEnd(&z);
				free(buf);
				return -2;     /* too large */
			}
			cap = cap * 2 > MAX_BODY + 1 ? MAX_BODY + 1 : cap * 2;
			buf = lab_xrealloc(buf, cap + 1);
		}
		z.next_out = (Bytef *)buf + len;
		z.avail_out = (uInt)(cap - len);
		rc = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		if (rc == Z_STREAM_END)
			break;
		if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) {
			*bad_at = n - z.avail_in;
			inflateEnd(&z);
			free(buf);
			return -1;
		}
		if (z.avail_in == 0 && z.avail_out != 0) {
			*bad_at = n;       /* truncated */
			inflateEnd(&z);
			free(buf);
			return -1;
		}
	}
	inflateEnd(&z);
	if (len > MAX_BODY) {
		free(buf);
		return -2;
	}
	buf[len] = 0;
	*out = buf;
	*outlen = len;
	return 0;
}

static yajl_val obj_get(yajl_val o, const char *k)
{
	if (!o || !YAJL_IS_OBJECT(o))
		return NULL;
	for (size_t i = 0; i < o->u.object.len; i++)
		if (!strcmp(o->u.object.keys[i], k))
			return o->u.object.values[i];
	return NULL;
}

struct errs {
	struct lab_buf msg;
	int n;
	const char *prefix;          /* NULL: managedDevice */
};

static void collect_err(void *ctx, const char *path, const char *msg)
{
	struct errs *e = ctx;
	if (e->n < 5) {
		if (e->n)
			lab_buf_adds(&e->msg, "; ");
		lab_buf_addf(&e->msg, "%s%s%s: %s", e->prefix ? e->prefix : "managedDevice", *path ? "." : "", path, msg);
	}
	e->n++;
}

/* What an upload route or a Graph entity set carries. */
struct kind {
	const char *route;           /* DevicePost, CollectionPost */
	const char *array;           /* devices, collections */
	const char *type;            /* managedDevice, configManagerCollection */
	const char *set;             /* Graph entity set */
	const char *batch_prefix;    /* batch ids of each route are kept apart */
	bool device;
};
static const struct kind k_device = {"DevicePost", "devices", "managedDevice", "managedDevices", "", true};
static const struct kind k_coll = {"CollectionPost", "collections", "configManagerCollection",
				   "configManagerCollections", "collections:", false};

static int db_exec(sqlite3 *db, const char *sql, int n, const char *const *v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	for (int i = 0; i < n; i++)
		sqlite3_bind_text(st, i + 1, v[i], -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* The body of a gateway POST, decompressed (Content-Encoding gzip or
 * identity, at most 64 MiB) and parsed; JSON errors name the byte offset
 * in the decompressed body. 0 with *root set (caller frees), or -1 with r
 * holding the 400/413. One place for every gateway upload route. */
int lab_gateway_body(struct lab *lab, const struct lab_req *q, yajl_val *root, struct lab_reply *r)
{
	(void)lab;
	const char *ce = q->header(q->hctx, "Content-Encoding");
	char *plain = NULL;
	size_t plen = 0, bad_at = 0;
	*root = NULL;
	if (ce && !strcasecmp(ce, "gzip")) {
		int rc = gunzip(q->body, q->body_len, &plain, &plen, &bad_at);
		if (rc == -2) {
			lab_reply_graph_error(r, 413, "RequestEntityTooLarge",
					      "The decompressed request body is larger than 64 MiB.");
			return -1;
		}
		if (rc < 0) {
			lab_reply_graph_error(r, 400, "BadRequest",
					      "Content-Encoding gzip: the body is not valid gzip data (error at compressed byte offset %zu).",
					      bad_at);
			return -1;
		}
	} else if (!ce || !*ce || !strcasecmp(ce, "identity")) {
		if (q->body_len > MAX_BODY) {
			lab_reply_graph_error(r, 413, "RequestEntityTooLarge", "The request body is larger than 64 MiB.");
			return -1;
		}
		plain = lab_xstrndup(q->body, q->body_len);
		plen = q->body_len;
	} else {
		lab_reply_graph_error(r, 400, "BadRequest", "Content-Encoding '%s' is not supported (gzip or identity).", ce);
		return -1;
	}
	/* First pass for the exact error position, then the tree. */
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	yajl_status ys = yajl_parse(h, (const unsigned char *)plain, plen);
	size_t at = yajl_get_bytes_consumed(h);
	if (ys == yajl_status_ok) {
		ys = yajl_complete_parse(h);
		at = plen;     /* the document ended early */
	}
	if (ys != yajl_status_ok) {
		unsigned char *m = yajl_get_error(h, 0, (const unsigned char *)plain, plen);
		char *nl = strchr((char *)m, '\n');
		if (nl)
			*nl = 0;
		lab_reply_graph_error(r, 400, "BadRequest", "Malformed JSON in the request body at byte offset %zu: %s", at,
				      (char *)m);
		yajl_free_error(h, m);
		yajl_free(h);
		free(plain);
		return -1;
	}
	yajl_free(h);
	char perr[256];
	*root = yajl_tree_parse(plain, perr, sizeof perr);
	free(plain);
	return 0;
}

/* The gateway's batch memory (tenant_batch): every upload route keeps its
 * batch ids apart by a prefix of bkey. Caller holds db_lock. A known batch:
 * 1 with r holding {"batchId":bid,"replayed":true,<stored members>}. */
int lab_gateway_replay(struct lab *lab, const char *bkey, const char *bid, struct lab_reply *r)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	sqlite3_prepare_v2(lab->db, "SELECT reply FROM tenant_batch WHERE batch_id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, bkey, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		struct lab_buf b = {0};
		lab_buf_adds(&b, "{\"batchId\":");
		lab_buf_json_cstr(&b, bid);
		lab_buf_adds(&b, ",\"replayed\":true,");
		lab_buf_adds(&b, (const char *)sqlite3_column_text(st, 0));
		lab_buf_addc(&b, '}');
		atomic_fetch_add(&lab->st.batches_replayed, 1);
		lab_reply_json(r, 200, &b);
		found = 1;
	}
	sqlite3_finalize(st);
	return found;
}

/* Remembers a batch's reply members, inside the caller's transaction (so a
 * batch and its stored reply commit together). 0 or -1. */
int lab_gateway_remember(struct lab *lab, const char *bkey, const char *members)
{
	const char *const bv[] = {bkey, members};
	return db_exec(lab->db, "INSERT INTO tenant_batch(batch_id, reply) VALUES(?,?)", 2, bv);
}

/* Why an upload body is refused whole (NULL: it is well-formed); whybuf holds built reasons. */
static const char *upload_refusal(yajl_val root, const struct kind *kd, char *whybuf, size_t n)
{
	yajl_val batch = obj_get(root, "batchId"), devs = obj_get(root, kd->array), rems = obj_get(root, "removals"),
		 site = obj_get(root, "siteCode");
	if (!root || !YAJL_IS_OBJECT(root))
		return "The request body must be a JSON object.";
	if (!batch || !YAJL_IS_STRING(batch) || !*batch->u.string)
		return "batchId: missing or not a non-empty string.";
	if (site && !YAJL_IS_STRING(site))
		return "siteCode: not a string.";
	if (devs && !YAJL_IS_ARRAY(devs)) {
		snprintf(whybuf, n, "%s: not an array.", kd->array);
		return whybuf;
	}
	if (rems && !YAJL_IS_ARRAY(rems))
		return "removals: not an array.";
	if (devs && devs->u.array.len > MAX_BATCH) {
		snprintf(whybuf, n, "%s: more than 1000 records in one batch.", kd->array);
		return whybuf;
	}
	if (rems && rems->u.array.len > MAX_BATCH)
		return "removals: more than 1000 keys in one batch.";
	for (size_t i = 0; devs && i < devs->u.array.len; i++) {
		yajl_val d = devs->u.array.values[i], k = obj_get(d, "key");
		if (!YAJL_IS_OBJECT(d) || !k || !YAJL_IS_STRING(k) || !*k->u.string) {
			snprintf(whybuf, n, "%s[%zu]: not an object with a non-empty string 'key'.", kd->array, i);
			return whybuf;
		}
	}
	for (size_t i = 0; rems && i < rems->u.array.len; i++)
		if (!YAJL_IS_STRING(rems->u.array.values[i]) || !*rems->u.array.values[i]->u.string) {
			snprintf(whybuf, n, "removals[%zu]: not a non-empty string.", i);
			return whybuf;
		}
	return NULL;
}

/* One batch's outcome, as it is built. */
struct upload {
	struct lab_buf res;              /* the reply's "results":[...],"removals":[...] members */
	long long created, updated, rejected, removed;
	int ok;                          /* -1: a database error; the batch is rolled back */
};

/* Validates one record against the schema; 1 (and its rejection in u->res) when it is refused. */
static int upload_reject(struct lab *lab, const struct kind *kd, yajl_val d, struct upload *u)
{
	yajl_val md = obj_get(d, kd->type), cm = kd->device ? obj_get(d, "configurationManager") : NULL;
	struct errs e = {.prefix = kd->type};
	if (!md || !YAJL_IS_OBJECT(md)) {
		collect_err(&e, "", "missing or not an object");
	} else {
		if (obj_get(md, "id"))
			collect_err(&e, "id", "assigned by the tenant; an upload must not send it");
		lab_schema_validate(lab->schema, kd->type, md, collect_err, &e);
	}
	if (cm && !YAJL_IS_OBJECT(cm) && !YAJL_IS_NULL(cm)) {
		if (e.n)
			lab_buf_adds(&e.msg, "; ");
		lab_buf_adds(&e.msg, "configurationManager: not an object");
		e.n++;
	}
	if (!e.n)
		return 0;
	if (e.n > 5)
		lab_buf_addf(&e.msg, " (and %d more)", e.n - 5);
	lab_buf_adds(&u->res, ",\"status\":\"rejected\",\"error\":{\"code\":\"InvalidProperty\",\"message\":");
	lab_buf_json_str(&u->res, e.msg.p, e.msg.len);
	lab_buf_adds(&u->res, "}}");
	lab_buf_free(&e.msg);
	u->rejected++;
	return 1;
}

/* Stores one valid record (created or updated, by key) and adds its result. */
static void upload_store(struct lab *lab, const struct kind *kd, const char *key, yajl_val d, struct upload *u)
{
	sqlite3 *db = lab->db;
	sqlite3_stmt *st = NULL;
	yajl_val md = obj_get(d, kd->type), cm = kd->device ? obj_get(d, "configurationManager") : NULL;
	struct lab_buf mdt = {0}, cmt = {0};
	lab_buf_json_val(&mdt, md);
	if (cm && YAJL_IS_OBJECT(cm))
		lab_buf_json_val(&cmt, cm);
	yajl_val agent = obj_get(md, "managementAgent");
	const char *ag = agent && YAJL_IS_STRING(agent) ? agent->u.string : NULL;
	char id[37] = "";
	sqlite3_prepare_v2(db, kd->device ? "SELECT id FROM tenant_device WHERE key=?"
					  : "SELECT id FROM tenant_collection WHERE key=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	bool is_new = !id[0];
	if (is_new) {
		char *salted = kd->device ? NULL : lab_xasprintf("collection|%s", key);
		derived_guid(lab->conf.tenant_id, salted ? salted : key, id);
		free(salted);
	}
	char now[32];
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	const char *const pv[] = {id, ag, mdt.p, cmt.p, now, key};
	const char *const cv[] = {id, mdt.p, now, key};
	if (kd->device ? db_exec(db, is_new ? "INSERT INTO tenant_device(id,agent,managed_device,configuration_manager,updated,key) VALUES(?,?,?,?,?,?)"
					    : "UPDATE tenant_device SET id=?,agent=?,managed_device=?,configuration_manager=?,updated=? WHERE key=?",
				 6, pv) < 0
		       : db_exec(db, is_new ? "INSERT INTO tenant_collection(id,object,updated,key) VALUES(?,?,?,?)"
					    : "UPDATE tenant_collection SET id=?,object=?,updated=? WHERE key=?",
				 4, cv) < 0)
		u->ok = -1;
	lab_buf_free(&mdt);
	lab_buf_free(&cmt);
	lab_buf_addf(&u->res, ",\"status\":\"%s\",\"id\":\"%s\"}", is_new ? "created" : "updated", id);
	if (is_new)
		u->created++;
	else
		u->updated++;
}

/* Removes one key (removed, or notFound when the tenant did not have it) and adds its result. */
static void upload_remove(struct lab *lab, const struct kind *kd, const char *key, int first, struct upload *u)
{
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(lab->db, kd->device ? "DELETE FROM tenant_device WHERE key=?"
					       : "DELETE FROM tenant_collection WHERE key=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		u->ok = -1;
	bool gone = sqlite3_changes(lab->db) > 0;
	sqlite3_finalize(st);
	if (!first)
		lab_buf_addc(&u->res, ',');
	lab_buf_adds(&u->res, "{\"key\":");
	lab_buf_json_cstr(&u->res, key);
	lab_buf_addf(&u->res, ",\"status\":\"%s\"}", gone ? "removed" : "notFound");
	if (gone)
		u->removed++;
}

/* Applies a well-formed batch in one transaction with its stored reply; 0, or -1 with a 500 in r. */
static int upload_apply(struct lab *lab, const struct kind *kd, yajl_val devs, yajl_val rems, const char *bid,
			const char *bkey, struct upload *u, struct lab_reply *r)
{
	sqlite3 *db = lab->db;
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	lab_buf_adds(&u->res, "\"results\":[");
	size_t nd = devs ? devs->u.array.len : 0, nr = rems ? rems->u.array.len : 0;
	for (size_t i = 0; i < nd; i++) {
		yajl_val d = devs->u.array.values[i];
		const char *key = obj_get(d, "key")->u.string;
		if (i)
			lab_buf_addc(&u->res, ',');
		lab_buf_adds(&u->res, "{\"key\":");
		lab_buf_json_cstr(&u->res, key);
		if (!upload_reject(lab, kd, d, u))
			upload_store(lab, kd, key, d, u);
	}
	lab_buf_adds(&u->res, "],\"removals\":[");
	for (size_t i = 0; i < nr; i++)
		upload_remove(lab, kd, rems->u.array.values[i]->u.string, i == 0, u);
	lab_buf_addc(&u->res, ']');
	if (u->ok == 0 && lab_gateway_remember(lab, bkey, u->res.p) < 0)
		u->ok = -1;
	if (u->ok == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		u->ok = -1;
	if (u->ok == 0)
		return 0;
	char dberr[256];
	snprintf(dberr, sizeof dberr, "%s", sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	lab_log("upload %s: database error: %s", bid, dberr);
	lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the batch: %s", dberr);
	return -1;
}

static void upload_count(struct lab *lab, const struct kind *kd, size_t nd, size_t nr, const struct upload *u)
{
	if (kd->device) {
		atomic_fetch_add(&lab->st.records_received, (long long)nd);
		atomic_fetch_add(&lab->st.records_created, u->created);
		atomic_fetch_add(&lab->st.records_updated, u->updated);
		atomic_fetch_add(&lab->st.records_rejected, u->rejected);
		atomic_fetch_add(&lab->st.removals_received, (long long)nr);
		atomic_fetch_add(&lab->st.removals_applied, u->removed);
	} else {
		atomic_fetch_add(&lab->st.collection_records_received, (long long)nd);
	}
}

static void handle_upload(struct lab *lab, const struct lab_req *q, const struct kind *kd, struct lab_reply *r)
{
	atomic_fetch_add(&lab->st.writes, 1);
	atomic_fetch_add(kd->device ? &lab->st.tenant_upload_requests : &lab->st.collection_upload_requests, 1);
	yajl_val root = NULL;
	if (lab_gateway_body(lab, q, &root, r) < 0)
		return;
	char whybuf[256];
	const char *why = upload_refusal(root, kd, whybuf, sizeof whybuf);
	if (why) {
		lab_reply_graph_error(r, 400, "BadRequest", "%s", why);
		yajl_tree_free(root);
		return;
	}
	yajl_val devs = obj_get(root, kd->array), rems = obj_get(root, "removals");
	const char *bid = obj_get(root, "batchId")->u.string;
	char *bkey = lab_xasprintf("%s%s", kd->batch_prefix, bid);
	struct upload u = {.ok = 0};
	pthread_mutex_lock(&lab->db_lock);
	int replayed = lab_gateway_replay(lab, bkey, bid, r);
	int rc = replayed ? 0 : upload_apply(lab, kd, devs, rems, bid, bkey, &u, r);
	pthread_mutex_unlock(&lab->db_lock);
	if (!replayed && rc == 0) {
		upload_count(lab, kd, devs ? devs->u.array.len : 0, rems ? rems->u.array.len : 0, &u);
		struct lab_buf b = {0};
		lab_buf_adds(&b, "{\"batchId\":");
		lab_buf_json_cstr(&b, bid);
		lab_buf_adds(&b, ",\"replayed\":false,");
		lab_buf_add(&b, u.res.p, u.res.len);
		lab_buf_addc(&b, '}');
		lab_reply_json(r, 200, &b);
	}
	lab_buf_free(&u.res);
	free(bkey);
	yajl_tree_free(root);
}

/* ---- Graph admin surface ---------------------------------------------- */

static void host_of(const struct lab *lab, const struct lab_req *q, char *out, size_t n)
{
	if (q->host && *q->host && !strpbrk(q->host, "/\"\\ "))
		snprintf(out, n, "%s", q->host);
	else
		snprintf(out, n, "127.0.0.1:%d", lab->conf.tenant_port);
}

void lab_graph_host(const struct lab *lab, const struct lab_req *q, char *out, size_t n)
{
	host_of(lab, q, out, n);
}

/* $select of a Graph entity set: each name is checked through the schema
 * (an object with just that property), as Graph's binder does. */
int lab_graph_select(struct lab *lab, const char *type, const char *s, struct lab_graph_sel *sel,
		     struct lab_reply *r)
{
	char *dup = lab_xstrdup(s), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		char *e = t + strlen(t);
		while (e > t && e[-1] == ' ')
			*--e = 0;
		/* validate the name through the schema: an object with just it */
		if (strcmp(t, "id")) {
			char *probe = lab_xasprintf("{\"%s\":null}", t);
			yajl_val pv = strpbrk(t, "\"\\") ? NULL : yajl_tree_parse(probe, NULL, 0);
			struct errs er = {0};
			int bad = !pv ? 1 : 0;
			if (pv) {
				lab_schema_validate(lab->schema, type, pv, collect_err, &er);
				bad = er.n && strstr(er.msg.p, "not a property");
			}
			lab_buf_free(&er.msg);
			yajl_tree_free(pv);
			free(probe);
			if (bad) {
				lab_reply_graph_error(r, 400, "BadRequest",
						      "Could not find a property named '%s' on type 'microsoft.graph.%s'.", t, type);
				rc = -1;
				break;
			}
		}
		if (sel->n < LAB_GRAPH_MAXSEL)
			sel->names[sel->n++] = lab_xstrdup(t);
	}
	free(dup);
	return rc;
}

void lab_graph_select_free(struct lab_graph_sel *sel)
{
	for (int i = 0; i < sel->n; i++)
		free(sel->names[i]);
	sel->n = 0;
}

static void emit_device(struct lab_buf *b, const char *id, const char *md, const struct lab_graph_sel *sel)
{
	if (!sel->n) {
		lab_buf_adds(b, "{\"id\":");
		lab_buf_json_cstr(b, id);
		const char *p = md + 1;
		while (*p == ' ')
			p++;
		if (*p != '}')
			lab_buf_addc(b, ',');
		lab_buf_adds(b, p);
		return;
	}
	yajl_val v = yajl_tree_parse(md, NULL, 0);
	lab_buf_adds(b, "{\"id\":");
	lab_buf_json_cstr(b, id);
	for (int i = 0; i < sel->n; i++) {
		if (!strcmp(sel->names[i], "id"))
			continue;
		lab_buf_addc(b, ',');
		lab_buf_json_cstr(b, sel->names[i]);
		lab_buf_addc(b, ':');
		lab_buf_json_val(b, obj_get(v, sel->names[i]));
	}
	lab_buf_addc(b, '}');
	yajl_tree_free(v);
}

static char *hex_enc(const char *s)
{
	struct lab_buf b = {0};
	for (; *s; s++)
		lab_buf_addf(&b, "%02x", (unsigned char)*s);
	return lab_buf_steal(&b, NULL);
}

static char *hex_dec(const char *s)
{
	size_t n = strlen(s);
	if (n % 2)
		return NULL;
	char *o = lab_xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1])) {
			free(o);
			return NULL;
		}
		o[i] = (char)v;
	}
	o[n / 2] = 0;
	return o;
}

/* A listing's query, as Graph reads it; the lab supports only what the connector and tests send. */
struct list_query {
	long top;
	const char *filter, *select;
	char *agent;                     /* managementAgent eq '<agent>' */
	char *after;                     /* the $skiptoken's key */
	bool count;
	struct lab_graph_sel sel;
};

static void list_query_free(struct list_query *lq)
{
	lab_graph_select_free(&lq->sel);
	free(lq->after);
	free(lq->agent);
}

/* 0, or -1 with the 400 in r. */
static int list_query_parse(struct lab *lab, const struct lab_req *q, const struct kind *kd, struct list_query *lq,
			    struct lab_reply *r)
{
	for (int i = 0; i < q->nargs; i++) {
		const char *k = q->args[i].k;
		if (k[0] == '$' && strcmp(k, "$top") && strcmp(k, "$skiptoken") && strcmp(k, "$filter") &&
		    strcmp(k, "$count") && strcmp(k, "$select")) {
			lab_reply_graph_error(r, 400, "BadRequest", "Query option '%s' is not supported by the lab.", k);
			return -1;
		}
	}
	lq->top = 1000;
	const char *ts = lab_req_arg(q, "$top");
	if (ts) {
		char *e;
		lq->top = strtol(ts, &e, 10);
		if (!*ts || *e || lq->top < 1) {
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid $top value '%s': a positive integer is required.", ts);
			return -1;
		}
		if (lq->top > 1000)
			lq->top = 1000;
	}
	const char *f = lq->filter = lab_req_arg(q, "$filter");
	if (f && !kd->device) {
		lab_reply_graph_error(r, 400, "BadRequest", "Invalid filter clause: the lab supports no $filter on %s.", kd->set);
		return -1;
	}
	if (f) {
		const char *pre = "managementAgent eq '";
		size_t fl = strlen(f), pl = strlen(pre);
		if (strncmp(f, pre, pl) || fl < pl + 1 || f[fl - 1] != '\'' || memchr(f + pl, '\'', fl - pl - 1)) {
			lab_reply_graph_error(r, 400, "BadRequest",
					      "Invalid filter clause: the lab supports only managementAgent eq '<member>' (got '%s').", f);
			return -1;
		}
		lq->agent = lab_xstrndup(f + pl, fl - pl - 1);
	}
	const char *cs = lab_req_arg(q, "$count");
	lq->count = cs && !strcmp(cs, "true");
	if (cs && !lq->count && strcmp(cs, "false")) {
		lab_reply_graph_error(r, 400, "BadRequest", "Invalid $count value '%s': true or false.", cs);
		return -1;
	}
	const char *tok = lab_req_arg(q, "$skiptoken");
	if (tok && !(lq->after = hex_dec(tok))) {
		lab_reply_graph_error(r, 400, "BadRequest", "Invalid $skiptoken '%s'.", tok);
		return -1;
	}
	lq->select = lab_req_arg(q, "$select");
	return lq->select ? lab_graph_select(lab, kd->type, lq->select, &lq->sel, r) : 0;
}

/* The page's rows after lq->after, in key order; *last: the last key written, *more: rows remain. */
static void list_rows(struct lab *lab, const struct kind *kd, const struct list_query *lq, struct lab_buf *b,
		      char **last, bool *more)
{
	sqlite3_stmt *st;
	if (lq->count) {
		sqlite3_prepare_v2(lab->db, kd->device ? "SELECT count(*) FROM tenant_device WHERE (?1 IS NULL OR agent=?1)"
						       : "SELECT count(*) FROM tenant_collection WHERE ?1 IS NULL", -1, &st, NULL);
		sqlite3_bind_text(st, 1, lq->agent, -1, SQLITE_STATIC);
		sqlite3_step(st);
		lab_buf_addf(b, ",\"@odata.count\":%lld", (long long)sqlite3_column_int64(st, 0));
		sqlite3_finalize(st);
	}
	lab_buf_adds(b, ",\"value\":[");
	sqlite3_prepare_v2(lab->db, kd->device ? "SELECT key, id, managed_device FROM tenant_device WHERE (?1 IS NULL OR agent=?1)"
						 " AND (?2 IS NULL OR key > ?2) ORDER BY key LIMIT ?3"
					       : "SELECT key, id, object FROM tenant_collection WHERE ?1 IS NULL"
						 " AND (?2 IS NULL OR key > ?2) ORDER BY key LIMIT ?3", -1, &st, NULL);
	sqlite3_bind_text(st, 1, lq->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, lq->after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, lq->top + 1);
	long n = 0;
	*more = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == lq->top) {
			*more = true;
			break;
		}
		if (n)
			lab_buf_addc(b, ',');
		emit_device(b, (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2), &lq->sel);
		free(*last);
		*last = lab_xstrdup((const char *)sqlite3_column_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	lab_buf_addc(b, ']');
}

static void handle_list(struct lab *lab, const struct lab_req *q, const struct kind *kd, struct lab_reply *r)
{
	char host[256];
	host_of(lab, q, host, sizeof host);
	struct list_query lq = {0};
	if (list_query_parse(lab, q, kd, &lq, r) < 0) {
		list_query_free(&lq);
		return;
	}
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/%s\"", host, kd->set);
	char *last = NULL;
	bool more;
	pthread_mutex_lock(&lab->db_lock);
	list_rows(lab, kd, &lq, &b, &last, &more);
	pthread_mutex_unlock(&lab->db_lock);
	if (more) {
		struct lab_buf l = {0};
		lab_buf_addf(&l, "https://%s/beta/deviceManagement/%s?$top=%ld", host, kd->set, lq.top);
		if (lq.filter) { lab_buf_adds(&l, "&$filter="); lab_buf_urlenc(&l, lq.filter); }
		if (lq.count) lab_buf_adds(&l, "&$count=true");
		if (lq.select) { lab_buf_adds(&l, "&$select="); lab_buf_urlenc(&l, lq.select); }
		char *hx = hex_enc(last);
		lab_buf_addf(&l, "&$skiptoken=%s", hx);
		free(hx);
		lab_buf_adds(&b, ",\"@odata.nextLink\":");
		lab_buf_json_str(&b, l.p, l.len);
		lab_buf_free(&l);
	}
	lab_buf_addc(&b, '}');
	free(last);
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
	list_query_free(&lq);
}

static void handle_one(struct lab *lab, const struct lab_req *q, const struct kind *kd, const char *id,
		       struct lab_reply *r)
{
	char host[256];
	host_of(lab, q, host, sizeof host);
	struct lab_graph_sel sel = {0};
	const char *ss = lab_req_arg(q, "$select");
	if (ss && lab_graph_select(lab, kd->type, ss, &sel, r) < 0)
		goto done;
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, kd->device ? "SELECT managed_device FROM tenant_device WHERE id=?"
					       : "SELECT object FROM tenant_collection WHERE id=?", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		struct lab_buf b = {0}, d = {0};
		emit_device(&d, id, (const char *)sqlite3_column_text(st, 0), &sel);
		if (kd->device)
			lab_actions_decorate(lab, id, &d, sel.names, sel.n);     /* deviceActionResults */
		lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/beta/$metadata#deviceManagement/%s/$entity\",", host, kd->set);
		lab_buf_add(&b, d.p + 1, d.len - 1);
		lab_buf_free(&d);
		lab_reply_json(r, 200, &b);
		r->ctype = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
	} else {
		lab_reply_graph_error(r, 404, "ResourceNotFound",
				      "Resource not found: no %s with id '%s'.", kd->type, id);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
done:
	for (int i = 0; i < sel.n; i++)
		free(sel.names[i]);
}

/* ---- admin ------------------------------------------------------------ */

static long long count_rows(struct lab *lab, const char *sql)
{
	long long n = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(lab->db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	return n;
}

static void handle_stats(struct lab *lab, struct lab_reply *r)
{
	struct lab_stats *s = &lab->st;
	pthread_mutex_lock(&lab->db_lock);
	long long tdev = count_rows(lab, "SELECT count(*) FROM tenant_device");
	long long tcoll = count_rows(lab, "SELECT count(*) FROM tenant_collection");
	pthread_mutex_unlock(&lab->db_lock);
	pthread_rwlock_rdlock(&lab->inv_lock);
	size_t sdev = lab->inv.n;
	pthread_rwlock_unlock(&lab->inv_lock);
	pthread_mutex_lock(&lab->faults.lock);
	long rps[2] = {lab->faults.max_rps[0], lab->faults.max_rps[1]};
	pthread_mutex_unlock(&lab->faults.lock);
	struct lab_buf b = {0};
	lab_buf_addf(&b,
		     "{\"tenant\":{\"devices\":%lld,\"uploadRequests\":%lld,\"recordsReceived\":%lld,\"recordsCreated\":%lld,"
		     "\"recordsUpdated\":%lld,\"recordsRejected\":%lld,\"removalsReceived\":%lld,\"removalsApplied\":%lld,"
		     "\"batchesReplayed\":%lld,\"tokensIssued\":%lld,\"tokenErrors\":%lld,\"authFailures\":%lld,"
		     "\"bytesReceived\":%lld,\"writes\":%lld,\"collections\":%lld,\"collectionUploadRequests\":%lld,"
		     "\"collectionRecordsReceived\":%lld,\"requests\":%lld,\"maxRequestsPerSecond\":%ld,"
		     "\"assertionsAccepted\":%lld,\"assertionsRejected\":%lld},"
		     "\"site\":{\"devices\":%zu,\"pageRequests\":%lld,\"bytesSent\":%lld,\"requests\":%lld,"
		     "\"maxRequestsPerSecond\":%ld",
		     tdev, (long long)s->tenant_upload_requests, (long long)s->records_received,
		     (long long)s->records_created, (long long)s->records_updated, (long long)s->records_rejected,
		     (long long)s->removals_received, (long long)s->removals_applied, (long long)s->batches_replayed,
		     (long long)s->tokens_issued, (long long)s->token_errors, (long long)s->auth_failures,
		     (long long)s->bytes_received, (long long)s->writes, tcoll, (long long)s->collection_upload_requests,
		     (long long)s->collection_records_received, (long long)s->requests[LAB_TENANT], rps[LAB_TENANT],
		     (long long)s->assertions_accepted, (long long)s->assertions_rejected,
		     sdev, (long long)s->site_page_requests, (long long)s->site_bytes_sent,
		     (long long)s->requests[LAB_SITE], rps[LAB_SITE]);
	lab_actions_stats(lab, &b);     /* site operation counters and "actions" (actions.c) */
	lab_policies_stats(lab, &b);    /* "policies" (policies.c, policystore.c) */
	lab_buf_addf(&b,
		     "\"faults\":{\"injected500\":%lld,\"injected503\":%lld,\"injected429\":%lld,\"resets\":%lld,\"truncated\":%lld,"
		     "\"repliesLost\":%lld,\"retryAfterViolations\":%lld},\"routes\":{",
		     (long long)s->injected500, (long long)s->injected503, (long long)s->injected429, (long long)s->resets, (long long)s->truncated,
		     (long long)s->replies_lost, (long long)s->retry_after_violations);
	for (int i = 0; i < R_COUNT; i++)
		lab_buf_addf(&b, "%s\"%s\":%lld", i ? "," : "", lab_route_names[i], (long long)lab->routes[i]);
	lab_buf_adds(&b, "}}");
	lab_reply_json(r, 200, &b);
}

static void handle_mutate(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	char *body = lab_xstrndup(q->body, q->body_len);
	yajl_val v = yajl_tree_parse(body, NULL, 0);
	free(body);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		lab_reply_graph_error(r, 400, "BadRequest", "the body must be a JSON object {\"change\":N,\"add\":N,\"delete\":N,"
				      "\"checkin\":N,\"health\":N,\"unjoin\":N,\"duplicate\":N}");
		return;
	}
	struct lab_mutation m = {0};
	static const char *const names[] = {"change", "add", "delete", "checkin", "health", "unjoin", "duplicate"};
	int *dst[] = {&m.change, &m.add, &m.del, &m.checkin, &m.health, &m.unjoin, &m.duplicate};
	for (size_t k = 0; k < v->u.object.len; k++) {
		size_t i = 0;
		while (i < 7 && strcmp(names[i], v->u.object.keys[k]))
			i++;
		yajl_val x = v->u.object.values[k];
		if (i == 7 || !YAJL_IS_INTEGER(x) || x->u.number.i < 0 || x->u.number.i > 1000000) {
			lab_reply_graph_error(r, 400, "BadRequest", "%s: %s", v->u.object.keys[k],
					      i == 7 ? "unknown option" : "not an integer between 0 and 1000000");
			yajl_tree_free(v);
			return;
		}
		*dst[i] = (int)x->u.number.i;
	}
	yajl_tree_free(v);
	char err[256];
	struct lab_buf b = {0};
	if (lab_site_mutate(lab, &m, &b, err, sizeof err) < 0) {
		lab_buf_free(&b);
		lab_reply_graph_error(r, 409, "Conflict", "%s", err);
		return;
	}
	lab_reply_json(r, 200, &b);
}

static void handle_faults(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	struct lab_buf b = {0};
	if (!strcmp(q->method, "GET")) {
		lab_faults_json(lab, &b);
		lab_reply_json(r, 200, &b);
		return;
	}
	char *body = lab_xstrndup(q->body, q->body_len);
	yajl_val v = yajl_tree_parse(body, NULL, 0);
	free(body);
	char err[256];
	if (!v || !YAJL_IS_OBJECT(v)) {
		lab_reply_graph_error(r, 400, "BadRequest", "the body must be a JSON object (see docs/lab.md, faults)");
	} else if (lab_faults_set(lab, v, &b, err, sizeof err) < 0) {
		lab_buf_free(&b);
		lab_reply_graph_error(r, 400, "BadRequest", "%s", err);
	} else {
		lab_reply_json(r, 200, &b);
	}
	yajl_tree_free(v);
}

int lab_tenant_handle(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *p = q->path;
	const char *cr = q->header(q->hctx, "client-request-id");
	atomic_fetch_add(&lab->st.bytes_received, (long long)q->body_len);
	if (lab_actions_tenant(lab, q, r))     /* remote actions, notifications, /_lab/actions */
		return 0;
	if (lab_policies_tenant(lab, q, r))    /* configurationPolicies, PolicyStatusPost, reports */
		return 0;
	if (!strncmp(p, "/_lab/", 6)) {
		const char *k = q->header(q->hctx, "X-Lab-Key");
		bool stats = !strcmp(p, "/_lab/stats"), mut = !strcmp(p, "/_lab/mutate"), flt = !strcmp(p, "/_lab/faults");
		if (stats || mut || flt)
			atomic_fetch_add(&lab->routes[stats ? R_LAB_STATS : mut ? R_LAB_MUTATE : R_LAB_FAULTS], 1);
		if (!k || strcmp(k, lab->lab_key)) {
			lab_reply_graph_error(r, 401, "Unauthorized", "X-Lab-Key missing or wrong (see DIR/lab.key).");
		} else if (stats && !strcmp(q->method, "GET")) {
			handle_stats(lab, r);
		} else if (mut && !strcmp(q->method, "POST")) {
			handle_mutate(lab, q, r);
		} else if (flt && (!strcmp(q->method, "POST") || !strcmp(q->method, "GET"))) {
			handle_faults(lab, q, r);
		} else {
			lab_reply_graph_error(r, 404, "NotFound", "No lab admin route %s %s.", q->method, p);
		}
		return 0;
	}
	/* /{tenant}/oauth2/v2.0/token */
	const char *suffix = "/oauth2/v2.0/token";
	size_t pl = strlen(p), sl = strlen(suffix);
	if (pl > sl + 1 && !strcmp(p + pl - sl, suffix) && !memchr(p + 1, '/', pl - sl - 1)) {
		atomic_fetch_add(&lab->routes[R_TOKEN], 1);
		if (strcmp(q->method, "POST")) {
			lab_reply_graph_error(r, 405, "MethodNotAllowed", "Use POST for the token endpoint.");
			return 0;
		}
		char *tenant = lab_xstrndup(p + 1, pl - sl - 1);
		if (!lab_actions_admin_token(lab, q, tenant, r))     /* the admin registration (actions.c) */
			handle_token(lab, q, tenant, r);
		free(tenant);
		return 0;
	}
	if (cr && strlen(cr) < 100 && !strpbrk(cr, "\r\n"))
		lab_reply_hdr(r, "client-request-id", cr);
	/* The roles each route needs (docs/lab.md): Graph's managedDevices as Intune answers; the gateway's uploads write. */
	static const char *const devices_read[] = {"DeviceManagementManagedDevices.Read.All",
						   "DeviceManagementManagedDevices.ReadWrite.All", NULL};
	static const char *const devices_write[] = {"DeviceManagementManagedDevices.ReadWrite.All", NULL};
	static const struct { const struct kind *kd; int post, list, one; const char *const *read; } sets[] = {
		{&k_device, R_GATEWAY, R_GRAPH_LIST, R_GRAPH_ONE, devices_read},
		{&k_coll, R_COLL_POST, R_GRAPH_COLL_LIST, R_GRAPH_COLL_ONE, NULL},
	};
	for (size_t i = 0; i < 2; i++) {
		const struct kind *kd = sets[i].kd;
		if (!strncmp(p, "/api/gateway/", 13) && !strcmp(p + 13, kd->route)) {
			atomic_fetch_add(&lab->routes[sets[i].post], 1);
			if (strcmp(q->method, "POST"))
				lab_reply_graph_error(r, 405, "MethodNotAllowed", "Use POST for %s.", kd->route);
			else if (check_bearer_roles(lab, q, r, devices_write) == 0)
				handle_upload(lab, q, kd, r);
			return 0;
		}
		const char *lp = "/beta/deviceManagement/";
		size_t ll = strlen(lp), sn = strlen(kd->set);
		if (strncmp(p, lp, ll) || strncmp(p + ll, kd->set, sn))
			continue;
		const char *t = p + ll + sn;
		if (t[0] == 0 || (t[0] == '/' && t[1] && !strchr(t + 1, '/'))) {
			atomic_fetch_add(&lab->routes[t[0] ? sets[i].one : sets[i].list], 1);
			if (strcmp(q->method, "GET"))
				lab_reply_graph_error(r, 405, "MethodNotAllowed", "The lab's Graph surface is read-only: use GET.");
			else if (check_bearer_roles(lab, q, r, sets[i].read) == 0) {
				if (t[0])
					handle_one(lab, q, kd, t + 1, r);
				else
					handle_list(lab, q, kd, r);
			}
			return 0;
		}
	}
	atomic_fetch_add(&lab->routes[R_OTHER_TENANT], 1);
	if (check_bearer(lab, q, r) == 0)
		lab_reply_graph_error(r, 400, "BadRequest", "Resource not found for the segment '%s'.", p);
	return 0;
}

/* The Bearer check, for actions.c. */
int lab_tenant_bearer(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	return check_bearer(lab, q, r);
}
