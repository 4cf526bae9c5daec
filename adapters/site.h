/*
 * site.h - the site adapter table: how the connector reads a ConfigMgr site.
 *
 * One implementation per source (adminservice now; wsman and offline exports
 * later). The sync engine only sees this table.
 */
#ifndef CMB_SITE_H
#define CMB_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "connector/config/config.h"
#include "mapping/site_device.h"

#define CMB_SITE_ADAPTER_VERSION 6

/*
 * Called once per device, in ascending ResourceID order. dev is valid during
 * the call only (the adapter owns it). Return 0 to go on, or a negative
 * CMB_E* code to stop the read (read_devices then returns that code).
 */
typedef int (*cmb_site_device_cb)(void *ctx, const struct cmb_site_device *dev);

/* Rows one class of a device read answered. */
struct cmb_site_class_rows {
	const char *name;        /* the class as the site names it (static: the adapter's) */
	long rows;               /* every row read, repeated keys included; 0 when the site lacks the class */
};

#define CMB_SITE_MAX_CLASSES 8

struct cmb_site_read_stats {
	long pages;              /* page requests made */
	long devices;            /* devices passed to the callback */
	long filtered;           /* devices left out by the [site] collection filter */
	size_t bytes_in;         /* response body bytes */
	/*
	 * After a complete read, the rows of each device class, for the change
	 * guard (docs/safety.md): classes[0] is the class that drives the read
	 * (one device per row), the others fill devices in. n_classes is 0 when
	 * the adapter does not count them.
	 */
	size_t n_classes;
	struct cmb_site_class_rows classes[CMB_SITE_MAX_CLASSES];
};

/* A collection marked for cloud sync, as the site reports it. */
struct cmb_site_collection {
	char *collection_id;     /* SMS_Collection.CollectionID */
	char *name;              /* Name */
	char *comment;           /* Comment */
	long member_count;       /* MemberCount */
	char *limit_to;          /* LimitToCollectionID */
	char *last_change;       /* LastChangeTime, ISO 8601 */
	char *hierarchy_id;      /* top site's SiteCode (SMS_Site, empty ReportingSiteCode) */
	char *hierarchy_name;    /* top site's SiteName */
};

void cmb_site_collection_clear(struct cmb_site_collection *c);

/*
 * A client operation as the site lists it (docs/wire-format.md §8):
 * SMS_ClientOperationStatus gives its Type, RequestedTime and CreatedBy,
 * SMS_ClientOperation its CollectionID and, on sites that list them,
 * its TargetResourceIDs.
 */
struct cmb_site_operation {
	int64_t id;              /* ID (the OperationID InitiateClientOperation returned) */
	int type;                /* SMS_ClientOperationStatus.Type: the client notification type */
	char *collection_id;     /* SMS_ClientOperation.CollectionID, or NULL */
	int has_targets;         /* the site listed TargetResourceIDs */
	uint32_t *targets;       /* TargetResourceIDs; owned by the struct */
	size_t n_targets;
	int64_t requested;       /* RequestedTime, epoch seconds (0 when absent) */
	char *created_by;        /* CreatedBy, or NULL */
};

void cmb_site_operations_free(struct cmb_site_operation *ops, size_t n);

/* Which operations find_operations looks for. */
struct cmb_site_operation_query {
	int type;                /* client notification type */
	const char *collection_id;
	int64_t since, until;    /* RequestedTime window, epoch seconds, both ends included */
};

/* SMS_ClientOperationStatus of one operation. */
struct cmb_site_operation_status {
	int64_t id;
	int type;
	int state;
	long total, completed, failed, offline, unknown;
	int expired;             /* IsExpired */
};

/* ---- endpoint security policies: the site's policy document store (docs/wire-format.md §9.2) ---- */

/* A document the site holds (GET CmbridgePolicy). */
struct cmb_site_policy_entry {
	char *id;                /* tenantPolicyId */
	int64_t version;
	char hash[65];           /* contentHash */
};

void cmb_site_policy_entries_free(struct cmb_site_policy_entry *e, size_t n);

