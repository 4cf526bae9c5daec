/*
 * test_retry.c - retry decisions, Retry-After parsing, full-jitter backoff
 * bounds, the per-cycle budget and the token bucket's accounting.
 *
 * No assertion depends on how fast the machine is: waits are checked
 * through the counters (waited_s), never against a wall clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "connector/base/error.h"
#include "connector/transport/retry.h"
#include "connector/base/clock.h"
#include "connector/base/stop.h"

/* 2015-10-21 07:28:00 UTC, the date every form below names. */
#define T_2015 1445412480

static void parse_ok(const char *v, int64_t now, double want)
{
	double s = -42;
	if (cmb_retry_after_parse(v, now, &s) != 0)
		fail_msg("Retry-After \"%s\" was refused", v);
	if (fabs(s - want) > 1e-9)
		fail_msg("Retry-After \"%s\": %g s, expected %g s", v, s, want);
}

static void parse_bad(const char *v)
{
	double s = -42;
	if (cmb_retry_after_parse(v, 1000, &s) != -1)
		fail_msg("Retry-After \"%s\" was accepted as %g s", v, s);
	assert_true(s == -42); /* untouched */
}

static void retry_after_seconds(void **st)
{
	(void)st;
	parse_ok("120", 0, 120);
	parse_ok("1.5", 0, 1.5);
	parse_ok(" 3 ", 0, 3);
	parse_ok("0", 0, 0);
	parse_ok("0.2", 0, 0.2);
	parse_bad("-1");
	parse_bad("abc");
	parse_bad("");
	parse_bad("5s");
	parse_bad(NULL);
}

static void retry_after_dates(void **st)
{
	(void)st;
	/* IMF-fixdate (RFC 9110), 30 s ahead of now. */
	parse_ok("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 - 30, 30);
	/* In the past: wait nothing. */
	parse_ok("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 + 3600, 0);
	/* The two obsolete forms a recipient must accept. */
	parse_ok("Wednesday, 21-Oct-15 07:28:00 GMT", T_2015 - 90, 90);
	parse_ok("Wed Oct 21 07:28:00 2015", T_2015 - 7, 7);
}

static struct cmb_retry_budget mk(int attempts, double base, double max, long budget)
{
	struct cmb_retry_policy p = { .max_attempts = attempts, .base_delay_s = base, .max_delay_s = max,
				      .budget = budget };
	struct cmb_retry_budget b;
	cmb_retry_budget_init(&b, &p);
	return b;
}

static void final_codes_never_retry(void **st)
{
	(void)st;
	struct cmb_retry_budget b = mk(6, 0.5, 60, 200);
	const int finals[] = { CMB_EHTTP, CMB_EAUTH, CMB_EPROTO, CMB_ETLS, CMB_EINVAL, CMB_ETOOBIG, CMB_ECANCELED,
			       CMB_ERROR };
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		double w = -1;
		assert_int_equal(cmb_retry_next(&b, 0, finals[i], "1", &w), 0);
		assert_true(w == -1);
	}
	assert_int_equal(b.used, 0);
	assert_true(b.waited_s == 0);
	double w;
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ENETWORK, NULL, &w), 1);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, "0", &w), 1);
	assert_int_equal(b.used, 2);
}

static void max_attempts_and_budget(void **st)
{
	(void)st;
	double w;
	struct cmb_retry_budget b = mk(3, 0.01, 1, 200);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ENETWORK, NULL, &w), 1); /* try 2 */
	assert_int_equal(cmb_retry_next(&b, 1, CMB_ENETWORK, NULL, &w), 1); /* try 3 */
	assert_int_equal(cmb_retry_next(&b, 2, CMB_ENETWORK, NULL, &w), 0); /* no 4th try */
	assert_int_equal(b.used, 2);

	/* The budget is shared by every request of the cycle. */
	b = mk(6, 0.01, 1, 4);
	for (int req = 0; req < 4; req++)
		assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, NULL, &w), 1);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ENETWORK, NULL, &w), 0);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, "0", &w), 0);
	assert_int_equal(b.used, 4);

	/* A zero budget means no retries at all; a new cycle starts afresh. */
	b = mk(6, 0.01, 1, 0);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ENETWORK, NULL, &w), 0);
	struct cmb_retry_policy p = b.policy;
	p.budget = 1;
	cmb_retry_budget_init(&b, &p);
	assert_int_equal(b.used, 0);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ENETWORK, NULL, &w), 1);
}

