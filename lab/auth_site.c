/*
 * auth_site.c - the site's authentication ([site] auth, docs/wire-format.md
 * §7) and its optional mutual TLS ([site] client_ca). basic stays in site.c;
 * ntlm and negotiate authenticate the CONNECTION (as IIS does), so their
 * state lives in the per-connection context server.c keeps; bearer checks
 * a token this lab issued for [site] bearer_audience. Never logs a
 * credential.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <microhttpd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

void *lab_auth_conn_new(void)
{
	return lab_xcalloc(1, sizeof(struct lab_auth_conn));
}

void lab_auth_conn_free(void *state)
{
	free(state);
}

static void deny(struct lab_reply *r, int status, const char *code, const char *msg, const char *challenge)
{
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"error\":{\"code\":");
	lab_buf_json_cstr(&b, code);
	lab_buf_adds(&b, ",\"message\":");
	lab_buf_json_cstr(&b, msg);
	lab_buf_adds(&b, "}}");
	lab_reply_json(r, status, &b);
	r->ctype = "application/json; odata.metadata=minimal";
	if (challenge)
		lab_reply_hdr(r, "WWW-Authenticate", challenge);
}

/* Mutual TLS: a client certificate that chains to [site] client_ca and is
 * meant for client authentication. libmicrohttpd only *requests* one when
 * given a trust store, so the lab enforces it here, per request. */
static bool client_cert_ok(const struct lab_req *q)
{
	if (!q->conn)
		return false;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
	unsigned int n = 0, status = 0;
	if (!s || !gnutls_certificate_get_peers(s, &n) || n == 0)
		return false;
	gnutls_typed_vdata_st data[1] = {{GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0}};
	return gnutls_certificate_verify_peers(s, data, 1, &status) == GNUTLS_E_SUCCESS && status == 0;
}

static struct lab_auth_conn *conn_state(const struct lab_req *q)
{
	if (!q->conn)
		return NULL;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static const char *scheme_arg(const char *a, const char *scheme)
{
	size_t n = strlen(scheme);
	if (!a || strncasecmp(a, scheme, n) || (a[n] && a[n] != ' '))
		return NULL;
	a += n;
	while (*a == ' ')
		a++;
	return a;
}

static int ntlm(struct lab *lab, const struct lab_req *q, struct lab_reply *r, struct lab_auth_conn *st)
{
	const char *arg = scheme_arg(q->header(q->hctx, "Authorization"), "NTLM");
	if (!arg || !*arg) {
		if (st->authenticated)
			return 0;
		deny(r, 401, "Unauthorized", "Authorization has been denied for this request.", "NTLM");
		return -1;
	}
	char *chal = NULL;
	st->authenticated = false;
	int rc = lab_ntlm_step(lab, st, arg, &chal);
	if (rc == 1) {
		st->authenticated = true;
		return 0;
	}
	deny(r, 401, "Unauthorized", "Authorization has been denied for this request.", rc == 0 ? chal : "NTLM");
	free(chal);
	return -1;
}

static int negotiate(struct lab *lab, const struct lab_req *q, struct lab_reply *r, struct lab_auth_conn *st)
{
	const char *arg = scheme_arg(q->header(q->hctx, "Authorization"), "Negotiate");
	if (!arg || !*arg) {
		if (st->authenticated)
			return 0;
		deny(r, 401, "Unauthorized", "Authorization has been denied for this request.", "Negotiate");
		return -1;
	}
	char *mutual = NULL, who[256];
	if (!lab->auth || !lab->auth->gss || lab_gss_accept(arg, &mutual, who, sizeof who) != 1) {
		st->authenticated = false;
		deny(r, 401, "Unauthorized", "Authorization has been denied for this request.", "Negotiate");
		return -1;
	}
	st->authenticated = true;
	if (mutual)
		lab_reply_hdr(r, "WWW-Authenticate", mutual);
	free(mutual);
	return 0;
}

static int bearer(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *t = scheme_arg(q->header(q->hctx, "Authorization"), "Bearer");
	const char *why = "Authorization has been denied for this request.";
	yajl_val claims = NULL;
	if (t && *t && lab_jwt_verify(lab->jwt_key, t, &claims, &why) == 0) {
		const char *pa[] = {"aud", NULL}, *pe[] = {"exp", NULL}, *pn[] = {"nbf", NULL}, *pt[] = {"tid", NULL};
		yajl_val aud = yajl_tree_get(claims, pa, yajl_t_string);
		yajl_val exp = yajl_tree_get(claims, pe, yajl_t_number);
		yajl_val nbf = yajl_tree_get(claims, pn, yajl_t_number);
		yajl_val tid = yajl_tree_get(claims, pt, yajl_t_string);
		long long now = (long long)time(NULL);
		if (!aud || strcmp(aud->u.string, lab->conf.bearer_audience))
			why = "Invalid audience: the token is not for this site's resource.";
		else if (!exp || !YAJL_IS_INTEGER(exp) || exp->u.number.i <= now)
			why = "The token is expired.";
		else if (nbf && YAJL_IS_INTEGER(nbf) && nbf->u.number.i > now + 300)
			why = "The token is not yet valid.";
		else if (!tid || strcmp(tid->u.string, lab->conf.tenant_id))
			why = "The token is for another tenant.";
		else
			why = NULL;
	}
	yajl_tree_free(claims);
	if (!why)
		return 0;
	deny(r, 401, "Unauthorized", why, "Bearer");
	return -1;
}

int lab_site_auth(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *m = lab->conf.site_auth;
	if (lab_auth_site_trust(lab) && !client_cert_ok(q)) {
		deny(r, 403, "Forbidden", "A client certificate issued by the lab CA is required (mutual TLS).", NULL);
		return -1;
	}
	if (!strcmp(m, "ntlm") || !strcmp(m, "negotiate")) {
		struct lab_auth_conn *st = conn_state(q);
		if (!st) {
			deny(r, 401, "Unauthorized", "Authorization has been denied for this request.", m[0] == 'n' && m[1] == 't' ? "NTLM" : "Negotiate");
			return -1;
		}
		return m[1] == 't' ? ntlm(lab, q, r, st) : negotiate(lab, q, r, st);
	}
	if (!strcmp(m, "bearer"))
		return bearer(lab, q, r);
	return 0;                  /* none; basic is checked by site.c */
}
