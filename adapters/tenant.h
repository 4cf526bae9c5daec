/*
 * tenant.h - the tenant adapter table: how the connector writes to the cloud.
 */
#ifndef CMB_TENANT_H
#define CMB_TENANT_H

#include <stddef.h>
#include "../connector/config.h"
#include "../mapping/device.h"

#define CMB_TENANT_ADAPTER_VERSION 2

/* One record or removal of a batch, as the tenant judged it. */
struct cmb_tenant_outcome {
	const char *key;
	int is_removal;
	const char *status;      /* "created" "updated" "rejected" | "removed" "notFound" */
	const char *tenant_id;   /* managedDevice id (records that were applied) */
	const char *error;       /* "code: message" when rejected, else NULL */
};

typedef int (*cmb_tenant_outcome_cb)(void *ctx, const struct cmb_tenant_outcome *o);

struct cmb_tenant_batch {
	const char *batch_id;                     /* UUID; the same id on a retry */
	const struct cmb_tenant_record *records;  /* to create or update */
	size_t n_records;
	const char *const *removals;              /* keys to remove */
	size_t n_removals;
};

/* A configManagerCollection record (docs/wire-format.md §5), mapped by mapping/collection.c. */
struct cmb_tenant_collection_batch {
	const char *batch_id;
	const char *const *keys;                  /* "<site>:<CollectionID>" */
	const char *const *json;                  /* configManagerCollection objects (no id) */
	size_t n;
	const char *const *removals;              /* keys */
	size_t n_removals;
};

struct cmb_tenant_stats {
	long requests;
	size_t bytes_out;
	size_t bytes_in;
};

struct cmb_tenant_adapter {
	int version;             /* CMB_TENANT_ADAPTER_VERSION */
	const char *name;
	/* Creates state from cfg (reads the client secret file); *out is the caller's. No I/O. */
	int (*open)(void **out, const struct cmb_config *cfg);
	/* Obtains a token (and keeps it); fills *expires_in with its lifetime in seconds. */
	int (*check)(void *st, long *expires_in);
	/* Called at the start of every cycle (resets the cycle's retry budget); may be NULL. */
	void (*begin_cycle)(void *st);
	/*
	 * Sends one batch. Returns 0 when the tenant answered for the batch as a
	 * whole; each record and removal is then reported through cb (rejections
	 * included). A negative code means no answer for the batch: the caller
	 * may retry it with the same batch_id, which the tenant applies once.
	 */
	int (*upload)(void *st, const struct cmb_tenant_batch *batch, cmb_tenant_outcome_cb cb, void *ctx);
	/* Same contract as upload, for collections (CollectionPost). */
	int (*upload_collections)(void *st, const struct cmb_tenant_collection_batch *batch,
				  cmb_tenant_outcome_cb cb, void *ctx);
	void (*stats)(void *st, struct cmb_tenant_stats *out);
	void (*close)(void *st);
};

extern const struct cmb_tenant_adapter cmb_tenant_gateway;

#endif