static void jitter_within_cap(void **st)
{
	(void)st;
	struct cmb_retry_budget b = mk(40, 0.5, 10, 1000000);
	double sum = 0, waited = 0;
	for (int attempt = 0; attempt < 8; attempt++) {
		double cap = 0.5 * ldexp(1.0, attempt);
		if (cap > 10)
			cap = 10;
		double lo = INFINITY, hi = -INFINITY;
		for (int i = 0; i < 2000; i++) {
			double w = -1;
			assert_int_equal(cmb_retry_next(&b, attempt, CMB_ENETWORK, NULL, &w), 1);
			if (!(w >= 0 && w < cap))
				fail_msg("attempt %d: wait %g outside [0, %g)", attempt, w, cap);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
			sum += w;
			waited += w;
		}
		/* Full jitter spreads over the whole range, not a fixed delay. */
		assert_true(lo < cap * 0.1);
		assert_true(hi > cap * 0.9);
	}
	assert_true(fabs(b.waited_s - waited) < 1e-6);
	assert_int_equal(b.used, 8 * 2000);
	/* A throttled reply without Retry-After backs off the same way. */
	double w;
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, NULL, &w), 1);
	assert_true(w >= 0 && w < 0.5);
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, "not a date", &w), 1);
	assert_true(w >= 0 && w < 0.5);
	(void)sum;
}

static void retry_after_honoured_and_capped(void **st)
{
	(void)st;
	struct cmb_retry_budget b = mk(6, 0.5, 60, 200);
	double w = -1;
	assert_int_equal(cmb_retry_next(&b, 0, CMB_ETHROTTLED, "0.2", &w), 1);
	assert_true(fabs(w - 0.2) < 1e-9);
	assert_int_equal(cmb_retry_next(&b, 1, CMB_ETHROTTLED, "7", &w), 1);
	assert_true(fabs(w - 7) < 1e-9);
	assert_int_equal(cmb_retry_next(&b, 2, CMB_ETHROTTLED, "120", &w), 1);
	assert_true(fabs(w - 60) < 1e-9);
	assert_int_equal(cmb_retry_next(&b, 3, CMB_ETHROTTLED, "Fri, 01 Jan 2100 00:00:00 GMT", &w), 1);
	assert_true(fabs(w - 60) < 1e-9);
	assert_true(fabs(b.waited_s - (0.2 + 7 + 60 + 60)) < 1e-9);
	/* A network error's wait never exceeds the cap either. */
	struct cmb_retry_budget c = mk(100, 30, 45, 200);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(cmb_retry_next(&c, 5, CMB_ENETWORK, NULL, &w), 1);
		assert_true(w >= 0 && w < 45);
	}
}

static void token_bucket(void **st)
{
	(void)st;
	struct cmb_rate_limit rl;
	cmb_rate_limit_init(&rl, 50, 5);
	for (int i = 0; i < 5; i++)
		cmb_rate_limit_take(&rl);
	assert_true(rl.waited_s == 0); /* the burst goes at once */
	for (int i = 0; i < 10; i++)
		cmb_rate_limit_take(&rl);
	/*
	 * Ten more at 50/s: up to 0.2 s of waiting, less only by what refilled
	 * while the test ran (a stalled machine must not fail this).
	 */
	assert_true(rl.waited_s > 0);
	assert_true(rl.waited_s <= 10.0 / 50 + 1e-6);

	/* rate 0: no limit, never waits. */
	cmb_rate_limit_init(&rl, 0, 1);
	for (int i = 0; i < 1000; i++)
		cmb_rate_limit_take(&rl);
	assert_true(rl.waited_s == 0);
}

static void sleep_cancelled(void **st)
{
	(void)st;
	static volatile int stop;
	cmb_stop_set_flag(&stop);
	assert_int_equal(cmb_retry_sleep(0.01), 0);
	stop = 1;
	double t0 = cmb_now_mono();
	assert_int_equal(cmb_retry_sleep(30), CMB_ECANCELED);
	assert_true(cmb_now_mono() - t0 < 1.0);
	stop = 0;
	cmb_stop_set_flag(NULL);
	assert_int_equal(cmb_retry_sleep(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_after_seconds),
		cmocka_unit_test(retry_after_dates),
		cmocka_unit_test(final_codes_never_retry),
		cmocka_unit_test(max_attempts_and_budget),
		cmocka_unit_test(jitter_within_cap),
		cmocka_unit_test(retry_after_honoured_and_capped),
		cmocka_unit_test(token_bucket),
		cmocka_unit_test(sleep_cancelled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
