/*
 * test_base64.c - base64url on OpenSSL's block coder: RFC 4648 test
 * vectors, the two characters that differ from base64, padding left out
 * and tolerated, both alphabets decoded, bad input refused with the
 * offset, and inputs of every length round-tripping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "connector/base/base64.h"
#include "connector/base/error.h"

static void test_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10, without the padding base64url leaves out; then the two url-safe characters. */
	static const struct { const char *in; const char *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" }, { "\xff\xfe\xfd", "__79" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *e = cmb_base64url_encode(v[i].in, strlen(v[i].in));
		assert_string_equal(e, v[i].out);
		unsigned char *d;
		size_t n;
		assert_int_equal(cmb_base64url_decode(e, strlen(e), &d, &n), 0);
		assert_int_equal(n, strlen(v[i].in));
		assert_memory_equal(d, v[i].in, n);
		assert_int_equal(d[n], '\0');
		free(d);
		free(e);
	}
}

static void test_decode_forms(void **state)
{
	(void)state;
	unsigned char *d;
	size_t n;
	assert_int_equal(cmb_base64url_decode("Zm9vYg==", 8, &d, NULL), 0); /* padding tolerated */
	assert_string_equal((char *)d, "foob");
	free(d);
	assert_int_equal(cmb_base64url_decode("Zm9vYg=", 7, &d, &n), 0);
	assert_int_equal(n, 4);
	free(d);
	/* The standard alphabet decodes too (a token endpoint may use either). */
	assert_int_equal(cmb_base64url_decode("+/8", 3, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(d, "\xfb\xff", 2);
	free(d);
	/* Only s[0..len) is read. */
	assert_int_equal(cmb_base64url_decode("Zm9vYmFy", 4, &d, &n), 0);
	assert_string_equal((char *)d, "foo");
	free(d);
}

static void test_decode_errors(void **state)
{
	(void)state;
	unsigned char *d = (unsigned char *)"untouched";
	assert_int_equal(cmb_base64url_decode("Zm9*", 4, &d, NULL), CMB_EINVAL);
	assert_string_equal(cmb_error_last(), "base64url: invalid character at offset 3");
	assert_int_equal(cmb_base64url_decode("Z", 1, &d, NULL), CMB_EINVAL);
	assert_string_equal(cmb_error_last(), "base64url: bad length 1");
	assert_int_equal(cmb_base64url_decode("Zm=v", 4, &d, NULL), CMB_EINVAL); /* padding inside */
	assert_int_equal(cmb_base64url_decode("Zm 9v", 5, &d, NULL), CMB_EINVAL);
	assert_int_equal(cmb_base64url_decode("Zm9vY\n", 6, &d, NULL), CMB_EINVAL);
	assert_string_equal((char *)d, "untouched");
}

static void test_round_trip(void **state)
{
	(void)state;
	unsigned char in[300];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 151 + 7);
	for (size_t len = 0; len <= sizeof(in); len++) {
		char *e = cmb_base64url_encode(in, len);
		assert_int_equal(strlen(e), (len * 4 + 2) / 3);
		assert_null(strpbrk(e, "+/="));
		unsigned char *d;
		size_t n;
		assert_int_equal(cmb_base64url_decode(e, strlen(e), &d, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(d, in, len);
		free(d);
		free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_decode_forms),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
