/*
 * gateway.c - the tenant adapter: bulk device and collection upload through
 * the connector gateway (docs/wire-format.md §3 and §5), authenticated with
 * client credentials, through the core's request loop
 * (connector/transport/request.h, docs/retry.md). Its HTTP handle and token
 * are shared with the notification channel (notify.c).
 *
 * It also lists the tenant's device records through Graph (a warm
 * standby's diff base), reads the endpoint security policies there, and
 * posts their compliance (PolicyStatusPost, docs/wire-format.md §9).
 *
 * Must never: upload one request per device, log a token, send a retried
 * batch under a new batchId, or report a batch as applied when the tenant
 * did not answer for it.
 */
#include "adapters/tenant/call.h"
#include "adapters/tenant/gateway.h"
#include "adapters/tenant/notify.h"
#include "adapters/tenant.h"
#include "connector/transport/auth.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/transport/http.h"
#include "connector/transport/jwt.h"
#include "connector/transport/request.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* Graph's largest page of managedDevices; a listing of more pages than this is refused as a loop. */
#define LIST_PAGE_SIZE 1000
#define LIST_MAX_PAGES 100000

struct gateway {
	struct cmb_http *http;       /* one handle and one token for the tenant, shared with notify.c */
	struct cmb_auth *auth;
	char *gateway_url;           /* [tenant] gateway_url without the trailing '/' */
	char *device_url;            /* {gateway_url}/api/gateway/DevicePost */
	char *collection_url;        /* {gateway_url}/api/gateway/CollectionPost */
	char *graph_url;             /* [tenant] graph_url without the trailing '/', or NULL */
	char *devices_list_url;      /* {graph_url}/deviceManagement/managedDevices?$top=... */
	char *policy_status_url;     /* {gateway_url}/api/gateway/PolicyStatusPost */
	char *site_code;
	char *principal;             /* "client <id>", for messages */
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;  /* this cycle's; shared with token requests */
	struct cmb_tenant_stats stats;
	long replays;
	long renewals;
	int refs;                    /* the adapter and each notification channel over it */
};

static void gw_release(struct gateway *g)
{
	if (!g || --g->refs > 0)
		return;
	cmb_auth_free(g->auth);
	cmb_http_free(g->http);
	free(g->gateway_url);
	free(g->device_url);
	free(g->collection_url);
	free(g->devices_list_url);
	free(g->graph_url);
	free(g->policy_status_url);
	free(g->site_code);
	free(g->principal);
	free(g);
}

static int gw_open(void **out, const struct cmb_config *cfg)
{
	struct gateway *g = xcalloc(1, sizeof(*g));
	g->refs = 1;
	cmb_retry_policy_from_config(&g->policy, cfg);
	cmb_retry_budget_init(&g->budget, &g->policy);
	struct cmb_http_opts ho = { .max_response = (size_t)cfg->sync_max_response_mb << 20 };
	cmb_http_opts_tenant(&ho, cfg);
	int rc = cmb_http_new(&g->http, &ho);
	if (rc < 0)
		goto fail;
	/* Client secret or certificate ([tenant]); docs/credentials.md. */
	struct cmb_auth_opts ao = { .retry = &g->budget };
	cmb_auth_opts_from_config(&ao, cfg, cfg->tenant_scope);
	if ((rc = cmb_auth_new(&g->auth, g->http, &ao)) < 0)
		goto fail;
	size_t n = strlen(cfg->tenant_gateway_url);
	while (n > 0 && cfg->tenant_gateway_url[n - 1] == '/')
		n--;
	g->gateway_url = xstrndup(cfg->tenant_gateway_url, n);
	g->device_url = xasprintf("%s/api/gateway/DevicePost", g->gateway_url);
	g->collection_url = xasprintf("%s/api/gateway/CollectionPost", g->gateway_url);
	g->policy_status_url = xasprintf("%s/api/gateway/PolicyStatusPost", g->gateway_url);
	if (cfg->tenant_graph_url) {
		n = strlen(cfg->tenant_graph_url);
		while (n > 0 && cfg->tenant_graph_url[n - 1] == '/')
			n--;
		g->graph_url = xstrndup(cfg->tenant_graph_url, n);
		g->devices_list_url = xasprintf("%s/deviceManagement/managedDevices?$top=%d", g->graph_url, LIST_PAGE_SIZE);
	}
	g->site_code = xstrdup(cfg->site_code);
	g->principal = xasprintf("client %s", cfg->tenant_client_id ? cfg->tenant_client_id : "(none)");
	*out = g;
	return 0;
fail:
	gw_release(g);
	return rc;
}

