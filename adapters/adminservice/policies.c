/*
 * policies.c - the site's policy document store behind the site table's
 * policy_* members (adapters/site.h, docs/wire-format.md §9.2):
 * PUT/DELETE/GET {site url}/v1.0/CmbridgePolicy('{id}'), the listing, the
 * compliance of a stored document, and the members of a collection
 * (SMS_FullCollectionMembership, for where policies can collide).
 *
 * Works over the device reader's connection with its own retry budget,
 * through the core's request loop. Every call is idempotent (a PUT of the
 * stored version and hash is "unchanged", a DELETE that finds nothing is
 * a 404), so each is retried like a read.
 *
 * Must never: put an id into a URL without checking it; read a reply
 * member it does not know as another; log the password or the
 * Authorization header.
 */
#include "adapters/adminservice/policies.h"
#include "adapters/adminservice/adminservice.h"
#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/cursor.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define POLICY_SET "CmbridgePolicy"
#define MAX_ID 64
#define MEMBER_PAGE 1000
#define MEMBER_MAX_PAGES 1000
#define MAX_FAILING 1000

struct as_policies {
	struct cmb_as_client cl;
	struct cmb_as_schema names;   /* the documented names (SMS_FullCollectionMembership) */
};

int cmb_as_policies_open(void **out, void *st)
{
	struct as_policies *p = xcalloc(1, sizeof(*p));
	cmb_as_client_init(&p->cl, cmb_adminservice_conn(st));
	cmb_as_schema_documented(&p->names);
	*out = p;
	return 0;
}

void cmb_as_policies_close(void *pst)
{
	struct as_policies *p = pst;
	if (!p)
		return;
	cmb_as_client_clear(&p->cl);
	cmb_as_schema_clear(&p->names);
	free(p);
}

/* An id fit for the URL and the document (wire-format §9.2: no quotes, slashes or spaces). */
static int check_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > MAX_ID || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
		return cmb_error_set(CMB_EINVAL, "policy id \"%s\" cannot be a site document key (1 to %d letters, digits, "
				     "'-', '_' or '.')", id ? id : "", MAX_ID);
	return 0;
}

static char *doc_url(const struct as_policies *p, const char *id, const char *tail)
{
	return xasprintf("%s/v1.0/" POLICY_SET "('%s')%s", p->cl.conn->base, id, tail ? tail : "");
}

/* ---- one exchange: a JSON object back, or nothing (DELETE) ---- */

struct reply {
	const char *what;
	int empty_ok;
	yajl_val root;
};

static int reply_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct reply *r = ctx;
	const char *data = resp->body.data ? resp->body.data : "";
	if (r->empty_ok && resp->body.len == 0)
		return 0;
	char eb[128] = "";
	yajl_val root = NULL;
	int rc = cmb_limit_json_tree(data, resp->body.len, r->what, &root, eb, sizeof(eb));
	if (rc == CMB_ETOOBIG)
		return rc;
	if (root && YAJL_IS_OBJECT(root)) {
		yajl_tree_free(r->root);
		r->root = root;
		return 0;
	}
	yajl_tree_free(root);
	if (resp->body.len && data[0] == '{')
		return cmb_error_set(CMB_ENETWORK, "%s: the site's reply is incomplete JSON: %s", r->what, eb);
	char *first = cmb_request_sanitise(data, resp->body.len, 80, 1);
	rc = cmb_error_set(CMB_EPROTO, "%s: the site answered HTTP %ld without a JSON object: '%s'", r->what,
			   resp->status, first);
	free(first);
	return rc;
}

static int exchange(struct as_policies *p, const char *method, const char *url, const char *body, size_t len,
		    const char *what, yajl_val *out, long *status)
{
	static const char *const get_headers[] = { "Accept: application/json", NULL };
	static const char *const put_headers[] = { "Accept: application/json", "Content-Type: application/xml", NULL };
	struct reply r = { .what = what, .empty_ok = out == NULL };
	const struct cmb_request rq = {
		.method = method, .url = url, .what = what, .resource = "the site's policy document store (" POLICY_SET ")",
		.headers = body ? put_headers : get_headers, .body = body, .body_len = len,
		.retry = CMB_REQUEST_IDEMPOTENT, .finish = reply_finish, .finish_ctx = &r,
	};
	struct cmb_http_response resp;
	cmb_as_client_fresh_budget(&p->cl, 1);
	int rc = cmb_request(&p->cl.ep, &rq, &resp, &p->cl.counters);
	if (status)
		*status = resp.status;
	cmb_http_response_clear(&resp);
	if (rc < 0 || !out)
		yajl_tree_free(r.root);
	else
		*out = r.root;
	return rc;
}

static yajl_val member(yajl_val o, const char *name, yajl_type t)
{
	const char *path[] = { name, NULL };
	return yajl_tree_get(o, path, t);
}

/* A non-negative integer member; -1 when absent or not one. */
static long long member_count(yajl_val o, const char *name)
{
	yajl_val v = member(o, name, yajl_t_number);
	return v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= 0 ? YAJL_GET_INTEGER(v) : -1;
}

