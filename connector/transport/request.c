/*
 * request.c - the one request-with-retry and the one status-to-error
 * mapping (see request.h and docs/retry.md).
 */
#include "connector/transport/request.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

#define MAX_HEADERS 16

void cmb_retry_policy_from_config(struct cmb_retry_policy *out, const struct cmb_config *cfg)
{
	*out = (struct cmb_retry_policy){
		.max_attempts = cfg->sync_max_attempts > 0 ? (int)cfg->sync_max_attempts : 6,
		.base_delay_s = 0.5,
		.max_delay_s = cfg->sync_max_retry_wait > 0 ? (double)cfg->sync_max_retry_wait : 60.0,
		.budget = cfg->sync_retry_budget > 0 ? cfg->sync_retry_budget : 0,
	};
}

/* ---- messages ---------------------------------------------------------- */

char *cmb_request_sanitise(const char *s, size_t len, size_t max, int ascii_only)
{
	return cmb_str_printable(s, len, max, ascii_only);
}

static const char *tree_str(yajl_val root, const char *const *path)
{
	yajl_val v = yajl_tree_get(root, (const char **)path, yajl_t_string);
	return v ? YAJL_GET_STRING(v) : NULL;
}

/* "code: message" from the shapes servers use for errors; NULL when the tree is none of them. */
static char *describe_tree(yajl_val root)
{
	static const char *const odata_code[] = { "error", "code", NULL };
	static const char *const odata_msg[] = { "error", "message", NULL };
	static const char *const oauth_err[] = { "error", NULL };
	static const char *const oauth_desc[] = { "error_description", NULL };
	static const char *const aspnet_msg[] = { "Message", NULL };
	const char *code = tree_str(root, odata_code), *msg = tree_str(root, odata_msg);
	if (!code && !msg) {
		/* OAuth: the description's first line carries the AADSTS code; the rest is trace noise. */
		code = tree_str(root, oauth_err);
		msg = tree_str(root, oauth_desc);
	}
	if (!code && !msg)
		msg = tree_str(root, aspnet_msg);
	if (!code && !msg)
		return NULL;
	size_t mlen = msg ? strcspn(msg, "\r\n") : 0;
	char *sm = msg ? cmb_request_sanitise(msg, mlen, 400, 0) : NULL;
	char *sc = code && *code ? cmb_request_sanitise(code, strlen(code), 80, 0) : NULL;
	char *out = sc && sm ? xasprintf("%s: %s", sc, sm) : xstrdup(sc ? sc : sm ? sm : "");
	free(sm);
	free(sc);
	return out;
}

char *cmb_request_describe_body(const struct cmb_http_response *resp)
{
	const char *data = resp->body.data ? resp->body.data : "";
	size_t len = resp->body.len;
	if (len == 0)
		return xstrdup("empty body");
	if (cmb_http_is_json(resp->content_type) || data[0] == '{') {
		yajl_val tree = NULL;
		char eb[8];
		char *out = cmb_limit_json_tree(data, len, "error body", &tree, eb, sizeof(eb)) == 0 ? describe_tree(tree) : NULL;
		yajl_tree_free(tree);
		if (out)
			return out;
	}
	char *first = cmb_request_sanitise(data, len, 120, 1);
	char *out = xasprintf("not an error body cmbridge knows (Content-Type '%s'): '%s'",
			      resp->content_type ? resp->content_type : "none", first);
	free(first);
	return out;
}

