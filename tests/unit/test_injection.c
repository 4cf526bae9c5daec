/*
 * test_injection.c - strings from a server are data wherever they land:
 * SQL metacharacters and control characters in every field of an action
 * go into the state and come back byte for byte (the store binds, never
 * splices), and an OData $filter literal has its quotes doubled and is
 * percent-encoded whole into the URL, so no byte can end the literal or
 * the query early. No sockets: the cursor's URL is built without I/O.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/cursor.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/store/state.h"
#include "connector/store/state_actions.h"

static const char *const hostile[] = {
	"x'); DROP TABLE actions;--",
	"\" OR 1=1 --",
	"100%_LIKE\\",
	"ctrl\x01\x1b[2J\r\nnext line",
	"quote'' twice ''",
	"semi;colon/*comment*/",
	"caf\xc3\xa9 \xe2\x80\x94 utf-8",
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void state_keeps_strings_as_data(void **state)
{
	(void)state;
	char dir[] = "/tmp/cmbinj.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct cmb_state *st = NULL;
	assert_int_equal(cmb_state_open(&st, dir), 0);
	for (size_t i = 0; i < N_HOSTILE; i++) {
		char *id = xasprintf("%s#%zu", hostile[i], i);
		struct cmb_action a = {
			.id = id, .device_id = (char *)hostile[i], .key = (char *)hostile[i], .action = (char *)hostile[i],
			.requested_by = (char *)hostile[i], .requested = 1, .expires = 2, .received_ms = 3,
			.state = CMB_ACTION_STATE_RECEIVED, .updated = 4,
		};
		snprintf(a.delivery, sizeof(a.delivery), "deliveredToConnectorService");
		int added = 0;
		assert_int_equal(cmb_state_action_add(st, &a, &added), 0);
		assert_int_equal(added, 1);
		assert_int_equal(cmb_state_action_update(st, id, CMB_ACTION_STATE_FAILED, "deliveredToConnectorService", 7,
							 hostile[i], -1, -1, 5), 0);
		struct cmb_action back;
		memset(&back, 0, sizeof(back));
		assert_int_equal(cmb_state_action_get(st, id, &back), 0);
		assert_string_equal(back.id, id);
		assert_string_equal(back.device_id, hostile[i]);
		assert_string_equal(back.key, hostile[i]);
		assert_string_equal(back.action, hostile[i]);
		assert_string_equal(back.requested_by, hostile[i]);
		assert_string_equal(back.message, hostile[i]);
		cmb_state_action_clear(&back);
		free(id);
	}
	/* Every row is still there: nothing was executed, nothing dropped. */
	struct cmb_action *list = NULL;
	size_t n = 0;
	assert_int_equal(cmb_state_actions_by_state(st, CMB_ACTION_STATE_FAILED, 100, &list, &n), 0);
	assert_int_equal(n, N_HOSTILE);
	cmb_state_actions_free(list, n);
	cmb_state_close(st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void filter_literal_quoted(void **state)
{
	(void)state;
	char *f = cmb_as_filter_eq("CollectionID", "PS1' or 1 eq 1 or 'x");
	assert_string_equal(f, "CollectionID eq 'PS1'' or 1 eq 1 or ''x'");
	free(f);
	f = cmb_as_filter_eq("Name", "''");
	assert_string_equal(f, "Name eq ''''''");
	free(f);
}

static void filter_percent_encoded(void **state)
{
	(void)state;
	struct cmb_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.site_url = "https://cm01.corp.example/AdminService";
	struct cmb_as_conn *conn = NULL;
	assert_int_equal(cmb_as_conn_open(&conn, &cfg), 0);
	struct cmb_as_client cl;
	cmb_as_client_init(&cl, conn);
	char *filter = cmb_as_filter_eq("Name", "a'&$top=1#\x01%20+/?");
	struct cmb_as_cursor c;
	cmb_as_cursor_init(&c, &cl, &(struct cmb_as_cursor_opts){ .entity = "SMS_R_System", .filter = filter,
								    .page_size = 10 });
	assert_string_equal(c.url, "https://cm01.corp.example/AdminService/wmi/SMS_R_System?$filter=Name%20eq%20%27a"
				   "%27%27%26%24top%3D1%23%01%2520%2B%2F%3F%27&$top=10");
	cmb_as_cursor_clear(&c);
	free(filter);
	cmb_as_client_clear(&cl);
	cmb_as_conn_release(conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_keeps_strings_as_data),
		cmocka_unit_test(filter_literal_quoted),
		cmocka_unit_test(filter_percent_encoded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
