/*
 * test_sync.c - the sync engine against scripted site and tenant adapters
 * (unbound's idea: replace the network by a script, so the engine's rules
 * are tested exactly and without sockets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/store/state.h"
#include "connector/engine/sync.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"
#include "mapping/device.h"
#include "tests/unit/fixture.h"

/* ---- scripted site ---- */

#define MAX_DEV 16

struct fake_site {
	struct cmb_site_device dev[MAX_DEV];
	int n;
	int fail_after;     /* -1: never; else fail after passing this many devices */
	int reads;
	int count_rows;     /* report rows per class: SMS_R_System (one per device) and hw_rows */
	long hw_rows;       /* the rows SMS_G_System_COMPUTER_SYSTEM answers */
};

static int site_read(void *st, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats)
{
	struct fake_site *s = st;
	s->reads++;
	for (int i = 0; i < s->n; i++) {
		if (s->fail_after >= 0 && i == s->fail_after)
			return cmb_error_set(CMB_EPROTO, "SMS_R_System page 2: truncated page");
		int rc = cb(ctx, &s->dev[i]);
		if (rc < 0)
			return rc;
		stats->devices++;
	}
	if (s->count_rows) {
		stats->classes[0] = (struct cmb_site_class_rows){ .name = "SMS_R_System", .rows = s->n };
		stats->classes[1] = (struct cmb_site_class_rows){ .name = "SMS_G_System_COMPUTER_SYSTEM", .rows = s->hw_rows };
		stats->n_classes = 2;
	}
	return 0;
}

static const struct cmb_site_adapter fake_site_adapter = {
	.version = CMB_SITE_ADAPTER_VERSION, .name = "fake", .read_devices = site_read,
};

static struct cmb_site_device *add_device(struct fake_site *s, uint32_t rid, const char *name, const char *hw)
{
	struct cmb_site_device *d = &s->dev[s->n++];
	cmb_site_device_init(d);
	d->resource_id = rid;
	d->name = xstrdup(name);
	d->hardware_id = hw ? xstrdup(hw) : NULL;
	d->client = 1;
	d->obsolete = 0;
	d->decommissioned = 0;
	d->active = 1;
	d->has_cdr = 1;
	d->is_client = 1;
	d->is_active = 1;
	d->is_obsolete = 0;
	d->is_blocked = 0;
	d->client_active_status = 1;
	d->client_check_pass = 1;
	d->sms_unique_id = xasprintf("GUID:%08u-0000-0000-0000-000000000000", rid);
	d->last_policy_request = xstrdup("2026-11-28T10:00:00Z");
	d->last_active_time = xstrdup("2026-11-28T10:00:00Z");
	d->build_ext = xstrdup("10.0.22631.4460");
	return d;
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? xstrdup(v) : NULL;
}

static void remove_device(struct fake_site *s, uint32_t rid)
{
	for (int i = 0; i < s->n; i++) {
		if (s->dev[i].resource_id != rid)
			continue;
		cmb_site_device_clear(&s->dev[i]);
		memmove(&s->dev[i], &s->dev[i + 1], (size_t)(s->n - i - 1) * sizeof(s->dev[0]));
		s->n--;
		return;
	}
	fail_msg("no device %u", rid);
}

/* ---- scripted tenant ---- */

struct fake_tenant {
	int requests;
	char uploaded[4096];  /* "key " per record, per request */
	char removed[4096];
	const char *reject;   /* key to reject, or NULL */
	int lose_replies;     /* apply this many batches, then lose their replies */
	int refuse;           /* fail this many batches before applying anything (a reset) */
	char holds[4096];     /* "key " per record the tenant holds (kept across cycles) */
	struct cmb_state *st; /* the connector's state, to see what is in flight when a batch arrives */
	long in_flight_seen;  /* keys in flight when the last batch arrived */
};

/* The tenant's own view, "key " per record in upload order: held from its upload to its removal. */
static char *tenant_find(struct fake_tenant *t, const char *key)
{
	size_t n = strlen(key);
	for (char *p = t->holds; (p = strstr(p, key)) != NULL; p += n)
		if ((p == t->holds || p[-1] == ' ') && p[n] == ' ')
			return p;
	return NULL;
}

