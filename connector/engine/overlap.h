/*
 * overlap.h - a site read whose devices are handled on a second thread.
 *
 * The site adapter reads (HTTP, gzip, JSON, the join) on the calling
 * thread while another thread runs the handler on the devices already
 * read, in the same order, so transfer and parsing overlap mapping and
 * the state on two cores. Memory stays bounded: a few batches of copies
 * are in the hand-over at most.
 */
#ifndef CMB_OVERLAP_H
#define CMB_OVERLAP_H

#include "adapters/site.h"

/*
 * Runs site->read_devices(site_st, ...) and cb(ctx, dev) for each device,
 * cb on a thread of its own (logging with the caller's correlation id and
 * component) and never two calls at once. Returns what read_devices returned, or cb's first
 * error (which stops the read), with the message set on the calling
 * thread. When it returns, cb runs no more.
 */
int cmb_overlap_read(const struct cmb_site_adapter *site, void *site_st, cmb_site_device_cb cb, void *ctx,
		     struct cmb_site_read_stats *stats);

#endif
