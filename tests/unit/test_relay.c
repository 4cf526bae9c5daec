/*
 * test_relay.c - the action relay against scripted site and tenant adapters
 * (no sockets): replays, authorization, batching, a crash between the
 * journaled intent and its outcome, and the outbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/engine/relay.h"
#include "connector/store/state.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"
#include "tests/unit/fixture.h"

#define MAX_N 64

/* ---- scripted tenant ---- */

struct note {
	char id[40], device_id[40], key[40], action[48], requested[32], expires[32];
};

struct result {
	char id[40], delivery[40], state[20];
	long code;
};

struct fake_tenant {
	struct note notes[MAX_N];
	int n_notes;
	int replay;            /* ignore the cursor: every poll returns everything again */
	int refuse_posts;      /* post_results fails (network) */
	int polls, posts;
	struct result results[MAX_N]; /* latest per id */
	int n_results;
};

static int t_poll(void *st, const char *cursor, long wait_s, cmb_tenant_notification_cb cb, void *ctx, char **next)
{
	(void)wait_s;
	struct fake_tenant *t = st;
	t->polls++;
	int from = t->replay ? 0 : atoi(cursor);
	for (int i = from; i < t->n_notes; i++) {
		struct note *n = &t->notes[i];
		struct cmb_tenant_notification nt = {
			.id = n->id, .device_id = n->device_id, .key = n->key, .action = n->action,
			.requested_by = "admin@contoso.onmicrosoft.com", .requested = n->requested, .expires = n->expires,
		};
		int rc = cb(ctx, &nt);
		if (rc < 0)
			return rc;
	}
	*next = xasprintf("%d", t->n_notes);
	return 0;
}

static int t_post(void *st, const struct cmb_tenant_action_result *r, size_t n, int *acked)
{
	struct fake_tenant *t = st;
	t->posts++;
	if (t->refuse_posts)
		return cmb_error_set(CMB_ENETWORK, "tenant unreachable (scripted)");
	for (size_t i = 0; i < n; i++) {
		int k = 0;
		while (k < t->n_results && strcmp(t->results[k].id, r[i].id) != 0)
			k++;
		if (k == t->n_results)
			t->n_results++;
		struct result *res = &t->results[k];
		snprintf(res->id, sizeof(res->id), "%s", r[i].id);
		snprintf(res->delivery, sizeof(res->delivery), "%s", r[i].delivery);
		snprintf(res->state, sizeof(res->state), "%s", r[i].state);
		res->code = r[i].error_code;
		acked[i] = 1;
	}
	return 0;
}

static const struct cmb_tenant_adapter fake_tenant = {
	.version = CMB_TENANT_ADAPTER_VERSION, .name = "fake", .poll_notifications = t_poll, .post_results = t_post,
};

/* ---- scripted site ---- */

struct op {
	int64_t id;
	int type;
	int64_t requested;
	char collection[16];
	uint32_t targets[MAX_N];
	size_t n;
	int offline_calls_before, offline_reads_before; /* the offline read's progress when it was initiated */
};

struct fake_site {
	struct op ops[MAX_N];
	int n_ops;
	int initiate_calls;
	int crash_after_record;  /* the next initiate records the operation, then fails as if the reply were lost */
	int fail_before_record;  /* the next initiate fails without recording */
	uint32_t offline[MAX_N];
	int n_offline;
	long completed_override; /* >= 0: report this many completed (the rest offline) */
	int hide_targets;        /* the site's listing has no TargetResourceIDs */
	int find_fails;          /* find_operations answers with this code (0: works) */
	int find_calls;
	uint32_t blocked[MAX_N];
	int n_blocked;
	/* The offline list's read, a page a call: */
	int offline_pages;       /* calls one read takes (0: one) */
	int offline_page_ms;     /* each call sleeps this long, as a page from a large site would take */
	int offline_fail_call;   /* this call (1-based, over all reads) fails; 0: none */
	int offline_fail_always; /* every call fails */
	int offline_calls;       /* calls in all */
	int offline_in_read;     /* calls of the read under way */
	int offline_reads;       /* reads completed */
	void (*on_offline_call)(struct fake_site *s, int call);
};

static int s_initiate(void *st, int type, const char *coll, const uint32_t *ids, size_t n, int64_t *opid)
{
	struct fake_site *s = st;
	s->initiate_calls++;
	if (s->fail_before_record) {
		s->fail_before_record = 0;
		return cmb_error_set(CMB_ENETWORK, "connection reset (scripted)");
	}
	struct op *o = &s->ops[s->n_ops++];
	o->id = 16777300 + s->n_ops;
	o->type = type;
	o->requested = cmb_now();
	snprintf(o->collection, sizeof(o->collection), "%s", coll);
	o->n = n;
	memcpy(o->targets, ids, n * sizeof(*ids));
	if (s->crash_after_record) {
		s->crash_after_record = 0;
		return cmb_error_set(CMB_ENETWORK, "reply lost (scripted crash)");
	}
	o->offline_calls_before = s->offline_calls;
	o->offline_reads_before = s->offline_reads;
	*opid = o->id;
	return 0;
}