static void tenant_hold(struct fake_tenant *t, const char *key, int on)
{
	char *at = tenant_find(t, key);
	if (on && !at) {
		strncat(t->holds, key, sizeof(t->holds) - strlen(t->holds) - 2);
		strcat(t->holds, " ");
	} else if (!on && at) {
		memmove(at, at + strlen(key) + 1, strlen(at + strlen(key) + 1) + 1);
	}
}

static int tenant_upload(void *st, const struct cmb_tenant_batch *b, cmb_tenant_outcome_cb cb, void *ctx)
{
	struct fake_tenant *t = st;
	t->requests++;
	t->in_flight_seen = cmb_state_inflight_count(t->st);
	if (t->refuse > 0) {
		t->refuse--;
		return cmb_error_set(CMB_ENETWORK, "the connection to the tenant was reset");
	}
	/* Applied, but the reply never reaches the connector (wire-format.md §3: a lost reply). */
	int lost = t->lose_replies > 0;
	if (lost)
		t->lose_replies--;
	for (size_t i = 0; i < b->n_records; i++) {
		const char *key = b->records[i].key;
		strncat(t->uploaded, key, sizeof(t->uploaded) - strlen(t->uploaded) - 2);
		strcat(t->uploaded, " ");
		int reject = t->reject && strcmp(t->reject, key) == 0;
		if (!reject)
			tenant_hold(t, key, 1);
		if (lost)
			continue;
		char id[64];
		snprintf(id, sizeof(id), "id-%s", key);
		struct cmb_tenant_outcome o = {
			.key = key, .status = reject ? "rejected" : "created", .tenant_id = reject ? NULL : id,
			.error = reject ? "InvalidProperty: managedDevice.deviceName: too long" : NULL,
		};
		int rc = cb(ctx, &o);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < b->n_removals; i++) {
		strncat(t->removed, b->removals[i], sizeof(t->removed) - strlen(t->removed) - 2);
		strcat(t->removed, " ");
		int held = tenant_find(t, b->removals[i]) != NULL;
		tenant_hold(t, b->removals[i], 0);
		if (lost)
			continue;
		struct cmb_tenant_outcome o = { .key = b->removals[i], .is_removal = 1,
						.status = held ? "removed" : "notFound" };
		int rc = cb(ctx, &o);
		if (rc < 0)
			return rc;
	}
	return lost ? cmb_error_set(CMB_ENETWORK, "the connection to the tenant closed before the reply was complete")
		    : 0;
}

static const struct cmb_tenant_adapter fake_tenant_adapter = {
	.version = CMB_TENANT_ADAPTER_VERSION, .name = "fake", .upload = tenant_upload,
};

/* ---- fixture ---- */

struct fx {
	char dir[FX_DIR_SIZE];
	struct cmb_config cfg;
	struct cmb_state *st;
	struct fake_site site;
	struct fake_tenant tenant;
	struct cmb_sync_result res;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "sync") < 0)
		return -1;
	f->cfg.site_code = "PS1";
	f->cfg.state_dir = f->dir;
	f->cfg.tenant_batch_size = 2;   /* several batches even for tiny sites */
	f->cfg.sync_details_interval = 3600;
	f->cfg.sync_delete_threshold = 500;
	f->cfg.sync_delete_threshold_percent = 100;
	f->cfg.sync_change_threshold = 500;
	f->cfg.sync_change_threshold_percent = 100;
	f->site.fail_after = -1;
	cmb_log_set_level(CMB_LOG_ERROR);
	if (cmb_state_open(&f->st, f->dir) < 0)
		return -1;
	f->tenant.st = f->st;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	for (int i = 0; i < f->site.n; i++)
		cmb_site_device_clear(&f->site.dev[i]);
	fx_rmtree(f->dir);
	free(f);
	return 0;
}

