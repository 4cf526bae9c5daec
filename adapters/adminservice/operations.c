/*
 * operations.c - site operations over the AdminService WMI route
 * (docs/wire-format.md §8): client notifications, their status, the
 * clients' online state, and blocking a client (retire).
 *
 * Its own HTTP handle and retry budget, made from the same [site] options
 * as the device reader. Reads and BlockClients are idempotent and retried
 * by the policy of connector/retry.h; InitiateClientOperation is not: it is
 * sent again only after 429/503 (the site did not take it), and any other
 * failure is returned for the relay to reconcile against the site's list.
 *
 * Must never: send InitiateClientOperation twice on its own after a
 * network error; log the password or the Authorization header.
 */
#include "adapters/adminservice/operations.h"
#include "connector/base/error.h"
#include "connector/transport/http.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "connector/transport/auth.h"
#include "connector/base/clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define MAX_LIST_PAGES 100

struct as_ops {
	char *base;
	struct cmb_site_auth *auth;   /* [site] auth, shared with the device reads' implementation */
	struct cmb_http *http;
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;
};

void cmb_site_operations_free(struct cmb_site_operation *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++) {
		free(ops[i].targets);
		free(ops[i].created_by);
	}
	free(ops);
}

void cmb_as_ops_close(void *p)
{
	struct as_ops *o = p;
	if (!o)
		return;
	cmb_site_auth_free(o->auth);
	cmb_http_free(o->http);
	free(o->base);
	free(o);
}

int cmb_as_ops_open(void **out, const struct cmb_config *cfg)
{
	struct as_ops *o = xcalloc(1, sizeof(*o));
	int rc;
	o->policy = (struct cmb_retry_policy){ .max_attempts = 6, .base_delay_s = 0.5, .max_delay_s = 60, .budget = 200 };
	if (cfg->sync_max_attempts > 0)
		o->policy.max_attempts = (int)cfg->sync_max_attempts;
	if (cfg->sync_max_retry_wait > 0)
		o->policy.max_delay_s = (double)cfg->sync_max_retry_wait;
	if (cfg->sync_retry_budget > 0)
		o->policy.budget = cfg->sync_retry_budget;
	cmb_retry_budget_init(&o->budget, &o->policy);
	if (!cfg->site_url || !*cfg->site_url) {
		rc = cmb_error_set(CMB_ECONFIG, "[site] url is not set");
		goto done;
	}
	o->base = xstrdup(cfg->site_url);
	for (size_t n = strlen(o->base); n && o->base[n - 1] == '/'; n--)
		o->base[n - 1] = '\0';
	struct cmb_http_opts ho = {
		.name = "site",
		.ca_file = cfg->site_ca_file,
		.connect_timeout_s = cfg->site_connect_timeout,
		.low_speed_time_s = cfg->site_timeout,
		.max_response = 64u << 20,
		.rate_limit = (double)cfg->site_rate_limit,
		.rate_burst = (double)(cfg->site_rate_burst > 0 ? cfg->site_rate_burst : 1),
	};
	/* Every [site] auth scheme, pinning, client certificate and proxy, as for device reads. */
	if ((rc = cmb_site_auth_open(&o->auth, &o->http, &ho, cfg)) < 0)
		goto done;
	*out = o;
	o = NULL;
	rc = 0;
done:
	cmb_as_ops_close(o);
	return rc;
}

