/*
 * gateway.h - what the gateway tenant adapter shows beyond the adapter
 * table: its retry and rate-limit counters (for status, tests and benchmarks),
 * and the handle and token the notification channel shares.
 */
#ifndef CMB_TENANT_GATEWAY_H
#define CMB_TENANT_GATEWAY_H

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

#endif