/* Runs one cycle with opts; returns its rc. Clears what the fake tenant recorded first. */
static int cycle_opts(struct fx *f, const struct cmb_sync_opts *opts)
{
	memset(&f->tenant.uploaded, 0, sizeof(f->tenant.uploaded));
	memset(&f->tenant.removed, 0, sizeof(f->tenant.removed));
	f->tenant.requests = 0;
	struct cmb_sync_env env = {
		.cfg = &f->cfg, .state = f->st, .site = &fake_site_adapter, .site_st = &f->site,
		.tenant = &fake_tenant_adapter, .tenant_st = &f->tenant,
	};
	return cmb_sync_run(&env, opts, &f->res);
}

static int cycle(struct fx *f, int full, long allow)
{
	struct cmb_sync_opts opts = { .full = full, .allow_deletes = allow };
	return cycle_opts(f, &opts);
}

/* A delta cycle approving up to allow changes past the change guard. */
static int cycle_changes(struct fx *f, long allow)
{
	struct cmb_sync_opts opts = { .allow_changes = allow };
	return cycle_opts(f, &opts);
}

static void basic_site(struct fx *f)
{
	add_device(&f->site, 16777220, "PC-A", "HW-A");
	add_device(&f->site, 16777221, "PC-B", "HW-B");
	struct cmb_site_device *c = add_device(&f->site, 16777222, "SRV-NOCLIENT", NULL);
	c->client = 0;
	c->is_client = 0;
}

/* ---- tests ---- */

static void first_then_idle(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->res.status, "ok");
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 PS1:16777221 ");
	assert_int_equal(f->res.counts.added, 2);
	assert_int_equal(f->res.counts.skipped, 1);
	assert_int_equal(cmb_state_device_count(f->st), 2);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(f->res.counts.unchanged, 2);
	/* A full cycle sends everything again, counted as refreshed. */
	assert_int_equal(cycle(f, 1, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 PS1:16777221 ");
	assert_int_equal(f->res.counts.refreshed, 2);
	assert_int_equal(f->res.counts.changed, 0);
}

static void checkin_times_wait_for_details_refresh(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	/* Only check-in times move: a delta uploads nothing. */
	set_str(&f->site.dev[0].last_policy_request, "2026-11-28T11:00:00Z");
	set_str(&f->site.dev[0].last_active_time, "2026-11-28T11:00:00Z");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->res.counts.unchanged, 2);
	assert_int_equal(f->res.details_refresh, 0);
	/* When the details refresh is due, they go out as refreshed. */
	assert_int_equal(cmb_state_meta_set(f->st, "last_details_refresh", cmb_now() - 3600), 0);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.details_refresh, 1);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 ");
	assert_int_equal(f->res.counts.refreshed, 1);
	/* ...and once sent, they are not sent again. */
	assert_int_equal(cmb_state_meta_set(f->st, "last_details_refresh", cmb_now() - 3600), 0);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	/* A health change is a real change, whatever the cadence. */
	f->site.dev[1].client_active_status = 0;
	set_str(&f->site.dev[1].last_active_time, "2026-11-28T12:00:00Z");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777221 ");
	assert_int_equal(f->res.counts.changed, 1);
}

static void failed_read_changes_nothing(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	remove_device(&f->site, 16777221);
	add_device(&f->site, 16777230, "PC-NEW", "HW-N");
	f->site.fail_after = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_EPROTO);
	assert_string_equal(f->res.status, "failed");
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(cmb_state_device_count(f->st), 2);
	assert_non_null(strstr(cmb_error_last(), "nothing was changed in the tenant"));
	f->site.fail_after = -1;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777230 ");
	assert_string_equal(f->tenant.removed, "PS1:16777221 ");
}

