/*
 * auth.c - client-credentials token acquisition and renewal, with a client
 * secret or a certificate (a fresh client assertion per token request).
 *
 * Must never: log or keep in an error message the secret, the key, an
 * assertion or a token, or retry a refusal of the credentials (400/401: an
 * admin has to act).
 */
#include "connector/transport/auth.h"
#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/transport/jwt.h"
#include "connector/transport/request.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

struct cmb_auth {
	struct cmb_http *http;
	char *token_url;
	char *client_id;
	char *secret;                /* NULL with a certificate */
	struct cmb_cert_cred *cert;  /* NULL with a secret */
	enum cmb_jwt_alg alg;
	char *scope;
	long lifetime;
	long renew_before_s;
	char *token;
	double expires_at;    /* monotonic seconds */
	struct cmb_retry_budget *retry;
	long requests;
	int after_refusal;    /* the next token replaces one a server refused (a 401) */
	int unproven;         /* the current token replaced a refused one and no server has accepted it yet */
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void cmb_auth_opts_from_config(struct cmb_auth_opts *o, const struct cmb_config *cfg, const char *scope)
{
	o->token_url = cfg->tenant_token_url;
	o->client_id = cfg->tenant_client_id;
	o->client_secret_file = cfg->tenant_client_certificate_file ? NULL : cfg->tenant_client_secret_file;
	o->client_certificate_file = cfg->tenant_client_certificate_file;
	o->client_key_file = cfg->tenant_client_key_file;
	o->client_key_passphrase_file = cfg->tenant_client_key_passphrase_file;
	o->assertion_alg = cfg->tenant_assertion_alg;
	o->scope = scope;
}

int cmb_auth_cert_expiry(const char *cert_file, int64_t *not_after, char **subject)
{
	return cmb_cert_file_info(cert_file, NULL, not_after, subject);
}

/* Refuses a certificate Entra would refuse anyway, before any request; warns ahead of expiry. */
static int check_cert_dates(const struct cmb_cert_cred *c)
{
	char nb[32], na[32];
	int64_t now = cmb_now();
	cmb_time_iso8601(cmb_cert_cred_not_before(c), nb);
	cmb_time_iso8601(cmb_cert_cred_not_after(c), na);
	switch (cmb_cert_classify(cmb_cert_cred_not_before(c), cmb_cert_cred_not_after(c), now, CMB_AUTH_CERT_WARN_S)) {
	case CMB_CERT_EXPIRED:
		return cmb_error_set(CMB_EAUTH, "[tenant] client_certificate_file %s (subject %s, thumbprint %s) expired "
				     "on %s: create a new certificate, upload it to the app registration and point "
				     "client_certificate_file at it", cmb_cert_cred_file(c), cmb_cert_cred_subject(c),
				     cmb_cert_cred_thumbprint(c), na);
	case CMB_CERT_NOT_YET_VALID:
		return cmb_error_set(CMB_EAUTH, "[tenant] client_certificate_file %s (subject %s, thumbprint %s) is not "
				     "valid before %s (notAfter %s): check this machine's clock", cmb_cert_cred_file(c),
				     cmb_cert_cred_subject(c), cmb_cert_cred_thumbprint(c), nb, na);
	case CMB_CERT_EXPIRES_SOON:
		cmb_warn("[tenant] client_certificate_file %s (subject %s, thumbprint %s) expires on %s, in %lld days: "
			 "upload its successor to the app registration", cmb_cert_cred_file(c), cmb_cert_cred_subject(c),
			 cmb_cert_cred_thumbprint(c), na, (long long)((cmb_cert_cred_not_after(c) - now) / 86400));
		return 0;
	case CMB_CERT_VALID:
		return 0;
	}
	return 0;
}

int cmb_auth_new(struct cmb_auth **out, struct cmb_http *http, const struct cmb_auth_opts *opts)
{
	char *secret = NULL;
	struct cmb_cert_cred *cert = NULL;
	int alg = CMB_JWT_PS256;
	int rc;
	if (opts->client_certificate_file && opts->client_secret_file)
		return cmb_error_set(CMB_ECONFIG, "[tenant] client_secret_file and client_certificate_file are both set "
				     "(expected exactly one credential)");
	if (opts->client_certificate_file) {
		if (opts->assertion_alg && (alg = cmb_jwt_alg_parse(opts->assertion_alg)) < 0)
			return cmb_error_set(CMB_ECONFIG, "[tenant] assertion_alg: '%s' is not PS256 or RS256",
					     opts->assertion_alg);
		if ((rc = cmb_cert_cred_load(&cert, opts->client_certificate_file, opts->client_key_file,
					     opts->client_key_passphrase_file)) < 0)
			return rc;
		if ((rc = check_cert_dates(cert)) < 0) {
			cmb_cert_cred_free(cert);
			return rc;
		}
	} else if (!opts->client_secret_file) {
		return cmb_error_set(CMB_ECONFIG, "[tenant] client_secret_file or client_certificate_file is required");
	} else if ((rc = cmb_secret_read(opts->client_secret_file, &secret)) < 0) {
		return rc;
	}
	struct cmb_auth *a = xcalloc(1, sizeof(*a));
	a->http = http;
	a->token_url = xstrdup(opts->token_url);
	a->client_id = xstrdup(opts->client_id);
	a->scope = xstrdup(opts->scope);
	a->secret = secret;
	a->cert = cert;
	a->alg = (enum cmb_jwt_alg)alg;
	a->renew_before_s = opts->renew_before_s > 0 ? opts->renew_before_s : 300;
	a->retry = opts->retry;
	*out = a;
	return 0;
}

void cmb_auth_free(struct cmb_auth *a)
{
	if (!a)
		return;
	free(a->token_url);
	free(a->client_id);
	free(a->scope);
	wipe_free(a->secret);
	cmb_cert_cred_free(a->cert);
	wipe_free(a->token);
	free(a);
}

void cmb_auth_invalidate(struct cmb_auth *a)
{
	wipe_free(a->token);
	a->token = NULL;
	a->expires_at = 0;
}

int cmb_auth_refused(struct cmb_auth *a)
{
	/*
	 * A token that was itself the renewal of a refused one, and that no
	 * server has accepted since, is refused for a reason a new token will
	 * not cure (a permission, a wrong audience): asking the authority
	 * again on every request would only load it.
	 */
	if (a->unproven)
		return 0;
	cmb_auth_invalidate(a);
	a->after_refusal = 1;
	return 1;
}

void cmb_auth_accepted(struct cmb_auth *a)
{
	a->unproven = 0;
}

long cmb_auth_requests(const struct cmb_auth *a)
{
	return a->requests;
}

long cmb_auth_lifetime(const struct cmb_auth *a)
{
	return a->token ? a->lifetime : 0;
}

const char *cmb_auth_credential_kind(const struct cmb_auth *a)
{
	if (!a->cert)
		return "client secret";
	return a->alg == CMB_JWT_RS256 ? "certificate (RS256)" : "certificate (PS256)";
}

long cmb_auth_remaining(const struct cmb_auth *a)
{
	if (!a->token)
		return 0;
	double left = a->expires_at - cmb_now_mono();
	return left > 0 ? (long)left : 0;
}

static const char *tree_string(yajl_val root, const char *key)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(root, path, yajl_t_string);
	return v ? YAJL_GET_STRING(v) : NULL;
}

