/*
 * classes.h - every AdminService class, property and method cmbridge reads
 * or calls, in one table, spelled as the site spells it (per class: the
 * key of SMS_R_System is ResourceId, of every other class ResourceID).
 *
 * Each name has its public source in docs/wire-format.md; where sources
 * disagree, the table names the spelling live sites were seen to answer
 * with first and the other as an alternative, and the site's own
 * $metadata (schema.h) decides which one a site has. Properties are
 * required (the read fails without them, naming what is missing) or
 * optional (left empty and reported once a cycle). Nothing else in the
 * adapter spells a class, property or method name. Never does I/O.
 */
#ifndef CMB_AS_CLASSES_H
#define CMB_AS_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/site.h"
#include "adapters/adminservice/odata.h"
#include "mapping/site_device.h"

enum cmb_as_class_id {
	/* The device classes, merge-joined on their key (join.h); SMS_R_System drives. */
	CMB_AS_SYSTEM = 0,          /* SMS_R_System */
	CMB_AS_CDR,                 /* SMS_CombinedDeviceResources */
	CMB_AS_COMGMT,              /* SMS_Client_ComanagementState */
	CMB_AS_COMPUTER_SYSTEM,     /* SMS_G_System_COMPUTER_SYSTEM */
	CMB_AS_PC_BIOS,             /* SMS_G_System_PC_BIOS */
	CMB_AS_NDEVICE,
	/* Collections and the hierarchy. */
	CMB_AS_MEMBERSHIP = CMB_AS_NDEVICE, /* SMS_FullCollectionMembership: the [site] collection filter */
	CMB_AS_COLLECTION,          /* SMS_Collection */
	CMB_AS_SITE,                /* SMS_Site */
	/* Client operations (remote actions). */
	CMB_AS_OPERATION,           /* SMS_ClientOperation */
	CMB_AS_OPSTATUS,            /* SMS_ClientOperationStatus */
	CMB_AS_CNSTATUS,            /* SMS_CN_ClientStatus */
	CMB_AS_NCLASSES
};

/* The device classes' count under its old name (join.h, tests). */
#define CMB_AS_NDEVICE_CLASSES CMB_AS_NDEVICE

enum cmb_as_prop_type {
	CMB_AS_PROP_KEY,            /* the join key: uint32_t resource_id (number, or numeric string) */
	CMB_AS_PROP_STRING,         /* char *, NULL when null or absent */
	CMB_AS_PROP_INT,            /* int: a number, a numeric string or a boolean; -1 when absent */
	CMB_AS_PROP_BOOL,           /* int 0/1: a boolean, 0/1, or "true"/"false"/"0"/"1"; -1 when absent */
	CMB_AS_PROP_FLAGS,          /* int64_t bitmask: a number or a numeric string (UInt32/UInt64); -1 absent */
	CMB_AS_PROP_DATETIME,       /* char *, ISO 8601 UTC: from ISO 8601 or WMI DMTF text; NULL absent */
	CMB_AS_PROP_ANY,            /* read by the adapter itself, not into a device (collections, operations) */
};

#define CMB_AS_NO_FIELD ((size_t)-1)

struct cmb_as_prop {
	const char *name;           /* the spelling to ask for first */
	const char *alt;            /* another spelling some sites use, or NULL */
	enum cmb_as_prop_type type;
	size_t offset;              /* offsetof(struct cmb_site_device, field), or CMB_AS_NO_FIELD */
	int required;               /* the read fails without it */
	const char *since;          /* the release that added it, for messages ("ConfigMgr 1906"), or NULL */
	const char *loses;          /* what is left empty without it ("the OS build revision") */
};

struct cmb_as_class {
	const char *name;           /* WMI class = OData entity set */
	int required;               /* a site without the class cannot be read */
	const char *since;          /* the release that added it, or NULL */
	const char *loses;          /* what is left empty without it */
	long has_offset;            /* offset of the device's has_* flag this class sets, -1 for none */
	const struct cmb_as_prop *props;   /* props[0] is the key for the device classes */
	size_t nprops;
};