/* Judges a non-2xx answer. */
static int status_error(const char *what, const struct cmb_http_response *resp)
{
	long st = resp->status;
	char body[160];
	snprintf(body, sizeof(body), "%.*s", resp->body.len > 120 ? 120 : (int)resp->body.len,
		 resp->body.data ? resp->body.data : "");
	for (char *p = body; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (st == 429 || st == 503)
		return cmb_error_set(CMB_ETHROTTLED, "%s: site is busy (HTTP %ld)", what, st);
	if (st == 500 || st == 502 || st == 504)
		return cmb_error_set(CMB_ENETWORK, "%s: site answered HTTP %ld: %s", what, st, body);
	if (st == 401 || st == 403)
		return cmb_error_set(CMB_EAUTH, "%s: site refused access (HTTP %ld): %s", what, st, body);
	if (st == 404)
		return cmb_error_set(CMB_ENOTFOUND, "%s: not found at the site (HTTP 404): %s", what, body);
	return cmb_error_set(CMB_EHTTP, "%s: site answered HTTP %ld: %s", what, st, body);
}

/*
 * One request, its reply parsed as a JSON object into *out (caller frees).
 * idempotent: retry transient failures; otherwise only 429/503.
 */
static int call(struct as_ops *o, const char *method, const char *url, const char *body, int idempotent,
		const char *what, yajl_val *out)
{
	int rc;
	for (int attempt = 0;; attempt++) {
		const char *headers[4] = { "Accept: application/json", NULL, NULL, NULL };
		int h = 1;
		if (body)
			headers[h++] = "Content-Type: application/json";
		const char *auth_header = NULL;
		if ((rc = cmb_site_auth_header(o->auth, &auth_header)) < 0)
			return rc;
		if (auth_header)
			headers[h++] = auth_header;
		struct cmb_http_request req = {
			.method = method, .url = url, .headers = headers, .body = body, .body_len = body ? strlen(body) : 0,
		};
		struct cmb_http_response resp;
		char *retry_after = NULL;
		cmb_debug("site: %s %s", method, url);
		rc = cmb_http_request(o->http, &req, &resp);
		if (rc == 0) {
			if (resp.status >= 200 && resp.status <= 299) {
				char eb[128] = "";
				yajl_val root = yajl_tree_parse(resp.body.data ? resp.body.data : "", eb, sizeof(eb));
				if (root && YAJL_IS_OBJECT(root)) {
					cmb_http_response_clear(&resp);
					*out = root;
					return 0;
				}
				yajl_tree_free(root);
				/* A cut-off reply: the request may have been applied. */
				rc = cmb_error_set(CMB_ENETWORK, "%s: the site's reply is incomplete or not a JSON object: %s",
						   what, eb);
			} else {
				rc = status_error(what, &resp);
				if (resp.retry_after)
					retry_after = xstrdup(resp.retry_after);
			}
			cmb_http_response_clear(&resp);
		} else {
			cmb_error_wrap(rc, "%s", what);
		}
		double wait = 0;
		int again = (idempotent || rc == CMB_ETHROTTLED) &&
			    cmb_retry_next(&o->budget, attempt, rc, retry_after, &wait);
		free(retry_after);
		if (!again)
			return rc;
		cmb_warn("site: %s; trying again in %.2f s (attempt %d of %d)", cmb_error_last(), wait, attempt + 2,
			 o->budget.policy.max_attempts);
		if ((rc = cmb_retry_sleep(wait, NULL)) < 0)
			return rc;
	}
}

static long long num(yajl_val obj, const char *name, long long def)
{
	const char *path[] = { name, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_number);
	if (v && YAJL_IS_INTEGER(v))
		return v->u.number.i;
	if (v && YAJL_IS_DOUBLE(v))
		return (long long)v->u.number.d;
	v = yajl_tree_get(obj, path, yajl_t_any);
	if (v && YAJL_IS_TRUE(v))
		return 1;
	if (v && YAJL_IS_FALSE(v))
		return 0;
	return def;
}

static void add_ids(struct cmb_buf *b, const uint32_t *ids, size_t n)
{
	cmb_buf_add(b, "[", 1);
	for (size_t i = 0; i < n; i++)
		cmb_buf_printf(b, "%s%" PRIu32, i ? "," : "", ids[i]);
	cmb_buf_add(b, "]", 1);
}

/* Resets the budget for each call from the relay: its loop has no cycles. */
static void fresh_budget(struct as_ops *o)
{
	if (o->budget.used >= o->budget.policy.budget)
		cmb_retry_budget_init(&o->budget, &o->policy);
}

int cmb_as_ops_initiate(void *p, int type, const char *collection_id, const uint32_t *ids, size_t n,
			int64_t *operation_id)
{
	struct as_ops *o = p;
	fresh_budget(o);
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	cmb_buf_printf(&b, "{\"Type\":%d,\"TargetCollectionID\":", type);
	cmb_buf_add_json_string(&b, collection_id, strlen(collection_id));
	cmb_buf_addstr(&b, ",\"RandomizationWindow\":0,\"TargetResourceIDs\":");
	add_ids(&b, ids, n);
	cmb_buf_add(&b, "}", 1);
	char *url = xasprintf("%s/wmi/SMS_ClientOperation.InitiateClientOperation", o->base);
	char what[96];
	snprintf(what, sizeof(what), "InitiateClientOperation (Type %d, %zu targets)", type, n);
	yajl_val root = NULL;
	int rc = call(o, "POST", url, b.data, 0, what, &root);
	if (rc == 0) {
		long long ret = num(root, "ReturnValue", -1);
		long long id = num(root, "OperationID", -1);
		if (ret != 0)
			rc = cmb_error_set(CMB_EHTTP, "%s: the site refused it (ReturnValue %lld)", what, ret);
		else if (id < 0)
			rc = cmb_error_set(CMB_EPROTO, "%s: the site's reply has no OperationID", what);
		else
			*operation_id = id;
	}
	yajl_tree_free(root);
	free(url);
	cmb_buf_free(&b);
	return rc;
}

int cmb_as_ops_list(void *p, int type, int64_t since, struct cmb_site_operation **out, size_t *n_out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	char *filter = xasprintf("Type eq %d", type);
	char *enc = cmb_http_escape(filter);
	char *url = xasprintf("%s/wmi/SMS_ClientOperation?$filter=%s", o->base, enc);
	free(filter);
	free(enc);
	struct cmb_site_operation *ops = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	for (int page = 0; url && page < MAX_LIST_PAGES; page++) {
		yajl_val root = NULL;
		if ((rc = call(o, "GET", url, NULL, 1, "listing SMS_ClientOperation", &root)) < 0)
			break;
		const char *pv[] = { "value", NULL }, *pn[] = { "@odata.nextLink", NULL };
		yajl_val value = yajl_tree_get(root, pv, yajl_t_array);
		yajl_val next = yajl_tree_get(root, pn, yajl_t_string);
		if (!value) {
			yajl_tree_free(root);
			rc = cmb_error_set(CMB_EPROTO, "listing SMS_ClientOperation: the reply has no value array");
			break;
		}
		for (size_t i = 0; i < value->u.array.len; i++) {
			yajl_val e = value->u.array.values[i];
			const char *pt[] = { "TargetResourceIDs", NULL }, *pr[] = { "RequestedTime", NULL },
				   *pc[] = { "CreatedBy", NULL };
			yajl_val t = yajl_tree_get(e, pt, yajl_t_array);
			yajl_val rt = yajl_tree_get(e, pr, yajl_t_string);
			yajl_val cb = yajl_tree_get(e, pc, yajl_t_string);
			int64_t when = 0;
			if (rt && cmb_time_parse(rt->u.string, &when) < 0)
				when = 0;
			if (when && when < since)
				continue;
			if ((int)num(e, "Type", type) != type)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 32;
				ops = xrealloc(ops, cap * sizeof(*ops));
			}
			struct cmb_site_operation *op = &ops[n++];
			memset(op, 0, sizeof(*op));
			op->id = num(e, "ID", -1);
			op->type = type;
			op->requested = when;
			op->created_by = cb ? xstrdup(cb->u.string) : NULL;
			if (t) {
				op->targets = xcalloc(t->u.array.len ? t->u.array.len : 1, sizeof(uint32_t));
				for (size_t j = 0; j < t->u.array.len; j++)
					if (YAJL_IS_INTEGER(t->u.array.values[j]))
						op->targets[op->n_targets++] = (uint32_t)t->u.array.values[j]->u.number.i;
			}
		}
		char *nu = next ? cmb_http_resolve(url, next->u.string) : NULL;
		free(url);
		url = nu;
		yajl_tree_free(root);
	}
	free(url);
	if (rc < 0) {
		cmb_site_operations_free(ops, n);
		return rc;
	}
	*out = ops;
	*n_out = n;
	return 0;
}

