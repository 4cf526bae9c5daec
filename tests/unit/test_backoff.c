/*
 * test_backoff.c - the one backoff formula of periodic tasks: doubling
 * from the base, capped, nothing before a failure, and the relay's
 * parameters giving the series it has always waited.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/base/backoff.h"
#include "connector/engine/relay.h"

static void test_doubling_and_cap(void **state)
{
	(void)state;
	assert_true(cmb_backoff_delay(0, 0.5, 30) == 0);
	assert_true(cmb_backoff_delay(-3, 0.5, 30) == 0);
	assert_true(cmb_backoff_delay(1, 450, 3600) == 900);
	assert_true(cmb_backoff_delay(2, 450, 3600) == 1800);
	assert_true(cmb_backoff_delay(4, 450, 3600) == 3600);
	assert_true(cmb_backoff_delay(1000000, 450, 3600) == 3600); /* no overflow on a long outage */
}

static void test_relay_series(void **state)
{
	(void)state;
	static const double want[] = { 0, 1, 2, 4, 8, 16, 30, 30, 30 };
	for (int n = 0; n < (int)(sizeof(want) / sizeof(want[0])); n++)
		assert_true(cmb_backoff_delay(n, CMB_RELAY_BACKOFF_BASE_S, CMB_RELAY_BACKOFF_MAX_S) == want[n]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubling_and_cap),
		cmocka_unit_test(test_relay_series),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
