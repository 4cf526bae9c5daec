/*
 * http.h - the HTTP core every adapter uses, on libcurl.
 *
 * One cmb_http per remote endpoint (site, tenant) so connections are reused
 * (NTLM authenticates a connection, so this matters for more than speed).
 * TLS verification is always on; the knobs are which CA file to trust, an
 * optional public-key pin and an optional client certificate. Proxies come
 * from [network], or from HTTPS_PROXY/NO_PROXY when the config says nothing.
 * Responses are either collected into a bounded buffer or streamed to a
 * sink while they download (so a page is parsed as it arrives and memory is
 * bounded by one record). Request bodies can be gzip-compressed.
 */
#ifndef CMB_HTTP_H
#define CMB_HTTP_H

#include <stddef.h>
#include "connector/base/limits.h"
#include "connector/base/util.h"

struct cmb_config;
struct cmb_http;

enum cmb_http_auth {
	CMB_HTTP_AUTH_NONE = 0,   /* or a header the caller adds (Basic, Bearer) */
	CMB_HTTP_AUTH_NTLM,       /* libcurl NTLM with username/password */
	CMB_HTTP_AUTH_NEGOTIATE,  /* libcurl SPNEGO through GSS-API: the Kerberos ccache or KRB5_CLIENT_KTNAME */
};

enum cmb_http_proxy_auth {
	CMB_HTTP_PROXY_AUTH_NONE = 0,
	CMB_HTTP_PROXY_AUTH_BASIC,
	CMB_HTTP_PROXY_AUTH_NTLM,
};

struct cmb_http_opts {
	const char *name;            /* "site" or "tenant": used in messages */
	const char *ca_file;         /* PEM bundle to trust; NULL = system store */
	long connect_timeout_s;      /* default 15 */
	long low_speed_time_s;       /* abort when slower than min_speed for this long; default 60 */
	long min_speed;              /* bytes/s, the low-speed limit ([site] min_speed); default 1 */
	long deadline_s;             /* one request, its retries included (request.h); 0: none */
	const char *deadline_option; /* the option that sets it, for messages: "page_timeout" */
	size_t max_response;         /* bytes; default CMB_LIMIT_RESPONSE_BYTES (connector/base/limits.h) */
	const char *user_agent;      /* default "cmbridge/<version>" */
	double rate_limit;           /* requests per second at most, every request included; <= 0: no limit */
	double rate_burst;           /* requests allowed at once before the rate applies; default 1 */
	const char *config_section;  /* "[site]" or "[tenant]": named in TLS hints; default "[name]" */

	/* TLS */
	const char *pinned_public_key;  /* "sha256//..." list or a public key file; NULL: no pin */
	const char *client_cert_file;   /* PEM client certificate (mutual TLS); NULL: none */
	const char *client_key_file;    /* its key; NULL: in client_cert_file */

	/* Server authentication done by libcurl (copied; the password is wiped on free). */
	enum cmb_http_auth auth;
	const char *username;           /* NTLM: "DOMAIN\user" */
	const char *password;

	/* Proxy ([network]); all NULL: libcurl's environment (https_proxy, HTTPS_PROXY, NO_PROXY). */
	const char *proxy;              /* URL, or "none" to ignore the environment */
	enum cmb_http_proxy_auth proxy_auth;
	const char *proxy_username;
	const char *proxy_password_file;/* read at cmb_http_new */
	const char *no_proxy;
};

/*
 * Fills the [network] fields of opts from cfg (pointers into cfg, which must
 * outlive cmb_http_new()).
 */
void cmb_http_opts_network(struct cmb_http_opts *opts, const struct cmb_config *cfg);

/*
 * The tenant endpoint's options from [tenant] and [network] (the name, CA,
 * timeouts, low-speed limit, request deadline, rate limit, pin, proxy): one
 * place for the gateway and for a site token fetched from the tenant's
 * authority. Fields not named stay as the caller set them (max_response).
 */
void cmb_http_opts_tenant(struct cmb_http_opts *opts, const struct cmb_config *cfg);

/* 1 when a Content-Type header names application/json (any parameters). */
int cmb_http_is_json(const char *content_type);

int cmb_http_new(struct cmb_http **out, const struct cmb_http_opts *opts);
void cmb_http_free(struct cmb_http *h);

