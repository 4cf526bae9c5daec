/*
 * gateway.c - the tenant adapter: bulk device upload through the connector
 * gateway (docs/wire-format.md §3), authenticated with client credentials.
 *
 * Must never: upload one request per device, log a token, or report a batch
 * as applied when the tenant did not answer for it.
 */
#include "../tenant.h"
#include "../../connector/auth.h"
#include "../../connector/error.h"
#include "../../connector/http.h"
#include "../../connector/log.h"
#include "../../connector/util.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#define UPLOAD_ATTEMPTS 4
#define RETRY_CAP_S 60.0

struct gateway {
	struct cmb_http *http;
	struct cmb_auth *auth;
	char *upload_url;
	char *site_code;
	struct cmb_tenant_stats stats;
};

static int gw_open(void **out, const struct cmb_config *cfg)
{
	struct gateway *g = xcalloc(1, sizeof(*g));
	struct cmb_http_opts ho = {
		.name = "tenant",
		.ca_file = cfg->tenant_ca_file,
		.low_speed_time_s = cfg->tenant_timeout,
		.max_response = (size_t)cfg->sync_max_response_mb << 20,
	};
	int rc = cmb_http_new(&g->http, &ho);
	if (rc < 0)
		goto fail;
	struct cmb_auth_opts ao = {
		.token_url = cfg->tenant_token_url,
		.client_id = cfg->tenant_client_id,
		.client_secret_file = cfg->tenant_client_secret_file,
		.scope = cfg->tenant_scope,
	};
	if ((rc = cmb_auth_new(&g->auth, g->http, &ao)) < 0)
		goto fail;
	size_t n = strlen(cfg->tenant_gateway_url);
	while (n > 0 && cfg->tenant_gateway_url[n - 1] == '/')
		n--;
	g->upload_url = xasprintf("%.*s/api/gateway/DevicePost", (int)n, cfg->tenant_gateway_url);
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
	free(g->upload_url);
	free(g->site_code);
	free(g);
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

static void build_body(const struct gateway *g, const struct cmb_tenant_batch *b, struct cmb_buf *out)
{
	cmb_buf_init(out, SIZE_MAX / 2);
	cmb_buf_addstr(out, "{\"batchId\":");
	cmb_buf_add_json_string(out, b->batch_id, strlen(b->batch_id));
	cmb_buf_addstr(out, ",\"siteCode\":");
	cmb_buf_add_json_string(out, g->site_code, strlen(g->site_code));
	cmb_buf_addstr(out, ",\"devices\":[");
	for (size_t i = 0; i < b->n_records; i++) {
		if (i)
			cmb_buf_add(out, ",", 1);
		cmb_buf_add(out, b->records[i].json, b->records[i].json_len);
	}
	cmb_buf_addstr(out, "],\"removals\":[");
	for (size_t i = 0; i < b->n_removals; i++) {
		if (i)
			cmb_buf_add(out, ",", 1);
		cmb_buf_add_json_string(out, b->removals[i], strlen(b->removals[i]));
	}
	cmb_buf_addstr(out, "]}");
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

/* Seconds to wait before a retry: the server's Retry-After when given, else backoff with jitter. */
static double retry_delay(const char *retry_after, int attempt)
{
	if (retry_after) {
		char *end;
		double s = strtod(retry_after, &end);
		if (end != retry_after && s >= 0)
			return s < RETRY_CAP_S ? s : RETRY_CAP_S;
	}
	double cap = (double)(1u << (attempt < 6 ? attempt : 6));
	if (cap > RETRY_CAP_S)
		cap = RETRY_CAP_S;
	/* Full jitter: uniform in [0, cap). */
	unsigned char r;
	RAND_bytes(&r, 1);
	return cap * ((double)r / 256.0);
}

static int parse_reply(const struct cmb_tenant_batch *b, const struct cmb_http_response *resp,
		       cmb_tenant_outcome_cb cb, void *ctx, const char *url)
{
	char eb[256] = "";
	int rc = 0;
	yajl_val root = yajl_tree_parse(resp->body.data ? resp->body.data : "", eb, sizeof(eb));
	if (!root || !YAJL_IS_OBJECT(root))
		return cmb_error_set(CMB_EPROTO, "tenant reply from %s is not a JSON object: %s", url,
				     root ? "wrong type" : eb);
	const char *pr[] = { "results", NULL }, *pm[] = { "removals", NULL };
	yajl_val results = yajl_tree_get(root, pr, yajl_t_array);
	yajl_val removals = yajl_tree_get(root, pm, yajl_t_array);
	if (!results || !removals || results->u.array.len != b->n_records ||
	    removals->u.array.len != b->n_removals) {
		rc = cmb_error_set(CMB_EPROTO,
				   "tenant reply from %s does not answer for the batch: expected %zu results and %zu "
				   "removals",
				   url, b->n_records, b->n_removals);
		goto done;
	}
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		yajl_val arr = pass == 0 ? results : removals;
		for (size_t i = 0; i < arr->u.array.len && rc == 0; i++) {
			yajl_val e = arr->u.array.values[i];
			const char *pk[] = { "key", NULL }, *ps[] = { "status", NULL }, *pi[] = { "id", NULL };
			const char *pec[] = { "error", "code", NULL }, *pem[] = { "error", "message", NULL };
			yajl_val k = yajl_tree_get(e, pk, yajl_t_string);
			yajl_val s = yajl_tree_get(e, ps, yajl_t_string);
			yajl_val id = yajl_tree_get(e, pi, yajl_t_string);
			yajl_val ec = yajl_tree_get(e, pec, yajl_t_string);
			yajl_val em = yajl_tree_get(e, pem, yajl_t_string);
			const char *want = pass == 0 ? b->records[i].key : b->removals[i];
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
done:
	yajl_tree_free(root);
	return rc;
}

static int gw_upload(void *st, const struct cmb_tenant_batch *b, cmb_tenant_outcome_cb cb, void *ctx)
{
	struct gateway *g = st;
	struct cmb_buf body;
	build_body(g, b, &body);
	int rc = 0, renewed = 0;
	for (int attempt = 0;; attempt++) {
		const char *token;
		if ((rc = cmb_auth_token(g->auth, &token)) < 0)
			break;
		char rid[37], rid_hdr[64];
		cmb_uuid4(rid);
		snprintf(rid_hdr, sizeof(rid_hdr), "client-request-id: %s", rid);
		const char *headers[] = { "Content-Type: application/json", "Accept: application/json", rid_hdr, NULL };
		struct cmb_http_request req = {
			.method = "POST", .url = g->upload_url, .headers = headers, .bearer = token,
			.body = body.data, .body_len = body.len, .gzip_body = 1,
		};
		struct cmb_http_response resp;
		rc = cmb_http_request(g->http, &req, &resp);
		g->stats.requests++;
		if (rc == 0) {
			g->stats.bytes_out += resp.bytes_out;
			g->stats.bytes_in += resp.bytes_in;
		}
		char *retry_after = NULL;
		if (rc == 0) {
			char why[512];
			if (resp.status == 200) {
				rc = parse_reply(b, &resp, cb, ctx, g->upload_url);
			} else if (resp.status == 401 && !renewed) {
				/* A token can be revoked or expire early: renew once, then give up. */
				cmb_auth_invalidate(g->auth);
				renewed = 1;
				cmb_http_response_clear(&resp);
				attempt--;
				continue;
			} else if (resp.status == 429 || resp.status == 503) {
				graph_error_text(&resp, why, sizeof(why));
				rc = cmb_error_set(CMB_ETHROTTLED, "tenant throttled upload of batch %s (HTTP %ld, %s)",
						   b->batch_id, resp.status, why);
				retry_after = resp.retry_after ? xstrdup(resp.retry_after) : NULL;
			} else if (resp.status >= 500) {
				graph_error_text(&resp, why, sizeof(why));
				rc = cmb_error_set(CMB_ENETWORK, "tenant failed upload of batch %s (HTTP %ld, %s)",
						   b->batch_id, resp.status, why);
			} else {
				graph_error_text(&resp, why, sizeof(why));
				rc = cmb_error_set(resp.status == 401 || resp.status == 403 ? CMB_EAUTH : CMB_EHTTP,
						   "tenant refused upload of batch %s to %s (HTTP %ld, %s)", b->batch_id,
						   g->upload_url, resp.status, why);
			}
			cmb_http_response_clear(&resp);
		}
		if (rc == 0 || cmb_error_retry_class(rc) == CMB_RETRY_NEVER || attempt + 1 >= UPLOAD_ATTEMPTS) {
			free(retry_after);
			break;
		}
		double wait = retry_delay(retry_after, attempt);
		free(retry_after);
		cmb_warn("%s; retrying the same batch in %.1f s (attempt %d of %d)", cmb_error_last(), wait,
			 attempt + 2, UPLOAD_ATTEMPTS);
		struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
		nanosleep(&ts, NULL);
	}
	cmb_buf_free(&body);
	return rc;
}

const struct cmb_tenant_adapter cmb_tenant_gateway = {
	.version = CMB_TENANT_ADAPTER_VERSION,
	.name = "gateway",
	.open = gw_open,
	.check = gw_check,
	.upload = gw_upload,
	.stats = gw_stats,
	.close = gw_close,
};
