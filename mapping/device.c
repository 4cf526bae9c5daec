/*
 * device.c - one ConfigMgr site device to the tenant's device record.
 *
 * A pure function of (ctx, dev): no I/O, no globals that change, no clock,
 * no locale. The output is byte-for-byte deterministic because its hash is
 * what "this device changed" means to the sync engine (docs/mapping.md):
 * properties are written in a fixed order, without whitespace, numbers as
 * integers, and every string from the site is UTF-8-repaired first.
 */
#include "mapping/device.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "connector/base/util.h"
#include "mapping/utf8.h"
#include "connector/base/clock.h"

#define NAME_MAX_BYTES 255
#define UNSET_DATETIME "0001-01-01T00:00:00Z"

/*
 * Co-management workload bits (SMS_Client_ComanagementState.MDMWorkloads
 * at the site, the client's CCM_System.ComgmtWorkloads). A set bit means the workload is managed by
 * Intune. Sources in docs/mapping.md. This is the only place they are named.
 */
enum {
	WL_COMANAGEMENT = 1,        /* co-management configured, no workload */
	WL_COMPLIANCE = 2,
	WL_RESOURCE_ACCESS = 4,
	WL_DEVICE_CONFIGURATION = 8,
	WL_WINDOWS_UPDATE = 16,
	WL_ENDPOINT_PROTECTION = 32,
	WL_CLIENT_APPS = 64,
	WL_OFFICE_APPS = 128,
	WL_ENDPOINT_PROTECTION_2 = 4096, /* set with 32 by the console */
	WL_COMANAGEMENT_2 = 8192,   /* set with 1 by the console */
};

/* Graph configurationManagerClientEnabledFeatures, in output order. */
static const struct workload_feature {
	const char *feature;
	int64_t bits;               /* any of these set: the feature is Intune's */
} workload_features[] = {
	{ "compliancePolicy", WL_COMPLIANCE },
	{ "resourceAccess", WL_RESOURCE_ACCESS },
	{ "deviceConfiguration", WL_DEVICE_CONFIGURATION },
	{ "windowsUpdateForBusiness", WL_WINDOWS_UPDATE },
	{ "endpointProtection", WL_ENDPOINT_PROTECTION | WL_ENDPOINT_PROTECTION_2 },
	{ "modernApps", WL_CLIENT_APPS },
	{ "officeApps", WL_OFFICE_APPS },
	{ "inventory", 0 },         /* ConfigMgr has no inventory workload */
};

/* Bits that carry no feature but are known; everything else is "unknown". */
#define WL_NO_FEATURE_BITS ((int64_t)(WL_COMANAGEMENT | WL_COMANAGEMENT_2))

static int64_t workload_known_bits(void)
{
	int64_t known = WL_NO_FEATURE_BITS;
	for (size_t i = 0; i < sizeof(workload_features) / sizeof(workload_features[0]); i++)
		known |= workload_features[i].bits;
	return known;
}

/* ---- date and time ---------------------------------------------------- */

int cmb_map_datetime(const char *s, char out[21])
{
	int64_t t;
	memcpy(out, UNSET_DATETIME, sizeof(UNSET_DATETIME));
	/* Graph's DateTimeOffset form has whole seconds in UTC and years 0001..9999. */
	if (cmb_time_parse(s, &t) < 0 || t < CMB_TIME_MIN || t > CMB_TIME_MAX)
		return -1;
	char buf[32];
	cmb_time_iso8601(t, buf);
	memcpy(out, buf, 21);
	out[20] = '\0';
	return 0;
}

/* ---- small helpers ---------------------------------------------------- */

char *cmb_map_device_key(const char *site_code, uint32_t resource_id)
{
	/* One for each device of every cycle: no printf. */
	char digits[10], *p = digits + sizeof(digits);
	do
		*--p = (char)('0' + resource_id % 10);
	while ((resource_id /= 10) != 0);
	size_t n = strlen(site_code), d = (size_t)(digits + sizeof(digits) - p);
	char *key = xmalloc(n + 1 + d + 1);
	memcpy(key, site_code, n);
	key[n] = ':';
	memcpy(key + n + 1, p, d);
	key[n + 1 + d] = '\0';
	return key;
}