static void newer_duplicate_wins(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	/* A reimage the site has not cleaned up: a newer active record with A's hardware id. */
	struct cmb_site_device *twin = add_device(&f->site, 16777240, "PC-A", "HW-A");
	set_str(&twin->last_active_time, "2026-11-28T12:00:00Z");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777240 ");
	assert_string_equal(f->tenant.removed, "PS1:16777220 ");
	assert_int_equal(f->res.counts.duplicates, 1);
	enum cmb_quarantine_kind kind;
	char hash[65];
	assert_int_equal(cmb_state_quarantine_get(f->st, "PS1:16777220", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_DUPLICATE);
	/* Stable: the next cycle does nothing. */
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_string_equal(f->tenant.removed, "");
	assert_int_equal(f->res.counts.duplicates, 1);
	/* The records mapped, by what they say (the metrics): the duplicate counted, the device out of scope not. */
	assert_int_equal(f->res.devices.agent[CMB_MAP_AGENT_CLIENT], 3);
	assert_int_equal(f->res.devices.agent[CMB_MAP_AGENT_CLIENT_MDM], 0);
	assert_int_equal(f->res.devices.join[CMB_MAP_JOIN_UNKNOWN], 3);
}

static void deletion_guard_holds_then_approves(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	add_device(&f->site, 16777223, "PC-C", "HW-C");
	add_device(&f->site, 16777224, "PC-D", "HW-D");
	assert_int_equal(cycle(f, 0, 0), 0);
	f->cfg.sync_delete_threshold = 1;
	remove_device(&f->site, 16777223);
	remove_device(&f->site, 16777224);
	add_device(&f->site, 16777250, "PC-E", "HW-E");
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_string_equal(f->res.status, "deletion-threshold-exceeded");
	assert_string_equal(f->tenant.uploaded, "PS1:16777250 ");  /* adds still go out */
	assert_string_equal(f->tenant.removed, "");
	assert_int_equal(f->res.counts.removals_held, 2);
	assert_non_null(strstr(cmb_error_last(), "cmbridge sync --allow-deletes 2"));
	/* Approving fewer than needed keeps holding. */
	assert_int_equal(cycle(f, 0, 1), CMB_EGUARD);
	assert_string_equal(f->tenant.removed, "");
	assert_int_equal(cycle(f, 0, 2), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777223 PS1:16777224 ");
	/* The percentage guard alone: 1 of 3 is above 20%. */
	f->cfg.sync_delete_threshold = 500;
	f->cfg.sync_delete_threshold_percent = 20;
	remove_device(&f->site, 16777250);
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_string_equal(f->tenant.removed, "");
}

static void rejected_record_waits_for_a_change(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	f->tenant.reject = "PS1:16777221";
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.rejected, 1);
	enum cmb_quarantine_kind kind;
	char hash[65];
	assert_int_equal(cmb_state_quarantine_get(f->st, "PS1:16777221", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_REJECTED);
	/* Same record: not sent again. */
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->res.counts.quarantined, 1);
	/* The site changes it: retried, and released when accepted. */
	f->tenant.reject = NULL;
	set_str(&f->site.dev[1].name, "PC-B2");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777221 ");
	assert_int_equal(cmb_state_quarantine_get(f->st, "PS1:16777221", &kind, hash), CMB_ENOTFOUND);
}

/* The hashes an earlier version stored for dev (the SHA-256 of its record's JSON), at a check-in time. */
static void legacy_hashes(const struct cmb_site_device *dev, const char *checkin, char full[65], char stable[65])
{
	struct cmb_site_device copy = *dev;
	copy.last_policy_request = (char *)checkin;
	const struct cmb_map_ctx mc = { .site_code = "PS1" };
	struct cmb_tenant_record rec;
	assert_int_equal(cmb_map_device(&mc, &copy, &rec, NULL), CMB_MAP_OK);
	memcpy(full, rec.legacy_hash, 65);
	memcpy(stable, rec.legacy_stable_hash, 65);
	cmb_tenant_record_clear(&rec);
}

/*
 * A state an earlier version wrote holds the SHA-256 of each record's JSON:
 * the same records are recognised and their hashes rewritten, nothing is
 * sent; check-in times that moved since still wait for the details refresh.
 */
static void earlier_version_hashes_are_rewritten(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	set_str(&f->site.dev[0].last_policy_request, "2026-11-28T09:00:00Z");
	set_str(&f->site.dev[1].last_policy_request, "2026-11-28T09:00:00Z");
	f->tenant.reject = "PS1:16777221";
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.added, 1);
	assert_int_equal(f->res.counts.rejected, 1);
	char digest[65], digest_stable[65], full[65], stable[65], hash[65], hash_stable[65];
	assert_int_equal(cmb_state_device_get(f->st, "PS1:16777220", digest, digest_stable, NULL), 0);
	/* What the earlier version stored: PC-A as uploaded; PC-B rejected. */
	legacy_hashes(&f->site.dev[0], "2026-11-28T09:00:00Z", full, stable);
	assert_string_not_equal(full, digest);
	assert_string_not_equal(stable, digest_stable);
	assert_int_equal(cmb_state_device_rehash(f->st, "PS1:16777220", full, stable), 0);
	legacy_hashes(&f->site.dev[1], "2026-11-28T09:00:00Z", full, stable);
	assert_int_equal(cmb_state_quarantine_rehash(f->st, "PS1:16777221", full), 0);

	/* Same records: nothing sent, both hashes rewritten, the rejected one still waits. */
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(f->res.counts.unchanged, 1);
	assert_int_equal(f->res.counts.quarantined, 1);
	assert_int_equal(cmb_state_device_get(f->st, "PS1:16777220", hash, hash_stable, NULL), 0);
	assert_string_equal(hash, digest);
	assert_string_equal(hash_stable, digest_stable);
	enum cmb_quarantine_kind kind;
	assert_int_equal(cmb_state_quarantine_get(f->st, "PS1:16777221", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_REJECTED);
	assert_string_not_equal(hash, full);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->res.counts.quarantined, 1);

	/* An earlier hash whose check-in time has moved since: the stable hash is rewritten, the refresh still sends it. */
	legacy_hashes(&f->site.dev[0], "2026-11-28T08:00:00Z", full, stable);
	assert_int_equal(cmb_state_device_rehash(f->st, "PS1:16777220", full, stable), 0);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->res.counts.unchanged, 1);
	assert_int_equal(cmb_state_device_get(f->st, "PS1:16777220", hash, hash_stable, NULL), 0);
	assert_string_equal(hash, full);
	assert_string_equal(hash_stable, digest_stable);
	assert_int_equal(cmb_state_meta_set(f->st, "last_details_refresh", cmb_now() - 3600), 0);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 ");
	assert_int_equal(f->res.counts.refreshed, 1);
	assert_int_equal(cmb_state_device_get(f->st, "PS1:16777220", hash, hash_stable, NULL), 0);
	assert_string_equal(hash, digest);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");

	/* A real change under an earlier hash is a change. */
	legacy_hashes(&f->site.dev[0], "2026-11-28T09:00:00Z", full, stable);
	assert_int_equal(cmb_state_device_rehash(f->st, "PS1:16777220", full, stable), 0);
	set_str(&f->site.dev[0].name, "PC-A2");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 ");
	assert_int_equal(f->res.counts.changed, 1);
}

