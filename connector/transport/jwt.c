/*
 * jwt.c - client assertions signed with a certificate key (OpenSSL), the
 * certificate's validity and thumbprints, and a reader for the
 * public claims of an access token.
 *
 * Must never: hand a private key, a passphrase, an assertion or a token to
 * the log or an error message; let OpenSSL prompt on a terminal for a
 * passphrase; accept a key that does not belong to the certificate.
 */
#include "connector/transport/jwt.h"
#include "connector/base/base64.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/json.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#define ASSERTION_LIFETIME_S 300
/* An assertion is a form field of the token request: client ids and token URLs are short. */
#define MAX_CLAIMS_LEN 16384

struct cmb_cert_cred {
	char *file;
	X509 *cert;
	EVP_PKEY *key;
	char *subject;
	int64_t not_before, not_after;
	char thumbprint[41];
	char *x5t_s256;
	char *x5t;
};

int cmb_jwt_alg_parse(const char *name)
{
	if (name && strcmp(name, "PS256") == 0)
		return CMB_JWT_PS256;
	if (name && strcmp(name, "RS256") == 0)
		return CMB_JWT_RS256;
	return -1;
}

/* ---- certificates ---- */

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static char *name_text(const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		abort();
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *out = n > 0 ? xstrndup(data, (size_t)n) : xstrdup("(empty subject)");
	BIO_free(b);
	return out;
}

/* The last OpenSSL error as text (for messages; never holds key material). */
static const char *ossl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	if (!e) {
		snprintf(buf, size, "no detail");
	} else {
		const char *r = ERR_reason_error_string(e);
		snprintf(buf, size, "%s", r ? r : "unknown OpenSSL error");
	}
	ERR_clear_error();
	return buf;
}

static X509 *read_cert(const char *path, char **why)
{
	char *pem = NULL;
	size_t len = 0;
	if (cmb_file_read(path, 1 << 20, &pem, &len) < 0) {
		*why = xstrdup(cmb_error_last());
		return NULL;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char eb[160];
	if (!x)
		*why = xasprintf("%s holds no PEM certificate (%s)", path, ossl_reason(eb, sizeof(eb)));
	BIO_free(b);
	free(pem);
	return x;
}

int cmb_cert_file_info(const char *cert_file, int64_t *not_before, int64_t *not_after, char **subject)
{
	char *why = NULL;
	X509 *x = read_cert(cert_file, &why);
	if (!x) {
		int rc = cmb_error_set(CMB_ECONFIG, "client certificate: %s", why);
		free(why);
		return rc;
	}
	if (not_before)
		*not_before = asn1_time_epoch(X509_get0_notBefore(x));
	if (not_after)
		*not_after = asn1_time_epoch(X509_get0_notAfter(x));
	if (subject)
		*subject = name_text(X509_get_subject_name(x));
	X509_free(x);
	return 0;
}

/* Passphrase callback: gives the configured passphrase, or fails (never prompts). */
static int passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	const char *pass = u;
	if (!pass)
		return -1;
	size_t n = strlen(pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pass, n);
	return (int)n;
}