/* ASCII case-insensitive substring test; no locale. */
static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	if (!hay)
		return 0;
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n) {
			char a = hay[i], b = needle[i];
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (a != b)
				break;
			i++;
		}
		if (i == n)
			return 1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parses a GUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", optionally in
 * braces, into its lower-case form. Returns 0, or -1 when s is not a GUID.
 */
static int guid_normalise(const char *s, char out[37])
{
	size_t len = strlen(s);
	if (len == 38 && s[0] == '{' && s[37] == '}') {
		s++;
		len = 36;
	}
	if (len != 36)
		return -1;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			out[i] = '-';
			continue;
		}
		int v = hexval(s[i]);
		if (v < 0)
			return -1;
		out[i] = "0123456789abcdef"[v];
	}
	out[36] = '\0';
	return 0;
}

static int site_code_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- the mapping ------------------------------------------------------ */

#define NAME_ITEM(constant, text) [constant] = text,
const char *const cmb_map_agent_names[CMB_MAP_N_AGENTS] = { CMB_MAP_AGENTS(NAME_ITEM) };
const char *const cmb_map_health_names[CMB_MAP_N_HEALTH] = { CMB_MAP_HEALTH_STATES(NAME_ITEM) };
const char *const cmb_map_join_names[CMB_MAP_N_JOIN] = { CMB_MAP_JOIN_TYPES(NAME_ITEM) };
#undef NAME_ITEM

void cmb_map_tally_add(struct cmb_map_tally *t, const struct cmb_tenant_record *rec)
{
	t->agent[rec->agent]++;
	t->health[rec->health]++;
	t->join[rec->join]++;
}

/* Everything the record says, decided before a byte of JSON is written. */
struct gen_out;

struct mapped {
	struct gen_out *out;     /* while generating: where output and hashes go */
	char *key;
	/* The strings point into the site device, or to repaired copies held in owned. */
	const char *name;
	int comanaged;
	enum cmb_map_agent agent;
	char azure_ad_device_id[37];
	int has_azure_ad_device_id;
	const char *operating_system;
	const char *os_version;
	const char *serial_number;
	const char *manufacturer;
	const char *model;
	enum cmb_map_join join_type;
	int compliance_with_intune;
	char last_sync[21];
	enum cmb_map_health health_state;
	const char *client_identifier;
	int is_blocked;
	const char *sms_id;
	const char *client_version;
	const char *hardware_id;
	const char *smbios_guid;
	const char *aad_tenant_id;
	const char **collection_ids;
	size_t n_collection_ids;
	char **owned;            /* repaired copies (rare: only for invalid UTF-8) */
	size_t n_owned;
	int64_t workloads;          /* -1: absent */
	int64_t unknown_bits;
	unsigned repairs;
};

static void mapped_clear(struct mapped *m)
{
	free(m->key);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	free(m->collection_ids);
	memset(m, 0, sizeof(*m));
}

/*
 * A site string as the record carries it: NULL when absent or empty, the
 * site's own bytes when they are well-formed UTF-8 (almost always: no copy),
 * else a repaired copy that m owns.
 */
static const char *repair(struct mapped *m, const char *s)
{
	if (!s || !*s)
		return NULL;
	size_t len = strlen(s);
	if (cmb_utf8_valid(s, len))
		return s;   /* strlen stopped at the first NUL: there is none to replace */
	m->owned = xrealloc(m->owned, (m->n_owned + 1) * sizeof(*m->owned));
	return m->owned[m->n_owned++] = cmb_utf8_repair(s, len, &m->repairs);
}

/*
 * Graph configurationManagerClientState from the site's client status.
 * The table and why: docs/mapping.md, "Client health".
 */
static enum cmb_map_health health_state(const struct cmb_site_device *dev)
{
	int active = dev->client_active_status, check = dev->client_check_pass;

	if (active < 0 && check < 0)
		return CMB_MAP_HEALTH_UNKNOWN;
	if (active == 0)
		return CMB_MAP_HEALTH_COMMUNICATION_ERROR;
	if (check == 2)
		return CMB_MAP_HEALTH_INSTALL_FAILED;
	if (active == 1 && check == 1)
		return CMB_MAP_HEALTH_HEALTHY;
	return CMB_MAP_HEALTH_INSTALLED;
}