static void gw_close(void *st)
{
	gw_release(st);
}

/* ---- what notify.c shares (gateway.h) ---------------------------------- */

void cmb_gateway_share(void *st, struct cmb_gateway_shared *out)
{
	struct gateway *g = st;
	g->refs++;
	*out = (struct cmb_gateway_shared){
		.http = g->http, .auth = g->auth, .gateway_url = g->gateway_url, .principal = g->principal,
		.policy = &g->policy, .owner = g,
	};
}

void cmb_gateway_unshare(struct cmb_gateway_shared *sh)
{
	if (sh && sh->owner)
		gw_release(sh->owner);
	if (sh)
		memset(sh, 0, sizeof(*sh));
}

static void gw_begin_cycle(void *st)
{
	struct gateway *g = st;
	cmb_retry_budget_init(&g->budget, &g->policy);
}

static int gw_check(void *st, long *expires_in)
{
	struct gateway *g = st;
	const char *token;
	int rc = cmb_auth_token(g->auth, &token);
	if (rc < 0)
		return rc;
	if (expires_in)
		*expires_in = cmb_auth_remaining(g->auth);
	return 0;
}

static int gw_token_describe(void *st, const struct cmb_config *cfg, const char *scope,
			     struct cmb_tenant_token_info *out)
{
	struct gateway *g = st;
	struct cmb_auth *auth = g->auth, *other = NULL;
	const char *token;
	int rc;
	if (scope && cfg->tenant_scope && strcmp(scope, cfg->tenant_scope) != 0) {
		/* Another resource's token (the site's, for [site] auth = bearer): same credential, handle and budget. */
		struct cmb_auth_opts ao = { .retry = &g->budget };
		cmb_auth_opts_from_config(&ao, cfg, scope);
		if ((rc = cmb_auth_new(&other, g->http, &ao)) < 0)
			return rc;
		auth = other;
	}
	if ((rc = cmb_auth_token(auth, &token)) == 0)
		*out = (struct cmb_tenant_token_info){
			.credential = cmb_auth_credential_kind(auth), .lifetime = cmb_auth_lifetime(auth),
			.claims = cmb_jwt_describe_claims(token),
		};
	cmb_auth_free(other);
	return rc;
}

static void gw_stats(void *st, struct cmb_tenant_stats *out)
{
	*out = ((struct gateway *)st)->stats;
}

void cmb_gateway_counters(void *st, struct cmb_gateway_counters *out)
{
	struct gateway *g = st;
	*out = (struct cmb_gateway_counters){
		.requests = g->stats.requests,
		.token_requests = cmb_auth_requests(g->auth),
		.retries = g->budget.used,
		.retry_waited_s = g->budget.waited_s,
		.rate_waited_s = cmb_http_rate_waited(g->http),
		.replays = g->replays,
		.token_renewals = g->renewals,
	};
}

