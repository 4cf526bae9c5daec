/*
 * test_request.c - the one request-with-retry and the one status-to-error
 * mapping (connector/transport/request.c, docs/retry.md): every status the
 * table names with its code and whole message, what is tried again and how
 * often (against the fixture's HTTPS server), a 401 that renews the
 * credential once off the budget, each give-up message, and the prepare and
 * reset hooks called before every attempt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/transport/http.h"
#include "connector/transport/request.h"
#include "connector/transport/retry.h"
#include "tests/unit/fixture.h"

/* Quick backoff; Retry-After as the server says (the scripts say 0). */
static const struct cmb_retry_policy fast = { .max_attempts = 4, .base_delay_s = 0.01, .max_delay_s = 1, .budget = 20 };

struct fx {
	char dir[FX_DIR_SIZE];
	struct fx_server srv;
	struct cmb_http *h;
	struct cmb_retry_budget budget;
	struct cmb_endpoint ep;
	struct cmb_http_response resp;
	struct cmb_request_counters ctr;
	char *url;
	/* the credential: "Bearer t<n>", renewed when refused() says so */
	int token, renew, refusals;
	char bearer[16];
};

static int authorize(void *ctx, const char **header, const char **bearer)
{
	struct fx *f = ctx;
	(void)header;
	snprintf(f->bearer, sizeof(f->bearer), "t%d", f->token);
	*bearer = f->bearer;
	return 0;
}

static int refused(void *ctx)
{
	struct fx *f = ctx;
	f->refusals++;
	if (!f->renew)
		return 0;
	f->token++;
	return 1;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "req") < 0)
		return -1;
	fx_server_start(&f->srv, &fx_group_pki);
	char *ca = fx_path(f->dir, "ca.pem");
	fx_write_str(ca, fx_group_pki.ca_pem, 0644);
	const struct cmb_http_opts o = { .name = "site", .ca_file = ca, .connect_timeout_s = 5 };
	assert_int_equal(cmb_http_new(&f->h, &o), 0);
	free(ca);
	cmb_retry_budget_init(&f->budget, &fast);
	f->ep = (struct cmb_endpoint){ .side = "site", .http = f->h, .budget = &f->budget, .authorize = authorize,
				       .refused = refused, .auth_ctx = f, .principal = "CONTOSO\\svc", .scheme = "Bearer" };
	f->token = 1;
	f->renew = 1;
	f->url = fx_server_url(&f->srv, "/AdminService/wmi/SMS_Site");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_http_response_clear(&f->resp);
	cmb_http_free(f->h);
	fx_server_stop(&f->srv);
	fx_rmtree(f->dir);
	free(f->url);
	free(f);
	return 0;
}

#define PATH "/AdminService/wmi/SMS_Site"

static void script(struct fx *f, unsigned status, const char *body)
{
	fx_script(&f->srv, PATH, (struct fx_reply){ .status = status, .body = body, .retry_after = "0" });
}

static int run(struct fx *f, struct cmb_request rq)
{
	rq.url = f->url;
	if (!rq.what)
		rq.what = "SMS_Site page 1";
	cmb_http_response_clear(&f->resp);
	cmb_error_clear();
	return cmb_request(&f->ep, &rq, &f->resp, &f->ctr);
}

/* ---- the status table ---------------------------------------------------- */

/* The code and message cmb_request_status_error gives status with body (JSON unless ctype says). */
static int status_error(const struct cmb_endpoint *ep, long status, const char *body, const char *ctype,
			const char *retry_after, const char *resource)
{
	struct cmb_http_response resp = { .status = status, .content_type = (char *)(ctype ? ctype : "application/json"),
					  .retry_after = (char *)retry_after };
	cmb_buf_init(&resp.body, 1 << 16);
	cmb_buf_add(&resp.body, body, strlen(body));
	const struct cmb_request rq = { .url = "https://cm01.example/AdminService/wmi/SMS_R_System", .what = "SMS_R_System page 3",
					.resource = resource };
	int rc = cmb_request_status_error(ep, &rq, &resp);
	cmb_buf_free(&resp.body);
	return rc;
}

#define URL "https://cm01.example/AdminService/wmi/SMS_R_System"
#define ODATA(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