/* The operations of the query's type and collection in its window, as a site lists them. */
static int s_find(void *st, const struct cmb_site_operation_query *q, struct cmb_site_operation **out,
		  size_t *n_out)
{
	struct fake_site *s = st;
	s->find_calls++;
	if (s->find_fails)
		return cmb_error_set(s->find_fails, "listing refused (scripted)");
	struct cmb_site_operation *ops = xcalloc(MAX_N, sizeof(*ops));
	size_t n = 0;
	for (int i = 0; i < s->n_ops; i++) {
		if (s->ops[i].type != q->type || strcmp(s->ops[i].collection, q->collection_id) != 0 ||
		    s->ops[i].requested < q->since || s->ops[i].requested > q->until)
			continue;
		ops[n].id = s->ops[i].id;
		ops[n].type = q->type;
		ops[n].requested = s->ops[i].requested;
		ops[n].collection_id = xstrdup(s->ops[i].collection);
		if (!s->hide_targets) {
			ops[n].has_targets = 1;
			ops[n].n_targets = s->ops[i].n;
			ops[n].targets = xcalloc(MAX_N, sizeof(uint32_t));
			/* The site may list targets in any order. */
			for (size_t k = 0; k < s->ops[i].n; k++)
				ops[n].targets[k] = s->ops[i].targets[s->ops[i].n - 1 - k];
		}
		n++;
	}
	*out = ops;
	*n_out = n;
	return 0;
}

/* An operation someone else (or an earlier run) created at the site, of type on SMS00001. */
static void site_has(struct fake_site *s, int type, uint32_t target)
{
	struct op *o = &s->ops[s->n_ops++];
	o->id = 16777300 + s->n_ops;
	o->type = type;
	o->requested = cmb_now();
	snprintf(o->collection, sizeof(o->collection), "SMS00001");
	o->targets[0] = target;
	o->n = 1;
}

static int is_offline(const struct fake_site *s, uint32_t rid)
{
	for (int i = 0; i < s->n_offline; i++)
		if (s->offline[i] == rid)
			return 1;
	return 0;
}

static int s_status(void *st, int64_t opid, struct cmb_site_operation_status *out)
{
	struct fake_site *s = st;
	for (int i = 0; i < s->n_ops; i++) {
		if (s->ops[i].id != opid)
			continue;
		long off = 0;
		for (size_t k = 0; k < s->ops[i].n; k++)
			off += is_offline(s, s->ops[i].targets[k]);
		*out = (struct cmb_site_operation_status){ .id = opid, .type = s->ops[i].type,
							   .total = (long)s->ops[i].n, .offline = off,
							   .completed = (long)s->ops[i].n - off };
		return 0;
	}
	return CMB_ENOTFOUND;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int s_offline(void *st, uint32_t **ids, size_t *n)
{
	struct fake_site *s = st;
	s->offline_calls++;
	if (s->on_offline_call)
		s->on_offline_call(s, s->offline_calls);
	if (s->offline_page_ms)
		usleep((useconds_t)s->offline_page_ms * 1000);
	if (s->offline_calls == s->offline_fail_call || s->offline_fail_always) {
		s->offline_in_read = 0;
		return cmb_error_set(CMB_EHTTP, "page refused (scripted)");
	}
	if (++s->offline_in_read < s->offline_pages)
		return 0;
	s->offline_in_read = 0;
	s->offline_reads++;
	*ids = NULL;
	*n = 0;
	if (s->n_offline) {
		*ids = xmalloc((size_t)s->n_offline * sizeof(**ids));
		memcpy(*ids, s->offline, (size_t)s->n_offline * sizeof(**ids));
		qsort(*ids, (size_t)s->n_offline, sizeof(**ids), cmp_u32);
		*n = (size_t)s->n_offline;
	}
	return 1;
}

static int s_block(void *st, const uint32_t *ids, size_t n)
{
	struct fake_site *s = st;
	for (size_t i = 0; i < n; i++)
		s->blocked[s->n_blocked++] = ids[i];
	return 0;
}

static const struct cmb_site_adapter fake_site = {
	.version = CMB_SITE_ADAPTER_VERSION, .name = "fake", .initiate_operation = s_initiate,
	.find_operations = s_find, .operation_status = s_status, .offline_clients = s_offline, .block_clients = s_block,
};

/* ---- fixture ---- */

struct fx {
	char dir[FX_DIR_SIZE];
	struct cmb_config cfg;
	struct cmb_state *st;
	struct fake_site site;
	struct fake_tenant tenant;
	struct cmb_relay_stats stats;
};

static char allowed_default[] = "refreshMachinePolicy,refreshUserPolicy,appEvaluation,wakeUpClient,fullScan,"
				"quickScan,windowsDefenderUpdateSignatures,syncDevice";

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "relay") < 0)
		return -1;
	f->cfg.site_code = "PS1";
	f->cfg.state_dir = f->dir;
	f->cfg.actions_allowed = allowed_default;
	f->cfg.actions_ttl = 86400;
	f->cfg.actions_batch_window = 0;
	f->cfg.actions_poll_wait = 0;
	f->cfg.actions_status_poll_interval = 0;
	f->cfg.actions_status_timeout = 900;
	f->cfg.actions_target_collection = "SMS00001";
	f->site.completed_override = -1;
	cmb_log_set_level(CMB_LOG_ERROR);
	if (cmb_state_open(&f->st, f->dir) < 0)
		return -1;
	/* Devices attached by this connector: 16777220..16777229. */
	char hash[65];
	memset(hash, 'a', 64);
	hash[64] = '\0';
	for (int i = 0; i < 10; i++) {
		char key[32], id[32];
		snprintf(key, sizeof(key), "PS1:%d", 16777220 + i);
		snprintf(id, sizeof(id), "dev-%d", i);
		if (cmb_state_device_put(f->st, key, id, hash, hash, 1, 1) < 0)
			return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	fx_rmtree(f->dir);
	free(f);
	return 0;
}