/* How the site took a PUT. */
struct cmb_site_policy_put {
	char state[16];          /* created | updated | unchanged (2xx) */
	long status;             /* the HTTP status of a refusal (400, 409, 413, 415...), 0 on success */
};

/* Counts over one target collection's current members. */
struct cmb_site_policy_counts {
	char collection_id[16];
	long targeted, compliant, non_compliant, error, conflict, not_applicable;
};

/* One member device's state for the stored version. */
struct cmb_site_policy_device {
	uint32_t resource_id;
	char state[16];          /* compliant | nonCompliant | error | conflict | notApplicable | pending */
	char **failing;          /* failing settings' definition ids */
	size_t n_failing;
};

struct cmb_site_policy_compliance {
	int64_t version;         /* the stored document's version the states are for */
	char hash[65];
	int reported;            /* the site has reports for it (false: every device pending) */
	struct cmb_site_policy_counts *collections;
	size_t n_collections;
	struct cmb_site_policy_device *devices;
	size_t n_devices;
};

void cmb_site_policy_compliance_clear(struct cmb_site_policy_compliance *c);

struct cmb_site_adapter {
	int version;             /* CMB_SITE_ADAPTER_VERSION */
	const char *name;        /* the [site] adapter value that selects it */
	/* Creates the adapter's state from cfg; *out is the caller's (close it). Does no I/O. */
	int (*open)(void **out, const struct cmb_config *cfg);
	/*
	 * Reachability and fitness check: learns what the site has afresh and
	 * reads one device key. CMB_EPROTO when the site lacks something the
	 * connector needs (the message says what).
	 */
	int (*check)(void *st);
	/*
	 * After check: what the site has and what the connector does without,
	 * one line per class (newly allocated, the caller's). May be NULL.
	 */
	char *(*describe)(void *st);
	/* Called at the start of every cycle (resets the cycle's retry budget); may be NULL. */
	void (*begin_cycle)(void *st);
	/*
	 * What the adapter learnt about the site (its classes and properties),
	 * kept by the engine in the state between runs: learnt_load gets back
	 * the text learnt_save gave last (or NULL: nothing kept); learnt_save
	 * returns newly allocated text, or NULL when nothing changed. Both may
	 * be NULL.
	 */
	int (*learnt_load)(void *st, const char *text);
	char *(*learnt_save)(void *st);
	/*
	 * Reads every device in scope and passes each to cb. Returns 0 only when
	 * the read was complete: any failure (network, HTTP status, malformed or
	 * truncated page) returns a negative code with the message set, and the
	 * caller must treat everything read so far as incomplete.
	 */
	int (*read_devices)(void *st, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats);
	/*
	 * Reads the collections named in ids (collection ids), in that order,
	 * into a newly allocated array (*out, n entries; the caller clears each
	 * and frees the array). A missing id or a user collection is an error
	 * naming it. May be NULL for adapters that cannot read collections.
	 */
	int (*read_collections)(void *st, const char *const *ids, size_t n, struct cmb_site_collection **out);
	void (*close)(void *st);

