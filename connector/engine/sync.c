/*
 * sync.c - the sync engine (see sync.h for the order of a cycle).
 *
 * Phase 1, read: every site device is mapped and compared with what the
 * state holds; new and changed records are staged in the state's pending
 * table (on disk, so memory stays bounded by one record) and every device
 * read is marked seen. Active devices that share hardware with a newer one
 * are then dropped as duplicates, and the change guard weighs what the
 * read lost against the last good cycle. The whole phase is one
 * transaction: a failed or partial read is rolled back and changes
 * nothing, here or in the tenant.
 * Phase 2, upload: staged records go out in batches (only the adds when
 * the change guard holds the changes); each batch's keys are journaled in
 * flight before it is sent, and each acknowledged record is written to the
 * state, and taken out of flight, in the batch's transaction.
 * Phase 3, removals: keys the tenant holds or may hold (known devices,
 * keys in flight) that this cycle did not see, unless there are more than
 * the deletion guard allows or the change guard holds the cycle.
 * Phase 4, collections marked for cloud sync.
 *
 * "Changed" (docs/mapping.md): the stable hash leaves out the check-in
 * times. A record whose only difference is those times is sent only by a
 * details refresh, every [sync] details_interval (and by full cycles). A
 * key in flight still at the site is sent again whatever its hashes: the
 * tenant may hold another version. docs/safety.md has the rules.
 */
#include "connector/engine/sync.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "mapping/collection.h"
#include "connector/base/clock.h"
#include "connector/base/stop.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define META_LAST_DETAILS "last_details_refresh"
/* The change guard's baseline: meta "class_rows.<class>", the rows the class answered at the last good cycle. */
#define META_CLASS_ROWS "class_rows."

struct read_ctx {
	const struct cmb_sync_env *env;
	const struct cmb_sync_opts *opts;
	struct cmb_sync_result *res;
	struct cmb_map_ctx map;
	int64_t cycle;
	int64_t now;
	int details_due;
	long in_flight;          /* keys in flight when the cycle began: 0 spares the look-ups */
	char **quarantined;      /* the keys quarantined when the read began, sorted: a look-up only for those */
	size_t n_quarantined;
};

static int64_t parse_time_or_zero(const char *s)
{
	int64_t t;
	return s && cmb_time_parse(s, &t) == 0 ? t : 0;
}

/*
 * The optional site properties a record is built from, a bit each: which
 * of them a device reported is kept with its record (devices.fields), so a
 * change that would blank what the tenant has is seen (the change guard).
 * The bit is an index into this table and is stored: append only. The
 * check-in times are left out (they only move, see "Changed").
 */
enum site_field_type { FIELD_STR, FIELD_INT, FIELD_I64 };
static const struct site_field {
	const char *name;
	size_t offset;
	enum site_field_type type;
} site_fields[] = {
#define F(name, type) { #name, offsetof(struct cmb_site_device, name), type }
	F(sms_unique_id, FIELD_STR),   F(hardware_id, FIELD_STR),          F(smbios_guid, FIELD_STR),
	F(aad_device_id, FIELD_STR),   F(aad_tenant_id, FIELD_STR),        F(os_name_version, FIELD_STR),
	F(build, FIELD_STR),           F(build_ext, FIELD_STR),            F(sms_id, FIELD_STR),
	F(is_blocked, FIELD_INT),      F(client_version, FIELD_STR),       F(client_active_status, FIELD_INT),
	F(client_check_pass, FIELD_INT), F(device_os, FIELD_STR),          F(device_os_build, FIELD_STR),
	F(mdm_enrolled, FIELD_INT),    F(comgmt_policy_present, FIELD_INT), F(mdm_workloads, FIELD_I64),
	F(hybrid_aad_joined, FIELD_INT), F(aad_joined, FIELD_INT),         F(manufacturer, FIELD_STR),
	F(model, FIELD_STR),           F(serial_number, FIELD_STR),
#undef F
};
_Static_assert(sizeof(site_fields) / sizeof(site_fields[0]) < 63, "fields is a non-negative int64");

/* The bits of the properties dev reported (a string empty or absent, a number absent, is not reported). */
static int64_t site_fields_of(const struct cmb_site_device *dev)
{
	int64_t bits = 0;
	for (size_t i = 0; i < sizeof(site_fields) / sizeof(site_fields[0]); i++) {
		const void *at = (const char *)dev + site_fields[i].offset;
		const char *str = site_fields[i].type == FIELD_STR ? *(char *const *)at : NULL;
		int has = site_fields[i].type == FIELD_STR   ? str && *str
			  : site_fields[i].type == FIELD_INT ? *(const int *)at != -1
							     : *(const int64_t *)at != -1;
		if (has)
			bits |= (int64_t)1 << i;
	}
	return bits;
}

/* "manufacturer, model": the names of the properties in bits (newly allocated). */
static char *site_fields_names(int64_t bits)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < sizeof(site_fields) / sizeof(site_fields[0]); i++) {
		if (!(bits & ((int64_t)1 << i)))
			continue;
		char *next = xasprintf("%s%s%s", out, *out ? ", " : "", site_fields[i].name);
		free(out);
		out = next;
	}
	return out;
}

/* rec's JSON, written only when it is needed: to stage it, or to recognise an earlier version's hashes. */
static void with_json(struct read_ctx *c, const struct cmb_site_device *dev, struct cmb_tenant_record *rec)
{
	if (cmb_map_device_json(&c->map, dev, rec) != CMB_MAP_OK)
		cmb_fatal("mapping: a device mapped differently the second time");
}