/* Adds a notification for device index dev (10+ = not attached), requested age_s ago, expiring in exp_s. */
static void trigger(struct fx *f, const char *id, int dev, const char *action, long age_s, long exp_s)
{
	struct note *n = &f->tenant.notes[f->tenant.n_notes++];
	int64_t now = cmb_now();
	snprintf(n->id, sizeof(n->id), "%s", id);
	snprintf(n->device_id, sizeof(n->device_id), "dev-%d", dev);
	snprintf(n->key, sizeof(n->key), "PS1:%d", 16777220 + dev);
	snprintf(n->action, sizeof(n->action), "%s", action);
	cmb_time_iso8601(now - age_s, n->requested);
	cmb_time_iso8601(now + exp_s, n->expires);
}

/* A relay as one `cmbridge relay --once` would run it; its rc. */
static int relay_once(struct fx *f, int max_errors)
{
	struct cmb_relay_env env = {
		.cfg = &f->cfg, .state = f->st, .site = &fake_site, .ops_st = &f->site, .tenant = &fake_tenant,
		.notify_st = &f->tenant,
	};
	struct cmb_relay *r = NULL;
	int rc = cmb_relay_new(&r, &env);
	assert_int_equal(rc, 0);
	rc = cmb_relay_run(r, 1, max_errors);
	f->stats = *cmb_relay_get_stats(r);
	cmb_relay_free(r);
	return rc;
}

/* A restart: the state is closed and opened again. */
static void restart(struct fx *f)
{
	cmb_state_close(f->st);
	assert_int_equal(cmb_state_open(&f->st, f->dir), 0);
}

static const struct result *result_of(struct fx *f, const char *id)
{
	for (int i = 0; i < f->tenant.n_results; i++)
		if (strcmp(f->tenant.results[i].id, id) == 0)
			return &f->tenant.results[i];
	fail_msg("no result for %s", id);
	return NULL;
}

static void expect_result(struct fx *f, const char *id, const char *state, long code)
{
	const struct result *r = result_of(f, id);
	assert_string_equal(r->state, state);
	assert_int_equal(r->code, code);
}

struct audit_count {
	int rows;
	char events[256];
};

static int count_audit(void *ctx, const struct cmb_audit_entry *e)
{
	struct audit_count *c = ctx;
	c->rows++;
	strncat(c->events, cmb_state_audit_event_name(e->event), sizeof(c->events) - strlen(c->events) - 2);
	strcat(c->events, " ");
	return 0;
}

static void expect_audit(struct fx *f, const char *id, const char *events)
{
	struct audit_count c = { 0 };
	assert_int_equal(cmb_state_audit_each(f->st, id, count_audit, &c), 0);
	assert_string_equal(c.events, events);
}

static long total_targets(const struct fake_site *s)
{
	long n = 0;
	for (int i = 0; i < s->n_ops; i++)
		n += (long)s->ops[i].n;
	return n;
}

/* ---- tests ---- */

