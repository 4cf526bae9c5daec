/*
 * test_gateway.c - the real gateway tenant adapter against an in-process
 * HTTPS server (libmicrohttpd, certificates made for the run) that answers
 * from a script and records every request (curl's test servers).
 *
 * Checks the retry policy end to end: 5xx and dropped replies are sent
 * again under the same batchId, a replayed answer is accepted, 429 waits
 * what Retry-After says (read from the adapter's counters, never from a
 * clock), a 401 renews the token once, 4xx are final with Graph's message,
 * and the exact shape of both upload requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/tenant.h"
#include "adapters/tenant/gateway.h"
#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "tests/unit/fixture.h"

#define SECRET "gw-test-secret-value"
#define UPLOADS "/api/gateway/"   /* DevicePost and CollectionPost share one script */

struct fx {
	char dir[FX_DIR_SIZE];
	struct fx_server srv;
	struct cmb_config cfg;
	void *gw;
	struct cmb_buf outcomes;
};

static void script_token(struct fx *f, struct fx_reply r)
{
	fx_script(&f->srv, FX_TOKEN_PATH, r);
}

static void script_upload(struct fx *f, struct fx_reply r)
{
	fx_script(&f->srv, UPLOADS, r);
}

static int token_hits(struct fx *f)
{
	return fx_route(&f->srv, FX_TOKEN_PATH)->hits;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "gw") < 0)
		return -1;
	fx_server_start(&f->srv, &fx_group_pki);
	f->srv.www_authenticate = "Bearer";
	fx_tenant_config(&f->cfg, &f->srv, f->dir, fx_group_pki.ca_pem, SECRET);
	cmb_buf_init(&f->outcomes, 1 << 20);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->gw)
		cmb_tenant_gateway.close(f->gw);
	fx_server_stop(&f->srv);
	fx_rmtree(f->dir);
	fx_tenant_config_clear(&f->cfg);
	cmb_buf_free(&f->outcomes);
	free(f);
	return 0;
}

static void open_gw(struct fx *f)
{
	assert_int_equal(cmb_tenant_gateway.open(&f->gw, &f->cfg), 0);
	cmb_tenant_gateway.begin_cycle(f->gw);
}

static int on_outcome(void *ctx, const struct cmb_tenant_outcome *o)
{
	struct fx *f = ctx;
	char *line = xasprintf("%s%s %s %s %s\n", o->is_removal ? "-" : "+", o->key, o->status,
			       o->tenant_id ? o->tenant_id : "-", o->error ? o->error : "-");
	cmb_buf_addstr(&f->outcomes, line);
	free(line);
	return 0;
}

/* One device, one removal. */
#define REC_JSON "{\"key\":\"PS1:16777220\",\"managedDevice\":{\"deviceName\":\"PC-0001\"}," \
		 "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220}}"
#define BATCH_ID "0f8e6a52-7c1d-4a8e-9b3f-2d6c5e4a1b00"
#define OK_REPLY(replayed) "{\"batchId\":\"" BATCH_ID "\",\"replayed\":" replayed ",\"results\":[{\"key\":" \
		 "\"PS1:16777220\",\"status\":\"created\",\"id\":\"md-1\"}],\"removals\":[{\"key\":\"PS1:16777311\"," \
		 "\"status\":\"removed\"}]}"
#define WANT_OUTCOMES "+PS1:16777220 created md-1 -\n-PS1:16777311 removed - -\n"
#define SERVER_ERROR(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

static int upload_one(struct fx *f)
{
	struct cmb_tenant_record rec = { .key = "PS1:16777220", .json = REC_JSON, .json_len = strlen(REC_JSON) };
	const char *removals[] = { "PS1:16777311" };
	struct cmb_tenant_batch b = { .batch_id = BATCH_ID, .records = &rec, .n_records = 1, .removals = removals,
				      .n_removals = 1 };
	f->outcomes.len = 0;
	if (f->outcomes.data)
		f->outcomes.data[0] = '\0';
	return cmb_tenant_gateway.upload(f->gw, &b, on_outcome, f);
}

