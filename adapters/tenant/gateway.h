/*
 * gateway.h - what the gateway tenant adapter shows beyond the adapter
 * table: its retry and rate-limit counters (for status, tests and benchmarks).
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

#endif
