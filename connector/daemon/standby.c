/*
 * standby.c - the warm standby's import of the tenant's records into its
 * diff base (standby.h).
 */
#include "connector/daemon/standby.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "mapping/device.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* One record the tenant holds. */
struct held {
	char *id;
	char *client_id;         /* configurationManagerClientInformation.clientIdentifier, or NULL */
	char *aad_id;            /* azureADDeviceId, or NULL */
	yajl_val obj;
	char hash[65];           /* of its JSON: the hash a differing record is recorded with */
	int used;                /* matched a staged record or a known device */
};

/* A sorted index over one match key; keys held twice are left out (ambiguous). */
struct index {
	struct held **e;
	size_t n;
	size_t off;              /* offsetof the key in struct held */
};

struct import {
	const struct cmb_sync_env *env;
	int64_t cycle;
	int64_t now;
	struct held *h;
	size_t n, cap;
	struct index by_client, by_aad, by_id;
	struct cmb_standby_stats *st;
};

static const char *str_at(yajl_val v, const char *a, const char *b)
{
	const char *path[] = { a, b, NULL };
	yajl_val s = yajl_tree_get(v, path, yajl_t_string);
	return s ? s->u.string : NULL;
}

static int on_tenant_device(void *ud, const char *id, const char *json, size_t len)
{
	struct import *im = ud;
	char eb[128];
	char *copy = xstrndup(json, len);
	yajl_val obj = yajl_tree_parse(copy, eb, sizeof(eb));
	free(copy);
	if (!obj)
		return cmb_error_set(CMB_EPROTO, "tenant device %s: not JSON: %s", id, eb);
	if (im->n == im->cap) {
		im->cap = im->cap ? im->cap * 2 : 1024;
		im->h = xrealloc(im->h, im->cap * sizeof(*im->h));
	}
	struct held *h = &im->h[im->n++];
	memset(h, 0, sizeof(*h));
	h->id = xstrdup(id);
	const char *c = str_at(obj, "configurationManagerClientInformation", "clientIdentifier");
	const char *a = str_at(obj, "azureADDeviceId", NULL);
	h->client_id = c && *c ? xstrdup(c) : NULL;
	h->aad_id = a && *a ? xstrdup(a) : NULL;
	h->obj = obj;
	cmb_sha256_hex(json, len, h->hash);
	return 0;
}

static const char *key_of(const struct held *h, size_t off)
{
	return *(char *const *)((const char *)h + off);
}

static size_t sort_off;
static int by_key(const void *a, const void *b)
{
	return strcmp(key_of(*(struct held *const *)a, sort_off), key_of(*(struct held *const *)b, sort_off));
}

static void index_build(struct index *ix, struct held *h, size_t n, size_t off)
{
	ix->off = off;
	ix->e = xcalloc(n + 1, sizeof(*ix->e));
	ix->n = 0;
	for (size_t i = 0; i < n; i++)
		if (key_of(&h[i], off))
			ix->e[ix->n++] = &h[i];
	sort_off = off;
	qsort(ix->e, ix->n, sizeof(*ix->e), by_key);
	/* A key the tenant holds twice says nothing about which record is ours: drop both. */
	size_t w = 0;
	for (size_t i = 0; i < ix->n;) {
		size_t j = i + 1;
		while (j < ix->n && strcmp(key_of(ix->e[i], off), key_of(ix->e[j], off)) == 0)
			j++;
		if (j == i + 1)
			ix->e[w++] = ix->e[i];
		i = j;
	}
	ix->n = w;
}