static int stage(struct read_ctx *c, struct cmb_tenant_record *rec, const struct cmb_site_device *dev,
		 enum cmb_pending_kind kind)
{
	with_json(c, dev, rec);
	c->res->pending_uploads++;
	int rc = cmb_state_pending_add(c->env->state, c->cycle, rec->key, rec->hash, rec->stable_hash, kind, rec->json,
				       rec->json_len);
	return rc < 0 ? rc : cmb_state_pending_fields(c->env->state, rec->key, site_fields_of(dev));
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_quarantined(const struct read_ctx *c, const char *key)
{
	return c->n_quarantined && bsearch(&key, c->quarantined, c->n_quarantined, sizeof(char *), cmp_key);
}

/*
 * Decides what a mapped record needs: nothing, an upload as new, changed or
 * refreshed. A record in flight is sent again even when unchanged. Hashes
 * an earlier version stored (the SHA-256 of the record's JSON, docs/state.md
 * "Record hashes") are recognised and rewritten, so an upgrade sends nothing.
 */
static int diff_record(struct read_ctx *c, struct cmb_tenant_record *rec, const struct cmb_site_device *dev,
		       int in_flight)
{
	struct cmb_state *st = c->env->state;
	struct cmb_cycle_counts *n = &c->res->counts;
	enum cmb_quarantine_kind qkind;
	char qhash[65];
	/* Keys are read once a cycle: one quarantined by this read is not read again. */
	int rc = is_quarantined(c, rec->key) ? cmb_state_quarantine_get(st, rec->key, &qkind, qhash) : CMB_ENOTFOUND;
	if (rc == 0) {
		if (qkind == CMB_QUARANTINE_REJECTED && strcmp(qhash, rec->hash) != 0) {
			with_json(c, dev, rec);
			if (strcmp(qhash, rec->legacy_hash) == 0) {
				if ((rc = cmb_state_quarantine_rehash(st, rec->key, rec->hash)) < 0)
					return rc;
				memcpy(qhash, rec->hash, sizeof(qhash));
			}
		}
		if (qkind == CMB_QUARANTINE_REJECTED && strcmp(qhash, rec->hash) == 0) {
			/* The tenant refused exactly this record: wait until the site changes it. */
			n->quarantined++;
			return 0;
		}
		if ((rc = cmb_state_quarantine_remove(st, rec->key)) < 0)
			return rc;
	} else if (rc != CMB_ENOTFOUND) {
		return rc;
	}

	char hash[65], stable[65];
	rc = cmb_state_device_get(st, rec->key, hash, stable, NULL);
	if (rc == CMB_ENOTFOUND)
		return stage(c, rec, dev, CMB_PENDING_ADD);
	if (rc < 0)
		return rc;
	if (strcmp(stable, rec->stable_hash) != 0) {
		with_json(c, dev, rec);
		if (strcmp(stable, rec->legacy_stable_hash) != 0)
			return stage(c, rec, dev, CMB_PENDING_CHANGE);
		/*
		 * The record the tenant has, under an earlier version's hashes. The
		 * full hash is rewritten only when the check-in times match too: when
		 * they moved, the old one stays, unequal to any digest, so the details
		 * refresh still sends them.
		 */
		int same = strcmp(hash, rec->legacy_hash) == 0;
		if ((rc = cmb_state_device_rehash(st, rec->key, same ? rec->hash : hash, rec->stable_hash)) < 0)
			return rc;
		if (same)
			memcpy(hash, rec->hash, sizeof(hash));
	}
	if (in_flight || (strcmp(hash, rec->hash) != 0 ? c->details_due : c->opts->full))
		return stage(c, rec, dev, CMB_PENDING_REFRESH);
	n->unchanged++;
	return 0;
}

/* Marks key seen: as a known device, and as a key in flight (*in_flight says whether it is one). */
static int mark_seen(struct read_ctx *c, const char *key, int *in_flight)
{
	int rc = cmb_state_device_seen(c->env->state, key, c->cycle);
	*in_flight = 0;
	if (rc == 0 && c->in_flight)
		rc = cmb_state_inflight_seen(c->env->state, key, c->cycle, in_flight);
	return rc;
}

static int on_site_device(void *ud, const struct cmb_site_device *dev)
{
	struct read_ctx *c = ud;
	struct cmb_cycle_counts *n = &c->res->counts;
	struct cmb_state *st = c->env->state;
	struct cmb_tenant_record rec;
	char *reason = NULL;
	int rc = 0, in_flight;

	if (cmb_stop_requested())
		return cmb_error_set(CMB_ECANCELED, "stopped on request while reading the site");
	n->site_records++;
	int outcome = cmb_map_device_digest(&c->map, dev, &rec, &reason);
	if (outcome == CMB_MAP_SKIP) {
		/* Out of scope: not marked seen, so a device that was uploaded before is removed. */
		n->skipped++;
		cmb_debug("device %u skipped: %s", dev->resource_id, reason);
		free(reason);
		return 0;
	}
	if (outcome == CMB_MAP_QUARANTINE) {
		/* Keep what the tenant has: a record we cannot map now is not a removal. */
		char *key = cmb_map_device_key(c->map.site_code, dev->resource_id);
		n->quarantined++;
		cmb_warn("device %s (ResourceID %u) quarantined: %s", key, dev->resource_id, reason);
		if ((rc = cmb_state_quarantine_put(st, key, CMB_QUARANTINE_MAPPING, reason, NULL, c->cycle, c->now)) == 0)
			rc = mark_seen(c, key, &in_flight);
		free(reason);
		free(key);
		return rc;
	}
	n->utf8_repairs += rec.utf8_repairs;
	cmb_map_tally_add(&c->res->devices, &rec);
	if (rec.no_entra_id)
		n->no_entra_id++;
	if (rec.unknown_workload_bits) {
		n->unknown_workloads++;
		cmb_debug("device %s reports co-management flag bits mapping does not know: 0x%llx", rec.key,
			  (unsigned long long)rec.unknown_workload_bits);
	}
	if ((rc = cmb_state_identity_add(st, rec.key, dev->hardware_id, dev->smbios_guid,
					 parse_time_or_zero(dev->last_active_time), dev->resource_id)) == 0 &&
	    (rc = mark_seen(c, rec.key, &in_flight)) == 0)
		rc = diff_record(c, &rec, dev, in_flight);
	cmb_tenant_record_clear(&rec);
	return rc;
}

/* A device that shares hardware with a newer one: not uploaded, and removed if it was. */
static int on_duplicate(void *ud, const char *key, const char *winner)
{
	struct read_ctx *c = ud;
	struct cmb_state *st = c->env->state;
	int staged = 0, rc;
	char *reason = xasprintf("duplicate: shares its HardwareID or SMBIOSGUID with the newer %s, "
				 "which is uploaded instead",
				 winner);
	if ((rc = cmb_state_pending_remove(st, c->cycle, key, &staged)) == 0 &&
	    (rc = cmb_state_device_unsee(st, key, c->cycle)) == 0)
		rc = cmb_state_quarantine_put(st, key, CMB_QUARANTINE_DUPLICATE, reason, NULL, c->cycle, c->now);
	if (staged)
		c->res->pending_uploads--;
	c->res->counts.duplicates++;
	/* Duplicates persist from cycle to cycle: one line each at debug, the count in the cycle summary. */
	cmb_debug("device %s is a %s", key, reason);
	free(reason);
	return rc;
}

/* ---- phase 2: upload staged records ---- */

struct batch_ctx {
	const struct cmb_sync_env *env;
	struct cmb_sync_result *res;
	int64_t cycle;
	int64_t now;
	struct cmb_tenant_record *recs;
	enum cmb_pending_kind *kind;
	size_t n, cap;
	size_t visited;          /* staged records read for this batch, held ones included */
	int adds_only;           /* the change guard holds the changes: only adds go out */
	char *last_key;
};

static int collect_pending(void *ud, const char *key, const char *hash, const char *stable_hash,
			   enum cmb_pending_kind kind, const char *json, size_t len)
{
	struct batch_ctx *b = ud;
	b->visited++;
	free(b->last_key);
	b->last_key = xstrdup(key);
	if (b->adds_only && kind != CMB_PENDING_ADD)
		return 0;
	struct cmb_tenant_record *r = &b->recs[b->n];
	memset(r, 0, sizeof(*r));
	r->key = xstrdup(key);
	r->json = xstrndup(json, len);
	r->json_len = len;
	snprintf(r->hash, sizeof(r->hash), "%s", hash);
	snprintf(r->stable_hash, sizeof(r->stable_hash), "%s", stable_hash);
	b->kind[b->n] = kind;
	b->n++;
	return 0;
}

static int on_upload_outcome(void *ud, const struct cmb_tenant_outcome *o)
{
	struct batch_ctx *b = ud;
	struct cmb_state *st = b->env->state;
	struct cmb_cycle_counts *n = &b->res->counts;
	int rc;
	if (o->is_removal) {
		/* notFound settles a key in flight the tenant never applied (wire-format.md §3). */
		if (strcmp(o->status, "removed") == 0 || strcmp(o->status, "notFound") == 0) {
			n->removed++;
			if ((rc = cmb_state_device_delete(st, o->key)) < 0)
				return rc;
			return cmb_state_inflight_settle(st, o->key, 0);
		}
		return cmb_error_set(CMB_EPROTO, "tenant answered removal of %s with unknown status '%s'", o->key,
				     o->status);
	}
	size_t i;
	for (i = 0; i < b->n && strcmp(b->recs[i].key, o->key) != 0; i++)
		;
	if (i == b->n)
		return cmb_error_set(CMB_EPROTO, "tenant answered for key %s, which was not in the batch", o->key);
	if (strcmp(o->status, "created") == 0 || strcmp(o->status, "updated") == 0) {
		if (!o->tenant_id || !*o->tenant_id)
			return cmb_error_set(CMB_EPROTO, "tenant accepted %s without a device id", o->key);
		if (b->kind[i] == CMB_PENDING_ADD)
			n->added++;
		else if (b->kind[i] == CMB_PENDING_REFRESH)
			n->refreshed++;
		else
			n->changed++;
		if ((rc = cmb_state_device_put(st, o->key, o->tenant_id, b->recs[i].hash, b->recs[i].stable_hash,
					       b->cycle, b->now)) < 0)
			return rc;
		return cmb_state_inflight_settle(st, o->key, 0);
	}
	if (strcmp(o->status, "rejected") == 0) {
		n->rejected++;
		cmb_warn("tenant rejected %s: %s", o->key, o->error ? o->error : "no reason given");
		char *reason = xasprintf("rejected by the tenant: %s", o->error ? o->error : "no reason given");
		rc = cmb_state_quarantine_put(st, o->key, CMB_QUARANTINE_REJECTED, reason, b->recs[i].hash, b->cycle, b->now);
		free(reason);
		/* Nothing of this upload was applied; an earlier one in doubt may have been, and stays in flight. */
		if (rc == 0)
			rc = cmb_state_inflight_settle(st, o->key, b->cycle);
		return rc;
	}
	return cmb_error_set(CMB_EPROTO, "tenant answered %s with unknown status '%s'", o->key, o->status);
}

/*
 * The intent before the side effect: the batch's records are journaled in
 * flight, committed, before the batch is sent, so a reply lost or a kill
 * mid-upload leaves them "maybe in the tenant", never forgotten.
 */
static int journal_batch(struct batch_ctx *b, const char *batch_id)
{
	struct cmb_state *st = b->env->state;
	if (b->n == 0)
		return 0;
	int rc = cmb_state_begin(st);
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		rc = cmb_state_inflight_put(st, b->recs[i].key, batch_id, b->cycle, b->now);
	if (rc == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

/* Sends one batch and records its outcomes in one state transaction. */
static int send_batch(struct batch_ctx *b, const char *const *removals, size_t n_removals)
{
	const struct cmb_sync_env *env = b->env;
	char batch_id[37];
	cmb_uuid4(batch_id);
	struct cmb_tenant_batch batch = {
		.batch_id = batch_id, .records = b->recs, .n_records = b->n,
		.removals = removals, .n_removals = n_removals,
	};
	int rc = journal_batch(b, batch_id);
	if (rc < 0 || (rc = cmb_state_begin(env->state)) < 0)
		return rc;
	rc = env->tenant->upload(env->tenant_st, &batch, on_upload_outcome, b);
	b->res->counts.upload_requests++;
	if (rc < 0) {
		cmb_state_rollback(env->state);
		return rc;
	}
	return cmb_state_commit(env->state);
}

static void batch_reset(struct batch_ctx *b)
{
	for (size_t i = 0; i < b->n; i++)
		cmb_tenant_record_clear(&b->recs[i]);
	b->n = 0;
}

static int upload_pending(struct batch_ctx *b)
{
	int rc = 0;
	for (;;) {
		batch_reset(b);
		b->visited = 0;
		char *after = b->last_key ? xstrdup(b->last_key) : NULL;
		rc = cmb_state_pending_each(b->env->state, b->cycle, after, b->cap, collect_pending, b);
		free(after);
		if (rc < 0 || b->visited == 0)
			break;
		if (b->n == 0)
			continue;   /* a page of held changes only */
		if (cmb_stop_requested()) {
			rc = cmb_error_set(CMB_ECANCELED, "stopped on request while uploading");
			break;
		}
		if ((rc = send_batch(b, NULL, 0)) < 0)
			break;
	}
	batch_reset(b);
	return rc;
}

/* ---- phase 3: removals ---- */

struct keylist {
	char **keys;
	size_t n, cap;
};

static int collect_unseen(void *ud, const char *key, const char *tenant_id)
{
	struct keylist *l = ud;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->keys = xrealloc(l->keys, l->cap * sizeof(*l->keys));
	}
	l->keys[l->n++] = xstrdup(key);
	return 0;
}

static void keylist_free(struct keylist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
}

static int send_removals(struct batch_ctx *b, const struct keylist *l)
{
	int rc = 0;
	batch_reset(b);
	for (size_t off = 0; off < l->n && rc == 0; off += b->cap) {
		size_t k = l->n - off < b->cap ? l->n - off : b->cap;
		if (cmb_stop_requested())
			return cmb_error_set(CMB_ECANCELED, "stopped on request while removing");
		rc = send_batch(b, (const char *const *)l->keys + off, k);
	}
	return rc;
}

/* The form of both guards: more than threshold, or more than percent of base. */
static int over_threshold(long n, long base, long threshold, long percent)
{
	return n > threshold || (base > 0 && n * 100 > percent * base);
}

/*
 * The deletion guard (Entra Connect's export deletion threshold, for the
 * same reason): a site that briefly reports nothing must not empty the
 * tenant. Returns 1 when the removals must be held.
 */
static int guard_trips(const struct cmb_config *cfg, long removals, long attached, long approved)
{
	if (removals == 0 || removals <= approved)
		return 0;
	return over_threshold(removals, attached, cfg->sync_delete_threshold, cfg->sync_delete_threshold_percent);
}

/* ---- the change guard ---- */

/* What the change guard decided. */
struct change_check {
	long changes;            /* staged records the tenant has (changes, refreshes): what it holds */
	int held;
	char *why;               /* what the read lost, when the guard trips (newly allocated) */
};

static void append_why(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append_why(char **why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *part = xvasprintf(fmt, ap);
	va_end(ap);
	char *next = xasprintf("%s%s%s", *why ? *why : "", *why ? "; " : "", part);
	free(part);
	free(*why);
	*why = next;
}

/* The rows of each class of the read at the last good cycle, -1 where there is none yet. */
static int class_baseline(struct cmb_state *st, const struct cmb_site_read_stats *site, long *base)
{
	for (size_t i = 0; i < site->n_classes; i++) {
		char *name = xasprintf(META_CLASS_ROWS "%s", site->classes[i].name);
		int64_t v = -1;
		int rc = cmb_state_meta_get(st, name, &v);
		free(name);
		if (rc < 0 && rc != CMB_ENOTFOUND)
			return rc;
		base[i] = rc == 0 ? (long)v : -1;
	}
	return 0;
}

static int class_baseline_set(struct cmb_state *st, const struct cmb_site_read_stats *site)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < site->n_classes; i++) {
		char *name = xasprintf(META_CLASS_ROWS "%s", site->classes[i].name);
		rc = cmb_state_meta_set(st, name, site->classes[i].rows);
		free(name);
	}
	return rc;
}

/*
 * The change guard (docs/safety.md): a secondary class answering far fewer
 * rows than at the last good cycle, beyond the rows of the devices that
 * left (classes[0]), or too many changes that would blank site properties
 * their record had, is a read to distrust, not a mass change: the changes
 * are held. Runs in the read's transaction; the baseline moves only with a
 * cycle that writes and is not held.
 */
static int change_guard(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts,
			struct cmb_sync_result *res, int write, struct change_check *out)
{
	const struct cmb_config *cfg = env->cfg;
	struct cmb_state *st = env->state;
	const struct cmb_site_read_stats *site = &res->site;
	long th = cfg->sync_change_threshold, pct = cfg->sync_change_threshold_percent;
	long base[CMB_SITE_MAX_CLASSES];
	struct cmb_pending_summary sum;
	int rc;
	if ((rc = cmb_state_pending_summary(st, res->cycle_id, &sum)) < 0 || (rc = class_baseline(st, site, base)) < 0)
		return rc;
	out->changes = sum.staged[CMB_PENDING_CHANGE] + sum.staged[CMB_PENDING_REFRESH];
	long gone = site->n_classes && base[0] > site->classes[0].rows ? base[0] - site->classes[0].rows : 0;
	for (size_t i = 1; i < site->n_classes; i++) {
		const struct cmb_site_class_rows *k = &site->classes[i];
		long lost = base[i] - k->rows - gone;
		if (base[i] > 0 && lost > 0 && over_threshold(lost, base[i], th, pct))
			append_why(&out->why, "%s answered %ld rows (%ld at the last good cycle) while %s answered %ld (%ld)",
				   k->name, k->rows, base[i], site->classes[0].name, site->classes[0].rows, base[0]);
	}
	int blank_over = sum.blanking && over_threshold(sum.blanking, cmb_state_device_count(st), th, pct);
	if ((out->why || blank_over) && sum.blanking) {
		char *names = site_fields_names(sum.lost);
		append_why(&out->why, "%ld records would lose site properties they had (%s)", sum.blanking, names);
		free(names);
	}
	out->held = out->why && out->changes > opts->allow_changes;
	if (out->why && !out->held && out->changes)
		cmb_info("change guard: %ld changes approved (--allow-changes %ld): %s", out->changes, opts->allow_changes,
			 out->why);
	res->changes_would_hold = out->held;
	if (write && !out->held)
		rc = class_baseline_set(st, site);
	return rc;
}

/* ---- phase 4: collections ---- */

struct coll_ctx {
	struct cmb_state *st;
	char **keys;      /* batch keys */
	char **json;
	char (*hash)[65];
	char (*created)[32];
	size_t n;
	long uploaded, removed, rejected;
};

static int on_collection_outcome(void *ud, const struct cmb_tenant_outcome *o)
{
	struct coll_ctx *c = ud;
	if (o->is_removal) {
		c->removed++;
		return cmb_state_collection_delete(c->st, o->key);
	}
	size_t i;
	for (i = 0; i < c->n && strcmp(c->keys[i], o->key) != 0; i++)
		;
	if (i == c->n)
		return cmb_error_set(CMB_EPROTO, "tenant answered for collection %s, which was not in the batch", o->key);
	if (strcmp(o->status, "rejected") == 0) {
		c->rejected++;
		cmb_warn("tenant rejected collection %s: %s", o->key, o->error ? o->error : "no reason given");
		return 0;
	}
	c->uploaded++;
	return cmb_state_collection_put(c->st, o->key, o->tenant_id, c->hash[i], c->created[i]);
}

/* Maps each collection read; stages those whose record changed in cc (what is staged, cc owns). */
static int stage_collections(const struct cmb_sync_env *env, const struct cmb_site_collection *colls, size_t n,
			     struct coll_ctx *cc)
{
	for (size_t i = 0; i < n; i++) {
		char *key = xasprintf("%s:%s", env->cfg->site_code, colls[i].collection_id);
		char old_hash[65] = "", created[32] = "";
		int known_rc = cmb_state_collection_get(env->state, key, old_hash, created);
		if (known_rc < 0 && known_rc != CMB_ENOTFOUND) {
			free(key);
			return known_rc;
		}
		struct cmb_map_collection_in in = {
			.collection_id = colls[i].collection_id, .name = colls[i].name,
			.last_change = colls[i].last_change, .hierarchy_id = colls[i].hierarchy_id,
			.hierarchy_name = colls[i].hierarchy_name, .created = created[0] ? created : colls[i].last_change,
		};
		char *json, *reason = NULL, hash[65], created_now[21];
		size_t len;
		if (cmb_map_collection(&in, &json, &len, hash, created_now, &reason) < 0) {
			cmb_warn("collection %s not uploaded: %s", key, reason);
			free(reason);
			free(key);
			continue;
		}
		if (strcmp(old_hash, hash) == 0) {
			free(json);
			free(key);
			continue;
		}
		cc->keys[cc->n] = key;
		cc->json[cc->n] = json;
		memcpy(cc->hash[cc->n], hash, sizeof(hash));
		/* createdDateTime is what the record carries: keep it from now on. */
		snprintf(cc->created[cc->n], sizeof(cc->created[cc->n]), "%s", created_now);
		cc->n++;
	}
	return 0;
}

/* The keys in known that ids (the configured collection ids) no longer list, as pointers into known. */
static size_t collection_removals(const struct cmb_config *cfg, char *const *known, size_t n_known,
				  const char *const *ids, size_t n_ids, const char **removals)
{
	size_t n_rem = 0;
	for (size_t k = 0; k < n_known; k++) {
		int listed = 0;
		for (size_t i = 0; i < n_ids && !listed; i++) {
			char *key = xasprintf("%s:%s", cfg->site_code, ids[i]);
			listed = strcmp(key, known[k]) == 0;
			free(key);
		}
		if (!listed)
			removals[n_rem++] = known[k];
	}
	return n_rem;
}

/* One CollectionPost for the staged collections and the removals; its outcomes in one transaction. */
static int send_collections(const struct cmb_sync_env *env, struct coll_ctx *cc, const char *const *removals,
			    size_t n_rem, struct cmb_sync_result *res)
{
	char batch_id[37];
	cmb_uuid4(batch_id);
	struct cmb_tenant_collection_batch batch = {
		.batch_id = batch_id, .keys = (const char *const *)cc->keys, .json = (const char *const *)cc->json,
		.n = cc->n, .removals = removals, .n_removals = n_rem,
	};
	int rc = cmb_state_begin(env->state);
	if (rc < 0)
		return rc;
	rc = env->tenant->upload_collections(env->tenant_st, &batch, on_collection_outcome, cc);
	res->counts.upload_requests++;
	if (rc < 0) {
		cmb_state_rollback(env->state);
		return rc;
	}
	return cmb_state_commit(env->state);
}

static int sync_collections(const struct cmb_sync_env *env, struct cmb_sync_result *res)
{
	const struct cmb_config *cfg = env->cfg;
	const char *list = cfg->site_cloud_sync_collections;
	if (!env->site->read_collections || !env->tenant->upload_collections)
		return cmb_error_set(CMB_ECONFIG, "[site] cloud_sync_collections: the %s adapter cannot read collections",
				     env->site->name);

	/* The configured ids ("A,B", normalised by the config). */
	char *copy = xstrdup(list ? list : "");
	const char **ids = NULL, **removals = NULL;
	size_t n_ids = 0, n_known = 0;
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		ids = xrealloc(ids, (n_ids + 1) * sizeof(*ids));
		ids[n_ids++] = tok;
	}
	struct cmb_site_collection *colls = NULL;
	char **known = NULL;
	struct coll_ctx cc = { .st = env->state };
	int rc = 0;
	if (n_ids && (rc = env->site->read_collections(env->site_st, ids, n_ids, &colls)) < 0) {
		n_ids = 0;
		goto done;
	}
	cc.keys = xcalloc(n_ids + 1, sizeof(*cc.keys));
	cc.json = xcalloc(n_ids + 1, sizeof(*cc.json));
	cc.hash = xcalloc(n_ids + 1, sizeof(*cc.hash));
	cc.created = xcalloc(n_ids + 1, sizeof(*cc.created));
	if ((rc = stage_collections(env, colls, n_ids, &cc)) < 0)
		goto done;
	/* Collections the state knows that are no longer listed are removed. */
	if ((rc = cmb_state_collection_keys(env->state, &known, &n_known)) < 0)
		goto done;
	removals = xcalloc(n_known + 1, sizeof(*removals));
	size_t n_rem = collection_removals(cfg, known, n_known, ids, n_ids, removals);
	if ((cc.n || n_rem) && (rc = send_collections(env, &cc, removals, n_rem, res)) < 0)
		goto done;
	res->collections_uploaded = cc.uploaded;
	res->collections_removed = cc.removed;
done:
	for (size_t i = 0; i < cc.n; i++) {
		free(cc.keys[i]);
		free(cc.json[i]);
	}
	free(cc.keys);
	free(cc.json);
	free(cc.hash);
	free(cc.created);
	free(removals);
	for (size_t k = 0; k < n_known; k++)
		free(known[k]);
	free(known);
	for (size_t i = 0; colls && i < n_ids; i++)
		cmb_site_collection_clear(&colls[i]);
	free(colls);
	free(ids);
	free(copy);
	if (rc < 0)
		cmb_error_wrap(rc, "syncing collections");
	return rc;
}