static void delivers_batches_and_reports(void **state)
{
	struct fx *f = *state;
	trigger(f, "a1", 0, "refreshMachinePolicy", 5, 3600);
	trigger(f, "a2", 1, "refreshMachinePolicy", 5, 3600);
	trigger(f, "a3", 2, "syncDevice", 5, 3600);          /* the same Type 8: the same operation */
	trigger(f, "a4", 3, "fullScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.n_ops, 2);
	assert_int_equal(f->site.ops[0].type, 8);
	assert_int_equal(f->site.ops[0].n, 3);
	assert_int_equal(f->site.ops[1].type, 1);
	assert_int_equal(f->site.ops[1].n, 1);
	assert_int_equal(f->site.ops[1].targets[0], 16777223);
	for (int i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "a%d", i + 1);
		expect_result(f, id, "done", 0);
		assert_string_equal(result_of(f, id)->delivery, "deliveredToOnPremisesServer");
		expect_audit(f, id, "received delivered done ");
	}
	assert_int_equal(cmb_state_outbox_count(f->st), 0);
	assert_int_equal(cmb_state_actions_open(f->st), 0);
	/* Nothing left: a second run sends nothing. */
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 2);
}

static void replays_dropped(void **state)
{
	struct fx *f = *state;
	f->tenant.replay = 1;  /* every poll returns the same notification again, under the same cursor */
	trigger(f, "r1", 0, "quickScan", 5, 3600);
	/* The replay is dropped (the action reaches the site once); a channel that never moves past it is an error. */
	assert_int_equal(relay_once(f, 1), CMB_EPROTO);
	assert_non_null(strstr(cmb_error_last(), "notification channel: cursor '1' came back with 1 notification "
						 "already in the inbox: the tenant does not move past them"));
	assert_non_null(strstr(cmb_error_last(), "relay --once gave up after 1 failed passes in a row; pending: "));
	assert_int_equal(f->site.initiate_calls, 1);
	assert_true(f->stats.replays >= 1);
	assert_int_equal(f->stats.received, 1);
	restart(f);
	assert_int_equal(relay_once(f, 1), CMB_EPROTO);
	assert_int_equal(f->site.initiate_calls, 1);
	assert_int_equal(total_targets(&f->site), 1);
	expect_audit(f, "r1", "received delivered done ");
}

static void refusals(void **state)
{
	struct fx *f = *state;
	char allowed[] = "refreshMachinePolicy,retire,wipe";
	f->cfg.actions_allowed = allowed;
	trigger(f, "notallowed", 0, "fullScan", 5, 3600);
	trigger(f, "outofscope", 12, "refreshMachinePolicy", 5, 3600);
	trigger(f, "expired", 1, "refreshMachinePolicy", 90000, -3600);
	trigger(f, "ttl", 2, "refreshMachinePolicy", 87000, 3600);  /* our ttl (24 h) ends before the tenant's */
	trigger(f, "unknown", 3, "rebootNow", 5, 3600);
	trigger(f, "wipe", 4, "wipe", 5, 3600);
	trigger(f, "retire", 5, "retire", 5, 3600);                 /* allowed, but allow_destructive = no */
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 0);
	assert_int_equal(f->site.n_blocked, 0);
	expect_result(f, "notallowed", "failed", CMB_RELAY_NOT_ALLOWED);
	expect_result(f, "outofscope", "failed", CMB_RELAY_OUT_OF_SCOPE);
	expect_result(f, "expired", "failed", CMB_RELAY_EXPIRED);
	expect_result(f, "ttl", "failed", CMB_RELAY_EXPIRED);
	expect_result(f, "unknown", "notSupported", CMB_RELAY_NOT_SUPPORTED);
	expect_result(f, "wipe", "notSupported", CMB_RELAY_NOT_SUPPORTED);
	expect_result(f, "retire", "notSupported", CMB_RELAY_NOT_SUPPORTED);
	const char *ids[] = { "notallowed", "outofscope", "expired", "ttl", "unknown", "wipe", "retire" };
	for (size_t i = 0; i < 7; i++) {
		expect_audit(f, ids[i], "received refused ");
		assert_string_equal(result_of(f, ids[i])->delivery, "deliveredToConnectorService");
	}
	struct cmb_action a;
	assert_int_equal(cmb_state_action_get(f->st, "wipe", &a), 0);
	assert_non_null(strstr(a.message, "Intune"));
	cmb_state_action_clear(&a);
	assert_int_equal(cmb_state_action_get(f->st, "retire", &a), 0);
	assert_non_null(strstr(a.message, "allow_destructive"));
	cmb_state_action_clear(&a);
}

static void device_mismatch_out_of_scope(void **state)
{
	struct fx *f = *state;
	trigger(f, "m1", 0, "refreshMachinePolicy", 5, 3600);
	snprintf(f->tenant.notes[0].device_id, sizeof(f->tenant.notes[0].device_id), "someone-else");
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 0);
	expect_result(f, "m1", "failed", CMB_RELAY_OUT_OF_SCOPE);
}

