/*
 * odata.c - the lab AdminService's one table of classes and properties
 * (names, EDM types, where each name comes from) and its one OData query
 * parser: $select, $filter, $orderby, $top, $skip, $count, $skiptoken,
 * with ASP.NET OData's error messages; value forms ([site] values); the
 * CSDL $metadata and the service document. site.c and actions.c serve
 * rows through it.
 *
 * It must never learn a name from the connector: every class and property
 * here carries its public source (docs/lab.md "Classes and properties").
 * A property the table lacks is a 400, as on a real site.
 */
#include "lab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- the table --------------------------------------------------------------------- */

#define S_RSYS "memdocs sms_r_system-server-wmi-class.md"
#define S_HUNTER "sccmhunter lib/scripts/pivot.py reads it from SMS_R_System JSON"
#define S_RID "sccmhunter pivot.py reads i[\"ResourceId\"] from SMS_R_System (the class page spells ResourceID)"
#define S_VRSYS "v_R_System / MEM.CommunityCenter fn_rbac_R_System.cs; SMS_R_System WQL"
#define S_CDR "memdocs sms_combineddeviceresources-server-wmi-class.md"
#define S_CDRM "MEM.CommunityCenter Models/Device/SMS_CombinedDeviceResources.cs (AdminService model)"
#define S_COMON "memdocs comanage/how-to-monitor.md (WMI device data)"
#define S_COWQL "site-side WQL: select co.HybridAADJoined, co.AADJoined, co.MDMWorkloads ... from SMS_Client_ComanagementState co"
#define S_COQ "memdocs core/servers/manage/create-queries.md (joins SMS_Client_ComanagementState.ResourceId)"
#define S_GCUR "memdocs sms_g_system_current-server-wmi-class.md"
#define S_HW "hardware inventory of Win32_ComputerSystem / Win32_BIOS (memdocs hardware-inventory-server-wmi-classes.md)"
#define S_FCM "memdocs sms_fullcollectionmembership-server-wmi-class.md"
#define S_COLL "memdocs sms_collection-server-wmi-class.md"
#define S_SITE "memdocs sms_site-server-wmi-class.md"
#define S_OP "memdocs protect/sms_clientoperation-server-wmi-class.md"
#define S_OPST "memdocs protect/sms_clientoperationstatus-server-wmi-class.md"
#define S_CN "memdocs core/clients/status/sms_cn_clientstatus-server-wmi-class.md"

#define K LAB_P_KEY
#define A LAB_P_ARRAY
#define N LAB_P_NEW