/* ---- what the site adapter learnt, kept between runs ---- */

#define LEARNT_SITE "site.schema"

static void learnt_load(const struct cmb_sync_env *env)
{
	char *text = NULL;
	if (!env->site->learnt_load)
		return;
	int rc = cmb_state_learnt_get(env->state, LEARNT_SITE, &text);
	if (rc < 0 && rc != CMB_ENOTFOUND)
		cmb_warn("state: %s", cmb_error_last());
	env->site->learnt_load(env->site_st, text);
	free(text);
}

/* After a good read, in its transaction; after a failed one, on its own (sync_run). */
static void learnt_save(const struct cmb_sync_env *env)
{
	char *text = env->site->learnt_save ? env->site->learnt_save(env->site_st) : NULL;
	if (!text)
		return;
	/* The caller's error (a failed read) is what the cycle reports: keep it. */
	char *kept = xstrdup(cmb_error_last());
	int rc = cmb_state_learnt_set(env->state, LEARNT_SITE, text, cmb_now());
	if (rc < 0)
		cmb_warn("state: %s (the site schema is learnt again next time)", cmb_error_last());
	cmb_error_set(rc < 0 ? rc : CMB_OK, "%s", kept);
	free(kept);
	free(text);
}

/* ---- the cycle ---- */