extern const struct cmb_as_class cmb_as_classes[CMB_AS_NCLASSES];

/* Property indexes of the classes the adapter reads itself (the order of their tables). */
enum { CMB_AS_MEMBERSHIP_RESOURCE = 0, CMB_AS_MEMBERSHIP_COLLECTION };
enum { CMB_AS_COLL_ID = 0, CMB_AS_COLL_NAME, CMB_AS_COLL_COMMENT, CMB_AS_COLL_TYPE, CMB_AS_COLL_MEMBERS,
       CMB_AS_COLL_LIMIT_TO, CMB_AS_COLL_LAST_CHANGE };
enum { CMB_AS_SITE_CODE = 0, CMB_AS_SITE_NAME, CMB_AS_SITE_REPORTING, CMB_AS_SITE_VERSION };
enum { CMB_AS_OP_ID = 0, CMB_AS_OP_COLLECTION, CMB_AS_OP_CREATED_BY, CMB_AS_OP_REQUESTED, CMB_AS_OP_TARGETS,
       CMB_AS_OP_PRIMARY_TYPE, CMB_AS_OP_STATE };
enum { CMB_AS_OPS_ID = 0, CMB_AS_OPS_TYPE, CMB_AS_OPS_STATE, CMB_AS_OPS_TOTAL, CMB_AS_OPS_COMPLETED,
       CMB_AS_OPS_FAILED, CMB_AS_OPS_OFFLINE, CMB_AS_OPS_UNKNOWN, CMB_AS_OPS_EXPIRED, CMB_AS_OPS_REQUESTED,
       CMB_AS_OPS_CREATED_BY };
enum { CMB_AS_CN_RESOURCE = 0, CMB_AS_CN_ONLINE };

/* The name of property i of class c as the table spells it first (for filters and messages). */
#define CMB_AS_NAME(c, i) (cmb_as_classes[(c)].props[(i)].name)

#define CMB_AS_COLLECTION_TYPE_USER 1
#define CMB_AS_COLLECTION_TYPE_DEVICE 2

/* Methods, each with its parameters in the order of the method reference. */
struct cmb_as_method {
	const char *cls;            /* the class that defines it */
	const char *name;
	const char *params[4];
};
enum { CMB_AS_INITIATE = 0, CMB_AS_BLOCK, CMB_AS_NMETHODS };
extern const struct cmb_as_method cmb_as_methods[CMB_AS_NMETHODS];
/* InitiateClientOperation's parameters, BlockClients' parameters (indexes into params). */
enum { CMB_AS_INITIATE_TYPE = 0, CMB_AS_INITIATE_COLLECTION, CMB_AS_INITIATE_WINDOW, CMB_AS_INITIATE_TARGETS };
enum { CMB_AS_BLOCK_IDS = 0, CMB_AS_BLOCK_BLOCKED };

/* ---- reading values as they come ---------------------------------------- */

/*
 * A JSON value as an integer: a number written as an integer, or a string
 * of digits (64-bit values may come quoted); optional leading '-'.
 * 0 or -1.
 */
int cmb_as_value_integer(const struct cmb_odata_field *f, long long *out);
/* The same, unsigned, up to 2^64-1 (bitmasks). */
int cmb_as_value_unsigned(const struct cmb_odata_field *f, uint64_t *out);
/* A boolean: true/false, 0/1, or the strings "true"/"false"/"0"/"1" (any case). 0 or -1. */
int cmb_as_value_bool(const struct cmb_odata_field *f, int *out);
/* A DateTime in ISO 8601 or WMI DMTF text, to epoch seconds. 0 or -1. */
int cmb_as_value_time(const struct cmb_odata_field *f, int64_t *out);

#endif
