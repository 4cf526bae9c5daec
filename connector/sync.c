/*
 * sync.c - the sync engine (see sync.h for the order of a cycle).
 *
 * Phase 1, read: every site device is mapped and compared with the hash the
 * state holds; new and changed records are staged in the state's pending
 * table (on disk, so memory stays bounded by one record) and every device
 * read is marked seen. The whole phase is one transaction: a failed or
 * partial read is rolled back and changes nothing, here or in the tenant.
 * Phase 2, upload: staged records go out in batches; each acknowledged
 * record is written to the state in the batch's transaction.
 * Phase 3, removals: devices the state knows but this cycle did not see.
 */
#include "sync.h"
#include "error.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct read_ctx {
	const struct cmb_sync_env *env;
	const struct cmb_sync_opts *opts;
	struct cmb_sync_result *res;
	struct cmb_map_ctx map;
	int64_t cycle;
	int64_t now;
};

static int on_site_device(void *ud, const struct cmb_site_device *dev)
{
	struct read_ctx *c = ud;
	struct cmb_cycle_counts *n = &c->res->counts;
	struct cmb_state *st = c->env->state;
	struct cmb_tenant_record rec;
	char *reason = NULL;
	int rc = 0;

	if (c->env->stop && *c->env->stop)
		return cmb_error_set(CMB_ECANCELED, "stopped on request while reading the site");
	n->site_records++;
	int outcome = cmb_map_device(&c->map, dev, &rec, &reason);
	if (outcome == CMB_MAP_SKIP) {
		/* Out of scope: not marked seen, so a device that was uploaded before is removed. */
		n->skipped++;
		cmb_debug("device %u skipped: %s", dev->resource_id, reason);
		free(reason);
		return 0;
	}
	char *key = cmb_map_device_key(c->map.site_code, dev->resource_id);
	if (outcome == CMB_MAP_QUARANTINE) {
		/* Keep what the tenant has: a record we cannot map now is not a removal. */
		n->quarantined++;
		cmb_warn("device %s (ResourceID %u) quarantined: %s", key, dev->resource_id, reason);
		if ((rc = cmb_state_quarantine_put(st, key, reason, c->cycle, c->now)) == 0)
			rc = cmb_state_device_seen(st, key, c->cycle);
		free(reason);
		free(key);
		return rc;
	}
	n->utf8_repairs += rec.utf8_repairs;
	char stored[65];
	int known = cmb_state_device_get(st, rec.key, stored, NULL);
	if (known < 0 && known != CMB_ENOTFOUND) {
		rc = known;
		goto done;
	}
	int is_new = known == CMB_ENOTFOUND;
	int same = !is_new && strcmp(stored, rec.hash) == 0;
	if (same && !c->opts->full) {
		n->unchanged++;
	} else {
		rc = cmb_state_pending_add(st, c->cycle, rec.key, rec.hash, same ? 2 : is_new, rec.json,
					   rec.json_len);
		c->res->pending_uploads++;
	}
	if (rc == 0)
		rc = cmb_state_device_seen(st, rec.key, c->cycle);
	if (rc == 0)
		rc = cmb_state_quarantine_remove(st, rec.key);
done:
	free(key);
	cmb_tenant_record_clear(&rec);
	return rc;
}

/* ---- phase 2: upload staged records ---- */

struct batch_ctx {
	const struct cmb_sync_env *env;
	struct cmb_sync_result *res;
	int64_t cycle;
	int64_t now;
	struct cmb_tenant_record *recs;
	int *is_new;
	size_t n, cap;
	char *last_key;
};

static int collect_pending(void *ud, const char *key, const char *hash, int is_new, const char *json, size_t len)
{
	struct batch_ctx *b = ud;
	struct cmb_tenant_record *r = &b->recs[b->n];
	memset(r, 0, sizeof(*r));
	r->key = xstrdup(key);
	r->json = xstrndup(json, len);
	r->json_len = len;
	snprintf(r->hash, sizeof(r->hash), "%s", hash);
	b->is_new[b->n] = is_new;
	b->n++;
	free(b->last_key);
	b->last_key = xstrdup(key);
	return 0;
}

