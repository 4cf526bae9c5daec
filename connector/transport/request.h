/*
 * request.h - the connector's one request-with-retry, and its one mapping
 * from an HTTP status to an error code (docs/retry.md).
 *
 * Every module that talks to a server (the site's page reader and its
 * operations, the tenant's uploads and notification channel, the token
 * client) sends through cmb_request(): one loop decides what is tried
 * again, how long to wait, when a refused credential is renewed, and how a
 * status becomes a CMB_E* code with a message that says where.
 *
 * Must never: retry a request that is not safe to send twice except after
 * 429/503 (the server did not take it); log a header value or a body; wait
 * past the process-wide stop request.
 */
#ifndef CMB_REQUEST_H
#define CMB_REQUEST_H

#include <stddef.h>

#include "connector/transport/http.h"
#include "connector/transport/retry.h"

struct cmb_config;

/*
 * The retry policy of [sync] max_attempts, max_retry_wait and retry_budget,
 * the same towards every server: retry_budget = 0 means no retries at all
 * (each request is tried once; a refused token is still renewed once).
 */
void cmb_retry_policy_from_config(struct cmb_retry_policy *out, const struct cmb_config *cfg);

/* One server endpoint as the request loop sees it (every member borrowed). */
struct cmb_endpoint {
	const char *side;                   /* "site", "tenant", "token endpoint": starts messages */
	struct cmb_http *http;
	struct cmb_retry_budget *budget;    /* shared by the endpoint's requests; NULL: one try each */
	/*
	 * Credentials for one attempt: *header is a whole "Authorization: ..."
	 * line, *bearer a token for http.h's bearer field (either or neither;
	 * both start NULL). NULL: nothing to add (NTLM and Negotiate live on the
	 * handle). A failure is returned as it is.
	 */
	int (*authorize)(void *ctx, const char **header, const char **bearer);
	/* After a 401: 1 when a renewed credential is worth one more try (off the budget), else 0. */
	int (*refused)(void *ctx);
	void *auth_ctx;
	const char *principal;              /* for 401/403 messages: "CONTOSO\\svc", "client <id>"; NULL: none */
	const char *scheme;                 /* "NTLM", "Bearer"...; NULL */
	const char *no_credentials;         /* 401 without a principal: "[site] auth = none" */
	int credential_endpoint;            /* a token endpoint: 400 and 401 mean refused credentials */
};

enum cmb_request_retry {
	CMB_REQUEST_IDEMPOTENT = 0,         /* GET, or a POST with an idempotency key: every transient failure */
	CMB_REQUEST_ONCE,                   /* not safe twice: retried only after 429/503 */
};

struct cmb_request {
	const char *method;                 /* "GET" (default), "POST" */
	const char *url;
	const char *what;                   /* "SMS_R_System page 3": starts every message */
	const char *resource;               /* 404 messages: "class SMS_R_System"; NULL: the URL */
	const char *const *headers;         /* extra "Name: value" lines, NULL-terminated; may be NULL */
	const void *body;
	size_t body_len;
	/*
	 * Builds the body of each attempt instead (a client assertion is new on
	 * every try): *body stays the callback's until its next call. May be NULL.
	 */
	int (*prepare)(void *ctx, const void **body, size_t *body_len);
	void *prepare_ctx;
	int gzip_body;
	int interruptible;                  /* an idle wait (long poll): a reload request may end it */
	long stall_s;                       /* the stall limit of this request (http.h); 0: the handle's */
	/*
	 * Seconds this request may take, every attempt and every wait between
	 * them included ([site] page_timeout, [tenant] request_timeout); 0: the
	 * handle's (cmb_http_deadline). Past it the last error is returned.
	 */
	long deadline_s;
	size_t max_response;                /* the body limit of this request (http.h); 0: the handle's */
	enum cmb_limit max_limit;           /* the limit max_response stands for (http.h) */
	enum cmb_request_retry retry;
	/*
	 * Streaming 2xx bodies: sink gets every piece as it arrives (http.h);
	 * reset (may be NULL) runs before every attempt, so what a failed
	 * attempt delivered is dropped and nothing reaches the caller twice.
	 */
	cmb_http_sink sink;
	void *sink_ctx;
	void (*reset)(void *ctx);
	/*
	 * Checks a complete 2xx answer (resp->body when no sink was used):
	 * 0 to accept it, or a CMB_E* code whose retry class decides whether
	 * the request is tried again (a body cut short: CMB_ENETWORK). May be
	 * NULL: every 2xx is accepted.
	 */
	int (*finish)(void *ctx, const struct cmb_http_response *resp);
	void *finish_ctx;
};

