/*
 * test_util.c - bounded buffers, JSON generation (base/json.h), time parsing, URL
 * resolution and error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/transport/http.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"

static void buf_respects_max(void **s)
{
	(void)s;
	struct cmb_buf b = CMB_BUF_INIT(8);
	assert_int_equal(cmb_buf_add(&b, "12345", 5), 0);
	assert_int_equal(cmb_buf_add(&b, "678", 3), 0);
	assert_int_equal(cmb_buf_add(&b, "9", 1), CMB_ETOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	cmb_buf_free(&b);
}

/* The --json outputs and request bodies: strings escaped by yajl, raw records inserted whole, null for NULL. */
static void json_generated(void **s)
{
	(void)s;
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "s", "a\"b\\c\n\t\x01 B\xc3\xbcr\xc3\xb6 /x");
	cmb_json_kv_str(g, "none", NULL);
	cmb_json_kv_int(g, "n", -42);
	cmb_json_kv_bool(g, "b", 1);
	cmb_json_key(g, "record");
	cmb_json_raw(g, "{\"k\":[1,2]}", 11);
	yajl_gen_map_close(g);
	size_t len;
	char *out = cmb_json_take(g, &len);
	assert_string_equal(out, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001 B\xc3\xbcr\xc3\xb6 /x\",\"none\":null,\"n\":-42,"
				 "\"b\":true,\"record\":{\"k\":[1,2]}}");
	assert_int_equal(len, strlen(out));
	free(out);
}

/* cmb_time_iso8601 writes what gmtime_r and strftime write, across its range and past it. */
static void time_iso8601_matches_gmtime(void **s)
{
	(void)s;
	const int64_t at[] = { CMB_TIME_MIN, CMB_TIME_MIN + 86399, -62104060801LL /* 0001-12-31T23:59:59 */,
			       -30610224000LL /* 1000-01-01 */, -1, 0, 951782400 /* 2000-02-29 */,
			       1764321302 /* 2025-11-28T09:15:02 */, 4107542399LL /* 2100-02-28T23:59:59 */,
			       CMB_TIME_MAX };
	char out[32], want[64];
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		time_t t = (time_t)at[i];
		struct tm tm;
		assert_non_null(gmtime_r(&t, &tm));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		/* strftime writes years below 1000 without leading zeros; ISO 8601 has four digits */
		if (tm.tm_year + 1900 < 1000)
			snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
				 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		cmb_time_iso8601(at[i], out);
		assert_string_equal(out, want);
	}
	/* Outside four-digit years: the year as it is. */
	cmb_time_iso8601(CMB_TIME_MAX + 1, out);
	assert_string_equal(out, "10000-01-01T00:00:00Z");
	cmb_time_iso8601(CMB_TIME_MIN - 1, out);
	assert_string_equal(out, "0000-12-31T23:59:59Z");
}