static const struct lab_odata_prop props_sys[] = {
	{"ResourceId", LAB_C_RID, LAB_EDM_INT64, K, S_RID},
	{"Name", LAB_C_NAME, LAB_EDM_STRING, 0, S_HUNTER},
	{"NetbiosName", LAB_C_NETBIOS, LAB_EDM_STRING, 0, S_RSYS},
	{"ResourceType", LAB_C_RESTYPE, LAB_EDM_INT64, 0, S_RSYS},
	{"SMSUniqueIdentifier", LAB_C_SMSUID, LAB_EDM_STRING, 0, S_HUNTER},
	{"HardwareID", LAB_C_HWID, LAB_EDM_STRING, 0, S_RSYS},
	{"SMBIOSGUID", LAB_C_SMBIOS, LAB_EDM_STRING, 0, S_RSYS},
	{"AADDeviceID", LAB_C_AADDEV, LAB_EDM_STRING, N, S_VRSYS},
	{"AADTenantID", LAB_C_AADTEN, LAB_EDM_STRING, 0, S_VRSYS},
	{"OperatingSystemNameandVersion", LAB_C_OSNAME, LAB_EDM_STRING, 0, S_HUNTER},
	{"Build", LAB_C_BUILD, LAB_EDM_STRING, 0, S_VRSYS},
	{"BuildExt", LAB_C_BUILDEXT, LAB_EDM_STRING, N, S_VRSYS},
	{"ResourceDomainORWorkgroup", LAB_C_DOMAIN, LAB_EDM_STRING, 0, S_RSYS},
	{"Client", LAB_C_CLIENT, LAB_EDM_INT64, 0, S_HUNTER},
	{"Obsolete", LAB_C_OBSOLETE, LAB_EDM_INT64, 0, S_RSYS},
	{"Decommissioned", LAB_C_DECOM, LAB_EDM_INT64, 0, S_RSYS},
	{"Active", LAB_C_ACTIVE, LAB_EDM_INT64, 0, S_HUNTER},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_cdr[] = {
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_CDR},
	{"Name", LAB_C_NAME, LAB_EDM_STRING, 0, S_CDR},
	{"SiteCode", LAB_C_SITECODE, LAB_EDM_STRING, 0, S_CDR},
	{"SMSID", LAB_C_SMSID, LAB_EDM_STRING, 0, S_CDR},
	{"Domain", LAB_C_DOMAIN, LAB_EDM_STRING, 0, S_CDR},
	{"IsClient", LAB_C_ISCLIENT, LAB_EDM_BOOL, 0, S_CDR},
	{"IsActive", LAB_C_ISACTIVE, LAB_EDM_BOOL, 0, S_CDR},
	{"IsBlocked", LAB_C_ISBLOCKED, LAB_EDM_BOOL, 0, S_CDR},
	{"IsObsolete", LAB_C_ISOBSOLETE, LAB_EDM_BOOL, 0, S_CDR},
	{"ClientVersion", LAB_C_CLIENTVER, LAB_EDM_STRING, 0, S_CDR},
	{"ClientActiveStatus", LAB_C_ACTSTATUS, LAB_EDM_INT32, 0, S_CDR " (SInt32)"},
	{"ClientCheckPass", LAB_C_CHECKPASS, LAB_EDM_INT32, 0, S_CDR " (SInt32)"},
	{"LastPolicyRequest", LAB_C_LASTPOLICY, LAB_EDM_DATE, 0, S_CDR},
	{"LastActiveTime", LAB_C_LASTACTIVE, LAB_EDM_DATE, 0, S_CDR},
	{"DeviceOS", LAB_C_DEVICEOS, LAB_EDM_STRING, 0, S_CDR},
	{"DeviceOSBuild", LAB_C_DEVICEOSBUILD, LAB_EDM_STRING, 0, S_CDRM},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_comgmt[] = {
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_COQ},
	{"MachineId", LAB_C_MACHINEID, LAB_EDM_INT64, 0, S_COMON},
	{"Name", LAB_C_NAME, LAB_EDM_STRING, 0, S_COWQL},
	{"MDMEnrolled", LAB_C_MDM, LAB_EDM_BOOL, 0, S_COMON},
	{"Authority", LAB_C_AUTHORITY, LAB_EDM_STRING, 0, S_COMON},
	{"ComgmtPolicyPresent", LAB_C_POLICY, LAB_EDM_BOOL, 0, S_COMON},
	{"HybridAADJoined", LAB_C_HYBRID, LAB_EDM_BOOL, 0, S_COWQL},
	{"AADJoined", LAB_C_AADJ, LAB_EDM_BOOL, 0, S_COWQL},
	{"MDMWorkloads", LAB_C_WORKLOADS, LAB_EDM_INT64, LAB_P_MASK64, S_COWQL},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_cs[] = {
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_GCUR},
	{"GroupID", LAB_C_GROUPID, LAB_EDM_INT64, K, S_GCUR},
	{"RevisionID", LAB_C_REVISION, LAB_EDM_INT64, 0, S_GCUR},
	{"TimeStamp", LAB_C_HWTIME, LAB_EDM_DATE, 0, S_GCUR},
	{"Name", LAB_C_NAME, LAB_EDM_STRING, 0, S_HW},
	{"Manufacturer", LAB_C_MFR, LAB_EDM_STRING, 0, S_HW},
	{"Model", LAB_C_MODEL, LAB_EDM_STRING, 0, S_HW},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_bios[] = {
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_GCUR},
	{"GroupID", LAB_C_GROUPID, LAB_EDM_INT64, K, S_GCUR},
	{"RevisionID", LAB_C_REVISION, LAB_EDM_INT64, 0, S_GCUR},
	{"TimeStamp", LAB_C_HWTIME, LAB_EDM_DATE, 0, S_GCUR},
	{"SerialNumber", LAB_C_SERIAL, LAB_EDM_STRING, 0, S_HW},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_fcm[] = {
	{"CollectionID", LAB_C_COLLID, LAB_EDM_STRING, K, S_FCM},
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_FCM},
	{"Name", LAB_C_NAME, LAB_EDM_STRING, 0, S_FCM},
	{"IsClient", LAB_C_ISCLIENT, LAB_EDM_BOOL, 0, S_FCM},
	{"SiteCode", LAB_C_SITECODE, LAB_EDM_STRING, 0, S_FCM},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_coll[] = {
	{"CollectionID", LAB_C_COLLID, LAB_EDM_STRING, K, S_COLL},
	{"Name", LAB_C_COLLNAME, LAB_EDM_STRING, 0, S_COLL},
	{"Comment", LAB_C_COMMENT, LAB_EDM_STRING, 0, S_COLL},
	{"CollectionType", LAB_C_COLLTYPE, LAB_EDM_INT64, 0, S_COLL},
	{"MemberCount", LAB_C_MEMBERCOUNT, LAB_EDM_INT32, 0, S_COLL " (SInt32)"},
	{"LimitToCollectionID", LAB_C_LIMITTO, LAB_EDM_STRING, 0, S_COLL},
	{"LastChangeTime", LAB_C_LASTCHANGE, LAB_EDM_DATE, 0, S_COLL},
	{"LastMemberChangeTime", LAB_C_LASTMCHANGE, LAB_EDM_DATE, 0, S_COLL},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_site[] = {
	{"SiteCode", LAB_C_SITECODE, LAB_EDM_STRING, K, S_SITE},
	{"SiteName", LAB_C_SITENAME, LAB_EDM_STRING, 0, S_SITE},
	{"ReportingSiteCode", LAB_C_REPORTING, LAB_EDM_STRING, 0, S_SITE},
	{"Version", LAB_C_VERSION, LAB_EDM_STRING, 0, S_SITE},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_op[] = {
	{"ID", LAB_C_OPID, LAB_EDM_INT64, K, S_OP},
	{"CollectionID", LAB_C_OPCOLL, LAB_EDM_STRING, 0, S_OP},
	{"CreatedBy", LAB_C_CREATEDBY, LAB_EDM_STRING, 0, S_OP},
	{"PrimaryActionType", LAB_C_PRIMARYACTION, LAB_EDM_INT64, 0, S_OP},
	{"RequestedTime", LAB_C_REQUESTED, LAB_EDM_DATE, 0, S_OP},
	{"SourceSite", LAB_C_SOURCESITE, LAB_EDM_STRING, 0, S_OP},
	{"State", LAB_C_OPSTATE, LAB_EDM_INT64, 0, S_OP},
	{"TargetCollectionName", LAB_C_OPCOLLNAME, LAB_EDM_STRING, 0, S_OP},
	{"TargetResourceIDs", LAB_C_TARGETS, LAB_EDM_INT64, A, S_OP},
	{"TargetType", LAB_C_TARGETTYPE, LAB_EDM_INT64, 0, S_OP},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_opstatus[] = {
	{"ID", LAB_C_OPID, LAB_EDM_INT64, K, S_OPST},
	{"Type", LAB_C_OPTYPE, LAB_EDM_INT64, 0, S_OPST},
	{"State", LAB_C_OPSTATE, LAB_EDM_INT64, 0, S_OPST},
	{"CollectionID", LAB_C_OPCOLL, LAB_EDM_STRING, 0, S_OPST},
	{"TargetCollectionName", LAB_C_OPCOLLNAME, LAB_EDM_STRING, 0, S_OPST},
	{"TotalClients", LAB_C_TOTAL, LAB_EDM_INT64, 0, S_OPST},
	{"CompletedClients", LAB_C_COMPLETED, LAB_EDM_INT64, 0, S_OPST},
	{"FailedClients", LAB_C_FAILED, LAB_EDM_INT64, 0, S_OPST},
	{"OfflineClients", LAB_C_OFFLINE, LAB_EDM_INT64, 0, S_OPST},
	{"UnknownClients", LAB_C_UNKNOWN, LAB_EDM_INT64, 0, S_OPST},
	{"IsExpired", LAB_C_EXPIRED, LAB_EDM_INT64, 0, S_OPST},
	{"RequestedTime", LAB_C_REQUESTED, LAB_EDM_DATE, 0, S_OPST},
	{"CreatedBy", LAB_C_CREATEDBY, LAB_EDM_STRING, 0, S_OPST},
	{NULL, 0, 0, 0, NULL}};

static const struct lab_odata_prop props_cn[] = {
	{"ChannelType", LAB_C_CHANNEL, LAB_EDM_INT64, 0, S_CN},
	{"LastStatusTime", LAB_C_LASTSTATUS, LAB_EDM_DATE, 0, S_CN},
	{"OnlineStatus", LAB_C_ONLINE, LAB_EDM_INT64, 0, S_CN},
	{"ResourceID", LAB_C_RID, LAB_EDM_INT64, K, S_CN},
	{"ServerID", LAB_C_SERVERID, LAB_EDM_INT64, 0, S_CN},
	{NULL, 0, 0, 0, NULL}};

#undef K
#undef A
#undef N

const struct lab_odata_class lab_odata_classes[LAB_NCLS] = {
	[LAB_CLS_SYSTEM] = {"SMS_R_System", props_sys, false, S_RSYS},
	[LAB_CLS_CDR] = {"SMS_CombinedDeviceResources", props_cdr, false, S_CDR},
	[LAB_CLS_COMGMT] = {"SMS_Client_ComanagementState", props_comgmt, true, S_COMON},
	[LAB_CLS_CS] = {"SMS_G_System_COMPUTER_SYSTEM", props_cs, false, S_GCUR},
	[LAB_CLS_BIOS] = {"SMS_G_System_PC_BIOS", props_bios, false, S_GCUR},
	[LAB_CLS_FCM] = {"SMS_FullCollectionMembership", props_fcm, false, S_FCM},
	[LAB_CLS_COLL] = {"SMS_Collection", props_coll, false, S_COLL},
	[LAB_CLS_SITE] = {"SMS_Site", props_site, false, S_SITE},
	[LAB_CLS_OP] = {"SMS_ClientOperation", props_op, false, S_OP},
	[LAB_CLS_OPSTATUS] = {"SMS_ClientOperationStatus", props_opstatus, false, S_OPST},
	[LAB_CLS_CNSTATUS] = {"SMS_CN_ClientStatus", props_cn, false, S_CN},
};

/* ASP.NET OData's [EnableQuery] answers an ODataException of the query
 * parser with SRResources.UriQueryStringInvalid ("The query specified in the
 * URI is not valid. {0}") around the parser's message (OData/WebApi
 * EnableQueryAttribute; seen on the wire in OData/AspNetCoreOData#92). */
#define INVALID "The query specified in the URI is not valid. "

static bool served_class(const struct lab *lab, int cls)
{
	return !(lab->conf.site_old && lab_odata_classes[cls].is_new);
}

int lab_odata_find_class(const struct lab *lab, const char *name, size_t n)
{
	for (int i = 0; i < LAB_NCLS; i++) {
		const char *c = lab_odata_classes[i].name;
		if (strlen(c) != n || !served_class(lab, i))
			continue;
		/* "The WMI route is now case-insensitive" (release notes, 2006) */
		if (lab->conf.site_old ? !memcmp(c, name, n) : !strncasecmp(c, name, n))
			return i;
	}
	return -1;
}

const struct lab_odata_prop *lab_odata_find_prop(const struct lab *lab, int cls, const char *name, size_t n)
{
	for (const struct lab_odata_prop *p = lab_odata_classes[cls].props; p->name; p++)
		if (strlen(p->name) == n && !memcmp(p->name, name, n) && !(lab->conf.site_old && (p->flags & LAB_P_NEW)))
			return p;
	return NULL;
}

/* The generated classes of [site] metadata_padding: SMS_G_System_X0001... */
int lab_odata_padding_class(const struct lab *lab, const char *name, size_t n)
{
	if (n != 18 || (lab->conf.site_old ? strncmp : strncasecmp)(name, "SMS_G_System_X", 14))
		return 0;
	int v = 0;
	for (size_t i = 14; i < 18; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		v = v * 10 + (name[i] - '0');
	}
	return v >= 1 && v <= lab->conf.metadata_padding ? v : 0;
}

/* ---- values ------------------------------------------------------------------------------ */

void lab_odata_vstr(struct lab_odata_val *v, const char *s)
{
	if (!s || !*s) {
		v->t = LAB_V_NULL;
		return;
	}
	v->t = LAB_V_STR;
	v->s = s;
	v->n = strlen(s);
}

void lab_odata_vint(struct lab_odata_val *v, int64_t i)
{
	v->t = i < 0 ? LAB_V_NULL : LAB_V_INT;
	v->i = i;
}

int lab_odata_cmp(const struct lab_odata_val *a, const struct lab_odata_val *b)
{
	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	if (a->t == LAB_V_STR) {
		size_t n = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->s, b->s, n);
		return c ? c : a->n < b->n ? -1 : a->n > b->n;
	}
	if (a->t == LAB_V_NULL || a->t == LAB_V_JSON || a->t == LAB_V_ABSENT)
		return 0;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* WMI's own DateTime form (CIM DMTF): yyyymmddHHMMSS.mmmmmmsUUU */
static void dmtf(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y%m%d%H%M%S.000000+000", &tm);
}

static void emit(const struct lab *lab, struct lab_buf *b, const struct lab_odata_prop *p, const struct lab_odata_val *v)
{
	bool alt = lab->conf.values_alternate;
	char t[32];
	switch (v->t) {
	case LAB_V_NULL: case LAB_V_ABSENT: lab_buf_adds(b, "null"); break;
	case LAB_V_INT:
		lab_buf_addf(b, alt && (p->flags & LAB_P_MASK64) ? "\"%lld\"" : "%lld", (long long)v->i);
		break;
	case LAB_V_BOOL: lab_buf_adds(b, alt ? (v->i ? "1" : "0") : v->i ? "true" : "false"); break;
	case LAB_V_STR: lab_buf_json_str(b, v->s, v->n); break;
	case LAB_V_DATE:
		if (alt)
			dmtf(v->i, t);
		else
			lab_iso8601(v->i, t);
		lab_buf_addf(b, "\"%s\"", t);
		break;
	case LAB_V_JSON: lab_buf_add(b, v->s, v->n); break;
	}
}

void lab_odata_row(const struct lab *lab, struct lab_buf *b, const struct lab_odata_query *q,
		   lab_odata_get_fn get, void *ctx, const void *row)
{
	bool first = true;
	lab_buf_addc(b, '{');
	for (int c = 0; c < q->nsel; c++) {
		struct lab_odata_val v;
		memset(&v, 0, sizeof v);
		get(ctx, row, q->sel[c], &v);
		if (v.t == LAB_V_ABSENT)
			continue;
		lab_buf_addf(b, "%s\"%s\":", first ? "" : ",", q->sel[c]->name);
		emit(lab, b, q->sel[c], &v);
		first = false;
	}
	lab_buf_addc(b, '}');
}

/* ---- the parser -------------------------------------------------------------------------- */

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

static bool ident_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *edm_name(const struct lab_odata_prop *p)
{
	static const char *const n[] = {"Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Boolean", "Edm.DateTimeOffset"};
	static const char *const c[] = {"Collection(Edm.String)", "Collection(Edm.Int32)", "Collection(Edm.Int64)",
					"Collection(Edm.Boolean)", "Collection(Edm.DateTimeOffset)"};
	return p->flags & LAB_P_ARRAY ? c[p->edm] : n[p->edm];
}

static int not_found(const struct lab *lab, int cls, const char *name, size_t n, char *err, size_t en)
{
	(void)lab;
	return bad(err, en, INVALID "Could not find a property named '%.*s' on type 'AdminService.%s'.",
		   (int)(n > 128 ? 128 : n), name, lab_odata_classes[cls].name);
}

/* Where $filter finds its properties: an AdminService class (props NULL),
 * or a caller's table for another service's entity (the tenant's Graph
 * sets), whose names may be paths (templateReference/templateFamily) and
 * whose messages carry that service's prefix and type name. */
struct resolver {
	int cls;
	const struct lab_odata_prop *props;
	const char *type, *prefix;
};

static const struct lab_odata_prop *resolve(const struct lab *lab, const struct resolver *rs, const char *name, size_t n)
{
	if (!rs->props)
		return lab_odata_find_prop(lab, rs->cls, name, n);
	for (const struct lab_odata_prop *p = rs->props; p->name; p++)
		if (strlen(p->name) == n && !strncmp(p->name, name, n))
			return p;
	return NULL;
}

static int unresolved(const struct lab *lab, const struct resolver *rs, const char *name, size_t n, char *err, size_t en)
{
	if (!rs->props)
		return not_found(lab, rs->cls, name, n, err, en);
	return bad(err, en, "%sCould not find a property named '%.*s' on type '%s'.", rs->prefix, (int)(n > 128 ? 128 : n),
		   name, rs->type);
}

/* A DateTimeOffset literal: 2026-01-01T00:00:00Z, fractions and +hh:mm allowed. */
static int parse_date(const char *p, const char **end, int64_t *out)
{
	int y, mo, d, h, mi, s = 0, n = 0;
	if (sscanf(p, "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n != 16)
		return -1;
	const char *q = p + n;
	if (*q == ':') {
		if (q[1] < '0' || q[1] > '9' || q[2] < '0' || q[2] > '9')
			return -1;
		s = (q[1] - '0') * 10 + (q[2] - '0');
		q += 3;
		if (*q == '.') {
			q++;
			while (*q >= '0' && *q <= '9')
				q++;
		}
	}
	int off = 0;
	if (*q == 'Z') {
		q++;
	} else if ((*q == '+' || *q == '-') && q[1] && q[2] && q[3] == ':' && q[4] && q[5]) {
		int oh = (q[1] - '0') * 10 + (q[2] - '0'), om = (q[4] - '0') * 10 + (q[5] - '0');
		off = (oh * 60 + om) * 60 * (*q == '-' ? -1 : 1);
		q += 6;
	} else {
		return -1;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
	*out = (int64_t)timegm(&tm) - off;
	*end = q;
	return 0;
}

static const char *const op_kind[] = {"Equal", "NotEqual", "GreaterThan", "GreaterThanOrEqual", "LessThan",
				       "LessThanOrEqual", "Has"};

static int parse_filter(const struct lab *lab, const struct resolver *rs, struct lab_odata_query *q, const char *f,
			char *err, size_t en)
{
	const char *pre = rs->prefix;
	const char *ops_text = rs->props ? "eq, ne, gt, ge, lt, le, has" : "eq, ne, gt, ge, lt, le";
	const char *p = f;
	int depth = 0;
	for (;;) {
		p = skip_ws(p);
		while (*p == '(') {
			depth++;
			p = skip_ws(p + 1);
		}
		const char *s = p;
		while (ident_char(*p) || (rs->props && *p == '/' && ident_char(p[1])))
			p++;
		size_t n = (size_t)(p - s);
		if (!n || (*s >= '0' && *s <= '9') || *s == '\'')
			return bad(err, en, "%sSyntax error at position %d in '%s'.", pre, (int)(s - f) + 1, f);
		if (*p == '(' || (n == 3 && !strncmp(s, "not", 3) && p[0] == ' '))
			return bad(err, en, "The lab's $filter supports 'Property op literal' joined with 'and' only "
				   "(op: %s); '%.*s' is not supported.", ops_text, (int)n, s);
		if (*p == '/')
			return unresolved(lab, rs, s, n + strcspn(p, " )"), err, en);
		if (q->ncond == LAB_ODATA_MAXCOND)
			return bad(err, en, "The lab's $filter takes at most %d conditions.", LAB_ODATA_MAXCOND);
		struct lab_odata_cond *c = &q->cond[q->ncond];
		memset(c, 0, sizeof *c);
		if (!(c->p = resolve(lab, rs, s, n)))
			return unresolved(lab, rs, s, n, err, en);
		p = skip_ws(p);
		static const char *const ops[] = {"eq", "ne", "gt", "ge", "lt", "le", "has"};
		int op = -1;
		for (int i = 0; i < (rs->props ? 7 : 6); i++) {
			size_t ol = strlen(ops[i]);
			if (!strncmp(p, ops[i], ol) && p[ol] == ' ')
				op = i;
		}
		if (op < 0)
			return bad(err, en, "%sSyntax error at position %d in '%s'.", pre, (int)(p - f) + 1, f);
		c->op = (enum lab_odata_op)op;
		p = skip_ws(p + (op == LAB_OP_HAS ? 4 : 3));
		const char *lt;                  /* the literal's EDM type, for the message */
		const char *l0 = p;
		if (*p == '\'') {
			struct lab_buf b = {0};
			p++;
			for (;;) {
				if (!*p) {
					lab_buf_free(&b);
					return bad(err, en, "%sThere is an unterminated string literal at position %d in '%s'.", pre,
						   (int)(l0 - f) + 1, f);
				}
				if (*p == '\'' && p[1] == '\'') { lab_buf_addc(&b, '\''); p += 2; continue; }
				if (*p == '\'') { p++; break; }
				lab_buf_addc(&b, *p++);
			}
			c->str = lab_buf_steal(&b, &c->lit.n);
			c->lit.t = LAB_V_STR;
			c->lit.s = c->str ? c->str : "";
			lt = "Edm.String";
		} else if (!strncmp(p, "true", 4) && !ident_char(p[4])) {
			c->lit.t = LAB_V_BOOL;
			c->lit.i = 1;
			p += 4;
			lt = "Edm.Boolean";
		} else if (!strncmp(p, "false", 5) && !ident_char(p[5])) {
			c->lit.t = LAB_V_BOOL;
			p += 5;
			lt = "Edm.Boolean";
		} else if (!strncmp(p, "null", 4) && !ident_char(p[4])) {
			c->lit.t = LAB_V_NULL;
			p += 4;
			lt = NULL;
		} else if (parse_date(p, &p, &c->lit.i) == 0) {
			c->lit.t = LAB_V_DATE;
			lt = "Edm.DateTimeOffset";
		} else if ((*p >= '0' && *p <= '9') || *p == '-') {
			char *e;
			c->lit.t = LAB_V_INT;
			c->lit.i = strtoll(p, &e, 10);
			if (e == p || (e == p + 1 && *p == '-') || ident_char(*e) || *e == '.')
				return bad(err, en, "%sSyntax error at position %d in '%s'.", pre, (int)(p - f) + 1, f);
			p = e;
			lt = c->lit.i >= INT32_MIN && c->lit.i <= INT32_MAX ? "Edm.Int32" : "Edm.Int64";
		} else {
			return bad(err, en, "%sSyntax error at position %d in '%s'.", pre, (int)(p - f) + 1, f);
		}
		q->ncond++;
		/* ODL's type check (MetadataBinder_IncompatibleOperandsError) */
		enum lab_edm e = c->p->edm;
		if (op == LAB_OP_HAS && (!(c->p->flags & LAB_P_FLAGS) || c->lit.t != LAB_V_STR))
			return bad(err, en, "%sThe 'has' operator applies to a flags enumeration property and a quoted member "
				   "name ('%.*s' has ...).", pre, (int)n, s);
		bool ok = lt == NULL ||
			  (!(c->p->flags & LAB_P_ARRAY) &&
			   (c->lit.t == LAB_V_STR ? e == LAB_EDM_STRING
			    : c->lit.t == LAB_V_BOOL ? e == LAB_EDM_BOOL
			    : c->lit.t == LAB_V_DATE ? e == LAB_EDM_DATE
			    : e == LAB_EDM_INT32 || e == LAB_EDM_INT64));
		if (!ok)
			return bad(err, en, "%sA binary operator with incompatible types was detected. Found operand types "
				   "'%s' and '%s' for operator kind '%s'.", pre, edm_name(c->p), lt, op_kind[op]);
		p = skip_ws(p);
		while (*p == ')' && depth > 0) {
			depth--;
			p = skip_ws(p + 1);
		}
		if (!*p) {
			if (depth)
				return bad(err, en, "%s')' or operator expected at position %d in '%s'.", pre, (int)(p - f) + 1, f);
			return 0;
		}
		if (!strncmp(p, "or ", 3))
			return bad(err, en, "The lab's $filter supports 'Property op literal' joined with 'and' only "
				   "(op: %s); 'or' is not supported.", ops_text);
		if (strncmp(p, "and ", 4))
			return bad(err, en, "%sSyntax error at position %d in '%s'.", pre, (int)(p - f) + 1, f);
		p += 4;
	}
}

static long long parse_nonneg(const char *s)
{
	if (!s || !*s)
		return -2;
	long long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1000000000LL)
			return -2;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static void add_sel(struct lab_odata_query *q, const struct lab_odata_prop *p)
{
	for (int i = 0; i < q->nsel; i++)
		if (q->sel[i] == p)
			return;
	if (q->nsel < LAB_ODATA_MAXSEL)
		q->sel[q->nsel++] = p;
}

int lab_odata_parse(const struct lab *lab, const struct lab_req *rq, int cls, struct lab_odata_query *q,
		    char *err, size_t en)
{
	memset(q, 0, sizeof *q);
	q->cls = cls;
	q->top = q->skip = -1;
	for (int i = 0; i < rq->nargs; i++) {
		const char *k = rq->args[i].k;
		if (k[0] != '$')
			continue;
		if (strcmp(k, "$select") && strcmp(k, "$filter") && strcmp(k, "$orderby") && strcmp(k, "$top") &&
		    strcmp(k, "$skip") && strcmp(k, "$count") && strcmp(k, "$skiptoken"))
			/* ASP.NET OData SRResources.QueryParameterNotSupported */
			return bad(err, en, "The query parameter '%s' is not supported.", k);
	}
	const char *s = lab_req_arg(rq, "$select");
	q->sel_raw = s;
	bool all = !s || !*s;
	for (const char *p = s; !all && p;) {
		p = skip_ws(p);
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n && p[n - 1] == ' ')
			n--;
		if (n == 1 && *p == '*') {
			all = true;
		} else {
			const struct lab_odata_prop *pr = lab_odata_find_prop(lab, cls, p, n);
			if (!pr)
				return not_found(lab, cls, p, n, err, en);
			add_sel(q, pr);
		}
		p = e ? e + 1 : NULL;
	}
	if (all) {
		q->nsel = 0;
		for (const struct lab_odata_prop *p = lab_odata_classes[cls].props; p->name; p++)
			if (lab_odata_find_prop(lab, cls, p->name, strlen(p->name)))
				add_sel(q, p);
	}
	const char *f = lab_req_arg(rq, "$filter");
	q->filter_raw = f;
	const struct resolver rs = {cls, NULL, NULL, INVALID};
	if (f && parse_filter(lab, &rs, q, f, err, en) < 0)
		return -1;
	const char *o = lab_req_arg(rq, "$orderby");
	q->order_raw = o;
	if (o) {
		const char *p = skip_ws(o), *e = p;
		while (ident_char(*e))
			e++;
		if (e == p)
			return bad(err, en, INVALID "Syntax error at position %d in '%s'.", (int)(p - o) + 1, o);
		if (!(q->order = lab_odata_find_prop(lab, cls, p, (size_t)(e - p))))
			return not_found(lab, cls, p, (size_t)(e - p) + (*e == '/' ? strcspn(e, " ,") : 0), err, en);
		if (q->order->flags & LAB_P_ARRAY)
			return bad(err, en, INVALID "The $orderby expression must evaluate to a single value of primitive type.");
		e = skip_ws(e);
		if (!strncmp(e, "desc", 4) && !ident_char(e[4])) {
			q->desc = true;
			e = skip_ws(e + 4);
		} else if (!strncmp(e, "asc", 3) && !ident_char(e[3])) {
			e = skip_ws(e + 3);
		}
		if (*e == ',')
			return bad(err, en, "The lab's $orderby takes one property (asc or desc); ties are ordered by the key.");
		if (*e)
			return bad(err, en, INVALID "Syntax error at position %d in '%s'.", (int)(e - o) + 1, o);
	}
	const char *t = lab_req_arg(rq, "$top");
	if (t && (q->top = parse_nonneg(t)) < 0)
		return bad(err, en, INVALID "Invalid value '%s' for $top query option found. The $top query option requires "
			   "a non-negative integer value.", t);
	t = lab_req_arg(rq, "$skip");
	if (t && (q->skip = parse_nonneg(t)) < 0)
		return bad(err, en, INVALID "Invalid value '%s' for $skip query option found. The $skip query option requires "
			   "a non-negative integer value.", t);
	t = lab_req_arg(rq, "$count");
	if (t) {
		if (!strcmp(t, "true"))
			q->count = true;
		else if (strcmp(t, "false"))
			return bad(err, en, INVALID "Invalid value '%s' for $count query option found. Valid values are "
				   "'true, false'.", t);
	}
	q->token = lab_req_arg(rq, "$skiptoken");
	if (q->token && lab->conf.client_paging)
		return bad(err, en, "This site pages on the client side ([site] paging = client): it issues no $skiptoken; "
			   "use $top and $skip.");
	return 0;
}

int lab_odata_parse_filter(const struct lab *lab, const struct lab_odata_prop *props, const char *type,
			   const char *prefix, const char *f, struct lab_odata_query *q, char *err, size_t errlen)
{
	memset(q, 0, sizeof *q);
	q->cls = -1;
	q->top = q->skip = -1;
	q->filter_raw = f;
	const struct resolver rs = {-1, props, type, prefix ? prefix : ""};
	return f ? parse_filter(lab, &rs, q, f, err, errlen) : 0;
}

void lab_odata_query_free(struct lab_odata_query *q)
{
	for (int i = 0; i < q->ncond; i++) {
		free(q->cond[i].str);
		q->cond[i].str = NULL;
	}
	/* a literal parsed before a failing type check is not counted in ncond */
	if (q->ncond < LAB_ODATA_MAXCOND) {
		free(q->cond[q->ncond].str);
		q->cond[q->ncond].str = NULL;
	}
}

/* Every member of the comma list a (n bytes) is in the comma list b. */
static bool flags_subset(const char *a, size_t an, const char *b, size_t bn)
{
	for (size_t i = 0; i < an;) {
		size_t j = i;
		while (j < an && a[j] != ',')
			j++;
		size_t s = i, e = j;
		while (s < e && a[s] == ' ')
			s++;
		bool found = false;
		for (size_t k = 0; k < bn && !found;) {
			size_t m = k;
			while (m < bn && b[m] != ',')
				m++;
			size_t ks = k;
			while (ks < m && b[ks] == ' ')
				ks++;
			found = m - ks == e - s && !memcmp(b + ks, a + s, e - s);
			k = m + 1;
		}
		if (!found)
			return false;
		i = j + 1;
	}
	return true;
}

bool lab_odata_match(const struct lab_odata_query *q, lab_odata_get_fn get, void *ctx, const void *row)
{
	for (int i = 0; i < q->ncond; i++) {
		struct lab_odata_val v;
		memset(&v, 0, sizeof v);
		get(ctx, row, q->cond[i].p, &v);
		if (v.t == LAB_V_ABSENT)
			v.t = LAB_V_NULL;
		const struct lab_odata_val *l = &q->cond[i].lit;
		if (v.t == LAB_V_NULL || l->t == LAB_V_NULL) {
			bool eq = v.t == l->t;
			if (q->cond[i].op == LAB_OP_EQ ? !eq : q->cond[i].op == LAB_OP_NE ? eq : true)
				return false;
			continue;
		}
		if (q->cond[i].p->flags & LAB_P_FLAGS && v.t == LAB_V_STR && l->t == LAB_V_STR &&
		    q->cond[i].op != LAB_OP_GT && q->cond[i].op != LAB_OP_GE && q->cond[i].op != LAB_OP_LT &&
		    q->cond[i].op != LAB_OP_LE) {
			/* flags: 'has' = every member of the literal is set; eq/ne = the same set, in any order */
			bool all = flags_subset(l->s, l->n, v.s, v.n);
			bool same = all && flags_subset(v.s, v.n, l->s, l->n);
			bool ok = q->cond[i].op == LAB_OP_HAS ? all : q->cond[i].op == LAB_OP_EQ ? same : !same;
			if (!ok)
				return false;
			continue;
		}
		int c = lab_odata_cmp(&v, l);
		bool ok;
		switch (q->cond[i].op) {
		case LAB_OP_EQ: ok = c == 0; break;
		case LAB_OP_NE: ok = c != 0; break;
		case LAB_OP_GT: ok = c > 0; break;
		case LAB_OP_GE: ok = c >= 0; break;
		case LAB_OP_LT: ok = c < 0; break;
		default: ok = c <= 0; break;
		}
		if (!ok)
			return false;
	}
	return true;
}

bool lab_odata_pinned(const struct lab_odata_query *q, enum lab_col col, int64_t *v)
{
	for (int i = 0; i < q->ncond; i++)
		if (q->cond[i].p->col == col && q->cond[i].op == LAB_OP_EQ && q->cond[i].lit.t == LAB_V_INT) {
			*v = q->cond[i].lit.i;
			return true;
		}
	return false;
}

size_t lab_odata_limit(const struct lab *lab, const struct lab_odata_query *q)
{
	size_t limit = (size_t)lab->conf.page_size;
	if (q->top >= 0 && (size_t)q->top < limit)
		limit = (size_t)q->top;
	return limit;
}

static void add_param(struct lab_buf *b, bool *first, const char *k, const char *v)
{
	lab_buf_addc(b, *first ? '?' : '&');
	*first = false;
	lab_buf_adds(b, k);
	lab_buf_addc(b, '=');
	lab_buf_urlenc(b, v);
}

void lab_odata_next_link(const struct lab *lab, struct lab_buf *b, const struct lab_odata_query *q,
			 const char *host, size_t served, const char *token)
{
	struct lab_buf l = {0};
	bool first = true;
	char tmp[32];
	if (!lab->conf.nextlink_relative)
		lab_buf_addf(&l, "https://%s/AdminService/wmi/", host);
	lab_buf_adds(&l, lab_odata_classes[q->cls].name);
	if (q->sel_raw)
		add_param(&l, &first, "$select", q->sel_raw);
	if (q->filter_raw)
		add_param(&l, &first, "$filter", q->filter_raw);
	if (q->order_raw)
		add_param(&l, &first, "$orderby", q->order_raw);
	if (q->count)
		add_param(&l, &first, "$count", "true");
	if (q->top >= 0) {
		snprintf(tmp, sizeof tmp, "%lld", q->top - (long long)served);
		add_param(&l, &first, "$top", tmp);
	}
	add_param(&l, &first, "$skiptoken", token);
	lab_buf_adds(b, ",\"@odata.nextLink\":");
	lab_buf_json_str(b, l.p, l.len);
	lab_buf_free(&l);
}

void lab_odata_page(const struct lab *lab, struct lab_reply *r, const struct lab_odata_query *q, const char *host,
		    lab_odata_get_fn get, void *ctx, const void *rows, size_t size, size_t start, size_t end,
		    size_t count, const char *token)
{
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata#%s\"", host,
		     lab_odata_classes[q->cls].name);
	if (q->count)
		lab_buf_addf(&b, ",\"@odata.count\":%zu", count);
	lab_buf_adds(&b, ",\"value\":[");
	for (size_t i = start; i < end; i++) {
		if (i > start)
			lab_buf_addc(&b, ',');
		lab_odata_row(lab, &b, q, get, ctx, (const char *)rows + i * size);
	}
	lab_buf_addc(&b, ']');
	if (token)
		lab_odata_next_link(lab, &b, q, host, end - start, token);
	lab_buf_addc(&b, '}');
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

void lab_odata_error(struct lab_reply *r, int status, const char *code, const char *msg)
{
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"error\":{\"code\":");
	lab_buf_json_cstr(&b, code);
	lab_buf_adds(&b, ",\"message\":");
	lab_buf_json_cstr(&b, msg);
	lab_buf_adds(&b, "}}");
	lab_reply_json(r, status, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

/* ---- $metadata and the service document ----------------------------------------------------- */

/* Method parameters as the class pages spell them (InitiateClientOperation
 * Method in Class SMS_ClientOperation; BlockClients Method in Class
 * SMS_Collection); how the AdminService models the out parameters is not
 * public: the lab declares a complex type per method. */
static const struct {
	const char *name, *binding, *params;
	const char *result;
} methods[] = {
	{"InitiateClientOperation", "SMS_ClientOperation",
	 "<Parameter Name=\"Type\" Type=\"Edm.Int64\" Nullable=\"false\"/>"
	 "<Parameter Name=\"TargetCollectionID\" Type=\"Edm.String\"/>"
	 "<Parameter Name=\"RandomizationWindow\" Type=\"Edm.Int64\"/>"
	 "<Parameter Name=\"TargetResourceIDs\" Type=\"Collection(Edm.Int64)\"/>",
	 "<Property Name=\"ReturnValue\" Type=\"Edm.Int64\"/><Property Name=\"OperationID\" Type=\"Edm.Int64\"/>"},
	{"BlockClients", "SMS_Collection",
	 "<Parameter Name=\"ResourceIDs\" Type=\"Collection(Edm.Int64)\"/>"
	 "<Parameter Name=\"Blocked\" Type=\"Edm.Boolean\" Nullable=\"false\"/>",
	 "<Property Name=\"ReturnValue\" Type=\"Edm.Int64\"/>"},
};

static void padding_type(struct lab_buf *b, int i)
{
	/* a generated hardware inventory class: the four SMS_G_System_Current
	 * properties and forty of its own, as big WMI classes have */
	lab_buf_addf(b, "<EntityType Name=\"SMS_G_System_X%04d\"><Key><PropertyRef Name=\"GroupID\"/>"
		     "<PropertyRef Name=\"ResourceID\"/></Key>"
		     "<Property Name=\"GroupID\" Type=\"Edm.Int64\" Nullable=\"false\"/>"
		     "<Property Name=\"ResourceID\" Type=\"Edm.Int64\" Nullable=\"false\"/>"
		     "<Property Name=\"RevisionID\" Type=\"Edm.Int64\"/>"
		     "<Property Name=\"TimeStamp\" Type=\"Edm.DateTimeOffset\"/>", i);
	static const char *const t[] = {"Edm.String", "Edm.Int64", "Edm.Boolean", "Edm.DateTimeOffset", "Edm.Int32"};
	for (int k = 1; k <= 40; k++)
		lab_buf_addf(b, "<Property Name=\"Property%02d\" Type=\"%s\"/>", k, t[(i + k) % 5]);
	lab_buf_adds(b, "</EntityType>");
}

void lab_odata_metadata(const struct lab *lab, struct lab_buf *b)
{
	lab_buf_adds(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			"<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
			"<edmx:DataServices><Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">");
	for (int i = 0; i < LAB_NCLS; i++) {
		if (!served_class(lab, i))
			continue;
		const struct lab_odata_class *c = &lab_odata_classes[i];
		lab_buf_addf(b, "<EntityType Name=\"%s\"><Key>", c->name);
		for (const struct lab_odata_prop *p = c->props; p->name; p++)
			if (p->flags & LAB_P_KEY)
				lab_buf_addf(b, "<PropertyRef Name=\"%s\"/>", p->name);
		lab_buf_adds(b, "</Key>");
		for (const struct lab_odata_prop *p = c->props; p->name; p++)
			if (lab_odata_find_prop(lab, i, p->name, strlen(p->name)))
				lab_buf_addf(b, "<Property Name=\"%s\" Type=\"%s\"%s/>", p->name, edm_name(p),
					     p->flags & LAB_P_KEY ? " Nullable=\"false\"" : "");
		lab_buf_adds(b, "</EntityType>");
	}
	for (int i = 1; i <= lab->conf.metadata_padding; i++)
		padding_type(b, i);
	for (size_t m = 0; m < sizeof methods / sizeof *methods; m++)
		lab_buf_addf(b, "<ComplexType Name=\"%s_Result\">%s</ComplexType>", methods[m].name, methods[m].result);
	for (size_t m = 0; m < sizeof methods / sizeof *methods; m++)
		lab_buf_addf(b, "<Action Name=\"%s\" IsBound=\"true\"><Parameter Name=\"bindingParameter\" "
			     "Type=\"Collection(AdminService.%s)\"/>%s<ReturnType Type=\"AdminService.%s_Result\"/></Action>",
			     methods[m].name, methods[m].binding, methods[m].params, methods[m].name);
	lab_buf_adds(b, "<EntityContainer Name=\"Container\">");
	for (int i = 0; i < LAB_NCLS; i++)
		if (served_class(lab, i))
			lab_buf_addf(b, "<EntitySet Name=\"%s\" EntityType=\"AdminService.%s\"/>", lab_odata_classes[i].name,
				     lab_odata_classes[i].name);
	for (int i = 1; i <= lab->conf.metadata_padding; i++)
		lab_buf_addf(b, "<EntitySet Name=\"SMS_G_System_X%04d\" EntityType=\"AdminService.SMS_G_System_X%04d\"/>", i, i);
	lab_buf_adds(b, "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
}

void lab_odata_service(const struct lab *lab, const char *host, struct lab_buf *b)
{
	bool first = true;
	lab_buf_addf(b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata\",\"value\":[", host);
	for (int i = 0; i < LAB_NCLS; i++) {
		if (!served_class(lab, i))
			continue;
		lab_buf_addf(b, "%s{\"name\":\"%s\",\"kind\":\"EntitySet\",\"url\":\"%s\"}", first ? "" : ",",
			     lab_odata_classes[i].name, lab_odata_classes[i].name);
		first = false;
	}
	for (int i = 1; i <= lab->conf.metadata_padding; i++)
		lab_buf_addf(b, ",{\"name\":\"SMS_G_System_X%04d\",\"kind\":\"EntitySet\",\"url\":\"SMS_G_System_X%04d\"}", i, i);
	lab_buf_adds(b, "]}");
}

/* The table as docs/lab.md shows it ("Classes and properties"); the
 * self-test checks that the page and this agree. */
void lab_odata_markdown(struct lab_buf *b)
{
	static const char *const json[] = {"string", "number", "number", "true/false", "string (date-time)"};
	lab_buf_adds(b, "| class | property | JSON (native) | EDM | source |\n|---|---|---|---|---|\n");
	for (int i = 0; i < LAB_NCLS; i++)
		for (const struct lab_odata_prop *p = lab_odata_classes[i].props; p->name; p++) {
			char notes[128] = "";
			int n = 0;
			if (p->flags & LAB_P_KEY)
				n += snprintf(notes + n, sizeof notes - (size_t)n, "%skey", n ? ", " : "");
			if (p->flags & LAB_P_NEW)
				n += snprintf(notes + n, sizeof notes - (size_t)n, "%sabsent with `version = old`", n ? ", " : "");
			if (p->flags & LAB_P_MASK64)
				n += snprintf(notes + n, sizeof notes - (size_t)n, "%snumeric string with `values = alternate`",
					      n ? ", " : "");
			lab_buf_addf(b, "| `%s` | `%s`%s%s%s | %s | %s | %s |\n", lab_odata_classes[i].name, p->name,
				     n ? " (" : "", notes, n ? ")" : "",
				     p->flags & LAB_P_ARRAY ? "array of numbers" : json[p->edm], edm_name(p), p->source);
		}
}
