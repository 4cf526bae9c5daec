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
		int type;
		const char *operation;
		int destructive;
	} want[] = {
		{ "refreshMachinePolicy", CMB_ACTION_NOTIFY, 8, "DownloadComputerPolicy", 0 },
		{ "syncDevice", CMB_ACTION_NOTIFY, 8, "DownloadComputerPolicy", 0 },
		{ "refreshUserPolicy", CMB_ACTION_NOTIFY, 9, "DownloadUserPolicy", 0 },
		{ "appEvaluation", CMB_ACTION_NOTIFY, 13, "EvaluateApplicationDeployments", 0 },
		{ "wakeUpClient", CMB_ACTION_NOTIFY, 150, "WakeUp", 0 },
		{ "fullScan", CMB_ACTION_NOTIFY, 1, "EndpointProtectionFullScan", 0 },
		{ "quickScan", CMB_ACTION_NOTIFY, 2, "EndpointProtectionQuickScan", 0 },
		{ "windowsDefenderUpdateSignatures", CMB_ACTION_NOTIFY, 3, "EndpointProtectionDownloadDefinition", 0 },
		{ "retire", CMB_ACTION_BLOCK, 0, "BlockClients", 1 },
		{ "wipe", CMB_ACTION_UNSUPPORTED, 0, NULL, 1 },
	};
	size_t n;
	const struct cmb_action_map *t = cmb_map_actions(&n);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(t[i].action, want[i].action);
		assert_int_equal(t[i].kind, want[i].kind);
		assert_int_equal(t[i].client_type, want[i].type);
		assert_int_equal(t[i].destructive, want[i].destructive);
		if (want[i].operation)
			assert_string_equal(t[i].operation, want[i].operation);
		else
			assert_null(t[i].operation);
		if (t[i].kind == CMB_ACTION_NOTIFY)
			assert_string_equal(cmb_map_operation_name(t[i].client_type), want[i].operation);
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
	/* A Type the table does not use is named by its number. */
	assert_string_equal(cmb_map_operation_name(22), "Type 22");
	assert_string_equal(cmb_map_operation_name(0), "Type 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_exact),
		cmocka_unit_test(unknown_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
