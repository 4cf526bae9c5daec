/*
 * classes.c - the one table of AdminService classes, properties and
 * methods (sources: docs/wire-format.md §1, §5, §8), and the conversions
 * of the value forms sites send (numbers or numeric strings, booleans or
 * 0/1, ISO 8601 or WMI DMTF times).
 *
 * Pure: no I/O, no logging.
 */
#include "adapters/adminservice/classes.h"
#include "connector/base/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEV(f) offsetof(struct cmb_site_device, f)
#define NOF CMB_AS_NO_FIELD
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* name, other spelling, type, field, required, since, what is lost without it */
#define REQ(n, alt, t, off) { n, alt, CMB_AS_PROP_##t, off, 1, NULL, NULL }
#define OPT(n, alt, t, off, since, loses) { n, alt, CMB_AS_PROP_##t, off, 0, since, loses }

/*
 * SMS_R_System: the JSON spells its key ResourceId although the class
 * reference writes ResourceID (scripts run against real sites read
 * i["ResourceId"]); the site's $metadata settles it per site.
 */
static const struct cmb_as_prop system_props[] = {
	REQ("ResourceId", "ResourceID", KEY, DEV(resource_id)),
	REQ("Name", NULL, STRING, DEV(name)),
	REQ("Client", NULL, INT, DEV(client)),
	REQ("Obsolete", NULL, INT, DEV(obsolete)),
	REQ("Decommissioned", NULL, INT, DEV(decommissioned)),
	REQ("Active", NULL, INT, DEV(active)),
	OPT("SMSUniqueIdentifier", NULL, STRING, DEV(sms_unique_id), NULL, "the client identifier falls back to the CDR SMSID"),
	OPT("HardwareID", NULL, STRING, DEV(hardware_id), NULL, "duplicate hardware is matched on SMBIOSGUID only"),
	OPT("SMBIOSGUID", NULL, STRING, DEV(smbios_guid), NULL, "duplicate hardware is matched on HardwareID only"),
	OPT("AADDeviceID", NULL, STRING, DEV(aad_device_id), NULL,
	    "azureADDeviceId is left empty"),
	OPT("AADTenantID", NULL, STRING, DEV(aad_tenant_id), NULL,
	    "the record's aadTenantId is left empty"),
	OPT("OperatingSystemNameandVersion", NULL, STRING, DEV(os_name_version), NULL,
	    "operatingSystem comes from the CDR DeviceOS"),
	OPT("Build", NULL, STRING, DEV(build), NULL, "osVersion has no fallback below BuildExt and DeviceOSBuild"),
	OPT("BuildExt", NULL, STRING, DEV(build_ext), NULL,
	    "osVersion comes from DeviceOSBuild or Build"),
	OPT("ResourceDomainORWorkgroup", NULL, STRING, DEV(domain), NULL, "the domain is not read"),
};

static const struct cmb_as_prop cdr_props[] = {
	REQ("ResourceID", "ResourceId", KEY, DEV(resource_id)),
	OPT("SiteCode", NULL, STRING, DEV(site_code), NULL, "the device's assigned site is not read"),
	OPT("SMSID", NULL, STRING, DEV(sms_id), NULL, "smsId falls back to SMSUniqueIdentifier"),
	OPT("IsClient", NULL, BOOL, DEV(is_client), NULL, "client state comes from SMS_R_System.Client only"),
	OPT("IsActive", NULL, BOOL, DEV(is_active), NULL, "activity comes from SMS_R_System.Active only"),
	OPT("IsBlocked", NULL, BOOL, DEV(is_blocked), NULL, "isBlocked is reported false"),
	OPT("IsObsolete", NULL, BOOL, DEV(is_obsolete), NULL, "obsolete state comes from SMS_R_System.Obsolete only"),
	OPT("ClientVersion", NULL, STRING, DEV(client_version), NULL, "the client version is left empty"),
	OPT("ClientActiveStatus", NULL, INT, DEV(client_active_status), NULL, "client health is reported unknown"),
	OPT("ClientCheckPass", NULL, INT, DEV(client_check_pass), NULL, "client health is reported unknown"),
	OPT("LastPolicyRequest", NULL, DATETIME, DEV(last_policy_request), NULL, "lastSyncDateTime is left unset"),
	OPT("LastActiveTime", NULL, DATETIME, DEV(last_active_time), NULL,
	    "duplicates are told apart by ResourceID only"),
	OPT("DeviceOS", NULL, STRING, DEV(device_os), NULL, "operatingSystem comes from SMS_R_System only"),
	OPT("DeviceOSBuild", NULL, STRING, DEV(device_os_build), NULL,
	    "osVersion comes from BuildExt or Build"),
};