/*
 * Phase 1: read, map and diff in one transaction; on failure it is rolled
 * back and nothing changes here or in the tenant. Then the removals the
 * read implies (*unseen, the caller's) and whether the guard holds them.
 */
static int read_phase(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts, struct read_ctx *rctx,
		      int write, struct keylist *unseen, int *held, struct change_check *cg)
{
	struct cmb_state *st = env->state;
	struct cmb_sync_result *res = rctx->res;
	int rc;
	/* Leftovers of an interrupted cycle are dropped first; what is in flight stays. */
	if ((rc = cmb_state_begin(st)) < 0)
		return rc;
	if ((rc = cmb_state_pending_clear(st)) < 0 || (rc = cmb_state_identity_clear(st)) < 0)
		goto fail;
	if ((rctx->in_flight = cmb_state_inflight_count(st)) < 0) {
		rc = (int)rctx->in_flight;
		goto fail;
	}
	if ((rc = cmb_state_quarantine_keys(st, &rctx->quarantined, &rctx->n_quarantined)) < 0)
		goto fail;
	rc = env->site->read_devices(env->site_st, on_site_device, rctx, &res->site);
	for (size_t i = 0; i < rctx->n_quarantined; i++)
		free(rctx->quarantined[i]);
	free(rctx->quarantined);
	rctx->quarantined = NULL;
	rctx->n_quarantined = 0;
	if (rc < 0) {
		cmb_error_wrap(rc, "reading the site (nothing was changed in the tenant)");
		/* What the failed read taught about the site is kept, outside the read's rolled-back transaction. */
		cmb_state_rollback(st);
		learnt_save(env);
		return rc;
	}
	learnt_save(env);
	if ((rc = cmb_state_identity_losers(st, on_duplicate, rctx)) < 0 ||
	    (rc = change_guard(env, opts, res, write, cg)) < 0)
		goto fail;
	if ((rc = cmb_state_commit(st)) < 0)
		goto fail;
	if ((rc = cmb_state_devices_unseen(st, res->cycle_id, collect_unseen, unseen)) < 0)
		return rc;
	res->pending_removals = (long)unseen->n;
	*held = guard_trips(env->cfg, (long)unseen->n, cmb_state_device_count(st), opts->allow_deletes);
	res->removals_would_hold = *held;
	cmb_info("site read: %ld devices, %ld in scope, %ld unchanged, %ld duplicates, %ld to upload, %ld to remove%s; "
		 "%ld uploads were in flight",
		 res->counts.site_records, res->counts.site_records - res->counts.skipped, res->counts.unchanged,
		 res->counts.duplicates, res->pending_uploads, res->pending_removals,
		 rctx->details_due ? " (details refresh)" : "", rctx->in_flight);
	return 0;
fail:
	cmb_state_rollback(st);
	return rc;
}