static enum cmb_map_join join_type(const struct cmb_site_device *dev)
{
	if (dev->hybrid_aad_joined == 1)
		return CMB_MAP_JOIN_HYBRID;
	if (dev->aad_joined == 1)
		return CMB_MAP_JOIN_AZURE_AD;
	return CMB_MAP_JOIN_UNKNOWN;
}

static void map_collections(const struct cmb_map_ctx *ctx, struct mapped *m)
{
	size_t n = 0;

	if (!ctx->collection_ids || ctx->n_collection_ids == 0)
		return;
	m->collection_ids = xcalloc(ctx->n_collection_ids, sizeof(char *));
	for (size_t i = 0; i < ctx->n_collection_ids; i++) {
		const char *c = repair(m, ctx->collection_ids[i]);
		if (c)
			m->collection_ids[n++] = c;
	}
	/* Sorted and unique: the order the site was read in is not a change. */
	qsort(m->collection_ids, n, sizeof(char *), cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if (u > 0 && strcmp(m->collection_ids[u - 1], m->collection_ids[i]) == 0)
			continue;
		m->collection_ids[u++] = m->collection_ids[i];
	}
	m->n_collection_ids = u;
}

/* The first of the site's values that is present and not empty (the last one as it is otherwise). */
static const char *first_present(const char *a, const char *b, const char *c)
{
	if (a && *a)
		return a;
	if (!c || (b && *b))
		return b;
	return c;
}

/* Scope: out-of-scope devices are skipped before their data is judged. */
static char *out_of_scope(const struct cmb_site_device *dev)
{
	if (dev->obsolete == 1 || dev->is_obsolete == 1)
		return xstrdup("obsolete (SMS_R_System.Obsolete or "
			       "SMS_CombinedDeviceResources.IsObsolete)");
	if (dev->decommissioned == 1)
		return xstrdup("decommissioned (SMS_R_System.Decommissioned)");
	if (dev->client != 1 && dev->is_client != 1)
		return xstrdup("no ConfigMgr client (SMS_R_System.Client is not 1 and "
			       "SMS_CombinedDeviceResources.IsClient is not true)");
	return NULL;
}

/* Fills m, or returns the quarantine reason (allocated). */
static char *map_fields(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
			struct mapped *m)
{
	if (dev->resource_id == 0)
		return xstrdup("SMS_R_System.ResourceID is 0");
	m->name = repair(m, dev->name);
	if (!m->name)
		return xstrdup("SMS_R_System.Name is missing or empty");
	if (strlen(m->name) > NAME_MAX_BYTES)
		return xasprintf("SMS_R_System.Name is %zu bytes long (limit %d)",
				 strlen(m->name), NAME_MAX_BYTES);
	if (dev->aad_device_id && *dev->aad_device_id) {
		if (guid_normalise(dev->aad_device_id, m->azure_ad_device_id) < 0)
			return xasprintf("SMS_R_System.AADDeviceID is not a GUID (%zu bytes)",
					 strlen(dev->aad_device_id));
		/* The nil GUID is how some sites say "not joined". */
		m->has_azure_ad_device_id =
			strcmp(m->azure_ad_device_id, "00000000-0000-0000-0000-000000000000") != 0;
	}

	m->key = cmb_map_device_key(ctx->site_code, dev->resource_id);
	m->comanaged = dev->mdm_enrolled == 1 && dev->comgmt_policy_present == 1;
	m->agent = m->comanaged ? CMB_MAP_AGENT_CLIENT_MDM : CMB_MAP_AGENT_CLIENT;
	m->workloads = dev->mdm_workloads >= 0 ? dev->mdm_workloads : -1;
	m->unknown_bits = m->workloads >= 0 ? m->workloads & ~workload_known_bits() : 0;
	m->compliance_with_intune = m->comanaged && m->workloads >= 0 &&
				    (m->workloads & WL_COMPLIANCE);

	if (contains_ci(dev->os_name_version, "windows") || contains_ci(dev->device_os, "windows"))
		m->operating_system = "Windows";
	else if (dev->os_name_version && *dev->os_name_version)
		m->operating_system = repair(m, dev->os_name_version);
	else
		m->operating_system = repair(m, dev->device_os);

