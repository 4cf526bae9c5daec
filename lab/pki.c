/*
 * pki.c - the lab's CA, server certificates (EC P-256, SAN 127.0.0.1 and
 * localhost) and the RS256 JWT signing key, all made with libcrypto.
 * Keys are written mode 0600; nothing here ever logs key material.
 */
#include "lab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, int mode)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (key)
		PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	if (cert)
		PEM_write_bio_X509(b, cert);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	int rc = lab_write_file(path, data, (size_t)n, mode);
	if (rc < 0)
		fprintf(stderr, LAB_NAME ": %s: %s\n", path, strerror(errno));
	BIO_free(b);
	return rc;
}

int lab_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
	return 0;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	unsigned char serial[16];
	lab_random(serial, sizeof serial);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)825 * 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cmbridge lab", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : x;
	int rc = 0;
	rc |= lab_x509_add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (ca) {
		rc |= lab_x509_add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
		rc |= lab_x509_add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		rc |= lab_x509_add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
		rc |= lab_x509_add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
		rc |= lab_x509_add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
		rc |= lab_x509_add_ext(x, iss, NID_ext_key_usage, "serverAuth");
		rc |= lab_x509_add_ext(x, iss, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
	}
	if (rc != 0 || !X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int lab_pki_create(const char *dir)
{
	int rc = -1;
	EVP_PKEY *cakey = EVP_EC_gen("P-256");
	EVP_PKEY *skey = EVP_EC_gen("P-256");
	EVP_PKEY *tkey = EVP_EC_gen("P-256");
	EVP_PKEY *jkey = EVP_RSA_gen(2048);
	X509 *ca = NULL, *sc = NULL, *tc = NULL;
	char *p = NULL;
	if (!cakey || !skey || !tkey || !jkey)
		goto done;
	ca = make_cert(cakey, "cmbridge lab CA", NULL, NULL, true);
	if (!ca)
		goto done;
	sc = make_cert(skey, "cmbridge lab site (AdminService)", ca, cakey, false);
	tc = make_cert(tkey, "cmbridge lab tenant", ca, cakey, false);
	if (!sc || !tc)
		goto done;
#define W(name, k, c, m) do { free(p); p = lab_xasprintf("%s/%s", dir, name); \
		if (write_pem(p, k, c, m) < 0) goto done; } while (0)
	W("ca.pem", NULL, ca, 0644);
	W("ca.key", cakey, NULL, 0600);
	W("site.pem", NULL, sc, 0644);
	W("site.key", skey, NULL, 0600);
	W("tenant.pem", NULL, tc, 0644);
	W("tenant.key", tkey, NULL, 0600);
	W("jwt.key", jkey, NULL, 0600);
#undef W
	rc = 0;
done:
	if (rc < 0)
		fprintf(stderr, LAB_NAME ": %s: cannot create keys or certificates: %s\n", dir,
			ERR_error_string(ERR_get_error(), NULL));
	free(p);
	X509_free(ca); X509_free(sc); X509_free(tc);
	EVP_PKEY_free(cakey); EVP_PKEY_free(skey); EVP_PKEY_free(tkey); EVP_PKEY_free(jkey);
	return rc;
}

EVP_PKEY *lab_pki_load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

char *lab_pki_kid(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	char *kid = lab_b64url(md, 20);
	return kid;
}

char *lab_jwt_sign(EVP_PKEY *key, const char *kid, const char *payload)
{
	char *hdr = lab_xasprintf("{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	char *h64 = lab_b64url((const unsigned char *)hdr, strlen(hdr));
	char *p64 = lab_b64url((const unsigned char *)payload, strlen(payload));
	char *input = lab_xasprintf("%s.%s", h64, p64);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[512];
	size_t siglen = sizeof sig;
	char *out = NULL;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)) == 1) {
		char *s64 = lab_b64url(sig, siglen);
		out = lab_xasprintf("%s.%s", input, s64);
		free(s64);
	}
	EVP_MD_CTX_free(ctx);
	free(hdr); free(h64); free(p64); free(input);
	return out;
}

int lab_jwt_verify(EVP_PKEY *key, const char *tok, yajl_val *payload, const char **why)
{
	const char *d1 = strchr(tok, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.')) {
		*why = "IDX14100: JWT is not well formed, there are no dots or too many.";
		return -1;
	}
	size_t hl, pl, sl;
	unsigned char *h = lab_b64url_decode(tok, (size_t)(d1 - tok), &hl);
	unsigned char *p = lab_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
	unsigned char *s = lab_b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
	int rc = -1;
	yajl_val hv = NULL, pv = NULL;
	if (!h || !p || !s) {
		*why = "IDX14102: Unable to decode the token: invalid base64url.";
		goto done;
	}
	hv = yajl_tree_parse((char *)h, NULL, 0);
	pv = yajl_tree_parse((char *)p, NULL, 0);
	const char *alg_path[] = {"alg", NULL};
	yajl_val alg = hv ? yajl_tree_get(hv, alg_path, yajl_t_string) : NULL;
	if (!pv || !YAJL_IS_OBJECT(pv) || !alg || strcmp(alg->u.string, "RS256") != 0) {
		*why = "IDX14102: Unable to decode the header or payload, or alg is not RS256.";
		goto done;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
		 EVP_DigestVerify(ctx, s, sl, (const unsigned char *)tok, (size_t)(d2 - tok)) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*why = "IDX10511: Signature validation failed.";
		goto done;
	}
	*payload = pv;
	pv = NULL;
	rc = 0;
done:
	ERR_clear_error();
	yajl_tree_free(hv);
	yajl_tree_free(pv);
	free(h); free(p); free(s);
	return rc;
}
