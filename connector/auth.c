/*
 * auth.c - client-credentials token acquisition and renewal.
 *
 * Must never: log or keep in an error message the secret or a token, or
 * retry a refusal of the credentials (400/401: an admin has to act).
 */
#include "auth.h"
#include "error.h"
#include "log.h"
#include "util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

struct cmb_auth {
	struct cmb_http *http;
	char *token_url;
	char *client_id;
	char *secret;
	char *scope;
	long renew_before_s;
	char *token;
	double expires_at;    /* monotonic seconds */
	struct cmb_retry_budget *retry;
	long requests;
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int cmb_auth_new(struct cmb_auth **out, struct cmb_http *http, const struct cmb_auth_opts *opts)
{
	char *secret = NULL;
	int rc = cmb_secret_read(opts->client_secret_file, &secret);
	if (rc < 0)
		return rc;
	struct cmb_auth *a = xcalloc(1, sizeof(*a));
	a->http = http;
	a->token_url = xstrdup(opts->token_url);
	a->client_id = xstrdup(opts->client_id);
	a->scope = xstrdup(opts->scope);
	a->secret = secret;
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
	wipe_free(a->token);
	free(a);
}

void cmb_auth_invalidate(struct cmb_auth *a)
{
	wipe_free(a->token);
	a->token = NULL;
	a->expires_at = 0;
}

long cmb_auth_requests(const struct cmb_auth *a)
{
	return a->requests;
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

/* Entra answers errors as {"error":"...","error_description":"AADSTS...: ..."}. */
static int token_error(struct cmb_auth *a, const struct cmb_http_response *resp)
{
	char errbuf[256];
	yajl_val root = resp->body.data ? yajl_tree_parse(resp->body.data, errbuf, sizeof(errbuf)) : NULL;
	const char *err = root ? tree_string(root, "error") : NULL;
	const char *desc = root ? tree_string(root, "error_description") : NULL;
	int code = (resp->status == 400 || resp->status == 401) ? CMB_EAUTH
		 : (resp->status == 429 || resp->status == 503) ? CMB_ETHROTTLED
		 : (resp->status == 500 || resp->status == 502 || resp->status == 504) ? CMB_ENETWORK : CMB_EHTTP;
	if (err) {
		/* The description's first line carries the AADSTS code; the rest is trace noise. */
		char line[512] = "";
		if (desc) {
			size_t n = strcspn(desc, "\r\n");
			snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), desc);
		}
		cmb_error_set(code, "token endpoint %s refused client %s: %s (HTTP %ld)%s%s", a->token_url,
			      a->client_id, err, resp->status, line[0] ? ": " : "", line);
	} else {
		cmb_error_set(code, "token endpoint %s answered HTTP %ld without an OAuth error body (content type %s)",
			      a->token_url, resp->status, resp->content_type ? resp->content_type : "none");
	}
	yajl_tree_free(root);
	return code;
}

/* One token request. *retry_after gets the raw header of a throttled reply (caller frees). */
static int fetch_token(struct cmb_auth *a, char **retry_after)
{
	char *id = cmb_http_escape(a->client_id);
	char *sec = cmb_http_escape(a->secret);
	char *scope = cmb_http_escape(a->scope);
	char *body = xasprintf("grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s", id, sec,
			       scope);
	wipe_free(sec);
	free(id);
	free(scope);
	static const char *const headers[] = { "Content-Type: application/x-www-form-urlencoded",
					       "Accept: application/json", NULL };
	struct cmb_http_request req = {
		.method = "POST", .url = a->token_url, .headers = headers, .body = body, .body_len = strlen(body),
	};
	struct cmb_http_response resp;
	int rc = cmb_http_request(a->http, &req, &resp);
	a->requests++;
	wipe_free(body);
	if (rc < 0)
		return cmb_error_wrap(rc, "acquiring a token");
	if (resp.status != 200) {
		rc = token_error(a, &resp);
		if (resp.retry_after)
			*retry_after = xstrdup(resp.retry_after);
		cmb_http_response_clear(&resp);
		return rc;
	}
	char errbuf[256] = "";
	yajl_val root = yajl_tree_parse(resp.body.data ? resp.body.data : "", errbuf, sizeof(errbuf));
	const char *token = root ? tree_string(root, "access_token") : NULL;
	const char *type = root ? tree_string(root, "token_type") : NULL;
	const char *path[] = { "expires_in", NULL };
	yajl_val exp = root ? yajl_tree_get(root, path, yajl_t_any) : NULL;
	long expires_in = 0;
	if (exp && YAJL_IS_INTEGER(exp))
		expires_in = (long)YAJL_GET_INTEGER(exp);
	else if (exp && YAJL_IS_STRING(exp)) /* some endpoints send it as a string */
		expires_in = strtol(exp->u.string, NULL, 10);
	if (!token || !*token || !type || strcasecmp(type, "Bearer") != 0 || expires_in <= 0) {
		rc = cmb_error_set(CMB_EPROTO, "token endpoint %s sent a reply without a Bearer access_token and expires_in%s%s",
				   a->token_url, root ? "" : ": ", root ? "" : errbuf);
	} else {
		cmb_auth_invalidate(a);
		a->token = xstrdup(token);
		a->expires_at = cmb_now_mono() + (double)expires_in;
		cmb_debug("token acquired for client %s, lifetime %ld s", a->client_id, expires_in);
	}
	if (root) {
		/* The tree holds a copy of the token: wipe it before freeing. */
		const char *p2[] = { "access_token", NULL };
		yajl_val t = yajl_tree_get(root, p2, yajl_t_string);
		if (t && t->u.string)
			OPENSSL_cleanse(t->u.string, strlen(t->u.string));
		yajl_tree_free(root);
	}
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	cmb_http_response_clear(&resp);
	return rc;
}

int cmb_auth_token(struct cmb_auth *a, const char **token)
{
	if (!a->token || cmb_now_mono() > a->expires_at - (double)a->renew_before_s) {
		for (int attempt = 0;; attempt++) {
			char *retry_after = NULL;
			int rc = fetch_token(a, &retry_after);
			if (rc == 0)
				break;
			double wait = 0;
			int again = a->retry && cmb_retry_next(a->retry, attempt, rc, retry_after, &wait);
			free(retry_after);
			if (!again)
				return rc;
			cmb_warn("%s; retrying in %.1f s (attempt %d of %d)", cmb_error_last(), wait, attempt + 2,
				 a->retry->policy.max_attempts);
			if ((rc = cmb_retry_sleep(wait, NULL)) < 0)
				return rc;
		}
	}
	*token = a->token;
	return 0;
}