/* version and contentHash of a reply or listing entry: 0, or CMB_EPROTO naming what. */
static int version_hash(yajl_val o, const char *what, int64_t *version, char hash[65])
{
	long long v = member_count(o, "version");
	yajl_val h = member(o, "contentHash", yajl_t_string);
	if (v < 1 || !h || strlen(h->u.string) != 64 || strspn(h->u.string, "0123456789abcdef") != 64)
		return cmb_error_set(CMB_EPROTO, "%s: the site's answer has no valid version and contentHash", what);
	*version = v;
	snprintf(hash, 65, "%s", h->u.string);
	return 0;
}

/* ---- PUT, DELETE, listing ---- */

int cmb_as_policy_put(void *pst, const char *id, const char *xml, size_t len, struct cmb_site_policy_put *out)
{
	struct as_policies *p = pst;
	int rc = check_id(id);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	char *url = doc_url(p, id, NULL), *what = xasprintf("storing policy document %s", id);
	yajl_val root = NULL;
	long status = 0;
	rc = exchange(p, "PUT", url, xml, len, what, &root, &status);
	if (rc == 0) {
		yajl_val st = member(root, "state", yajl_t_string);
		yajl_val tid = member(root, "tenantPolicyId", yajl_t_string);
		if (!st || (strcmp(st->u.string, "created") && strcmp(st->u.string, "updated") &&
			    strcmp(st->u.string, "unchanged")))
			rc = cmb_error_set(CMB_EPROTO, "%s: the site's answer has no state created, updated or unchanged", what);
		else if (!tid || strcmp(tid->u.string, id) != 0)
			rc = cmb_error_set(CMB_EPROTO, "%s: the site answered for another tenantPolicyId", what);
		else
			snprintf(out->state, sizeof(out->state), "%s", st->u.string);
	} else if (rc == CMB_EHTTP || rc == CMB_ENOTFOUND) {
		out->status = status;
		rc = CMB_EHTTP; /* a refusal: nothing was stored */
	}
	yajl_tree_free(root);
	free(url);
	free(what);
	return rc;
}

int cmb_as_policy_delete(void *pst, const char *id, int *existed)
{
	struct as_policies *p = pst;
	int rc = check_id(id);
	if (rc < 0)
		return rc;
	char *url = doc_url(p, id, NULL), *what = xasprintf("removing policy document %s", id);
	rc = exchange(p, "DELETE", url, NULL, 0, what, NULL, NULL);
	*existed = rc == 0;
	if (rc == CMB_ENOTFOUND) {
		cmb_error_clear();
		rc = 0; /* not there: never was, or an earlier try removed it */
	}
	free(url);
	free(what);
	return rc;
}

int cmb_as_policy_list(void *pst, struct cmb_site_policy_entry **out, size_t *n_out)
{
	struct as_policies *p = pst;
	char *url = xasprintf("%s/v1.0/" POLICY_SET, p->cl.conn->base);
	const char *what = "listing the site's policy documents";
	yajl_val root = NULL;
	int rc = exchange(p, "GET", url, NULL, 0, what, &root, NULL);
	free(url);
	if (rc < 0)
		return rc;
	yajl_val value = member(root, "value", yajl_t_array);
	size_t n = value ? value->u.array.len : 0;
	struct cmb_site_policy_entry *e = xcalloc(n ? n : 1, sizeof(*e));
	if (!value)
		rc = cmb_error_set(CMB_EPROTO, "%s: the site's answer has no \"value\" array", what);
	for (size_t i = 0; i < n && rc == 0; i++) {
		yajl_val o = value->u.array.values[i];
		yajl_val id = member(o, "tenantPolicyId", yajl_t_string);
		if (!id)
			rc = cmb_error_set(CMB_EPROTO, "%s: entry %zu has no tenantPolicyId", what, i);
		else if ((rc = version_hash(o, what, &e[i].version, e[i].hash)) == 0)
			e[i].id = xstrdup(id->u.string);
	}
	yajl_tree_free(root);
	if (rc < 0) {
		cmb_site_policy_entries_free(e, n);
		return rc;
	}
	*out = e;
	*n_out = n;
	return 0;
}

/* ---- compliance ---- */

static int read_counts(yajl_val o, struct cmb_site_policy_counts *c, const char *what, size_t i)
{
	static const char *const names[] = { "targeted", "compliant", "nonCompliant", "error", "conflict", "notApplicable" };
	long *v[] = { &c->targeted, &c->compliant, &c->non_compliant, &c->error, &c->conflict, &c->not_applicable };
	yajl_val id = member(o, "collectionId", yajl_t_string);
	if (!id || !*id->u.string || strlen(id->u.string) >= sizeof(c->collection_id))
		return cmb_error_set(CMB_EPROTO, "%s: collections[%zu] has no valid collectionId", what, i);
	snprintf(c->collection_id, sizeof(c->collection_id), "%s", id->u.string);
	for (int k = 0; k < 6; k++) {
		long long x = member_count(o, names[k]);
		if (x < 0)
			return cmb_error_set(CMB_EPROTO, "%s: collections[%zu] (%s): %s is not a count", what, i,
					     c->collection_id, names[k]);
		*v[k] = (long)x;
	}
	return 0;
}

