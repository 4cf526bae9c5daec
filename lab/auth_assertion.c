/*
 * auth_assertion.c - certificate credentials at the token endpoint
 * (docs/wire-format.md §6): the client certificates init writes, the
 * registered certificate up loads, and the real verification of a
 * client assertion (compact JWS, PS256 or RS256, thumbprint, claims, jti
 * replay). Error codes follow Microsoft's published AADSTS codes; the
 * choices are listed in docs/lab.md. Never logs an assertion or a key.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define SKEW 300
#define MAX_LIFETIME 600

/* ---- init: client certificates ------------------------------------------ */

/* A clientAuth certificate valid from now+nb to now+na seconds; self-signed
 * when issuer is NULL. Returns a new X509 or NULL. */
static X509 *client_cert(EVP_PKEY *key, const char *cn, long nb, long na, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	unsigned char serial[16];
	lab_random(serial, sizeof serial);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), nb);
	X509_gmtime_adj(X509_getm_notAfter(x), na);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cmbridge lab", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : x;
	int rc = 0;
	rc |= lab_x509_add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (issuer)
		rc |= lab_x509_add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
	rc |= lab_x509_add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
	rc |= lab_x509_add_ext(x, iss, NID_key_usage, "critical,digitalSignature");
	rc |= lab_x509_add_ext(x, iss, NID_ext_key_usage, "clientAuth");
	if (rc != 0 || !X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int write_pair(const char *dir, const char *base, EVP_PKEY *key, X509 *cert)
{
	int rc = -1;
	char *pc = lab_xasprintf("%s/%s.pem", dir, base), *pk = lab_xasprintf("%s/%s.key", dir, base);
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
	char *data;
	long n;
	if (!PEM_write_bio_X509(bc, cert) || !PEM_write_bio_PrivateKey(bk, key, NULL, NULL, 0, NULL, NULL))
		goto done;
	n = BIO_get_mem_data(bc, &data);
	if (lab_write_file(pc, data, (size_t)n, 0644) < 0) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", pc, strerror(errno));
		goto done;
	}
	n = BIO_get_mem_data(bk, &data);
	if (lab_write_file(pk, data, (size_t)n, 0600) < 0) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", pk, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	BIO_free(bc);
	BIO_free(bk);
	free(pc);
	free(pk);
	return rc;
}

int lab_auth_init_files(struct lab_conf *c)
{
	static const struct {
		const char *base;
		long nb, na;               /* validity relative to now, seconds */
	} certs[] = {
		{"client", -3600, 365L * 86400},
		{"client-expired", -30L * 86400, -86400},
		{"client-soon", -3600, 10L * 86400},
	};
	int rc = -1;
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	char *p = NULL;
	snprintf(c->site_auth, sizeof c->site_auth, "basic");
	snprintf(c->bearer_audience, sizeof c->bearer_audience, "https://cmbridge-lab-site");
	snprintf(c->tenant_cert, sizeof c->tenant_cert, "client.pem");
	for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++) {
		char cn[96];
		snprintf(cn, sizeof cn, "cmbridge connector %s", c->client_id);
		if (!(key = EVP_RSA_gen(2048)) || !(x = client_cert(key, cn, certs[i].nb, certs[i].na, NULL, NULL)) ||
		    write_pair(c->dir, certs[i].base, key, x) < 0)
			goto done;
		EVP_PKEY_free(key);
		X509_free(x);
		key = NULL;
		x = NULL;
	}
	/* site-client: for the site's mutual TLS, signed by the lab CA */
	p = lab_path(c, "ca.pem");
	FILE *f = fopen(p, "r");
	if (f) {
		ca = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	free(p);
	p = lab_path(c, "ca.key");
	cakey = lab_pki_load_key(p);
	if (!ca || !cakey)
		goto done;
	if (!(key = EVP_EC_gen("P-256")) ||
	    !(x = client_cert(key, "svc-cmbridge (site client)", -3600, 365L * 86400, ca, cakey)) ||
	    write_pair(c->dir, "site-client", key, x) < 0)
		goto done;
	rc = 0;
done:
	if (rc < 0)
		fprintf(stderr, LAB_NAME ": %s: cannot create the client certificates: %s\n", c->dir,
			ERR_error_string(ERR_get_error(), NULL));
	free(p);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	X509_free(x);
	X509_free(ca);
	return rc;
}

/* ---- up: the registered certificate --------------------------------------- */

