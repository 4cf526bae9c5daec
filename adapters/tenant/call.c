/*
 * call.c - one JSON exchange with a tenant endpoint (see call.h), through
 * the core's request loop (connector/transport/request.h).
 */
#include "adapters/tenant/call.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int call_authorize(void *ctx, const char **header, const char **bearer)
{
	(void)header;
	/* The token endpoint has its own retries from the same budget; its failure is final here. */
	return cmb_auth_token(ctx, bearer);
}

static int call_refused(void *ctx)
{
	/* Renewed once per refusal, and not again while the renewal itself is refused (auth.h). */
	return cmb_auth_refused(ctx);
}

struct json_reply {
	const struct cmb_tenant_call *c;
	yajl_val root;
};

int cmb_tenant_reply_json(const char *body, size_t len, const char *what, const char *url, yajl_val *out)
{
	char eb[256] = "", *where = xasprintf("%s: tenant reply from %s", what, url);
	yajl_val r = NULL;
	int rc = cmb_limit_json_tree(body ? body : "", len, where, &r, eb, sizeof(eb));
	free(where);
	if (rc == CMB_ETOOBIG)
		return rc;
	if (!r)
		/* A reply cut short: the request may have been applied; the same body again is safe. */
		return cmb_error_set(CMB_ENETWORK, "%s: tenant reply from %s is incomplete or not JSON: %s", what, url,
				     eb);
	if (!YAJL_IS_OBJECT(r)) {
		yajl_tree_free(r);
		return cmb_error_set(CMB_EPROTO, "%s: tenant reply from %s is not a JSON object", what, url);
	}
	*out = r;
	return 0;
}

/* A 2xx reply must be one complete JSON object. */
static int json_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct json_reply *jr = ctx;
	yajl_val r = NULL;
	int rc = cmb_tenant_reply_json(resp->body.data, resp->body.len, jr->c->what, jr->c->url, &r);
	if (rc < 0)
		return rc;
	yajl_tree_free(jr->root);
	jr->root = r;
	return 0;
}

int cmb_tenant_call_json(const struct cmb_tenant_call *c, yajl_val *out)
{
	char rid[37], rid_hdr[64];
	cmb_uuid4(rid);
	snprintf(rid_hdr, sizeof(rid_hdr), "client-request-id: %s", rid);
	const char *headers[] = { "Accept: application/json", rid_hdr,
				  c->body ? "Content-Type: application/json" : NULL, NULL };
	const struct cmb_endpoint ep = {
		.side = "tenant", .http = c->http, .budget = c->budget, .authorize = call_authorize,
		.refused = call_refused, .auth_ctx = c->auth, .principal = c->principal,
	};
	struct json_reply jr = { .c = c };
	const struct cmb_request rq = {
		.method = c->method, .url = c->url, .what = c->what, .headers = headers, .body = c->body,
		.body_len = c->body_len, .gzip_body = c->gzip, .interruptible = c->interruptible,
		.stall_s = c->stall_s, .deadline_s = c->deadline_s,
		.finish = json_finish, .finish_ctx = &jr,
	};
	struct cmb_request_counters ctr = { 0 };
	struct cmb_http_response resp;
	int rc = cmb_request(&ep, &rq, &resp, &ctr);
	cmb_http_response_clear(&resp);
	if (c->requests)
		*c->requests += ctr.requests;
	if (c->renewals)
		*c->renewals += ctr.renewals;
	if (c->bytes_out)
		*c->bytes_out += ctr.bytes_out;
	if (c->bytes_in)
		*c->bytes_in += ctr.bytes_in;
	if (rc < 0) {
		yajl_tree_free(jr.root);
		return rc;
	}
	cmb_auth_accepted(c->auth);
	*out = jr.root;
	return 0;
}
