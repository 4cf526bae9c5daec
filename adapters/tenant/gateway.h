/*
 * gateway.h - what the gateway tenant adapter shows beyond the adapter
 * table: its retry and rate-limit counters (for status, tests and benchmarks),
 * and the handle and token the notification channel shares.
 */
#ifndef CMB_TENANT_GATEWAY_H
#define CMB_TENANT_GATEWAY_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "adapters/tenant.h"

struct cmb_gateway_counters {
	long requests;            /* upload requests sent (DevicePost and CollectionPost, retries included) */
	long token_requests;      /* token endpoint requests (retries and renewals included) */
	long retries;             /* retries spent from this cycle's budget (uploads and tokens) */
	double retry_waited_s;    /* seconds this cycle waited before retries (backoff and Retry-After) */
	double rate_waited_s;     /* seconds waited for the rate limit, over the adapter's life */
	long replays;             /* batches the tenant answered with "replayed":true */
	long token_renewals;      /* tokens renewed after a 401 */
};

/* st is the state cmb_tenant_gateway.open returned. */
void cmb_gateway_counters(void *st, struct cmb_gateway_counters *out);

struct cmb_http;
struct cmb_auth;
struct cmb_retry_policy;

/*
 * What the notification channel shares with the uploads: one HTTP handle
 * and one token for the tenant. cmb_gateway_share takes a reference on the
 * adapter's state (so either may be closed first); unshare drops it.
 */
struct cmb_gateway_shared {
	struct cmb_http *http;
	struct cmb_auth *auth;
	const char *gateway_url;
	const char *principal;
	const struct cmb_retry_policy *policy;
	void *owner;
};
void cmb_gateway_share(void *st, struct cmb_gateway_shared *out);
void cmb_gateway_unshare(struct cmb_gateway_shared *sh);

/*
 * What the replies say, without I/O (root is the tenant's JSON object,
 * cmb_tenant_reply_json). An upload reply: its results and removals
 * reported through cb, checked to answer exactly for keys[0..n) and
 * removals[0..n_removals), in order, for batch_id (CMB_EPROTO otherwise;
 * url names the endpoint in messages). A managedDevices page: each device
 * passed to cb as JSON; *next is its @odata.nextLink (the caller's) or NULL.
 */
int cmb_gateway_read_outcomes(yajl_val root, const char *url, const char *batch_id, const char *const *keys, size_t n,
			      const char *const *removals, size_t n_removals, cmb_tenant_outcome_cb cb, void *ctx);
int cmb_gateway_read_devices(yajl_val root, const char *url, cmb_tenant_device_cb cb, void *ctx, char **next);

#endif
