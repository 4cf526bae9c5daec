/*
 * test_state_policies.c - the policy relay's tables (schema v5): policy
 * rows, their reasons, compliance and the journal of site writes, each
 * round trip, what survives a reopen, what a removal takes with it, and a
 * stored text this binary does not know.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/store/state.h"
#include "tests/unit/fixture.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define PID "1b3ba5c2-7c41-4f0c-9a8b-2d3e4f506172"

struct fx {
	char base[FX_DIR_SIZE];
	char *dir;
	struct cmb_state *st;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->base, "statepol") < 0)
		return -1;
	f->dir = fx_path(f->base, "state");
	if (cmb_state_open(&f->st, f->dir) < 0) {
		print_error("open: %s\n", cmb_error_last());
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	fx_rmtree(f->base);
	free(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	cmb_state_close(f->st);
	f->st = NULL;
	assert_int_equal(cmb_state_open(&f->st, f->dir), 0);
}

static void put(struct cmb_state *st, const char *id, enum cmb_policy_state state, const char *targets)
{
	struct cmb_policy_row p = {
		.id = (char *)id, .name = "AV pilot", .family = "endpointSecurityAntivirus", .state = state,
		.targets = (char *)targets, .updated = 1000,
	};
	snprintf(p.modified, sizeof(p.modified), "2026-01-02T03:04:05Z");
	assert_int_equal(cmb_state_policy_put(st, &p), 0);
}

static void test_enums(void **state)
{
	(void)state;
	assert_string_equal(cmb_state_policy_state_name(CMB_PSTATE_PENDING), "pending");
	assert_string_equal(cmb_state_policy_state_name(CMB_PSTATE_REMOVING), "removing");
	assert_string_equal(cmb_state_policy_state_name(CMB_PSTATE_IGNORED), "ignored");
	assert_null(cmb_state_policy_state_name((enum cmb_policy_state)CMB_PSTATE_COUNT));
	enum cmb_policy_state s;
	assert_int_equal(cmb_state_policy_state_parse("conflict", &s), 0);
	assert_int_equal(s, CMB_PSTATE_CONFLICT);
	assert_int_equal(cmb_state_policy_state_parse("Applied", &s), CMB_EINVAL);
	assert_string_equal(cmb_error_last(), "unknown policy state \"Applied\" (known: pending, applied, rejected, "
					      "conflict, removing, ignored)");
	enum cmb_pdevice_state d;
	assert_int_equal(cmb_state_pdevice_state_parse("notApplicable", &d), 0);
	assert_int_equal(d, CMB_PDEV_NOT_APPLICABLE);
	enum cmb_pjournal_outcome o;
	assert_int_equal(cmb_state_pjournal_outcome_parse(NULL, &o), 0);
	assert_int_equal(o, CMB_PJ_NONE);
	assert_null(cmb_state_pjournal_outcome_name(CMB_PJ_NONE));
	assert_string_equal(cmb_state_pjournal_op_name(CMB_PJ_DELETE), "delete");
}

static void test_policy_round_trip(void **state)
{
	struct fx *f = *state;
	put(f->st, PID, CMB_PSTATE_PENDING, "PS100012,PS100014");
	assert_int_equal(cmb_state_policy_set_body(f->st, PID, "{\"id\":1}", 8), 0);
	assert_int_equal(cmb_state_policy_set_document(f->st, PID, 3, HASH_A, "<x/>", 4, 17), 0);
	assert_int_equal(cmb_state_policy_set_site(f->st, PID, 2, HASH_B), 0);
	assert_int_equal(cmb_state_policy_set_state(f->st, PID, CMB_PSTATE_APPLIED, 2000), 0);
	assert_int_equal(cmb_state_policy_set_reported(f->st, PID, HASH_B), 0);
	reopen(f);
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), 0);
	assert_string_equal(p.id, PID);
	assert_string_equal(p.name, "AV pilot");
	assert_string_equal(p.family, "endpointSecurityAntivirus");
	assert_string_equal(p.modified, "2026-01-02T03:04:05Z");
	assert_int_equal(p.state, CMB_PSTATE_APPLIED);
	assert_string_equal(p.targets, "PS100012,PS100014");
	assert_int_equal(p.version, 3);
	assert_string_equal(p.hash, HASH_A);
	assert_int_equal(p.settings, 17);
	assert_int_equal(p.site_version, 2);
	assert_string_equal(p.site_hash, HASH_B);
	assert_string_equal(p.reported_hash, HASH_B);
	assert_int_equal(p.updated, 2000);
	cmb_state_policy_clear(&p);

	/* A new tenant side keeps the document and what the site holds. */
	put(f->st, PID, CMB_PSTATE_PENDING, "PS100012");
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), 0);
	assert_int_equal(p.state, CMB_PSTATE_PENDING);
	assert_string_equal(p.targets, "PS100012");
	assert_int_equal(p.version, 3);
	assert_int_equal(p.site_version, 2);
	cmb_state_policy_clear(&p);

	char *body, *doc;
	size_t bl, dl;
	assert_int_equal(cmb_state_policy_blobs(f->st, PID, &body, &bl, &doc, &dl), 0);
	assert_int_equal(bl, 8);
	assert_string_equal(body, "{\"id\":1}");
	assert_int_equal(dl, 4);
	assert_string_equal(doc, "<x/>");
	free(body);
	free(doc);

	assert_int_equal(cmb_state_policy_get(f->st, "nope", &p), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_policy_set_state(f->st, "nope", CMB_PSTATE_APPLIED, 1), CMB_ENOTFOUND);
	assert_int_equal(cmb_state_policy_set_site(f->st, "nope", 1, HASH_A), CMB_ENOTFOUND);
	struct cmb_policy_row empty = { .id = "" };
	assert_int_equal(cmb_state_policy_put(f->st, &empty), CMB_EINVAL);
}