int cmb_cert_cred_load(struct cmb_cert_cred **out, const char *cert_file, const char *key_file,
		       const char *passphrase_file)
{
	struct cmb_cert_cred *c = xcalloc(1, sizeof(*c));
	char *why = NULL, *keypem = NULL, *pass = NULL;
	BIO *b = NULL;
	char eb[160];
	int rc;

	c->file = xstrdup(cert_file);
	if (!(c->cert = read_cert(cert_file, &why))) {
		rc = cmb_error_set(CMB_ECONFIG, "[tenant] client_certificate_file: %s", why);
		goto done;
	}
	c->subject = name_text(X509_get_subject_name(c->cert));
	c->not_before = asn1_time_epoch(X509_get0_notBefore(c->cert));
	c->not_after = asn1_time_epoch(X509_get0_notAfter(c->cert));

	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!X509_digest(c->cert, EVP_sha256(), md, &mdlen)) {
		rc = cmb_error_set(CMB_ERROR, "cannot hash certificate %s", cert_file);
		goto done;
	}
	c->x5t_s256 = cmb_base64url_encode(md, mdlen);
	if (!X509_digest(c->cert, EVP_sha1(), md, &mdlen)) {
		rc = cmb_error_set(CMB_ERROR, "cannot hash certificate %s", cert_file);
		goto done;
	}
	c->x5t = cmb_base64url_encode(md, mdlen);
	for (unsigned i = 0; i < mdlen && i < 20; i++)
		snprintf(c->thumbprint + 2 * i, 3, "%02X", md[i]);

	/* The key file is a secret: cmb_secret_read refuses one readable by group or others. */
	const char *kf = key_file ? key_file : cert_file;
	const char *kopt = key_file ? "client_key_file" : "client_certificate_file (no client_key_file set)";
	if ((rc = cmb_secret_read(kf, &keypem)) < 0) {
		cmb_error_wrap(rc, "[tenant] %s", kopt);
		goto done;
	}
	if (passphrase_file && (rc = cmb_secret_read(passphrase_file, &pass)) < 0) {
		cmb_error_wrap(rc, "[tenant] client_key_passphrase_file");
		goto done;
	}
	b = BIO_new_mem_buf(keypem, -1);
	c->key = b ? PEM_read_bio_PrivateKey(b, NULL, passphrase_cb, pass) : NULL;
	if (!c->key) {
		int encrypted = strstr(keypem, "ENCRYPTED") != NULL;
		if (encrypted && !pass)
			rc = cmb_error_set(CMB_ECONFIG,
					   "[tenant] %s: %s holds an encrypted private key: set client_key_passphrase_file",
					   kopt, kf);
		else if (encrypted)
			rc = cmb_error_set(CMB_ECONFIG, "[tenant] %s: cannot decrypt the private key in %s with the "
					   "passphrase of client_key_passphrase_file (%s)", kopt, kf,
					   ossl_reason(eb, sizeof(eb)));
		else
			rc = cmb_error_set(CMB_ECONFIG, "[tenant] %s: %s holds no PEM private key (%s)", kopt, kf,
					   ossl_reason(eb, sizeof(eb)));
		goto done;
	}
	if (EVP_PKEY_base_id(c->key) != EVP_PKEY_RSA) {
		rc = cmb_error_set(CMB_ECONFIG, "[tenant] %s: the key in %s is not an RSA key (PS256 and RS256 "
				   "assertions need RSA, as Entra ID does)", kopt, kf);
		goto done;
	}
	if (EVP_PKEY_get_bits(c->key) < 2048) {
		rc = cmb_error_set(CMB_ECONFIG, "[tenant] %s: the RSA key in %s has %d bits (Entra ID requires at "
				   "least 2048)", kopt, kf, EVP_PKEY_get_bits(c->key));
		goto done;
	}
	if (X509_check_private_key(c->cert, c->key) != 1) {
		ERR_clear_error();
		rc = cmb_error_set(CMB_ECONFIG, "[tenant] %s: the private key in %s does not belong to the certificate "
				   "in %s (subject %s, thumbprint %s)", kopt, kf, cert_file, c->subject, c->thumbprint);
		goto done;
	}
	*out = c;
	c = NULL;
	rc = 0;
done:
	BIO_free(b);
	cmb_secret_free(keypem);
	cmb_secret_free(pass);
	free(why);
	cmb_cert_cred_free(c);
	return rc;
}

void cmb_cert_cred_free(struct cmb_cert_cred *c)
{
	if (!c)
		return;
	X509_free(c->cert);
	EVP_PKEY_free(c->key); /* OpenSSL clears RSA key material on free */
	free(c->file);
	free(c->subject);
	free(c->x5t_s256);
	free(c->x5t);
	free(c);
}