int cmb_as_ops_status(void *p, int64_t operation_id, struct cmb_site_operation_status *out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	char *filter = xasprintf("ID eq %" PRId64, operation_id);
	char *enc = cmb_http_escape(filter);
	char *url = xasprintf("%s/wmi/SMS_ClientOperationStatus?$filter=%s", o->base, enc);
	free(filter);
	free(enc);
	yajl_val root = NULL;
	int rc = call(o, "GET", url, NULL, 1, "reading SMS_ClientOperationStatus", &root);
	free(url);
	if (rc < 0)
		return rc;
	const char *pv[] = { "value", NULL };
	yajl_val value = yajl_tree_get(root, pv, yajl_t_array);
	if (!value || value->u.array.len == 0) {
		yajl_tree_free(root);
		return CMB_ENOTFOUND;
	}
	yajl_val e = value->u.array.values[0];
	*out = (struct cmb_site_operation_status){
		.id = num(e, "ID", operation_id), .type = (int)num(e, "Type", 0), .state = (int)num(e, "State", 0),
		.total = (long)num(e, "TotalClients", 0), .completed = (long)num(e, "CompletedClients", 0),
		.failed = (long)num(e, "FailedClients", 0), .offline = (long)num(e, "OfflineClients", 0),
		.unknown = (long)num(e, "UnknownClients", 0), .expired = (int)num(e, "IsExpired", 0),
	};
	yajl_tree_free(root);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int cmb_as_ops_offline_clients(void *p, uint32_t **ids_out, size_t *n_out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	char *enc = cmb_http_escape("OnlineStatus eq 0");
	char *url = xasprintf("%s/wmi/SMS_CN_ClientStatus?$filter=%s&$select=ResourceID", o->base, enc);
	free(enc);
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, page;
	for (page = 0; url && page < MAX_LIST_PAGES; page++) {
		yajl_val root = NULL;
		if ((rc = call(o, "GET", url, NULL, 1, "reading SMS_CN_ClientStatus", &root)) < 0)
			break;
		const char *pv[] = { "value", NULL }, *pn[] = { "@odata.nextLink", NULL };
		yajl_val value = yajl_tree_get(root, pv, yajl_t_array);
		yajl_val next = yajl_tree_get(root, pn, yajl_t_string);
		if (!value) {
			yajl_tree_free(root);
			rc = cmb_error_set(CMB_EPROTO, "reading SMS_CN_ClientStatus: the reply has no value array");
			break;
		}
		for (size_t i = 0; i < value->u.array.len; i++) {
			long long rid = num(value->u.array.values[i], "ResourceID", -1);
			if (rid < 0 || rid > UINT32_MAX)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				ids = xrealloc(ids, cap * sizeof(*ids));
			}
			ids[n++] = (uint32_t)rid;
		}
		char *next_url = next ? cmb_http_resolve(url, next->u.string) : NULL;
		yajl_tree_free(root);
		free(url);
		url = next_url;
	}
	if (rc == 0 && url)
		rc = cmb_error_set(CMB_EPROTO, "reading SMS_CN_ClientStatus: more than %d pages", page);
	free(url);
	if (rc < 0) {
		free(ids);
		return rc;
	}
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u32);
	*ids_out = ids;
	*n_out = n;
	return 0;
}

int cmb_as_ops_block(void *p, const uint32_t *ids, size_t n)
{
	struct as_ops *o = p;
	fresh_budget(o);
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	cmb_buf_addstr(&b, "{\"ResourceIDs\":");
	add_ids(&b, ids, n);
	cmb_buf_addstr(&b, ",\"Blocked\":true}");
	char *url = xasprintf("%s/wmi/SMS_Collection.BlockClients", o->base);
	yajl_val root = NULL;
	int rc = call(o, "POST", url, b.data, 1, "SMS_Collection.BlockClients", &root);
	if (rc == 0) {
		long long ret = num(root, "ReturnValue", -1);
		if (ret != 0)
			rc = cmb_error_set(CMB_EHTTP, "SMS_Collection.BlockClients: the site refused it (ReturnValue %lld)",
					   ret);
	}
	yajl_tree_free(root);
	free(url);
	cmb_buf_free(&b);
	return rc;
}
