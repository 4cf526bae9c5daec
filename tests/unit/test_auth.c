/*
 * test_auth.c - the token cache renews only when it must: a token that
 * lives less than the 5-minute renewal margin is used for half its life
 * instead of being fetched again for every request, and a refused token
 * is renewed once, not again while its renewal is refused too (until a
 * server accepts one). Against canned_server (canned_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/transport/auth.h"
#include "connector/transport/http.h"

#include "canned_fixture.h"

static struct canned_fx srv;

static int group_setup(void **state)
{
	(void)state;
	cmb_log_set_level(CMB_LOG_ERROR);
	if (canned_init(&srv) < 0)
		return -1;
	static const char t240[] = "{\"token_type\":\"Bearer\",\"expires_in\":240,\"access_token\":\"tok-240\"}";
	static const char t2[] = "{\"token_type\":\"Bearer\",\"expires_in\":2,\"access_token\":\"tok-2\"}";
	char *f240 = canned_file(&srv, "t240", t240, sizeof(t240) - 1, 0644);
	char *f2 = canned_file(&srv, "t2", t2, sizeof(t2) - 1, 0644);
	char *nf = canned_file(&srv, "nf", "{}", 2, 0644);
	const char *args[] = { "--body", nf, "--status", "404", "--route", "POST /t240", f240, "200",
			       "--route", "POST /t2", f2, "200", NULL };
	int rc = canned_start(&srv, args);
	free(f240);
	free(f2);
	free(nf);
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	canned_fini(&srv);
	return 0;
}

struct client {
	struct cmb_http *http;
	struct cmb_auth *auth;
	char *url;
};

static void client_open(struct client *c, const char *path)
{
	struct cmb_http_opts ho = { .name = "tenant", .ca_file = srv.cert };
	assert_int_equal(cmb_http_new(&c->http, &ho), 0);
	c->url = xasprintf("https://127.0.0.1:%d/%s", srv.port, path);
	struct cmb_auth_opts o = { .token_url = c->url, .client_id = "c1", .client_secret_file = srv.secret,
				   .scope = "s/.default" };
	assert_int_equal(cmb_auth_new(&c->auth, c->http, &o), 0);
}

static void client_close(struct client *c)
{
	cmb_auth_free(c->auth);
	cmb_http_free(c->http);
	free(c->url);
}

static const char *token(struct client *c)
{
	const char *t = NULL;
	assert_int_equal(cmb_auth_token(c->auth, &t), 0);
	return t;
}

static void short_lifetime_is_reused(void **state)
{
	(void)state;
	struct client c;
	client_open(&c, "t240");
	/* 240 s is less than the 300 s margin: still one token for many requests. */
	for (int i = 0; i < 20; i++)
		assert_string_equal(token(&c), "tok-240");
	assert_int_equal(cmb_auth_requests(c.auth), 1);
	client_close(&c);

	/* A 2 s token is renewed after half its life, not before. */
	client_open(&c, "t2");
	token(&c);
	token(&c);
	assert_int_equal(cmb_auth_requests(c.auth), 1);
	usleep(1200 * 1000);
	token(&c);
	assert_int_equal(cmb_auth_requests(c.auth), 2);
	client_close(&c);
}

static void refusal_renews_once(void **state)
{
	(void)state;
	struct client c;
	client_open(&c, "t240");
	token(&c);
	/* A token that had been fine (or is the first) is renewed after a 401... */
	assert_int_equal(cmb_auth_refused(c.auth), 1);
	assert_int_equal(cmb_auth_remaining(c.auth), 0);
	token(&c);
	assert_int_equal(cmb_auth_requests(c.auth), 2);
	/* ...its renewal, refused before any server took it, is not: the refusal is final. */
	assert_int_equal(cmb_auth_refused(c.auth), 0);
	assert_int_equal(cmb_auth_refused(c.auth), 0);
	token(&c);
	assert_int_equal(cmb_auth_requests(c.auth), 2);
	/* Once a server accepted it, a later refusal (a revocation) renews again. */
	cmb_auth_accepted(c.auth);
	assert_int_equal(cmb_auth_refused(c.auth), 1);
	token(&c);
	assert_int_equal(cmb_auth_requests(c.auth), 3);
	client_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(short_lifetime_is_reused),
		cmocka_unit_test(refusal_renews_once),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