int cmb_gateway_read_outcomes(yajl_val root, const char *url, const char *batch_id, const char *const *keys, size_t n,
			      const char *const *removals, size_t n_removals, cmb_tenant_outcome_cb cb, void *ctx)
{
	int rc = 0;
	const char *pb[] = { "batchId", NULL }, *pr[] = { "results", NULL }, *pm[] = { "removals", NULL };
	yajl_val bid = yajl_tree_get(root, pb, yajl_t_string);
	yajl_val results = yajl_tree_get(root, pr, yajl_t_array);
	yajl_val rems = yajl_tree_get(root, pm, yajl_t_array);
	if (bid && strcmp(bid->u.string, batch_id) != 0)
		return cmb_error_set(CMB_EPROTO, "tenant reply from %s is for batch %s, not %s", url, bid->u.string,
				     batch_id);
	if (!results || !rems || results->u.array.len != n || rems->u.array.len != n_removals)
		return cmb_error_set(CMB_EPROTO,
				     "tenant reply from %s does not answer for batch %s: expected %zu results and %zu "
				     "removals",
				     url, batch_id, n, n_removals);
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		yajl_val arr = pass == 0 ? results : rems;
		for (size_t i = 0; i < arr->u.array.len && rc == 0; i++) {
			yajl_val e = arr->u.array.values[i];
			const char *pk[] = { "key", NULL }, *ps[] = { "status", NULL }, *pi[] = { "id", NULL };
			const char *pec[] = { "error", "code", NULL }, *pem[] = { "error", "message", NULL };
			yajl_val k = yajl_tree_get(e, pk, yajl_t_string);
			yajl_val s = yajl_tree_get(e, ps, yajl_t_string);
			yajl_val id = yajl_tree_get(e, pi, yajl_t_string);
			yajl_val ec = yajl_tree_get(e, pec, yajl_t_string);
			yajl_val em = yajl_tree_get(e, pem, yajl_t_string);
			const char *want = pass == 0 ? keys[i] : removals[i];
			if (!k || !s || strcmp(k->u.string, want) != 0) {
				rc = cmb_error_set(CMB_EPROTO, "tenant reply from %s: entry %zu of %s is not for key %s",
						   url, i, pass == 0 ? "results" : "removals", want);
				break;
			}
			char *err = NULL;
			if (ec || em)
				err = xasprintf("%s: %s", ec ? ec->u.string : "error", em ? em->u.string : "");
			struct cmb_tenant_outcome o = {
				.key = want, .is_removal = pass == 1, .status = s->u.string,
				.tenant_id = id ? id->u.string : NULL, .error = err,
			};
			rc = cb(ctx, &o);
			free(err);
		}
	}
	return rc;
}

/* Posts body, then reports the reply: the path DevicePost and CollectionPost share. */
static int upload_body(struct gateway *g, const char *url, const char *what, const char *batch_id, const char *body,
		       size_t body_len, const char *const *keys, size_t n, const char *const *removals,
		       size_t n_removals, cmb_tenant_outcome_cb cb, void *ctx)
{
	yajl_val root = NULL;
	char *desc = xasprintf("upload of %s batch %s", what, batch_id);
	/* Every try sends the same body, hence the same batchId: the tenant applies it once. */
	struct cmb_tenant_call call = {
		.http = g->http, .auth = g->auth, .budget = &g->budget, .method = "POST", .url = url, .what = desc,
		.principal = g->principal, .body = body, .body_len = body_len, .gzip = 1, .requests = &g->stats.requests,
		.renewals = &g->renewals, .bytes_out = &g->stats.bytes_out, .bytes_in = &g->stats.bytes_in,
	};
	int rc = cmb_tenant_call_json(&call, &root);
	free(desc);
	if (rc < 0)
		return rc;
	const char *pp[] = { "replayed", NULL };
	yajl_val replayed = yajl_tree_get(root, pp, yajl_t_true);
	if (replayed) {
		/* An earlier try was applied but its answer was lost: this is that answer. */
		g->replays++;
		cmb_info("tenant had already applied %s batch %s; using its stored answer", what, batch_id);
	}
	rc = cmb_gateway_read_outcomes(root, url, batch_id, keys, n, removals, n_removals, cb, ctx);
	yajl_tree_free(root);
	return rc;
}

/* {"batchId":..,"siteCode":..,"<list>":[ ... the caller's entries ... */
static yajl_gen body_head(const struct gateway *g, const char *batch_id, const char *list)
{
	yajl_gen gen = cmb_json_new(0);
	yajl_gen_map_open(gen);
	cmb_json_kv_str(gen, "batchId", batch_id);
	cmb_json_kv_str(gen, "siteCode", g->site_code);
	cmb_json_key(gen, list);
	yajl_gen_array_open(gen);
	return gen;
}

