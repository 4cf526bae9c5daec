/*
 * test_notify.c - the gateway notification channel (adapters/tenant/notify.c,
 * docs/wire-format.md §8) over the real gateway adapter's handle and token,
 * against the fixture's scripted HTTPS server: the long poll's exact
 * request, the notifications and the next cursor as the tenant sent them,
 * replays passed on as they come (the inbox drops them), replies that lack
 * a cursor, the notifications or an id, NotificationResult's exact body and
 * its answers matched by id whatever their order, "unknown" taken as
 * acknowledged, and the retries: a 500 tried again, retry_budget = 0 one
 * try, a spent budget renewed for the next request.
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
#include "adapters/tenant/notify.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "tests/unit/fixture.h"

#define POLL "/api/gateway/Notification"
#define RESULT "/api/gateway/NotificationResult"

struct fx {
	char dir[FX_DIR_SIZE];
	struct fx_server srv;
	struct cmb_config cfg;
	void *gw, *n;
	struct cmb_buf seen;    /* one line per notification handed to the callback */
	int stop_after;         /* the callback fails at this notification (0: never) */
	char *next;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "notify") < 0)
		return -1;
	fx_server_start(&f->srv, &fx_group_pki);
	fx_tenant_config(&f->cfg, &f->srv, f->dir, fx_group_pki.ca_pem, "notify-test-secret");
	f->cfg.actions_poll_wait = 30;
	cmb_buf_init(&f->seen, 1 << 20);
	*state = f;
	return 0;
}

static void open_channel(struct fx *f)
{
	assert_int_equal(cmb_tenant_gateway.open(&f->gw, &f->cfg), 0);
	assert_int_equal(cmb_notify_open(&f->n, f->gw, &f->cfg), 0);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_notify_close(f->n);
	if (f->gw)
		cmb_tenant_gateway.close(f->gw);
	fx_server_stop(&f->srv);
	fx_rmtree(f->dir);
	fx_tenant_config_clear(&f->cfg);
	cmb_buf_free(&f->seen);
	free(f->next);
	free(f);
	return 0;
}

#define S(x) ((x) ? (x) : "-")

static int on_note(void *ctx, const struct cmb_tenant_notification *nt)
{
	struct fx *f = ctx;
	cmb_buf_printf(&f->seen, "%s %s %s %s %s %s %s\n", S(nt->id), S(nt->device_id), S(nt->key), S(nt->action),
		       S(nt->requested_by), S(nt->requested), S(nt->expires));
	if (f->stop_after && fx_count(f->seen.data, "\n") == f->stop_after)
		return cmb_error_set(CMB_ESTATE, "inbox: disk full");
	return 0;
}

/* One poll; the lines the callback saw and the next cursor are in f->seen and f->next. */
static int poll_now(struct fx *f, const char *cursor, long wait_s)
{
	cmb_buf_reset(&f->seen);
	free(f->next);
	f->next = NULL;
	cmb_error_clear();
	return cmb_notify_poll(f->n, cursor, wait_s, on_note, f, &f->next);
}

static const char *seen(const struct fx *f)
{
	return f->seen.data ? f->seen.data : "";
}

#define NOTE1 "{\"id\":\"a1\",\"deviceId\":\"md-1\",\"key\":\"PS1:16777220\",\"action\":\"refreshMachinePolicy\"," \
	"\"requestedBy\":\"admin@contoso.onmicrosoft.com\",\"requestedDateTime\":\"2026-11-29T10:00:00Z\"," \
	"\"expirationDateTime\":\"2026-11-30T10:00:00Z\"}"
#define NOTE2 "{\"id\":\"a2\",\"deviceId\":\"md-2\",\"key\":\"PS1:16777221\",\"action\":\"quickScan\"," \
	"\"requestedBy\":\"ops@contoso.onmicrosoft.com\",\"requestedDateTime\":\"2026-11-29T10:01:00Z\"," \
	"\"expirationDateTime\":\"2026-11-30T10:01:00Z\",\"extra\":{\"ignored\":true}}"
#define SEEN1 "a1 md-1 PS1:16777220 refreshMachinePolicy admin@contoso.onmicrosoft.com 2026-11-29T10:00:00Z " \
	"2026-11-30T10:00:00Z\n"
