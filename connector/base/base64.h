/*
 * base64.h - base64url (RFC 4648 §5, RFC 7515 §2) on OpenSSL's block
 * coder: the one encoder and decoder the connector uses (JWS client
 * assertions, certificate thumbprints, token claims).
 */
#ifndef CMB_BASE64_H
#define CMB_BASE64_H

#include <stddef.h>

/* base64url of data[0..len) without padding; newly allocated, NUL-terminated, the caller's. */
char *cmb_base64url_encode(const void *data, size_t len);

/*
 * Decodes s[0..len): the base64url alphabet, the standard one ('+', '/')
 * too, trailing '=' padding optional. *out (NUL-terminated after *out_len
 * bytes; out_len may be NULL) is the caller's. 0, or CMB_EINVAL naming the
 * offending offset or length (*out untouched).
 */
int cmb_base64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);

#endif
