/*
 * gateway.c - the tenant adapter: bulk device and collection upload through
 * the connector gateway (docs/wire-format.md §3 and §5), authenticated with
 * client credentials, retried by the policy of connector/retry.h
 * (docs/retry.md).
 *
 * Must never: upload one request per device, log a token, send a retried
 * batch under a new batchId, or report a batch as applied when the tenant
 * did not answer for it.
 */
#include "gateway.h"
#include "notify.h"
#include "../tenant.h"
#include "../../connector/auth.h"
#include "../../connector/error.h"
#include "../../connector/http.h"
#include "../../connector/log.h"
#include "../../connector/retry.h"
#include "../../connector/util.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

struct gateway {
	struct cmb_http *http;
	struct cmb_auth *auth;
	char *device_url;            /* {gateway_url}/api/gateway/DevicePost */
	char *collection_url;        /* {gateway_url}/api/gateway/CollectionPost */
	char *site_code;
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;  /* this cycle's; shared with token requests */
	struct cmb_tenant_stats stats;
	long replays;
	long renewals;
};

static int gw_open(void **out, const struct cmb_config *cfg)
{
	struct gateway *g = xcalloc(1, sizeof(*g));
	g->policy = (struct cmb_retry_policy){
		.max_attempts = (int)cfg->sync_max_attempts,
		.base_delay_s = 0.5,
		.max_delay_s = (double)cfg->sync_max_retry_wait,
		.budget = cfg->sync_retry_budget,
	};
	cmb_retry_budget_init(&g->budget, &g->policy);
	struct cmb_http_opts ho = {
		.name = "tenant",
		.ca_file = cfg->tenant_ca_file,
		.connect_timeout_s = cfg->tenant_connect_timeout,
		.low_speed_time_s = cfg->tenant_timeout,
		.max_response = (size_t)cfg->sync_max_response_mb << 20,
		.rate_limit = (double)cfg->tenant_rate_limit,
		.rate_burst = (double)cfg->tenant_rate_burst,
		.pinned_public_key = cfg->tenant_pinned_public_key,
	};
	cmb_http_opts_network(&ho, cfg);
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
	g->device_url = xasprintf("%.*s/api/gateway/DevicePost", (int)n, cfg->tenant_gateway_url);
	g->collection_url = xasprintf("%.*s/api/gateway/CollectionPost", (int)n, cfg->tenant_gateway_url);
	g->site_code = xstrdup(cfg->site_code);
	*out = g;
	return 0;
fail:
	cmb_auth_free(g->auth);
	cmb_http_free(g->http);
	free(g);
	return rc;
}