static void test_list_and_count(void **state)
{
	struct fx *f = *state;
	put(f->st, "c", CMB_PSTATE_REJECTED, "");
	put(f->st, "a", CMB_PSTATE_APPLIED, "PS100012");
	put(f->st, "b", CMB_PSTATE_APPLIED, "PS100014");
	struct cmb_policy_row *list;
	size_t n;
	assert_int_equal(cmb_state_policies_list(f->st, &list, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].id, "a");
	assert_string_equal(list[1].id, "b");
	assert_string_equal(list[2].id, "c");
	cmb_state_policies_free(list, n);
	assert_int_equal(cmb_state_policies_count(f->st, CMB_PSTATE_APPLIED), 2);
	assert_int_equal(cmb_state_policies_count(f->st, CMB_PSTATE_REJECTED), 1);
	assert_int_equal(cmb_state_policies_count(f->st, CMB_PSTATE_CONFLICT), 0);
	/* Nothing stored: no body, no document. */
	char *body = (char *)1, *doc = (char *)1;
	size_t bl = 9, dl = 9;
	assert_int_equal(cmb_state_policy_blobs(f->st, "a", &body, &bl, &doc, &dl), 0);
	assert_null(body);
	assert_null(doc);
	assert_int_equal(bl + dl, 0);
}

