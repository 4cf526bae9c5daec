/*
 * classes.c - the one table of AdminService classes and properties, and the
 * per-property conversions from JSON scalars to struct cmb_site_device.
 *
 * Sources: docs/wire-format.md section 1 (class reference pages named there).
 * Pure: no I/O, no logging.
 */
#include "adapters/adminservice/classes.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define P(n, t, f) { n, CMB_AS_PROP_##t, offsetof(struct cmb_site_device, f) }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct cmb_as_prop system_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
	P("Name", STRING, name),
	P("SMSUniqueIdentifier", STRING, sms_unique_id),
	P("HardwareID", STRING, hardware_id),
	P("SMBIOSGUID", STRING, smbios_guid),
	P("AADDeviceID", STRING, aad_device_id),
	P("AADTenantID", STRING, aad_tenant_id),
	P("OperatingSystemNameandVersion", STRING, os_name_version),
	P("Build", STRING, build),
	P("BuildExt", STRING, build_ext),
	P("ResourceDomainORWorkgroup", STRING, domain),
	P("Client", INT, client),
	P("Obsolete", INT, obsolete),
	P("Decommissioned", INT, decommissioned),
	P("Active", INT, active),
};

static const struct cmb_as_prop cdr_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
	P("SiteCode", STRING, site_code),
	P("SMSID", STRING, sms_id),
	P("IsClient", BOOL, is_client),
	P("IsActive", BOOL, is_active),
	P("IsBlocked", BOOL, is_blocked),
	P("IsObsolete", BOOL, is_obsolete),
	P("IsDecommissioned", BOOL, is_decommissioned),
	P("ClientVersion", STRING, client_version),
	P("ClientActiveStatus", INT, client_active_status),
	P("ClientCheckPass", INT, client_check_pass),
	P("LastPolicyRequest", STRING, last_policy_request),
	P("LastActiveTime", STRING, last_active_time),
	P("DeviceOS", STRING, device_os),
	P("DeviceOSBuild", STRING, device_os_build),
};

static const struct cmb_as_prop comgmt_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
	P("MDMEnrolled", BOOL, mdm_enrolled),
	P("ComgmtPolicyPresent", BOOL, comgmt_policy_present),
	P("HybridAADJoined", BOOL, hybrid_aad_joined),
	P("AADJoined", BOOL, aad_joined),
	P("ComgmtWorkloads", FLAGS, comgmt_workloads),
};

static const struct cmb_as_prop computer_system_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
	P("Manufacturer", STRING, manufacturer),
	P("Model", STRING, model),
};

static const struct cmb_as_prop pc_bios_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
	P("SerialNumber", STRING, serial_number),
};

const struct cmb_as_class cmb_as_classes[CMB_AS_NCLASSES] = {
	[CMB_AS_SYSTEM] = { "SMS_R_System", -1, system_props, COUNT(system_props) },
	[CMB_AS_CDR] = { "SMS_CombinedDeviceResources", (long)offsetof(struct cmb_site_device, has_cdr),
			 cdr_props, COUNT(cdr_props) },
	[CMB_AS_COMGMT] = { "SMS_Client_ComanagementState", (long)offsetof(struct cmb_site_device, has_comgmt),
			    comgmt_props, COUNT(comgmt_props) },
	[CMB_AS_COMPUTER_SYSTEM] = { "SMS_G_System_COMPUTER_SYSTEM", -1,
				     computer_system_props, COUNT(computer_system_props) },
	[CMB_AS_PC_BIOS] = { "SMS_G_System_PC_BIOS", -1, pc_bios_props, COUNT(pc_bios_props) },
};

static const struct cmb_as_prop membership_props[] = {
	P(CMB_AS_KEY, KEY, resource_id),
};

const struct cmb_as_class cmb_as_membership = {
	"SMS_FullCollectionMembership", -1, membership_props, COUNT(membership_props),
};

char *cmb_as_class_select(const struct cmb_as_class *cls)
{
	struct cmb_buf b = CMB_BUF_INIT(4096);
	for (size_t i = 0; i < cls->nprops; i++) {
		if (i)
			cmb_buf_add(&b, ",", 1);
		cmb_buf_addstr(&b, cls->props[i].name);
	}
	return cmb_buf_detach(&b, NULL);
}

