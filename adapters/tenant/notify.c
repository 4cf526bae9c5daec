/*
 * notify.c - the connector's notification channel at the gateway
 * (docs/wire-format.md §8): a long poll for remote actions and the results
 * posted back. Its own HTTP handle and token (client credentials, as the
 * uploads), retried by the policy of connector/retry.h: both requests are
 * idempotent (reading does not consume; a result posted twice changes
 * nothing).
 *
 * Must never: log a token; report a result as acknowledged that the tenant
 * did not answer for.
 */
#include "adapters/tenant/call.h"
#include "adapters/tenant/notify.h"
#include "connector/transport/auth.h"
#include "connector/base/error.h"
#include "connector/transport/http.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

struct notify {
	struct cmb_http *http;
	struct cmb_auth *auth;
	char *poll_url;              /* {gateway_url}/api/gateway/Notification */
	char *result_url;            /* {gateway_url}/api/gateway/NotificationResult */
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;
};

void cmb_notify_close(void *p)
{
	struct notify *n = p;
	if (!n)
		return;
	cmb_auth_free(n->auth);
	cmb_http_free(n->http);
	free(n->poll_url);
	free(n->result_url);
	free(n);
}

int cmb_notify_open(void **out, const struct cmb_config *cfg)
{
	struct notify *n = xcalloc(1, sizeof(*n));
	n->policy = (struct cmb_retry_policy){
		.max_attempts = cfg->sync_max_attempts > 0 ? (int)cfg->sync_max_attempts : 6,
		.base_delay_s = 0.5,
		.max_delay_s = cfg->sync_max_retry_wait > 0 ? (double)cfg->sync_max_retry_wait : 60,
		.budget = cfg->sync_retry_budget > 0 ? cfg->sync_retry_budget : 200,
	};
	cmb_retry_budget_init(&n->budget, &n->policy);
	/* The tenant holds a long poll silent for up to poll_wait: the stall timeout must outlast it. */
	long stall = cfg->tenant_timeout > 0 ? cfg->tenant_timeout : 60;
	if (stall < cfg->actions_poll_wait + 15)
		stall = cfg->actions_poll_wait + 15;
	struct cmb_http_opts ho = {
		.name = "tenant",
		.ca_file = cfg->tenant_ca_file,
		.pinned_public_key = cfg->tenant_pinned_public_key,
		.connect_timeout_s = cfg->tenant_connect_timeout,
		.low_speed_time_s = stall,
		.max_response = 64u << 20,
		.rate_limit = (double)cfg->tenant_rate_limit,
		.rate_burst = (double)(cfg->tenant_rate_burst > 0 ? cfg->tenant_rate_burst : 1),
	};
	cmb_http_opts_network(&ho, cfg);
	int rc = cmb_http_new(&n->http, &ho);
	if (rc < 0)
		goto fail;
	/* The same credential as the sync (secret or certificate, docs/credentials.md). */
	struct cmb_auth_opts ao;
	cmb_auth_opts_from_config(&ao, cfg, cfg->tenant_scope);
	ao.retry = &n->budget;
	if ((rc = cmb_auth_new(&n->auth, n->http, &ao)) < 0)
		goto fail;
	size_t len = strlen(cfg->tenant_gateway_url);
	while (len > 0 && cfg->tenant_gateway_url[len - 1] == '/')
		len--;
	n->poll_url = xasprintf("%.*s/api/gateway/Notification", (int)len, cfg->tenant_gateway_url);
	n->result_url = xasprintf("%.*s/api/gateway/NotificationResult", (int)len, cfg->tenant_gateway_url);
	*out = n;
	return 0;
fail:
	cmb_notify_close(n);
	return rc;
}

/* One request with the retry policy (call.h); *out is the parsed JSON object (caller frees). */
static int call(struct notify *n, const char *method, const char *url, const struct cmb_buf *body, const char *what,
		int interruptible, yajl_val *out)
{
	/* The relay has no cycles: a spent budget starts afresh with the next request. */
	if (n->budget.used >= n->budget.policy.budget)
		cmb_retry_budget_init(&n->budget, &n->policy);
	struct cmb_tenant_call c = {
		.http = n->http, .auth = n->auth, .budget = &n->budget, .method = method, .url = url,
		.what = what, .body = body ? body->data : NULL, .body_len = body ? body->len : 0,
		.interruptible = interruptible,
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
	char *url = xasprintf("%s?cursor=%s&wait=%ld", n->poll_url, enc, wait_s < 0 ? 0 : wait_s > 60 ? 60 : wait_s);
	free(enc);
	yajl_val root = NULL;
	int rc = call(n, "GET", url, NULL, "polling the notification channel", 1, &root);
	free(url);
	if (rc < 0)
		return rc;
	const char *pl[] = { "notifications", NULL };
	yajl_val list = yajl_tree_get(root, pl, yajl_t_array);
	const char *next = str(root, "cursor");
	if (!list || !next) {
		yajl_tree_free(root);
		return cmb_error_set(CMB_EPROTO, "notification channel: the reply has no cursor or notifications");
	}
	for (size_t i = 0; i < list->u.array.len && rc == 0; i++) {
		yajl_val e = list->u.array.values[i];
		struct cmb_tenant_notification nt = {
			.id = str(e, "id"), .device_id = str(e, "deviceId"), .key = str(e, "key"),
			.action = str(e, "action"), .requested_by = str(e, "requestedBy"),
			.requested = str(e, "requestedDateTime"), .expires = str(e, "expirationDateTime"),
		};
		if (!nt.id || !*nt.id) {
			rc = cmb_error_set(CMB_EPROTO, "notification channel: notification %zu has no id", i);
			break;
		}
		rc = cb(ctx, &nt);
	}
	if (rc == 0)
		*next_cursor = xstrdup(next);
	yajl_tree_free(root);
	return rc;
}

int cmb_notify_post_results(void *p, const struct cmb_tenant_action_result *r, size_t count, int *acked)
{
	struct notify *n = p;
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	cmb_buf_addstr(&b, "{\"results\":[");
	for (size_t i = 0; i < count; i++) {
		acked[i] = 0;
		cmb_buf_addstr(&b, i ? ",{\"id\":" : "{\"id\":");
		cmb_buf_add_json_string(&b, r[i].id, strlen(r[i].id));
		cmb_buf_addstr(&b, ",\"actionDeliveryStatus\":");
		cmb_buf_add_json_string(&b, r[i].delivery, strlen(r[i].delivery));
		cmb_buf_addstr(&b, ",\"actionState\":");
		cmb_buf_add_json_string(&b, r[i].state, strlen(r[i].state));
		cmb_buf_printf(&b, ",\"errorCode\":%ld,\"lastUpdatedDateTime\":", r[i].error_code);
		cmb_buf_add_json_string(&b, r[i].updated, strlen(r[i].updated));
		if (r[i].message) {
			cmb_buf_addstr(&b, ",\"message\":");
			cmb_buf_add_json_string(&b, r[i].message, strlen(r[i].message));
		}
		cmb_buf_add(&b, "}", 1);
	}
	cmb_buf_addstr(&b, "]}");
	yajl_val root = NULL;
	int rc = call(n, "POST", n->result_url, &b, "posting action results", 0, &root);
	cmb_buf_free(&b);
	if (rc < 0)
		return rc;
	const char *pr[] = { "results", NULL };
	yajl_val list = yajl_tree_get(root, pr, yajl_t_array);
	if (!list) {
		yajl_tree_free(root);
		return cmb_error_set(CMB_EPROTO, "NotificationResult: the reply has no results array");
	}
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
	yajl_tree_free(root);
	return 0;
}