static void retire_when_allowed(void **state)
{
	struct fx *f = *state;
	char allowed[] = "retire";
	f->cfg.actions_allowed = allowed;
	f->cfg.actions_allow_destructive = 1;
	trigger(f, "ret", 6, "retire", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.n_blocked, 1);
	assert_int_equal(f->site.blocked[0], 16777226);
	assert_int_equal(f->site.initiate_calls, 0);
	expect_result(f, "ret", "done", 0);
	expect_audit(f, "ret", "received done ");
}

static void same_device_twice_split(void **state)
{
	struct fx *f = *state;
	trigger(f, "d1", 0, "appEvaluation", 5, 3600);
	trigger(f, "d2", 0, "appEvaluation", 5, 3600);
	for (int i = 1; i <= 5; i++) {
		char id[8];
		snprintf(id, sizeof(id), "e%d", i);
		trigger(f, id, i, "appEvaluation", 5, 3600);
	}
	assert_int_equal(relay_once(f, 1), 0);
	/* One operation for six devices, a second one for the device's second action: never a target twice. */
	assert_int_equal(f->site.n_ops, 2);
	assert_int_equal(f->site.ops[0].n, 6);
	assert_int_equal(f->site.ops[1].n, 1);
	assert_int_equal(f->site.ops[1].targets[0], 16777220);
	assert_int_equal(total_targets(&f->site), 7);
	expect_result(f, "d1", "done", 0);
	expect_result(f, "d2", "done", 0);
}

static void batch_window_waits(void **state)
{
	struct fx *f = *state;
	f->cfg.actions_batch_window = 1;
	trigger(f, "w1", 0, "wakeUpClient", 5, 3600);
	trigger(f, "w2", 1, "wakeUpClient", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.n_ops, 1);
	assert_int_equal(f->site.ops[0].type, 150);
	assert_int_equal(f->site.ops[0].n, 2);
}

static void crash_after_site_recorded(void **state)
{
	struct fx *f = *state;
	trigger(f, "c1", 0, "refreshUserPolicy", 5, 3600);
	trigger(f, "c2", 1, "refreshUserPolicy", 5, 3600);
	f->site.crash_after_record = 1;
	/* The first run stops at the lost reply: the intent stays journaled without an outcome. */
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	assert_int_equal(f->site.n_ops, 1);
	struct cmb_action a;
	assert_int_equal(cmb_state_action_get(f->st, "c1", &a), 0);
	assert_int_equal(a.state, CMB_ACTION_STATE_INTENT);
	cmb_state_action_clear(&a);
	/* A fresh connector on the same state finds the operation at the site and adopts it. */
	restart(f);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 1);
	assert_int_equal(f->site.n_ops, 1);
	assert_int_equal(f->stats.adopted, 1);
	assert_int_equal(f->stats.reissued, 0);
	expect_result(f, "c1", "done", 0);
	expect_result(f, "c2", "done", 0);
}

static void crash_before_site_recorded(void **state)
{
	struct fx *f = *state;
	trigger(f, "b1", 0, "refreshUserPolicy", 5, 3600);
	f->site.fail_before_record = 1;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	assert_int_equal(f->site.n_ops, 0);
	restart(f);
	assert_int_equal(relay_once(f, 1), 0);
	/* Not found at the site: sent once more, once. */
	assert_int_equal(f->site.n_ops, 1);
	assert_int_equal(f->stats.reissued, 1);
	expect_result(f, "b1", "done", 0);
}

/*
 * A site whose listing has no TargetResourceIDs, and every reply lost: each
 * interrupted delivery is adopted by type, collection, account and time,
 * never sent again (no duplicate target, ever).
 */
static void reply_lost_without_targets(void **state)
{
	struct fx *f = *state;
	f->site.hide_targets = 1;
	for (int round = 0; round < 3; round++) {
		char id[16];
		snprintf(id, sizeof(id), "u%d", round);
		trigger(f, id, round, "refreshMachinePolicy", 5, 3600);
		f->site.crash_after_record = 1;
		assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
		restart(f);
		assert_int_equal(relay_once(f, 1), 0);
		assert_int_equal(f->stats.adopted, 1);
		assert_int_equal(f->stats.reissued, 0);
		expect_result(f, id, "done", 0);
	}
	assert_int_equal(f->site.initiate_calls, 3);
	assert_int_equal(f->site.n_ops, 3);
	assert_int_equal(total_targets(&f->site), 3);
}

/*
 * Two unclaimed operations of the same type in the window and no targets
 * listed: the site cannot say which one is ours. Never sent blind: the
 * action fails with "delivery unknown" and an audit row.
 */
