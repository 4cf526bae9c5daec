/*
 * classes.h - the AdminService WMI classes cmbridge reads, in one table.
 *
 * For each class: its name on the wire, the properties to $select, and
 * which field of struct cmb_site_device each one fills. The URL builder,
 * the join and the docs all follow this table; nothing else in the adapter
 * spells a class or property name. Never does I/O.
 */
#ifndef CMB_AS_CLASSES_H
#define CMB_AS_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "mapping/site_device.h"
#include "adapters/site.h"
#include "adapters/adminservice/odata.h"

/* The join key, spelled as every class reference spells it. */
#define CMB_AS_KEY "ResourceID"

enum cmb_as_class_id {
	CMB_AS_SYSTEM = 0,          /* SMS_R_System: drives the join */
	CMB_AS_CDR,                 /* SMS_CombinedDeviceResources */
	CMB_AS_COMGMT,              /* SMS_Client_ComanagementState */
	CMB_AS_COMPUTER_SYSTEM,     /* SMS_G_System_COMPUTER_SYSTEM */
	CMB_AS_PC_BIOS,             /* SMS_G_System_PC_BIOS */
	CMB_AS_NCLASSES
};

enum cmb_as_prop_type {
	CMB_AS_PROP_KEY,            /* the ResourceID: uint32_t resource_id */
	CMB_AS_PROP_STRING,         /* char *, NULL when null or absent */
	CMB_AS_PROP_INT,            /* int from a JSON number (or boolean); -1 when absent */
	CMB_AS_PROP_BOOL,           /* int 0/1 from a JSON boolean (or number 0/1); -1 when absent */
	CMB_AS_PROP_FLAGS,          /* int64_t from a JSON number; -1 when absent */
};

struct cmb_as_prop {
	const char *name;           /* OData property name (case-sensitive) */
	enum cmb_as_prop_type type;
	size_t offset;              /* offsetof(struct cmb_site_device, field) */
};

struct cmb_as_class {
	const char *name;           /* WMI class = OData entity set */
	long has_offset;            /* offset of the has_* flag this class sets, -1 for none */
	const struct cmb_as_prop *props;
	size_t nprops;
};

extern const struct cmb_as_class cmb_as_classes[CMB_AS_NCLASSES];

/*
 * SMS_FullCollectionMembership, read as the collection-scope filter of the
 * join ([site] collection): only its key is selected, it fills nothing.
 */
extern const struct cmb_as_class cmb_as_membership;
#define CMB_AS_MEMBERSHIP_FILTER_PROP "CollectionID"

/* SMS_Collection, read for [site] cloud_sync_collections (wire-format.md §5). */
#define CMB_AS_COLLECTION_CLASS "SMS_Collection"
#define CMB_AS_COLLECTION_KEY "CollectionID"
#define CMB_AS_COLLECTION_SELECT "CollectionID,Name,Comment,CollectionType,MemberCount,LimitToCollectionID,LastChangeTime"
#define CMB_AS_COLLECTION_TYPE_USER 1
#define CMB_AS_COLLECTION_TYPE_DEVICE 2

/* SMS_Site, read once per read_collections to name the hierarchy after its top site. */
#define CMB_AS_SITE_CLASS "SMS_Site"
#define CMB_AS_SITE_SELECT "SiteCode,SiteName,ReportingSiteCode"
#define CMB_AS_SITE_CODE "SiteCode"
#define CMB_AS_SITE_NAME "SiteName"
#define CMB_AS_SITE_REPORTING "ReportingSiteCode"

/*
 * Copies an SMS_Collection row into c (strings copied, c owns them; absent
 * strings NULL, an absent MemberCount -1; hierarchy fields untouched) and its
 * CollectionType into *type (-1 when absent or not an integer).
 */
void cmb_as_collection_fill(const struct cmb_odata_record *rec, struct cmb_site_collection *c, int *type);

/* "ResourceID,Name,..." for $select. Caller frees. */
char *cmb_as_class_select(const struct cmb_as_class *cls);

/*
 * Reads the key of rec into *out. Returns 0, or CMB_EPROTO (message set, no
 * location: the caller adds it) when ResourceID is absent, null, not an
 * integer, or outside 0..4294967295.
 */
int cmb_as_record_key(const struct cmb_odata_record *rec, uint32_t *out);

/*
 * Copies the properties of cls found in rec into dev (strings copied; dev
 * owns them) and sets the class's has_* flag. A property with the wrong JSON
 * type is left absent and counted: returns the number of such mismatches.
 */
unsigned cmb_as_class_fill(const struct cmb_as_class *cls, const struct cmb_odata_record *rec,
			   struct cmb_site_device *dev);

#endif