	m->os_version = repair(m, first_present(dev->build_ext, dev->device_os_build, dev->build));

	m->serial_number = repair(m, dev->serial_number);
	m->manufacturer = repair(m, dev->manufacturer);
	m->model = repair(m, dev->model);
	m->join_type = join_type(dev);
	cmb_map_datetime(dev->last_policy_request, m->last_sync);
	m->health_state = health_state(dev);

	m->client_identifier = repair(m, first_present(dev->sms_unique_id, dev->sms_id, NULL));
	m->is_blocked = dev->is_blocked == 1;

	m->sms_id = repair(m, first_present(dev->sms_id, dev->sms_unique_id, NULL));
	m->client_version = repair(m, dev->client_version);
	m->hardware_id = repair(m, dev->hardware_id);
	m->smbios_guid = repair(m, dev->smbios_guid);
	m->aad_tenant_id = repair(m, dev->aad_tenant_id);
	map_collections(ctx, m);
	return NULL;
}

/* ---- JSON ------------------------------------------------------------- */

/* yajl only fails here on misuse (a bug), never on input: abort like OOM. */
static void gen_check(yajl_gen_status st)
{
	if (st != yajl_gen_status_ok)
		cmb_fatal("mapping: the JSON generator was misused");
}

static void gen_str(yajl_gen g, const char *s)
{
	gen_check(yajl_gen_string(g, (const unsigned char *)s, strlen(s)));
}

/*
 * Where the generator's output goes: the record's bytes, and where the
 * volatile check-in values lie in them. The full hash is over all the
 * bytes, the stable hash over all but those (docs/mapping.md), each taken
 * once the record is written: one digest update per stretch of bytes, not
 * per token yajl prints.
 */
#define GEN_MAX_VOLATILE 4
struct gen_out {
	struct cmb_buf json;
	size_t volatile_at[GEN_MAX_VOLATILE][2]; /* [start, end) of each volatile value, in order */
	size_t n_volatile;
};

static void gen_key_str(yajl_gen g, const char *key, const char *val)
{
	gen_str(g, key);
	if (val)
		gen_str(g, val);
	else
		gen_check(yajl_gen_null(g));
}

/* A check-in time: part of the record and the full hash, not of the stable hash. */
static void gen_key_volatile(yajl_gen g, const struct mapped *m, const char *key, const char *val)
{
	struct gen_out *o = m->out;
	if (o->n_volatile == GEN_MAX_VOLATILE)
		cmb_fatal("mapping: more volatile values than GEN_MAX_VOLATILE");
	gen_str(g, key);
	o->volatile_at[o->n_volatile][0] = o->json.len;
	gen_str(g, val);
	o->volatile_at[o->n_volatile++][1] = o->json.len;
}


static void gen_key_bool(yajl_gen g, const char *key, int val)
{
	gen_str(g, key);
	gen_check(yajl_gen_bool(g, val != 0));
}

static void gen_key_int(yajl_gen g, const char *key, long long val)
{
	gen_str(g, key);
	gen_check(yajl_gen_integer(g, val));
}

