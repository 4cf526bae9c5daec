/*
 * auth_ntlm.c - the server side of NTLM over HTTP for the site ([site]
 * auth = ntlm): NEGOTIATE (type 1) -> CHALLENGE (type 2, random server
 * challenge and target info) -> AUTHENTICATE (type 3), whose NTLMv2
 * response is verified against the site password (MS-NLMP §3.3.2):
 *   NTOWFv2    = HMAC_MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) + domain))
 *   NTProofStr = HMAC_MD5(NTOWFv2, ServerChallenge + blob)
 * NTLMv1 and LM-only responses are refused. MD4 is the lab's own (RFC 1320):
 * OpenSSL 3 keeps it in the legacy provider, which the lab does not load.
 * Never logs a password, a hash or a message.
 */
#include "auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ---- MD4 (RFC 1320) ------------------------------------------------------ */

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void md4_block(uint32_t st[4], const unsigned char *p)
{
	uint32_t x[16], a = st[0], b = st[1], c = st[2], d = st[3];
	for (int i = 0; i < 16; i++)
		x[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
		       (uint32_t)p[4 * i + 3] << 24;
#define F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define G(x, y, z) (((x) & (y)) | ((x) & (z)) | ((y) & (z)))
#define H(x, y, z) ((x) ^ (y) ^ (z))
	static const int s1[4] = {3, 7, 11, 19}, s2[4] = {3, 5, 9, 13}, s3[4] = {3, 9, 11, 15};
	static const int o3[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
	for (int i = 0; i < 16; i++) {
		uint32_t t = a + F(b, c, d) + x[i];
		a = d; d = c; c = b; b = ROTL(t, s1[i % 4]);
	}
	for (int i = 0; i < 16; i++) {
		uint32_t t = a + G(b, c, d) + x[(i % 4) * 4 + i / 4] + 0x5a827999u;
		a = d; d = c; c = b; b = ROTL(t, s2[i % 4]);
	}
	for (int i = 0; i < 16; i++) {
		uint32_t t = a + H(b, c, d) + x[o3[i]] + 0x6ed9eba1u;
		a = d; d = c; c = b; b = ROTL(t, s3[i % 4]);
	}
#undef F
#undef G
#undef H
	st[0] += a; st[1] += b; st[2] += c; st[3] += d;
}

static void md4(const unsigned char *msg, size_t n, unsigned char out[16])
{
	uint32_t st[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
	unsigned char blk[128];
	size_t i = 0;
	for (; i + 64 <= n; i += 64)
		md4_block(st, msg + i);
	size_t rest = n - i;
	memset(blk, 0, sizeof blk);
	memcpy(blk, msg + i, rest);
	blk[rest] = 0x80;
	size_t tot = rest + 1 + 8 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)n * 8;
	for (int k = 0; k < 8; k++)
		blk[tot - 8 + k] = (unsigned char)(bits >> (8 * k));
	md4_block(st, blk);
	if (tot == 128)
		md4_block(st, blk + 64);
	for (int k = 0; k < 4; k++)
		for (int j = 0; j < 4; j++)
			out[4 * k + j] = (unsigned char)(st[k] >> (8 * j));
}

/* ---- messages ----------------------------------------------------------- */

#define NTLM_UNICODE 0x00000001u
#define NTLM_OEM 0x00000002u
#define NTLM_REQUEST_TARGET 0x00000004u
#define NTLM_NTLM 0x00000200u
#define NTLM_ALWAYS_SIGN 0x00008000u
#define NTLM_TARGET_DOMAIN 0x00010000u
#define NTLM_ESS 0x00080000u
#define NTLM_TARGET_INFO 0x00800000u
#define NTLM_128 0x20000000u
#define NTLM_56 0x80000000u

static const char SIG[8] = "NTLMSSP";   /* with its NUL */

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(struct lab_buf *b, unsigned v)
{
	unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
	lab_buf_add(b, x, 2);
}

static void put32(struct lab_buf *b, uint32_t v)
{
	unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
	lab_buf_add(b, x, 4);
}

/* ASCII -> UTF-16LE (the lab's names are ASCII). */
static void utf16(struct lab_buf *b, const char *s, bool upper)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (upper && c < 0x80)
			c = (unsigned char)toupper(c);
		unsigned char x[2] = {c, 0};
		lab_buf_add(b, x, 2);
	}
}