/* The guards' error: what was held, why, and how to approve. */
static int held_error(const struct cmb_config *cfg, struct cmb_state *st, struct cmb_sync_result *res,
		      const struct keylist *unseen, int held_removals, const struct change_check *cg)
{
	char *msg = NULL;
	if (cg->held) {
		res->counts.changes_held = cg->changes;
		append_why(&msg,
			   "%ld changes held back: %s; more than [sync] change_threshold = %ld or "
			   "change_threshold_percent = %ld%%. Adds were uploaded%s. If the site really lost this "
			   "data, approve once with: cmbridge sync --allow-changes %ld",
			   cg->changes, cg->why, cfg->sync_change_threshold, cfg->sync_change_threshold_percent,
			   unseen->n ? "; removals wait too" : "", cg->changes);
	}
	if (held_removals)
		append_why(&msg,
			   "%zu removals held back: more than [sync] delete_threshold = %ld or "
			   "delete_threshold_percent = %ld%% of %ld attached devices; adds%s were "
			   "uploaded. If the site really lost these devices, approve once with: "
			   "cmbridge sync --allow-deletes %zu",
			   unseen->n, cfg->sync_delete_threshold, cfg->sync_delete_threshold_percent,
			   cmb_state_device_count(st), cg->held ? "" : " and changes", unseen->n);
	res->counts.removals_held = (long)unseen->n;
	int rc = cmb_error_set(CMB_EGUARD, "%s", msg);
	free(msg);
	return rc;
}