static struct held *index_find(const struct index *ix, const char *key)
{
	size_t lo = 0, hi = ix->n;
	while (key && lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(key, key_of(ix->e[mid], ix->off));
		if (c == 0)
			return ix->e[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- comparing what we would send with what the tenant holds ---- */

static int same_string(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return 1;
	/* Graph may write a time with a fraction or an offset: compare times as times. */
	char na[21], nb[21];
	return cmb_map_datetime(a, na) == 0 && cmb_map_datetime(b, nb) == 0 && strcmp(na, nb) == 0;
}

/*
 * 1 when have holds every value of want (objects: every member of want,
 * the tenant may hold more; arrays and scalars: equal). stable: the
 * check-in times (every lastSyncDateTime) are left out.
 */
static int covers(yajl_val want, yajl_val have, int stable)
{
	if (!have)
		return 0;
	if (YAJL_IS_OBJECT(want)) {
		if (!YAJL_IS_OBJECT(have))
			return 0;
		for (size_t i = 0; i < want->u.object.len; i++) {
			const char *k = want->u.object.keys[i];
			if (stable && strcmp(k, "lastSyncDateTime") == 0)
				continue;
			const char *path[] = { k, NULL };
			if (!covers(want->u.object.values[i], yajl_tree_get(have, path, yajl_t_any), stable))
				return 0;
		}
		return 1;
	}
	if (YAJL_IS_ARRAY(want)) {
		if (!YAJL_IS_ARRAY(have) || have->u.array.len != want->u.array.len)
			return 0;
		for (size_t i = 0; i < want->u.array.len; i++)
			if (!covers(want->u.array.values[i], have->u.array.values[i], stable))
				return 0;
		return 1;
	}
	if (YAJL_IS_STRING(want))
		return YAJL_IS_STRING(have) && same_string(want->u.string, have->u.string);
	if (YAJL_IS_NUMBER(want))
		return YAJL_IS_NUMBER(have) && strcmp(want->u.number.r, have->u.number.r) == 0;
	return want->type == have->type; /* true, false, null */
}

/* ---- the import ---- */

static int on_staged(void *ud, const char *key, const char *hash, const char *stable_hash,
		     enum cmb_pending_kind kind, const char *json, size_t len)
{
	(void)kind;
	struct import *im = ud;
	char eb[128];
	char *copy = xstrndup(json, len);
	yajl_val rec = yajl_tree_parse(copy, eb, sizeof(eb));
	free(copy);
	const char *pm[] = { "managedDevice", NULL };
	yajl_val md = rec ? yajl_tree_get(rec, pm, yajl_t_object) : NULL;
	struct held *h = NULL;
	if (md) {
		h = index_find(&im->by_client,
			       str_at(md, "configurationManagerClientInformation", "clientIdentifier"));
		if (!h)
			h = index_find(&im->by_aad, str_at(md, "azureADDeviceId", NULL));
	}
	int rc = 0;
	if (h && !h->used) {
		h->used = 1;
		const char *full, *stable;
		if (covers(md, h->obj, 0)) {
			full = hash, stable = stable_hash, im->st->same++;
		} else if (covers(md, h->obj, 1)) {
			full = h->hash, stable = stable_hash, im->st->refresh++;
		} else {
			full = h->hash, stable = h->hash, im->st->differ++;
		}
		rc = cmb_state_device_put(im->env->state, key, h->id, full, stable, im->cycle, im->now);
	}
	yajl_tree_free(rec);
	return rc;
}

/* Each known device: still held by the tenant (its record is used), or forgotten. */
static int on_known(void *ud, const char *key, const char *tenant_id)
{
	struct import *im = ud;
	struct held *h = index_find(&im->by_id, tenant_id);
	if (h) {
		h->used = 1;
		return 0;
	}
	im->st->forgotten++;
	return cmb_state_device_delete(im->env->state, key);
}

static int apply(struct import *im)
{
	struct cmb_state *st = im->env->state;
	int rc = cmb_state_begin(st);
	if (rc < 0)
		return rc;
	if ((rc = cmb_state_pending_each(st, im->cycle, NULL, SIZE_MAX, on_staged, im)) == 0 &&
	    (rc = cmb_state_devices_unseen(st, -1, on_known, im)) == 0)
		rc = cmb_state_commit(st);
	if (rc < 0)
		cmb_state_rollback(st);
	return rc;
}

static void import_free(struct import *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->h[i].id);
		free(im->h[i].client_id);
		free(im->h[i].aad_id);
		yajl_tree_free(im->h[i].obj);
	}
	free(im->h);
	free(im->by_client.e);
	free(im->by_aad.e);
	free(im->by_id.e);
}

int cmb_standby_import(const struct cmb_sync_env *env, int64_t cycle_id, struct cmb_standby_stats *out)
{
	struct cmb_standby_stats stats = { 0 };
	struct import im = { .env = env, .cycle = cycle_id, .now = cmb_now(), .st = &stats };
	if (env->cfg->mode != CMB_MODE_STAGING)
		return cmb_error_set(CMB_EINVAL, "standby: only a staging instance imports the tenant's records");
	if (!env->tenant->list_devices)
		return cmb_error_set(CMB_ECONFIG, "standby: the tenant adapter %s cannot list the tenant's devices",
				     env->tenant->name);
	int rc = env->tenant->list_devices(env->tenant_st, on_tenant_device, &im, &stats.pages);
	if (rc < 0) {
		cmb_error_wrap(rc, "standby: listing the tenant's devices (the diff base was left as it was)");
		goto done;
	}
	stats.tenant_records = (long)im.n;
	index_build(&im.by_client, im.h, im.n, offsetof(struct held, client_id));
	index_build(&im.by_aad, im.h, im.n, offsetof(struct held, aad_id));
	index_build(&im.by_id, im.h, im.n, offsetof(struct held, id));
	if ((rc = apply(&im)) < 0)
		goto done;
	for (size_t i = 0; i < im.n; i++)
		stats.unmatched += !im.h[i].used;
	*out = stats;
done:
	import_free(&im);
	return rc;
}
