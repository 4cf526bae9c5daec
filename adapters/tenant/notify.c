/*
 * notify.c - the connector's notification channel at the gateway
 * (docs/wire-format.md §8): a long poll for remote actions and the results
 * posted back. The uploads' HTTP handle and token (gateway.h), its own
 * retry budget, through the core's request loop: both requests are
 * idempotent (reading does not consume; a result posted twice changes
 * nothing).
 *
 * Must never: log a token; report a result as acknowledged that the tenant
 * did not answer for.
 */
#include "adapters/tenant/call.h"
#include "adapters/tenant/gateway.h"
#include "adapters/tenant/notify.h"
#include "connector/transport/auth.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/limits.h"
#include "connector/transport/http.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

struct notify {
	struct cmb_gateway_shared sh;  /* the uploads' HTTP handle and token (gateway.h) */
	char *poll_url;              /* {gateway_url}/api/gateway/Notification */
	char *result_url;            /* {gateway_url}/api/gateway/NotificationResult */
	long stall_s;                /* a long poll may be silent this long */
	long deadline_s;             /* one request ([tenant] request_timeout); a poll gets its wait more */
	struct cmb_retry_budget budget;
};

void cmb_notify_close(void *p)
{
	struct notify *n = p;
	if (!n)
		return;
	cmb_gateway_unshare(&n->sh);
	free(n->poll_url);
	free(n->result_url);
	free(n);
}

int cmb_notify_open(void **out, void *st, const struct cmb_config *cfg)
{
	struct notify *n = xcalloc(1, sizeof(*n));
	cmb_gateway_share(st, &n->sh);
	cmb_retry_budget_init(&n->budget, n->sh.policy);
	/* The tenant holds a long poll silent for up to poll_wait: its stall limit must outlast it. */
	long stall = cfg->tenant_timeout > 0 ? cfg->tenant_timeout : 60;
	n->stall_s = stall < cfg->actions_poll_wait + 15 ? cfg->actions_poll_wait + 15 : stall;
	n->deadline_s = cfg->tenant_request_timeout;
	n->poll_url = xasprintf("%s/api/gateway/Notification", n->sh.gateway_url);
	n->result_url = xasprintf("%s/api/gateway/NotificationResult", n->sh.gateway_url);
	*out = n;
	return 0;
}

/* One request through the request loop (call.h); *out is the parsed JSON object (caller frees). */
static int call(struct notify *n, const char *method, const char *url, const char *body, size_t body_len,
		const char *what, long poll_wait, yajl_val *out)
{
	int poll = poll_wait >= 0;
	/* The relay has no cycles: a spent budget starts afresh with the next request. */
	if (n->budget.used >= n->budget.policy.budget)
		cmb_retry_budget_init(&n->budget, n->sh.policy);
	struct cmb_tenant_call c = {
		.http = n->sh.http, .auth = n->sh.auth, .budget = &n->budget, .method = method, .url = url,
		.what = what, .principal = n->sh.principal, .body = body, .body_len = body_len, .interruptible = poll,
		.stall_s = poll ? n->stall_s : 0,
		.deadline_s = n->deadline_s > 0 ? n->deadline_s + (poll ? poll_wait : 0) : 0,
	};
	return cmb_tenant_call_json(&c, out);
}

static const char *str(yajl_val obj, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_string);
	return v ? v->u.string : NULL;
}

int cmb_notify_poll(void *p, const char *cursor, long wait_s, cmb_tenant_notification_cb cb, void *ctx,
		    char **next_cursor)
{
	struct notify *n = p;
	char *enc = cmb_http_escape(cursor ? cursor : "");
	long wait = wait_s < 0 ? 0 : wait_s > 60 ? 60 : wait_s;
	char *url = xasprintf("%s?cursor=%s&wait=%ld", n->poll_url, enc, wait);
	free(enc);
	yajl_val root = NULL;
	int rc = call(n, "GET", url, NULL, 0, "polling the notification channel", wait, &root);
	free(url);
	if (rc < 0)
		return rc;
	rc = cmb_notify_read_poll(root, cb, ctx, next_cursor);
	yajl_tree_free(root);
	return rc;
}

int cmb_notify_read_poll(yajl_val root, cmb_tenant_notification_cb cb, void *ctx, char **next_cursor)
{
	int rc = 0;
	const char *pl[] = { "notifications", NULL };
	yajl_val list = yajl_tree_get(root, pl, yajl_t_array);
	const char *next = str(root, "cursor");
	if (!list || !next)
		return cmb_error_set(CMB_EPROTO, "notification channel: the reply has no cursor or notifications");
	if (list->u.array.len > CMB_LIMIT_NOTIFICATIONS)
		/* The wire format says at most 500: a longer list is not the channel cmbridge knows. */
		return cmb_limit_error(CMB_LIMIT_NOTIFICATION_PAGE, 0, "notification channel: a poll of %zu notifications",
				       list->u.array.len);
	for (size_t i = 0; i < list->u.array.len && rc == 0; i++) {
		yajl_val e = list->u.array.values[i];
		struct cmb_tenant_notification nt = {
			.id = str(e, "id"), .device_id = str(e, "deviceId"), .key = str(e, "key"),
			.action = str(e, "action"), .requested_by = str(e, "requestedBy"),
			.requested = str(e, "requestedDateTime"), .expires = str(e, "expirationDateTime"),
		};
		if (!nt.id || !*nt.id)
			return cmb_error_set(CMB_EPROTO, "notification channel: notification %zu has no id", i);
		rc = cb(ctx, &nt);
	}
	if (rc == 0)
		*next_cursor = xstrdup(next);
	return rc;
}

int cmb_notify_post_results(void *p, const struct cmb_tenant_action_result *r, size_t count, int *acked)
{
	struct notify *n = p;
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_key(g, "results");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < count; i++) {
		acked[i] = 0;
		yajl_gen_map_open(g);
		cmb_json_kv_str(g, "id", r[i].id);
		cmb_json_kv_str(g, "actionDeliveryStatus", r[i].delivery);
		cmb_json_kv_str(g, "actionState", r[i].state);
		cmb_json_kv_int(g, "errorCode", r[i].error_code);
		cmb_json_kv_str(g, "lastUpdatedDateTime", r[i].updated);
		if (r[i].message)
			cmb_json_kv_str(g, "message", r[i].message);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	size_t len;
	char *body = cmb_json_take(g, &len);
	yajl_val root = NULL;
	int rc = call(n, "POST", n->result_url, body, len, "posting action results", -1, &root);
	free(body);
	if (rc < 0)
		return rc;
	rc = cmb_notify_read_results(root, r, count, acked);
	yajl_tree_free(root);
	return rc;
}

int cmb_notify_read_results(yajl_val root, const struct cmb_tenant_action_result *r, size_t count, int *acked)
{
	const char *pr[] = { "results", NULL };
	yajl_val list = yajl_tree_get(root, pr, yajl_t_array);
	if (!list)
		return cmb_error_set(CMB_EPROTO, "NotificationResult: the reply has no results array");
	/* Answers are matched by id, not position: the tenant may answer in any order. */
	for (size_t i = 0; i < list->u.array.len; i++) {
		yajl_val e = list->u.array.values[i];
		const char *id = str(e, "id"), *status = str(e, "status");
		if (!id || !status || (strcmp(status, "accepted") != 0 && strcmp(status, "unknown") != 0))
			continue;
		for (size_t j = 0; j < count; j++)
			if (!acked[j] && strcmp(r[j].id, id) == 0)
				acked[j] = 1;
	}
	return 0;
}