/* Every upload request carried the batch's id, and only it. */
static void assert_same_batch_id(const struct fx *f, int want_uploads)
{
	int n = 0;
	for (int i = 0; i < f->srv.n_req; i++) {
		const struct fx_request *q = &f->srv.req[i];
		if (!strstr(q->path, "/api/gateway/"))
			continue;
		n++;
		assert_non_null(q->body);
		assert_non_null(q->content_encoding);
		assert_string_equal(q->content_encoding, "gzip");
		assert_non_null(strstr(q->body, "{\"batchId\":\"" BATCH_ID "\","));
		assert_null(strstr(strstr(q->body, BATCH_ID) + 1, "batchId"));
	}
	assert_int_equal(n, want_uploads);
}

static struct cmb_gateway_counters counters(struct fx *f)
{
	struct cmb_gateway_counters c;
	cmb_gateway_counters(f->gw, &c);
	return c;
}

/* ---- tests ---- */

static void device_request_shape(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(f->srv.n_req, 2);
	assert_string_equal(f->srv.req[0].path, "/contoso/oauth2/v2.0/token");
	assert_non_null(strstr(f->srv.req[0].body, "grant_type=client_credentials&client_id=11111111-2222-3333-"
						   "4444-555555555555&client_secret=" SECRET "&scope=https%3A%2F%2F"
						   "graph.microsoft.com%2F.default"));
	assert_string_equal(f->srv.req[1].path, "/api/gateway/DevicePost");
	assert_string_equal(f->srv.req[1].authorization, "Bearer tok-1");
	assert_string_equal(f->srv.req[1].body, "{\"batchId\":\"" BATCH_ID "\",\"siteCode\":\"PS1\",\"devices\":["
						REC_JSON "],\"removals\":[\"PS1:16777311\"]}");
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.requests, 1);
	assert_int_equal(c.token_requests, 1);
	assert_int_equal(c.retries, 0);
}

static void server_error_then_ok(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 500, .body = SERVER_ERROR("InternalServerError", "try again") });
	script_upload(f, (struct fx_reply){ .status = 502, .body = "bad gateway" });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 3);
	assert_int_equal(token_hits(f), 1);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.requests, 3);
	assert_int_equal(c.retries, 2);
	/* Full jitter: the first two backoffs are below 0.5 s and 1 s. */
	assert_true(c.retry_waited_s >= 0 && c.retry_waited_s < 1.5);
}

static void throttled_honours_retry_after(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 429, .body = SERVER_ERROR("TooManyRequests", "slow down"),
					 .retry_after = "0.2" });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 2);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_true(c.retry_waited_s >= 0.2 - 1e-9);
	assert_true(c.retry_waited_s < 0.2 + 1e-9);

	/* A Retry-After beyond max_retry_wait is capped, a 503 too; a new cycle resets the counters. */
	cmb_tenant_gateway.begin_cycle(f->gw);
	assert_int_equal(counters(f).retries, 0);
	f->cfg.sync_max_retry_wait = 1;
	cmb_tenant_gateway.close(f->gw);
	f->gw = NULL;
	script_upload(f, (struct fx_reply){ .status = 503, .body = "{}", .retry_after = "3600" });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_true(c.retry_waited_s > 1 - 1e-9 && c.retry_waited_s < 1 + 1e-9);
}

static void dropped_reply_then_replay(void **state)
{
	struct fx *f = *state;
	/* The tenant applied the batch, but the answer was cut off mid-body. */
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false"), .cut = FX_CUT_LENGTH,
					 .at = (sizeof(OK_REPLY("false")) - 1) / 2 });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("true") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	/* Exactly one report per record: the replayed answer, nothing from the cut one. */
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 2);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.replays, 1);
}

static void unauthorized_renews_token_once(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 401,
					 .body = SERVER_ERROR("InvalidAuthenticationToken", "Access token has expired.") });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(token_hits(f), 2);
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/DevicePost"), 2);
	assert_same_batch_id(f, 2);
	/* token, upload (tok-1), token, upload (tok-2) */
	assert_string_equal(f->srv.req[1].authorization, "Bearer tok-1");
	assert_string_equal(f->srv.req[3].authorization, "Bearer tok-2");
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.token_renewals, 1);
	assert_int_equal(c.retries, 0);

	/* A second 401 in a row is final. */
	script_upload(f, (struct fx_reply){ .status = 401, .body = SERVER_ERROR("InvalidAuthenticationToken", "no") });
	script_upload(f, (struct fx_reply){ .status = 401, .body = SERVER_ERROR("InvalidAuthenticationToken", "still no") });
	assert_int_equal(upload_one(f), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), "upload of device batch "));
	assert_non_null(strstr(cmb_error_last(), ": tenant refused the credentials of client "));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost (HTTP 401: InvalidAuthenticationToken: still no)"));
	assert_int_equal(token_hits(f), 3);
	assert_int_equal(f->outcomes.len, 0);
}

