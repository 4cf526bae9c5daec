/*
 * notify.h - the gateway notification channel behind the tenant table's
 * notify_* members (adapters/tenant.h): Notification long poll and
 * NotificationResult (docs/wire-format.md §8).
 */
#ifndef CMB_TENANT_NOTIFY_H
#define CMB_TENANT_NOTIFY_H

#include "adapters/tenant.h"

#include <yajl/yajl_tree.h>

/* The channel over the gateway adapter state st (its HTTP handle and token). */
int cmb_notify_open(void **out, void *st, const struct cmb_config *cfg);
void cmb_notify_close(void *nst);
int cmb_notify_poll(void *nst, const char *cursor, long wait_s, cmb_tenant_notification_cb cb, void *ctx,
		    char **next_cursor);
int cmb_notify_post_results(void *nst, const struct cmb_tenant_action_result *r, size_t n, int *acked);

/*
 * What the two replies say, without I/O (each reply is the tenant's JSON
 * object, cmb_tenant_reply_json): a poll's notifications passed to cb in
 * order and *next_cursor (caller frees; set only when every callback
 * returned 0), CMB_EPROTO for a reply without cursor or notifications or a
 * notification without id, CMB_ETOOBIG for a poll past its limit; and the
 * results' answers, acked[j] set to 1 for each r[j] the tenant accepted
 * (matched by id, any order; acked[] is the caller's, zeroed).
 */
int cmb_notify_read_poll(yajl_val root, cmb_tenant_notification_cb cb, void *ctx, char **next_cursor);
int cmb_notify_read_results(yajl_val root, const struct cmb_tenant_action_result *r, size_t count, int *acked);

#endif