/* The form body of one token request; a certificate gets a fresh assertion (new jti, new times) every try. */
struct token_body {
	struct cmb_auth *a;
	char *body;                  /* wiped before it is freed: it carries the secret or an assertion */
};

static int token_prepare(void *ctx, const void **body, size_t *len)
{
	struct token_body *tb = ctx;
	struct cmb_auth *a = tb->a;
	char *id = cmb_http_escape(a->client_id);
	char *scope = cmb_http_escape(a->scope);
	int rc = 0;
	wipe_free(tb->body);
	tb->body = NULL;
	if (a->cert) {
		char *assertion = NULL;
		if ((rc = cmb_jwt_assertion(&assertion, a->cert, a->alg, a->client_id, a->token_url, cmb_now(), NULL)) == 0)
			tb->body = xasprintf("grant_type=client_credentials&client_id=%s&scope=%s&client_assertion_type="
					     "urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&"
					     "client_assertion=%s", id, scope, assertion);
		wipe_free(assertion);
	} else {
		char *sec = cmb_http_escape(a->secret);
		tb->body = xasprintf("grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s", id, sec,
				     scope);
		wipe_free(sec);
	}
	free(id);
	free(scope);
	if (rc == 0) {
		*body = tb->body;
		*len = strlen(tb->body);
	}
	a->requests++;
	return rc;
}