/*
 * Phases 2-4: uploads, then removals unless held, then collections. Adds
 * and changes go out even when removals are held; adds only when the
 * change guard holds the changes (and then the removals wait too).
 */
static int write_phase(const struct cmb_sync_env *env, struct cmb_sync_result *res, const struct keylist *unseen,
		       int held, const struct change_check *cg, int details_due, int64_t now)
{
	const struct cmb_config *cfg = env->cfg;
	struct cmb_state *st = env->state;
	struct batch_ctx b = { .env = env, .res = res, .cycle = res->cycle_id, .now = now, .adds_only = cg->held };
	b.cap = cfg->tenant_batch_size > 0 ? (size_t)cfg->tenant_batch_size : 500;
	b.recs = xcalloc(b.cap, sizeof(*b.recs));
	b.kind = xcalloc(b.cap, sizeof(*b.kind));
	int rc = upload_pending(&b);
	if (rc == 0 && !held && !cg->held)
		rc = send_removals(&b, unseen);
	batch_reset(&b);
	free(b.recs);
	free(b.kind);
	free(b.last_key);
	if (rc < 0)
		cmb_error_wrap(rc, "uploading to the tenant");
	if (rc == 0) {
		char **keys = NULL;
		size_t n_keys = 0;
		/* Also when the list became empty: what was uploaded before must be removed. */
		if ((rc = cmb_state_collection_keys(st, &keys, &n_keys)) == 0 &&
		    (cfg->site_cloud_sync_collections || n_keys))
			rc = sync_collections(env, res);
		for (size_t i = 0; i < n_keys; i++)
			free(keys[i]);
		free(keys);
	}
	/* Held refreshes carry check-in times too: the refresh is not done. */
	if (rc == 0 && details_due && !cg->held)
		rc = cmb_state_meta_set(st, META_LAST_DETAILS, now);
	if (env->tenant->stats)
		env->tenant->stats(env->tenant_st, &res->tenant);
	if (rc == 0 && (held || cg->held))
		rc = held_error(cfg, st, res, unseen, held, cg);
	return rc;
}