/* ... ],"removals":[...]} */
static char *body_tail(yajl_gen gen, const char *const *removals, size_t n, size_t *len)
{
	yajl_gen_array_close(gen);
	cmb_json_key(gen, "removals");
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < n; i++)
		cmb_json_str(gen, removals[i]);
	yajl_gen_array_close(gen);
	yajl_gen_map_close(gen);
	return cmb_json_take(gen, len);
}

static int gw_upload(void *st, const struct cmb_tenant_batch *b, cmb_tenant_outcome_cb cb, void *ctx)
{
	struct gateway *g = st;
	yajl_gen gen = body_head(g, b->batch_id, "devices");
	const char **keys = xcalloc(b->n_records ? b->n_records : 1, sizeof(*keys));
	/* Each record is the upload object mapping generated (mapping/device.c): inserted whole. */
	for (size_t i = 0; i < b->n_records; i++) {
		cmb_json_raw(gen, b->records[i].json, b->records[i].json_len);
		keys[i] = b->records[i].key;
	}
	size_t len;
	char *body = body_tail(gen, b->removals, b->n_removals, &len);
	int rc = upload_body(g, g->device_url, "device", b->batch_id, body, len, keys, b->n_records, b->removals,
			     b->n_removals, cb, ctx);
	free(keys);
	free(body);
	return rc;
}

static int gw_upload_collections(void *st, const struct cmb_tenant_collection_batch *b, cmb_tenant_outcome_cb cb,
				 void *ctx)
{
	struct gateway *g = st;
	yajl_gen gen = body_head(g, b->batch_id, "collections");
	for (size_t i = 0; i < b->n; i++) {
		yajl_gen_map_open(gen);
		cmb_json_kv_str(gen, "key", b->keys[i]);
		cmb_json_key(gen, "configManagerCollection");
		cmb_json_raw(gen, b->json[i], strlen(b->json[i]));
		yajl_gen_map_close(gen);
	}
	size_t len;
	char *body = body_tail(gen, b->removals, b->n_removals, &len);
	int rc = upload_body(g, g->collection_url, "collection", b->batch_id, body, len, b->keys, b->n, b->removals,
			     b->n_removals, cb, ctx);
	free(body);
	return rc;
}

/* ---- the tenant's device records (Graph) ---- */