int lab_auth_up(struct lab *lab, char *err, size_t errlen)
{
	struct lab_auth *a = lab_xcalloc(1, sizeof *a);
	struct lab_conf *c = &lab->conf;
	int rc = -1;
	X509 *x = NULL;
	lab->auth = a;
	pthread_mutex_init(&a->jti_lock, NULL);
	a->cert_path = c->tenant_cert[0] == '/' ? lab_xstrdup(c->tenant_cert) : lab_path(c, c->tenant_cert);
	FILE *f = fopen(a->cert_path, "r");
	if (!f) {
		snprintf(err, errlen, "%s ([tenant] certificate): %s", a->cert_path, strerror(errno));
		goto done;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x || !(a->client_key = X509_get_pubkey(x)) || !EVP_PKEY_is_a(a->client_key, "RSA")) {
		snprintf(err, errlen, "%s ([tenant] certificate): not a PEM certificate with an RSA key", a->cert_path);
		goto done;
	}
	unsigned int n;
	X509_digest(x, EVP_sha256(), a->x5t_s256, &n);
	X509_digest(x, EVP_sha1(), a->x5t, &n);
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		a->cert_not_after = (int64_t)timegm(&tm);
	if (c->client_ca[0]) {
		char *p = c->client_ca[0] == '/' ? lab_xstrdup(c->client_ca) : lab_path(c, c->client_ca);
		a->site_trust = lab_read_file(p, NULL);
		if (!a->site_trust) {
			snprintf(err, errlen, "%s ([site] client_ca): %s", p, strerror(errno));
			free(p);
			goto done;
		}
		free(p);
	}
	if (!strcmp(c->site_auth, "negotiate")) {
		if (lab_gss_init(c->keytab, err, errlen) < 0)
			goto done;
		a->gss = true;
	}
	rc = 0;
done:
	ERR_clear_error();
	X509_free(x);
	return rc;
}

void lab_auth_free(struct lab *lab)
{
	struct lab_auth *a = lab->auth;
	if (!a)
		return;
	EVP_PKEY_free(a->client_key);
	for (size_t i = 0; i < a->njti; i++)
		free(a->jtis[i].id);
	free(a->jtis);
	free(a->cert_path);
	free(a->site_trust);
	pthread_mutex_destroy(&a->jti_lock);
	free(a);
	lab->auth = NULL;
}

const char *lab_auth_site_trust(const struct lab *lab)
{
	return lab->auth ? lab->auth->site_trust : NULL;
}

bool lab_auth_site_scope(const struct lab *lab, const char *scope)
{
	size_t n = strlen(lab->conf.bearer_audience);
	return n && !strncmp(scope, lab->conf.bearer_audience, n) && !strcmp(scope + n, "/.default");
}

/* ---- verification ----------------------------------------------------------- */

