/*
 * jwt.h - certificate credentials: the client assertion (a JWS signed with
 * the app registration's certificate key, docs/wire-format.md §6), the
 * certificate's validity, and reading the non-secret claims of
 * a JWT for `cmbridge token`.
 *
 * Must never: log or put in an error message a private key, a passphrase,
 * an assertion or a token (only certificate subjects, dates and thumbprints,
 * which are public).
 */
#ifndef CMB_JWT_H
#define CMB_JWT_H

#include <stddef.h>
#include <stdint.h>

enum cmb_jwt_alg {
	CMB_JWT_PS256 = 0,  /* RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32; header x5t#S256 */
	CMB_JWT_RS256 = 1,  /* RSASSA-PKCS1-v1_5, SHA-256; header x5t */
};

/* "PS256" / "RS256" to the enum; -1 when neither. */
int cmb_jwt_alg_parse(const char *name);

/* A certificate and its RSA private key, loaded and checked to belong together. */
struct cmb_cert_cred;

/*
 * Loads cert_file (PEM; the first certificate is the credential) and its key
 * from key_file, or from cert_file when key_file is NULL. The file holding
 * the key must be private to its owner (mode 600). passphrase_file (may be
 * NULL) holds the passphrase of an encrypted key; OpenSSL never prompts.
 * CMB_ECONFIG when a file cannot be read or parsed, the key is not RSA of at
 * least 2048 bits, or the key does not belong to the certificate (the
 * message names both files and the certificate's subject). *out is the
 * caller's (cmb_cert_cred_free, which wipes the key).
 */
int cmb_cert_cred_load(struct cmb_cert_cred **out, const char *cert_file, const char *key_file,
		       const char *passphrase_file);
void cmb_cert_cred_free(struct cmb_cert_cred *c);

/* The certificate's subject (RFC 2253), validity and thumbprints; owned by c. */
const char *cmb_cert_cred_subject(const struct cmb_cert_cred *c);
const char *cmb_cert_cred_file(const struct cmb_cert_cred *c);
int64_t cmb_cert_cred_not_before(const struct cmb_cert_cred *c);
int64_t cmb_cert_cred_not_after(const struct cmb_cert_cred *c);
/* SHA-1 thumbprint as the Entra portal shows it: upper-case hex, 40 chars. */
const char *cmb_cert_cred_thumbprint(const struct cmb_cert_cred *c);
/* base64url (no padding) of SHA-256 (x5t#S256) or SHA-1 (x5t) of the DER certificate. */
const char *cmb_cert_cred_x5t_s256(const struct cmb_cert_cred *c);
const char *cmb_cert_cred_x5t(const struct cmb_cert_cred *c);

/*
 * Reads only the certificate of cert_file (no key, no permission check):
 * *not_after (epoch seconds) and *subject (caller frees). For `status`.
 */
int cmb_cert_file_info(const char *cert_file, int64_t *not_before, int64_t *not_after, char **subject);

enum cmb_cert_validity {
	CMB_CERT_VALID = 0,
	CMB_CERT_EXPIRES_SOON = 1, /* valid, but not_after is within soon_s of now */
	CMB_CERT_EXPIRED = 2,
	CMB_CERT_NOT_YET_VALID = 3,
};

/* Pure: where now lies against [not_before, not_after]. */
enum cmb_cert_validity cmb_cert_classify(int64_t not_before, int64_t not_after, int64_t now, int64_t soon_s);

/*
 * Builds a client assertion (compact JWS) for client_id towards aud (the
 * token endpoint URL exactly as requested): iat = nbf = now, exp = now +
 * 300, jti a fresh random UUID unless jti is given (tests). *out is the
 * caller's and is a credential: wipe it (cmb_secret_free) after use.
 */
int cmb_jwt_assertion(char **out, const struct cmb_cert_cred *c, enum cmb_jwt_alg alg, const char *client_id,
		      const char *aud, int64_t now, const char *jti);

/*
 * Describes the non-secret claims of a JWT (aud, iss, tid, appid, azp,
 * roles, scp, iat, nbf, exp), one "  name: value" line each, times also in
 * ISO 8601. Only the payload is decoded: the signature is never looked at
 * or shown. NULL when token is not a JWT. Caller frees.
 */
char *cmb_jwt_describe_claims(const char *token);

/*
 * The strings of the array claim `name` of a JWT's payload (e.g. "roles",
 * the application permissions granted), newly allocated: *out holds *n
 * strings and a NULL after them (free each, then the array). 0 when token
 * is a JWT (an absent claim gives *n = 0), 1 when it is not one (an
 * opaque token: its claims cannot be read; *out NULL). Like
 * cmb_jwt_describe_claims, only the payload is decoded.
 */
int cmb_jwt_claim_strings(const char *token, const char *name, char ***out, size_t *n);

#endif