/* Writes a parsed JSON value back out as JSON text. */
static void gen_value(yajl_gen g, yajl_val v)
{
	if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			cmb_json_key(g, v->u.object.keys[i]);
			gen_value(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	} else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			gen_value(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else if (YAJL_IS_STRING(v)) {
		cmb_json_str(g, v->u.string);
	} else if (YAJL_IS_NUMBER(v)) {
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		cmb_json_bool(g, YAJL_IS_TRUE(v));
	} else {
		cmb_json_null(g);
	}
}

/* One page of a Graph listing: each object to cb (noun names it in messages); *next its @odata.nextLink or NULL. */
static int read_page(yajl_val root, const char *url, const char *noun, cmb_tenant_device_cb cb, void *ctx, char **next)
{
	const char *pv[] = { "value", NULL }, *pn[] = { "@odata.nextLink", NULL }, *pi[] = { "id", NULL };
	yajl_val value = yajl_tree_get(root, pv, yajl_t_array);
	yajl_val link = yajl_tree_get(root, pn, yajl_t_string);
	if (!value)
		return cmb_error_set(CMB_EPROTO, "tenant: %s answered without a \"value\" array", url);
	if (link && strncmp(link->u.string, "https://", 8) != 0)
		return cmb_error_set(CMB_EPROTO, "tenant: %s gave a next link that is not https", url);
	int rc = 0;
	for (size_t i = 0; i < value->u.array.len && rc == 0; i++) {
		yajl_val d = value->u.array.values[i], id = yajl_tree_get(d, pi, yajl_t_string);
		if (!YAJL_IS_OBJECT(d) || !id)
			return cmb_error_set(CMB_EPROTO, "tenant: %s: %s %zu has no id", url, noun, i);
		yajl_gen g = cmb_json_new(0);
		gen_value(g, d);
		size_t len;
		char *json = cmb_json_take(g, &len);
		rc = cb(ctx, id->u.string, json, len);
		free(json);
	}
	*next = rc == 0 && link ? xstrdup(link->u.string) : NULL;
	return rc;
}

int cmb_gateway_read_devices(yajl_val root, const char *url, cmb_tenant_device_cb cb, void *ctx, char **next)
{
	return read_page(root, url, "device", cb, ctx, next);
}

/* A next link must stay on Graph's origin: the token never goes elsewhere. */
static int check_next(const struct gateway *g, const char *url, char **next)
{
	if (!*next || cmb_http_same_origin(*next, g->graph_url))
		return 0;
	char *shown = cmb_request_sanitise(*next, strlen(*next), 120, 1);
	int rc = cmb_error_set(CMB_EPROTO, "tenant: %s gave a next link off the origin of [tenant] graph_url: '%s'", url,
			       shown);
	free(shown);
	free(*next);
	*next = NULL;
	return rc;
}

/* One Graph GET through the request loop: the reply's object in *root (caller frees). */
static int graph_get(struct gateway *g, const char *url, const char *what, yajl_val *root)
{
	struct cmb_tenant_call call = {
		.http = g->http, .auth = g->auth, .budget = &g->budget, .method = "GET", .url = url, .what = what,
		.principal = g->principal, .requests = &g->stats.requests, .renewals = &g->renewals,
		.bytes_out = &g->stats.bytes_out, .bytes_in = &g->stats.bytes_in,
	};
	return cmb_tenant_call_json(&call, root);
}

/* Every page of a Graph listing from first on, each object to cb. */
static int graph_list(struct gateway *g, const char *first, const char *set, const char *noun, cmb_tenant_device_cb cb,
		      void *ctx, long *pages)
{
	char *url = xstrdup(first);
	long n = 0;
	int rc = 0;
	while (url && rc == 0) {
		if (++n > LIST_MAX_PAGES) {
			rc = cmb_error_set(CMB_EPROTO, "tenant: the %s listing goes on past %d pages", set, LIST_MAX_PAGES);
			break;
		}
		char *what = xasprintf("%s page %ld", set, n);
		yajl_val root = NULL;
		char *next = NULL;
		if ((rc = graph_get(g, url, what, &root)) == 0 && (rc = read_page(root, url, noun, cb, ctx, &next)) == 0)
			rc = check_next(g, url, &next);
		yajl_tree_free(root);
		free(what);
		free(url);
		url = next;
	}
	free(url);
	if (pages)
		*pages = n;
	return rc;
}

static int gw_list_devices(void *st, cmb_tenant_device_cb cb, void *ctx, long *pages)
{
	struct gateway *g = st;
	if (!g->devices_list_url)
		return cmb_error_set(CMB_ECONFIG, "tenant: [tenant] graph_url is not set: the devices cannot be listed");
	return graph_list(g, g->devices_list_url, "managedDevices", "device", cb, ctx, pages);
}

/* ---- endpoint security policies (Graph and PolicyStatusPost) ---- */

static int gw_list_policies(void *st, const char *query, cmb_tenant_device_cb cb, void *ctx, long *pages)
{
	struct gateway *g = st;
	if (!g->graph_url)
		return cmb_error_set(CMB_ECONFIG, "tenant: [tenant] graph_url is not set: policies cannot be read");
	char *url = xasprintf("%s/deviceManagement/configurationPolicies%s%s", g->graph_url, query ? "?" : "",
			      query ? query : "");
	int rc = graph_list(g, url, "configurationPolicies", "policy", cb, ctx, pages);
	free(url);
	return rc;
}

static int gw_get_policy(void *st, const char *id, const char *query, char **json, size_t *len)
{
	struct gateway *g = st;
	if (!g->graph_url)
		return cmb_error_set(CMB_ECONFIG, "tenant: [tenant] graph_url is not set: policies cannot be read");
	if (!id || !*id || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(id))
		return cmb_error_set(CMB_EINVAL, "tenant: policy id \"%s\" is not one Graph gives", id ? id : "");
	char *url = xasprintf("%s/deviceManagement/configurationPolicies/%s%s%s", g->graph_url, id, query ? "?" : "",
			      query ? query : "");
	char *what = xasprintf("configuration policy %s", id);
	yajl_val root = NULL;
	int rc = graph_get(g, url, what, &root);
	if (rc == 0) {
		yajl_gen gen = cmb_json_new(0);
		gen_value(gen, root);
		*json = cmb_json_take(gen, len);
	}
	yajl_tree_free(root);
	free(what);
	free(url);
	return rc;
}

static void gen_policy_status(yajl_gen gen, const struct cmb_tenant_policy_status *p)
{
	yajl_gen_map_open(gen);
	cmb_json_kv_str(gen, "policyId", p->policy_id);
	cmb_json_kv_str(gen, "state", p->state);
	cmb_json_kv_strings(gen, "reasons", p->reasons, p->n_reasons);
	cmb_json_key(gen, "collections");
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < p->n_collections; i++) {
		const struct cmb_tenant_policy_collection *c = &p->collections[i];
		yajl_gen_map_open(gen);
		cmb_json_kv_str(gen, "collectionId", c->collection_id);
		cmb_json_kv_int(gen, "targeted", c->targeted);
		cmb_json_kv_int(gen, "compliant", c->compliant);
		cmb_json_kv_int(gen, "nonCompliant", c->non_compliant);
		cmb_json_kv_int(gen, "error", c->error);
		cmb_json_kv_int(gen, "conflict", c->conflict);
		cmb_json_kv_int(gen, "notApplicable", c->not_applicable);
		yajl_gen_map_close(gen);
	}
	yajl_gen_array_close(gen);
	cmb_json_key(gen, "devices");
	yajl_gen_array_open(gen);
	for (size_t i = 0; i < p->n_devices; i++) {
		yajl_gen_map_open(gen);
		cmb_json_kv_str(gen, "key", p->devices[i].key);
		cmb_json_kv_str(gen, "state", p->devices[i].state);
		cmb_json_kv_strings(gen, "failingSettings", p->devices[i].failing, p->devices[i].n_failing);
		yajl_gen_map_close(gen);
	}
	yajl_gen_array_close(gen);
	yajl_gen_map_close(gen);
}