/* A JSON number that is a plain integer ("12", "-3"; not "1.0" or "1e3"). */
static int parse_integer(const struct cmb_odata_field *f, long long *out)
{
	if (f->type != CMB_ODATA_NUMBER || !f->text || !f->len)
		return -1;
	for (size_t i = 0; i < f->len; i++)
		if (!(f->text[i] == '-' && i == 0) && (f->text[i] < '0' || f->text[i] > '9'))
			return -1;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(f->text, &end, 10);
	if (errno || end != f->text + f->len)
		return -1;
	*out = v;
	return 0;
}

int cmb_as_record_key(const struct cmb_odata_record *rec, uint32_t *out)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(rec, CMB_AS_KEY);
	long long v;
	if (!f)
		return cmb_error_set(CMB_EPROTO, "record has no " CMB_AS_KEY);
	if (parse_integer(f, &v) < 0 || v < 0 || v > (long long)UINT32_MAX)
		return cmb_error_set(CMB_EPROTO, "record has a " CMB_AS_KEY " that is not an integer in 0..4294967295");
	*out = (uint32_t)v;
	return 0;
}

/* Fills one property; returns 1 on a type mismatch (the field stays absent). */
static unsigned fill_prop(const struct cmb_as_prop *prop, const struct cmb_odata_field *f,
			  struct cmb_site_device *dev)
{
	char *base = (char *)dev;
	long long v;
	if (f->type == CMB_ODATA_NULL)
		return 0;
	switch (prop->type) {
	case CMB_AS_PROP_KEY:
		return 0; /* set by the join, which has already checked it */
	case CMB_AS_PROP_STRING: {
		if (f->type != CMB_ODATA_STRING)
			return 1;
		char **dst = (char **)(base + prop->offset);
		free(*dst);
		/* An embedded NUL (from \u0000) ends the string: the struct holds C strings. */
		*dst = xstrndup(f->text, f->len);
		return 0;
	}
	case CMB_AS_PROP_INT:
		if (f->type == CMB_ODATA_BOOL) {
			*(int *)(base + prop->offset) = f->boolean;
			return 0;
		}
		if (parse_integer(f, &v) < 0 || v < INT_MIN || v > INT_MAX)
			return 1;
		*(int *)(base + prop->offset) = (int)v;
		return 0;
	case CMB_AS_PROP_BOOL:
		if (f->type == CMB_ODATA_BOOL) {
			*(int *)(base + prop->offset) = f->boolean;
			return 0;
		}
		if (parse_integer(f, &v) < 0 || (v != 0 && v != 1))
			return 1;
		*(int *)(base + prop->offset) = (int)v;
		return 0;
	case CMB_AS_PROP_FLAGS:
		if (parse_integer(f, &v) < 0 || v < 0)
			return 1;
		*(int64_t *)(base + prop->offset) = (int64_t)v;
		return 0;
	}
	return 1;
}

unsigned cmb_as_class_fill(const struct cmb_as_class *cls, const struct cmb_odata_record *rec,
			   struct cmb_site_device *dev)
{
	unsigned mismatches = 0;
	for (size_t i = 0; i < cls->nprops; i++) {
		const struct cmb_odata_field *f = cmb_odata_record_get(rec, cls->props[i].name);
		if (f)
			mismatches += fill_prop(&cls->props[i], f, dev);
	}
	if (cls->has_offset >= 0)
		*(int *)((char *)dev + cls->has_offset) = 1;
	return mismatches;
}

static char *string_prop(const struct cmb_odata_record *rec, const char *name)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(rec, name);
	if (!f || f->type != CMB_ODATA_STRING)
		return NULL;
	return xstrndup(f->text, f->len);
}

static long long integer_prop(const struct cmb_odata_record *rec, const char *name, long long absent)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(rec, name);
	long long v;
	if (!f || parse_integer(f, &v) < 0)
		return absent;
	return v;
}

void cmb_as_collection_fill(const struct cmb_odata_record *rec, struct cmb_site_collection *c, int *type)
{
	c->collection_id = string_prop(rec, CMB_AS_COLLECTION_KEY);
	c->name = string_prop(rec, "Name");
	c->comment = string_prop(rec, "Comment");
	long long n = integer_prop(rec, "MemberCount", -1);
	c->member_count = n >= 0 && n <= LONG_MAX ? (long)n : -1;
	c->limit_to = string_prop(rec, "LimitToCollectionID");
	c->last_change = string_prop(rec, "LastChangeTime");
	long long t = integer_prop(rec, "CollectionType", -1);
	*type = t >= 0 && t <= INT_MAX ? (int)t : -1;
}