	/*
	 * Site operations (remote actions, docs/actions.md). They work on their
	 * own state, made by ops_open over the connection of st (from open:
	 * the same HTTP handle and credentials; no I/O; *out is the caller's,
	 * closed with ops_close before st). All members may be NULL for
	 * adapters that cannot run operations.
	 */
	int (*ops_open)(void **out, void *st);
	void (*ops_close)(void *ost);
	/*
	 * SMS_ClientOperation.InitiateClientOperation: client notification type
	 * on ids[0..n) of collection. Not idempotent, so sent once (retried only
	 * after 429/503, when the site did not take it): on any failure other
	 * than CMB_EHTTP the operation may or may not exist and the caller must
	 * reconcile through find_operations. A 4xx answer or a ReturnValue
	 * other than 0 is CMB_EHTTP (refused: nothing was created). 200 and
	 * 201 are both success; *operation_id is the site's OperationID.
	 */
	int (*initiate_operation)(void *ost, int type, const char *collection_id, const uint32_t *ids, size_t n,
				  int64_t *operation_id);
	/*
	 * The operations of q->type on q->collection_id requested in the
	 * window, created by this connector's site account (an operation whose
	 * CreatedBy names another account is left out; one without CreatedBy,
	 * or when the account is not known, is kept), into a newly allocated
	 * array (*out; free with cmb_site_operations_free). Retried like every
	 * read.
	 */
	int (*find_operations)(void *ost, const struct cmb_site_operation_query *q, struct cmb_site_operation **out,
			       size_t *n);
	/* SMS_ClientOperationStatus of operation_id; CMB_ENOTFOUND when the site has none (yet). */
	int (*operation_status)(void *ost, int64_t operation_id, struct cmb_site_operation_status *out);
	/*
	 * Every client SMS_CN_ClientStatus reports offline (OnlineStatus 0): one
	 * paged read, not one request per device, a page a call so the caller
	 * can interleave it with other work. 0: a page was read, more remain
	 * (call again); 1: the read is complete and *ids holds the ResourceIDs
	 * sorted ascending (newly allocated, caller frees; NULL and 0 when
	 * none); negative: the read failed and is dropped. The call after a
	 * completion or a failure begins a new read.
	 */
	int (*offline_clients)(void *ost, uint32_t **ids, size_t *n);
	/* SMS_Collection.BlockClients(ids, Blocked=true). Idempotent: retried. Any 2xx is success unless it carries a ReturnValue other than 0. */
	int (*block_clients)(void *ost, const uint32_t *ids, size_t n);

	/*
	 * Endpoint security policies (docs/policies.md, "The engine"), on their
	 * own state made by policy_open over the connection of st (as
	 * ops_open; no I/O; closed with policy_close before st). ids are Graph
	 * policy ids (letters, digits, '-', '_' and '.': anything else is
	 * CMB_EINVAL before a request). All members may be NULL for adapters
	 * without a policy store.
	 */
	int (*policy_open)(void **out, void *st);
	void (*policy_close)(void *pst);
	/*
	 * Stores the document xml (len bytes) under id. Idempotent (the same
	 * version and hash again is "unchanged"), so retried. 0 with out->state
	 * on 2xx; CMB_EHTTP with out->status (400 refused, 409 a newer version
	 * or another hash stored, 413, 415) and the site's message otherwise.
	 */
	int (*policy_put)(void *pst, const char *id, const char *xml, size_t len, struct cmb_site_policy_put *out);
	/* Removes id's document: 0 with *existed 1 (204) or 0 (404: not there, or an earlier try removed it). */
	int (*policy_delete)(void *pst, const char *id, int *existed);
	/* Every document the site holds, by id (newly allocated; cmb_site_policy_entries_free). */
	int (*policy_list)(void *pst, struct cmb_site_policy_entry **out, size_t *n);
	/* The compliance of id's stored document (caller clears *out); CMB_ENOTFOUND when none is stored. */
	int (*policy_compliance)(void *pst, const char *id, struct cmb_site_policy_compliance *out);
	/*
	 * The ResourceIDs of a collection's members, sorted ascending, newly
	 * allocated (*ids, caller frees; NULL and 0 when empty): one paged read
	 * of SMS_FullCollectionMembership. Which collections share members
	 * decides where two policies can collide (docs/policies.md §4).
	 */
	int (*collection_members)(void *pst, const char *collection_id, uint32_t **ids, size_t *n);

	/*
	 * Offline: reads devices from saved pages in paths[0..n) (no config, no
	 * network; `cmbridge map --from NAME`) and passes each to cb, as
	 * read_devices would. Errors name the file. May be NULL.
	 */
	int (*read_files)(const char *const *paths, size_t n, cmb_site_device_cb cb, void *ctx);
};

extern const struct cmb_site_adapter cmb_site_adminservice;

/* Looks an adapter up by name; NULL when unknown. */
const struct cmb_site_adapter *cmb_site_adapter_find(const char *name);

#endif
