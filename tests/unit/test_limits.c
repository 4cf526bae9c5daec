/*
 * test_limits.c - every limit of connector/base/limits.h, each where it is
 * enforced, each exceeded by a hostile reply and named in the error: the
 * HTTP core's response size and error body, JSON depth (the page parser,
 * tenant and token replies), records per page (the site cursor),
 * notifications per poll, string length, record size, XML depth and size
 * ($metadata), token size and token reply. Servers are canned_server
 * processes on loopback (canned_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/cursor.h"
#include "adapters/adminservice/metadata.h"
#include "adapters/adminservice/odata.h"
#include "adapters/tenant.h"
#include "adapters/tenant/notify.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/transport/auth.h"
#include "connector/transport/http.h"

#include "canned_fixture.h"

static struct canned_fx srv;
static char url_base[64];

#define TOKEN_OK "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-1\"}"

/* A string of n copies of c. Caller frees. */
static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* n levels of '[' then as many ']'. Caller frees. */
static char *nested(size_t n)
{
	char *s = xmalloc(2 * n + 1);
	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';
	return s;
}

static char *file_of(const char *name, const char *text)
{
	return canned_file(&srv, name, text, strlen(text), 0644);
}

static int group_setup(void **state)
{
	(void)state;
	cmb_log_set_level(CMB_LOG_ERROR);
	if (canned_init(&srv) < 0)
		return -1;
	char *big = repeat('x', 2048), *err = repeat('e', 200 * 1024);
	char *deep = nested(100000), *tok_big_value = repeat('A', CMB_LIMIT_TOKEN_BYTES + 1);
	char *tok_big = xasprintf("{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"%s\"}", tok_big_value);
	char *pad = repeat('p', CMB_LIMIT_TOKEN_REPLY_BYTES);
	char *tok_reply_big = xasprintf("{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"t\",\"x\":\"%s\"}",
					pad);
	struct cmb_buf notes = CMB_BUF_INIT((size_t)1 << 24);
	cmb_buf_addstr(&notes, "{\"cursor\":\"c1\",\"notifications\":[");
	for (unsigned i = 0; i <= CMB_LIMIT_NOTIFICATIONS; i++)
		cmb_buf_printf(&notes, "%s{\"id\":\"n%u\",\"action\":\"quickScan\"}", i ? "," : "", i);
	cmb_buf_addstr(&notes, "]}");
	char *files[] = {
		file_of("big", big), file_of("err", err), file_of("deep", deep),
		file_of("page3", "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2},{\"ResourceID\":3}]}"),
		file_of("tok", TOKEN_OK), file_of("tokbig", tok_big), file_of("tokreply", tok_reply_big),
		file_of("tokcrlf", "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"a\\r\\nX-Evil: 1\"}"),
		file_of("notes", notes.data), file_of("nf", "{}"),
	};
	const char *args[] = {
		"--body", files[9], "--status", "404",
		"--route", "GET /big", files[0], "200",
		"--route", "GET /err", files[1], "500",
		"--route", "GET /AdminService/wmi/SMS_R_System*", files[3], "200",
		"--route", "POST /tok", files[4], "200",
		"--route", "POST /tokbig", files[5], "200",
		"--route", "POST /tokreply", files[6], "200",
		"--route", "POST /tokcrlf", files[7], "200",
		"--route", "GET /gw/api/gateway/Notification*", files[8], "200",
		"--route", "POST /gw/api/gateway/DevicePost", files[2], "200",
		NULL,
	};
	int rc = canned_start(&srv, args);
	snprintf(url_base, sizeof(url_base), "https://127.0.0.1:%d", srv.port);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		free(files[i]);
	free(big);
	free(err);
	free(deep);
	free(tok_big_value);
	free(tok_big);
	free(pad);
	free(tok_reply_big);
	cmb_buf_free(&notes);
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	canned_fini(&srv);
	return 0;
}

static struct cmb_http *site_http(size_t max_response)
{
	struct cmb_http_opts o = { .name = "site", .ca_file = srv.cert, .max_response = max_response };
	struct cmb_http *h = NULL;
	assert_int_equal(cmb_http_new(&h, &o), 0);
	return h;
}