/* What the endpoint's requests cost, for stats and benchmarks (the caller's, added to). */
struct cmb_request_counters {
	long requests;                      /* HTTP exchanges, retries included */
	long renewals;                      /* credentials renewed after a 401 */
	size_t bytes_out, bytes_in;
};

/*
 * What every request loop of the process did, by side, since it started
 * (for the metrics; thread-safe): the token endpoints' requests count
 * under CMB_REQUEST_SIDE_TOKEN, the others by their endpoint's side.
 */
enum cmb_request_side { CMB_REQUEST_SIDE_SITE, CMB_REQUEST_SIDE_TENANT, CMB_REQUEST_SIDE_TOKEN, CMB_REQUEST_SIDES };
struct cmb_request_totals {
	long requests;                      /* HTTP exchanges, retries included */
	long retries;                       /* attempts after a failed one (not the renewal after a 401) */
	long throttled;                     /* 429 Too Many Requests answers */
	long renewals;                      /* credentials renewed after a 401 */
	long tokens;                        /* tokens obtained (2xx answers of a token endpoint) */
};
/* "site", "tenant", "token" (static). */
const char *cmb_request_side_name(enum cmb_request_side side);
/* A copy of the totals, indexed by enum cmb_request_side. */
void cmb_request_totals(struct cmb_request_totals out[CMB_REQUEST_SIDES]);

/*
 * Sends rq, retrying what the policy allows. Returns 0 when an accepted
 * 2xx answer arrived: *resp holds it. Otherwise a negative code with the
 * message set (network, TLS, throttled, HTTP status, the finish hook's, or
 * CMB_ECANCELED on a stop request); *resp then holds the last answer when
 * one arrived (status 0 when none), so a caller may read more from it.
 * Either way the caller clears *resp (cmb_http_response_clear). counters
 * may be NULL.
 */
int cmb_request(const struct cmb_endpoint *ep, const struct cmb_request *rq, struct cmb_http_response *resp,
		struct cmb_request_counters *counters);

/*
 * The one status-to-error mapping: sets the message for a non-2xx answer
 * and returns its code. 401 and 403 CMB_EAUTH (and 400 at a credential
 * endpoint); 404 CMB_ENOTFOUND; 429 and 503 CMB_ETHROTTLED; 408, 500, 502
 * and 504 CMB_ENETWORK (transient); everything else CMB_EHTTP (final): a
 * 3xx says where it led and that it was not followed.
 */
int cmb_request_status_error(const struct cmb_endpoint *ep, const struct cmb_request *rq,
			     const struct cmb_http_response *resp);

/*
 * What an error body says, for messages (caller frees): the OData/Graph
 * "error" code and message, an OAuth error and the first line of its
 * description, an ASP.NET "Message", or else its content type and first
 * bytes (control and non-ASCII bytes replaced). Never the whole body.
 */
char *cmb_request_describe_body(const struct cmb_http_response *resp);

/* s (len bytes) for a message: at most max bytes, controls as '.', with ascii_only bytes >= 0x80 too. Caller frees. */
char *cmb_request_sanitise(const char *s, size_t len, size_t max, int ascii_only);

#endif