static void status_table(void **state)
{
	(void)state;
	const struct cmb_endpoint ntlm = { .side = "site", .principal = "CONTOSO\\svc", .scheme = "NTLM" };
	const struct cmb_endpoint named = { .side = "site", .principal = "CONTOSO\\svc" };
	const struct cmb_endpoint anon = { .side = "site", .no_credentials = "[site] auth = none" };
	const struct cmb_endpoint bare = { .side = "site" };
	const struct cmb_endpoint token = { .side = "token endpoint", .principal = "client 1111", .credential_endpoint = 1 };

	assert_int_equal(status_error(&ntlm, 401, ODATA("Unauthorized", "Access is denied."), NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site refused the credentials of CONTOSO\\svc (NTLM) at " URL
			  " (HTTP 401: Unauthorized: Access is denied.)");
	assert_int_equal(status_error(&named, 401, "", NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site refused the credentials of CONTOSO\\svc at " URL
			  " (HTTP 401: empty body)");
	assert_int_equal(status_error(&anon, 401, "", NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site at " URL " requires authentication but [site] auth = none "
			  "(HTTP 401: empty body)");
	assert_int_equal(status_error(&bare, 401, "", NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site at " URL " requires authentication but no credentials are "
			  "configured (HTTP 401: empty body)");

	/* 400: refused credentials at a token endpoint (OAuth: first line of the description), final elsewhere. */
	assert_int_equal(status_error(&token, 400,
				      "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
				      "client secret provided.\\r\\nTrace ID: 1\"}", NULL, NULL, NULL),
			 CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: token endpoint refused the credentials of client 1111 at " URL
			  " (HTTP 400: invalid_client: AADSTS7000215: Invalid client secret provided.)");
	assert_int_equal(status_error(&named, 400, ODATA("BadRequest", "no such property"), NULL, NULL, NULL), CMB_EHTTP);
	fx_assert_message("SMS_R_System page 3: site answered HTTP 400 for " URL ": BadRequest: no such property");

	assert_int_equal(status_error(&named, 403, "{\"Message\":\"Forbidden by policy\"}", NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site denied CONTOSO\\svc access to " URL " (HTTP 403: Forbidden by policy)");
	assert_int_equal(status_error(&bare, 403, "", NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site denied anonymous access to " URL " (HTTP 403: empty body)");

	/* 404: the AdminService's WMI refusal is the account's; anything else is not found. */
	assert_int_equal(status_error(&named, 404, ODATA("404", "Access denied  WMI QUERY: "), NULL, NULL, NULL), CMB_EAUTH);
	fx_assert_message("SMS_R_System page 3: site denied CONTOSO\\svc access to " URL
			  " (HTTP 404: 404: Access denied  WMI QUERY: )");
	assert_int_equal(status_error(&named, 404, ODATA("404", "No route"), NULL, NULL, "class SMS_R_System"),
			 CMB_ENOTFOUND);
	fx_assert_message("SMS_R_System page 3: class SMS_R_System not found at " URL " (HTTP 404: 404: No route)");
	assert_int_equal(status_error(&named, 404, "", NULL, NULL, NULL), CMB_ENOTFOUND);
	fx_assert_message("SMS_R_System page 3: resource not found at " URL " (HTTP 404: empty body)");

	/* 429 and 503 wait: what Retry-After said is in the message. */
	assert_int_equal(status_error(&named, 429, ODATA("TooManyRequests", "slow down"), NULL, "7", NULL), CMB_ETHROTTLED);
	fx_assert_message("SMS_R_System page 3: site is busy (HTTP 429, Retry-After 7): TooManyRequests: slow down");
	assert_int_equal(status_error(&named, 503, "", NULL, NULL, NULL), CMB_ETHROTTLED);
	fx_assert_message("SMS_R_System page 3: site is busy (HTTP 503): empty body");

	/* 408, 500, 502, 504: transient. */
	static const long transient[] = { 408, 500, 502, 504 };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(status_error(&named, transient[i], "<html>Bad Gateway</html>", "text/html", NULL, NULL),
				 CMB_ENETWORK);
		fx_assert_message("SMS_R_System page 3: site answered HTTP %ld for " URL ": not an error body cmbridge "
				  "knows (Content-Type 'text/html'): '<html>Bad Gateway</html>'", transient[i]);
	}
	/* Everything else is final. */
	static const long final[] = { 405, 409, 413, 418, 501 };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(status_error(&named, final[i], ODATA("X", "no"), NULL, NULL, NULL), CMB_EHTTP);
		fx_assert_message("SMS_R_System page 3: site answered HTTP %ld for " URL ": X: no", final[i]);
	}
	/* A redirect is final too, and says that it was not followed (docs/security.md). */
	assert_int_equal(status_error(&named, 301, ODATA("X", "no"), NULL, NULL, NULL), CMB_EHTTP);
	fx_assert_message("SMS_R_System page 3: site answered HTTP 301: a redirect to (no Location), not followed "
			  "(cmbridge sends requests and credentials only to the configured URL; point the configuration "
			  "at the new address if it moved) for " URL);
}

/* ---- what is tried again --------------------------------------------------- */

static void once_not_retried_on_network_error(void **state)
{
	struct fx *f = *state;
	fx_script(&f->srv, PATH, (struct fx_reply){ .status = 201, .cut = FX_DROP });
	script(f, 201, "{}");
	const struct cmb_request rq = { .method = "POST", .body = "{}", .body_len = 2, .retry = CMB_REQUEST_ONCE };
	assert_int_equal(run(f, rq), CMB_ENETWORK);
	fx_assert_message("SMS_Site page 1: the connection to the site at %s closed before the reply was complete: "
			  "Empty reply from server (not retried: the request is not safe to send twice)", f->url);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 1);
	assert_int_equal(f->budget.used, 0);
	assert_int_equal(f->resp.status, 0);

	/* A 500 is no better: the server may have done it. */
	fx_server_reset(&f->srv);
	script(f, 500, ODATA("ProviderFault", "WMI provider failed"));
	script(f, 201, "{}");
	assert_int_equal(run(f, rq), CMB_ENETWORK);
	fx_assert_message("SMS_Site page 1: site answered HTTP 500 for %s: ProviderFault: WMI provider failed "
			  "(not retried: the request is not safe to send twice)", f->url);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 1);
	assert_int_equal(f->resp.status, 500);
}

static void once_retried_on_503(void **state)
{
	struct fx *f = *state;
	script(f, 503, "");
	script(f, 429, "");
	script(f, 201, "{\"OperationID\":7}");
	const struct cmb_request rq = { .method = "POST", .body = "{}", .body_len = 2, .retry = CMB_REQUEST_ONCE };
	assert_int_equal(run(f, rq), 0);
	assert_int_equal(f->resp.status, 201);
	assert_string_equal(f->resp.body.data, "{\"OperationID\":7}");
	assert_int_equal(fx_requests_to(&f->srv, PATH), 3);
	assert_int_equal(f->budget.used, 2);
	assert_int_equal(f->ctr.requests, 3);
	fx_assert_all_served(&f->srv);
}

static void idempotent_retried(void **state)
{
	struct fx *f = *state;
	fx_script(&f->srv, PATH, (struct fx_reply){ .cut = FX_DROP });
	script(f, 502, "");
	script(f, 200, "{\"value\":[]}");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), 0);
	assert_int_equal(f->resp.status, 200);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 3);
	assert_int_equal(f->budget.used, 2);
}

/* A 401 renews the credential and tries once more, off the budget and off max_attempts. */
static void unauthorized_renews_once(void **state)
{
	struct fx *f = *state;
	struct cmb_retry_policy two = fast;
	two.max_attempts = 2;
	cmb_retry_budget_init(&f->budget, &two);
	script(f, 401, ODATA("InvalidAuthenticationToken", "expired"));
	script(f, 500, "");
	script(f, 200, "{}");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), 0);
	assert_int_equal(f->srv.n_req, 3);
	assert_string_equal(f->srv.req[0].authorization, "Bearer t1");
	assert_string_equal(f->srv.req[1].authorization, "Bearer t2");
	assert_string_equal(f->srv.req[2].authorization, "Bearer t2");
	assert_int_equal(f->refusals, 1);
	assert_int_equal(f->ctr.renewals, 1);
	assert_int_equal(f->ctr.requests, 3);
	assert_int_equal(f->budget.used, 1); /* the 500's retry, not the renewal */

	/* Once per request: a second 401 in a row is final. */
	script(f, 401, ODATA("InvalidAuthenticationToken", "expired"));
	script(f, 401, ODATA("InvalidAuthenticationToken", "still expired"));
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_EAUTH);
	fx_assert_message("SMS_Site page 1: site refused the credentials of CONTOSO\\svc (Bearer) at %s "
			  "(HTTP 401: InvalidAuthenticationToken: still expired)", f->url);
	assert_int_equal(f->srv.n_req, 5);
	assert_string_equal(f->srv.req[4].authorization, "Bearer t3");
	assert_int_equal(f->ctr.renewals, 2);

	/* A credential that cannot be renewed: the first 401 is final. */
	f->renew = 0;
	script(f, 401, ODATA("InvalidAuthenticationToken", "no"));
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_EAUTH);
	assert_int_equal(f->srv.n_req, 6);
	assert_int_equal(f->ctr.renewals, 2);
	fx_assert_all_served(&f->srv);
}