const char *cmb_cert_cred_subject(const struct cmb_cert_cred *c) { return c->subject; }
const char *cmb_cert_cred_file(const struct cmb_cert_cred *c) { return c->file; }
int64_t cmb_cert_cred_not_before(const struct cmb_cert_cred *c) { return c->not_before; }
int64_t cmb_cert_cred_not_after(const struct cmb_cert_cred *c) { return c->not_after; }
const char *cmb_cert_cred_thumbprint(const struct cmb_cert_cred *c) { return c->thumbprint; }
const char *cmb_cert_cred_x5t_s256(const struct cmb_cert_cred *c) { return c->x5t_s256; }
const char *cmb_cert_cred_x5t(const struct cmb_cert_cred *c) { return c->x5t; }

enum cmb_cert_validity cmb_cert_classify(int64_t not_before, int64_t not_after, int64_t now, int64_t soon_s)
{
	if (now < not_before)
		return CMB_CERT_NOT_YET_VALID;
	if (now > not_after)
		return CMB_CERT_EXPIRED;
	if (not_after - now < soon_s)
		return CMB_CERT_EXPIRES_SOON;
	return CMB_CERT_VALID;
}

/* ---- assertions ---- */

static int sign(const struct cmb_cert_cred *c, enum cmb_jwt_alg alg, const char *input, unsigned char **sig,
		size_t *sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	char eb[160];
	int rc = CMB_ERROR;
	if (!md)
		abort();
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, c->key) != 1)
		goto fail;
	if (alg == CMB_JWT_PS256) {
		/* RFC 7518 §3.5: salt as long as the hash, MGF1 with the same hash. */
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
			goto fail;
	} else if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
		goto fail;
	}
	if (EVP_DigestSign(md, NULL, &len, (const unsigned char *)input, strlen(input)) != 1)
		goto fail;
	buf = xmalloc(len);
	if (EVP_DigestSign(md, buf, &len, (const unsigned char *)input, strlen(input)) != 1)
		goto fail;
	*sig = buf;
	*sig_len = len;
	EVP_MD_CTX_free(md);
	return 0;
fail:
	rc = cmb_error_set(CMB_ERROR, "signing the client assertion with the key of %s failed: %s", c->file,
			   ossl_reason(eb, sizeof(eb)));
	free(buf);
	EVP_MD_CTX_free(md);
	return rc;
}

/* The JOSE header: the algorithm and the certificate's thumbprint the authority looks the key up by. */
static char *assertion_header(const struct cmb_cert_cred *c, enum cmb_jwt_alg alg, size_t *len)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "alg", alg == CMB_JWT_PS256 ? "PS256" : "RS256");
	cmb_json_kv_str(g, "typ", "JWT");
	if (alg == CMB_JWT_PS256)
		cmb_json_kv_str(g, "x5t#S256", c->x5t_s256);
	else
		cmb_json_kv_str(g, "x5t", c->x5t);
	yajl_gen_map_close(g);
	return cmb_json_take(g, len);
}

static char *assertion_claims(const char *client_id, const char *aud, int64_t now, const char *jti, size_t *len)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "aud", aud);
	cmb_json_kv_str(g, "iss", client_id);
	cmb_json_kv_str(g, "sub", client_id);
	cmb_json_kv_str(g, "jti", jti);
	cmb_json_kv_int(g, "iat", now);
	cmb_json_kv_int(g, "nbf", now);
	cmb_json_kv_int(g, "exp", now + ASSERTION_LIFETIME_S);
	yajl_gen_map_close(g);
	return cmb_json_take(g, len);
}

