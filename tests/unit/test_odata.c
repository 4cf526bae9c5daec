/*
 * test_odata.c - the streaming OData page parser: exact records from canned
 * pages, identical results for every way the bytes can be split, and each
 * error with its code and the place it names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adminservice/odata.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#define MAX_RECS 64

struct collect {
	struct cmb_odata_record *recs[MAX_RECS];
	size_t n;
	int fail_at;            /* return CMB_ECANCELED on this record (1-based); 0 never */
};

static int on_record(void *ctx, struct cmb_odata_record *rec)
{
	struct collect *c = ctx;
	if (c->fail_at && (int)c->n + 1 == c->fail_at) {
		cmb_odata_record_free(rec);
		return cmb_error_set(CMB_ECANCELED, "stopped by the test");
	}
	assert_true(c->n < MAX_RECS);
	c->recs[c->n++] = rec;
	return 0;
}

static void collect_clear(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		cmb_odata_record_free(c->recs[i]);
	memset(c, 0, sizeof(*c));
}

/* A byte-exact text form of everything the parser produced, for comparisons. */
static void serialize(struct cmb_buf *b, const struct collect *c, const char *next, const char *context)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct cmb_odata_record *r = c->recs[i];
		cmb_buf_printf(b, "record %zu\n", i);
		for (size_t j = 0; j < r->n; j++) {
			const struct cmb_odata_field *f = &r->fields[j];
			cmb_buf_printf(b, "%s %d %d %zu:", f->name, (int)f->type, f->boolean, f->len);
			if (f->text)
				cmb_buf_add(b, f->text, f->len);
			cmb_buf_add(b, "\n", 1);
		}
	}
	cmb_buf_printf(b, "next=%s\ncontext=%s\n", next ? next : "(none)", context ? context : "(none)");
}

/*
 * Parses page in pieces: first `split` bytes then the rest (split 0 = all at
 * once), or in `chunk`-byte pieces when chunk > 0. Returns the first error,
 * appends the serialized result to out (when not NULL).
 */
static int parse(const char *page, size_t len, size_t split, size_t chunk, size_t max_record,
		 struct collect *c, struct cmb_buf *out)
{
	struct cmb_odata_parser *p = NULL;
	int rc = cmb_odata_new(&p, "SMS_R_System page 1", max_record, on_record, c);
	assert_int_equal(rc, 0);
	if (chunk) {
		for (size_t off = 0; off < len && rc == 0; off += chunk)
			rc = cmb_odata_feed(p, page + off, len - off < chunk ? len - off : chunk);
	} else if (split) {
		rc = cmb_odata_feed(p, page, split);
		if (rc == 0)
			rc = cmb_odata_feed(p, page + split, len - split);
	} else {
		rc = cmb_odata_feed(p, page, len);
	}
	if (rc == 0)
		rc = cmb_odata_finish(p);
	if (out)
		serialize(out, c, cmb_odata_next_link(p), cmb_odata_context(p));
	cmb_odata_free(p);
	return rc;
}

/* nextLink after value, absolute; escapes, unicode escapes, raw bytes, big numbers, nested skips. */
static const char page_after[] =
	"{\"@odata.context\":\"https://cm.example/AdminService/wmi/$metadata#SMS_R_System\","
	"\"value\":[{\"ResourceID\":16777220,\"Name\":\"PC-0001\",\"Client\":1,\"Obsolete\":null,"
	"\"AADDeviceID\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\","
	"\"Bad\":\"X\xff\xfe\xc3(Y\",\"Big\":4294967295,\"Flag\":true,\"Off\":false,\"Neg\":-12.5e3,"
	"\"Arr\":[1,{\"x\":2},[]],\"Obj\":{\"y\":[3,{\"z\":null}]},\"Last\":\"z\"},"
	"{\"ResourceID\":4294967295} , {}"
	"],\"@odata.nextLink\":\"https://cm.example/AdminService/wmi/SMS_R_System?$skiptoken=abc\"}";

/* nextLink before value, relative; unknown top-level members of every kind are skipped. */
static const char page_before[] =
	" {\"@odata.nextLink\":\"SMS_R_System?$select=ResourceID&$skiptoken=x%20y\","
	"\"@odata.count\":5,\"extra\":{\"a\":[1,2,{\"b\":null}],\"value\":3},\"list\":[[\"value\"]],"
	"\"value\":[{\"ResourceID\":2,\"Name\":\"\",\"Name\":\"second wins\"}],"
	"\"@odata.context\":null} \n";