static void unmappable_record_is_kept(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	set_str(&f->site.dev[0].name, "");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.quarantined, 1);
	assert_string_equal(f->tenant.removed, "");  /* not a removal */
	assert_int_equal(cmb_state_device_count(f->st), 2);
	enum cmb_quarantine_kind kind;
	char hash[65];
	assert_int_equal(cmb_state_quarantine_get(f->st, "PS1:16777220", &kind, hash), 0);
	assert_int_equal(kind, CMB_QUARANTINE_MAPPING);
}

static void staging_writes_nothing(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	f->cfg.mode = CMB_MODE_STAGING;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->res.status, "staging");
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(f->res.pending_uploads, 2);
	assert_int_equal(cmb_state_device_count(f->st), 0);
	/* Switching to normal exports exactly that difference. */
	f->cfg.mode = CMB_MODE_NORMAL;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 PS1:16777221 ");
}

/*
 * basic_site after a good cycle, then n new devices (PC-D, PC-E..., from
 * ResourceID 16777230) whose upload the tenant applies but whose reply is
 * lost: the cycle fails with them in flight.
 */
static void lost_upload(struct fx *f, int n)
{
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	for (int i = 0; i < n; i++) {
		char name[16], hw[16];
		snprintf(name, sizeof(name), "PC-%c", 'D' + i);
		snprintf(hw, sizeof(hw), "HW-%c", 'D' + i);
		add_device(&f->site, 16777230 + (uint32_t)i, name, hw);
	}
	f->tenant.lose_replies = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_ENETWORK);
	assert_int_equal(cmb_state_inflight_count(f->st), n);
}