/* A token goes into a header line: only visible ASCII, and no longer than the token size limit. */
static int check_token(const char *where, const char *token)
{
	size_t n = strlen(token);
	if (n > CMB_LIMIT_TOKEN_BYTES)
		return cmb_limit_error(CMB_LIMIT_TOKEN, 0, "token endpoint %s: the access token of %zu bytes", where, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
			return cmb_error_set(CMB_EPROTO, "token endpoint %s: the access token holds a byte (0x%02x at %zu) "
					     "that cannot be sent in an Authorization header", where,
					     (unsigned char)token[i], i);
	return 0;
}

/* expires_in as a number, or as a string some endpoints send; 0 when neither. */
static long reply_expires_in(yajl_val root)
{
	const char *path[] = { "expires_in", NULL };
	yajl_val exp = yajl_tree_get(root, path, yajl_t_any);
	if (exp && YAJL_IS_INTEGER(exp))
		return (long)YAJL_GET_INTEGER(exp);
	if (exp && YAJL_IS_STRING(exp))
		return strtol(exp->u.string, NULL, 10);
	return 0;
}

int cmb_auth_parse_reply(const char *body, size_t len, const char *where, char **token, long *expires_in)
{
	char errbuf[256] = "";
	yajl_val root = NULL;
	*token = NULL;
	int rc = cmb_limit_json_tree(body ? body : "", len, "token endpoint reply", &root, errbuf, sizeof(errbuf));
	if (rc == CMB_ETOOBIG)
		return rc;
	const char *tok = root ? tree_string(root, "access_token") : NULL;
	const char *type = root ? tree_string(root, "token_type") : NULL;
	long exp = root ? reply_expires_in(root) : 0;
	rc = 0;
	if (!tok || !*tok || !type || strcasecmp(type, "Bearer") != 0 || exp <= 0) {
		rc = cmb_error_set(CMB_EPROTO, "token endpoint %s sent a reply without a Bearer access_token and "
				   "expires_in%s%s", where, root ? "" : ": ", root ? "" : errbuf);
	} else if ((rc = check_token(where, tok)) == 0) {
		*token = xstrdup(tok);
		*expires_in = exp;
	}
	if (root) {
		/* The tree holds a copy of the token: wipe it before freeing. */
		const char *p2[] = { "access_token", NULL };
		yajl_val t = yajl_tree_get(root, p2, yajl_t_string);
		if (t && t->u.string)
			OPENSSL_cleanse(t->u.string, strlen(t->u.string));
		yajl_tree_free(root);
	}
	return rc;
}

/* Takes the token out of a 200 reply; a reply without one is final (CMB_EPROTO). */
static int token_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct cmb_auth *a = ctx;
	char *token = NULL;
	long expires_in = 0;
	int rc = cmb_auth_parse_reply(resp->body.data, resp->body.len, a->token_url, &token, &expires_in);
	if (rc < 0)
		return rc;
	cmb_auth_invalidate(a);
	a->token = token;
	a->expires_at = cmb_now_mono() + (double)expires_in;
	a->lifetime = expires_in;
	a->unproven = a->after_refusal;
	a->after_refusal = 0;
	cmb_debug("token acquired for client %s, lifetime %ld s", a->client_id, expires_in);
	return 0;
}

/*
 * One token request through the request loop (retries from the budget the
 * caller shares; refusals of the credentials are final).
 */