static void assert_field(const struct cmb_odata_record *r, const char *name, enum cmb_odata_type type,
			 const char *text, size_t len, int boolean)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(r, name);
	assert_non_null(f);
	assert_int_equal(f->type, type);
	assert_int_equal(f->boolean, boolean);
	if (text) {
		assert_non_null(f->text);
		assert_int_equal(f->len, len);
		assert_memory_equal(f->text, text, len);
		assert_int_equal(f->text[len], '\0');
	} else {
		assert_null(f->text);
	}
}

static void test_page_after(void **state)
{
	struct collect c = { 0 };
	struct cmb_odata_parser *p = NULL;
	assert_int_equal(cmb_odata_new(&p, "SMS_R_System page 1", 0, on_record, &c), 0);
	assert_int_equal(cmb_odata_feed(p, page_after, sizeof(page_after) - 1), 0);
	assert_int_equal(cmb_odata_finish(p), 0);
	assert_string_equal(cmb_odata_next_link(p),
			    "https://cm.example/AdminService/wmi/SMS_R_System?$skiptoken=abc");
	assert_string_equal(cmb_odata_context(p), "https://cm.example/AdminService/wmi/$metadata#SMS_R_System");
	assert_int_equal(cmb_odata_records(p), 3);
	assert_int_equal(cmb_odata_bytes(p), sizeof(page_after) - 1);
	cmb_odata_free(p);

	assert_int_equal(c.n, 3);
	const struct cmb_odata_record *r = c.recs[0];
	assert_int_equal(r->n, 11); /* Arr and Obj skipped */
	assert_field(r, "ResourceID", CMB_ODATA_NUMBER, "16777220", 8, 0);
	assert_field(r, "Name", CMB_ODATA_STRING, "PC-0001", 7, 0);
	assert_field(r, "Client", CMB_ODATA_NUMBER, "1", 1, 0);
	assert_field(r, "Obsolete", CMB_ODATA_NULL, NULL, 0, 0);
	assert_field(r, "AADDeviceID", CMB_ODATA_STRING, "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80", 15, 0);
	assert_field(r, "Bad", CMB_ODATA_STRING, "X\xff\xfe\xc3(Y", 6, 0);
	assert_field(r, "Big", CMB_ODATA_NUMBER, "4294967295", 10, 0);
	assert_field(r, "Flag", CMB_ODATA_BOOL, NULL, 0, 1);
	assert_field(r, "Off", CMB_ODATA_BOOL, NULL, 0, 0);
	assert_field(r, "Neg", CMB_ODATA_NUMBER, "-12.5e3", 7, 0);
	assert_field(r, "Last", CMB_ODATA_STRING, "z", 1, 0);
	assert_null(cmb_odata_record_get(r, "Arr"));
	assert_null(cmb_odata_record_get(r, "Obj"));
	assert_null(cmb_odata_record_get(r, "x"));
	assert_null(cmb_odata_record_get(r, "resourceid")); /* case-sensitive */
	/* fields keep document order */
	assert_string_equal(r->fields[0].name, "ResourceID");
	assert_string_equal(r->fields[10].name, "Last");

	assert_int_equal(c.recs[1]->n, 1);
	assert_field(c.recs[1], "ResourceID", CMB_ODATA_NUMBER, "4294967295", 10, 0);
	assert_int_equal(c.recs[2]->n, 0);
	collect_clear(&c);
}

static void test_page_before(void **state)
{
	struct collect c = { 0 };
	struct cmb_odata_parser *p = NULL;
	assert_int_equal(cmb_odata_new(&p, "SMS_R_System page 2", 0, on_record, &c), 0);
	assert_int_equal(cmb_odata_feed(p, page_before, sizeof(page_before) - 1), 0);
	assert_int_equal(cmb_odata_finish(p), 0);
	assert_string_equal(cmb_odata_next_link(p), "SMS_R_System?$select=ResourceID&$skiptoken=x%20y");
	assert_null(cmb_odata_context(p));
	cmb_odata_free(p);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.recs[0]->n, 2);
	assert_field(c.recs[0], "ResourceID", CMB_ODATA_NUMBER, "2", 1, 0);
	assert_field(c.recs[0], "Name", CMB_ODATA_STRING, "second wins", 11, 0);
	collect_clear(&c);
}