/*
 * The tenant applied a batch whose reply was lost; the site then deletes
 * one of those devices before the next good cycle. It must be removed
 * (docs/safety.md, "Uploads whose outcome is unknown").
 */
static void lost_reply_then_deleted_is_removed(void **state)
{
	struct fx *f = *state;
	lost_upload(f, 2);
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 PS1:16777230 PS1:16777231 ");
	assert_int_equal(cmb_state_device_count(f->st), 2);
	/* Journaled before they were sent, and still in doubt. */
	assert_int_equal(f->tenant.in_flight_seen, 2);
	assert_int_equal(cmb_state_inflight_get(f->st, "PS1:16777230", NULL), 0);
	assert_int_equal(cmb_state_inflight_get(f->st, "PS1:16777220", NULL), CMB_ENOTFOUND);
	/* The site deletes D before the next good cycle: D is removed, E uploaded again. */
	remove_device(&f->site, 16777230);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777230 ");
	assert_string_equal(f->tenant.uploaded, "PS1:16777231 ");
	assert_int_equal(f->res.counts.removed, 1);
	assert_int_equal(f->res.counts.added, 1);
	assert_int_equal(f->res.pending_removals, 1);
	assert_int_equal(cmb_state_device_count(f->st), 3);
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
	/* A full cycle changes nothing more: the tenant holds exactly the site's devices. */
	assert_int_equal(cycle(f, 1, 0), 0);
	assert_string_equal(f->tenant.removed, "");
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 PS1:16777231 ");
}

/* The gateway answers notFound for a key it never applied: that settles it too. */
static void never_applied_is_settled_by_not_found(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	add_device(&f->site, 16777230, "PC-D", "HW-D");
	f->tenant.refuse = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_ENETWORK);
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 ");
	assert_int_equal(cmb_state_inflight_count(f->st), 1);
	remove_device(&f->site, 16777230);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777230 ");
	assert_int_equal(f->res.counts.removed, 1);
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
	assert_int_equal(cmb_state_device_count(f->st), 2);
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 ");
}

/* A change in doubt is sent again, even when the site went back to what was acknowledged. */
static void in_flight_still_at_site_is_sent_again(void **state)
{
	struct fx *f = *state;
	basic_site(f);
	assert_int_equal(cycle(f, 0, 0), 0);
	set_str(&f->site.dev[0].name, "PC-A2");
	f->tenant.lose_replies = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_ENETWORK);
	assert_int_equal(cmb_state_inflight_count(f->st), 1);
	set_str(&f->site.dev[0].name, "PC-A");   /* the tenant may hold PC-A2 */
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 ");
	assert_int_equal(f->res.counts.refreshed, 1);
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
}