int cmb_jwt_assertion(char **out, const struct cmb_cert_cred *c, enum cmb_jwt_alg alg, const char *client_id,
		      const char *aud, int64_t now, const char *jti)
{
	char uuid[37];
	if (!jti) {
		cmb_uuid4(uuid);
		jti = uuid;
	}
	size_t hdr_len, claims_len;
	char *hdr = assertion_header(c, alg, &hdr_len);
	char *claims = assertion_claims(client_id, aud, now, jti, &claims_len);
	int rc = 0;
	if (claims_len > MAX_CLAIMS_LEN) {
		rc = cmb_error_set(CMB_EINVAL, "client assertion: client id or token URL too long");
		goto done;
	}
	char *h64 = cmb_base64url_encode(hdr, hdr_len);
	char *c64 = cmb_base64url_encode(claims, claims_len);
	char *input = xasprintf("%s.%s", h64, c64);
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	if ((rc = sign(c, alg, input, &sig, &sig_len)) == 0) {
		char *s64 = cmb_base64url_encode(sig, sig_len);
		*out = xasprintf("%s.%s", input, s64);
		free(s64);
	}
	free(sig);
	free(input);
	free(h64);
	free(c64);
done:
	free(hdr);
	free(claims);
	return rc;
}

/* ---- reading a token's public claims ---- */

static void describe_value(struct cmb_buf *b, const char *name, yajl_val v)
{
	if (!v)
		return;
	if (YAJL_IS_STRING(v)) {
		cmb_buf_printf(b, "  %-6s %s\n", name, YAJL_GET_STRING(v));
	} else if (YAJL_IS_INTEGER(v)) {
		char iso[32];
		cmb_time_iso8601((int64_t)YAJL_GET_INTEGER(v), iso);
		cmb_buf_printf(b, "  %-6s %lld (%s)\n", name, (long long)YAJL_GET_INTEGER(v), iso);
	} else if (YAJL_IS_ARRAY(v)) {
		cmb_buf_printf(b, "  %-6s ", name);
		for (size_t i = 0; i < v->u.array.len; i++) {
			yajl_val e = v->u.array.values[i];
			cmb_buf_printf(b, "%s%s", i ? ", " : "", YAJL_IS_STRING(e) ? YAJL_GET_STRING(e) : "?");
		}
		cmb_buf_addstr(b, "\n");
	}
}

/* The payload of a JWT as a JSON object (caller frees), or NULL when token is not a JWT. */
static yajl_val jwt_payload(const char *token)
{
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot1 || !dot2)
		return NULL;
	unsigned char *json = NULL;
	size_t json_len = 0;
	if (cmb_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &json, &json_len) < 0)
		return NULL;
	yajl_val root = NULL;
	char eb[8];
	/* The claims come from the authority: read within the JSON limits like every reply. */
	cmb_limit_json_tree((const char *)json, json_len, "token claims", &root, eb, sizeof(eb));
	free(json);
	if (!root || !YAJL_IS_OBJECT(root)) {
		yajl_tree_free(root);
		return NULL;
	}
	return root;
}

char *cmb_jwt_describe_claims(const char *token)
{
	yajl_val root = jwt_payload(token);
	if (!root)
		return NULL;
	static const char *const names[] = { "aud", "iss", "tid", "appid", "azp", "roles", "scp", "iat", "nbf", "exp" };
	struct cmb_buf b = CMB_BUF_INIT(64 * 1024);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *path[] = { names[i], NULL };
		describe_value(&b, names[i], yajl_tree_get(root, path, yajl_t_any));
	}
	yajl_tree_free(root);
	if (!b.data)
		cmb_buf_addstr(&b, "");
	return cmb_buf_detach(&b, NULL);
}

int cmb_jwt_claim_strings(const char *token, const char *name, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	yajl_val root = jwt_payload(token);
	if (!root)
		return 1;
	const char *path[] = { name, NULL };
	yajl_val v = yajl_tree_get(root, path, yajl_t_array);
	size_t len = v ? v->u.array.len : 0;
	*out = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++)
		if (YAJL_IS_STRING(v->u.array.values[i]))
			(*out)[(*n)++] = xstrdup(YAJL_GET_STRING(v->u.array.values[i]));
	yajl_tree_free(root);
	return 0;
}