static void bad_request_is_final(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 400, .body = SERVER_ERROR("BadRequest", "removals is not an array") });
	open_gw(f);
	cmb_error_clear();
	assert_int_equal(upload_one(f), CMB_EHTTP);
	assert_non_null(strstr(cmb_error_last(), ": tenant answered HTTP 400 for https://127.0.0.1:"));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost: BadRequest: removals is not an array"));
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/"), 1);
	assert_int_equal(f->outcomes.len, 0);
	script_upload(f, (struct fx_reply){ .status = 413, .body = SERVER_ERROR("RequestEntityTooLarge", "64 MiB") });
	assert_int_equal(upload_one(f), CMB_EHTTP);
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost: RequestEntityTooLarge: 64 MiB"));
	script_upload(f, (struct fx_reply){ .status = 403, .body = SERVER_ERROR("Forbidden", "no permission") });
	assert_int_equal(upload_one(f), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), ": tenant denied client "));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost (HTTP 403: Forbidden: no permission)"));
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/"), 3);
	assert_int_equal(counters(f).retries, 0);
}

static void budget_runs_out(void **state)
{
	struct fx *f = *state;
	f->cfg.sync_retry_budget = 2;
	for (int i = 0; i < 5; i++)
		script_upload(f, (struct fx_reply){ .status = 504, .body = SERVER_ERROR("GatewayTimeout", "slow") });
	open_gw(f);
	assert_int_equal(upload_one(f), CMB_ENETWORK);
	assert_non_null(strstr(cmb_error_last(), "GatewayTimeout: slow (not retried: the cycle's retry budget of 2 is spent)"));
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/"), 3);
	/* The budget is for the cycle: the next request gets no retry either. */
	assert_int_equal(upload_one(f), CMB_ENETWORK);
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/"), 4);
}

static void token_transient_then_ok(void **state)
{
	struct fx *f = *state;
	script_token(f, (struct fx_reply){ .status = 503, .body = "{}", .retry_after = "0" });
	script_token(f, (struct fx_reply){ .status = 500, .body = "oops" });
	script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_int_equal(token_hits(f), 3);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.token_requests, 3);
	assert_int_equal(c.retries, 2);
}

static void token_refused_is_final(void **state)
{
	struct fx *f = *state;
	script_token(f, (struct fx_reply){ .status = 401,
					.body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
						"client secret provided.\\r\\nTrace ID: x\",\"error_codes\":[7000215]}" });
	open_gw(f);
	long exp = 0;
	assert_int_equal(cmb_tenant_gateway.check(f->gw, &exp), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), "acquiring a token: token endpoint refused the credentials of client "));
	assert_non_null(strstr(cmb_error_last(), "(HTTP 401: invalid_client: AADSTS7000215: Invalid client secret provided.)"));
	assert_null(strstr(cmb_error_last(), "Trace ID"));
	assert_null(strstr(cmb_error_last(), SECRET));
	assert_int_equal(token_hits(f), 1);
	assert_int_equal(counters(f).retries, 0);
}

