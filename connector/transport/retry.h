/*
 * retry.h - when and how long to wait before trying a request again, and
 * the client-side rate limit: the decisions the one request loop
 * (request.h) and the HTTP handles (http.h) make.
 *
 * Policy (docs/retry.md): only idempotent requests (GET, or a POST carrying
 * an idempotency key such as an upload's batchId) are retried; 429 and 503
 * wait what Retry-After says (delta-seconds, fractional allowed, or an
 * HTTP-date), capped; other transient failures (network errors, resets,
 * truncated bodies, 500/502/504) back off exponentially with full jitter,
 * capped. A cycle has a bounded retry budget: when it is spent the last
 * error is returned, so nothing loops forever.
 */
#ifndef CMB_RETRY_H
#define CMB_RETRY_H

#include <stdint.h>

struct cmb_retry_policy {
	int max_attempts;        /* per request, first try included; default 6 */
	double base_delay_s;     /* first backoff cap; default 0.5 */
	double max_delay_s;      /* cap of any single wait, Retry-After included; default 60 */
	long budget;             /* retries allowed for the whole cycle (shared); default 200 */
};

/* One cycle's retry state; shared by all requests of the cycle. */
struct cmb_retry_budget {
	struct cmb_retry_policy policy;
	long used;               /* retries spent so far */
	double waited_s;         /* seconds spent waiting */
};

void cmb_retry_budget_init(struct cmb_retry_budget *b, const struct cmb_retry_policy *policy);

/*
 * After attempt number `attempt` (0 = the first try) failed with rc (a
 * CMB_E* code) and, for HTTP answers, the raw Retry-After header (or NULL):
 * returns 1 and sets *wait_s when the request should be tried again, 0 when
 * not (final error, attempts or budget spent). Spends one unit of budget
 * when it returns 1.
 */
int cmb_retry_next(struct cmb_retry_budget *b, int attempt, int rc, const char *retry_after, double *wait_s);

/*
 * Parses a Retry-After value: delta-seconds ("120", "1.5") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", relative to now). 0 and *seconds set
 * (never negative), -1 when unparseable.
 */
int cmb_retry_after_parse(const char *value, int64_t now, double *seconds);

/* Sleeps for s seconds; returns early (CMB_ECANCELED) on the process-wide stop request (base/stop.h). */
int cmb_retry_sleep(double s);

/* Token bucket: rate requests per second, burst capacity. */
struct cmb_rate_limit {
	double rate;
	double burst;
	double tokens;
	double last;             /* monotonic seconds */
	double waited_s;         /* total time spent waiting for a token */
};

void cmb_rate_limit_init(struct cmb_rate_limit *rl, double rate, double burst);
/* Blocks until a token is available (no-op when rate <= 0), then takes it. */
void cmb_rate_limit_take(struct cmb_rate_limit *rl);

#endif