/* The cycle's end in the state and the log, whatever happened; returns rc, or the state's error. */
static int end_cycle(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts, struct cmb_sync_result *res,
		     const char *kind, int staging, int rc)
{
	snprintf(res->status, sizeof(res->status), "%s",
		 rc == CMB_EGUARD && res->counts.changes_held ? "change-threshold-exceeded"
		 : rc == CMB_EGUARD ? "deletion-threshold-exceeded"
		 : rc < 0	  ? "failed"
		 : opts->dry_run  ? "dry-run"
		 : staging	  ? "staging"
				  : "ok");
	char *err = rc < 0 ? xstrdup(cmb_error_last()) : NULL;
	int erc = cmb_state_cycle_end(env->state, res->cycle_id, cmb_now(), res->status, &res->counts, err);
	if (rc < 0)
		cmb_error_set(rc, "%s", err);
	if (rc == CMB_EGUARD)
		cmb_warn("%s", err);
	free(err);
	if (rc == 0 && erc < 0)
		rc = erc;
	cmb_info("%s sync %s in %.2f s: %ld added, %ld changed, %ld refreshed, %ld removed, %ld rejected, "
		 "%ld quarantined, %ld duplicates, %ld upload requests",
		 kind, res->status, res->seconds, res->counts.added, res->counts.changed, res->counts.refreshed,
		 res->counts.removed, res->counts.rejected, res->counts.quarantined, res->counts.duplicates,
		 res->counts.upload_requests);
	cmb_log_set_cid(NULL);
	return rc;
}