static void ambiguous_without_targets(void **state)
{
	struct fx *f = *state;
	f->site.hide_targets = 1;
	trigger(f, "a1", 0, "refreshMachinePolicy", 5, 3600);
	f->site.crash_after_record = 1;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	site_has(&f->site, 8, 16777299);    /* another admin's operation, same type, same minute */
	restart(f);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 1);
	assert_int_equal(f->stats.adopted, 0);
	assert_int_equal(f->stats.reissued, 0);
	assert_int_equal(f->stats.unknown, 1);
	expect_result(f, "a1", "failed", CMB_RELAY_DELIVERY_UNKNOWN);
	expect_audit(f, "a1", "received failed ");
}

/* With targets listed, the other admin's operation does not match ours: ours is adopted. */
static void other_operation_with_targets(void **state)
{
	struct fx *f = *state;
	trigger(f, "o1", 0, "refreshMachinePolicy", 5, 3600);
	f->site.crash_after_record = 1;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	site_has(&f->site, 8, 16777299);
	restart(f);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->stats.adopted, 1);
	assert_int_equal(f->site.initiate_calls, 1);
	expect_result(f, "o1", "done", 0);
}

/*
 * The site's operation list cannot be read: a transient failure leaves the
 * intent for the next pass; a final one ends the action "delivery unknown".
 * Neither sends it again.
 */
static void listing_unreadable(void **state)
{
	struct fx *f = *state;
	trigger(f, "l1", 0, "refreshMachinePolicy", 5, 3600);
	f->site.crash_after_record = 1;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	restart(f);
	f->site.find_fails = CMB_ENETWORK;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	assert_int_equal(f->site.initiate_calls, 1);
	struct cmb_action a;
	assert_int_equal(cmb_state_action_get(f->st, "l1", &a), 0);
	assert_int_equal(a.state, CMB_ACTION_STATE_INTENT);
	cmb_state_action_clear(&a);
	f->site.find_fails = CMB_EHTTP;
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 1);
	assert_int_equal(f->stats.unknown, 1);
	expect_result(f, "l1", "failed", CMB_RELAY_DELIVERY_UNKNOWN);
}

static void outbox_until_accepted(void **state)
{
	struct fx *f = *state;
	trigger(f, "o1", 0, "windowsDefenderUpdateSignatures", 5, 3600);
	f->tenant.refuse_posts = 1;
	assert_int_equal(relay_once(f, 1), CMB_ENETWORK);
	assert_int_equal(f->tenant.n_results, 0);
	assert_true(cmb_state_outbox_count(f->st) >= 1);
	restart(f);
	/* Still unacknowledged after a restart; the site is not asked again. */
	assert_true(relay_once(f, 1) < 0);
	assert_true(cmb_state_outbox_count(f->st) >= 1);
	f->tenant.refuse_posts = 0;
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(cmb_state_outbox_count(f->st), 0);
	expect_result(f, "o1", "done", 0);
	assert_int_equal(f->site.initiate_calls, 1);
}