static int read_device(yajl_val o, struct cmb_site_policy_device *d, const char *what, size_t i)
{
	static const char *const states[] = { "compliant", "nonCompliant", "error", "conflict", "notApplicable", "pending" };
	long long rid = member_count(o, "ResourceID");
	yajl_val st = member(o, "state", yajl_t_string);
	yajl_val fail = member(o, "failingSettings", yajl_t_array);
	size_t k = 0;
	while (st && k < 6 && strcmp(st->u.string, states[k]) != 0)
		k++;
	if (rid < 0 || rid > UINT32_MAX || !st || k == 6)
		return cmb_error_set(CMB_EPROTO, "%s: devices[%zu] has no valid ResourceID and state", what, i);
	d->resource_id = (uint32_t)rid;
	snprintf(d->state, sizeof(d->state), "%s", states[k]);
	size_t n = fail ? fail->u.array.len : 0;
	if (n > MAX_FAILING)
		return cmb_error_set(CMB_ETOOBIG, "%s: devices[%zu] lists more than %d failing settings", what, i,
				     MAX_FAILING);
	d->failing = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t j = 0; j < n; j++) {
		yajl_val s = fail->u.array.values[j];
		if (!YAJL_IS_STRING(s) || !*s->u.string || strchr(s->u.string, ','))
			return cmb_error_set(CMB_EPROTO, "%s: devices[%zu].failingSettings[%zu] is not a definition id",
					     what, i, j);
		d->failing[d->n_failing++] = xstrdup(s->u.string);
	}
	return 0;
}

static int read_compliance(yajl_val root, const char *what, struct cmb_site_policy_compliance *c)
{
	yajl_val colls = member(root, "collections", yajl_t_array), devs = member(root, "devices", yajl_t_array);
	yajl_val reported = member(root, "reported", yajl_t_any);
	int rc = version_hash(root, what, &c->version, c->hash);
	if (rc < 0)
		return rc;
	if (!colls || !devs || !reported || !(YAJL_IS_TRUE(reported) || YAJL_IS_FALSE(reported)))
		return cmb_error_set(CMB_EPROTO, "%s: the site's answer lacks reported, collections or devices", what);
	c->reported = YAJL_IS_TRUE(reported);
	c->collections = xcalloc(colls->u.array.len + 1, sizeof(*c->collections));
	for (size_t i = 0; i < colls->u.array.len && rc == 0; i++, c->n_collections++)
		rc = read_counts(colls->u.array.values[i], &c->collections[i], what, i);
	c->devices = xcalloc(devs->u.array.len + 1, sizeof(*c->devices));
	for (size_t i = 0; i < devs->u.array.len && rc == 0; i++) {
		c->n_devices++; /* counted first: a failed read is cleared with what it allocated */
		rc = read_device(devs->u.array.values[i], &c->devices[i], what, i);
	}
	return rc;
}

int cmb_as_policy_compliance(void *pst, const char *id, struct cmb_site_policy_compliance *out)
{
	struct as_policies *p = pst;
	int rc = check_id(id);
	if (rc < 0)
		return rc;
	char *url = doc_url(p, id, "/Compliance"), *what = xasprintf("reading the compliance of policy %s", id);
	yajl_val root = NULL;
	struct cmb_site_policy_compliance c = { 0 };
	if ((rc = exchange(p, "GET", url, NULL, 0, what, &root, NULL)) == 0)
		rc = read_compliance(root, what, &c);
	yajl_tree_free(root);
	free(url);
	free(what);
	if (rc < 0) {
		cmb_site_policy_compliance_clear(&c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- collection members ---- */

int cmb_as_collection_members(void *pst, const char *collection_id, uint32_t **ids_out, size_t *n_out)
{
	struct as_policies *p = pst;
	const struct cmb_as_rclass *rc_m = &p->names.cls[CMB_AS_MEMBERSHIP];
	char *filter = cmb_as_filter_eq(rc_m->wire[CMB_AS_MEMBERSHIP_COLLECTION], collection_id);
	const struct cmb_as_cursor_opts o = {
		.entity = rc_m->entity, .filter = filter, .select = rc_m->wire[CMB_AS_MEMBERSHIP_RESOURCE],
		.orderby = rc_m->wire[CMB_AS_MEMBERSHIP_RESOURCE], .page_size = MEMBER_PAGE, .max_pages = MEMBER_MAX_PAGES,
	};
	struct cmb_as_cursor c;
	int rc;
	cmb_as_client_fresh_budget(&p->cl, 1);
	cmb_as_cursor_init(&c, &p->cl, &o);
	rc = cmb_as_cursor_ids(&c, rc_m, CMB_AS_MEMBERSHIP_RESOURCE, ids_out, n_out);
	cmb_as_cursor_clear(&c);
	free(filter);
	if (rc < 0)
		return cmb_error_wrap(rc, "reading the members of collection %s", collection_id);
	return 0;
}