static void test_reasons(void **state)
{
	struct fx *f = *state;
	put(f->st, PID, CMB_PSTATE_REJECTED, "");
	const char *r1[] = { "settings[3] (x): unknown setting", "target collection PS100099 is not attached", "z" };
	assert_int_equal(cmb_state_policy_set_reasons(f->st, PID, r1, 3), 0);
	char **got;
	size_t n;
	assert_int_equal(cmb_state_policy_reasons(f->st, PID, &got, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(got[i], r1[i]);
		free(got[i]);
	}
	free(got);
	/* Replaced, not appended. */
	const char *r2[] = { "only" };
	assert_int_equal(cmb_state_policy_set_reasons(f->st, PID, r2, 1), 0);
	assert_int_equal(cmb_state_policy_reasons(f->st, PID, &got, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(got[0], "only");
	free(got[0]);
	free(got);
	assert_int_equal(cmb_state_policy_set_reasons(f->st, PID, NULL, 0), 0);
	assert_int_equal(cmb_state_policy_reasons(f->st, PID, &got, &n), 0);
	assert_int_equal(n, 0);
	free(got);
}

static void test_compliance(void **state)
{
	struct fx *f = *state;
	put(f->st, PID, CMB_PSTATE_APPLIED, "PS100012,PS100014");
	struct cmb_pcoll_counts c[2] = {
		{ .collection_id = "PS100014", .targeted = 40, .compliant = 30, .non_compliant = 4, .error = 2,
		  .conflict = 1, .not_applicable = 1 },
		{ .collection_id = "PS100012", .targeted = 5, .compliant = 5 },
	};
	struct cmb_pdevice d[3] = {
		{ .resource_id = 16777230, .state = CMB_PDEV_NONCOMPLIANT, .failing = "a_x,b_y" },
		{ .resource_id = 16777220, .state = CMB_PDEV_COMPLIANT, .failing = "" },
		{ .resource_id = 16777221, .state = CMB_PDEV_PENDING, .failing = NULL },
	};
	assert_int_equal(cmb_state_policy_set_compliance(f->st, PID, 4, 5000, c, 2, d, 3), 0);
	reopen(f);
	struct cmb_pcoll_counts *gc;
	struct cmb_pdevice *gd;
	size_t nc, nd;
	assert_int_equal(cmb_state_policy_compliance(f->st, PID, &gc, &nc, &gd, &nd), 0);
	assert_int_equal(nc, 2);
	assert_string_equal(gc[0].collection_id, "PS100012");
	assert_int_equal(gc[0].compliant, 5);
	assert_string_equal(gc[1].collection_id, "PS100014");
	assert_int_equal(gc[1].targeted, 40);
	assert_int_equal(gc[1].non_compliant, 4);
	assert_int_equal(gc[1].error, 2);
	assert_int_equal(gc[1].conflict, 1);
	assert_int_equal(gc[1].not_applicable, 1);
	assert_int_equal(nd, 3);
	assert_int_equal(gd[0].resource_id, 16777220);
	assert_int_equal(gd[1].state, CMB_PDEV_PENDING);
	assert_string_equal(gd[1].failing, "");
	assert_int_equal(gd[2].state, CMB_PDEV_NONCOMPLIANT);
	assert_string_equal(gd[2].failing, "a_x,b_y");
	free(gc);
	cmb_state_pdevices_free(gd, nd);
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), 0);
	assert_int_equal(p.compliance_version, 4);
	assert_int_equal(p.compliance_at, 5000);
	cmb_state_policy_clear(&p);

	/* A new read replaces the old one whole. */
	assert_int_equal(cmb_state_policy_set_compliance(f->st, PID, 5, 6000, &c[1], 1, NULL, 0), 0);
	assert_int_equal(cmb_state_policy_compliance(f->st, PID, &gc, &nc, &gd, &nd), 0);
	assert_int_equal(nc, 1);
	assert_int_equal(nd, 0);
	free(gc);
	cmb_state_pdevices_free(gd, nd);
	assert_int_equal(cmb_state_policy_set_compliance(f->st, "nope", 1, 1, NULL, 0, NULL, 0), CMB_ENOTFOUND);
}

static void test_delete_cascades(void **state)
{
	struct fx *f = *state;
	put(f->st, PID, CMB_PSTATE_REMOVING, "PS100012");
	const char *r[] = { "x" };
	struct cmb_pcoll_counts c = { .collection_id = "PS100012", .targeted = 1 };
	struct cmb_pdevice d = { .resource_id = 1, .state = CMB_PDEV_ERROR, .failing = "a" };
	int64_t j;
	assert_int_equal(cmb_state_policy_set_reasons(f->st, PID, r, 1), 0);
	assert_int_equal(cmb_state_policy_set_compliance(f->st, PID, 1, 1, &c, 1, &d, 1), 0);
	assert_int_equal(cmb_state_pjournal_add(f->st, PID, CMB_PJ_DELETE, 1, HASH_A, 10, &j), 0);
	assert_int_equal(cmb_state_policy_delete(f->st, PID), 0);
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), CMB_ENOTFOUND);
	char **got;
	size_t n, nc, nd;
	assert_int_equal(cmb_state_policy_reasons(f->st, PID, &got, &n), 0);
	assert_int_equal(n, 0);
	free(got);
	struct cmb_pcoll_counts *gc;
	struct cmb_pdevice *gd;
	assert_int_equal(cmb_state_policy_compliance(f->st, PID, &gc, &nc, &gd, &nd), 0);
	assert_int_equal(nc + nd, 0);
	/* The journal row outlives the policy. */
	struct cmb_pjournal *open;
	assert_int_equal(cmb_state_pjournal_open(f->st, &open, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(open[0].policy_id, PID);
	cmb_state_pjournal_free(open, n);
}

static void test_journal(void **state)
{
	struct fx *f = *state;
	int64_t j1, j2, j3;
	assert_int_equal(cmb_state_pjournal_add(f->st, "a", CMB_PJ_PUT, 1, HASH_A, 100, &j1), 0);
	assert_int_equal(cmb_state_pjournal_add(f->st, "b", CMB_PJ_PUT, 4, HASH_B, 101, &j2), 0);
	assert_int_equal(cmb_state_pjournal_add(f->st, "a", CMB_PJ_DELETE, 1, HASH_A, 102, &j3), 0);
	assert_true(j1 < j2 && j2 < j3);
	assert_int_equal(cmb_state_pjournal_outcome(f->st, j1, CMB_PJ_DONE, NULL, 110), 0);
	assert_int_equal(cmb_state_pjournal_outcome(f->st, j2, CMB_PJ_CONFLICT, "stored at version 7", 111), 0);
	reopen(f);
	struct cmb_pjournal *list;
	size_t n;
	assert_int_equal(cmb_state_pjournal_open(f->st, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, j3);
	assert_int_equal(list[0].op, CMB_PJ_DELETE);
	assert_int_equal(list[0].outcome, CMB_PJ_NONE);
	assert_int_equal(list[0].completed, 0);
	cmb_state_pjournal_free(list, n);
	assert_int_equal(cmb_state_pjournal_recent(f->st, "a", 10, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, j3);
	assert_int_equal(list[1].id, j1);
	assert_int_equal(list[1].outcome, CMB_PJ_DONE);
	assert_int_equal(list[1].completed, 110);
	assert_string_equal(list[1].hash, HASH_A);
	cmb_state_pjournal_free(list, n);
	assert_int_equal(cmb_state_pjournal_recent(f->st, NULL, 2, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[1].id, j2);
	assert_int_equal(list[1].version, 4);
	assert_int_equal(list[1].outcome, CMB_PJ_CONFLICT);
	assert_string_equal(list[1].message, "stored at version 7");
	cmb_state_pjournal_free(list, n);
}

/* A state or outcome another program wrote is an error naming where, never read as another one. */
static void test_unknown_texts(void **state)
{
	struct fx *f = *state;
	put(f->st, PID, CMB_PSTATE_APPLIED, "");
	int64_t j;
	assert_int_equal(cmb_state_pjournal_add(f->st, PID, CMB_PJ_PUT, 1, HASH_A, 1, &j), 0);
	cmb_state_close(f->st);
	f->st = NULL;
	char *db = xasprintf("%s/%s", f->dir, CMB_STATE_FILE);
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "UPDATE policies SET state = 'enforced'; UPDATE policy_journal SET outcome = 'maybe'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	free(db);
	assert_int_equal(cmb_state_open(&f->st, f->dir), 0);
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), CMB_ESTATE);
	assert_non_null(strstr(cmb_error_last(), "table policies, key \"" PID "\": unknown state \"enforced\""));
	struct cmb_pjournal *list;
	size_t n;
	assert_int_equal(cmb_state_pjournal_recent(f->st, NULL, 5, &list, &n), CMB_ESTATE);
	assert_non_null(strstr(cmb_error_last(), "table policy_journal, key 1: unknown outcome \"maybe\""));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_enums),
		T(test_policy_round_trip),
		T(test_list_and_count),
		T(test_reasons),
		T(test_compliance),
		T(test_delete_cascades),
		T(test_journal),
		T(test_unknown_texts),
#undef T
	};
	(void)argc, (void)argv;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