static void test_empty_value(void **state)
{
	static const char page[] = "{\"@odata.context\":\"x\",\"value\":[]}";
	struct collect c = { 0 };
	struct cmb_buf out = CMB_BUF_INIT(1 << 20);
	assert_int_equal(parse(page, sizeof(page) - 1, 0, 0, 0, &c, &out), 0);
	assert_int_equal(c.n, 0);
	assert_string_equal(out.data, "next=(none)\ncontext=x\n");
	cmb_buf_free(&out);
	collect_clear(&c);

	/* a null nextLink means no next page */
	static const char page2[] = "{\"value\":[],\"@odata.nextLink\":null}";
	assert_int_equal(parse(page2, sizeof(page2) - 1, 0, 0, 0, &c, NULL), 0);
	collect_clear(&c);
}

/* Every 2-way split and 1-byte chunks give exactly what one feed gives. */
static void check_every_split(const char *page, size_t len)
{
	struct collect c = { 0 };
	struct cmb_buf whole = CMB_BUF_INIT(1 << 20);
	assert_int_equal(parse(page, len, 0, 0, 0, &c, &whole), 0);
	assert_true(c.n > 0);
	collect_clear(&c);

	for (size_t split = 1; split < len; split++) {
		struct cmb_buf got = CMB_BUF_INIT(1 << 20);
		int rc = parse(page, len, split, 0, 0, &c, &got);
		if (rc != 0)
			fail_msg("split at %zu: %s", split, cmb_error_last());
		assert_int_equal(got.len, whole.len);
		assert_memory_equal(got.data, whole.data, whole.len);
		cmb_buf_free(&got);
		collect_clear(&c);
	}
	for (size_t chunk = 1; chunk <= 3; chunk++) {
		struct cmb_buf got = CMB_BUF_INIT(1 << 20);
		assert_int_equal(parse(page, len, 0, chunk, 0, &c, &got), 0);
		assert_int_equal(got.len, whole.len);
		assert_memory_equal(got.data, whole.data, whole.len);
		cmb_buf_free(&got);
		collect_clear(&c);
	}
	cmb_buf_free(&whole);
}

static void test_every_split_after(void **state)
{
	check_every_split(page_after, sizeof(page_after) - 1);
}

static void test_every_split_before(void **state)
{
	check_every_split(page_before, sizeof(page_before) - 1);
}

/* Parses page whole and in 1-byte chunks; both must fail with code and a message containing want. */
static void check_error(const char *page, size_t max_record, int code, const char *want, size_t want_records)
{
	for (int chunked = 0; chunked < 2; chunked++) {
		struct collect c = { 0 };
		cmb_error_clear();
		int rc = parse(page, strlen(page), 0, chunked ? 1 : 0, max_record, &c, NULL);
		if (rc != code || !strstr(cmb_error_last(), want))
			fail_msg("%s: got %d '%s', want %d '%s'", page, rc, cmb_error_last(), code, want);
		assert_int_equal(c.n, want_records);
		collect_clear(&c);
	}
}

static void test_errors(void **state)
{
	/* malformed: a trailing comma in a record; offsets point just past the bad token, the '}' */
	check_error("{\"value\":[{\"ResourceID\":1,}]}", 0, CMB_EPROTO,
		    "SMS_R_System page 1, byte 27: malformed JSON (parse error: invalid object key (must be a string))", 0);
	/* truncated: the page ends inside "value", after one complete record */
	check_error("{\"value\":[{\"ResourceID\":1}", 0, CMB_EPROTO,
		    "SMS_R_System page 1, byte 26: truncated or malformed JSON (parse error: premature EOF", 1);
	check_error("{\"value\":[{\"ResourceID\":1},{\"Name\":\"PC", 0, CMB_EPROTO,
		    "SMS_R_System page 1, byte 38: truncated", 1);
	check_error("", 0, CMB_EPROTO, "SMS_R_System page 1, byte 0: empty body", 0);
	check_error("   ", 0, CMB_EPROTO, "SMS_R_System page 1, byte 3: truncated", 0);
	/* top level not an object */
	check_error("[{\"ResourceID\":1}]", 0, CMB_EPROTO, "SMS_R_System page 1, byte 1: the page is not a JSON object", 0);
	check_error("\"value\"", 0, CMB_EPROTO, "byte 7: the page is not a JSON object", 0);
	check_error("<html><body>Proxy error</body></html>", 0, CMB_EPROTO, "byte 1: malformed JSON (lexical error: invalid char in json text.)", 0);
	/* missing or wrong "value" */
	check_error("{\"@odata.context\":\"x\"}", 0, CMB_EPROTO, "SMS_R_System page 1, byte 22: no 'value' array in the page", 0);
	check_error("{\"value\":{\"ResourceID\":1}}", 0, CMB_EPROTO, "byte 10: 'value' is not an array", 0);
	check_error("{\"value\":null}", 0, CMB_EPROTO, "byte 13: 'value' is not an array", 0);
	check_error("{\"value\":\"x\"}", 0, CMB_EPROTO, "'value' is not an array", 0);
	check_error("{\"value\":[],\"value\":[]}", 0, CMB_EPROTO, "byte 19: 'value' appears twice", 0);
	/* elements that are not objects */
	check_error("{\"value\":[{\"ResourceID\":1},2]}", 0, CMB_EPROTO, "byte 28: value[1] is not an object", 1);
	check_error("{\"value\":[[]]}", 0, CMB_EPROTO, "byte 11: value[0] is not an object", 0);
	check_error("{\"value\":[null]}", 0, CMB_EPROTO, "value[0] is not an object", 0);
	/* nextLink of the wrong type */
	check_error("{\"value\":[],\"@odata.nextLink\":5}", 0, CMB_EPROTO, "'@odata.nextLink' is not a string", 0);
	check_error("{\"value\":[],\"@odata.nextLink\":{}}", 0, CMB_EPROTO, "'@odata.nextLink' is not a string", 0);
	check_error("{\"value\":[],\"@odata.nextLink\":\"\"}", 0, CMB_EPROTO, "'@odata.nextLink' is empty", 0);
	/* trailing garbage and a second document */
	check_error("{\"value\":[]} x", 0, CMB_EPROTO, "malformed JSON", 0);
	check_error("{\"value\":[]}{\"value\":[]}", 0, CMB_EPROTO, "byte 13: malformed JSON (parse error: trailing garbage", 0);
	/* a raw control character is still refused with validation off */
	check_error("{\"value\":[{\"Name\":\"a\nb\"}]}", 0, CMB_EPROTO, "malformed JSON", 0);
}