static void gen_managed_device(yajl_gen g, const struct mapped *m)
{
	gen_str(g, "managedDevice");
	gen_check(yajl_gen_map_open(g));
	gen_key_str(g, "deviceName", m->name);
	gen_key_str(g, "managementAgent", cmb_map_agent_names[m->agent]);
	gen_key_str(g, "azureADDeviceId",
		    m->has_azure_ad_device_id ? m->azure_ad_device_id : NULL);
	gen_key_str(g, "operatingSystem", m->operating_system);
	gen_key_str(g, "osVersion", m->os_version);
	gen_key_str(g, "serialNumber", m->serial_number);
	gen_key_str(g, "manufacturer", m->manufacturer);
	gen_key_str(g, "model", m->model);
	gen_key_str(g, "joinType", cmb_map_join_names[m->join_type]);
	gen_key_str(g, "deviceEnrollmentType", m->comanaged ? "windowsCoManagement" : "unknown");
	gen_key_str(g, "complianceState", m->compliance_with_intune ? "unknown" : "configManager");
	gen_key_volatile(g, m, "lastSyncDateTime", m->last_sync);

	gen_str(g, "configurationManagerClientEnabledFeatures");
	gen_check(yajl_gen_map_open(g));
	for (size_t i = 0; i < sizeof(workload_features) / sizeof(workload_features[0]); i++)
		gen_key_bool(g, workload_features[i].feature,
			     m->comanaged && m->workloads >= 0 &&
				     (m->workloads & workload_features[i].bits) != 0);
	gen_check(yajl_gen_map_close(g));

	gen_str(g, "configurationManagerClientHealthState");
	gen_check(yajl_gen_map_open(g));
	gen_key_str(g, "state", cmb_map_health_names[m->health_state]);
	gen_key_int(g, "errorCode", 0);
	gen_key_volatile(g, m, "lastSyncDateTime", m->last_sync);
	gen_check(yajl_gen_map_close(g));

	gen_str(g, "configurationManagerClientInformation");
	gen_check(yajl_gen_map_open(g));
	gen_key_str(g, "clientIdentifier", m->client_identifier);
	gen_key_bool(g, "isBlocked", m->is_blocked);
	gen_check(yajl_gen_map_close(g));

	gen_check(yajl_gen_map_close(g));
}

static void gen_configuration_manager(yajl_gen g, const struct cmb_map_ctx *ctx,
				      const struct cmb_site_device *dev, const struct mapped *m)
{
	gen_str(g, "configurationManager");
	gen_check(yajl_gen_map_open(g));
	gen_key_str(g, "siteCode", ctx->site_code);
	gen_key_int(g, "resourceId", dev->resource_id);
	gen_key_str(g, "smsId", m->sms_id);
	gen_key_str(g, "clientVersion", m->client_version);
	gen_key_str(g, "hardwareId", m->hardware_id);
	gen_key_str(g, "smbiosGuid", m->smbios_guid);
	gen_key_str(g, "aadTenantId", m->aad_tenant_id);
	gen_str(g, "collectionIds");
	gen_check(yajl_gen_array_open(g));
	for (size_t i = 0; i < m->n_collection_ids; i++)
		gen_str(g, m->collection_ids[i]);
	gen_check(yajl_gen_array_close(g));
	gen_str(g, "comanagementWorkloads");
	if (m->workloads >= 0)
		gen_check(yajl_gen_integer(g, m->workloads));
	else
		gen_check(yajl_gen_null(g));
	gen_key_int(g, "unknownWorkloadBits", m->unknown_bits);
	gen_key_int(g, "utf8Repairs", m->repairs);
	gen_check(yajl_gen_map_close(g));
}

static void gen_print(void *ctx, const char *str, size_t len)
{
	struct gen_out *o = ctx;
	if (cmb_buf_add(&o->json, str, len) < 0)
		cmb_fatal("mapping: a mapped record exceeded its size limit");
}

static void digest_hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(md, d, &n) != 1 || n != 32)
		cmb_fatal("mapping: SHA-256 failed");
	cmb_hex32(d, out);
}