#define SEEN2 "a2 md-2 PS1:16777221 quickScan ops@contoso.onmicrosoft.com 2026-11-29T10:01:00Z 2026-11-30T10:01:00Z\n"

/* The tenant's answer to the next poll. */
static void poll_reply(struct fx *f, const char *cursor, const char *notes)
{
	char *body = xasprintf("{\"cursor\":\"%s\",\"notifications\":[%s]}", cursor, notes);
	fx_script(&f->srv, POLL, (struct fx_reply){ .body = body });
	free(body);
}

/* ---- the long poll ----------------------------------------------------- */

static void poll_with_cursor_and_wait(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	poll_reply(f, "c2", NOTE1 "," NOTE2);
	assert_int_equal(poll_now(f, "c1", 30), 0);
	assert_string_equal(seen(f), SEEN1 SEEN2);
	assert_string_equal(f->next, "c2");
	assert_int_equal(f->srv.n_req, 2);
	assert_string_equal(f->srv.req[0].path, FX_TOKEN_PATH);
	assert_string_equal(f->srv.req[1].method, "GET");
	assert_string_equal(f->srv.req[1].uri, POLL "?cursor=c1&wait=30");
	assert_string_equal(f->srv.req[1].authorization, "Bearer tok-1");

	/* The first poll has no cursor; one with URL specials is escaped; wait is held to 0..60. */
	poll_reply(f, "c3", "");
	poll_reply(f, "c4", "");
	poll_reply(f, "c5", "");
	assert_int_equal(poll_now(f, NULL, -5), 0);
	assert_string_equal(seen(f), "");
	assert_string_equal(f->next, "c3");
	assert_int_equal(poll_now(f, "a b/c=&d", 120), 0);
	assert_string_equal(f->next, "c4");
	assert_int_equal(poll_now(f, "", 0), 0);
	assert_string_equal(f->next, "c5");
	assert_string_equal(fx_uris(&f->srv, POLL), POLL "?cursor=c1&wait=30\n" POLL "?cursor=&wait=0\n"
				POLL "?cursor=a%20b%2Fc%3D%26d&wait=60\n" POLL "?cursor=&wait=0\n");
	/* One token for all of them: the gateway's, shared. */
	assert_int_equal(fx_route(&f->srv, FX_TOKEN_PATH)->hits, 1);
	fx_assert_all_served(&f->srv);
}

/* The same cursor gives the same notifications again: the channel passes them on, the inbox drops them. */
static void replays_passed_on(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	poll_reply(f, "c2", NOTE1);
	poll_reply(f, "c2", NOTE1);
	assert_int_equal(poll_now(f, "c1", 0), 0);
	assert_string_equal(seen(f), SEEN1);
	assert_string_equal(f->next, "c2");
	assert_int_equal(poll_now(f, "c1", 0), 0);
	assert_string_equal(seen(f), SEEN1);
	assert_string_equal(f->next, "c2");
	assert_string_equal(fx_uris(&f->srv, POLL), POLL "?cursor=c1&wait=0\n" POLL "?cursor=c1&wait=0\n");
}

static void reply_without_cursor_or_notifications(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	fx_script(&f->srv, POLL, (struct fx_reply){ .body = "{\"notifications\":[" NOTE1 "]}" });
	fx_script(&f->srv, POLL, (struct fx_reply){ .body = "{\"cursor\":\"c2\"}" });
	fx_script(&f->srv, POLL, (struct fx_reply){ .body = "{\"cursor\":\"c2\",\"notifications\":{}}" });
	for (int i = 0; i < 3; i++) {
		assert_int_equal(poll_now(f, "c1", 0), CMB_EPROTO);
		fx_assert_message("notification channel: the reply has no cursor or notifications");
		assert_string_equal(seen(f), "");
		assert_null(f->next);
	}
	/* A notification without an id ends the poll there: no cursor, so it is read again. */
	poll_reply(f, "c2", NOTE1 ",{\"deviceId\":\"md-9\"}," NOTE2);
	assert_int_equal(poll_now(f, "c1", 0), CMB_EPROTO);
	fx_assert_message("notification channel: notification 1 has no id");
	assert_string_equal(seen(f), SEEN1);
	assert_null(f->next);
	/* Nor does a callback that cannot keep a notification move the cursor. */
	poll_reply(f, "c2", NOTE1 "," NOTE2);
	f->stop_after = 1;
	assert_int_equal(poll_now(f, "c1", 0), CMB_ESTATE);
	fx_assert_message("inbox: disk full");
	assert_string_equal(seen(f), SEEN1);
	assert_null(f->next);
	/* Neither is retried: five requests for five polls. */
	assert_int_equal(fx_requests_to(&f->srv, POLL), 5);
	fx_assert_all_served(&f->srv);
}

