/*
 * test_actions.c - the action -> site operation table, exactly
 * (docs/actions.md documents the same rows with their sources).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mapping/actions.h"

static void table_exact(void **state)
{
	(void)state;
	static const struct {
		const char *action;
		enum cmb_action_kind kind;
		int type, destructive;
	} want[] = {
		{ "refreshMachinePolicy", CMB_ACTION_NOTIFY, 8, 0 },
		{ "syncDevice", CMB_ACTION_NOTIFY, 8, 0 },
		{ "refreshUserPolicy", CMB_ACTION_NOTIFY, 9, 0 },
		{ "appEvaluation", CMB_ACTION_NOTIFY, 13, 0 },
		{ "wakeUpClient", CMB_ACTION_NOTIFY, 150, 0 },
		{ "fullScan", CMB_ACTION_NOTIFY, 1, 0 },
		{ "quickScan", CMB_ACTION_NOTIFY, 2, 0 },
		{ "windowsDefenderUpdateSignatures", CMB_ACTION_NOTIFY, 3, 0 },
		{ "retire", CMB_ACTION_BLOCK, 0, 1 },
		{ "wipe", CMB_ACTION_UNSUPPORTED, 0, 1 },
	};
	size_t n;
	const struct cmb_action_map *t = cmb_map_actions(&n);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(t[i].action, want[i].action);
		assert_int_equal(t[i].kind, want[i].kind);
		assert_int_equal(t[i].client_type, want[i].type);
		assert_int_equal(t[i].destructive, want[i].destructive);
		assert_ptr_equal(cmb_map_action(want[i].action), &t[i]);
		/* Refusals carry a reason an admin can read. */
		if (t[i].kind != CMB_ACTION_NOTIFY)
			assert_non_null(t[i].reason);
	}
	assert_non_null(strstr(cmb_map_action("wipe")->reason, "Intune"));
	assert_non_null(strstr(cmb_map_action("retire")->reason, "allow_destructive"));
}

static void unknown_actions(void **state)
{
	(void)state;
	assert_null(cmb_map_action("rebootNow"));
	assert_null(cmb_map_action("RefreshMachinePolicy")); /* Graph spelling, case-sensitive */
	assert_null(cmb_map_action(""));
	assert_null(cmb_map_action(NULL));
	assert_non_null(strstr(cmb_map_action_unknown_reason(), "unknown action"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_exact),
		cmocka_unit_test(unknown_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