/* Removals of keys in flight count against the deletion guard like any other. */
static void in_flight_removals_count_for_the_deletion_guard(void **state)
{
	struct fx *f = *state;
	lost_upload(f, 2);
	remove_device(&f->site, 16777230);
	remove_device(&f->site, 16777231);
	f->cfg.sync_delete_threshold = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_string_equal(f->res.status, "deletion-threshold-exceeded");
	assert_string_equal(f->tenant.removed, "");
	assert_int_equal(f->res.counts.removals_held, 2);
	assert_non_null(strstr(cmb_error_last(), "cmbridge sync --allow-deletes 2"));
	assert_int_equal(cmb_state_inflight_count(f->st), 2);
	assert_int_equal(cycle(f, 0, 2), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777230 PS1:16777231 ");
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 ");
}

/* A failed read changes nothing, what is in flight included. */
static void failed_read_keeps_in_flight(void **state)
{
	struct fx *f = *state;
	lost_upload(f, 1);
	remove_device(&f->site, 16777230);
	f->site.fail_after = 1;
	assert_int_equal(cycle(f, 0, 0), CMB_EPROTO);
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(cmb_state_inflight_count(f->st), 1);
	f->site.fail_after = -1;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777230 ");
}

/*
 * A rejection settles the upload it answers, not an earlier one in doubt
 * that the tenant may have applied: that key stays in flight and is
 * removed when the site deletes it.
 */
static void rejection_settles_only_its_own_upload(void **state)
{
	struct fx *f = *state;
	lost_upload(f, 1);
	f->tenant.reject = "PS1:16777230";
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.rejected, 1);
	assert_int_equal(cmb_state_inflight_count(f->st), 1);
	f->tenant.reject = NULL;
	remove_device(&f->site, 16777230);
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777230 ");
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
	assert_string_equal(f->tenant.holds, "PS1:16777220 PS1:16777221 ");
	/* A record rejected at its first upload is settled at once. */
	add_device(&f->site, 16777231, "PC-E", "HW-E");
	f->tenant.reject = "PS1:16777231";
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(cmb_state_inflight_count(f->st), 0);
}

/* Four devices with hardware inventory; the second site class answers hw_rows rows. */
static void hw_site(struct fx *f, int n)
{
	for (int i = 0; i < n; i++) {
		char name[16], hw[16];
		snprintf(name, sizeof(name), "PC-%d", i);
		snprintf(hw, sizeof(hw), "HW-%d", i);
		struct cmb_site_device *d = add_device(&f->site, 16777220 + (uint32_t)i, name, hw);
		d->manufacturer = xstrdup("Contoso");
		d->model = xstrdup("Surface");
	}
	f->site.hw_rows = n;
}

/* The hardware inventory class answers nothing: devices [from, n) lose their manufacturer and model. */
static void hw_lost(struct fx *f, int from, long rows)
{
	for (int i = from; i < f->site.n; i++) {
		set_str(&f->site.dev[i].manufacturer, NULL);
		set_str(&f->site.dev[i].model, NULL);
	}
	f->site.hw_rows = rows;
}

/* One class answers nothing: every record would lose its manufacturer and model (the blank-field rule). */
static void emptied_class_holds_changes(void **state)
{
	struct fx *f = *state;
	hw_site(f, 4);
	f->cfg.sync_change_threshold = 3;
	assert_int_equal(cycle(f, 0, 0), 0);
	hw_lost(f, 0, 0);
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_string_equal(f->res.status, "change-threshold-exceeded");
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(f->tenant.requests, 0);
	assert_int_equal(f->res.counts.changed, 0);
	assert_int_equal(f->res.counts.changes_held, 4);
	assert_non_null(strstr(cmb_error_last(), "4 changes held back: 4 records would lose site properties they "
						  "had (manufacturer, model); more than [sync] change_threshold = 3"));
	assert_non_null(strstr(cmb_error_last(), "cmbridge sync --allow-changes 4"));
	/* Approving fewer keeps holding; approving 4 uploads them, once. */
	assert_int_equal(cycle_changes(f, 3), CMB_EGUARD);
	assert_string_equal(f->tenant.uploaded, "");
	assert_int_equal(cycle_changes(f, 4), 0);
	assert_string_equal(f->res.status, "ok");
	assert_int_equal(f->res.counts.changed, 4);
	assert_int_equal(f->res.counts.changes_held, 0);
	assert_string_equal(f->tenant.uploaded, "PS1:16777220 PS1:16777221 PS1:16777222 PS1:16777223 ");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	/* Fields coming back are no loss. */
	for (int i = 0; i < 4; i++)
		set_str(&f->site.dev[i].model, "Surface");
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.changed, 4);
}