/* The legacy full and stable hash of the record o holds (gen_out): SHA-256 of its JSON bytes. */
static void gen_hashes(const struct gen_out *o, char full[65], char stable[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const char *data = o->json.data ? o->json.data : "";
	size_t at = 0;
	if (!md || EVP_DigestInit_ex(md, cmb_sha256(), NULL) != 1)
		cmb_fatal("out of memory");
	EVP_DigestUpdate(md, data, o->json.len);
	digest_hex(md, full);
	EVP_DigestInit_ex(md, cmb_sha256(), NULL);
	for (size_t i = 0; i < o->n_volatile; i++) {
		EVP_DigestUpdate(md, data + at, o->volatile_at[i][0] - at);
		at = o->volatile_at[i][1];
	}
	EVP_DigestUpdate(md, data + at, o->json.len - at);
	digest_hex(md, stable);
	EVP_MD_CTX_free(md);
}

static void gen_record(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev, struct mapped *m,
		       struct cmb_tenant_record *out)
{
	struct gen_out o = { .n_volatile = 0 };
	cmb_buf_init(&o.json, (size_t)16 << 20);
	cmb_buf_reserve(&o.json, 2048);   /* a record is about 1.2 KB: one allocation, not four */
	yajl_gen g = yajl_gen_alloc(NULL);
	if (!g)
		cmb_fatal("out of memory");
	/* Strings were repaired already; beautify stays off (no whitespace). */
	yajl_gen_config(g, yajl_gen_validate_utf8, 0);
	yajl_gen_config(g, yajl_gen_print_callback, gen_print, &o);
	m->out = &o;
	gen_check(yajl_gen_map_open(g));
	gen_key_str(g, "key", m->key);
	gen_managed_device(g, m);
	gen_configuration_manager(g, ctx, dev, m);
	gen_check(yajl_gen_map_close(g));
	m->out = NULL;
	yajl_gen_free(g);
	gen_hashes(&o, out->legacy_hash, out->legacy_stable_hash);
	out->json = cmb_buf_detach(&o.json, &out->json_len);
}

/* ---- the record's digest ---------------------------------------------- */

/*
 * What "changed" means, without writing the JSON (docs/mapping.md §7): the
 * SHA-256 of a canonical form of everything the record says, in the order
 * gen_record writes it: each string as its length (8 bytes, little-endian)
 * and bytes, or an all-ones length when absent; each number as 8 bytes.
 * The stable hash covers all but the check-in time; the full hash is the
 * stable digest followed by the check-in time. An unchanged device costs
 * this, not a JSON generator and two digests of 1.2 KB.
 *
 * The JSON is a function of these values and CMB_MAP_RECORD_VERSION: a
 * change to what gen_record writes from the same values must bump it
 * (test_mapping.c pins the reference record's JSON and its digest together
 * so that it cannot be forgotten), which changes every digest and sends
 * every device once.
 */
#define CMB_MAP_RECORD_VERSION 2

struct digest {
	EVP_MD_CTX *md;
	unsigned char buf[1024];
	size_t n;
};

static void dg_put(struct digest *d, const void *p, size_t n)
{
	if (d->n + n > sizeof(d->buf)) {
		EVP_DigestUpdate(d->md, d->buf, d->n);
		d->n = 0;
		if (n > sizeof(d->buf)) {
			EVP_DigestUpdate(d->md, p, n);
			return;
		}
	}
	memcpy(d->buf + d->n, p, n);
	d->n += n;
}

static void dg_u64(struct digest *d, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	dg_put(d, b, sizeof(b));
}

static void dg_str(struct digest *d, const char *s)
{
	if (!s) {
		dg_u64(d, UINT64_MAX);
		return;
	}
	size_t n = strlen(s);
	dg_u64(d, n);
	dg_put(d, s, n);
}

/* The digest of what was put since the last one, as raw bytes; the context is ready for the next. */
static void dg_final(struct digest *d, unsigned char raw[32])
{
	unsigned int n = 0;
	EVP_DigestUpdate(d->md, d->buf, d->n);
	d->n = 0;
	if (EVP_DigestFinal_ex(d->md, raw, &n) != 1 || n != 32 || EVP_DigestInit_ex(d->md, cmb_sha256(), NULL) != 1)
		cmb_fatal("mapping: SHA-256 failed");
}

static void digest_record(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev, const struct mapped *m,
			  struct cmb_tenant_record *out)
{
	struct digest d = { .md = EVP_MD_CTX_new() };
	unsigned char stable[32], full[32];
	if (!d.md || EVP_DigestInit_ex(d.md, cmb_sha256(), NULL) != 1)
		cmb_fatal("out of memory");
	dg_u64(&d, CMB_MAP_RECORD_VERSION);
	dg_str(&d, m->key);
	/* managedDevice */
	dg_str(&d, m->name);
	dg_u64(&d, (uint64_t)m->agent);
	dg_str(&d, m->has_azure_ad_device_id ? m->azure_ad_device_id : NULL);
	dg_str(&d, m->operating_system);
	dg_str(&d, m->os_version);
	dg_str(&d, m->serial_number);
	dg_str(&d, m->manufacturer);
	dg_str(&d, m->model);
	dg_u64(&d, (uint64_t)m->join_type);
	dg_u64(&d, (uint64_t)m->comanaged);
	dg_u64(&d, (uint64_t)m->compliance_with_intune);
	dg_u64(&d, (uint64_t)m->health_state);
	dg_str(&d, m->client_identifier);
	dg_u64(&d, (uint64_t)m->is_blocked);
	/* configurationManager */
	dg_str(&d, ctx->site_code);
	dg_u64(&d, dev->resource_id);
	dg_str(&d, m->sms_id);
	dg_str(&d, m->client_version);
	dg_str(&d, m->hardware_id);
	dg_str(&d, m->smbios_guid);
	dg_str(&d, m->aad_tenant_id);
	dg_u64(&d, m->n_collection_ids);
	for (size_t i = 0; i < m->n_collection_ids; i++)
		dg_str(&d, m->collection_ids[i]);
	dg_u64(&d, (uint64_t)m->workloads);
	dg_u64(&d, (uint64_t)m->unknown_bits);
	dg_u64(&d, m->repairs);
	dg_final(&d, stable);
	dg_put(&d, stable, sizeof(stable));
	dg_str(&d, m->last_sync);
	dg_final(&d, full);
	EVP_MD_CTX_free(d.md);
	cmb_hex32(stable, out->stable_hash);
	cmb_hex32(full, out->hash);
}

static int map_device(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
		      struct cmb_tenant_record *out, char **reason, int with_json)
{
	struct mapped m;
	char *why = NULL;
	int outcome;

	memset(out, 0, sizeof(*out));
	memset(&m, 0, sizeof(m));
	if (reason)
		*reason = NULL;

	/* A missing site code is a configuration bug: loud for every device. */
	if (!ctx || !site_code_ok(ctx->site_code)) {
		why = xstrdup("site code missing from the mapping context "
			      "(or not alphanumeric)");
		outcome = CMB_MAP_QUARANTINE;
		goto done;
	}
	if ((why = out_of_scope(dev)) != NULL) {
		outcome = CMB_MAP_SKIP;
		goto done;
	}
	if ((why = map_fields(ctx, dev, &m)) != NULL) {
		outcome = CMB_MAP_QUARANTINE;
		goto done;
	}

	/*
	 * The stable hash leaves out the check-in time, which moves at every
	 * client check-in, so a record whose stable hash is unchanged differs
	 * only in it (docs/mapping.md, "What changed means").
	 */
	digest_record(ctx, dev, &m, out);
	if (with_json)
		gen_record(ctx, dev, &m, out);
	out->unknown_workload_bits = m.unknown_bits;
	out->no_entra_id = !m.has_azure_ad_device_id;
	out->key = m.key;
	m.key = NULL;
	out->utf8_repairs = m.repairs;
	out->agent = m.agent;
	out->health = m.health_state;
	out->join = m.join_type;
	outcome = CMB_MAP_OK;

done:
	mapped_clear(&m);
	if (reason)
		*reason = why;
	else
		free(why);
	return outcome;
}

int cmb_map_device(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
		   struct cmb_tenant_record *out, char **reason)
{
	return map_device(ctx, dev, out, reason, 1);
}

int cmb_map_device_digest(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
			  struct cmb_tenant_record *out, char **reason)
{
	return map_device(ctx, dev, out, reason, 0);
}

int cmb_map_device_json(const struct cmb_map_ctx *ctx, const struct cmb_site_device *dev,
			struct cmb_tenant_record *rec)
{
	struct cmb_tenant_record full;
	if (rec->json)
		return CMB_MAP_OK;
	int outcome = map_device(ctx, dev, &full, NULL, 1);
	if (outcome != CMB_MAP_OK)
		return outcome;
	rec->json = full.json;
	rec->json_len = full.json_len;
	memcpy(rec->legacy_hash, full.legacy_hash, sizeof(rec->legacy_hash));
	memcpy(rec->legacy_stable_hash, full.legacy_stable_hash, sizeof(rec->legacy_stable_hash));
	full.json = NULL;
	cmb_tenant_record_clear(&full);
	return CMB_MAP_OK;
}

void cmb_tenant_record_clear(struct cmb_tenant_record *rec)
{
	if (!rec)
		return;
	free(rec->key);
	free(rec->json);
	memset(rec, 0, sizeof(*rec));
}