static int fail(struct lab_auth_err *e, int status, const char *error, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int fail(struct lab_auth_err *e, int status, const char *error, int code, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	e->error = error;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *str_claim(yajl_val o, const char *k)
{
	const char *path[] = {k, NULL};
	yajl_val v = yajl_tree_get(o, path, yajl_t_string);
	return v ? v->u.string : NULL;
}

static bool int_claim(yajl_val o, const char *k, long long *out)
{
	const char *path[] = {k, NULL};
	yajl_val v = yajl_tree_get(o, path, yajl_t_number);
	if (!v || !YAJL_IS_INTEGER(v))
		return false;
	*out = v->u.number.i;
	return true;
}

static char *hex(const unsigned char *d, size_t n)
{
	char *s = lab_xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02X", d[i]);
	return s;
}

/* Remembers jti until exp; false when it is already known (a replay). */
static bool jti_fresh(struct lab_auth *a, const char *jti, int64_t exp, int64_t now)
{
	bool fresh = true;
	pthread_mutex_lock(&a->jti_lock);
	size_t w = 0;
	for (size_t i = 0; i < a->njti; i++) {
		if (a->jtis[i].exp + SKEW < now) {
			free(a->jtis[i].id);
			continue;
		}
		if (!strcmp(a->jtis[i].id, jti))
			fresh = false;
		a->jtis[w++] = a->jtis[i];
	}
	a->njti = w;
	if (fresh) {
		if (a->njti == a->jcap) {
			a->jcap = a->jcap ? 2 * a->jcap : 64;
			a->jtis = lab_xrealloc(a->jtis, a->jcap * sizeof *a->jtis);
		}
		a->jtis[a->njti].id = lab_xstrdup(jti);
		a->jtis[a->njti].exp = exp;
		a->njti++;
	}
	pthread_mutex_unlock(&a->jti_lock);
	return fresh;
}

static int verify_assertion(struct lab *lab, const char *client_id, const char *tok, const char *aud,
			    struct lab_auth_err *e)
{
	struct lab_auth *a = lab->auth;
	const char *d1 = strchr(tok, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *h = NULL, *p = NULL, *s = NULL;
	yajl_val hv = NULL, pv = NULL;
	char *tp = NULL;
	size_t hl, pl, sl;
	int rc = -1;
	if (!d1 || !d2 || strchr(d2 + 1, '.') || d1 == tok || d2 == d1 + 1 || !d2[1] ||
	    !(h = lab_b64url_decode(tok, (size_t)(d1 - tok), &hl)) ||
	    !(p = lab_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pl)) ||
	    !(s = lab_b64url_decode(d2 + 1, strlen(d2 + 1), &sl)) ||
	    !(hv = yajl_tree_parse((char *)h, NULL, 0)) || !YAJL_IS_OBJECT(hv) ||
	    !(pv = yajl_tree_parse((char *)p, NULL, 0)) || !YAJL_IS_OBJECT(pv)) {
		fail(e, 401, "invalid_client", 50027,
		     "JWT token is invalid or malformed (client_assertion is not a compact JWS with a JSON header and claims).");
		goto done;
	}
	const char *alg = str_claim(hv, "alg");
	bool pss = alg && !strcmp(alg, "PS256");
	if (!alg || (!pss && strcmp(alg, "RS256"))) {
		fail(e, 401, "invalid_client", 50027, "JWT token is invalid or malformed: unsupported alg '%s' (PS256 or RS256).",
		     alg ? alg : "");
		goto done;
	}
	/* which registered key: the thumbprint the alg calls for */
	const char *th = str_claim(hv, pss ? "x5t#S256" : "x5t");
	tp = pss ? lab_b64url(a->x5t_s256, 32) : lab_b64url(a->x5t, 20);
	if (!th || strcmp(th, tp)) {
		unsigned char raw[64];
		size_t rl = 0;
		unsigned char *dec = th ? lab_b64url_decode(th, strlen(th), &rl) : NULL;
		if (dec && rl <= sizeof raw)
			memcpy(raw, dec, rl);
		else
			rl = 0;
		free(dec);
		char *hx = hex(raw, rl);
		fail(e, 401, "invalid_client", 700027,
		     "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]",
		     hx, client_id);
		free(hx);
		goto done;
	}
	int64_t now = lab_tenant_time();
	if (a->cert_not_after && a->cert_not_after < now) {
		char *hx = hex(pss ? a->x5t_s256 : a->x5t, pss ? 32 : 20);
		fail(e, 401, "invalid_client", 700027,
		     "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%s']",
		     hx);
		free(hx);
		goto done;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, a->client_key) == 1;
	if (ok && pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) > 0;
	ok = ok && EVP_DigestVerify(ctx, s, sl, (const unsigned char *)tok, (size_t)(d2 - tok)) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		fail(e, 401, "invalid_client", 700027,
		     "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s']",
		     th);
		goto done;
	}
	const char *iss = str_claim(pv, "iss"), *sub = str_claim(pv, "sub"), *au = str_claim(pv, "aud");
	const char *jti = str_claim(pv, "jti");
	long long nbf = 0, exp = 0, iat = 0;
	bool has_nbf = int_claim(pv, "nbf", &nbf), has_exp = int_claim(pv, "exp", &exp);
	if (!has_nbf && int_claim(pv, "iat", &iat)) {
		nbf = iat;
		has_nbf = true;
	}
	if (!iss || !sub || strcmp(iss, client_id) || strcmp(sub, client_id)) {
		fail(e, 401, "invalid_client", 700021,
		     "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .");
	} else if (!au || strcmp(au, aud)) {
		fail(e, 401, "invalid_client", 700023,
		     "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .");
	} else if (!has_exp || !has_nbf || nbf > now + SKEW || exp <= now - SKEW || exp - nbf > MAX_LIFETIME ||
		   exp < nbf) {
		fail(e, 401, "invalid_client", 700024, "Client assertion is not within its valid time range.");
		char tn[32], tb[32], te[32];
		lab_iso8601(now, tn);
		lab_iso8601(has_nbf ? nbf : 0, tb);
		lab_iso8601(has_exp ? exp : 0, te);
		snprintf(e->msg, sizeof e->msg,
			 "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
			 tn, has_nbf ? tb : "(none)", has_exp ? te : "(none)");
	} else if (!jti || !*jti) {
		fail(e, 401, "invalid_client", 50027, "JWT token is invalid or malformed: the client assertion has no 'jti' claim.");
	} else if (!jti_fresh(a, jti, exp, now)) {
		fail(e, 401, "invalid_client", 50013,
		     "Assertion is invalid: the client assertion with jti '%.64s' was presented before (replay).",
		     jti);
	} else {
		rc = 0;
	}
done:
	ERR_clear_error();
	free(tp);
	yajl_tree_free(hv);
	yajl_tree_free(pv);
	free(h);
	free(p);
	free(s);
	return rc;
}

int lab_auth_client(struct lab *lab, const char *client_id, const char *secret, const char *atype,
		    const char *assertion, const char *aud, struct lab_auth_err *e)
{
	bool has_sec = secret && *secret, has_as = assertion && *assertion;
	if (has_sec && (has_as || (atype && *atype)))
		return fail(e, 400, "invalid_request", 90023,
			    "The request contains both 'client_secret' and 'client_assertion'; send only one client credential.");
	if (has_sec) {
		if (strcmp(secret, lab->client_secret))
			return fail(e, 401, "invalid_client", 7000215,
				    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
				    client_id);
		return 0;
	}
	if (!has_as)
		return fail(e, 400, "invalid_request", 900144,
			    "The request body must contain the following parameter: 'client_secret'.");
	if (!atype || !*atype)
		return fail(e, 400, "invalid_request", 900144,
			    "The request body must contain the following parameter: 'client_assertion_type'.");
	if (strcmp(atype, JWT_BEARER))
		return fail(e, 400, "invalid_request", 90023,
			    "client_assertion_type must be '" JWT_BEARER "'.");
	int rc = verify_assertion(lab, client_id, assertion, aud, e);
	atomic_fetch_add(rc == 0 ? &lab->st.assertions_accepted : &lab->st.assertions_rejected, 1);
	return rc;
}
