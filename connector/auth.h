/*
 * auth.h - OAuth 2.0 client credentials against an Entra ID v2 token
 * endpoint (client secret for now).
 *
 * The token lives in memory only and is renewed ahead of expiry. Neither the
 * secret nor the token is ever passed to the log, at any level.
 */
#ifndef CMB_AUTH_H
#define CMB_AUTH_H

#include "http.h"
#include "retry.h"

struct cmb_auth;

struct cmb_auth_opts {
	const char *token_url;          /* {authority}/oauth2/v2.0/token */
	const char *client_id;
	const char *client_secret_file; /* read once at creation (permissions checked) */
	const char *scope;              /* e.g. https://graph.microsoft.com/.default */
	long renew_before_s;            /* renew when less than this remains; default 300 */
	/*
	 * Retry state shared with the caller's other requests to the same
	 * endpoint (borrowed; must outlive the auth object). NULL: one try only.
	 */
	struct cmb_retry_budget *retry;
};

/* http is borrowed (must outlive the auth object). *out is the caller's. */
int cmb_auth_new(struct cmb_auth **out, struct cmb_http *http, const struct cmb_auth_opts *opts);
void cmb_auth_free(struct cmb_auth *a);

/*
 * Returns a valid access token in *token (owned by a, valid until the next
 * call), fetching or renewing as needed. Transient failures of the token
 * endpoint (network, 429/503 with their Retry-After, 500/502/504) are
 * retried within the retry budget. CMB_EAUTH when the authority refused the
 * credentials (400/401: message carries the AADSTS code and description;
 * never retried), CMB_ENETWORK/CMB_ETHROTTLED when retries ran out,
 * CMB_ETLS/CMB_EPROTO/CMB_EHTTP otherwise.
 */
int cmb_auth_token(struct cmb_auth *a, const char **token);
/* Forgets the current token (after a 401), so the next call fetches a new one. */
void cmb_auth_invalidate(struct cmb_auth *a);
/* Seconds the current token has left (0 when none). */
long cmb_auth_remaining(const struct cmb_auth *a);
/* Token requests sent over the object's life (retries included). */
long cmb_auth_requests(const struct cmb_auth *a);

#endif
