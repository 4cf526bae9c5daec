/*
 * test_jwt.c - certificate credentials: the client assertion's header and
 * claims exactly, its signature verified with the certificate's public key
 * (PS256 and RS256, by OpenSSL here, independently of jwt.c's signing path),
 * thumbprints of a fixed certificate, loading errors (wrong key, encrypted
 * key, loose permissions), validity classification, and the claims
 * `cmbridge token` shows (base64url itself: test_base64.c).
 *
 * The fixed certificate and key below were made once with
 *   openssl req -x509 -newkey rsa:2048 -nodes -days 36500 \
 *     -subj "/CN=cmbridge-test/O=cmbridge" -set_serial 4242
 * and its thumbprints computed with `openssl x509 -outform DER | openssl dgst`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/base/base64.h"
#include "connector/base/error.h"
#include "connector/transport/jwt.h"
#include "connector/base/util.h"
#include "tests/unit/fixture.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char CERT_PEM[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIDJzCCAg+gAwIBAgICEJIwDQYJKoZIhvcNAQELBQAwKzEWMBQGA1UEAwwNY21i\n"
	"cmlkZ2UtdGVzdDERMA8GA1UECgwIY21icmlkZ2UwIBcNMjYxMTI5MDQxMTQyWhgP\n"
	"MjEyNjExMDUwNDExNDJaMCsxFjAUBgNVBAMMDWNtYnJpZGdlLXRlc3QxETAPBgNV\n"
	"BAoMCGNtYnJpZGdlMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoEsx\n"
	"4H4kQ7UU6nLNSlIOMvXTO279CMc9c3mgoERmORyYGIomZYJKMWgGMWspi5iUPWK7\n"
	"C6uCkRBKDuAI9f/Fe1nIx3ynE52WSzozpDiI0ORlXujrbFY73auiwpAURZMYRy0x\n"
	"nXV2+Xy6SfuMf0QtXcx8Te3wAai4UmDmRXMpmBQLaRf/H+PiWY3nKVHE8DS00ivF\n"
	"AtZQ5xYLTkzwrs3kbxaEir0Cu3x0jDBQ17lsi/hfP/3jxQSDcsHle9QeFXXuKsIb\n"
	"zd6tGzh1IxzSMCRQZo5ltXjaLRunGoccG+leu+nR7ol3OpTkjzE9RXNWPe8Z0ola\n"
	"3ubyX4NDVzJ9dmW48wIDAQABo1MwUTAdBgNVHQ4EFgQUUVvxnDvfQbQXW6pKp9CU\n"
	"6UL0U0IwHwYDVR0jBBgwFoAUUVvxnDvfQbQXW6pKp9CU6UL0U0IwDwYDVR0TAQH/\n"
	"BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAZZ8McasaEspRcy36bZ8uCyQnTdhB\n"
	"dI44S1etN10SK3UGeCazfTYVX3+V5VR+LkihN0lrSqSQsMYWkcUjRGi+g5Liw9pp\n"
	"D88K/nEcf+0Hs0ZWGxf9ZAJWp+bsrM8VDxrZEDf1gUixqADEGiQwS0IUK3RYixwW\n"
	"Jr39CKL2eOME2hRDiNEdvKz/h1GOUMGN/wQHnBkhJpobSs81GbFr3MJkG5pb20Pp\n"
	"UaWZGq1ga6n3oeMCLLKxcKHRfcAdTmGBuFIJonaejI/tPgtLtIX0Ap6PsiEaEBxt\n"
	"LMlh6tWIS64Zy1HK3OWLFl48LZSai3ShpDIMco08DiI/W/AtM3IV6K7QEA==\n"
	"-----END CERTIFICATE-----\n";

static const char KEY_PEM[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCgSzHgfiRDtRTq\n"
	"cs1KUg4y9dM7bv0Ixz1zeaCgRGY5HJgYiiZlgkoxaAYxaymLmJQ9YrsLq4KREEoO\n"
	"4Aj1/8V7WcjHfKcTnZZLOjOkOIjQ5GVe6OtsVjvdq6LCkBRFkxhHLTGddXb5fLpJ\n"
	"+4x/RC1dzHxN7fABqLhSYOZFcymYFAtpF/8f4+JZjecpUcTwNLTSK8UC1lDnFgtO\n"
	"TPCuzeRvFoSKvQK7fHSMMFDXuWyL+F8//ePFBINyweV71B4Vde4qwhvN3q0bOHUj\n"
	"HNIwJFBmjmW1eNotG6cahxwb6V676dHuiXc6lOSPMT1Fc1Y97xnSiVre5vJfg0NX\n"
	"Mn12ZbjzAgMBAAECggEAPLMs8I+kCPW+NWgC4IWBNgAMHQITFOtqFFv3HSm5sh/n\n"
	"YseR8besg9gaHEWx5liBrltAbJNmrqtF+CsTiaBxNpxR4WUNWeq/mr4wBxyXhs8u\n"
	"qgm2+QAQzIkt6dKoso4Yz/9HvhJY2vJGEzUMR7dYHKCOY+5aCC7NmfhyytLo6dr3\n"
	"mTPUEN5sjY/V8mhGve2gZIaSw605z+yF1EimliH+WSbsezLaN7OzbGzSq+5+6BZx\n"
	"Tw0bp6U/zWHL431K0mkYzu6gjIaEdrBr8B+KVPI7BoYPaxiOtAka9a61rn+ZdGCI\n"
	"BoMdt794twEroVl65/P1IBA1ybItQ5ZKUnh+y/MsRQKBgQDX7XyF7/2sQPl7kaIq\n"
	"a2DLht3cidrNvtCBtv3Ona3QrNNzm+/JOnOLx5ESeYV0rC3DtImLzLc6fMrwHbcb\n"
	"Ic6XOsgo+tRhEppMzos7/cR3HUPfhGeAbiJzQXSwMU3fNo14rQqMDLO7BIne5zQd\n"
	"LEbrvUMi7YUcA95s9I/vtjMHVwKBgQC+Cpf39HkQ35bAXxlcFAayBJ57q1t7GXnd\n"
	"R/V3+ZcRzXYqsat0BFwYgDVbJnPFIzQXyujvc+KmryzGmFiz9dNsyPBTFc98A15V\n"
	"4ImJPFlB8VY46wrn0/eRTofSRzcdgVPdhfpERMsEBRugNzZ1Gs7bPvCCncg83RMX\n"
	"7mInDAqlxQKBgCdkV/dHVQv7vofghakfdcUrkYYOUDCAwyEm9R6gfXk4TkslA5W+\n"
	"aB30Bm9MZCBo2OB/Kyip7DNrWMp9YU492KaWPrXbLKuY7TVd6ODE5vakDCHW0dsI\n"
	"PJiyNEuAcyhpl12QlAAAwTk5Fr3niAZacYXIPVs94a6+tfFCnI+quZx5AoGANJlE\n"
	"BInytDveQrJPl4+nZsAmiT4dXM3pT9ip1SIMsQ24BgsU1FCcmN9rZSYYZtjegzNT\n"
	"E2t0sQPNFc52xqBkeziGY8imm8Fm68fw6T39ymWcorZTV2TwoZQlvYqec5km+Cor\n"
	"4ZdUxXEQe2Csvu7DkCU0dkJreIUL0tTU78/CZq0CgYASo1WqKupFNPGqa9bsTqzQ\n"
	"LwQrO0qxMnMdFI6wYPYHtY6aqdfZ/GYMlSosfqruT//1NXGtRS90DdRzpV1EwJSD\n"
	"nareP+WEt23+7fTTp6YXM3ReLKnS4HIPjOr42cvhWy7CFFItfzEfH4QY9eprNYN4\n"
	"iLOwUalh/gI/JMhthCUWyg==\n"
	"-----END PRIVATE KEY-----\n";

#define X5T_S256 "2yOyPE4zAtJXErovwvDyCAashrQEyYWxeUTkgYq3C1o"
#define X5T "dgZw-FuoCtEqpDSQtMPE19pG3eE"
#define THUMBPRINT "760670F85BA80AD12AA43490B4C3C4D7DA46DDE1"
#define AUD "https://login.example/contoso/oauth2/v2.0/token"
#define CLIENT "11111111-2222-3333-4444-555555555555"

struct fx {
	char dir[FX_DIR_SIZE];
	char *cert, *key;
};

static char *path_in(const struct fx *f, const char *name)
{
	return fx_path(f->dir, name);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "jwt") < 0)
		return -1;
	f->cert = path_in(f, "client.pem");
	f->key = path_in(f, "client.key");
	fx_write_str(f->cert, CERT_PEM, 0644);
	fx_write_str(f->key, KEY_PEM, 0600);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	fx_rmtree(f->dir);
	free(f->cert);
	free(f->key);
	free(f);
	return 0;
}

/* Splits a compact JWS; the parts are the caller's. */
static void split(const char *jws, char **header, char **claims, unsigned char **sig, size_t *sig_len, char **input)
{
	const char *d1 = strchr(jws, '.');
	assert_non_null(d1);
	const char *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	unsigned char *h, *c;
	assert_int_equal(cmb_base64url_decode(jws, (size_t)(d1 - jws), &h, NULL), 0);
	assert_int_equal(cmb_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &c, NULL), 0);
	assert_int_equal(cmb_base64url_decode(d2 + 1, strlen(d2 + 1), sig, sig_len), 0);
	*header = (char *)h;
	*claims = (char *)c;
	*input = xstrndup(jws, (size_t)(d2 - jws));
	/* No padding, only the base64url alphabet. */
	for (const char *p = jws; *p; p++)
		assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *p) != NULL);
}

