/*
 * notify.h - the gateway notification channel behind the tenant table's
 * notify_* members (adapters/tenant.h): Notification long poll and
 * NotificationResult (docs/wire-format.md §8).
 */
#ifndef CMB_TENANT_NOTIFY_H
#define CMB_TENANT_NOTIFY_H

#include "adapters/tenant.h"

/* The channel over the gateway adapter state st (its HTTP handle and token). */
int cmb_notify_open(void **out, void *st, const struct cmb_config *cfg);
void cmb_notify_close(void *nst);
int cmb_notify_poll(void *nst, const char *cursor, long wait_s, cmb_tenant_notification_cb cb, void *ctx,
		    char **next_cursor);
int cmb_notify_post_results(void *nst, const struct cmb_tenant_action_result *r, size_t n, int *acked);


#endif