static int on_upload_outcome(void *ud, const struct cmb_tenant_outcome *o)
{
	struct batch_ctx *b = ud;
	struct cmb_state *st = b->env->state;
	struct cmb_cycle_counts *n = &b->res->counts;
	if (o->is_removal) {
		if (strcmp(o->status, "removed") == 0 || strcmp(o->status, "notFound") == 0) {
			n->removed++;
			return cmb_state_device_delete(st, o->key);
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
		if (b->is_new[i] == 1)
			n->added++;
		else if (b->is_new[i] == 2)
			n->refreshed++;
		else
			n->changed++;
		return cmb_state_device_put(st, o->key, o->tenant_id, b->recs[i].hash, b->cycle, b->now);
	}
	if (strcmp(o->status, "rejected") == 0) {
		n->rejected++;
		cmb_warn("tenant rejected %s: %s", o->key, o->error ? o->error : "no reason given");
		char *reason = xasprintf("rejected by the tenant: %s", o->error ? o->error : "no reason given");
		int rc = cmb_state_quarantine_put(st, o->key, reason, b->cycle, b->now);
		free(reason);
		return rc;
	}
	return cmb_error_set(CMB_EPROTO, "tenant answered %s with unknown status '%s'", o->key, o->status);
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
	int rc = cmb_state_begin(env->state);
	if (rc < 0)
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
		char *after = b->last_key ? xstrdup(b->last_key) : NULL;
		rc = cmb_state_pending_each(b->env->state, b->cycle, after, b->cap, collect_pending, b);
		free(after);
		if (rc < 0 || b->n == 0)
			break;
		if (b->env->stop && *b->env->stop) {
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
		if (b->env->stop && *b->env->stop)
			return cmb_error_set(CMB_ECANCELED, "stopped on request while removing");
		rc = send_batch(b, (const char *const *)l->keys + off, k);
	}
	return rc;
}

int cmb_sync_run(const struct cmb_sync_env *env, const struct cmb_sync_opts *opts, struct cmb_sync_result *res)
{
	const struct cmb_config *cfg = env->cfg;
	struct cmb_state *st = env->state;
	struct keylist unseen = { 0 };
	int rc, in_txn = 0;
	double t0 = cmb_now_mono();
	const char *kind = opts->full ? "full" : "delta";

	memset(res, 0, sizeof(*res));
	int64_t now = cmb_now();
	if ((rc = cmb_state_cycle_begin(st, kind, now, &res->cycle_id)) < 0)
		return rc;
	char cid[32];
	snprintf(cid, sizeof(cid), "cycle-%lld", (long long)res->cycle_id);
	cmb_log_set_cid(cid);
	cmb_info("%s sync of site %s started%s", kind, cfg->site_code, opts->dry_run ? " (dry run)" : "");

	struct read_ctx rctx = {
		.env = env, .opts = opts, .res = res, .cycle = res->cycle_id, .now = now,
		.map = { .site_code = cfg->site_code },
	};
	const char *coll[1] = { cfg->site_collection };
	if (cfg->site_collection) {
		rctx.map.collection_ids = coll;
		rctx.map.n_collection_ids = 1;
	}

	if (env->site->begin_cycle)
		env->site->begin_cycle(env->site_st);
	if (env->tenant->begin_cycle)
		env->tenant->begin_cycle(env->tenant_st);

	/* Phase 1: read. Leftovers of an interrupted cycle are dropped first. */
	if ((rc = cmb_state_begin(st)) < 0)
		goto done;
	in_txn = 1;
	if ((rc = cmb_state_pending_clear(st)) < 0)
		goto done;
	rc = env->site->read_devices(env->site_st, on_site_device, &rctx, &res->site);
	if (rc < 0) {
		cmb_error_wrap(rc, "reading the site (nothing was changed in the tenant)");
		goto done;
	}
	if ((rc = cmb_state_commit(st)) < 0)
		goto done;
	in_txn = 0;
	if ((rc = cmb_state_devices_unseen(st, res->cycle_id, collect_unseen, &unseen)) < 0)
		goto done;
	res->pending_removals = (long)unseen.n;
	cmb_info("site read: %ld devices, %ld in scope, %ld unchanged, %ld to upload, %ld to remove",
		 res->counts.site_records, res->counts.site_records - res->counts.skipped, res->counts.unchanged,
		 res->pending_uploads, res->pending_removals);

	if (opts->dry_run || cfg->mode == CMB_MODE_STAGING)
		goto done;

	/* Phases 2 and 3. */
	struct batch_ctx b = { .env = env, .res = res, .cycle = res->cycle_id, .now = now };
	b.cap = cfg->tenant_batch_size > 0 ? (size_t)cfg->tenant_batch_size : 500;
	b.recs = xcalloc(b.cap, sizeof(*b.recs));
	b.is_new = xcalloc(b.cap, sizeof(*b.is_new));
	rc = upload_pending(&b);
	if (rc == 0)
		rc = send_removals(&b, &unseen);
	batch_reset(&b);
	free(b.recs);
	free(b.is_new);
	free(b.last_key);
	if (rc < 0)
		cmb_error_wrap(rc, "uploading to the tenant");
	if (env->tenant->stats)
		env->tenant->stats(env->tenant_st, &res->tenant);

done:
	if (in_txn)
		cmb_state_rollback(st);
	if (rc == 0 && (cfg->mode != CMB_MODE_STAGING && !opts->dry_run))
		cmb_state_pending_clear(st);
	keylist_free(&unseen);
	res->seconds = cmb_now_mono() - t0;
	snprintf(res->status, sizeof(res->status), "%s",
		 rc < 0 ? "failed" : (opts->dry_run || cfg->mode == CMB_MODE_STAGING) ? "dry-run" : "ok");
	char *err = rc < 0 ? xstrdup(cmb_error_last()) : NULL;
	int erc = cmb_state_cycle_end(st, res->cycle_id, cmb_now(), res->status, &res->counts, err);
	if (rc < 0)
		cmb_error_set(rc, "%s", err);
	free(err);
	if (rc == 0 && erc < 0)
		rc = erc;
	cmb_info("%s sync %s in %.2f s: %ld added, %ld changed, %ld refreshed, %ld removed, %ld rejected, "
		 "%ld quarantined, %ld upload requests",
		 kind, res->status, res->seconds, res->counts.added, res->counts.changed, res->counts.refreshed,
		 res->counts.removed,
		 res->counts.rejected, res->counts.quarantined, res->counts.upload_requests);
	cmb_log_set_cid(NULL);
	return rc;
}