/* Verifies with the public key of CERT_PEM, the way a token endpoint does. */
static int verify(const char *input, const unsigned char *sig, size_t sig_len, int pss)
{
	BIO *b = BIO_new_mem_buf(CERT_PEM, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(x);
	EVP_PKEY *pub = X509_get_pubkey(x);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub), 1);
	if (pss) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		/* Salt exactly 32 (RFC 7518 §3.5): a verifier that insists on it accepts ours. */
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	} else {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
	}
	int ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, strlen(input));
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	X509_free(x);
	BIO_free(b);
	return ok;
}

static void test_thumbprints(void **state)
{
	struct fx *f = *state;
	struct cmb_cert_cred *c = NULL;
	assert_int_equal(cmb_cert_cred_load(&c, f->cert, f->key, NULL), 0);
	assert_string_equal(cmb_cert_cred_x5t_s256(c), X5T_S256);
	assert_string_equal(cmb_cert_cred_x5t(c), X5T);
	assert_string_equal(cmb_cert_cred_thumbprint(c), THUMBPRINT);
	assert_string_equal(cmb_cert_cred_subject(c), "O=cmbridge,CN=cmbridge-test");
	assert_true(cmb_cert_cred_not_after(c) - cmb_cert_cred_not_before(c) == (int64_t)36500 * 86400);
	cmb_cert_cred_free(c);
	cmb_cert_cred_free(NULL);
}

