/*
 * auth_gss.c - SPNEGO/Kerberos for the site ([site] auth = negotiate,
 * RFC 4559) through MIT GSS-API: the acceptor takes its keys from the
 * keytab ([site] keytab, else KRB5_KTNAME) and accepts a service ticket for
 * any principal in it (the lab's is HTTP/localhost@REALM). The KDC is not
 * the lab's: lab/tests/kdc.sh runs one. Never logs a token.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>

static void gss_msg(OM_uint32 maj, OM_uint32 min, char *out, size_t n)
{
	OM_uint32 m, ctx = 0;
	gss_buffer_desc b;
	size_t k = 0;
	out[0] = 0;
	for (int pass = 0; pass < 2; pass++) {
		ctx = 0;
		do {
			if (gss_display_status(&m, pass ? min : maj, pass ? GSS_C_MECH_CODE : GSS_C_GSS_CODE,
					       GSS_C_NO_OID, &ctx, &b) != GSS_S_COMPLETE)
				break;
			int w = snprintf(out + k, n - k, "%s%.*s", k ? "; " : "", (int)b.length, (char *)b.value);
			gss_release_buffer(&m, &b);
			if (w < 0 || (size_t)w >= n - k)
				return;
			k += (size_t)w;
		} while (ctx);
	}
}

int lab_gss_init(const char *keytab, char *err, size_t errlen)
{
	if (keytab && *keytab && krb5_gss_register_acceptor_identity(keytab) != GSS_S_COMPLETE) {
		snprintf(err, errlen, "%s ([site] keytab): cannot be used as the GSS-API acceptor keytab", keytab);
		return -1;
	}
	/* fail at up, not at the first request, when there is no usable key */
	OM_uint32 maj, min;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	maj = gss_acquire_cred(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, &cred, NULL, NULL);
	if (GSS_ERROR(maj)) {
		char m[512];
		gss_msg(maj, min, m, sizeof m);
		snprintf(err, errlen, "negotiate: no acceptor credentials (keytab %s): %s",
			 keytab && *keytab ? keytab : getenv("KRB5_KTNAME") ? getenv("KRB5_KTNAME") : "default", m);
		return -1;
	}
	gss_release_cred(&min, &cred);
	return 0;
}

static char *b64(const unsigned char *d, size_t n)
{
	char *u = lab_b64url(d, n);
	size_t l = strlen(u);
	char *out = lab_xmalloc(l + 4);
	for (size_t i = 0; i < l; i++)
		out[i] = u[i] == '-' ? '+' : u[i] == '_' ? '/' : u[i];
	while (l % 4)
		out[l++] = '=';
	out[l] = 0;
	free(u);
	return out;
}

int lab_gss_accept(const char *tok, char **out, char *who, size_t wholen)
{
	OM_uint32 maj, min;
	size_t n = 0;
	*out = NULL;
	who[0] = 0;
	while (*tok == ' ')
		tok++;
	size_t tl = strlen(tok);
	while (tl && tok[tl - 1] == ' ')
		tl--;
	unsigned char *in = lab_b64_decode(tok, tl, &n);
	if (!in || !n) {
		free(in);
		return -1;
	}
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_buffer_desc ib = {n, in}, ob = GSS_C_EMPTY_BUFFER;
	gss_name_t src = GSS_C_NO_NAME;
	maj = gss_accept_sec_context(&min, &ctx, GSS_C_NO_CREDENTIAL, &ib, GSS_C_NO_CHANNEL_BINDINGS, &src, NULL, &ob,
				     NULL, NULL, NULL);
	free(in);
	int rc = -1;
	/* HTTP Negotiate has no second leg from the client: only COMPLETE counts */
	if (maj == GSS_S_COMPLETE) {
		gss_buffer_desc nb;
		if (gss_display_name(&min, src, &nb, NULL) == GSS_S_COMPLETE) {
			snprintf(who, wholen, "%.*s", (int)nb.length, (char *)nb.value);
			gss_release_buffer(&min, &nb);
		}
		if (ob.length) {
			char *t = b64(ob.value, ob.length);
			*out = lab_xasprintf("Negotiate %s", t);
			free(t);
		}
		rc = 1;
	} else {
		char m[512];
		gss_msg(maj, min, m, sizeof m);
		lab_log("site: Negotiate refused: %s", m);
	}
	gss_release_buffer(&min, &ob);
	gss_release_name(&min, &src);
	if (ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
	return rc;
}