/*
 * Called with each piece of the response body as it arrives, once the status
 * and headers are known (status and content_type are the same on every call).
 * Return 0 to go on, a negative CMB_E* code to abort the transfer (that code
 * is then returned by cmb_http_request()).
 */
typedef int (*cmb_http_sink)(void *ctx, long status, const char *content_type,
			     const char *data, size_t len);

struct cmb_http_request {
	const char *method;          /* "GET", "POST"... */
	const char *url;
	const char *const *headers;  /* NULL-terminated "Name: value" list, may be NULL */
	const char *bearer;          /* adds "Authorization: Bearer ..."; never logged */
	const void *body;            /* request body, may be NULL */
	size_t body_len;
	int gzip_body;               /* compress body (zlib level 1), add Content-Encoding: gzip */
	int interruptible;            /* an idle wait (long poll): also ends when cmb_interrupted() */
	long stall_s;                 /* this request's stall limit (a long poll's silence); 0: the handle's */
	int once;                     /* not safe to send twice: sent on a new connection (below) */
	double timeout_s;             /* the whole transfer, connection included; 0: none (request.h's deadline) */
	size_t max_response;          /* this request's body limit; 0: the handle's */
	enum cmb_limit max_limit;     /* the limit max_response stands for, named when exceeded; 0: response size */
	cmb_http_sink sink;          /* when set, the body streams to sink for 2xx responses */
	void *sink_ctx;
};

struct cmb_http_response {
	long status;
	char *content_type;          /* NULL when absent */
	char *retry_after;           /* raw Retry-After header, NULL when absent */
	char *location;              /* raw Location header (a redirect, never followed), NULL when absent */
	struct cmb_buf body;         /* body when no sink was used, or for non-2xx replies */
	size_t bytes_in;             /* body bytes received (after decompression) */
	size_t bytes_out;            /* body bytes sent (after compression) */
};

/*
 * libcurl sends a request again, silently, when a reused connection closes
 * before any byte of the reply: harmless for a GET, a second operation for
 * a method call the server had applied. A request marked once goes out on a
 * connection of its own, which libcurl never re-sends on.
 *
 * Performs the request, first taking a token from the handle's rate limit
 * (which may block). Returns 0 when a complete response arrived (whatever
 * its status; the caller judges it), CMB_ENETWORK / CMB_ETLS when none did
 * (a connection closed before the whole body arrived is CMB_ENETWORK; a TLS
 * verification failure names the host and the server certificate's subject
 * and issuer), CMB_EAUTH when the proxy refused its credentials (407) or,
 * with CMB_HTTP_AUTH_NEGOTIATE, when GSS-API had no Kerberos credentials to
 * answer a 401 with, CMB_EHTTP when the proxy refused the tunnel,
 * CMB_ETOOBIG when the body exceeded max_response (the message names the
 * limit), or the sink's code. A transfer slower than min_speed for the
 * stall limit, or longer than timeout_s, is CMB_ENETWORK saying which.
 * Redirects are never followed: a 3xx is returned as it came, with its
 * Location, so credentials never reach another origin.
 * resp is the caller's; release it with cmb_http_response_clear().
 */
int cmb_http_request(struct cmb_http *h, const struct cmb_http_request *req,
		     struct cmb_http_response *resp);
void cmb_http_response_clear(struct cmb_http_response *resp);

/* Percent-encodes s for a URL query component. Caller frees. */
char *cmb_http_escape(const char *s);
/* Resolves a possibly relative reference against base (RFC 3986). Caller frees; NULL on error. */
char *cmb_http_resolve(const char *base, const char *ref);
/*
 * 1 when both absolute URLs have the same origin (RFC 6454: scheme, host,
 * port, default ports filled in), 0 otherwise or when either is not a URL.
 * Credentials are only ever sent to their own origin.
 */
int cmb_http_same_origin(const char *a, const char *b);

/* Bytes sent and received by this handle over its life (for status, metrics and tests). */
void cmb_http_counters(const struct cmb_http *h, size_t *bytes_out, size_t *bytes_in, size_t *requests);
/* Seconds this handle's requests have spent waiting for the rate limit, over its life. */
double cmb_http_rate_waited(const struct cmb_http *h);

/* The handle's deadline for one request (0: none) and the option that sets it ("[site] page_timeout"). */
long cmb_http_deadline(const struct cmb_http *h, const char **option);

#endif