static void check_assertion(void **state, enum cmb_jwt_alg alg)
{
	struct fx *f = *state;
	struct cmb_cert_cred *c = NULL;
	assert_int_equal(cmb_cert_cred_load(&c, f->cert, f->key, NULL), 0);
	char *jws = NULL;
	assert_int_equal(cmb_jwt_assertion(&jws, c, alg, CLIENT, AUD, 1767225600, "4c1e3c5e-0f8a-4a9b-9f43-2f7d9d1e6a01"), 0);
	char *header, *claims, *input;
	unsigned char *sig;
	size_t sig_len;
	split(jws, &header, &claims, &sig, &sig_len, &input);
	if (alg == CMB_JWT_PS256)
		assert_string_equal(header, "{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t#S256\":\"" X5T_S256 "\"}");
	else
		assert_string_equal(header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"" X5T "\"}");
	assert_string_equal(claims, "{\"aud\":\"" AUD "\",\"iss\":\"" CLIENT "\",\"sub\":\"" CLIENT "\","
				    "\"jti\":\"4c1e3c5e-0f8a-4a9b-9f43-2f7d9d1e6a01\",\"iat\":1767225600,"
				    "\"nbf\":1767225600,\"exp\":1767225900}");
	assert_int_equal(sig_len, 256);
	assert_int_equal(verify(input, sig, sig_len, alg == CMB_JWT_PS256), 1);
	/* The other padding does not verify: the algorithm in the header is the one used. */
	assert_int_not_equal(verify(input, sig, sig_len, alg != CMB_JWT_PS256), 1);
	/* A changed claim breaks the signature. */
	input[strlen(input) - 2] ^= 1;
	assert_int_not_equal(verify(input, sig, sig_len, alg == CMB_JWT_PS256), 1);
	free(header);
	free(claims);
	free(input);
	free(sig);
	cmb_secret_free(jws);

	/* Without a given jti: a fresh UUID each time. */
	char *a1 = NULL, *a2 = NULL;
	assert_int_equal(cmb_jwt_assertion(&a1, c, alg, CLIENT, AUD, 1767225600, NULL), 0);
	assert_int_equal(cmb_jwt_assertion(&a2, c, alg, CLIENT, AUD, 1767225600, NULL), 0);
	split(a1, &header, &claims, &sig, &sig_len, &input);
	char *j1 = strstr(claims, "\"jti\":\"");
	assert_non_null(j1);
	assert_int_equal(j1[7 + 36], '"');
	assert_int_equal(j1[7 + 14], '4'); /* version 4 */
	char *keep = xstrndup(j1, 7 + 36);
	free(header);
	free(claims);
	free(input);
	free(sig);
	split(a2, &header, &claims, &sig, &sig_len, &input);
	assert_null(strstr(claims, keep));
	assert_int_equal(verify(input, sig, sig_len, alg == CMB_JWT_PS256), 1);
	free(keep);
	free(header);
	free(claims);
	free(input);
	free(sig);
	cmb_secret_free(a1);
	cmb_secret_free(a2);
	cmb_cert_cred_free(c);
}