static void assert_error(int rc, int code, const char *want)
{
	assert_int_equal(rc, code);
	if (!strstr(cmb_error_last(), want)) {
		fprintf(stderr, "message: %s\nwanted:  %s\n", cmb_error_last(), want);
		fail();
	}
}

/* ---- the HTTP core ---- */

static void response_size(void **state)
{
	(void)state;
	struct cmb_http *h = site_http(1024);
	char *url = xasprintf("%s/big", url_base);
	struct cmb_http_request rq = { .url = url };
	struct cmb_http_response resp;
	char *want = xasprintf("the response from %s exceeds the limit of 1024 bytes (response size, "
			       "[sync] max_response_mb, connector/base/limits.h)", url);
	assert_error(cmb_http_request(h, &rq, &resp), CMB_ETOOBIG, want);
	/* A request's own limit is named as that limit. */
	rq.max_response = 100;
	rq.max_limit = CMB_LIMIT_TOKEN_REPLY;
	assert_error(cmb_http_request(h, &rq, &resp), CMB_ETOOBIG, "exceeds the limit of 100 bytes (token reply, ");
	rq.max_response = 4096;
	assert_int_equal(cmb_http_request(h, &rq, &resp), 0);
	assert_int_equal(resp.body.len, 2048);
	cmb_http_response_clear(&resp);
	free(want);
	free(url);
	cmb_http_free(h);
}

static void error_body(void **state)
{
	(void)state;
	struct cmb_http *h = site_http(0);
	char *url = xasprintf("%s/err", url_base);
	struct cmb_http_request rq = { .url = url };
	struct cmb_http_response resp;
	/* 200 KiB of error body: kept up to the limit, the rest dropped, never an error in itself. */
	assert_int_equal(cmb_http_request(h, &rq, &resp), 0);
	assert_int_equal(resp.status, 500);
	assert_int_equal(resp.body.len, CMB_LIMIT_ERROR_BODY_BYTES);
	assert_int_equal(resp.bytes_in, 200 * 1024);
	cmb_http_response_clear(&resp);
	free(url);
	cmb_http_free(h);
}

/* ---- JSON depth ---- */

static int count_record(void *ctx, struct cmb_odata_record *rec)
{
	(*(int *)ctx)++;
	cmb_odata_record_free(rec);
	return 0;
}

static int parse_page(const char *json, int *records)
{
	struct cmb_odata_parser *p = NULL;
	*records = 0;
	assert_int_equal(cmb_odata_new(&p, "SMS_R_System page 1", 0, count_record, records), 0);
	int rc = cmb_odata_feed(p, json, strlen(json));
	if (rc == 0)
		rc = cmb_odata_finish(p);
	cmb_odata_free(p);
	return rc;
}

/* A page whose record holds a property nested `levels` deep in all (the page's own two levels included). */
static char *page_nested(unsigned levels)
{
	char *inner = nested(levels - 3);
	char *page = xasprintf("{\"value\":[{\"ResourceID\":1,\"X\":%s}]}", inner);
	free(inner);
	return page;
}

static void json_depth_page(void **state)
{
	(void)state;
	int n;
	char *ok = page_nested(CMB_LIMIT_JSON_DEPTH_LEVELS), *bad = page_nested(CMB_LIMIT_JSON_DEPTH_LEVELS + 1);
	assert_int_equal(parse_page(ok, &n), 0);
	assert_int_equal(n, 1);
	assert_error(parse_page(bad, &n), CMB_ETOOBIG,
		     "SMS_R_System page 1, byte 92: nesting exceeds the limit of 64 levels (JSON depth, "
		     "connector/base/limits.h)");
	assert_int_equal(n, 0);
	free(ok);
	free(bad);
}

