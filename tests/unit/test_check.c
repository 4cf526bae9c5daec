/*
 * test_check.c - `cmbridge check`'s judgement of a token's roles: the
 * application permissions a cycle needs, a broader one counting for the
 * narrower, each missing one named with what needs it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "connector/daemon/check.h"

static void all_there(void **state)
{
	(void)state;
	const char *roles[] = { "DeviceManagementConfiguration.Read.All", "Other.Read.All",
				"DeviceManagementManagedDevices.ReadWrite.All" };
	assert_null(cmb_check_missing_roles(roles, 3));
	/* ReadWrite of the configuration includes its Read. */
	const char *broader[] = { "DeviceManagementManagedDevices.ReadWrite.All",
				  "DeviceManagementConfiguration.ReadWrite.All" };
	assert_null(cmb_check_missing_roles(broader, 2));
}

static void missing_named(void **state)
{
	(void)state;
	/* Read.All of the devices does not do: uploads and remote actions write. */
	const char *read_only[] = { "DeviceManagementManagedDevices.Read.All", "DeviceManagementConfiguration.Read.All" };
	char *m = cmb_check_missing_roles(read_only, 2);
	assert_string_equal(m, "DeviceManagementManagedDevices.ReadWrite.All (device uploads, the warm standby's listing "
			       "and remote actions)");
	free(m);
	m = cmb_check_missing_roles(NULL, 0);
	assert_string_equal(m, "DeviceManagementManagedDevices.ReadWrite.All (device uploads, the warm standby's listing "
			       "and remote actions), DeviceManagementConfiguration.Read.All (endpoint security policies)");
	free(m);
	/* Another spelling of the same role is not worth a false failure. */
	const char *lower[] = { "devicemanagementmanageddevices.readwrite.all", "DeviceManagementConfiguration.Read.All" };
	assert_null(cmb_check_missing_roles(lower, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_there),
		cmocka_unit_test(missing_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
