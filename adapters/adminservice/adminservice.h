/*
 * adminservice.h - what the AdminService adapter offers beyond the site
 * table (adapters/site.h): its retry policy and budget, so the engine can
 * set the policy from configuration and tests can read what was spent.
 * st is the state returned by cmb_site_adminservice.open.
 */
#ifndef CMB_AS_ADMINSERVICE_H
#define CMB_AS_ADMINSERVICE_H

#include "connector/transport/retry.h"

struct cmb_as_schema;
struct cmb_as_conn;

/*
 * Replaces the retry policy (copied) and starts a fresh budget with it;
 * NULL keeps the policy the configuration gave (connector/transport/request.h).
 */
void cmb_adminservice_set_retry_policy(void *st, const struct cmb_retry_policy *policy);

/* The current cycle's retry budget (used, waited_s); valid until close. */
const struct cmb_retry_budget *cmb_adminservice_retry_budget(const void *st);

/* What the adapter knows the site has (schema.h); valid until close. */
const struct cmb_as_schema *cmb_adminservice_schema(const void *st);

/* The connection the operations share (conn.h); valid until close. */
struct cmb_as_conn *cmb_adminservice_conn(void *st);

#endif
