/*
 * watch.c - watched copies of the site and tenant tables (watch.h).
 */
#include "connector/daemon/watch.h"
#include "connector/daemon/progress.h"
#include "connector/base/stop.h"

#include <stddef.h>

static struct {
	struct cmb_site_adapter site;          /* copy of the real table, read_devices replaced */
	struct cmb_tenant_adapter tenant;      /* copy, begin_cycle and upload replaced */
	const struct cmb_site_adapter *real_site;
	const struct cmb_tenant_adapter *real_tenant;
	const struct cmb_config *cfg;
	struct cmb_state *state;
	long to_upload;                        /* -1: not counted yet this cycle */
	long uploaded, batches;
} w;

struct read_pass {
	cmb_site_device_cb cb;
	void *ctx;
	long devices;
};

static int on_device(void *ud, const struct cmb_site_device *dev)
{
	struct read_pass *rp = ud;
	int rc = rp->cb(rp->ctx, dev);
	rp->devices++;
	cmb_progress_read(rp->devices, w.cfg->site_page_size);
	return rc;
}

static int watched_read_devices(void *st, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats)
{
	struct read_pass rp = { .cb = cb, .ctx = ctx };
	cmb_progress_read(0, w.cfg->site_page_size);
	return w.real_site->read_devices(st, on_device, &rp, stats);
}

static void watched_begin_cycle(void *st)
{
	w.to_upload = -1;
	w.uploaded = w.batches = 0;
	if (w.real_tenant->begin_cycle)
		w.real_tenant->begin_cycle(st);
}

/* The records staged by the cycle under way (the newest): what the upload phase will send. */
static long staged_now(void)
{
	struct cmb_cycle *cy = NULL;
	size_t n = 0;
	long total = 0;
	if (cmb_state_cycles_recent(w.state, 1, &cy, &n) == 0 && n == 1)
		total = cmb_state_pending_count(w.state, cy[0].id);
	cmb_state_cycles_free(cy, n);
	return total < 0 ? 0 : total;
}

static int watched_upload(void *st, const struct cmb_tenant_batch *b, cmb_tenant_outcome_cb cb, void *ctx)
{
	if (w.to_upload < 0)
		w.to_upload = staged_now();
	cmb_progress_upload(w.to_upload, w.uploaded, w.batches);
	/* A SIGTERM now waits for this batch's answer, up to stop_timeout, then cuts it off. */
	cmb_stop_hold((double)w.cfg->stop_timeout);
	int rc = w.real_tenant->upload(st, b, cb, ctx);
	cmb_stop_release();
	if (rc == 0) {
		w.uploaded += (long)b->n_records;
		w.batches++;
		cmb_progress_upload(w.to_upload, w.uploaded, w.batches);
	}
	return rc;
}

void cmb_watch_sync_env(struct cmb_sync_env *env)
{
	if (!env->site || !env->tenant || env->site == &w.site)
		return; /* nothing to watch, or watched already */
	w.real_site = env->site;
	w.real_tenant = env->tenant;
	w.cfg = env->cfg;
	w.state = env->state;
	w.site = *env->site;
	w.tenant = *env->tenant;
	if (w.site.read_devices)
		w.site.read_devices = watched_read_devices;
	w.tenant.begin_cycle = watched_begin_cycle;
	if (w.tenant.upload)
		w.tenant.upload = watched_upload;
	env->site = &w.site;
	env->tenant = &w.tenant;
}