static int fetch_token(struct cmb_auth *a)
{
	static const char *const headers[] = { "Content-Type: application/x-www-form-urlencoded",
					       "Accept: application/json", NULL };
	char principal[300];
	snprintf(principal, sizeof(principal), "client %s", a->client_id);
	struct token_body tb = { .a = a };
	const struct cmb_endpoint ep = {
		.side = "token endpoint", .http = a->http, .budget = a->retry, .principal = principal,
		.credential_endpoint = 1,
	};
	const struct cmb_request rq = {
		.method = "POST", .url = a->token_url, .what = "acquiring a token", .headers = headers,
		.prepare = token_prepare, .prepare_ctx = &tb, .finish = token_finish, .finish_ctx = a,
		.max_response = CMB_LIMIT_TOKEN_REPLY_BYTES, .max_limit = CMB_LIMIT_TOKEN_REPLY,
	};
	struct cmb_http_response resp;
	int rc = cmb_request(&ep, &rq, &resp, NULL);
	wipe_free(tb.body);
	if (rc == CMB_EAUTH && a->cert) {
		/* Which certificate was offered is what an admin compares with the portal. */
		char *msg = xstrdup(cmb_error_last());
		cmb_error_set(rc, "%s [client assertion %s signed by certificate %s, thumbprint %s]", msg,
			      a->alg == CMB_JWT_RS256 ? "RS256" : "PS256", cmb_cert_cred_subject(a->cert),
			      cmb_cert_cred_thumbprint(a->cert));
		free(msg);
	}
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	cmb_http_response_clear(&resp);
	return rc;
}

/*
 * Seconds before expiry a token is renewed: renew_before_s, but at most
 * half its lifetime, so a token shorter-lived than the margin is still used
 * for a while instead of being fetched again for every request.
 */
static double renew_margin(const struct cmb_auth *a)
{
	double half = (double)a->lifetime / 2.0;
	return (double)a->renew_before_s < half ? (double)a->renew_before_s : half;
}

int cmb_auth_token(struct cmb_auth *a, const char **token)
{
	int rc;
	if (!a->token || cmb_now_mono() > a->expires_at - renew_margin(a))
		if ((rc = fetch_token(a)) < 0)
			return rc;
	*token = a->token;
	return 0;
}

/* ---- site authentication ---- */

struct cmb_site_auth {
	char *scheme;               /* "Basic", "NTLM", "Negotiate", "Bearer"; NULL: none */
	char *user;                 /* for messages */
	char *header;               /* Basic: fixed; Bearer: rebuilt from the token; wiped on free */
	struct cmb_http *tenant_http;  /* bearer: to the token endpoint */
	struct cmb_auth *auth;      /* bearer */
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;
	double refused_at;          /* bearer: when a 401 last led to a new token (monotonic) */
};

static char *basic_header(const char *user, const char *password)
{
	char *pair = xasprintf("%s:%s", user, password);
	size_t len = strlen(pair);
	size_t enc_len = 4 * ((len + 2) / 3);
	char *enc = xmalloc(enc_len + 1);
	EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)pair, (int)len);
	char *header = xasprintf("Authorization: Basic %s", enc);
	OPENSSL_cleanse(pair, len);
	OPENSSL_cleanse(enc, enc_len);
	free(pair);
	free(enc);
	return header;
}

void cmb_site_auth_free(struct cmb_site_auth *sa)
{
	if (!sa)
		return;
	free(sa->scheme);
	free(sa->user);
	wipe_free(sa->header);
	cmb_auth_free(sa->auth);
	cmb_http_free(sa->tenant_http);
	free(sa);
}

