/*
 * retry.c - retry decisions, Retry-After parsing, backoff with full jitter,
 * and a token-bucket rate limit (see retry.h and docs/retry.md).
 */
#include "connector/transport/retry.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"
#include "connector/base/stop.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct cmb_retry_policy default_policy = {
	.max_attempts = 6, .base_delay_s = 0.5, .max_delay_s = 60.0, .budget = 200,
};

void cmb_retry_budget_init(struct cmb_retry_budget *b, const struct cmb_retry_policy *policy)
{
	memset(b, 0, sizeof(*b));
	b->policy = policy ? *policy : default_policy;
	if (b->policy.max_attempts <= 0)
		b->policy.max_attempts = default_policy.max_attempts;
	if (b->policy.base_delay_s <= 0)
		b->policy.base_delay_s = default_policy.base_delay_s;
	if (b->policy.max_delay_s <= 0)
		b->policy.max_delay_s = default_policy.max_delay_s;
	if (b->policy.budget < 0)
		b->policy.budget = 0;
}

int cmb_retry_after_parse(const char *value, int64_t now, double *seconds)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		char *end;
		errno = 0;
		double s = strtod(value, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno || *end || !isfinite(s) || s < 0)
			return -1;
		*seconds = s;
		return 0;
	}
	/* HTTP-date (RFC 9110 §5.6.7); curl_getdate reads all three legacy forms too. */
	time_t t = curl_getdate(value, NULL);
	if (t == (time_t)-1)
		return -1;
	double d = (double)((int64_t)t - now);
	*seconds = d > 0 ? d : 0;
	return 0;
}

static double uniform01(void)
{
	uint32_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)rand();
	return (double)r / 4294967296.0;
}

int cmb_retry_next(struct cmb_retry_budget *b, int attempt, int rc, const char *retry_after, double *wait_s)
{
	enum cmb_retry_class cls = cmb_error_retry_class(rc);
	if (cls == CMB_RETRY_NEVER)
		return 0;
	if (attempt + 1 >= b->policy.max_attempts || b->used >= b->policy.budget)
		return 0;
	double wait, ra;
	if (cls == CMB_RETRY_LATER && cmb_retry_after_parse(retry_after, cmb_now(), &ra) == 0) {
		wait = ra;
	} else {
		/* Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
		double cap = b->policy.base_delay_s * ldexp(1.0, attempt < 30 ? attempt : 30);
		if (cap > b->policy.max_delay_s)
			cap = b->policy.max_delay_s;
		wait = cap * uniform01();
	}
	if (wait > b->policy.max_delay_s)
		wait = b->policy.max_delay_s;
	b->used++;
	b->waited_s += wait;
	*wait_s = wait;
	return 1;
}

int cmb_retry_sleep(double s)
{
	double end = cmb_now_mono() + s;
	for (;;) {
		if (cmb_stop_requested())
			return cmb_error_set(CMB_ECANCELED, "stopped on request while waiting to retry");
		double left = end - cmb_now_mono();
		if (left <= 0)
			return 0;
		double step = left < 0.2 ? left : 0.2;
		struct timespec ts = { (time_t)step, (long)((step - (double)(time_t)step) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

void cmb_rate_limit_init(struct cmb_rate_limit *rl, double rate, double burst)
{
	memset(rl, 0, sizeof(*rl));
	rl->rate = rate;
	rl->burst = burst >= 1 ? burst : 1;
	rl->tokens = rl->burst;
	rl->last = cmb_now_mono();
}

void cmb_rate_limit_take(struct cmb_rate_limit *rl)
{
	if (rl->rate <= 0)
		return;
	for (;;) {
		double now = cmb_now_mono();
		rl->tokens += (now - rl->last) * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last = now;
		if (rl->tokens >= 1) {
			rl->tokens -= 1;
			return;
		}
		double wait = (1 - rl->tokens) / rl->rate;
		rl->waited_s += wait;
		struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
		nanosleep(&ts, NULL);
	}
}