static void av(struct lab_buf *b, unsigned id, const char *s)
{
	struct lab_buf u = {0};
	utf16(&u, s, false);
	put16(b, id);
	put16(b, (unsigned)u.len);
	lab_buf_add(b, u.p, u.len);
	lab_buf_free(&u);
}

/* The configured "DOMAIN\user" split in two. */
static void split_user(const struct lab *lab, char *dom, size_t dn, char *user, size_t un)
{
	const char *u = lab->conf.username, *bs = strchr(u, '\\');
	if (bs) {
		snprintf(dom, dn, "%.*s", (int)(bs - u), u);
		snprintf(user, un, "%s", bs + 1);
	} else {
		snprintf(dom, dn, "%s", "");
		snprintf(user, un, "%s", u);
	}
}

static char *challenge(const struct lab *lab, struct lab_auth_conn *st)
{
	char dom[128], user[128];
	split_user(lab, dom, sizeof dom, user, sizeof user);
	if (!dom[0])
		snprintf(dom, sizeof dom, "CONTOSO");
	struct lab_buf tn = {0}, ti = {0}, m = {0};
	utf16(&tn, dom, false);
	char dns[160], host[200];
	snprintf(dns, sizeof dns, "%s.local", dom);
	for (char *p = dns; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(host, sizeof host, "cm01.%s", dns);
	av(&ti, 2, dom);                  /* MsvAvNbDomainName */
	av(&ti, 1, "CM01");               /* MsvAvNbComputerName */
	av(&ti, 4, dns);                  /* MsvAvDnsDomainName */
	av(&ti, 3, host);                 /* MsvAvDnsComputerName */
	uint64_t ft = ((uint64_t)time(NULL) + 11644473600ull) * 10000000ull;   /* FILETIME */
	put16(&ti, 7);                    /* MsvAvTimestamp */
	put16(&ti, 8);
	put32(&ti, (uint32_t)ft);
	put32(&ti, (uint32_t)(ft >> 32));
	put16(&ti, 0);                    /* MsvAvEOL */
	put16(&ti, 0);
	lab_random(st->challenge, 8);
	uint32_t flags = NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN | NTLM_TARGET_DOMAIN |
			 NTLM_ESS | NTLM_TARGET_INFO | NTLM_128 | NTLM_56;
	lab_buf_add(&m, SIG, 8);
	put32(&m, 2);
	put16(&m, (unsigned)tn.len);      /* TargetNameFields */
	put16(&m, (unsigned)tn.len);
	put32(&m, 48);
	put32(&m, flags);
	lab_buf_add(&m, st->challenge, 8);
	lab_buf_add(&m, "\0\0\0\0\0\0\0\0", 8);
	put16(&m, (unsigned)ti.len);      /* TargetInfoFields */
	put16(&m, (unsigned)ti.len);
	put32(&m, (uint32_t)(48 + tn.len));
	lab_buf_add(&m, tn.p, tn.len);
	lab_buf_add(&m, ti.p, ti.len);
	char *b64 = lab_b64url((const unsigned char *)m.p, m.len);
	/* base64url -> base64 with padding (HTTP uses the standard alphabet) */
	size_t n = strlen(b64);
	char *out = lab_xmalloc(n + 8 + 4);
	memcpy(out, "NTLM ", 5);
	for (size_t i = 0; i < n; i++)
		out[5 + i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
	size_t o = 5 + n;
	while ((o - 5) % 4)
		out[o++] = '=';
	out[o] = 0;
	free(b64);
	lab_buf_free(&tn);
	lab_buf_free(&ti);
	lab_buf_free(&m);
	return out;
}

/* A security buffer of a type 3 message: bounds-checked view. */
static bool field(const unsigned char *m, size_t n, size_t at, const unsigned char **p, size_t *len)
{
	if (at + 8 > n)
		return false;
	size_t l = (size_t)m[at] | (size_t)m[at + 1] << 8;
	size_t off = le32(m + at + 4);
	if (off > n || l > n - off)
		return false;
	*p = m + off;
	*len = l;
	return true;
}

/* Name from a type 3 field to ASCII (UTF-16LE when unicode); false if not ASCII. */
static bool name_of(const unsigned char *p, size_t n, bool unicode, char *out, size_t on)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i += unicode ? 2 : 1) {
		unsigned c = p[i] | (unicode && i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
		if (c == 0 || c >= 0x80 || k + 1 >= on)
			return false;
		out[k++] = (char)c;
	}
	out[k] = 0;
	return true;
}

static int verify(struct lab *lab, struct lab_auth_conn *st, const unsigned char *m, size_t n)
{
	const unsigned char *nt, *dp, *up;
	size_t ntl, dl, ul;
	if (n < 64 || !field(m, n, 20, &nt, &ntl) || !field(m, n, 28, &dp, &dl) || !field(m, n, 36, &up, &ul))
		return -1;
	bool unicode = le32(m + 60) & NTLM_UNICODE;
	char dom[128], user[128], cdom[128], cuser[128];
	if (!name_of(dp, dl, unicode, dom, sizeof dom) || !name_of(up, ul, unicode, user, sizeof user))
		return -1;
	split_user(lab, cdom, sizeof cdom, cuser, sizeof cuser);
	if (strcasecmp(user, cuser) || (dom[0] && strcasecmp(dom, cdom)))
		return -1;
	if (ntl <= 24)            /* NTLMv1 (24 bytes) or none: refused */
		return -1;
	/* NTOWFv2 from the password, the user (upper case) and the domain as sent */
	struct lab_buf pw = {0}, ud = {0};
	utf16(&pw, lab->site_password, false);
	unsigned char nth[16], owf[16], proof[16];
	unsigned int l = 0;
	md4((const unsigned char *)pw.p, pw.len, nth);
	utf16(&ud, user, true);
	utf16(&ud, dom, false);
	HMAC(EVP_md5(), nth, 16, (const unsigned char *)ud.p, ud.len, owf, &l);
	struct lab_buf cb = {0};
	lab_buf_add(&cb, st->challenge, 8);
	lab_buf_add(&cb, nt + 16, ntl - 16);
	HMAC(EVP_md5(), owf, 16, (const unsigned char *)cb.p, cb.len, proof, &l);
	int ok = CRYPTO_memcmp(proof, nt, 16) == 0;
	OPENSSL_cleanse(pw.p, pw.len);
	OPENSSL_cleanse(nth, sizeof nth);
	OPENSSL_cleanse(owf, sizeof owf);
	lab_buf_free(&pw);
	lab_buf_free(&ud);
	lab_buf_free(&cb);
	return ok ? 1 : -1;
}

int lab_ntlm_step(struct lab *lab, struct lab_auth_conn *st, const char *b64, char **out)
{
	size_t n = 0;
	while (*b64 == ' ')
		b64++;
	unsigned char *m = lab_b64_decode(b64, strlen(b64), &n);
	int rc = -1;
	*out = NULL;
	if (!m || n < 12 || memcmp(m, SIG, 8))
		goto done;
	uint32_t type = le32(m + 8);
	if (type == 1) {
		*out = challenge(lab, st);
		st->ntlm_pending = true;
		rc = 0;
	} else if (type == 3 && st->ntlm_pending) {
		st->ntlm_pending = false;
		rc = verify(lab, st, m, n);
	}
done:
	free(m);
	return rc;
}
