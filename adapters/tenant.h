/*
 * tenant.h - the tenant adapter table: how the connector writes to the cloud.
 */
#ifndef CMB_TENANT_H
#define CMB_TENANT_H

#include <stddef.h>
#include "connector/config/config.h"
#include "mapping/device.h"

#define CMB_TENANT_ADAPTER_VERSION 7

/* One record or removal of a batch, as the tenant judged it. */
struct cmb_tenant_outcome {
	const char *key;
	int is_removal;
	const char *status;      /* "created" "updated" "rejected" | "removed" "notFound" */
	const char *tenant_id;   /* managedDevice id (records that were applied) */
	const char *error;       /* "code: message" when rejected, else NULL */
};

typedef int (*cmb_tenant_outcome_cb)(void *ctx, const struct cmb_tenant_outcome *o);

struct cmb_tenant_batch {
	const char *batch_id;                     /* UUID; the same id on a retry */
	const struct cmb_tenant_record *records;  /* to create or update */
	size_t n_records;
	const char *const *removals;              /* keys to remove */
	size_t n_removals;
};

/* A configManagerCollection record (docs/wire-format.md §5), mapped by mapping/collection.c. */
struct cmb_tenant_collection_batch {
	const char *batch_id;
	const char *const *keys;                  /* "<site>:<CollectionID>" */
	const char *const *json;                  /* configManagerCollection objects (no id) */
	size_t n;
	const char *const *removals;              /* keys */
	size_t n_removals;
};

struct cmb_tenant_stats {
	long requests;
	size_t bytes_out;
	size_t bytes_in;
};

/* One notification of the gateway channel (docs/wire-format.md §8); strings valid during the callback. */
struct cmb_tenant_notification {
	const char *id;           /* action id (GUID) */
	const char *device_id;    /* managedDevice id */
	const char *key;          /* the site's device key, e.g. PS1:16777220 */
	const char *action;
	const char *requested_by; /* UPN */
	const char *requested;    /* requestedDateTime, ISO 8601 */
	const char *expires;      /* expirationDateTime, ISO 8601 */
};

typedef int (*cmb_tenant_notification_cb)(void *ctx, const struct cmb_tenant_notification *n);

/*
 * One object of a Graph listing: its id and the whole object as JSON text
 * (a managedDevice, a configuration policy; id included), valid during the
 * call. Return 0 to go on, or a negative code to stop the listing.
 */
typedef int (*cmb_tenant_device_cb)(void *ctx, const char *id, const char *json, size_t len);

/* Compliance of one policy for PolicyStatusPost (docs/wire-format.md §9.3); every member borrowed. */
struct cmb_tenant_policy_collection {
	const char *collection_id;
	long targeted, compliant, non_compliant, error, conflict, not_applicable;
};

struct cmb_tenant_policy_device {
	const char *key;          /* "<site code>:<ResourceID>", as the device was uploaded */
	const char *state;        /* compliant | nonCompliant | error | conflict | notApplicable */
	const char *const *failing;
	size_t n_failing;
};

struct cmb_tenant_policy_status {
	const char *policy_id;
	const char *state;        /* applied | rejected | conflict | pending */
	const char *const *reasons;
	size_t n_reasons;
	const struct cmb_tenant_policy_collection *collections;
	size_t n_collections;
	const struct cmb_tenant_policy_device *devices;
	size_t n_devices;
};

struct cmb_tenant_policy_status_batch {
	const char *batch_id;     /* UUID; the same id on a retry */
	const struct cmb_tenant_policy_status *policies;
	size_t n;                 /* at most 100; at most 5000 devices each */
};

/* One result for NotificationResult. */
struct cmb_tenant_action_result {
	const char *id;
	const char *delivery;     /* actionDeliveryStatus */
	const char *state;        /* actionState */
	long error_code;
	const char *updated;      /* lastUpdatedDateTime, ISO 8601 */
	const char *message;      /* may be NULL */
};

/* What `cmbridge token` shows of a token: never the token itself. */
struct cmb_tenant_token_info {
	const char *credential;   /* "client secret", "certificate (PS256)"...: a constant */
	long lifetime;            /* expires_in as the authority gave it, seconds */
	char *claims;             /* the JWT's public claims, one "  name value" line each, or NULL
				     when the token is opaque; the caller's (free) */
};