static void test_assertion_ps256(void **state)
{
	check_assertion(state, CMB_JWT_PS256);
}

static void test_assertion_rs256(void **state)
{
	check_assertion(state, CMB_JWT_RS256);
}

static void test_alg_parse(void **state)
{
	(void)state;
	assert_int_equal(cmb_jwt_alg_parse("PS256"), CMB_JWT_PS256);
	assert_int_equal(cmb_jwt_alg_parse("RS256"), CMB_JWT_RS256);
	assert_int_equal(cmb_jwt_alg_parse("ps256"), -1);
	assert_int_equal(cmb_jwt_alg_parse(NULL), -1);
}

/* Writes key (PEM, encrypted with pass when given) to dir/name with mode. Returns the path. */
static char *write_key(const struct fx *f, const char *name, EVP_PKEY *key, const char *pass, mode_t mode)
{
	char *pem = fx_pem_key(key, pass);
	char *path = path_in(f, name);
	fx_write_str(path, pem, mode);
	free(pem);
	return path;
}

static EVP_PKEY *fixed_key(void)
{
	BIO *b = BIO_new_mem_buf(KEY_PEM, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	assert_non_null(k);
	BIO_free(b);
	return k;
}

static void expect_load_error(const char *cert, const char *key, const char *pass, int code, const char *want)
{
	struct cmb_cert_cred *c = (struct cmb_cert_cred *)0x1;
	cmb_error_clear();
	int rc = cmb_cert_cred_load(&c, cert, key, pass);
	if (rc != code || !strstr(cmb_error_last(), want))
		fail_msg("got %d '%s', want %d with '%s'", rc, cmb_error_last(), code, want);
	assert_ptr_equal(c, (struct cmb_cert_cred *)0x1);
}

static void test_load_errors(void **state)
{
	struct fx *f = *state;
	struct cmb_cert_cred *c = NULL;

	/* A key that is not the certificate's. */
	EVP_PKEY *other = EVP_RSA_gen(2048);
	assert_non_null(other);
	char *wrong = write_key(f, "other.key", other, NULL, 0600);
	char *want = xasprintf("[tenant] client_key_file: the private key in %s does not belong to the certificate in "
			       "%s (subject O=cmbridge,CN=cmbridge-test, thumbprint " THUMBPRINT ")", wrong, f->cert);
	expect_load_error(f->cert, wrong, NULL, CMB_ECONFIG, want);
	free(want);

	/* An encrypted key: needs its passphrase, never prompts. */
	EVP_PKEY *k = fixed_key();
	char *enc = write_key(f, "enc.key", k, "correct horse", 0600);
	char *pass = path_in(f, "pass");
	fx_write_str(pass, "correct horse\n", 0600);
	char *badpass = path_in(f, "badpass");
	fx_write_str(badpass, "wrong\n", 0600);
	want = xasprintf("[tenant] client_key_file: %s holds an encrypted private key: set client_key_passphrase_file", enc);
	expect_load_error(f->cert, enc, NULL, CMB_ECONFIG, want);
	free(want);
	expect_load_error(f->cert, enc, badpass, CMB_ECONFIG, "cannot decrypt the private key");
	assert_int_equal(cmb_cert_cred_load(&c, f->cert, enc, pass), 0);
	assert_string_equal(cmb_cert_cred_x5t_s256(c), X5T_S256);
	cmb_cert_cred_free(c);

	/* The key is a secret: a group-readable key file is refused. */
	char *loose = write_key(f, "loose.key", k, NULL, 0644);
	expect_load_error(f->cert, loose, NULL, CMB_ECONFIG, "accessible by group or others");

	/* Certificate and key in one file (client_key_file unset): that file must be private. */
	char *both = path_in(f, "both.pem");
	char *text = xasprintf("%s%s", CERT_PEM, KEY_PEM);
	fx_write_str(both, text, 0600);
	c = NULL;
	assert_int_equal(cmb_cert_cred_load(&c, both, NULL, NULL), 0);
	assert_string_equal(cmb_cert_cred_thumbprint(c), THUMBPRINT);
	cmb_cert_cred_free(c);
	chmod(both, 0644);
	expect_load_error(both, NULL, NULL, CMB_ECONFIG, "client_certificate_file (no client_key_file set)");
	/* The certificate alone, no key anywhere. */
	expect_load_error(f->cert, f->cert, NULL, CMB_ECONFIG, "accessible by group or others");
	chmod(f->cert, 0600);
	expect_load_error(f->cert, NULL, NULL, CMB_ECONFIG, "holds no PEM private key");
	chmod(f->cert, 0644);
	/* Not a certificate. */
	expect_load_error(f->key, f->key, NULL, CMB_ECONFIG, "holds no PEM certificate");
	/* An EC key is not usable for PS256/RS256. */
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	char *eck = write_key(f, "ec.key", ec, NULL, 0600);
	expect_load_error(f->cert, eck, NULL, CMB_ECONFIG, "is not an RSA key");

	free(both);
	free(text);
	free(loose);
	free(eck);
	free(enc);
	free(pass);
	free(badpass);
	free(wrong);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

/* A certificate for the fixed key valid from now+from_s to now+to_s, written to dir/name. */
static char *cert_valid(const struct fx *f, const char *name, long from_s, long to_s)
{
	EVP_PKEY *k = fixed_key();
	X509 *x = X509_new();
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, n);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	char *pem = fx_pem_cert(x);
	char *path = path_in(f, name);
	fx_write_str(path, pem, 0644);
	free(pem);
	X509_free(x);
	EVP_PKEY_free(k);
	return path;
}

static enum cmb_cert_validity classify_file(const char *path, int64_t now)
{
	int64_t nb = 0, na = 0;
	char *subject = NULL;
	assert_int_equal(cmb_cert_file_info(path, &nb, &na, &subject), 0);
	assert_non_null(subject);
	free(subject);
	return cmb_cert_classify(nb, na, now, 30 * 86400);
}

static void test_validity(void **state)
{
	struct fx *f = *state;
	const int64_t day = 86400, soon = 30 * day;
	/* Pure boundaries. */
	assert_int_equal(cmb_cert_classify(100, 1000, 99, 10), CMB_CERT_NOT_YET_VALID);
	assert_int_equal(cmb_cert_classify(100, 1000, 100, 10), CMB_CERT_VALID);
	assert_int_equal(cmb_cert_classify(100, 1000, 989, 10), CMB_CERT_VALID);
	assert_int_equal(cmb_cert_classify(100, 1000, 991, 10), CMB_CERT_EXPIRES_SOON);
	assert_int_equal(cmb_cert_classify(100, 1000, 1000, 10), CMB_CERT_EXPIRES_SOON);
	assert_int_equal(cmb_cert_classify(100, 1000, 1001, 10), CMB_CERT_EXPIRED);

	/* Real certificates, dates read back from the files. */
	int64_t now = (int64_t)time(NULL);
	char *expired = cert_valid(f, "expired.pem", -10 * day, -day);
	char *future = cert_valid(f, "future.pem", day, 400 * day);
	char *soon_c = cert_valid(f, "soon.pem", -day, 10 * day);
	char *good = cert_valid(f, "good.pem", -day, 365 * day);
	assert_int_equal(classify_file(expired, now), CMB_CERT_EXPIRED);
	assert_int_equal(classify_file(future, now), CMB_CERT_NOT_YET_VALID);
	assert_int_equal(classify_file(soon_c, now), CMB_CERT_EXPIRES_SOON);
	assert_int_equal(classify_file(good, now), CMB_CERT_VALID);
	int64_t na = 0;
	assert_int_equal(cmb_cert_file_info(soon_c, NULL, &na, NULL), 0);
	assert_true(na > now + 10 * day - 60 && na < now + 10 * day + 60);
	assert_true(na - now < soon);
	(void)soon;
	/* The key loads against each of them: dates are auth.c's judgement, not the loader's. */
	struct cmb_cert_cred *c = NULL;
	assert_int_equal(cmb_cert_cred_load(&c, expired, f->key, NULL), 0);
	cmb_cert_cred_free(c);
	free(expired);
	free(future);
	free(soon_c);
	free(good);
}

static void test_describe_claims(void **state)
{
	(void)state;
	const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	const char *claims = "{\"aud\":\"https://graph.microsoft.com\",\"iss\":\"https://sts.windows.net/t/\","
			     "\"tid\":\"t\",\"appid\":\"a\",\"roles\":[\"R1\",\"R2\"],\"iat\":1767225600,"
			     "\"nbf\":1767225600,\"exp\":1767229199,\"secretish\":\"not shown\"}";
	char *h = cmb_base64url_encode(hdr, strlen(hdr)), *c = cmb_base64url_encode(claims, strlen(claims));
	char *jwt = xasprintf("%s.%s.SIGNATUREPART", h, c);
	char *d = cmb_jwt_describe_claims(jwt);
	assert_non_null(d);
	assert_string_equal(d, "  aud    https://graph.microsoft.com\n"
			       "  iss    https://sts.windows.net/t/\n"
			       "  tid    t\n"
			       "  appid  a\n"
			       "  roles  R1, R2\n"
			       "  iat    1767225600 (2026-01-01T00:00:00Z)\n"
			       "  nbf    1767225600 (2026-01-01T00:00:00Z)\n"
			       "  exp    1767229199 (2026-01-01T00:59:59Z)\n");
	assert_null(strstr(d, "SIGNATURE"));
	free(d);
	assert_null(cmb_jwt_describe_claims("opaque-token"));
	assert_null(cmb_jwt_describe_claims("a.b@d.c"));
	free(jwt);
	free(h);
	free(c);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The roles claim as strings; non-strings skipped; absent: none; an opaque token: 1. */
static void test_claim_strings(void **state)
{
	(void)state;
	const char *claims = "{\"roles\":[\"DeviceManagementManagedDevices.ReadWrite.All\",7,\"R2\"],\"scp\":\"x\"}";
	char *c = cmb_base64url_encode(claims, strlen(claims));
	char *jwt = xasprintf("eyJhbGciOiJSUzI1NiJ9.%s.sig", c);
	char **v = NULL;
	size_t n = 9;
	assert_int_equal(cmb_jwt_claim_strings(jwt, "roles", &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "DeviceManagementManagedDevices.ReadWrite.All");
	assert_string_equal(v[1], "R2");
	assert_null(v[2]);
	free_strv(v, n);
	assert_int_equal(cmb_jwt_claim_strings(jwt, "groups", &v, &n), 0);
	assert_int_equal(n, 0);
	free_strv(v, n);
	assert_int_equal(cmb_jwt_claim_strings(jwt, "scp", &v, &n), 0); /* a string, not an array */
	assert_int_equal(n, 0);
	free_strv(v, n);
	assert_int_equal(cmb_jwt_claim_strings("opaque-token", "roles", &v, &n), 1);
	assert_null(v);
	assert_int_equal(n, 0);
	free(jwt);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_thumbprints),
		T(test_assertion_ps256),
		T(test_assertion_rs256),
		T(test_alg_parse),
		T(test_load_errors),
		T(test_validity),
		T(test_describe_claims),
		T(test_claim_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