/* ---- NotificationResult ---------------------------------------------- */

static const struct cmb_tenant_action_result results[] = {
	{ .id = "a1", .delivery = "deliveredToConnectorService", .state = "pending", .error_code = 0,
	  .updated = "2026-11-29T10:00:05Z" },
	{ .id = "a2", .delivery = "deliveredToOnPremisesServer", .state = "done", .error_code = 0,
	  .updated = "2026-11-29T10:02:00Z" },
	{ .id = "a3", .delivery = "deliveredToConnectorService", .state = "failed", .error_code = 10,
	  .updated = "2026-11-29T10:03:00Z", .message = "delivery \"unknown\": not sent again" },
};

#define RESULTS_BODY "{\"results\":[" \
	"{\"id\":\"a1\",\"actionDeliveryStatus\":\"deliveredToConnectorService\",\"actionState\":\"pending\"," \
	"\"errorCode\":0,\"lastUpdatedDateTime\":\"2026-11-29T10:00:05Z\"}," \
	"{\"id\":\"a2\",\"actionDeliveryStatus\":\"deliveredToOnPremisesServer\",\"actionState\":\"done\"," \
	"\"errorCode\":0,\"lastUpdatedDateTime\":\"2026-11-29T10:02:00Z\"}," \
	"{\"id\":\"a3\",\"actionDeliveryStatus\":\"deliveredToConnectorService\",\"actionState\":\"failed\"," \
	"\"errorCode\":10,\"lastUpdatedDateTime\":\"2026-11-29T10:03:00Z\"," \
	"\"message\":\"delivery \\\"unknown\\\": not sent again\"}]}"

static int post(struct fx *f, int acked[3])
{
	for (int i = 0; i < 3; i++)
		acked[i] = -1;
	cmb_error_clear();
	return cmb_notify_post_results(f->n, results, 3, acked);
}

/* Answers come in any order and are matched by id; a status other than accepted or unknown is no ack. */
static void results_matched_by_id(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	fx_script(&f->srv, RESULT, (struct fx_reply){
		.body = "{\"results\":[{\"id\":\"a3\",\"status\":\"accepted\"},{\"id\":\"zz\",\"status\":\"accepted\"},"
			"{\"id\":\"a2\",\"status\":\"rejected\"},{\"status\":\"accepted\"},{\"id\":\"a1\"},"
			"{\"id\":\"a1\",\"status\":\"accepted\"}]}" });
	int acked[3];
	assert_int_equal(post(f, acked), 0);
	assert_int_equal(acked[0], 1);
	assert_int_equal(acked[1], 0);
	assert_int_equal(acked[2], 1);
	const struct fx_request *q = &f->srv.req[1];
	assert_string_equal(q->method, "POST");
	assert_string_equal(q->uri, RESULT);
	assert_string_equal(q->content_type, "application/json");
	assert_string_equal(q->authorization, "Bearer tok-1");
	assert_string_equal(q->body, RESULTS_BODY);
}

/* "unknown": the tenant does not know the id; nothing to post again, so it counts as acknowledged. */
static void unknown_is_acknowledged(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	fx_script(&f->srv, RESULT, (struct fx_reply){
		.body = "{\"results\":[{\"id\":\"a1\",\"status\":\"unknown\"},{\"id\":\"a2\",\"status\":\"accepted\"}]}" });
	int acked[3];
	assert_int_equal(post(f, acked), 0);
	assert_int_equal(acked[0], 1);
	assert_int_equal(acked[1], 1);
	assert_int_equal(acked[2], 0);

	/* A reply without a results array acknowledges nothing. */
	fx_script(&f->srv, RESULT, (struct fx_reply){ .body = "{\"accepted\":3}" });
	assert_int_equal(post(f, acked), CMB_EPROTO);
	fx_assert_message("NotificationResult: the reply has no results array");
	assert_int_equal(acked[0], 0);
	assert_int_equal(acked[1], 0);
	assert_int_equal(acked[2], 0);
}