/* The reply answers for every policy of b, in order: accepted[i] 1 (accepted) or 0 (unknown). */
static int policy_results(yajl_val root, const struct cmb_tenant_policy_status_batch *b, const char *url, int *accepted)
{
	const char *pb[] = { "batchId", NULL }, *pr[] = { "results", NULL };
	yajl_val bid = yajl_tree_get(root, pb, yajl_t_string), results = yajl_tree_get(root, pr, yajl_t_array);
	if (bid && strcmp(bid->u.string, b->batch_id) != 0)
		return cmb_error_set(CMB_EPROTO, "tenant reply from %s is for batch %s, not %s", url, bid->u.string,
				     b->batch_id);
	if (!results || results->u.array.len != b->n)
		return cmb_error_set(CMB_EPROTO, "tenant reply from %s does not answer for the %zu policies of batch %s",
				     url, b->n, b->batch_id);
	for (size_t i = 0; i < b->n; i++) {
		const char *pi[] = { "policyId", NULL }, *ps[] = { "status", NULL };
		yajl_val e = results->u.array.values[i];
		yajl_val id = yajl_tree_get(e, pi, yajl_t_string), s = yajl_tree_get(e, ps, yajl_t_string);
		if (!id || !s || strcmp(id->u.string, b->policies[i].policy_id) != 0 ||
		    (strcmp(s->u.string, "accepted") != 0 && strcmp(s->u.string, "unknown") != 0))
			return cmb_error_set(CMB_EPROTO, "tenant reply from %s: result %zu is not accepted or unknown for "
					     "policy %s", url, i, b->policies[i].policy_id);
		accepted[i] = strcmp(s->u.string, "accepted") == 0;
	}
	return 0;
}

