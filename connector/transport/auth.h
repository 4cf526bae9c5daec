/*
 * auth.h - OAuth 2.0 client credentials against an Entra ID v2 token
 * endpoint, with a client secret or a certificate (a client assertion
 * signed with its key, jwt.h; docs/wire-format.md §6).
 *
 * The token lives in memory only and is renewed ahead of expiry (5
 * minutes, or half its lifetime when that is shorter). Tokens and token
 * replies are bounded (connector/base/limits.h). Neither the
 * secret, the key, an assertion nor the token is ever passed to the log, at
 * any level.
 */
#ifndef CMB_AUTH_H
#define CMB_AUTH_H

#include "connector/transport/http.h"
#include "connector/transport/retry.h"

#include <stdint.h>

struct cmb_auth;
struct cmb_config;

/* A certificate expiring sooner than this is warned about at start. */
#define CMB_AUTH_CERT_WARN_S (30 * 86400)

struct cmb_auth_opts {
	const char *token_url;          /* {authority}/oauth2/v2.0/token */
	const char *client_id;
	/* Exactly one credential: a secret file, or a certificate (and its key). */
	const char *client_secret_file; /* read once at creation (permissions checked) */
	const char *client_certificate_file;
	const char *client_key_file;    /* NULL: the key is in client_certificate_file */
	const char *client_key_passphrase_file;
	const char *assertion_alg;      /* "PS256" (default) or "RS256" */
	const char *scope;              /* e.g. https://graph.microsoft.com/.default */
	long renew_before_s;            /* renew when less than this remains; default 300 */
	/*
	 * Retry state shared with the caller's other requests to the same
	 * endpoint (borrowed; must outlive the auth object). NULL: one try only.
	 */
	struct cmb_retry_budget *retry;
};

/*
 * Fills opts with the [tenant] credential of cfg and scope (pointers into
 * cfg and scope, which must outlive cmb_auth_new()). retry and
 * renew_before_s are left to the caller.
 */
void cmb_auth_opts_from_config(struct cmb_auth_opts *opts, const struct cmb_config *cfg, const char *scope);

/*
 * http is borrowed (must outlive the auth object). *out is the caller's.
 * With a certificate: CMB_ECONFIG when it cannot be loaded or its key does
 * not belong to it, CMB_EAUTH when it has expired or is not valid yet (the
 * message names the file, subject and dates); a certificate expiring within
 * CMB_AUTH_CERT_WARN_S is logged as a warning.
 */
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
/*
 * Reads a token endpoint's 200 reply body (len bytes, not NUL-terminated):
 * *token (caller wipes and frees) and *expires_in from a Bearer reply.
 * CMB_EPROTO for a reply without a Bearer access_token and a positive
 * expires_in or a token that cannot go in a header, CMB_ETOOBIG past the
 * limits (connector/base/limits.h); where names the endpoint in messages.
 * No I/O: this is what cmb_auth_token() applies to every reply.
 */
int cmb_auth_parse_reply(const char *body, size_t len, const char *where, char **token, long *expires_in);
/* Forgets the current token, so the next call fetches a new one. */
void cmb_auth_invalidate(struct cmb_auth *a);
/*
 * After a server refused the current token (401): 1 when it was forgotten
 * and a renewed one is worth a try, 0 when the current token already is
 * such a renewal that no server has accepted yet (then the refusal is
 * final: renewing again on every request would not cure it).
 */
int cmb_auth_refused(struct cmb_auth *a);
/* A server accepted the current token (a 2xx): a later 401 may renew it again. */
void cmb_auth_accepted(struct cmb_auth *a);
/* Seconds the current token has left (0 when none). */
long cmb_auth_remaining(const struct cmb_auth *a);
/* Token requests sent over the object's life (retries included). */
long cmb_auth_requests(const struct cmb_auth *a);
/* expires_in of the current token as the authority gave it (0 when none). */
long cmb_auth_lifetime(const struct cmb_auth *a);
/* "client secret", "certificate (PS256)" or "certificate (RS256)": for reports. */
const char *cmb_auth_credential_kind(const struct cmb_auth *a);

/*
 * For `cmbridge status` (reads only the certificate, no key, no network):
 * *not_after (epoch seconds) and *subject (caller frees) of the client
 * certificate in cert_file. CMB_ECONFIG when it cannot be read.
 */
int cmb_auth_cert_expiry(const char *cert_file, int64_t *not_after, char **subject);



/*
 * Site authentication ([site] auth, docs/wire-format.md §7) for every
 * module that talks to the site: basic (a header), ntlm and negotiate
 * (libcurl, on the handle), bearer (a tenant token for [site] scope, from a
 * second cmb_auth with the tenant's credentials), none.
 */
struct cmb_site_auth;

/*
 * Opens the site's HTTP handle *http from base (name, CA, timeouts, rate)
 * plus [site] pinned_public_key and client certificate, [network] and the
 * scheme's libcurl settings, and *sa for the Authorization header. Both are
 * the caller's (free sa first or last, either works). CMB_ECONFIG for a
 * credential that cannot be read.
 */
int cmb_site_auth_open(struct cmb_site_auth **sa, struct cmb_http **http, const struct cmb_http_opts *base,
		       const struct cmb_config *cfg);
void cmb_site_auth_free(struct cmb_site_auth *sa);
/*
 * *header is "Authorization: ..." for basic and bearer (owned by sa, valid
 * until the next call; never log it), NULL for none, ntlm and negotiate.
 * Bearer fetches or renews the token (errors as cmb_auth_token()).
 */
int cmb_site_auth_header(struct cmb_site_auth *sa, const char **header);
/* After a 401: 1 when one more try may succeed (bearer: the token was dropped), else 0. */
int cmb_site_auth_refused(struct cmb_site_auth *sa);
/* For messages: who ("CORP\\svc", "client <id>", "the Kerberos ticket"; NULL with none) and how ("NTLM"). */
const char *cmb_site_auth_user(const struct cmb_site_auth *sa);
const char *cmb_site_auth_scheme(const struct cmb_site_auth *sa);
#endif