/* The class-rows rule: rows this cycle against the last good cycle, net of the devices that left. */
static void short_class_holds_changes(void **state)
{
	struct fx *f = *state;
	hw_site(f, 10);
	f->site.count_rows = 1;
	f->cfg.sync_change_threshold_percent = 10;
	assert_int_equal(cycle(f, 0, 0), 0);
	/* 2 rows of 10 are gone while every device is still there: 20% > 10%. */
	hw_lost(f, 8, 8);
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_int_equal(f->res.counts.changes_held, 2);
	assert_non_null(strstr(cmb_error_last(), "2 changes held back: SMS_G_System_COMPUTER_SYSTEM answered 8 rows "
						  "(10 at the last good cycle) while SMS_R_System answered 10 (10); "
						  "2 records would lose site properties they had (manufacturer, model)"));
	/* A dry run says so and moves nothing: the next cycle still holds. */
	struct cmb_sync_opts dry = { .dry_run = 1 };
	assert_int_equal(cycle_opts(f, &dry), 0);
	assert_string_equal(f->res.status, "dry-run");
	assert_int_equal(f->res.changes_would_hold, 1);
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	/* The rows come back: nothing was lost in the tenant, nothing to send. */
	for (int i = 8; i < 10; i++) {
		set_str(&f->site.dev[i].manufacturer, "Contoso");
		set_str(&f->site.dev[i].model, "Surface");
	}
	f->site.hw_rows = 10;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_string_equal(f->tenant.uploaded, "");
	/* Devices that leave take their rows with them: 4 of 10 gone, 4 rows fewer, nothing held. */
	for (uint32_t rid = 16777226; rid < 16777230; rid++)
		remove_device(&f->site, rid);
	f->site.hw_rows = 6;
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.removed, 4);
	assert_int_equal(f->res.counts.changes_held, 0);
}

/* While the changes are held, adds still go out and removals wait with them. */
static void held_changes_let_adds_through(void **state)
{
	struct fx *f = *state;
	hw_site(f, 4);
	f->cfg.sync_change_threshold = 2;
	assert_int_equal(cycle(f, 0, 0), 0);
	hw_lost(f, 0, 0);
	remove_device(&f->site, 16777223);
	add_device(&f->site, 16777230, "PC-NEW", "HW-N");
	assert_int_equal(cycle(f, 0, 0), CMB_EGUARD);
	assert_string_equal(f->tenant.uploaded, "PS1:16777230 ");
	assert_int_equal(f->res.counts.added, 1);
	assert_int_equal(f->res.counts.changes_held, 3);
	assert_int_equal(f->res.counts.removals_held, 1);
	assert_string_equal(f->tenant.removed, "");
	assert_non_null(strstr(cmb_error_last(), "Adds were uploaded; removals wait too"));
	assert_int_equal(cycle_changes(f, 3), 0);
	assert_string_equal(f->tenant.removed, "PS1:16777223 ");
	assert_int_equal(f->res.counts.changed, 3);
}

/* Below the thresholds a blanked field is an ordinary change. */
static void few_blanked_fields_are_changes(void **state)
{
	struct fx *f = *state;
	hw_site(f, 10);
	f->site.count_rows = 1;
	f->cfg.sync_change_threshold_percent = 20;
	assert_int_equal(cycle(f, 0, 0), 0);
	hw_lost(f, 9, 9);   /* 1 of 10: 10% */
	assert_int_equal(cycle(f, 0, 0), 0);
	assert_int_equal(f->res.counts.changed, 1);
	assert_int_equal(f->res.changes_would_hold, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(first_then_idle),
		T(checkin_times_wait_for_details_refresh),
		T(failed_read_changes_nothing),
		T(newer_duplicate_wins),
		T(deletion_guard_holds_then_approves),
		T(rejected_record_waits_for_a_change),
		T(earlier_version_hashes_are_rewritten),
		T(unmappable_record_is_kept),
		T(staging_writes_nothing),
		T(lost_reply_then_deleted_is_removed),
		T(never_applied_is_settled_by_not_found),
		T(in_flight_still_at_site_is_sent_again),
		T(in_flight_removals_count_for_the_deletion_guard),
		T(failed_read_keeps_in_flight),
		T(rejection_settles_only_its_own_upload),
		T(emptied_class_holds_changes),
		T(short_class_holds_changes),
		T(held_changes_let_adds_through),
		T(few_blanked_fields_are_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
