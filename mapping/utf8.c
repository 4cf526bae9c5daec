/*
 * utf8.c - strict UTF-8 validation and repair (RFC 3629, Unicode 15 §3.9).
 *
 * The well-formed sequences are exactly those of Unicode Table 3-7: the
 * second byte's range depends on the lead byte, which is what rules out
 * overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code
 * points above U+10FFFF (F4 90.., F5..FF). Repair replaces each "maximal
 * subpart" of an ill-formed sequence with one U+FFFD, the practice Unicode
 * recommends and that browsers and ICU follow, so the number of replacements
 * does not depend on who counts. Never does I/O.
 */
#include "mapping/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/base/util.h"

/*
 * Length of the well-formed sequence at s[0..len), or 0 when it is
 * ill-formed; then *subpart is the length of its maximal subpart (>= 1): the
 * lead byte plus the continuation bytes that were still acceptable.
 */
static size_t seq_len(const unsigned char *s, size_t len, size_t *subpart)
{
	unsigned char b = s[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need;

	*subpart = 1;
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF) {
		need = 2;
	} else if (b >= 0xE0 && b <= 0xEF) {
		need = 3;
		if (b == 0xE0)
			lo = 0xA0;      /* below is overlong */
		else if (b == 0xED)
			hi = 0x9F;      /* above is a surrogate, D800..DFFF */
	} else if (b >= 0xF0 && b <= 0xF4) {
		need = 4;
		if (b == 0xF0)
			lo = 0x90;      /* below is overlong */
		else if (b == 0xF4)
			hi = 0x8F;      /* above is beyond U+10FFFF */
	} else {
		return 0;               /* 80..BF lone continuation, C0, C1, F5..FF */
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= len)
			return 0;       /* truncated: the subpart so far */
		unsigned char c = s[i];
		if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF))
			return 0;
		*subpart = i + 1;
	}
	return need;
}

int cmb_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, sub;

	while (i < len) {
		size_t n = seq_len(p + i, len - i, &sub);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

char *cmb_utf8_repair(const char *s, size_t len, unsigned *repairs)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, sub;
	unsigned count = 0;
	char *out;

	/* Worst case: every byte becomes EF BF BD. */
	if (len > (SIZE_MAX - 1) / 3)
		cmb_fatal("mapping: string too large to repair");
	out = xmalloc(len * 3 + 1);
	while (i < len) {
		size_t n = seq_len(p + i, len - i, &sub);
		if (n > 0 && p[i] != 0) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
			continue;
		}
		/* NUL would end the string early for every C consumer downstream. */
		out[o++] = (char)0xEF;
		out[o++] = (char)0xBF;
		out[o++] = (char)0xBD;
		i += n > 0 ? n : sub;
		count++;
	}
	out[o] = '\0';
	if (repairs)
		*repairs += count;
	return out;
}
