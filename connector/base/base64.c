/*
 * base64.c - base64url over EVP_EncodeBlock/EVP_DecodeBlock (base64.h):
 * OpenSSL does the coding, this file only swaps the two characters that
 * differ from standard base64 and handles the padding JWS leaves out.
 */
#include "connector/base/base64.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <openssl/evp.h>
#include <string.h>

/* The block coder takes an int length: inputs are coded in chunks of whole groups. */
#define CHUNK_GROUPS ((size_t)1 << 20)

char *cmb_base64url_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3 * CHUNK_GROUPS) {
		size_t n = len - i < 3 * CHUNK_GROUPS ? len - i : 3 * CHUNK_GROUPS;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, p + i, (int)n);
	}
	while (o > 0 && out[o - 1] == '=')
		o--;
	out[o] = '\0';
	for (size_t i = 0; i < o; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

int cmb_base64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return cmb_error_set(CMB_EINVAL, "base64url: bad length %zu", len);
	size_t pad = (4 - len % 4) % 4, padded = len + pad;
	unsigned char *std = xmalloc(padded + 1);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
			   c == '/')) {
			free(std);
			return cmb_error_set(CMB_EINVAL, "base64url: invalid character at offset %zu", i);
		}
		std[i] = (unsigned char)c;
	}
	memset(std + len, '=', pad);
	unsigned char *buf = xmalloc(padded / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < padded; i += 4 * CHUNK_GROUPS) {
		size_t n = padded - i < 4 * CHUNK_GROUPS ? padded - i : 4 * CHUNK_GROUPS;
		int got = EVP_DecodeBlock(buf + o, std + i, (int)n);
		if (got < 0) {
			free(std);
			free(buf);
			return cmb_error_set(CMB_EINVAL, "base64url: not decodable");
		}
		o += (size_t)got;
	}
	free(std);
	o -= pad; /* EVP_DecodeBlock counts the bytes padding stands for */
	buf[o] = '\0';
	*out = buf;
	if (out_len)
		*out_len = o;
	return 0;
}
