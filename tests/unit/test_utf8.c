/*
 * test_utf8.c - cmb_utf8_valid and cmb_utf8_repair against exact outputs.
 *
 * Expected repairs follow Unicode 15 §3.9 "U+FFFD Substitution of Maximal
 * Subparts" (Table 3-8 and the examples after it), one U+FFFD per maximal
 * subpart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mapping/utf8.h"

#define R "\xef\xbf\xbd" /* U+FFFD */
#define S(x) x, sizeof(x) - 1

struct utf8_case {
	const char *what;
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
	unsigned repairs;
	int valid;
};

static const struct utf8_case cases[] = {
	{ "empty", S(""), S(""), 0, 1 },
	{ "ascii", S("PC-0001"), S("PC-0001"), 0, 1 },
	{ "latin-1 range, 2 bytes", S("B\xc3\xbcr\xc3\xb6-\xc3\x9c" "7"), S("B\xc3\xbcr\xc3\xb6-\xc3\x9c" "7"), 0, 1 },
	{ "CJK, 3 bytes", S("\xe5\x96\xb6\xe6\xa5\xad-PC12"), S("\xe5\x96\xb6\xe6\xa5\xad-PC12"), 0, 1 },
	{ "emoji, 4 bytes", S("\xf0\x9f\x98\x80"), S("\xf0\x9f\x98\x80"), 0, 1 },
	{ "U+0080 smallest 2-byte", S("\xc2\x80"), S("\xc2\x80"), 0, 1 },
	{ "U+0800 smallest 3-byte", S("\xe0\xa0\x80"), S("\xe0\xa0\x80"), 0, 1 },
	{ "U+D7FF below surrogates", S("\xed\x9f\xbf"), S("\xed\x9f\xbf"), 0, 1 },
	{ "U+E000 above surrogates", S("\xee\x80\x80"), S("\xee\x80\x80"), 0, 1 },
	{ "U+FFFD itself", S(R), S(R), 0, 1 },
	{ "U+10000 smallest 4-byte", S("\xf0\x90\x80\x80"), S("\xf0\x90\x80\x80"), 0, 1 },
	{ "U+10FFFF largest", S("\xf4\x8f\xbf\xbf"), S("\xf4\x8f\xbf\xbf"), 0, 1 },

	{ "latin-1 byte", S("B\xfcro"), S("B" R "ro"), 1, 0 },
	{ "lone continuation", S("a\x80z"), S("a" R "z"), 1, 0 },
	{ "three lone continuations", S("\x80\xbf\x80"), S(R R R), 3, 0 },
	{ "overlong 2-byte C0 AF", S("\xc0\xaf"), S(R R), 2, 0 },
	{ "overlong 2-byte C1 BF", S("\xc1\xbf"), S(R R), 2, 0 },
	{ "overlong 3-byte E0 80 AF", S("\xe0\x80\xaf"), S(R R R), 3, 0 },
	{ "overlong 3-byte E0 9F BF", S("\xe0\x9f\xbf"), S(R R R), 3, 0 },
	{ "overlong 4-byte F0 80 80 AF", S("\xf0\x80\x80\xaf"), S(R R R R), 4, 0 },
	{ "overlong 4-byte F0 8F BF BF", S("\xf0\x8f\xbf\xbf"), S(R R R R), 4, 0 },
	{ "surrogate U+D800", S("\xed\xa0\x80"), S(R R R), 3, 0 },
	{ "surrogate U+DFFF", S("\xed\xbf\xbf"), S(R R R), 3, 0 },
	{ "surrogate pair (CESU-8)", S("\xed\xa0\xbd\xed\xb8\x80"), S(R R R R R R), 6, 0 },
	{ "U+110000", S("\xf4\x90\x80\x80"), S(R R R R), 4, 0 },
	{ "F5 lead", S("\xf5\x80\x80\x80"), S(R R R R), 4, 0 },
	{ "FE FF", S("\xfe\xff"), S(R R), 2, 0 },
	{ "truncated 2-byte at end", S("ab\xc3"), S("ab" R), 1, 0 },
	{ "truncated 3-byte at end", S("ab\xe2\x82"), S("ab" R), 1, 0 },
	{ "truncated 4-byte at end", S("ab\xf0\x9f\x98"), S("ab" R), 1, 0 },
	{ "truncated 3-byte before ASCII", S("\xe2\x82" "A"), S(R "A"), 1, 0 },
	{ "truncated 4-byte before lead", S("\xf0\x9f\xc3\xbc"), S(R "\xc3\xbc"), 1, 0 },
	{ "NUL byte", S("a\0b"), S("a" R "b"), 1, 1 },
	{ "only NUL", S("\0"), S(R), 1, 1 },
	/* Unicode 15 §3.9, Table 3-8's example sequence. */
	{ "Unicode table 3-8", S("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64"),
	  S("a" R R R "b" R "c" R R "d"), 6, 0 },
	/* Unicode 15 §3.9, the example after Table 3-11 (ill-formed 4-byte forms). */
	{ "Unicode table 3-11", S("\xc0\xaf\xe0\x80\xbf\xf0\x81\x82\x41"),
	  S(R R R R R R R R "A"), 8, 0 },
	{ "Unicode surrogate example", S("\xed\xa0\x80\xed\xbf\xbf\xed\xaf\x41"),
	  S(R R R R R R R R "A"), 8, 0 },
	{ "Unicode truncation example", S("\xf4\x91\x92\x93\xff\x41\x80\xbf\x42"),
	  S(R R R R R "A" R R "B"), 7, 0 },
	{ "Unicode truncated sequences example", S("\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41"),
	  S(R R R R "A"), 4, 0 },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct utf8_case *c = &cases[i];
		unsigned repairs = 0;
		char *out = cmb_utf8_repair(c->in, c->in_len, &repairs);

		if (strlen(out) != c->out_len || memcmp(out, c->out, c->out_len) != 0 ||
		    repairs != c->repairs || cmb_utf8_valid(c->in, c->in_len) != c->valid) {
			print_error("case '%s': repairs %u (want %u), valid %d (want %d), out:",
				    c->what, repairs, c->repairs, cmb_utf8_valid(c->in, c->in_len),
				    c->valid);
			for (size_t j = 0; out[j]; j++)
				print_error(" %02x", (unsigned char)out[j]);
			print_error("\n");
			free(out);
			fail();
		}
		/* What repair returns is always valid and has no NUL inside. */
		assert_true(cmb_utf8_valid(out, strlen(out)));
		/* Repair is idempotent. */
		unsigned again = 0;
		char *out2 = cmb_utf8_repair(out, strlen(out), &again);
		assert_int_equal(again, 0);
		assert_string_equal(out2, out);
		free(out2);
		free(out);
	}
}