static void json_depth_tree(void **state)
{
	(void)state;
	yajl_val root = NULL;
	char eb[64];
	char *ok = nested(CMB_LIMIT_JSON_DEPTH_LEVELS), *bad = nested(CMB_LIMIT_JSON_DEPTH_LEVELS + 1);
	assert_int_equal(cmb_limit_json_tree(ok, strlen(ok), "reply", &root, eb, sizeof(eb)), 0);
	yajl_tree_free(root);
	assert_error(cmb_limit_json_tree(bad, strlen(bad), "tenant reply from X", &root, eb, sizeof(eb)), CMB_ETOOBIG,
		     "tenant reply from X: nesting exceeds the limit of 64 levels (JSON depth, connector/base/limits.h)");
	/* Brackets inside strings, escaped quotes included, are not nesting. */
	char *text = xasprintf("{\"a\":\"%s\\\"[[[\",\"b\":%s}", bad, ok + 1);
	text[strlen(text) - 2] = '\0'; /* one level less: the object itself is one */
	strcat(text, "}");
	assert_int_equal(cmb_limit_json_scan(text, strlen(text), 0, "x", NULL), 0);
	free(text);
	/* A \u0000 escape is read as U+FFFD: no string ends early where C sees it. */
	const char *nul = "{\"action\":\"quickScan\\u0000x\",\"id\":\"a\\\\u0000\"}";
	assert_int_equal(cmb_limit_json_tree(nul, strlen(nul), "reply", &root, eb, sizeof(eb)), 0);
	const char *pa[] = { "action", NULL }, *pi[] = { "id", NULL };
	assert_string_equal(YAJL_GET_STRING(yajl_tree_get(root, pa, yajl_t_string)), "quickScan\xef\xbf\xbdx");
	assert_string_equal(YAJL_GET_STRING(yajl_tree_get(root, pi, yajl_t_string)), "a\\u0000"); /* an escaped backslash */
	yajl_tree_free(root);
	/* Malformed JSON: the caller words the message; yajl's reason is handed back. */
	cmb_error_clear();
	assert_int_equal(cmb_limit_json_tree("{\"a\":", 5, "reply", &root, eb, sizeof(eb)), CMB_EPROTO);
	assert_true(eb[0] != '\0');
	free(ok);
	free(bad);
}

/* ---- records per page: the site cursor ---- */

static void records_per_page(void **state)
{
	(void)state;
	struct cmb_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	char *site_url = xasprintf("%s/AdminService", url_base);
	cfg.site_url = site_url;
	cfg.site_ca_file = srv.cert;
	struct cmb_as_conn *conn = NULL;
	assert_int_equal(cmb_as_conn_open(&conn, &cfg), 0);
	struct cmb_as_client cl;
	cmb_as_client_init(&cl, conn);
	struct cmb_as_cursor c;
	cmb_as_cursor_init(&c, &cl, &(struct cmb_as_cursor_opts){ .entity = "SMS_R_System", .page_size = 2 });
	struct cmb_odata_record *rec = NULL;
	assert_error(cmb_as_cursor_next(&c, &rec), CMB_ETOOBIG,
		     "SMS_R_System page 1: site returned more than $top=2 rows in one page, which exceeds the limit of "
		     "2 records (records per page, [site] page_size, connector/base/limits.h)");
	assert_null(rec);
	cmb_as_cursor_clear(&c);
	cmb_as_client_clear(&cl);
	cmb_as_conn_release(conn);
	free(site_url);
}

/* ---- the tenant: notifications per poll, gateway replies ---- */

struct tenant_fx {
	struct cmb_config cfg;
	char *gateway, *token;
	void *gw;
};

static void tenant_open(struct tenant_fx *t)
{
	memset(t, 0, sizeof(*t));
	t->gateway = xasprintf("%s/gw", url_base);
	t->token = xasprintf("%s/tok", url_base);
	t->cfg.site_code = "PS1";
	t->cfg.tenant_gateway_url = t->gateway;
	t->cfg.tenant_token_url = t->token;
	t->cfg.tenant_client_id = "11111111-2222-3333-4444-555555555555";
	t->cfg.tenant_client_secret_file = srv.secret;
	t->cfg.tenant_scope = "https://graph.microsoft.com/.default";
	t->cfg.tenant_ca_file = srv.cert;
	assert_int_equal(cmb_tenant_gateway.open(&t->gw, &t->cfg), 0);
}

