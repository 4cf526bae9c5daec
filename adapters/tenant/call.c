/*
 * call.c - the tenant's JSON request with retries (see call.h).
 */
#include "adapters/tenant/call.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmb_tenant_error_text(const struct cmb_http_response *resp, char *out, size_t outlen)
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
 * Judges one answer. 0 with *root set (the caller's) for a complete 200
 * reply; otherwise a CMB_E* code whose retry class decides what happens
 * next, with *retry_after set (caller frees) for throttling.
 */
static int judge(const struct cmb_tenant_call *c, const struct cmb_http_response *resp, yajl_val *root,
		 char **retry_after)
{
	char why[512];
	long st = resp->status;
	if (st == 200) {
		char eb[256] = "";
		yajl_val r = yajl_tree_parse(resp->body.data ? resp->body.data : "", eb, sizeof(eb));
		if (!r) {
			/* A reply cut short: the request may have been applied; the same body again is safe. */
			return cmb_error_set(CMB_ENETWORK, "tenant reply from %s for %s is incomplete or not JSON: %s",
					     c->url, c->what, eb);
		}
		if (!YAJL_IS_OBJECT(r)) {
			yajl_tree_free(r);
			return cmb_error_set(CMB_EPROTO, "tenant reply from %s for %s is not a JSON object", c->url,
					     c->what);
		}
		*root = r;
		return 0;
	}
	cmb_tenant_error_text(resp, why, sizeof(why));
	if (st == 429 || st == 503) {
		if (resp->retry_after)
			*retry_after = xstrdup(resp->retry_after);
		return cmb_error_set(CMB_ETHROTTLED, "tenant throttled %s (HTTP %ld, %s)", c->what, st, why);
	}
	if (st == 500 || st == 502 || st == 504)
		return cmb_error_set(CMB_ENETWORK, "tenant failed %s (HTTP %ld, %s)", c->what, st, why);
	return cmb_error_set(st == 401 || st == 403 ? CMB_EAUTH : CMB_EHTTP, "tenant refused %s at %s (HTTP %ld, %s)",
			     c->what, c->url, st, why);
}

int cmb_tenant_call_json(const struct cmb_tenant_call *c, yajl_val *out)
{
	int rc = 0, renewed = 0;
	for (int attempt = 0;; attempt++) {
		const char *token;
		/* The token endpoint has its own retries from the same budget; its failure is final here. */
		if ((rc = cmb_auth_token(c->auth, &token)) < 0)
			return cmb_error_wrap(rc, "%s", c->what);
		char rid[37], rid_hdr[64];
		cmb_uuid4(rid);
		snprintf(rid_hdr, sizeof(rid_hdr), "client-request-id: %s", rid);
		const char *headers[] = { "Accept: application/json", rid_hdr,
					  c->body ? "Content-Type: application/json" : NULL, NULL };
		struct cmb_http_request req = {
			.method = c->method, .url = c->url, .headers = headers, .bearer = token,
			.body = c->body, .body_len = c->body_len, .gzip_body = c->gzip,
			.interruptible = c->interruptible,
		};
		struct cmb_http_response resp;
		char *retry_after = NULL;
		yajl_val root = NULL;
		rc = cmb_http_request(c->http, &req, &resp);
		if (c->requests)
			(*c->requests)++;
		if (rc == 0) {
			if (c->bytes_out)
				*c->bytes_out += resp.bytes_out;
			if (c->bytes_in)
				*c->bytes_in += resp.bytes_in;
			if (resp.status == 401 && !renewed) {
				/* A token can be revoked or expire early: renew once and try again, off the budget. */
				cmb_http_response_clear(&resp);
				cmb_auth_invalidate(c->auth);
				renewed = 1;
				if (c->renewals)
					(*c->renewals)++;
				cmb_info("tenant refused the access token (HTTP 401) for %s; renewing it", c->what);
				attempt--;
				continue;
			}
			rc = judge(c, &resp, &root, &retry_after);
			cmb_http_response_clear(&resp);
		} else {
			cmb_error_wrap(rc, "%s", c->what);
		}
		if (rc == 0) {
			*out = root;
			return 0;
		}
		double wait = 0;
		int again = cmb_retry_next(c->budget, attempt, rc, retry_after, &wait);
		free(retry_after);
		if (!again) {
			if (cmb_error_retry_class(rc) != CMB_RETRY_NEVER)
				cmb_error_wrap(rc, "gave up after %d attempts (%ld of %ld retries of this cycle spent)",
					       attempt + 1, c->budget->used, c->budget->policy.budget);
			return rc;
		}
		cmb_warn("%s; trying again in %.1f s (attempt %d of %d)", cmb_error_last(), wait, attempt + 2,
			 c->budget->policy.max_attempts);
		if ((rc = cmb_retry_sleep(wait, NULL)) < 0)
			return rc;
	}
}