struct cmb_tenant_adapter {
	int version;             /* CMB_TENANT_ADAPTER_VERSION */
	const char *name;
	/* Creates state from cfg (reads the client secret file); *out is the caller's. No I/O. */
	int (*open)(void **out, const struct cmb_config *cfg);
	/* Obtains a token (and keeps it); fills *expires_in with its lifetime in seconds. */
	int (*check)(void *st, long *expires_in);
	/* Called at the start of every cycle (resets the cycle's retry budget); may be NULL. */
	void (*begin_cycle)(void *st);
	/*
	 * Sends one batch. Returns 0 when the tenant answered for the batch as a
	 * whole; each record and removal is then reported through cb (rejections
	 * included). A negative code means no answer for the batch: the caller
	 * may retry it with the same batch_id, which the tenant applies once.
	 */
	int (*upload)(void *st, const struct cmb_tenant_batch *batch, cmb_tenant_outcome_cb cb, void *ctx);
	/* Same contract as upload, for collections (CollectionPost). */
	int (*upload_collections)(void *st, const struct cmb_tenant_collection_batch *batch,
				  cmb_tenant_outcome_cb cb, void *ctx);
	void (*stats)(void *st, struct cmb_tenant_stats *out);
	void (*close)(void *st);

	/*
	 * The notification channel (remote actions). Its own state, made by
	 * notify_open over st (the same HTTP handle and token as the uploads;
	 * no I/O; the caller's, closed with notify_close, before or after st).
	 * May be NULL for adapters without a channel.
	 */
	int (*notify_open)(void **out, void *st, const struct cmb_config *cfg);
	void (*notify_close)(void *nst);
	/*
	 * One long poll: the notifications after cursor ("" at first), each
	 * passed to cb (which returns 0 to go on), the tenant holding the
	 * request up to wait_s seconds when none is pending. *next_cursor (the
	 * caller's) is the cursor to store once the notifications are kept.
	 * Reading consumes nothing, so it is retried like any GET.
	 */
	int (*poll_notifications)(void *nst, const char *cursor, long wait_s, cmb_tenant_notification_cb cb, void *ctx,
				  char **next_cursor);
	/*
	 * NotificationResult for r[0..n) (n <= 500; idempotent, so retried).
	 * acked[i] is set to 1 when the tenant answered accepted or unknown for
	 * r[i] (the result may be forgotten), 0 otherwise.
	 */
	int (*post_results)(void *nst, const struct cmb_tenant_action_result *r, size_t n, int *acked);

	/*
	 * Obtains a token for scope with the adapter's credential over its HTTP
	 * handle (NULL or [tenant] scope: the uploads' own token, from their
	 * cache) and describes it in *out. The token itself never leaves the
	 * adapter. cfg is the one st was opened with. May be NULL.
	 */
	int (*token_describe)(void *st, const struct cmb_config *cfg, const char *scope,
			      struct cmb_tenant_token_info *out);

	/*
	 * Every device record the tenant holds (Graph: GET {graph_url}/
	 * deviceManagement/managedDevices, following @odata.nextLink), each
	 * passed to cb, over the uploads' handle and token, through the
	 * core's request loop (a GET: retried like every read). Returns 0
	 * only when the listing was complete; *pages (may be NULL) counts the
	 * page requests. A warm standby builds its diff base from it. May be
	 * NULL.
	 */
	int (*list_devices)(void *st, cmb_tenant_device_cb cb, void *ctx, long *pages);

	/*
	 * For `cmbridge check`, after check: the application roles of the
	 * uploads' token (its "roles" claim: the application permissions
	 * granted), newly allocated: *roles holds *n strings and a NULL (free
	 * each, then the array). 0 when they could be read (none is *n = 0),
	 * 1 when the token is opaque (not a JWT: nothing to check). May be
	 * NULL.
	 */
	int (*token_roles)(void *st, char ***roles, size_t *n);
	/*
	 * For `cmbridge check`: one read through Graph as a standby makes it
	 * (GET {graph_url}/deviceManagement/managedDevices?$top=1, the uploads'
	 * token), 0 when it answers with a "value" array. May be NULL.
	 */
	int (*probe_graph)(void *st);

	/*
	 * Endpoint security policies (docs/wire-format.md §9.1, §9.3), over
	 * the uploads' handle and token, through the core's request loop.
	 * list_policies: GET {graph_url}/deviceManagement/configurationPolicies
	 * ?{query} (query: "$select=..." as given, already encoded), every
	 * page, each policy passed to cb as its id and JSON text (the object
	 * as Graph sent it), @odata.nextLink followed only on graph_url's
	 * origin; 0 only when the listing was complete. get_policy: one
	 * policy, .../{id}?{query}, as JSON text in *json (*len bytes, NUL
	 * after; the caller's), CMB_ENOTFOUND when Graph has none.
	 * post_policy_status: PolicyStatusPost of b, retried with its batchId;
	 * accepted[i] is 1 when the tenant took b->policies[i], 0 when it does
	 * not know the policy. Each may be NULL.
	 */
	int (*list_policies)(void *st, const char *query, cmb_tenant_device_cb cb, void *ctx, long *pages);
	int (*get_policy)(void *st, const char *id, const char *query, char **json, size_t *len);
	int (*post_policy_status)(void *st, const struct cmb_tenant_policy_status_batch *b, int *accepted);
};

extern const struct cmb_tenant_adapter cmb_tenant_gateway;

#endif