/* The process's totals by side (the metrics): exchanges, retries, 429s, renewals, tokens. */
static void totals_by_side(void **state)
{
	struct fx *f = *state;
	struct cmb_request_totals t0[CMB_REQUEST_SIDES], t1[CMB_REQUEST_SIDES];
	cmb_request_totals(t0);
	script(f, 429, "");
	script(f, 401, ODATA("InvalidAuthenticationToken", "expired"));
	script(f, 503, "");
	script(f, 200, "{}");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), 0);
	cmb_request_totals(t1);
	const struct cmb_request_totals *a = &t0[CMB_REQUEST_SIDE_SITE], *b = &t1[CMB_REQUEST_SIDE_SITE];
	assert_int_equal(b->requests - a->requests, 4);
	assert_int_equal(b->retries - a->retries, 2);     /* after the 429 and the 503 */
	assert_int_equal(b->throttled - a->throttled, 1); /* 429 only */
	assert_int_equal(b->renewals - a->renewals, 1);
	assert_int_equal(b->tokens - a->tokens, 0);
	assert_int_equal(t1[CMB_REQUEST_SIDE_TENANT].requests, t0[CMB_REQUEST_SIDE_TENANT].requests);

	/* A token endpoint counts as "token", whatever its side says; its 2xx answers are tokens. */
	f->ep.credential_endpoint = 1;
	f->ep.side = "token endpoint";
	script(f, 200, "{}");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), 0);
	cmb_request_totals(t0);
	assert_int_equal(t0[CMB_REQUEST_SIDE_TOKEN].tokens - t1[CMB_REQUEST_SIDE_TOKEN].tokens, 1);
	assert_int_equal(t0[CMB_REQUEST_SIDE_TOKEN].requests - t1[CMB_REQUEST_SIDE_TOKEN].requests, 1);
	assert_int_equal(t0[CMB_REQUEST_SIDE_SITE].requests, t1[CMB_REQUEST_SIDE_SITE].requests);
	assert_string_equal(cmb_request_side_name(CMB_REQUEST_SIDE_TOKEN), "token");
	assert_null(cmb_request_side_name(CMB_REQUEST_SIDES));
	fx_assert_all_served(&f->srv);
}

