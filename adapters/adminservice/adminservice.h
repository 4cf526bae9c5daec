/*
 * adminservice.h - what the AdminService adapter offers beyond the site
 * table (adapters/site.h): its retry policy and budget, so the engine can
 * set the policy from configuration and tests can read what was spent.
 * st is the state returned by cmb_site_adminservice.open.
 */
#ifndef CMB_AS_ADMINSERVICE_H
#define CMB_AS_ADMINSERVICE_H

#include "connector/transport/retry.h"

/*
 * Replaces the retry policy (copied) and starts a fresh budget with it;
 * NULL restores the default (6 attempts, 0.5 s base, 60 s cap, 200 retries
 * per cycle).
 */
void cmb_adminservice_set_retry_policy(void *st, const struct cmb_retry_policy *policy);

/* The current cycle's retry budget (used, waited_s); valid until close. */
const struct cmb_retry_budget *cmb_adminservice_retry_budget(const void *st);

/*
 * Replaces the client-side rate limit (requests per second, burst);
 * rate <= 0 turns it off. Default 100/s, burst 20.
 */
void cmb_adminservice_set_rate_limit(void *st, double rate, double burst);

#endif