static void test_repairs_accumulate(void **state)
{
	(void)state;
	unsigned repairs = 5;
	char *a = cmb_utf8_repair(S("\x80\x80"), &repairs);
	char *b = cmb_utf8_repair(S("ok"), NULL);
	char *c = cmb_utf8_repair(NULL, 0, &repairs);
	assert_int_equal(repairs, 7);
	assert_string_equal(a, R R);
	assert_string_equal(b, "ok");
	assert_string_equal(c, "");
	free(a);
	free(b);
	free(c);
}

/* Every 1- and 2-byte input: valid() and repair() agree, output is valid. */
static void test_exhaustive_short(void **state)
{
	(void)state;
	for (unsigned x = 0; x < 256; x++) {
		for (unsigned y = 0; y < 257; y++) {
			unsigned char in[2] = { (unsigned char)x, (unsigned char)y };
			size_t n = y == 256 ? 1 : 2;
			unsigned repairs = 0;
			char *out = cmb_utf8_repair((const char *)in, n, &repairs);
			int has_nul = x == 0 || (n == 2 && y == 0);
			assert_int_equal(repairs == 0, cmb_utf8_valid((const char *)in, n) && !has_nul);
			assert_true(cmb_utf8_valid(out, strlen(out)));
			if (repairs == 0) {
				assert_int_equal(strlen(out), n);
				assert_memory_equal(out, in, n);
			}
			free(out);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_repairs_accumulate),
		cmocka_unit_test(test_exhaustive_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