/*
 * SMS_Client_ComanagementState has no class reference page: its key is
 * ResourceID in Microsoft's WQL and MachineId in the co-management
 * monitoring page, so both are tried (and any casing).
 */
static const struct cmb_as_prop comgmt_props[] = {
	REQ("ResourceID", "MachineId", KEY, DEV(resource_id)),
	OPT("MDMEnrolled", NULL, BOOL, DEV(mdm_enrolled), NULL, "no device is reported co-managed"),
	OPT("ComgmtPolicyPresent", NULL, BOOL, DEV(comgmt_policy_present), NULL, "no device is reported co-managed"),
	OPT("MDMWorkloads", NULL, FLAGS, DEV(mdm_workloads), NULL, "every workload is reported managed by ConfigMgr"),
	OPT("HybridAADJoined", NULL, BOOL, DEV(hybrid_aad_joined), NULL, "joinType is reported unknown"),
	OPT("AADJoined", NULL, BOOL, DEV(aad_joined), NULL, "joinType is reported unknown"),
};

/* Hardware inventory: keyed by GroupID, so a device may have several rows (the first is used). */
static const struct cmb_as_prop computer_system_props[] = {
	REQ("ResourceID", "ResourceId", KEY, DEV(resource_id)),
	OPT("Manufacturer", NULL, STRING, DEV(manufacturer), NULL, "manufacturer is left empty"),
	OPT("Model", NULL, STRING, DEV(model), NULL, "model is left empty"),
};

static const struct cmb_as_prop pc_bios_props[] = {
	REQ("ResourceID", "ResourceId", KEY, DEV(resource_id)),
	OPT("SerialNumber", NULL, STRING, DEV(serial_number), NULL, "serialNumber is left empty"),
};

static const struct cmb_as_prop membership_props[] = {
	REQ("ResourceID", "ResourceId", KEY, DEV(resource_id)),
	REQ("CollectionID", NULL, ANY, NOF),
};

static const struct cmb_as_prop collection_props[] = {
	REQ("CollectionID", NULL, ANY, NOF),
	REQ("Name", NULL, ANY, NOF),
	OPT("Comment", NULL, ANY, NOF, NULL, "the collection's comment is not read"),
	REQ("CollectionType", NULL, ANY, NOF),
	OPT("MemberCount", NULL, ANY, NOF, NULL, "the member count is not read"),
	OPT("LimitToCollectionID", NULL, ANY, NOF, NULL, "the limiting collection is not read"),
	OPT("LastChangeTime", NULL, ANY, NOF, NULL, "lastModifiedDateTime is left unset"),
};

static const struct cmb_as_prop site_props[] = {
	REQ("SiteCode", NULL, ANY, NOF),
	OPT("SiteName", NULL, ANY, NOF, NULL, "the hierarchy is named after its site code"),
	REQ("ReportingSiteCode", NULL, ANY, NOF),
	OPT("Version", NULL, ANY, NOF, NULL, "the site version is not reported"),
};

/* No Type and no TargetCollectionID here: those are on SMS_ClientOperationStatus and the method. */
static const struct cmb_as_prop operation_props[] = {
	REQ("ID", NULL, ANY, NOF),
	REQ("CollectionID", NULL, ANY, NOF),
	OPT("CreatedBy", NULL, ANY, NOF, NULL, "operations are not told apart by their creator"),
	OPT("RequestedTime", NULL, ANY, NOF, NULL, "operations are not told apart by their time"),
	OPT("TargetResourceIDs", NULL, ANY, NOF, NULL, "operations are matched without their targets"),
	OPT("PrimaryActionType", NULL, ANY, NOF, NULL, NULL),
	OPT("State", NULL, ANY, NOF, NULL, NULL),
};

static const struct cmb_as_prop opstatus_props[] = {
	REQ("ID", NULL, ANY, NOF),
	REQ("Type", NULL, ANY, NOF),
	OPT("State", NULL, ANY, NOF, NULL, NULL),
	REQ("TotalClients", NULL, ANY, NOF),
	REQ("CompletedClients", NULL, ANY, NOF),
	REQ("FailedClients", NULL, ANY, NOF),
	REQ("OfflineClients", NULL, ANY, NOF),
	OPT("UnknownClients", NULL, ANY, NOF, NULL, NULL),
	OPT("IsExpired", NULL, ANY, NOF, NULL, "an expired operation is found by its status timeout only"),
	OPT("RequestedTime", NULL, ANY, NOF, NULL, "operations are not told apart by their time"),
	OPT("CreatedBy", NULL, ANY, NOF, NULL, "operations are not told apart by their creator"),
};

