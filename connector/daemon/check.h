/*
 * check.h - `cmbridge check`: everything a cycle needs, tried before the
 * first cycle (docs/operations.md, "cmbridge check").
 *
 * The configuration (loaded, its [actions] names checked), then both
 * sides at once, each in its own thread with a short budget (a copy of
 * the configuration with fewer tries and shorter timeouts), so two dead
 * ends answer in seconds with one line each:
 *   site:    the AdminService answers, what it has (a device key read);
 *   tenant:  a token; its application roles (the "roles" claim) against
 *            those a cycle needs; the gateway answers at gateway_url (a
 *            notification read, which consumes nothing); Graph answers at
 *            graph_url (one managedDevice read, as a warm standby reads).
 * Nothing is written on either side and no state is opened.
 */
#ifndef CMB_CHECK_H
#define CMB_CHECK_H

#include "connector/config/config.h"

/* Tries, retry wait and timeouts (seconds) of check's budget; a configuration's smaller values are kept. */
#define CMB_CHECK_ATTEMPTS 2
#define CMB_CHECK_RETRY_WAIT_S 1
#define CMB_CHECK_CONNECT_S 5
#define CMB_CHECK_STALL_S 10
#define CMB_CHECK_REQUEST_S 20

/*
 * Prints the report on stdout, a line per step ("site:    FAILED: why" for
 * one that failed). 0 when everything a cycle needs answered; otherwise
 * the first failure's code, with "check failed" as the message.
 */
int cmb_check_run(const struct cmb_config *cfg);

/*
 * The application roles a cycle needs, against roles[0..n): NULL when
 * every one is there, else the missing ones and what needs them, as one
 * line (the caller frees). Pure, for tests.
 */
char *cmb_check_missing_roles(const char *const *roles, size_t n);

#endif