static void tenant_close(struct tenant_fx *t)
{
	cmb_tenant_gateway.close(t->gw);
	free(t->gateway);
	free(t->token);
}

static int on_note(void *ctx, const struct cmb_tenant_notification *n)
{
	(void)n;
	(*(int *)ctx)++;
	return 0;
}

static void notifications_per_poll(void **state)
{
	(void)state;
	struct tenant_fx t;
	tenant_open(&t);
	void *n = NULL;
	assert_int_equal(cmb_tenant_gateway.notify_open(&n, t.gw, &t.cfg), 0);
	int seen = 0;
	char *next = NULL;
	assert_error(cmb_tenant_gateway.poll_notifications(n, "", 0, on_note, &seen, &next), CMB_ETOOBIG,
		     "notification channel: a poll of 501 notifications exceeds the limit of 500 notifications "
		     "(notifications per poll, connector/base/limits.h)");
	assert_int_equal(seen, 0);
	assert_null(next);
	cmb_tenant_gateway.notify_close(n);
	tenant_close(&t);
}

static int on_outcome(void *ctx, const struct cmb_tenant_outcome *o)
{
	(void)o;
	(*(int *)ctx)++;
	return 0;
}

static void gateway_reply_depth(void **state)
{
	(void)state;
	struct tenant_fx t;
	tenant_open(&t);
	char key[] = "PS1:1", json[] = "{\"key\":\"PS1:1\"}";
	struct cmb_tenant_record rec = { .key = key, .json = json, .json_len = strlen(json) };
	struct cmb_tenant_batch b = { .batch_id = "b-1", .records = &rec, .n_records = 1 };
	int outcomes = 0;
	char *want = xasprintf("upload of device batch b-1: tenant reply from %s/gw/api/gateway/DevicePost: nesting "
			       "exceeds the limit of 64 levels (JSON depth, connector/base/limits.h)", url_base);
	assert_error(cmb_tenant_gateway.upload(t.gw, &b, on_outcome, &outcomes), CMB_ETOOBIG, want);
	assert_int_equal(outcomes, 0);
	free(want);
	tenant_close(&t);
}

/* ---- strings and records of a page ---- */

static void string_length(void **state)
{
	(void)state;
	int n;
	char *s_ok = repeat('n', CMB_LIMIT_STRING_BYTES), *s_bad = repeat('n', CMB_LIMIT_STRING_BYTES + 1);
	char *ok = xasprintf("{\"value\":[{\"ResourceID\":1,\"Name\":\"%s\"}]}", s_ok);
	char *bad = xasprintf("{\"value\":[{\"ResourceID\":1,\"Name\":\"%s\"}]}", s_bad);
	assert_int_equal(parse_page(ok, &n), 0);
	assert_int_equal(n, 1);
	assert_error(parse_page(bad, &n), CMB_ETOOBIG,
		     ": value[0].Name, a string of 65537 bytes, exceeds the limit of 65536 bytes (string length, "
		     "connector/base/limits.h)");
	free(s_ok);
	free(s_bad);
	free(ok);
	free(bad);
}

static void record_size(void **state)
{
	(void)state;
	assert_int_equal(CMB_ODATA_MAX_RECORD, CMB_LIMIT_RECORD_BYTES);
	/* Twenty strings just under the string limit: over a megabyte for one record. */
	struct cmb_buf page = CMB_BUF_INIT((size_t)4 << 20);
	char *s = repeat('r', CMB_LIMIT_STRING_BYTES - 16);
	cmb_buf_addstr(&page, "{\"value\":[{\"ResourceID\":1");
	for (int i = 0; i < 20; i++)
		cmb_buf_printf(&page, ",\"P%d\":\"%s\"", i, s);
	cmb_buf_addstr(&page, "}]}");
	int n;
	assert_error(parse_page(page.data, &n), CMB_ETOOBIG, "value[0] is larger than the record limit of 1048576 bytes");
	free(s);
	cmb_buf_free(&page);
}

/* ---- $metadata: XML depth and size, the defaults from limits.h ---- */

