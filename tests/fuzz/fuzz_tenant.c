/*
 * fuzz_tenant.c - libFuzzer target for what the tenant's gateway answers
 * (docs/wire-format.md §3, §4, §8).
 *
 * The first byte says which reply the rest of the input is: P a
 * Notification poll, R a NotificationResult reply, U a DevicePost reply, C
 * a CollectionPost reply, L a Graph managedDevices page (any other byte:
 * the one its value picks). The body goes through the reading every 2xx
 * reply gets (cmb_tenant_reply_json) and then the adapter's reader for it
 * (adapters/tenant/notify.c, gateway.c).
 *
 * Beyond not crashing, leaking or hanging: a poll hands out only
 * notifications with an id, never more than the limit, and a cursor only
 * when it succeeded; results are acknowledged only for ids the tenant
 * named; an upload reply reports exactly one outcome per record and
 * removal, in order, when it succeeds; a listed device is handed on as one
 * JSON object, and a next link is https.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "adapters/tenant.h"
#include "adapters/tenant/call.h"
#include "adapters/tenant/gateway.h"
#include "adapters/tenant/notify.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char batch_id[] = "0f8e6a52-8c1e-4d8b-9a51-2b8d6c1f4e70";
static const char *const keys[] = { "PS1:16777220", "PS1:16777221", "PS1:16777222" };
static const char *const removals[] = { "PS1:16777311" };
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define NREMOVALS (sizeof(removals) / sizeof(removals[0]))

static int on_notification(void *ctx, const struct cmb_tenant_notification *n)
{
	size_t *count = ctx;
	if (!n->id || !*n->id || ++*count > CMB_LIMIT_NOTIFICATIONS)
		abort();
	return 0;
}

static void read_poll(yajl_val root)
{
	size_t count = 0;
	char *next = NULL;
	int rc = cmb_notify_read_poll(root, on_notification, &count, &next);
	if ((rc == 0) != (next != NULL))
		abort();
	free(next);
}

static void read_results(yajl_val root)
{
	static const struct cmb_tenant_action_result r[] = {
		{ .id = "98625b62-2c95-47fe-bd91-263b340bf147", .delivery = "deliveredToConnectorService",
		  .state = "pending", .updated = "2026-11-29T10:00:00Z" },
		{ .id = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", .delivery = "deliveredToConnectorService",
		  .state = "done", .updated = "2026-11-29T10:05:00Z", .message = "done at the site" },
	};
	int acked[2] = { 0, 0 };
	int rc = cmb_notify_read_results(root, r, 2, acked);
	if ((rc < 0 && (acked[0] || acked[1])) || acked[0] > 1 || acked[1] > 1)
		abort();
}

struct outcomes {
	size_t n;
};

static int on_outcome(void *ctx, const struct cmb_tenant_outcome *o)
{
	struct outcomes *oc = ctx;
	size_t i = oc->n++;
	const char *want = i < NKEYS ? keys[i] : i < NKEYS + NREMOVALS ? removals[i - NKEYS] : NULL;
	if (!want || strcmp(o->key, want) != 0 || o->is_removal != (i >= NKEYS) || !o->status)
		abort();
	return 0;
}

static void read_upload(yajl_val root, int collections)
{
	struct outcomes oc = { 0 };
	const char *url = collections ? "https://gw.example/api/gateway/CollectionPost"
				      : "https://gw.example/api/gateway/DevicePost";
	int rc = cmb_gateway_read_outcomes(root, url, batch_id, keys, NKEYS, removals, NREMOVALS, on_outcome, &oc);
	if (rc == 0 && oc.n != NKEYS + NREMOVALS)
		abort();
}

static int on_device(void *ctx, const char *id, const char *json, size_t len)
{
	char err[128];
	if (!id || strlen(json) != len)
		abort();
	yajl_val v = yajl_tree_parse(json, err, sizeof(err));
	if (!v || !YAJL_IS_OBJECT(v)) {
		fprintf(stderr, "a listed device is handed on as no JSON object (%s): %s\n", err, json);
		abort();
	}
	yajl_tree_free(v);
	return 0;
}

static void read_devices(yajl_val root)
{
	char *next = NULL;
	int rc = cmb_gateway_read_devices(root, "https://graph.example/beta/deviceManagement/managedDevices", on_device,
					  NULL, &next);
	if (next && (rc < 0 || strncmp(next, "https://", 8) != 0))
		abort();
	free(next);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (cmb_log_open("/dev/null") < 0)
		abort();
	cmb_log_set_level(CMB_LOG_DEBUG);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char kinds[] = "PRUCL";
	if (size == 0)
		return 0;
	const char *k = memchr(kinds, data[0], 5);
	char kind = k ? *k : kinds[data[0] % 5];
	yajl_val root = NULL;
	if (cmb_tenant_reply_json((const char *)data + 1, size - 1, "fuzz", "https://gw.example/api/gateway", &root) < 0)
		return 0;
	switch (kind) {
	case 'P': read_poll(root); break;
	case 'R': read_results(root); break;
	case 'U': read_upload(root, 0); break;
	case 'C': read_upload(root, 1); break;
	default: read_devices(root); break;
	}
	yajl_tree_free(root);
	return 0;
}