int cmb_site_auth_open(struct cmb_site_auth **out, struct cmb_http **http_out, const struct cmb_http_opts *base,
		       const struct cmb_config *cfg)
{
	struct cmb_site_auth *sa = xcalloc(1, sizeof(*sa));
	struct cmb_http_opts ho = *base;
	struct cmb_http *http = NULL;
	char *password = NULL;
	const char *auth = cfg->site_auth ? cfg->site_auth : "none";
	int rc;

	ho.pinned_public_key = cfg->site_pinned_public_key;
	ho.client_cert_file = cfg->site_client_certificate_file;
	ho.client_key_file = cfg->site_client_key_file;
	cmb_http_opts_network(&ho, cfg);

	if (strcmp(auth, "basic") == 0 || strcmp(auth, "ntlm") == 0) {
		int ntlm = auth[0] == 'n';
		if (!cfg->site_username || !cfg->site_password_file) {
			rc = cmb_error_set(CMB_ECONFIG, "[site] auth = %s needs username and password_file", auth);
			goto done;
		}
		if (!ntlm && strchr(cfg->site_username, ':')) {
			rc = cmb_error_set(CMB_ECONFIG, "[site] username: HTTP Basic cannot carry a ':' in the user name");
			goto done;
		}
		if ((rc = cmb_secret_read(cfg->site_password_file, &password)) < 0) {
			cmb_error_wrap(rc, "[site] password_file");
			goto done;
		}
		sa->user = xstrdup(cfg->site_username);
		sa->scheme = xstrdup(ntlm ? "NTLM" : "Basic");
		if (ntlm) {
			/* libcurl splits "DOMAIN\user" itself and keeps the authenticated connection. */
			ho.auth = CMB_HTTP_AUTH_NTLM;
			ho.username = cfg->site_username;
			ho.password = password;
		} else {
			sa->header = basic_header(cfg->site_username, password);
		}
	} else if (strcmp(auth, "negotiate") == 0) {
		ho.auth = CMB_HTTP_AUTH_NEGOTIATE;
		sa->scheme = xstrdup("Negotiate");
		sa->user = xstrdup(getenv("KRB5_CLIENT_KTNAME") ? "the client keytab's principal" : "the Kerberos ticket");
	} else if (strcmp(auth, "bearer") == 0) {
		if (!cfg->site_scope) {
			rc = cmb_error_set(CMB_ECONFIG, "[site] auth = bearer needs scope");
			goto done;
		}
		sa->scheme = xstrdup("Bearer");
		sa->user = xasprintf("client %s", cfg->tenant_client_id);
		cmb_retry_policy_from_config(&sa->policy, cfg);
		cmb_retry_budget_init(&sa->budget, &sa->policy);
		/* The token comes from the tenant's authority: tenant TLS options, same proxy. */
		struct cmb_http_opts to = { 0 };
		cmb_http_opts_tenant(&to, cfg);
		if ((rc = cmb_http_new(&sa->tenant_http, &to)) < 0)
			goto done;
		struct cmb_auth_opts ao = { .retry = &sa->budget };
		cmb_auth_opts_from_config(&ao, cfg, cfg->site_scope);
		if ((rc = cmb_auth_new(&sa->auth, sa->tenant_http, &ao)) < 0)
			goto done;
	} else if (strcmp(auth, "none") != 0) {
		rc = cmb_error_set(CMB_ECONFIG, "[site] auth: '%s' is not none, basic, ntlm, negotiate or bearer", auth);
		goto done;
	}
	if ((rc = cmb_http_new(&http, &ho)) < 0)
		goto done;
	*out = sa;
	*http_out = http;
	sa = NULL;
	rc = 0;
done:
	cmb_secret_free(password);
	cmb_site_auth_free(sa);
	return rc;
}

int cmb_site_auth_header(struct cmb_site_auth *sa, const char **header)
{
	*header = NULL;
	if (!sa->auth) {
		*header = sa->header;
		return 0;
	}
	const char *token;
	/* A new cycle's budget for token retries: the site adapter has no cycle hook for this object. */
	if (sa->budget.used >= sa->policy.budget)
		cmb_retry_budget_init(&sa->budget, &sa->policy);
	int rc = cmb_auth_token(sa->auth, &token);
	if (rc < 0)
		return cmb_error_wrap(rc, "token for the site ([site] scope)");
	wipe_free(sa->header);
	sa->header = xasprintf("Authorization: Bearer %s", token);
	*header = sa->header;
	return 0;
}

int cmb_site_auth_refused(struct cmb_site_auth *sa)
{
	/* One renewal per refusal: a second 401 right after it, with a fresh token, is final. */
	if (!sa->auth || (sa->refused_at > 0 && cmb_now_mono() - sa->refused_at < 60))
		return 0;
	sa->refused_at = cmb_now_mono();
	cmb_auth_invalidate(sa->auth);
	return 1;
}

const char *cmb_site_auth_user(const struct cmb_site_auth *sa)
{
	return sa->user;
}

const char *cmb_site_auth_scheme(const struct cmb_site_auth *sa)
{
	return sa->scheme;
}