static void mixed_outcome(void **state)
{
	struct fx *f = *state;
	f->site.offline[f->site.n_offline++] = 16777221;
	trigger(f, "x1", 0, "quickScan", 5, 3600);
	trigger(f, "x2", 1, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	expect_result(f, "x1", "done", 0);
	expect_result(f, "x2", "failed", CMB_RELAY_CLIENT_OFFLINE);
}

/* Two mixed outcomes found in one pass share one read of the offline list. */
static void mixed_outcomes_share_offline_read(void **state)
{
	struct fx *f = *state;
	f->cfg.actions_status_poll_interval = 60;
	f->site.offline[f->site.n_offline++] = 16777221;
	trigger(f, "x1", 0, "quickScan", 5, 3600);
	trigger(f, "x2", 1, "quickScan", 5, 3600);
	trigger(f, "y1", 2, "fullScan", 5, 3600);
	trigger(f, "y2", 1, "fullScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.n_ops, 2);
	expect_result(f, "x1", "done", 0);
	expect_result(f, "x2", "failed", CMB_RELAY_CLIENT_OFFLINE);
	expect_result(f, "y1", "done", 0);
	expect_result(f, "y2", "failed", CMB_RELAY_CLIENT_OFFLINE);
	assert_int_equal(f->site.offline_reads, 1);
	assert_int_equal(f->site.offline_calls, 1);
}

/* From inside the fake site: the fixture that holds it (a test's struct fx). */
static struct fx *fx_of_site(struct fake_site *s)
{
	return (struct fx *)(void *)((char *)s - offsetof(struct fx, site));
}

static void trigger_during_read(struct fake_site *s, int call)
{
	if (call == 2)
		trigger(fx_of_site(s), "n1", 3, "refreshMachinePolicy", 0, 3600);
}

/*
 * A slow offline read (six pages of 60 ms) does not hold up a new action:
 * the action triggered while the read is under way goes to the site before
 * the read ends, and the mixed outcome waits for the read's list.
 */
static void new_action_not_behind_offline_read(void **state)
{
	struct fx *f = *state;
	f->site.offline[f->site.n_offline++] = 16777221;
	f->site.offline_pages = 6;
	f->site.offline_page_ms = 60;
	f->site.on_offline_call = trigger_during_read;
	trigger(f, "x1", 0, "quickScan", 5, 3600);
	trigger(f, "x2", 1, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.n_ops, 2);
	const struct op *n1 = &f->site.ops[1];
	assert_int_equal(n1->type, 8);
	assert_int_equal(n1->targets[0], 16777223);
	assert_int_equal(n1->offline_reads_before, 0);
	assert_in_range(n1->offline_calls_before, 2, 5);
	expect_result(f, "n1", "done", 0);
	expect_result(f, "x1", "done", 0);
	expect_result(f, "x2", "failed", CMB_RELAY_CLIENT_OFFLINE);
	assert_int_equal(f->site.offline_reads, 1);
	assert_int_equal(f->site.offline_calls, 6);
}

/* A page of the offline read fails: the pass fails, the next one reads the list again from the start. */
static void offline_read_failure_restarts(void **state)
{
	struct fx *f = *state;
	f->site.offline[f->site.n_offline++] = 16777221;
	f->site.offline_pages = 3;
	f->site.offline_fail_call = 2;
	trigger(f, "x1", 0, "quickScan", 5, 3600);
	trigger(f, "x2", 1, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 2), 0);
	expect_result(f, "x1", "done", 0);
	expect_result(f, "x2", "failed", CMB_RELAY_CLIENT_OFFLINE);
	assert_int_equal(f->site.offline_reads, 1);
	assert_int_equal(f->site.offline_calls, 5);
	assert_int_equal(f->site.initiate_calls, 1);
}

/* The offline list never reads: after status_timeout the mixed outcome fails, errorCode 3, saying why. */
static void offline_read_failing_times_out(void **state)
{
	struct fx *f = *state;
	f->cfg.actions_status_timeout = 1;
	f->site.offline[f->site.n_offline++] = 16777221;
	f->site.offline_fail_always = 1;
	trigger(f, "x1", 0, "quickScan", 5, 3600);
	trigger(f, "x2", 1, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 10), 0);
	expect_result(f, "x1", "failed", CMB_RELAY_TIMEOUT);
	expect_result(f, "x2", "failed", CMB_RELAY_TIMEOUT);
	assert_int_equal(f->site.offline_reads, 0);
	assert_in_range(f->site.offline_calls, 1, 4);
	struct cmb_action a;
	assert_int_equal(cmb_state_action_get(f->st, "x2", &a), 0);
	assert_string_equal(a.message, "the site's offline clients could not be read within 1 s of the outcome (page "
			    "refused (scripted)); OperationID 16777301: 1 of 2 clients completed, 0 failed, 1 offline");
	cmb_state_action_clear(&a);
}