static void time_parse_forms(void **s)
{
	(void)s;
	int64_t t;
	char out[32];
	assert_int_equal(cmb_time_parse("2026-11-28T09:15:02Z", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("2026-11-28T10:15:02.1234567+01:00", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("2026-11-28T09:15:02", &t), 0);
	assert_int_equal(cmb_time_parse("2026-13-28T09:15:02Z", &t), -1);
	/* a space for the T, and offsets without a colon or minutes, as some sites write them */
	assert_int_equal(cmb_time_parse("2026-11-28 09:15:02Z", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("2026-11-28T10:15:02+0100", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("2026-11-28T07:15:02-02", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("2026-11-28T09:15:02+1", &t), -1);
	assert_int_equal(cmb_time_parse("2026-11-28T09:15:02+01:0", &t), -1);
	/* WMI DMTF: local time, then minutes east of UTC; '*' for what WMI does not know */
	assert_int_equal(cmb_time_parse("20261128091502.000000+000", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("20261128101502.123456+060", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("20261128011502.000000-480", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("20261128091502.******+***", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2026-11-28T09:15:02Z");
	assert_int_equal(cmb_time_parse("20261328091502.000000+000", &t), -1);   /* month 13 */
	assert_int_equal(cmb_time_parse("20250229000000.000000+000", &t), -1);   /* not a leap year */
	assert_int_equal(cmb_time_parse("20261128091502.000000+00", &t), -1);    /* short */
	assert_int_equal(cmb_time_parse("20261128091502.000000*000", &t), -1);   /* no sign */
	assert_int_equal(cmb_time_parse("2026112809150*.000000+000", &t), -1);   /* the time must be known */
	assert_int_equal(cmb_time_parse("20261128091502.000000+999", &t), -1);   /* offset beyond 14 h */
	assert_int_equal(cmb_time_parse("", &t), -1);
	assert_int_equal(cmb_time_parse(NULL, &t), -1);
	assert_int_equal(cmb_time_parse("2026-11-28T09:15:02Zjunk", &t), -1);
	assert_int_equal(cmb_time_parse("2025-02-29T00:00:00Z", &t), -1);
	assert_int_equal(cmb_time_parse("2024-02-29t23:59:59z", &t), 0);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "2024-02-29T23:59:59Z");
	assert_int_equal(cmb_time_parse("0001-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, CMB_TIME_MIN);
	cmb_time_iso8601(t, out);
	assert_string_equal(out, "0001-01-01T00:00:00Z");
	cmb_time_iso8601(CMB_TIME_MAX, out);
	assert_string_equal(out, "9999-12-31T23:59:59Z");
}

static void resolve_relative_links(void **s)
{
	(void)s;
	char *u = cmb_http_resolve("https://h:1/AdminService/wmi/SMS_R_System?$top=5",
				   "SMS_R_System?$top=5&$skiptoken=abc");
	assert_string_equal(u, "https://h:1/AdminService/wmi/SMS_R_System?$top=5&$skiptoken=abc");
	free(u);
	u = cmb_http_resolve("https://h:1/a/b", "/x/y?z=1");
	assert_string_equal(u, "https://h:1/x/y?z=1");
	free(u);
	u = cmb_http_resolve("https://h:1/a/b", "https://other:2/q");
	assert_string_equal(u, "https://other:2/q");
	free(u);
	char *e = cmb_http_escape("a b&c=d/é");
	assert_string_equal(e, "a%20b%26c%3Dd%2F%C3%A9");
	free(e);
}

static void error_wrap_prefixes(void **s)
{
	(void)s;
	assert_int_equal(cmb_error_set(CMB_EPROTO, "bad %s", "page"), CMB_EPROTO);
	assert_int_equal(cmb_error_wrap(CMB_EPROTO, "reading %s", "SMS_R_System"), CMB_EPROTO);
	assert_string_equal(cmb_error_last(), "reading SMS_R_System: bad page");
	assert_int_equal(cmb_error_retry_class(CMB_ENETWORK), CMB_RETRY_SOON);
	assert_int_equal(cmb_error_retry_class(CMB_ETHROTTLED), CMB_RETRY_LATER);
	assert_int_equal(cmb_error_retry_class(CMB_EAUTH), CMB_RETRY_NEVER);
}

static void secret_file_permissions(void **s)
{
	(void)s;
	char path[] = "/tmp/cmb-secret-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\n", 7), 7);
	close(fd);
	char *sec = NULL;
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(cmb_secret_read(path, &sec), 0);
	assert_string_equal(sec, "s3cret");
	cmb_secret_free(sec);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(cmb_secret_read(path, &sec), CMB_ECONFIG);
	assert_non_null(strstr(cmb_error_last(), "accessible by group or others (mode 640)"));
	unlink(path);
}

static void uuid_is_v4(void **s)
{
	(void)s;
	char a[37], b[37];
	cmb_uuid4(a);
	cmb_uuid4(b);
	assert_int_equal(strlen(a), 36);
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_respects_max),     cmocka_unit_test(json_generated),
		cmocka_unit_test(time_iso8601_matches_gmtime), cmocka_unit_test(time_parse_forms),     cmocka_unit_test(resolve_relative_links),
		cmocka_unit_test(error_wrap_prefixes),  cmocka_unit_test(secret_file_permissions),
		cmocka_unit_test(uuid_is_v4),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