/* ---- giving up ------------------------------------------------------------ */

static void give_up_messages(void **state)
{
	struct fx *f = *state;
	/* max_attempts (4) reached */
	for (int i = 0; i < 4; i++)
		script(f, 504, "");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_ENETWORK);
	fx_assert_message("SMS_Site page 1: site answered HTTP 504 for %s: empty body (gave up after 4 attempts; "
			  "3 of 20 retries of this cycle spent)", f->url);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 4);

	/* the cycle's budget spent */
	struct cmb_retry_policy one = fast;
	one.budget = 1;
	cmb_retry_budget_init(&f->budget, &one);
	script(f, 503, "");
	script(f, 503, "");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_ETHROTTLED);
	fx_assert_message("SMS_Site page 1: site is busy (HTTP 503, Retry-After 0): empty body (not retried: the "
			  "cycle's retry budget of 1 is spent)");
	assert_int_equal(fx_requests_to(&f->srv, PATH), 6);

	/* retry_budget = 0: one try */
	struct cmb_retry_policy none = fast;
	none.budget = 0;
	cmb_retry_budget_init(&f->budget, &none);
	script(f, 500, "");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_ENETWORK);
	fx_assert_message("SMS_Site page 1: site answered HTTP 500 for %s: empty body (not retried: the cycle's "
			  "retry budget of 0 is spent)", f->url);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 7);

	/* a final error says nothing of retries */
	cmb_retry_budget_init(&f->budget, &fast);
	script(f, 400, ODATA("BadRequest", "no"));
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_EHTTP);
	fx_assert_message("SMS_Site page 1: site answered HTTP 400 for %s: BadRequest: no", f->url);
	assert_int_equal(f->budget.used, 0);

	/* an endpoint without a budget: one try, nothing added */
	f->ep.budget = NULL;
	script(f, 500, "");
	assert_int_equal(run(f, (struct cmb_request){ 0 }), CMB_ENETWORK);
	fx_assert_message("SMS_Site page 1: site answered HTTP 500 for %s: empty body", f->url);
	assert_int_equal(fx_requests_to(&f->srv, PATH), 9);
	fx_assert_all_served(&f->srv);
}