int cmb_request_status_error(const struct cmb_endpoint *ep, const struct cmb_request *rq,
			     const struct cmb_http_response *resp)
{
	char *why = cmb_request_describe_body(resp);
	const char *what = rq->what ? rq->what : rq->url;
	long st = resp->status;
	int code;
	if (st == 401 || (st == 400 && ep->credential_endpoint)) {
		if (ep->principal)
			code = cmb_error_set(CMB_EAUTH, "%s: %s refused the credentials of %s%s%s%s at %s (HTTP %ld: %s)",
					     what, ep->side, ep->principal, ep->scheme ? " (" : "",
					     ep->scheme ? ep->scheme : "", ep->scheme ? ")" : "", rq->url, st, why);
		else
			code = cmb_error_set(CMB_EAUTH, "%s: %s at %s requires authentication but %s (HTTP %ld: %s)",
					     what, ep->side, rq->url,
					     ep->no_credentials ? ep->no_credentials : "no credentials are configured", st,
					     why);
	} else if (st == 403) {
		code = cmb_error_set(CMB_EAUTH, "%s: %s denied %s access to %s (HTTP 403: %s)", what, ep->side,
				     ep->principal ? ep->principal : "anonymous", rq->url, why);
	} else if (st == 404 && strstr(why, "Access denied")) {
		/* The AdminService answers a WMI access refusal with 404 ("Access denied  WMI QUERY: "). */
		code = cmb_error_set(CMB_EAUTH, "%s: %s denied %s access to %s (HTTP 404: %s)", what, ep->side,
				     ep->principal ? ep->principal : "anonymous", rq->url, why);
	} else if (st == 404) {
		code = cmb_error_set(CMB_ENOTFOUND, "%s: %s not found at %s (HTTP 404: %s)", what,
				     rq->resource ? rq->resource : "resource", rq->url, why);
	} else if (st == 429 || st == 503) {
		code = cmb_error_set(CMB_ETHROTTLED, "%s: %s is busy (HTTP %ld%s%s): %s", what, ep->side, st,
				     resp->retry_after ? ", Retry-After " : "", resp->retry_after ? resp->retry_after : "",
				     why);
	} else if (st >= 300 && st < 400) {
		/* Never followed: the credentials of this endpoint must not reach wherever it points. */
		char *to = resp->location ? cmb_request_sanitise(resp->location, strlen(resp->location), 300, 1) : NULL;
		code = cmb_error_set(CMB_EHTTP, "%s: %s answered HTTP %ld: a redirect to %s, not followed (cmbridge sends "
				     "requests and credentials only to the configured URL; point the configuration at the "
				     "new address if it moved) for %s", what, ep->side, st, to ? to : "(no Location)", rq->url);
		free(to);
	} else if (st == 408 || st == 500 || st == 502 || st == 504) {
		/* A gateway or a briefly failing server: transient, retried like a reset connection. */
		code = cmb_error_set(CMB_ENETWORK, "%s: %s answered HTTP %ld for %s: %s", what, ep->side, st, rq->url,
				     why);
	} else {
		code = cmb_error_set(CMB_EHTTP, "%s: %s answered HTTP %ld for %s: %s", what, ep->side, st, rq->url, why);
	}
	free(why);
	return code;
}

/* Adds to the message why a failed request is not tried again. */
static int give_up(const struct cmb_endpoint *ep, int rc, int attempts, int allowed)
{
	if (cmb_error_retry_class(rc) == CMB_RETRY_NEVER || !ep->budget)
		return rc;
	const struct cmb_retry_budget *b = ep->budget;
	char *msg = xstrdup(cmb_error_last());
	if (!allowed)
		cmb_error_set(rc, "%s (not retried: the request is not safe to send twice)", msg);
	else if (attempts >= b->policy.max_attempts)
		cmb_error_set(rc, "%s (gave up after %d attempts; %ld of %ld retries of this cycle spent)", msg,
			      attempts, b->used, b->policy.budget);
	else
		cmb_error_set(rc, "%s (not retried: the cycle's retry budget of %ld is spent)", msg, b->policy.budget);
	free(msg);
	return rc;
}

/* Adds to the message that the request's deadline passed; returns rc. */
static int past_deadline(int rc, int attempts, long deadline, const char *option)
{
	char *msg = xstrdup(cmb_error_last());
	cmb_error_set(rc, "%s (gave up after %d attempt%s: the deadline of %ld s (%s) passed)", msg, attempts,
		      attempts == 1 ? "" : "s", deadline, option);
	free(msg);
	return rc;
}

/* ---- the process's totals ------------------------------------------------ */

enum total { T_REQUESTS, T_RETRIES, T_THROTTLED, T_RENEWALS, T_TOKENS, T_N };
static atomic_long totals[CMB_REQUEST_SIDES][T_N];

static enum cmb_request_side side_of(const struct cmb_endpoint *ep)
{
	if (ep->credential_endpoint)
		return CMB_REQUEST_SIDE_TOKEN;
	return ep->side && strcmp(ep->side, "site") == 0 ? CMB_REQUEST_SIDE_SITE : CMB_REQUEST_SIDE_TENANT;
}

static void count(const struct cmb_endpoint *ep, enum total what)
{
	atomic_fetch_add_explicit(&totals[side_of(ep)][what], 1, memory_order_relaxed);
}

const char *cmb_request_side_name(enum cmb_request_side side)
{
	static const char *const names[CMB_REQUEST_SIDES] = { "site", "tenant", "token" };
	return side < CMB_REQUEST_SIDES ? names[side] : NULL;
}

void cmb_request_totals(struct cmb_request_totals out[CMB_REQUEST_SIDES])
{
	for (int i = 0; i < CMB_REQUEST_SIDES; i++)
		out[i] = (struct cmb_request_totals){
			.requests = atomic_load(&totals[i][T_REQUESTS]), .retries = atomic_load(&totals[i][T_RETRIES]),
			.throttled = atomic_load(&totals[i][T_THROTTLED]), .renewals = atomic_load(&totals[i][T_RENEWALS]),
			.tokens = atomic_load(&totals[i][T_TOKENS]),
		};
}