static int gw_post_policy_status(void *st, const struct cmb_tenant_policy_status_batch *b, int *accepted)
{
	struct gateway *g = st;
	yajl_gen gen = body_head(g, b->batch_id, "policies");
	for (size_t i = 0; i < b->n; i++)
		gen_policy_status(gen, &b->policies[i]);
	yajl_gen_array_close(gen);
	yajl_gen_map_close(gen);
	size_t len;
	char *body = cmb_json_take(gen, &len);
	char *desc = xasprintf("policy status batch %s", b->batch_id);
	yajl_val root = NULL;
	struct cmb_tenant_call call = {
		.http = g->http, .auth = g->auth, .budget = &g->budget, .method = "POST", .url = g->policy_status_url,
		.what = desc, .principal = g->principal, .body = body, .body_len = len, .gzip = 1,
		.requests = &g->stats.requests, .renewals = &g->renewals, .bytes_out = &g->stats.bytes_out,
		.bytes_in = &g->stats.bytes_in,
	};
	int rc = cmb_tenant_call_json(&call, &root);
	if (rc == 0)
		rc = policy_results(root, b, g->policy_status_url, accepted);
	yajl_tree_free(root);
	free(desc);
	free(body);
	return rc;
}

static int gw_token_roles(void *st, char ***roles, size_t *n)
{
	struct gateway *g = st;
	const char *token;
	int rc = cmb_auth_token(g->auth, &token);
	if (rc < 0)
		return rc;
	return cmb_jwt_claim_strings(token, "roles", roles, n);
}

static int gw_probe_graph(void *st)
{
	struct gateway *g = st;
	if (!g->devices_list_url)
		return cmb_error_set(CMB_ECONFIG, "tenant: [tenant] graph_url is not set");
	char *url = xstrdup(g->devices_list_url);
	char *top = strstr(url, "$top=");
	if (top)
		strcpy(top, "$top=1");
	yajl_val root = NULL;
	struct cmb_tenant_call call = {
		.http = g->http, .auth = g->auth, .budget = &g->budget, .method = "GET", .url = url,
		.what = "reading one managedDevice", .principal = g->principal, .requests = &g->stats.requests,
		.renewals = &g->renewals, .bytes_out = &g->stats.bytes_out, .bytes_in = &g->stats.bytes_in,
	};
	int rc = cmb_tenant_call_json(&call, &root);
	const char *pv[] = { "value", NULL };
	if (rc == 0 && !yajl_tree_get(root, pv, yajl_t_array))
		rc = cmb_error_set(CMB_EPROTO, "tenant: %s answered without a \"value\" array: is [tenant] graph_url "
				   "the Graph endpoint (https://graph.microsoft.com/beta)?", url);
	yajl_tree_free(root);
	free(url);
	return rc;
}

const struct cmb_tenant_adapter cmb_tenant_gateway = {
	.version = CMB_TENANT_ADAPTER_VERSION,
	.name = "gateway",
	.open = gw_open,
	.check = gw_check,
	.begin_cycle = gw_begin_cycle,
	.upload = gw_upload,
	.upload_collections = gw_upload_collections,
	.stats = gw_stats,
	.close = gw_close,
	.notify_open = cmb_notify_open, .notify_close = cmb_notify_close,
	.poll_notifications = cmb_notify_poll, .post_results = cmb_notify_post_results,
	.token_describe = gw_token_describe,
	.list_devices = gw_list_devices,
	.token_roles = gw_token_roles,
	.probe_graph = gw_probe_graph,
	.list_policies = gw_list_policies,
	.get_policy = gw_get_policy,
	.post_policy_status = gw_post_policy_status,
};