/* [sync] max_attempts, max_retry_wait and retry_budget make the policy; 0 means defaults, and no retries. */
static void policy_from_config(void **state)
{
	(void)state;
	struct cmb_config cfg = { .sync_max_attempts = 3, .sync_max_retry_wait = 9, .sync_retry_budget = 40 };
	struct cmb_retry_policy p;
	cmb_retry_policy_from_config(&p, &cfg);
	assert_int_equal(p.max_attempts, 3);
	assert_true(p.base_delay_s == 0.5);
	assert_true(p.max_delay_s == 9.0);
	assert_int_equal(p.budget, 40);
	memset(&cfg, 0, sizeof(cfg));
	cmb_retry_policy_from_config(&p, &cfg);
	assert_int_equal(p.max_attempts, 6);
	assert_true(p.max_delay_s == 60.0);
	assert_int_equal(p.budget, 0);
}

/* ---- the hooks -------------------------------------------------------------- */

struct prep {
	int calls;
	char body[32];
};

static int prepare(void *ctx, const void **body, size_t *len)
{
	struct prep *p = ctx;
	p->calls++;
	snprintf(p->body, sizeof(p->body), "assertion-%d", p->calls);
	*body = p->body;
	*len = strlen(p->body);
	return 0;
}

static int prepare_fails(void *ctx, const void **body, size_t *len)
{
	(void)ctx, (void)body, (void)len;
	return cmb_error_set(CMB_ECONFIG, "the key file cannot be read");
}

static void prepare_every_attempt(void **state)
{
	struct fx *f = *state;
	script(f, 500, "");
	script(f, 503, "");
	script(f, 200, "{}");
	struct prep p = { 0 };
	const struct cmb_request rq = { .method = "POST", .body = "ignored", .body_len = 7, .prepare = prepare,
					.prepare_ctx = &p };
	assert_int_equal(run(f, rq), 0);
	assert_int_equal(p.calls, 3);
	assert_int_equal(f->srv.n_req, 3);
	for (int i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof(want), "assertion-%d", i + 1);
		assert_string_equal(f->srv.req[i].body, want);
	}

	/* A body that cannot be made is the request's failure, sent nowhere. */
	const struct cmb_request bad = { .method = "POST", .prepare = prepare_fails };
	assert_int_equal(run(f, bad), CMB_ECONFIG);
	fx_assert_message("SMS_Site page 1: the key file cannot be read");
	assert_int_equal(f->srv.n_req, 3);
}

struct collect {
	int resets;
	struct cmb_buf got;
};

static void collect_reset(void *ctx)
{
	struct collect *c = ctx;
	c->resets++;
	cmb_buf_reset(&c->got);
}

static int collect_sink(void *ctx, long status, const char *content_type, const char *data, size_t len)
{
	struct collect *c = ctx;
	(void)status, (void)content_type;
	return cmb_buf_add(&c->got, data, len);
}

/* What an attempt cut short delivered is dropped before the next: the caller sees one whole page. */
static void reset_every_attempt(void **state)
{
	struct fx *f = *state;
	static const char page[] = "{\"value\":[{\"ResourceId\":16777220},{\"ResourceId\":16777221}]}";
	fx_script(&f->srv, PATH, (struct fx_reply){ .body = page, .cut = FX_CUT_LENGTH, .at = 30 });
	fx_script(&f->srv, PATH, (struct fx_reply){ .body = page, .cut = FX_CUT_CHUNKED, .at = 40 });
	script(f, 200, page);
	struct collect c = { 0 };
	cmb_buf_init(&c.got, 1 << 16);
	const struct cmb_request rq = { .sink = collect_sink, .sink_ctx = &c, .reset = collect_reset };
	assert_int_equal(run(f, rq), 0);
	assert_int_equal(c.resets, 3);
	assert_int_equal(c.got.len, strlen(page));
	assert_memory_equal(c.got.data, page, strlen(page));
	assert_int_equal(f->budget.used, 2);
	cmb_buf_free(&c.got);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_table),
		T(once_not_retried_on_network_error),
		T(once_retried_on_503),
		T(idempotent_retried),
		T(unauthorized_renews_once),
		T(totals_by_side),
		T(give_up_messages),
		cmocka_unit_test(policy_from_config),
		T(prepare_every_attempt),
		T(reset_every_attempt),
	};
	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