/* ---- retries ------------------------------------------------------------ */

/* Both requests are idempotent: a 500 is tried again, with the same body. */
static void server_error_retried(void **state)
{
	struct fx *f = *state;
	open_channel(f);
	fx_script(&f->srv, POLL, (struct fx_reply){ .status = 500, .body = "{}" });
	poll_reply(f, "c2", NOTE1);
	assert_int_equal(poll_now(f, "c1", 0), 0);
	assert_string_equal(seen(f), SEEN1);
	assert_string_equal(f->next, "c2");
	assert_string_equal(fx_uris(&f->srv, POLL), POLL "?cursor=c1&wait=0\n" POLL "?cursor=c1&wait=0\n");

	fx_script(&f->srv, RESULT, (struct fx_reply){ .status = 500, .body = "{}" });
	fx_script(&f->srv, RESULT, (struct fx_reply){ .body = "{\"results\":[{\"id\":\"a2\",\"status\":\"accepted\"}]}" });
	int acked[3];
	assert_int_equal(post(f, acked), 0);
	assert_int_equal(acked[1], 1);
	assert_int_equal(fx_requests_to(&f->srv, RESULT), 2);
	for (int i = 0; i < f->srv.n_req; i++)
		if (strcmp(f->srv.req[i].path, RESULT) == 0)
			assert_string_equal(f->srv.req[i].body, RESULTS_BODY);
	fx_assert_all_served(&f->srv);
}

/* [sync] retry_budget = 0: one try, towards the channel as everywhere. */
static void no_budget_one_try(void **state)
{
	struct fx *f = *state;
	f->cfg.sync_retry_budget = 0;
	open_channel(f);
	fx_script(&f->srv, POLL, (struct fx_reply){ .status = 500, .body = "{\"error\":{\"code\":\"Oops\",\"message\":\"down\"}}" });
	poll_reply(f, "c2", NOTE1);
	assert_int_equal(poll_now(f, "c1", 0), CMB_ENETWORK);
	fx_assert_message("polling the notification channel: tenant answered HTTP 500 for "
			  "https://127.0.0.1:%u" POLL "?cursor=c1&wait=0: Oops: down (not retried: the cycle's retry "
			  "budget of 0 is spent)", f->srv.port);
	assert_int_equal(fx_requests_to(&f->srv, POLL), 1);
	assert_null(f->next);
	/* and the next poll is one try again, which this time succeeds */
	assert_int_equal(poll_now(f, "c1", 0), 0);
	assert_string_equal(f->next, "c2");
	assert_int_equal(fx_requests_to(&f->srv, POLL), 2);

	fx_script(&f->srv, RESULT, (struct fx_reply){ .status = 503, .body = "" });
	int acked[3];
	assert_int_equal(post(f, acked), CMB_ETHROTTLED);
	assert_int_equal(fx_requests_to(&f->srv, RESULT), 1);
	assert_int_equal(acked[0], 0);
}

/* The relay has no cycles: a budget spent by one request is whole again for the next. */
static void spent_budget_renewed(void **state)
{
	struct fx *f = *state;
	f->cfg.sync_retry_budget = 1;
	open_channel(f);
	for (int i = 0; i < 3; i++)
		fx_script(&f->srv, POLL, (struct fx_reply){ .status = 502, .body = "" });
	poll_reply(f, "c2", NOTE1);
	assert_int_equal(poll_now(f, "c1", 0), CMB_ENETWORK);
	fx_assert_message("polling the notification channel: tenant answered HTTP 502 for "
			  "https://127.0.0.1:%u" POLL "?cursor=c1&wait=0: empty body (not retried: the cycle's retry "
			  "budget of 1 is spent)", f->srv.port);
	assert_int_equal(fx_requests_to(&f->srv, POLL), 2);
	assert_int_equal(poll_now(f, "c1", 0), 0);
	assert_string_equal(f->next, "c2");
	assert_int_equal(fx_requests_to(&f->srv, POLL), 4);
	fx_assert_all_served(&f->srv);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(poll_with_cursor_and_wait), T(replays_passed_on), T(reply_without_cursor_or_notifications),
		T(results_matched_by_id), T(unknown_is_acknowledged), T(server_error_retried), T(no_budget_one_try),
		T(spent_budget_renewed),
	};
	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