static void staging_relays_nothing(void **state)
{
	struct fx *f = *state;
	f->cfg.mode = CMB_MODE_STAGING;
	trigger(f, "s1", 0, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(f->site.initiate_calls, 0);
	assert_int_equal(f->tenant.posts, 0);
	assert_int_equal(cmb_state_outbox_count(f->st), 0);
	struct cmb_action a;
	assert_int_equal(cmb_state_action_get(f->st, "s1", &a), 0);
	assert_int_equal(a.state, CMB_ACTION_STATE_RECEIVED);
	cmb_state_action_clear(&a);
	expect_audit(f, "s1", "received staging ");
	/* Back to normal: the kept action is relayed. */
	f->cfg.mode = CMB_MODE_NORMAL;
	assert_int_equal(relay_once(f, 1), 0);
	expect_result(f, "s1", "done", 0);
}

static void unknown_allowed_name_refused(void **state)
{
	struct fx *f = *state;
	char allowed[] = "refreshMachinePolicy,teleport";
	f->cfg.actions_allowed = allowed;
	struct cmb_relay_env env = {
		.cfg = &f->cfg, .state = f->st, .site = &fake_site, .ops_st = &f->site, .tenant = &fake_tenant,
		.notify_st = &f->tenant,
	};
	struct cmb_relay *r = NULL;
	assert_int_equal(cmb_relay_new(&r, &env), CMB_ECONFIG);
	assert_non_null(strstr(cmb_error_last(), "teleport"));
}

/* Every unknown name at once, a line each, with the nearest action; then the half-turned destructive pair. */
static void allowed_names_checked(void **state)
{
	struct fx *f = *state;
	char allowed[] = "refreshMachinPolicy,fullScan,QuickScan,teleport";
	char path[] = "/etc/cmbridge/cmbridge.conf";
	int *lines = xcalloc(cmb_config_option_count(), sizeof(*lines));
	f->cfg.actions_allowed = allowed;
	f->cfg.path = path;
	char *w = (char *)1;
	assert_int_equal(cmb_relay_check_config(&f->cfg, &w), CMB_ECONFIG);
	assert_null(w);
	assert_string_equal(cmb_error_last(),
			    "/etc/cmbridge/cmbridge.conf: [actions] allowed: \"refreshMachinPolicy\" is not an action the "
			    "connector relays (did you mean refreshMachinePolicy?)\n"
			    "/etc/cmbridge/cmbridge.conf: [actions] allowed: \"QuickScan\" is not an action the connector "
			    "relays (did you mean quickScan?)\n"
			    "/etc/cmbridge/cmbridge.conf: [actions] allowed: \"teleport\" is not an action the connector "
			    "relays (see docs/actions.md)");

	char only_scan[] = "fullScan";
	f->cfg.actions_allowed = only_scan;
	f->cfg.actions_allow_destructive = 1;
	assert_int_equal(cmb_relay_check_config(&f->cfg, &w), 0);
	assert_string_equal(w, "/etc/cmbridge/cmbridge.conf: [actions] allow_destructive = yes has no effect: retire is "
			       "not in allowed, so it is still refused (add retire to allowed to relay it, or remove the line)");
	free(w);

	char with_retire[] = "retire,wipe";
	f->cfg.actions_allowed = with_retire;
	f->cfg.actions_allow_destructive = 0;
	assert_int_equal(cmb_relay_check_config(&f->cfg, &w), 0);
	assert_string_equal(w, "/etc/cmbridge/cmbridge.conf: [actions] allowed: retire is refused all the same while "
			       "allow_destructive = no (set allow_destructive = yes to relay it, or take retire out of "
			       "allowed)\n/etc/cmbridge/cmbridge.conf: [actions] allowed: wipe is never relayed: "
			       "Configuration Manager cannot wipe its clients; wipe a co-managed device through Intune (take "
			       "it out of allowed)");
	free(w);

	f->cfg.actions_allow_destructive = 1;
	f->cfg.actions_allowed = with_retire + 7; /* "wipe" */
	f->cfg.option_lines = lines;
	assert_int_equal(cmb_relay_check_config(&f->cfg, &w), 0);
	assert_non_null(strstr(w, "allow_destructive = yes has no effect"));
	free(w);
	f->cfg.actions_allowed = with_retire;
	assert_int_equal(cmb_relay_check_config(&f->cfg, &w), 0);
	assert_non_null(strstr(w, "wipe is never relayed"));
	assert_null(strstr(w, "retire"));
	free(w);
	f->cfg.option_lines = NULL;
	f->cfg.path = NULL;
	free(lines);
}

static void audit_append_only(void **state)
{
	struct fx *f = *state;
	trigger(f, "u1", 12, "quickScan", 5, 3600);
	assert_int_equal(relay_once(f, 1), 0);
	assert_int_equal(cmb_state_schema_version(f->st), 6);
	/* The triggers refuse any change to a written row, from any connection to the file. */
	restart(f);
	cmb_state_close(f->st);
	f->st = NULL; /* teardown's, should an assertion below fail */
	char *path = xasprintf("%s/cmbridge.db", f->dir);
	sqlite3 *db = NULL;
	char *err = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, &err), SQLITE_CONSTRAINT);
	assert_string_equal(err, "the audit table is append-only");
	sqlite3_free(err);
	err = NULL;
	assert_int_equal(sqlite3_exec(db, "UPDATE audit SET reason = 'edited'", NULL, NULL, &err), SQLITE_CONSTRAINT);
	assert_string_equal(err, "the audit table is append-only");
	sqlite3_free(err);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	free(path);
	assert_int_equal(cmb_state_open(&f->st, f->dir), 0);
	expect_audit(f, "u1", "received refused ");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(delivers_batches_and_reports), T(replays_dropped), T(refusals), T(device_mismatch_out_of_scope),
		T(retire_when_allowed), T(same_device_twice_split), T(batch_window_waits),
		T(crash_after_site_recorded), T(crash_before_site_recorded), T(reply_lost_without_targets),
		T(ambiguous_without_targets), T(other_operation_with_targets), T(listing_unreadable),
		T(outbox_until_accepted),
		T(mixed_outcome), T(mixed_outcomes_share_offline_read),
		T(new_action_not_behind_offline_read), T(offline_read_failure_restarts), T(offline_read_failing_times_out),
		T(staging_relays_nothing), T(unknown_allowed_name_refused), T(allowed_names_checked), T(audit_append_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