/* ---- the loop ------------------------------------------------------------ */

int cmb_request(const struct cmb_endpoint *ep, const struct cmb_request *rq, struct cmb_http_response *resp,
		struct cmb_request_counters *counters)
{
	const char *method = rq->method ? rq->method : "GET";
	const char *what = rq->what ? rq->what : rq->url;
	const char *deadline_option = NULL;
	long deadline = cmb_http_deadline(ep->http, &deadline_option);
	int renewed = 0, rc;

	if (rq->deadline_s > 0)
		deadline = rq->deadline_s;
	/* One deadline for the whole request: a server that stalls or drips cannot hold a cycle past it. */
	double end = deadline > 0 ? cmb_now_mono() + (double)deadline : 0;
	memset(resp, 0, sizeof(*resp));
	for (int attempt = 0;; attempt++) {
		const char *headers[MAX_HEADERS + 2];
		const char *auth_header = NULL, *bearer = NULL;
		size_t nh = 0;

		cmb_http_response_clear(resp);
		if (rq->reset)
			rq->reset(rq->sink_ctx);
		if (ep->authorize && (rc = ep->authorize(ep->auth_ctx, &auth_header, &bearer)) < 0)
			return cmb_error_wrap(rc, "%s", what);
		const void *body = rq->body;
		size_t body_len = rq->body_len;
		if (rq->prepare && (rc = rq->prepare(rq->prepare_ctx, &body, &body_len)) < 0)
			return cmb_error_wrap(rc, "%s", what);
		for (const char *const *h = rq->headers; h && *h && nh < MAX_HEADERS; h++)
			headers[nh++] = *h;
		if (auth_header)
			headers[nh++] = auth_header;
		headers[nh] = NULL;
		struct cmb_http_request req = {
			.method = method, .url = rq->url, .headers = headers, .bearer = bearer, .body = body,
			.body_len = body_len, .gzip_body = rq->gzip_body, .interruptible = rq->interruptible,
			.stall_s = rq->stall_s, .once = rq->retry == CMB_REQUEST_ONCE,
			.timeout_s = end > 0 ? end - cmb_now_mono() : 0,
			.max_response = rq->max_response, .max_limit = rq->max_limit,
			.sink = rq->sink, .sink_ctx = rq->sink_ctx,
		};
		if (end > 0 && req.timeout_s < 0.001)
			req.timeout_s = 0.001;
		cmb_debug("%s: %s %s", ep->side, method, rq->url);
		rc = cmb_http_request(ep->http, &req, resp);
		count(ep, T_REQUESTS);
		if (rc == 0 && resp->status == 429)
			count(ep, T_THROTTLED);
		if (counters) {
			counters->requests++;
			counters->bytes_out += resp->bytes_out;
			counters->bytes_in += resp->bytes_in;
		}
		if (rc == 0 && resp->status == 401 && !renewed && ep->refused && ep->refused(ep->auth_ctx)) {
			/* A token can be revoked or expire early: renew once and try again, off the budget. */
			renewed = 1;
			count(ep, T_RENEWALS);
			if (counters)
				counters->renewals++;
			cmb_info("%s refused the credentials (HTTP 401) for %s; renewing them", ep->side, what);
			attempt--;
			continue;
		}
		if (rc < 0) {
			if (rc == CMB_ECANCELED)
				return rc;
			/* Sink and finish messages already say where; the transport's do not. */
			if (strncmp(cmb_error_last(), what, strlen(what)) != 0)
				cmb_error_wrap(rc, "%s", what);
		} else if (resp->status < 200 || resp->status > 299) {
			rc = cmb_request_status_error(ep, rq, resp);
		} else if (rq->finish && (rc = rq->finish(rq->finish_ctx, resp)) < 0) {
			if (strncmp(cmb_error_last(), what, strlen(what)) != 0)
				cmb_error_wrap(rc, "%s", what);
		} else {
			if (ep->credential_endpoint)
				count(ep, T_TOKENS);
			return 0;
		}

		double wait = 0;
		int allowed = rq->retry == CMB_REQUEST_IDEMPOTENT || rc == CMB_ETHROTTLED;
		int again = allowed && ep->budget &&
			    cmb_retry_next(ep->budget, attempt, rc, resp->status ? resp->retry_after : NULL, &wait);
		if (!again)
			return give_up(ep, rc, attempt + 1, allowed);
		if (end > 0 && cmb_now_mono() + wait >= end)
			return past_deadline(rc, attempt + 1, deadline, deadline_option);
		cmb_warn("%s; trying again in %.2f s (attempt %d of %d)", cmb_error_last(), wait, attempt + 2,
			 ep->budget->policy.max_attempts);
		count(ep, T_RETRIES);
		if ((rc = cmb_retry_sleep(wait)) < 0)
			return rc;
	}
}