int cmb_sync_run(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts, struct cmb_sync_result *res)
{
	const struct cmb_config *cfg = env->cfg;
	struct cmb_state *st = env->state;
	struct keylist unseen = { 0 };
	struct change_check cg = { 0 };
	int rc, held = 0;
	double t0 = cmb_now_mono();
	const char *kind = opts->full ? "full" : "delta";
	int staging = cfg->mode == CMB_MODE_STAGING;
	int write = !opts->dry_run && !staging;

	memset(res, 0, sizeof(*res));
	int64_t now = cmb_now();
	if ((rc = cmb_state_cycle_begin(st, kind, now, &res->cycle_id)) < 0)
		return rc;
	char cid[32];
	snprintf(cid, sizeof(cid), "cycle-%lld", (long long)res->cycle_id);
	cmb_log_set_cid(cid);
	cmb_info("%s sync of site %s started%s", kind, cfg->site_code,
		 opts->dry_run ? " (dry run)" : staging ? " (staging: nothing is written to the tenant)" : "");
	if (env->site->begin_cycle)
		env->site->begin_cycle(env->site_st);
	if (env->tenant->begin_cycle)
		env->tenant->begin_cycle(env->tenant_st);
	learnt_load(env);

	int64_t last_details = 0;
	int mrc = cmb_state_meta_get(st, META_LAST_DETAILS, &last_details);
	if (mrc < 0 && mrc != CMB_ENOTFOUND) {
		rc = mrc;
		goto done;
	}
	struct read_ctx rctx = {
		.env = env, .opts = opts, .res = res, .cycle = res->cycle_id, .now = now,
		.map = { .site_code = cfg->site_code },
		.details_due = opts->full || mrc == CMB_ENOTFOUND || now - last_details >= cfg->sync_details_interval,
	};
	res->details_refresh = rctx.details_due;
	const char *coll[1] = { cfg->site_collection };
	if (cfg->site_collection) {
		rctx.map.collection_ids = coll;
		rctx.map.n_collection_ids = 1;
	}
	if ((rc = read_phase(env, opts, &rctx, write, &unseen, &held, &cg)) == 0 && write)
		rc = write_phase(env, res, &unseen, held, &cg, rctx.details_due, now);
done:
	if (rc == 0 && write && cmb_state_compact(st) < 0)
		cmb_warn("state: %s (the space is given back after a later cycle)", cmb_error_last());
	keylist_free(&unseen);
	free(cg.why);
	res->seconds = cmb_now_mono() - t0;
	return end_cycle(env, opts, res, kind, staging, rc);
}
