/*
 * overlap.c - the site read and the handling of its devices on two
 * threads (overlap.h).
 *
 * The reader (the calling thread) fills a batch of device copies and hands
 * it over whole; the handler thread takes batches in order. A handler
 * error stops the reader at its next device; a reader error or the end of
 * the read lets the handler finish what it holds, then it stops. Errors
 * are per thread (base/error.c): the handler's message is carried back.
 */
#include "connector/engine/overlap.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64        /* devices handed over at once */
#define BATCHES 4       /* batches in the hand-over at most */

struct batch {
	struct cmb_site_device dev[BATCH];
	size_t n;
};

struct overlap {
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* a batch handed over or taken, the read ended, the handler failed */
	struct batch *queue[BATCHES];  /* handed over, not yet taken: head first */
	size_t head, count;
	int read_ended;
	int handler_rc;                /* the handler's first error, 0 while none */
	char handler_msg[2048];

	struct batch *filling;         /* the reader's */
	cmb_site_device_cb cb;
	void *ctx;
	int abandon;                   /* the read failed: what is handed over is dropped */
	char cid[64], component[24];   /* the reader's log context, for the handler's lines */
};

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		cmb_site_device_clear(&b->dev[i]);
	free(b);
}

/* Handler thread: the next batch in order, NULL at the end or after its own error. */
static struct batch *take(struct overlap *o)
{
	pthread_mutex_lock(&o->lock);
	while (o->count == 0 && !o->read_ended && o->handler_rc == 0)
		pthread_cond_wait(&o->changed, &o->lock);
	struct batch *b = NULL;
	if (o->count > 0 && o->handler_rc == 0 && !o->abandon) {
		b = o->queue[o->head];
		o->head = (o->head + 1) % BATCHES;
		o->count--;
		pthread_cond_broadcast(&o->changed);
	}
	pthread_mutex_unlock(&o->lock);
	return b;
}

static void handler_failed(struct overlap *o, int rc)
{
	pthread_mutex_lock(&o->lock);
	o->handler_rc = rc;
	snprintf(o->handler_msg, sizeof(o->handler_msg), "%s", cmb_error_last());
	pthread_cond_broadcast(&o->changed);
	pthread_mutex_unlock(&o->lock);
}

static void *handler_main(void *arg)
{
	struct overlap *o = arg;
	cmb_log_set_cid(o->cid[0] ? o->cid : NULL);
	cmb_log_set_component(o->component[0] ? o->component : NULL);
	struct batch *b;
	while ((b = take(o)) != NULL) {
		int rc = 0;
		for (size_t i = 0; i < b->n && rc == 0; i++)
			rc = o->cb(o->ctx, &b->dev[i]);
		batch_free(b);
		if (rc < 0) {
			handler_failed(o, rc);
			break;
		}
	}
	return NULL;
}

/* Reader: hands the batch being filled over; the handler's error when it has failed. */
static int hand_over(struct overlap *o)
{
	int rc = 0;
	pthread_mutex_lock(&o->lock);
	while (o->count == BATCHES && o->handler_rc == 0)
		pthread_cond_wait(&o->changed, &o->lock);
	if (o->handler_rc == 0) {
		o->queue[(o->head + o->count) % BATCHES] = o->filling;
		o->count++;
		o->filling = NULL;
		pthread_cond_broadcast(&o->changed);
	} else {
		rc = o->handler_rc;
	}
	pthread_mutex_unlock(&o->lock);
	return rc;
}

/* The handler's error, set again on the reader's thread. */
static int handler_error(struct overlap *o)
{
	pthread_mutex_lock(&o->lock);
	int rc = o->handler_rc;
	pthread_mutex_unlock(&o->lock);
	return rc < 0 ? cmb_error_set(rc, "%s", o->handler_msg) : 0;
}

static int on_read(void *ud, const struct cmb_site_device *dev)
{
	struct overlap *o = ud;
	if (!o->filling)
		o->filling = xcalloc(1, sizeof(*o->filling));
	cmb_site_device_copy(&o->filling->dev[o->filling->n++], dev);
	if (o->filling->n == BATCH && hand_over(o) < 0)
		return handler_error(o);
	return 0;
}

int cmb_overlap_read(const struct cmb_site_adapter *site, void *site_st, cmb_site_device_cb cb, void *ctx,
		     struct cmb_site_read_stats *stats)
{
	struct overlap *o = xcalloc(1, sizeof(*o));
	pthread_t handler;
	o->cb = cb;
	o->ctx = ctx;
	snprintf(o->cid, sizeof(o->cid), "%s", cmb_log_cid());
	snprintf(o->component, sizeof(o->component), "%s", cmb_log_component());
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->changed, NULL);
	if (pthread_create(&handler, NULL, handler_main, o) != 0) {
		/* No second thread to be had: the same work on this one. */
		pthread_cond_destroy(&o->changed);
		pthread_mutex_destroy(&o->lock);
		free(o);
		return site->read_devices(site_st, cb, ctx, stats);
	}
	int rc = site->read_devices(site_st, on_read, o, stats);
	if (rc == 0 && o->filling && o->filling->n)
		hand_over(o);
	pthread_mutex_lock(&o->lock);
	o->read_ended = 1;
	o->abandon = rc < 0;
	pthread_cond_broadcast(&o->changed);
	pthread_mutex_unlock(&o->lock);
	pthread_join(handler, NULL);
	/* The read's own error first; then the handler's (which may have stopped it). */
	int hrc = o->handler_rc;
	if (rc == 0 && hrc < 0)
		rc = cmb_error_set(hrc, "%s", o->handler_msg);
	batch_free(o->filling);
	for (size_t i = 0; i < o->count; i++)
		batch_free(o->queue[(o->head + i) % BATCHES]);
	pthread_cond_destroy(&o->changed);
	pthread_mutex_destroy(&o->lock);
	free(o);
	return rc;
}