static void gw_close(void *st)
{
	struct gateway *g = st;
	if (!g)
		return;
	cmb_auth_free(g->auth);
	cmb_http_free(g->http);
	free(g->device_url);
	free(g->collection_url);
	free(g->site_code);
	free(g);
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

/* Graph errors are {"error":{"code":"...","message":"..."}}; say what the tenant said. */
static void graph_error_text(const struct cmb_http_response *resp, char *out, size_t outlen)
{
	char eb[128];
	yajl_val root = resp->body.data ? yajl_tree_parse(resp->body.data, eb, sizeof(eb)) : NULL;
	const char *pc[] = { "error", "code", NULL }, *pm[] = { "error", "message", NULL };
	yajl_val c = root ? yajl_tree_get(root, pc, yajl_t_string) : NULL;
	yajl_val m = root ? yajl_tree_get(root, pm, yajl_t_string) : NULL;
	if (c || m)
		snprintf(out, outlen, "%s: %s", c ? c->u.string : "error", m ? m->u.string : "");
	else
		snprintf(out, outlen, "no Graph error body (content type %s)",
			 resp->content_type ? resp->content_type : "none");
	yajl_tree_free(root);
}

/*
 * Judges one answer to a batch. 0 with *root set (the caller's) for a
 * complete 200 reply; otherwise a CMB_E* code whose retry class decides
 * what happens next, with *retry_after set (caller frees) for throttling.
 */
static int judge_reply(struct gateway *g, const char *url, const char *batch_id, const char *what,
		       const struct cmb_http_response *resp, yajl_val *root, char **retry_after)
{
	char why[512];
	long st = resp->status;
	if (st == 200) {
		char eb[256] = "";
		yajl_val r = yajl_tree_parse(resp->body.data ? resp->body.data : "", eb, sizeof(eb));
		if (!r) {
			/*
			 * A reply cut short: the batch may or may not have been applied.
			 * Sending it again under the same batchId is safe (the tenant
			 * applies a batch once and replays its answer).
			 */
			return cmb_error_set(CMB_ENETWORK, "tenant reply from %s for batch %s is incomplete or not JSON: %s",
					     url, batch_id, eb);
		}
		if (!YAJL_IS_OBJECT(r)) {
			yajl_tree_free(r);
			return cmb_error_set(CMB_EPROTO, "tenant reply from %s for batch %s is not a JSON object", url,
					     batch_id);
		}
		*root = r;
		return 0;
	}
	graph_error_text(resp, why, sizeof(why));
	if (st == 429 || st == 503) {
		if (resp->retry_after)
			*retry_after = xstrdup(resp->retry_after);
		return cmb_error_set(CMB_ETHROTTLED, "tenant throttled upload of %s batch %s (HTTP %ld, %s)", what,
				     batch_id, st, why);
	}
	if (st == 500 || st == 502 || st == 504)
		return cmb_error_set(CMB_ENETWORK, "tenant failed upload of %s batch %s (HTTP %ld, %s)", what, batch_id,
				     st, why);
	return cmb_error_set(st == 401 || st == 403 ? CMB_EAUTH : CMB_EHTTP,
			     "tenant refused upload of %s batch %s to %s (HTTP %ld, %s)", what, batch_id, url, st, why);
}

/*
 * Posts one batch body (gzip) to url until the tenant answers for it or the
 * retry policy gives up. Every try carries the same body, hence the same
 * batchId. On success *out is the parsed reply object (caller frees).
 */
static int post_batch(struct gateway *g, const char *url, const char *what, const char *batch_id,
		      const struct cmb_buf *body, yajl_val *out)
{
	int rc = 0, renewed = 0;
	for (int attempt = 0;; attempt++) {
		const char *token;
		/* The token endpoint has its own retries from the same budget; its failure is final here. */
		if ((rc = cmb_auth_token(g->auth, &token)) < 0)
			return cmb_error_wrap(rc, "uploading %s batch %s", what, batch_id);
		char rid[37], rid_hdr[64];
		cmb_uuid4(rid);
		snprintf(rid_hdr, sizeof(rid_hdr), "client-request-id: %s", rid);
		const char *headers[] = { "Content-Type: application/json", "Accept: application/json", rid_hdr, NULL };
		struct cmb_http_request req = {
			.method = "POST", .url = url, .headers = headers, .bearer = token,
			.body = body->data, .body_len = body->len, .gzip_body = 1,
		};
		struct cmb_http_response resp;
		char *retry_after = NULL;
		yajl_val root = NULL;
		rc = cmb_http_request(g->http, &req, &resp);
		g->stats.requests++;
		if (rc == 0) {
			g->stats.bytes_out += resp.bytes_out;
			g->stats.bytes_in += resp.bytes_in;
			if (resp.status == 401 && !renewed) {
				/* A token can be revoked or expire early: renew once and try again, off the budget. */
				cmb_http_response_clear(&resp);
				cmb_auth_invalidate(g->auth);
				renewed = 1;
				g->renewals++;
				cmb_info("tenant refused the access token (HTTP 401) for %s batch %s; renewing it", what,
					 batch_id);
				attempt--;
				continue;
			}
			rc = judge_reply(g, url, batch_id, what, &resp, &root, &retry_after);
			cmb_http_response_clear(&resp);
		}
		if (rc == 0) {
			*out = root;
			return 0;
		}
		double wait = 0;
		int again = cmb_retry_next(&g->budget, attempt, rc, retry_after, &wait);
		free(retry_after);
		if (!again) {
			if (cmb_error_retry_class(rc) != CMB_RETRY_NEVER)
				cmb_error_wrap(rc, "gave up after %d attempts (%ld of %ld retries of this cycle spent)",
					       attempt + 1, g->budget.used, g->budget.policy.budget);
			return rc;
		}
		cmb_warn("%s; sending the same batch again in %.1f s (attempt %d of %d)", cmb_error_last(), wait,
			 attempt + 2, g->budget.policy.max_attempts);
		if ((rc = cmb_retry_sleep(wait, NULL)) < 0)
			return rc;
	}
}

/*
 * Reports the reply's results and removals through cb, checking that they
 * answer exactly for keys[0..n) and removals[0..n_removals), in order.
 */
static int report_outcomes(yajl_val root, const char *url, const char *batch_id, const char *const *keys, size_t n,
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
static int upload_body(struct gateway *g, const char *url, const char *what, const char *batch_id,
		       const struct cmb_buf *body, const char *const *keys, size_t n, const char *const *removals,
		       size_t n_removals, cmb_tenant_outcome_cb cb, void *ctx)
{
	yajl_val root = NULL;
	int rc = post_batch(g, url, what, batch_id, body, &root);
	if (rc < 0)
		return rc;
	const char *pp[] = { "replayed", NULL };
	yajl_val replayed = yajl_tree_get(root, pp, yajl_t_true);
	if (replayed) {
		/* An earlier try was applied but its answer was lost: this is that answer. */
		g->replays++;
		cmb_info("tenant had already applied %s batch %s; using its stored answer", what, batch_id);
	}
	rc = report_outcomes(root, url, batch_id, keys, n, removals, n_removals, cb, ctx);
	yajl_tree_free(root);
	return rc;
}

static void add_removals(struct cmb_buf *out, const char *const *removals, size_t n)
{
	cmb_buf_addstr(out, "],\"removals\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			cmb_buf_add(out, ",", 1);
		cmb_buf_add_json_string(out, removals[i], strlen(removals[i]));
	}
	cmb_buf_addstr(out, "]}");
}

static void add_head(const struct gateway *g, const char *batch_id, const char *list, struct cmb_buf *out)
{
	cmb_buf_init(out, SIZE_MAX / 2);
	cmb_buf_addstr(out, "{\"batchId\":");
	cmb_buf_add_json_string(out, batch_id, strlen(batch_id));
	cmb_buf_addstr(out, ",\"siteCode\":");
	cmb_buf_add_json_string(out, g->site_code, strlen(g->site_code));
	cmb_buf_addstr(out, ",\"");
	cmb_buf_addstr(out, list);
	cmb_buf_addstr(out, "\":[");
}

static int gw_upload(void *st, const struct cmb_tenant_batch *b, cmb_tenant_outcome_cb cb, void *ctx)
{
	struct gateway *g = st;
	struct cmb_buf body;
	add_head(g, b->batch_id, "devices", &body);
	const char **keys = xcalloc(b->n_records ? b->n_records : 1, sizeof(*keys));
	for (size_t i = 0; i < b->n_records; i++) {
		if (i)
			cmb_buf_add(&body, ",", 1);
		cmb_buf_add(&body, b->records[i].json, b->records[i].json_len);
		keys[i] = b->records[i].key;
	}
	add_removals(&body, b->removals, b->n_removals);
	int rc = upload_body(g, g->device_url, "device", b->batch_id, &body, keys, b->n_records, b->removals,
			     b->n_removals, cb, ctx);
	free(keys);
	cmb_buf_free(&body);
	return rc;
}

static int gw_upload_collections(void *st, const struct cmb_tenant_collection_batch *b, cmb_tenant_outcome_cb cb,
				 void *ctx)
{
	struct gateway *g = st;
	struct cmb_buf body;
	add_head(g, b->batch_id, "collections", &body);
	for (size_t i = 0; i < b->n; i++) {
		cmb_buf_addstr(&body, i ? ",{\"key\":" : "{\"key\":");
		cmb_buf_add_json_string(&body, b->keys[i], strlen(b->keys[i]));
		cmb_buf_addstr(&body, ",\"configManagerCollection\":");
		cmb_buf_addstr(&body, b->json[i]);
		cmb_buf_add(&body, "}", 1);
	}
	add_removals(&body, b->removals, b->n_removals);
	int rc = upload_body(g, g->collection_url, "collection", b->batch_id, &body, b->keys, b->n, b->removals,
			     b->n_removals, cb, ctx);
	cmb_buf_free(&body);
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
};