static void collections_request_shape(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct fx_reply){ .status = 500, .body = "{}" });
	script_upload(f, (struct fx_reply){
		.status = 200,
		.body = "{\"batchId\":\"" BATCH_ID "\",\"replayed\":false,\"results\":[{\"key\":\"PS1:PS100012\","
			"\"status\":\"created\",\"id\":\"c-1\"},{\"key\":\"PS1:PS100013\",\"status\":\"rejected\","
			"\"error\":{\"code\":\"InvalidProperty\",\"message\":\"displayName is empty\"}}],"
			"\"removals\":[{\"key\":\"PS1:PS100099\",\"status\":\"notFound\"}]}" });
	open_gw(f);
	const char *keys[] = { "PS1:PS100012", "PS1:PS100013" };
	const char *json[] = {
		"{\"collectionIdentifier\":\"PS100012\",\"displayName\":\"Finance laptops\",\"hierarchyName\":\"Contoso "
		"Primary Site\",\"hierarchyIdentifier\":\"PS1\",\"createdDateTime\":\"2026-01-04T10:00:00Z\","
		"\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}",
		"{\"collectionIdentifier\":\"PS100013\",\"displayName\":\"\"}",
	};
	const char *removals[] = { "PS1:PS100099" };
	struct cmb_tenant_collection_batch b = { .batch_id = BATCH_ID, .keys = keys, .json = json, .n = 2,
						 .removals = removals, .n_removals = 1 };
	assert_int_equal(cmb_tenant_gateway.upload_collections(f->gw, &b, on_outcome, f), 0);
	assert_string_equal(f->outcomes.data, "+PS1:PS100012 created c-1 -\n"
					      "+PS1:PS100013 rejected - InvalidProperty: displayName is empty\n"
					      "-PS1:PS100099 notFound - -\n");
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/CollectionPost"), 2);
	assert_same_batch_id(f, 2);
	for (int i = 1; i <= 2; i++)
		assert_string_equal(
			f->srv.req[i].body,
			"{\"batchId\":\"" BATCH_ID "\",\"siteCode\":\"PS1\",\"collections\":["
			"{\"key\":\"PS1:PS100012\",\"configManagerCollection\":{\"collectionIdentifier\":\"PS100012\","
			"\"displayName\":\"Finance laptops\",\"hierarchyName\":\"Contoso Primary Site\","
			"\"hierarchyIdentifier\":\"PS1\",\"createdDateTime\":\"2026-01-04T10:00:00Z\","
			"\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}},"
			"{\"key\":\"PS1:PS100013\",\"configManagerCollection\":{\"collectionIdentifier\":\"PS100013\","
			"\"displayName\":\"\"}}],"
			"\"removals\":[\"PS1:PS100099\"]}");

	/* A reply that does not answer for every key is refused, not half-applied. */
	script_upload(f, (struct fx_reply){ .status = 200,
					 .body = "{\"batchId\":\"" BATCH_ID "\",\"results\":[],\"removals\":[]}" });
	f->outcomes.len = 0;
	assert_int_equal(cmb_tenant_gateway.upload_collections(f->gw, &b, on_outcome, f), CMB_EPROTO);
	assert_int_equal(f->outcomes.len, 0);
}

/* A success reply larger than the 64 KiB kept of error bodies is read whole, not cut and retried. */
static void large_reply_read_whole(void **state)
{
	struct fx *f = *state;
	size_t pad = 200 * 1024;
	const char *head = "{\"padding\":\"";
	const char *tail = OK_REPLY("false");
	char *body = xmalloc(strlen(head) + pad + 3 + strlen(tail));
	strcpy(body, head);
	memset(body + strlen(head), 'x', pad);
	strcpy(body + strlen(head) + pad, "\",");
	strcat(body, tail + 1); /* the reply's own members follow the padding */
	script_upload(f, (struct fx_reply){ .status = 200, .body = body });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(fx_requests_to(&f->srv, "/api/gateway/DevicePost"), 1);
	free(body);
}

static void rate_limit_counts_waits(void **state)
{
	struct fx *f = *state;
	f->cfg.tenant_rate_limit = 20;
	f->cfg.tenant_rate_burst = 1;
	for (int i = 0; i < 3; i++)
		script_upload(f, (struct fx_reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(upload_one(f), 0);
	/* token + 3 uploads through a bucket of 1 at 20/s: the limiter had to wait. */
	struct cmb_gateway_counters c = counters(f);
	assert_true(c.rate_waited_s > 0);
	assert_true(c.rate_waited_s <= 3.0 / 20 + 1e-6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(device_request_shape),
		T(server_error_then_ok),
		T(throttled_honours_retry_after),
		T(dropped_reply_then_replay),
		T(unauthorized_renews_token_once),
		T(bad_request_is_final),
		T(budget_runs_out),
		T(token_transient_then_ok),
		T(token_refused_is_final),
		T(collections_request_shape),
		T(rate_limit_counts_waits),
		T(large_reply_read_whole),
	};
	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