static void test_record_limit(void **state)
{
	char page[512];
	char big[101];
	memset(big, 'x', 100);
	big[100] = '\0';
	snprintf(page, sizeof(page), "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2,\"Name\":\"%s\"}]}", big);
	check_error(page, 128, CMB_ETOOBIG, "SMS_R_System page 1, byte 152: value[1] is larger than the record limit of 128 bytes", 1);
	/* the same page passes with the default limit */
	check_error(page, 0, 0, "", 2);
	/* many small fields add up */
	snprintf(page, sizeof(page), "{\"value\":[{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}]}");
	check_error(page, 100, CMB_ETOOBIG, "value[0] is larger than the record limit of 100 bytes", 0);
	/* nextLink is bounded too */
	snprintf(page, sizeof(page), "{\"value\":[],\"@odata.nextLink\":\"%s\"}", big);
	check_error(page, 64, CMB_ETOOBIG, "'@odata.nextLink' is longer than 64 bytes", 0);
}

static void test_callback_stops(void **state)
{
	struct collect c = { .fail_at = 2 };
	int rc = parse(page_after, sizeof(page_after) - 1, 0, 0, 0, &c, NULL);
	assert_int_equal(rc, CMB_ECANCELED);
	assert_string_equal(cmb_error_last(), "stopped by the test");
	assert_int_equal(c.n, 1);
	collect_clear(&c);
}

/* After an error the parser keeps returning it and never calls back again. */
static void test_sticky_error(void **state)
{
	struct collect c = { 0 };
	struct cmb_odata_parser *p = NULL;
	assert_int_equal(cmb_odata_new(&p, "SMS_G_System_PC_BIOS page 7", 0, on_record, &c), 0);
	assert_int_equal(cmb_odata_feed(p, "{\"value\":[1,", 12), CMB_EPROTO);
	assert_string_equal(cmb_error_last(), "SMS_G_System_PC_BIOS page 7, byte 11: value[0] is not an object");
	assert_int_equal(cmb_odata_feed(p, "]}", 2), CMB_EPROTO);
	assert_int_equal(cmb_odata_finish(p), CMB_EPROTO);
	cmb_odata_free(p);
	assert_int_equal(c.n, 0);
	/* free without finish, mid-record, does not leak */
	assert_int_equal(cmb_odata_new(&p, "x", 0, on_record, &c), 0);
	assert_int_equal(cmb_odata_feed(p, "{\"value\":[{\"a\":\"b\",\"c\"", 22), 0);
	cmb_odata_free(p);
	cmb_odata_free(NULL);
	cmb_odata_record_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_after),
		cmocka_unit_test(test_page_before),
		cmocka_unit_test(test_empty_value),
		cmocka_unit_test(test_every_split_after),
		cmocka_unit_test(test_every_split_before),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_record_limit),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_sticky_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
