/*
 * device.h - maps one site device to the tenant's device record.
 *
 * Pure transform: no I/O, no globals, no clock. Everything it needs comes in
 * through the context. The record's "managedDevice" object uses Graph beta
 * managedDevice property names, types and enum members exactly
 * (../shared/reference/); "configurationManager" carries the site-side
 * identity the tenant needs to route actions back. See docs/mapping.md.
 */
#ifndef CMB_MAP_DEVICE_H
#define CMB_MAP_DEVICE_H

#include <stddef.h>
#include "mapping/site_device.h"

struct cmb_map_ctx {
	const char *site_code;              /* the connector's site code, e.g. "PS1" */
	const char *const *collection_ids;  /* collections the device is read through; may be NULL */
	size_t n_collection_ids;
};

/*
 * What a record says of its device's management, as the Graph enum members
 * it writes (X(constant, text)): managementAgent, the client health state
 * and joinType. The names are the record's and the metrics' labels.
 */
#define CMB_MAP_AGENTS(X) \
	X(CMB_MAP_AGENT_CLIENT, "configurationManagerClient") \
	X(CMB_MAP_AGENT_CLIENT_MDM, "configurationManagerClientMdm") /* co-managed */
#define CMB_MAP_HEALTH_STATES(X) \
	X(CMB_MAP_HEALTH_UNKNOWN, "unknown") \
	X(CMB_MAP_HEALTH_INSTALLED, "installed") \
	X(CMB_MAP_HEALTH_HEALTHY, "healthy") \
	X(CMB_MAP_HEALTH_INSTALL_FAILED, "installFailed") \
	X(CMB_MAP_HEALTH_COMMUNICATION_ERROR, "communicationError")
#define CMB_MAP_JOIN_TYPES(X) \
	X(CMB_MAP_JOIN_UNKNOWN, "unknown") \
	X(CMB_MAP_JOIN_AZURE_AD, "azureADJoined") \
	X(CMB_MAP_JOIN_HYBRID, "hybridAzureADJoined")
#define CMB_MAP_ENUM_ITEM(constant, text) constant,
enum cmb_map_agent { CMB_MAP_AGENTS(CMB_MAP_ENUM_ITEM) CMB_MAP_N_AGENTS };
enum cmb_map_health { CMB_MAP_HEALTH_STATES(CMB_MAP_ENUM_ITEM) CMB_MAP_N_HEALTH };
enum cmb_map_join { CMB_MAP_JOIN_TYPES(CMB_MAP_ENUM_ITEM) CMB_MAP_N_JOIN };
/* The texts, indexed by the enums above (static). */
extern const char *const cmb_map_agent_names[CMB_MAP_N_AGENTS];
extern const char *const cmb_map_health_names[CMB_MAP_N_HEALTH];
extern const char *const cmb_map_join_names[CMB_MAP_N_JOIN];

/* The mapped record, ready to upload. */
struct cmb_tenant_record {
	char *key;           /* "<SiteCode>:<ResourceID>", stable identity of the device */
	char *json;          /* one JSON object: {"key":..,"managedDevice":{..},"configurationManager":{..}};
			      * NULL from cmb_map_device_digest until cmb_map_device_json */
	size_t json_len;
	char hash[65];       /* the record's digest, SHA-256 hex: what "changed" means for delta sync */
	char stable_hash[65];/* the same without the volatile check-in time (docs/mapping.md §7) */
	/* SHA-256 hex of json and of json without its check-in times: the hashes
	 * state files of earlier versions hold (docs/state.md); "" until json is written. */
	char legacy_hash[65];
	char legacy_stable_hash[65];
	long long unknown_workload_bits; /* co-management flag bits mapping does not know */
	int no_entra_id;     /* no azureADDeviceId: uploaded, and flagged */
	unsigned utf8_repairs; /* invalid UTF-8 sequences replaced with U+FFFD */
	enum cmb_map_agent agent;   /* what the record says, for counting (cmb_map_tally_add) */
	enum cmb_map_health health;
	enum cmb_map_join join;
};

/* Mapped records counted by what they say of their devices (the metrics' device gauges). */
struct cmb_map_tally {
	long agent[CMB_MAP_N_AGENTS];
	long health[CMB_MAP_N_HEALTH];
	long join[CMB_MAP_N_JOIN];
};
/* Counts rec in t. */
void cmb_map_tally_add(struct cmb_map_tally *t, const struct cmb_tenant_record *rec);

enum cmb_map_outcome {
	CMB_MAP_OK = 0,          /* out is filled */
	CMB_MAP_SKIP = 1,        /* out of scope (no client, obsolete, decommissioned); *reason says which */
	CMB_MAP_QUARANTINE = 2,  /* cannot be mapped; *reason says why; never uploaded */
};

/*
 * Maps dev. Returns an enum cmb_map_outcome. On CMB_MAP_OK, out is filled and
 * belongs to the caller (cmb_tenant_record_clear) and *reason is NULL. On
 * SKIP and QUARANTINE, *reason is an allocated message the caller frees, and
 * out is left zeroed. reason may be NULL when the caller does not want it.
 */
int cmb_map_device(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
		   struct cmb_tenant_record *out, char **reason);

/*
 * cmb_map_device without writing the JSON: the same outcome, key, hashes and
 * counts, json NULL. What the sync engine maps every device with: an
 * unchanged device needs no more.
 */
int cmb_map_device_digest(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
			  struct cmb_tenant_record *out, char **reason);

/*
 * Writes the JSON (and its legacy hashes) of rec, which cmb_map_device_digest
 * mapped from the same ctx and dev; nothing when rec has its JSON already.
 * Returns CMB_MAP_OK (the mapping is pure: the same input maps the same way).
 */
int cmb_map_device_json(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
			struct cmb_tenant_record *rec);

void cmb_tenant_record_clear(struct cmb_tenant_record *rec);

/* The record key for a resource id: "<site>:<id>". Caller frees. */
char *cmb_map_device_key(const char *site_code, uint32_t resource_id);

/*
 * Normalises an ISO 8601 / OData DateTimeOffset
 * ("YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]", no zone = UTC) to UTC
 * "YYYY-MM-DDTHH:MM:SSZ" in out (fraction truncated). Returns 0, or -1 when
 * s is NULL, malformed, or outside years 0001..9999; out is then
 * "0001-01-01T00:00:00Z", Graph's value for an unset DateTimeOffset.
 */
int cmb_map_datetime(const char *s, char out[21]);

#endif