static const struct cmb_as_prop cnstatus_props[] = {
	REQ("ResourceID", "ResourceId", ANY, NOF),
	REQ("OnlineStatus", NULL, ANY, NOF),
};

#define CLASS(n, req, since, loses, has, props) { n, req, since, loses, has, props, COUNT(props) }

const struct cmb_as_class cmb_as_classes[CMB_AS_NCLASSES] = {
	[CMB_AS_SYSTEM] = CLASS("SMS_R_System", 1, NULL, NULL, -1, system_props),
	[CMB_AS_CDR] = CLASS("SMS_CombinedDeviceResources", 1, NULL, NULL, (long)DEV(has_cdr), cdr_props),
	[CMB_AS_COMGMT] = CLASS("SMS_Client_ComanagementState", 0, "co-management (ConfigMgr 1710)",
				"no device is reported co-managed; joinType is unknown", (long)DEV(has_comgmt),
				comgmt_props),
	[CMB_AS_COMPUTER_SYSTEM] = CLASS("SMS_G_System_COMPUTER_SYSTEM", 0, "hardware inventory",
					 "manufacturer and model are left empty", -1, computer_system_props),
	[CMB_AS_PC_BIOS] = CLASS("SMS_G_System_PC_BIOS", 0, "hardware inventory", "serialNumber is left empty", -1,
				 pc_bios_props),
	[CMB_AS_MEMBERSHIP] = CLASS("SMS_FullCollectionMembership", 1, NULL, NULL, -1, membership_props),
	[CMB_AS_COLLECTION] = CLASS("SMS_Collection", 1, NULL, NULL, -1, collection_props),
	[CMB_AS_SITE] = CLASS("SMS_Site", 1, NULL, NULL, -1, site_props),
	[CMB_AS_OPERATION] = CLASS("SMS_ClientOperation", 1, NULL, NULL, -1, operation_props),
	[CMB_AS_OPSTATUS] = CLASS("SMS_ClientOperationStatus", 1, NULL, NULL, -1, opstatus_props),
	[CMB_AS_CNSTATUS] = CLASS("SMS_CN_ClientStatus", 0, NULL, "offline clients cannot be told apart", -1,
				  cnstatus_props),
};

const struct cmb_as_method cmb_as_methods[CMB_AS_NMETHODS] = {
	[CMB_AS_INITIATE] = { "SMS_ClientOperation", "InitiateClientOperation",
			      { "Type", "TargetCollectionID", "RandomizationWindow", "TargetResourceIDs" } },
	[CMB_AS_BLOCK] = { "SMS_Collection", "BlockClients", { "ResourceIDs", "Blocked", NULL, NULL } },
};

/* ---- values as they come --------------------------------------------- */

/* The digits of f: a JSON number as written, or a string (64-bit values may come quoted). */
static int integer_text(const struct cmb_odata_field *f, const char **s, size_t *len)
{
	if ((f->type != CMB_ODATA_NUMBER && f->type != CMB_ODATA_STRING) || !f->text || !f->len)
		return -1;
	*s = f->text;
	*len = f->len;
	return 0;
}

int cmb_as_value_integer(const struct cmb_odata_field *f, long long *out)
{
	const char *s;
	size_t len;
	if (!f || integer_text(f, &s, &len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!(s[i] == '-' && i == 0 && len > 1) && (s[i] < '0' || s[i] > '9'))
			return -1;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno || end != s + len)
		return -1;
	*out = v;
	return 0;
}

int cmb_as_value_unsigned(const struct cmb_odata_field *f, uint64_t *out)
{
	const char *s;
	size_t len;
	if (!f || integer_text(f, &s, &len) < 0)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end != s + len)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int cmb_as_value_bool(const struct cmb_odata_field *f, int *out)
{
	long long v;
	if (!f)
		return -1;
	if (f->type == CMB_ODATA_BOOL) {
		*out = f->boolean;
		return 0;
	}
	if (f->type == CMB_ODATA_STRING && f->text &&
	    (strcasecmp(f->text, "true") == 0 || strcasecmp(f->text, "false") == 0)) {
		*out = f->text[0] == 't' || f->text[0] == 'T';
		return 0;
	}
	if (cmb_as_value_integer(f, &v) < 0 || (v != 0 && v != 1))
		return -1;
	*out = (int)v;
	return 0;
}

int cmb_as_value_time(const struct cmb_odata_field *f, int64_t *out)
{
	if (!f || f->type != CMB_ODATA_STRING || !f->text || strlen(f->text) != f->len)
		return -1;
	return cmb_time_parse(f->text, out);
}