static int parse_metadata(const char *xml, size_t len)
{
	static const char *const wanted[] = { "SMS_R_System" };
	struct cmb_as_meta_parser *p = NULL;
	struct cmb_as_meta *m = NULL;
	assert_int_equal(cmb_as_meta_parser_new(&p, "site $metadata", wanted, 1, NULL), 0);
	int rc = cmb_as_meta_feed(p, xml, len);
	if (rc == 0)
		rc = cmb_as_meta_finish(p, &m);
	cmb_as_meta_free(m);
	cmb_as_meta_parser_free(p);
	return rc;
}

static void xml_depth(void **state)
{
	(void)state;
	assert_int_equal(CMB_AS_META_MAX_DEPTH, CMB_LIMIT_XML_DEPTH_LEVELS);
	assert_int_equal(CMB_AS_META_MAX_BYTES, CMB_LIMIT_XML_BYTES);
	assert_int_equal(CMB_AS_META_MAX_MARKUP, CMB_LIMIT_XML_MARKUP_BYTES);
	struct cmb_buf x = CMB_BUF_INIT(1 << 20);
	cmb_buf_addstr(&x, "<?xml version=\"1.0\"?><edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">");
	for (unsigned i = 1; i < CMB_LIMIT_XML_DEPTH_LEVELS; i++)
		cmb_buf_addstr(&x, "<a>");
	cmb_buf_addstr(&x, "<b/>");
	assert_error(parse_metadata(x.data, x.len), CMB_EPROTO, "elements are nested deeper than 64 (max_depth)");
	cmb_buf_free(&x);
}

/* ---- the token client: token size, token reply ---- */

static int token_from(const char *path, struct cmb_auth **out, struct cmb_http **h_out)
{
	struct cmb_http *h = site_http(0);
	char *url = xasprintf("%s/%s", url_base, path);
	struct cmb_auth_opts o = {
		.token_url = url, .client_id = "c1", .client_secret_file = srv.secret, .scope = "s/.default",
	};
	struct cmb_auth *a = NULL;
	assert_int_equal(cmb_auth_new(&a, h, &o), 0);
	const char *token = NULL;
	int rc = cmb_auth_token(a, &token);
	*out = a;
	*h_out = h;
	free(url);
	return rc;
}

static void token_size(void **state)
{
	(void)state;
	struct cmb_auth *a = NULL;
	struct cmb_http *h = NULL;
	char *want = xasprintf("token endpoint %s/tokbig: the access token of 32769 bytes exceeds the limit of 32768 "
			       "bytes (token size, connector/base/limits.h)", url_base);
	assert_error(token_from("tokbig", &a, &h), CMB_ETOOBIG, want);
	assert_int_equal(cmb_auth_requests(a), 1); /* final: not retried */
	assert_int_equal(cmb_auth_remaining(a), 0);
	cmb_auth_free(a);
	cmb_http_free(h);
	free(want);
	/* A token that would inject a header line is not a token. */
	assert_error(token_from("tokcrlf", &a, &h), CMB_EPROTO,
		     "the access token holds a byte (0x0d at 1) that cannot be sent in an Authorization header");
	cmb_auth_free(a);
	cmb_http_free(h);
}

static void token_reply(void **state)
{
	(void)state;
	struct cmb_auth *a = NULL;
	struct cmb_http *h = NULL;
	char *want = xasprintf("acquiring a token: the response from %s/tokreply exceeds the limit of 1048576 bytes "
			       "(token reply, connector/base/limits.h)", url_base);
	assert_error(token_from("tokreply", &a, &h), CMB_ETOOBIG, want);
	assert_int_equal(cmb_auth_requests(a), 1);
	cmb_auth_free(a);
	cmb_http_free(h);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(response_size),
		cmocka_unit_test(error_body),
		cmocka_unit_test(json_depth_page),
		cmocka_unit_test(json_depth_tree),
		cmocka_unit_test(records_per_page),
		cmocka_unit_test(notifications_per_poll),
		cmocka_unit_test(gateway_reply_depth),
		cmocka_unit_test(string_length),
		cmocka_unit_test(record_size),
		cmocka_unit_test(xml_depth),
		cmocka_unit_test(token_size),
		cmocka_unit_test(token_reply),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
