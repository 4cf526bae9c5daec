/*
 * call.h - one JSON exchange with a tenant endpoint (the gateway's uploads
 * and the notification channel) through the core's request loop
 * (connector/transport/request.h, docs/retry.md).
 *
 * Every try sends the same body (uploads carry their batchId in it, so a
 * retried batch is applied once); a 401 renews the token once, off the
 * budget, and not again while the renewal is refused too; 429/503 wait
 * what Retry-After says; 500/502/504, network errors and cut-off replies
 * back off with full jitter; anything else is final. Replies are read
 * within the JSON limits (connector/base/limits.h).
 */
#ifndef CMB_TENANT_CALL_H
#define CMB_TENANT_CALL_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "connector/transport/auth.h"
#include "connector/transport/http.h"
#include "connector/transport/request.h"
#include "connector/transport/retry.h"

struct cmb_tenant_call {
	struct cmb_http *http;
	struct cmb_auth *auth;
	struct cmb_retry_budget *budget;
	const char *method;          /* "GET" or "POST" */
	const char *url;
	const char *what;            /* for messages: "upload of devices batch <id>", "notification poll" */
	const char *principal;       /* for 401/403 messages: "client <id>" */
	const void *body;            /* NULL for none */
	size_t body_len;
	int gzip;
	int interruptible;           /* an idle long poll: a reload request may end it */
	long stall_s;                /* its stall limit (the tenant holds a long poll silent); 0: the handle's */
	long deadline_s;             /* the whole request, retries included (request.h); 0: the handle's */
	/* Counters the caller keeps (each may be NULL). */
	long *requests;
	long *renewals;
	size_t *bytes_out;
	size_t *bytes_in;
};

/*
 * Reads a 2xx reply body as the tenant's JSON object (*out, caller frees):
 * CMB_ENETWORK for a body cut short or not JSON (the request may have been
 * applied: the same body again is safe), CMB_EPROTO for JSON that is not an
 * object, CMB_ETOOBIG past the limits. what and url name it in messages.
 */
int cmb_tenant_reply_json(const char *body, size_t len, const char *what, const char *url, yajl_val *out);

/* On success *out is the reply's JSON object (caller frees with yajl_tree_free). */
int cmb_tenant_call_json(const struct cmb_tenant_call *c, yajl_val *out);

#endif
