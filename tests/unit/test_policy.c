/*
 * test_policy.c - endpoint security policies, exactly: the catalog, Graph
 * bodies as admins export them (one per template family) mapped whole,
 * rejections with their reasons, conflicts and merges, byte-stable
 * documents, and hostile bodies refused under the limits.
 *
 * The bodies in tests/unit/data/policies/ follow the shape of Microsoft's
 * Graph beta examples ("Get deviceManagementConfigurationPolicy",
 * $expand=settings,assignments; learn.microsoft.com/graph/api/intune-deviceconfigv2-
 * devicemanagementconfigurationpolicy-get) and of public exports: the
 * setting definition ids, option ids and CSP paths are Graph's own
 * (Lewis-Barry/IntuneSettingsCatalogViewer's dumps of
 * deviceManagement/configurationSettings, categories Defender, Firewall,
 * Microsoft Defender for Endpoint, Windows Defender Security Center), the
 * ASR ConfigMgr template id and rule ids are Microsoft365DSC's
 * (IntuneAttackSurfaceReductionRulesPolicyWindows10ConfigManager), and the
 * values are those of exported baselines (Pacers31Colts18/Intune.Docs).
 * Ids of policies, templates and collections are the lab's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/base/error.h"
#include "connector/base/util.h"
#include "mapping/policy.h"
#include "mapping/policy_catalog.h"

static const char *const attached[] = { "PS100012", "PS100034" };

static char *load(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/unit/data/policies/%s", CMB_SOURCE_DIR, name);
	char *buf = NULL;
	size_t n = 0;
	assert_int_equal(cmb_file_read(path, 1 << 22, &buf, &n), 0);
	if (len)
		*len = n;
	return buf;
}

/* buf with the one occurrence of from replaced by to (it must occur exactly once). Caller frees. */
static char *replace1(const char *buf, const char *from, const char *to)
{
	const char *at = strstr(buf, from);
	assert_non_null(at);
	assert_null(strstr(at + 1, from));
	return xasprintf("%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
}

static struct cmb_policy *parse_ok(const char *buf)
{
	struct cmb_policy *p = NULL;
	int rc = cmb_map_policy_parse(buf, strlen(buf), &p);
	if (rc)
		fail_msg("parse failed: %s", cmb_error_last());
	return p;
}

/* Validates (all lab collections attached) and expects acceptance. */
static void accept(const struct cmb_policy *p)
{
	struct cmb_policy_reasons r = { 0 };
	enum cmb_policy_verdict v = cmb_map_policy_validate(p, attached, 2, &r);
	for (size_t i = 0; i < r.n; i++)
		print_message("reason: %s\n", r.v[i]);
	assert_int_equal(v, CMB_POLICY_ACCEPTED);
	assert_int_equal(r.n, 0);
}

static struct cmb_policy_doc *doc_of(const struct cmb_policy *p, unsigned long long version, char **xml_out)
{
	char *xml = NULL;
	size_t len = 0;
	char hash[65];
	assert_int_equal(cmb_map_policy_doc(p, version, NULL, &xml, &len, hash), 0);
	assert_int_equal(strlen(xml), len);
	struct cmb_policy_doc *d = NULL;
	assert_int_equal(cmb_map_policy_doc_parse(xml, len, &d), 0);
	assert_string_equal(d->content_hash, hash);
	assert_string_equal(d->tenant_policy_id, p->id);
	assert_int_equal(d->version, version);
	if (xml_out)
		*xml_out = xml;
	else
		free(xml);
	return d;
}

static const struct cmb_policy_doc_setting *doc_find(const struct cmb_policy_doc *d, const char *csp)
{
	for (size_t i = 0; i < d->n_settings; i++)
		if (strcmp(d->settings[i].csp, csp) == 0)
			return &d->settings[i];
	fail_msg("no setting %s in the document", csp);
	return NULL;
}

/* A body from the data folder, parsed, accepted and turned into a document read back. */
struct mapped {
	char *buf;
	struct cmb_policy *p;
	struct cmb_policy_doc *d;
};

static void mapped_load(struct mapped *m, const char *name, unsigned long long version)
{
	m->buf = load(name, NULL);
	m->p = parse_ok(m->buf);
	accept(m->p);
	m->d = doc_of(m->p, version, NULL);
}

static void mapped_free(struct mapped *m)
{
	cmb_map_policy_doc_free(m->d);
	cmb_map_policy_free(m->p);
	free(m->buf);
}

/* ---- the catalog ---- */

static void catalog_coverage_and_consistency(void **state)
{
	(void)state;
	size_t n, per[5] = { 0 };
	const struct cmb_policy_def *t = cmb_map_policy_defs(&n);
	assert_int_equal(n, 178);
	for (size_t i = 0; i < n; i++) {
		per[t[i].family]++;
		assert_ptr_equal(cmb_map_policy_def(t[i].id), &t[i]); /* ids are unique */
		assert_true(strncmp(t[i].csp, "./", 2) == 0);
		switch (t[i].type) {
		case CMB_PDEF_CHOICE:
		case CMB_PDEF_SELECTOR:
		case CMB_PDEF_CHOICES_FLAGS:
		case CMB_PDEF_CHOICES_LIST:
			assert_non_null(t[i].options);
			break;
		case CMB_PDEF_INT:
			assert_true(t[i].min <= t[i].max);
			break;
		case CMB_PDEF_STRINGS:
			assert_non_null(t[i].extra);
			break;
		default:
			break;
		}
		if (t[i].parent) {
			const struct cmb_policy_def *g = cmb_map_policy_def(t[i].parent);
			assert_non_null(g);
			assert_true(g->type == CMB_PDEF_GROUP || g->type == CMB_PDEF_GROUP_KV);
			if (g->type == CMB_PDEF_GROUP_KV)
				assert_non_null(t[i].extra); /* the key */
			else
				assert_non_null(strstr(t[i].csp, "{0}"));
		}
	}
	assert_int_equal(per[CMB_PFAM_AV], 44);
	assert_int_equal(per[CMB_PFAM_WSC], 23);
	assert_int_equal(per[CMB_PFAM_EDR], 6);
	assert_int_equal(per[CMB_PFAM_ASR], 24);
	assert_int_equal(per[CMB_PFAM_FW], 81);

	char v[64];
	const struct cmb_policy_def *d = cmb_map_policy_def("device_vendor_msft_policy_config_defender_allowrealtimemonitoring");
	assert_non_null(d);
	assert_string_equal(d->csp, "./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring");
	assert_int_equal(cmb_map_policy_option(d, "device_vendor_msft_policy_config_defender_allowrealtimemonitoring_1", v,
					       sizeof(v)),
			 0);
	assert_string_equal(v, "1");
	assert_int_equal(cmb_map_policy_option(d, "device_vendor_msft_policy_config_defender_allowrealtimemonitoring_2", v,
					       sizeof(v)),
			 -1);
	d = cmb_map_policy_def("vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_direction");
	assert_int_equal(cmb_map_policy_option(d, "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_direction_in",
					       v, sizeof(v)),
			 0);
	assert_string_equal(v, "IN");
	d = cmb_map_policy_def("device_vendor_msft_policy_config_defender_attacksurfacereductionrules_blockwebshellcreationforservers");
	assert_string_equal(d->extra, "a8f5898e-1dc8-49a9-9878-85004b8a61e6");
	assert_int_equal(cmb_map_policy_option(d, "device_vendor_msft_policy_config_defender_attacksurfacereductionrules_"
						  "blockwebshellcreationforservers_warn",
					       v, sizeof(v)),
			 0);
	assert_string_equal(v, "6");
	assert_null(cmb_map_policy_def("device_vendor_msft_policy_config_defender_AllowRealtimeMonitoring"));
	assert_null(cmb_map_policy_def(NULL));
}

/* ---- one body per family, mapped whole ---- */

static const char edr_xml[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<cmbridgePolicy xmlns=\"urn:cmbridge:policy:1\" tenantPolicyId=\"c1a2b3c4-0004-4e5f-9a00-000000000004\" version=\"3\" contentHash=\"0bd63366ba5fbaac2bcd92c8a6ae04a5094f148c3d4e5a8b1e94e6ed81bb0ccf\" family=\"endpointSecurityEndpointDetectionAndResponse\" name=\"Endpoint detection and response - All workstations\" lastModified=\"2024-03-18T09:41:07Z\">\n"
	"  <targets>\n"
	"    <collection id=\"PS100012\"/>\n"
	"  </targets>\n"
	"  <settings>\n"
	"    <setting definitionId=\"device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing\" csp=\"./Device/Vendor/MSFT/WindowsAdvancedThreatProtection/Configuration/SampleSharing\" type=\"int\">1</setting>\n"
	"    <setting definitionId=\"device_vendor_msft_windowsadvancedthreatprotection_configuration_telemetryreportingfrequency\" csp=\"./Device/Vendor/MSFT/WindowsAdvancedThreatProtection/Configuration/TelemetryReportingFrequency\" type=\"int\">2</setting>\n"
	"    <setting definitionId=\"device_vendor_msft_windowsadvancedthreatprotection_onboarding_fromconnector\" csp=\"./Device/Vendor/MSFT/WindowsAdvancedThreatProtection/Onboarding\" type=\"string\">{\"body\":\"eyJvcmdJZCI6IjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJ9\",\"sig\":\"c2lnbmF0dXJl\",\"sha256sig\":\"c2hhMjU2\",\"cert\":\"Y2VydA==\",\"chain\":[\"Y2hhaW4x\"]}</setting>\n"
	"  </settings>\n"
	"</cmbridgePolicy>\n"
	;

static void edr_full_document(void **state)
{
	(void)state;
	char *buf = load("edr.json", NULL);
	struct cmb_policy *p = parse_ok(buf);
	accept(p);
	assert_string_equal(p->template_family, "endpointSecurityEndpointDetectionAndResponse");
	assert_string_equal(p->last_modified, "2024-03-18T09:41:07Z"); /* +02:00 in the body */
	char *xml = NULL;
	struct cmb_policy_doc *d = doc_of(p, 3, &xml);
	assert_string_equal(xml, edr_xml);
	/* The package type selects the blob setting and writes no node of its own. */
	assert_int_equal(d->n_settings, 3);
	assert_null(d->settings[2].group_csp);
	free(xml);
	cmb_map_policy_doc_free(d);
	cmb_map_policy_free(p);
	free(buf);
}

static void antivirus_whole(void **state)
{
	(void)state;
	struct mapped m;
	mapped_load(&m, "antivirus.json", 1);
	struct cmb_policy *p = m.p;
	struct cmb_policy_doc *d = m.d;
	assert_int_equal(p->n_settings, 38);
	assert_int_equal(p->settings[2].n_children, 2); /* cloud block level and timeout under cloud protection */
	assert_int_equal(p->n_collections, 2);
	/* 44 instances: one group whose 4 children make one value, 43 settings in 40 nodes. */
	assert_int_equal(d->n_settings, 40);
	assert_string_equal(d->family, "endpointSecurityAntivirus");
	assert_string_equal(d->name, "Microsoft Defender Antivirus - Baseline workstations");
	assert_string_equal(doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/ThreatSeverityDefaultAction")->value,
			    "1=2|2=2|4=3|5=3");
	const struct cmb_policy_doc_setting *s = doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/CloudBlockLevel");
	assert_string_equal(s->value, "2");
	assert_string_equal(s->type, "int");
	/* Exclusions are a set: sorted. Update sources are an order: kept. */
	assert_string_equal(doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/ExcludedExtensions")->value,
			    ".ldf|.log|.mdf");
	assert_string_equal(doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/SignatureUpdateFallbackOrder")->value,
			    "InternalDefinitionUpdateServer|MicrosoftUpdateServer|MMPC");
	assert_string_equal(doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/SecurityIntelligenceLocation")->value,
			    "\\\\fs01\\defender$\\updates");
	assert_string_equal(doc_find(d, "./Device/Defender/RandomizeScheduleTaskTimes")->value, "1");
	/* Canonical order: by CSP path. */
	for (size_t i = 1; i < d->n_settings; i++)
		assert_true(strcmp(d->settings[i - 1].csp, d->settings[i].csp) < 0);
	mapped_free(&m);
}

static void windows_security_whole(void **state)
{
	(void)state;
	struct mapped m;
	mapped_load(&m, "windows_security.json", 7);
	struct cmb_policy_doc *d = m.d;
	assert_int_equal(d->n_settings, 23);
	assert_string_equal(
		doc_find(d, "./Device/Vendor/MSFT/Policy/Config/WindowsDefenderSecurityCenter/CompanyName")->value,
		"Contoso IT");
	assert_string_equal(doc_find(d, "./Vendor/MSFT/Defender/Configuration/TamperProtection")->value, "1");
	mapped_free(&m);
}

static void firewall_profiles_and_rules(void **state)
{
	(void)state;
	struct mapped m;
	mapped_load(&m, "firewall.json", 2);
	struct cmb_policy_doc *d = m.d;
	/* 7 global, 3 EnableFirewall with 16 profile settings nested under each, 46 properties of 4 rules. */
	assert_int_equal(d->n_settings, 7 + 3 * 17 + 46);
	size_t in_groups = 0;
	const char *last_group = NULL;
	size_t groups = 0;
	for (size_t i = 0; i < d->n_settings; i++) {
		if (!d->settings[i].group_csp)
			continue;
		in_groups++;
		assert_string_equal(d->settings[i].group_definition_id, "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}");
		assert_true(strncmp(d->settings[i].csp, d->settings[i].group_csp, strlen(d->settings[i].group_csp)) == 0);
		if (!last_group || strcmp(last_group, d->settings[i].group_csp) != 0)
			groups++;
		last_group = d->settings[i].group_csp;
	}
	assert_int_equal(in_groups, 46);
	assert_int_equal(groups, 4);
	assert_string_equal(doc_find(d, "./Vendor/MSFT/Firewall/MdmStore/Global/IPsecExempt")->value, "11"); /* 1|2|8 */
	assert_string_equal(doc_find(d, "./Vendor/MSFT/Firewall/MdmStore/Global/EnablePacketQueue")->value, "3");
	assert_string_equal(doc_find(d, "./Vendor/MSFT/Firewall/MdmStore/PublicProfile/EnableFirewall")->type, "bool");
	assert_string_equal(doc_find(d, "./Vendor/MSFT/Firewall/MdmStore/PublicProfile/LogMaxFileSize")->value, "16384");
	/* A rule's id is stable: derived from the policy id and the rule's name. */
	char hex[65];
	const char *seed = "c1a2b3c4-0003-4e5f-9a00-000000000003\nAllow WinRM from admin jump hosts";
	cmb_sha256_hex(seed, strlen(seed), hex);
	hex[32] = '\0';
	char *rule = xasprintf("./Vendor/MSFT/Firewall/MdmStore/FirewallRules/%s/InterfaceTypes", hex);
	assert_string_equal(doc_find(d, rule)->value, "All");
	free(rule);
	rule = xasprintf("./Vendor/MSFT/Firewall/MdmStore/FirewallRules/%s/LocalPortRanges", hex);
	assert_string_equal(doc_find(d, rule)->value, "5985,5986");
	free(rule);
	mapped_free(&m);
}

static void asr_rules_whole(void **state)
{
	(void)state;
	struct mapped m;
	mapped_load(&m, "asr.json", 1);
	struct cmb_policy_doc *d = m.d;
	assert_int_equal(d->n_settings, 5);
	const struct cmb_policy_doc_setting *s =
		doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/AttackSurfaceReductionRules");
	assert_string_equal(s->definition_id, "device_vendor_msft_policy_config_defender_attacksurfacereductionrules");
	assert_string_equal(s->value, "01443614-cd74-433a-b99e-2ecdc07bfc25=2|26190899-1602-49e8-8b27-eb1d0a1ce869=6|"
				      "3b576869-a4ec-4529-8536-b80a7769e899=1|56a863a9-875e-4185-98a7-b882c64b5ce5=1|"
				      "5beb7efe-fd9a-4556-801d-275e5ffc04cc=1|75668c1f-73b5-4cf0-bb93-3ecf5cb7cc84=1|"
				      "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=2|92e97fa1-2edf-4476-bdd6-9dd0b4dddc7b=1|"
				      "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=1|b2b3f03d-6a65-4f7b-a9c7-1c7ef74a9ba4=1|"
				      "be9ba2d9-53ea-4cdc-84e5-9b1eeee46550=1|c1db55ab-c21a-4637-bb3f-a12568109d35=2|"
				      "d1e49aac-8f56-4280-b9ba-993a6d77406c=0|d3e037e1-3eb8-44c8-a917-57927947596d=1|"
				      "d4f940ab-401b-4efc-aadc-ad5f3c50688a=1|e6db77e5-3df2-4cf1-b95a-636979351e5b=2");
	assert_string_equal(
		doc_find(d, "./Device/Vendor/MSFT/Policy/Config/Defender/AttackSurfaceReductionOnlyExclusions")->value,
		"C:\\Program Files\\Contoso\\LOB\\lob.exe|C:\\Windows\\CCM\\*");
	mapped_free(&m);
}

static void same_content_same_bytes(void **state)
{
	(void)state;
	char *a = load("antivirus.json", NULL), *b = load("antivirus_reordered.json", NULL);
	struct cmb_policy *pa = parse_ok(a), *pb = parse_ok(b);
	char *xa, *xb;
	size_t la, lb;
	char ha[65], hb[65];
	assert_int_equal(cmb_map_policy_doc(pa, 5, NULL, &xa, &la, ha), 0);
	assert_int_equal(cmb_map_policy_doc(pb, 5, NULL, &xb, &lb, hb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(xa, xb, la);
	assert_string_equal(ha, hb);
	/* Another version changes the attribute, not the content hash. */
	char *xc;
	size_t lc;
	char hc[65];
	assert_int_equal(cmb_map_policy_doc(pa, 6, NULL, &xc, &lc, hc), 0);
	assert_string_equal(hc, ha);
	assert_non_null(strstr(xc, "version=\"6\""));
	free(xa);
	free(xb);
	free(xc);
	cmb_map_policy_free(pa);
	cmb_map_policy_free(pb);
	free(a);
	free(b);
}

static void listing_page(void **state)
{
	(void)state;
	char *e = load("edr.json", NULL), *w = load("windows_security.json", NULL);
	char *page = xasprintf("{\"@odata.context\":\"https://graph.microsoft.com/beta/$metadata#deviceManagement/"
			       "configurationPolicies(settings(),assignments())\",\"@odata.count\":2,"
			       "\"@odata.nextLink\":\"https://graph.microsoft.com/beta/deviceManagement/"
			       "configurationPolicies?$skiptoken=LastItemId%%3d2\",\"value\":[%s,%s]}",
			       e, w);
	struct cmb_policy **v = NULL;
	size_t n = 0;
	char *next = NULL;
	assert_int_equal(cmb_map_policy_parse_page(page, strlen(page), &v, &n, &next), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0]->id, "c1a2b3c4-0004-4e5f-9a00-000000000004");
	assert_string_equal(v[1]->id, "c1a2b3c4-0002-4e5f-9a00-000000000002");
	assert_string_equal(next, "https://graph.microsoft.com/beta/deviceManagement/configurationPolicies?$skiptoken=LastItemId%3d2");
	cmb_map_policy_list_free(v, n);
	free(next);
	free(page);
	/* A broken policy in a page fails the page, saying which. */
	page = xasprintf("{\"value\":[%s,{\"name\":\"no id\"}]}", e);
	assert_int_equal(cmb_map_policy_parse_page(page, strlen(page), &v, &n, &next), CMB_EPROTO);
	assert_string_equal(cmb_error_last(), "value[1] has no id");
	free(page);
	free(e);
	free(w);
}

/* ---- rejections ---- */

static void expect_rejected(const char *body, const char *const *attached_v, size_t n_attached, const char *const *want,
			    size_t n_want, int settings_bad)
{
	struct cmb_policy *p = parse_ok(body);
	struct cmb_policy_reasons r = { 0 };
	assert_int_equal(cmb_map_policy_validate(p, attached_v, n_attached, &r), CMB_POLICY_REJECTED);
	for (size_t i = 0; i < r.n; i++)
		print_message("reason: %s\n", r.v[i]);
	assert_int_equal(r.n, n_want);
	for (size_t i = 0; i < n_want; i++)
		assert_string_equal(r.v[i], want[i]);
	/* Nothing of a policy with a bad setting is mapped, even by a caller that did not validate. */
	if (settings_bad) {
		char *xml = NULL;
		size_t len;
		char hash[65];
		assert_int_equal(cmb_map_policy_doc(p, 1, NULL, &xml, &len, hash), CMB_EINVAL);
		assert_null(xml);
	}
	cmb_map_policy_reasons_free(&r);
	cmb_map_policy_free(p);
}

static void rejected_one_reason_per_setting(void **state)
{
	(void)state;
	char *buf = load("antivirus.json", NULL);
	char *b1 = replace1(buf, "\"device_vendor_msft_policy_config_defender_allowemailscanning\"",
			    "\"device_vendor_msft_policy_config_defender_allowemailscanningx\"");
	char *b2 = replace1(b1, "\"value\": 30", "\"value\": 91");
	char *b3 = replace1(b2, "device_vendor_msft_policy_config_defender_puaprotection_1",
			    "device_vendor_msft_policy_config_defender_puaprotection_7");
	static const char *const want[] = {
		"settings[3] (device_vendor_msft_policy_config_defender_allowemailscanningx): unknown setting: not in the "
		"connector's settings catalog (mapping/policy_catalog.def)",
		"settings[15] (device_vendor_msft_policy_config_defender_daystoretaincleanedmalware): integer 91 is outside "
		"0..90",
		"settings[23] (device_vendor_msft_policy_config_defender_puaprotection): option "
		"\"device_vendor_msft_policy_config_defender_puaprotection_7\" is not one of "
		"device_vendor_msft_policy_config_defender_puaprotection_0, "
		"device_vendor_msft_policy_config_defender_puaprotection_1, "
		"device_vendor_msft_policy_config_defender_puaprotection_2",
	};
	expect_rejected(b3, attached, 2, want, 3, 1);
	free(b1);
	free(b2);
	free(b3);
	free(buf);
}

static void rejected_untargetable_collection(void **state)
{
	(void)state;
	char *buf = load("antivirus.json", NULL);
	static const char *const only[] = { "PS100012" };
	static const char *const want[] = {
		"target collection PS100034 is not attached to the tenant or not enabled for cloud sync",
	};
	expect_rejected(buf, only, 1, want, 1, 0);
	/* A target the site cannot deliver to at all. */
	char *b = replace1(buf, "\"collectionId\": \"PS100034\"", "\"groupId\": \"7e9f3a10-0000-4000-8000-000000000001\"");
	char *b2 = replace1(b, "#microsoft.graph.configurationManagerCollectionAssignmentTarget\",\n        "
			       "\"deviceAndAppManagementAssignmentFilterId\": null,\n        "
			       "\"deviceAndAppManagementAssignmentFilterType\": \"none\",\n        \"groupId\"",
			    "#microsoft.graph.groupAssignmentTarget\",\n        \"groupId\"");
	static const char *const want2[] = {
		"assignments[1]: target groupAssignmentTarget cannot be delivered through a ConfigMgr site (only "
		"configurationManagerCollectionAssignmentTarget)",
	};
	expect_rejected(b2, attached, 2, want2, 1, 0);
	free(b);
	free(b2);
	free(buf);
}

static void rejected_malformed_at_depth_3(void **state)
{
	(void)state;
	static const char body[] =
		"{\"id\":\"p-depth\",\"technologies\":\"configManager\",\"platforms\":\"windows10\",\"settings\":[{"
		"\"settingInstance\":{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance\","
		"\"settingDefinitionId\":\"vendor_msft_firewall_mdmstore_domainprofile_enablefirewall\","
		"\"choiceSettingValue\":{\"value\":\"vendor_msft_firewall_mdmstore_domainprofile_enablefirewall_true\","
		"\"children\":[{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance\","
		"\"settingDefinitionId\":\"vendor_msft_firewall_mdmstore_domainprofile_enablelogdroppedpackets\","
		"\"choiceSettingValue\":{\"value\":\"vendor_msft_firewall_mdmstore_domainprofile_enablelogdroppedpackets_true\","
		"\"children\":[{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance\","
		"\"settingDefinitionId\":\"vendor_msft_firewall_mdmstore_domainprofile_logmaxfilesize\","
		"\"simpleSettingValue\":{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationIntegerSettingValue\","
		"\"value\":\"4096\"}}]}}]}}}],\"assignments\":[]}";
	static const char *const want[] = {
		"settings[0]/choiceSettingValue/children[0]/choiceSettingValue/children[0] "
		"(vendor_msft_firewall_mdmstore_domainprofile_logmaxfilesize): malformed instance: simpleSettingValue.value is "
		"missing, not of its @odata.type, or holds control characters",
	};
	expect_rejected(body, attached, 2, want, 1, 1);
}

static void rejected_group_rules(void **state)
{
	(void)state;
	char *buf = load("firewall.json", NULL);
	/* Two rules of one policy with one name would be one node on the device. */
	char *b = replace1(buf, "\"value\": \"Block SMB outbound to internet\"", "\"value\": \"ConfigMgr remote control\"");
	static const char *const want[] = {
		"settings[10]/groupSettingCollectionValue[2] (vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}): "
		"a second rule named \"ConfigMgr remote control\" (also at settings[10]/groupSettingCollectionValue[1])",
	};
	expect_rejected(b, attached, 2, want, 1, 1);
	free(b);
	free(buf);
}

static void not_for_connector_ignored(void **state)
{
	(void)state;
	char *buf = load("antivirus.json", NULL);
	char *b = replace1(buf, "\"technologies\": \"configManager\"", "\"technologies\": \"mdm,microsoftSense\"");
	struct cmb_policy *p = parse_ok(b);
	assert_int_equal(p->for_connector, 0);
	struct cmb_policy_reasons r = { 0 };
	assert_int_equal(cmb_map_policy_validate(p, attached, 2, &r), CMB_POLICY_NOT_FOR_CONNECTOR);
	assert_int_equal(r.n, 0);
	cmb_map_policy_free(p);
	free(b);
	/* configManager among others is for the connector. */
	b = replace1(buf, "\"technologies\": \"configManager\"", "\"technologies\": \"mdm,configManager\"");
	p = parse_ok(b);
	assert_int_equal(p->for_connector, 1);
	cmb_map_policy_free(p);
	free(b);
	free(buf);
}

/* ---- conflicts and merges ---- */

#define CHOICE(id, opt)                                                                                              \
	"{\"settingInstance\":{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance\"," \
	"\"settingDefinitionId\":\"" id "\",\"choiceSettingValue\":{\"value\":\"" id "_" opt "\",\"children\":[]}}}"
#define INT(id, v)                                                                                                   \
	"{\"settingInstance\":{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance\"," \
	"\"settingDefinitionId\":\"" id "\",\"simpleSettingValue\":{\"@odata.type\":"                                     \
	"\"#microsoft.graph.deviceManagementConfigurationIntegerSettingValue\",\"value\":" v "}}}"
#define STRS2(id, a, b)                                                                                              \
	"{\"settingInstance\":{\"@odata.type\":"                                                                       \
	"\"#microsoft.graph.deviceManagementConfigurationSimpleSettingCollectionInstance\",\"settingDefinitionId\":\"" id \
	"\",\"simpleSettingCollectionValue\":[{\"value\":\"" a "\"},{\"value\":\"" b "\"}]}}"
#define ASR2(r1, m1, r2, m2)                                                                                         \
	"{\"settingInstance\":{\"@odata.type\":"                                                                       \
	"\"#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance\",\"settingDefinitionId\":\""     \
	"device_vendor_msft_policy_config_defender_attacksurfacereductionrules\",\"groupSettingCollectionValue\":[{"    \
	"\"children\":[" CHOICE_C(ASRP r1, m1) "," CHOICE_C(ASRP r2, m2) "]}]}}"
#define CHOICE_C(id, opt)                                                                                            \
	"{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance\","                    \
	"\"settingDefinitionId\":\"" id "\",\"choiceSettingValue\":{\"value\":\"" id "_" opt "\"}}"
#define DEF "device_vendor_msft_policy_config_defender_"
#define ASRP DEF "attacksurfacereductionrules_"
#define POLICY(id, coll, settings)                                                                                   \
	"{\"id\":\"" id "\",\"name\":\"" id "\",\"platforms\":\"windows10\",\"technologies\":\"configManager\","        \
	"\"templateReference\":{\"templateFamily\":\"endpointSecurityAntivirus\"},\"settings\":[" settings "],"         \
	"\"assignments\":[{\"target\":{\"@odata.type\":"                                                                \
	"\"#microsoft.graph.configurationManagerCollectionAssignmentTarget\",\"collectionId\":\"" coll "\"}}]}"

static const char p1_json[] =
	POLICY("p1", "PS100012",
	       CHOICE(DEF "allowrealtimemonitoring", "1") "," INT(DEF "avgcpuloadfactor", "40") "," STRS2(
		       DEF "excludedpaths", "D:\\\\Data", "C:\\\\Temp") "," ASR2("blockadobereaderfromcreatingchildprocesses",
									 "block", "blockwin32apicallsfromofficemacros",
									 "audit"));
static const char p2_json[] =
	POLICY("p2", "PS100034",
	       CHOICE(DEF "allowrealtimemonitoring", "0") "," CHOICE(DEF "allowbehaviormonitoring", "1") "," STRS2(
		       DEF "excludedpaths", "C:\\\\Temp", "E:\\\\Build") "," ASR2("blockadobereaderfromcreatingchildprocesses",
									  "audit",
									  "useadvancedprotectionagainstransomware",
									  "warn"));
static const char p3_json[] = POLICY("p3", "PS100012",
				     ASR2("blockwin32apicallsfromofficemacros", "warn", "useadvancedprotectionagainstransomware",
					  "off"));

static void conflicts_and_merges(void **state)
{
	(void)state;
	struct cmb_policy *p1 = parse_ok(p1_json), *p2 = parse_ok(p2_json), *p3 = parse_ok(p3_json);
	accept(p1);
	accept(p2);
	accept(p3);
	const struct cmb_policy *v[] = { p1, p2, p3 };
	static const struct cmb_policy_overlap ov[] = { { "PS100034", "PS100012" } };
	struct cmb_policy_merge *m = NULL;
	assert_int_equal(cmb_map_policy_merge(v, 3, ov, 1, &m), 0);
	assert_int_equal(m->n_collections, 2);
	for (size_t k = 0; k < 2; k++) {
		const struct cmb_policy_collection_result *r = &m->collections[k];
		assert_string_equal(r->collection_id, k ? "PS100034" : "PS100012");
		/* Both policies in conflict for realtime monitoring, neither value applied. */
		assert_int_equal(r->n_conflicts, 1);
		assert_string_equal(r->conflicts[0].definition_id, DEF "allowrealtimemonitoring");
		assert_string_equal(r->conflicts[0].csp, "./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring");
		assert_int_equal(r->conflicts[0].n, 2);
		assert_string_equal(r->conflicts[0].policies[0], "p1");
		assert_string_equal(r->conflicts[0].values[0], "1");
		assert_string_equal(r->conflicts[0].policies[1], "p2");
		assert_string_equal(r->conflicts[0].values[1], "0");
		/* The rest of each applies; exclusions merge; ASR per rule, strictest. */
		assert_int_equal(r->n_entries, 4);
		const struct cmb_policy_effective *e = r->entries;
		assert_string_equal(e[0].csp, "./Device/Vendor/MSFT/Policy/Config/Defender/AllowBehaviorMonitoring");
		assert_string_equal(e[0].value, "1");
		assert_int_equal(e[0].n_origins, 1);
		assert_string_equal(e[0].origins[0], "p2");
		assert_string_equal(e[1].csp, "./Device/Vendor/MSFT/Policy/Config/Defender/AttackSurfaceReductionRules");
		assert_string_equal(e[1].value, "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1|92e97fa1-2edf-4476-bdd6-9dd0b4dddc7b=6|"
						"c1db55ab-c21a-4637-bb3f-a12568109d35=6");
		assert_int_equal(e[1].n_origins, 3); /* block from p1, warn from p3 and from p2 */
		assert_string_equal(e[2].csp, "./Device/Vendor/MSFT/Policy/Config/Defender/AvgCPULoadFactor");
		assert_string_equal(e[2].value, "40");
		assert_string_equal(e[2].type, "int");
		assert_string_equal(e[2].origins[0], "p1");
		assert_string_equal(e[3].csp, "./Device/Vendor/MSFT/Policy/Config/Defender/ExcludedPaths");
		assert_string_equal(e[3].value, "C:\\Temp|D:\\Data|E:\\Build");
		assert_int_equal(e[3].n_origins, 2);
	}
	/* p1's document leaves out what it is in conflict for, and only that. */
	char *xml;
	size_t len;
	char hash[65], hash_alone[65];
	assert_int_equal(cmb_map_policy_doc(p1, 1, m, &xml, &len, hash), 0);
	assert_null(strstr(xml, "AllowRealtimeMonitoring"));
	assert_non_null(strstr(xml, "AvgCPULoadFactor"));
	assert_non_null(strstr(xml, "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1|92e97fa1-2edf-4476-bdd6-9dd0b4dddc7b=2<"));
	free(xml);
	assert_int_equal(cmb_map_policy_doc(p1, 1, NULL, &xml, &len, hash_alone), 0);
	assert_non_null(strstr(xml, "AllowRealtimeMonitoring"));
	assert_string_not_equal(hash, hash_alone); /* a conflict changes the content: a new version */
	free(xml);
	cmb_map_policy_merge_free(m);

	/* Without the overlap, PS100012 sees p1 and p3 only: no conflict. */
	assert_int_equal(cmb_map_policy_merge(v, 3, NULL, 0, &m), 0);
	assert_int_equal(m->collections[0].n_conflicts, 0);
	assert_string_equal(m->collections[0].entries[0].csp,
			    "./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring");
	assert_string_equal(m->collections[0].entries[1].value,
			    "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1|92e97fa1-2edf-4476-bdd6-9dd0b4dddc7b=6|"
			    "c1db55ab-c21a-4637-bb3f-a12568109d35=0");
	cmb_map_policy_merge_free(m);

	/* Policies that agree are no conflict. */
	const struct cmb_policy *same[] = { p1, p1 };
	assert_int_equal(cmb_map_policy_merge(same, 2, NULL, 0, &m), 0);
	assert_int_equal(m->collections[0].n_conflicts, 0);
	cmb_map_policy_merge_free(m);
	cmb_map_policy_free(p1);
	cmb_map_policy_free(p2);
	cmb_map_policy_free(p3);
}

/* ---- hostile bodies ---- */

static void expect_refused(const char *buf, size_t len, int code, const char *needle)
{
	struct cmb_policy *p = NULL;
	assert_int_equal(cmb_map_policy_parse(buf, len, &p), code);
	assert_null(p);
	if (!strstr(cmb_error_last(), needle))
		fail_msg("\"%s\" not in \"%s\"", needle, cmb_error_last());
}

/* Settings Graph paged inside $expand: the part that came is not applied. */
static void rejected_paged_settings(void **state)
{
	(void)state;
	static const char body[] =
		"{\"id\":\"p-paged\",\"technologies\":\"configManager\",\"platforms\":\"windows10\",\"settings\":["
		CHOICE(DEF "allowrealtimemonitoring", "1")
		"],\"settings@odata.nextLink\":\"https://graph.microsoft.com/beta/deviceManagement/configurationPolicies('p-paged')"
		"/settings?$skiptoken=2\",\"assignments\":[{\"target\":{\"@odata.type\":"
		"\"#microsoft.graph.configurationManagerCollectionAssignmentTarget\",\"collectionId\":\"PS100012\"}}]}";
	static const char *const want[] = {
		"settings@odata.nextLink: Graph sent this navigation in pages; the connector applies a policy whole or not at all",
	};
	expect_rejected(body, attached, 2, want, 1, 1);
}

static void hostile_bodies(void **state)
{
	(void)state;
	/* Deep nesting. */
	size_t n = 200000;
	char *deep = xmalloc(n + 1);
	memset(deep, '[', n);
	deep[n] = '\0';
	expect_refused(deep, n, CMB_ETOOBIG, "CMB_POLICY_MAX_JSON_DEPTH (64)");
	free(deep);
	/* A huge string. */
	char *big = xmalloc(200100);
	int k = snprintf(big, 64, "{\"id\":\"x\",\"name\":\"");
	memset(big + k, 'A', 200000);
	strcpy(big + k + 200000, "\"}");
	expect_refused(big, strlen(big), CMB_ETOOBIG, "CMB_POLICY_MAX_STRING");
	free(big);
	/* 100,000 settings. */
	struct cmb_buf b = CMB_BUF_INIT((size_t)-1);
	cmb_buf_addstr(&b, "{\"id\":\"x\",\"technologies\":\"configManager\",\"settings\":[");
	for (int i = 0; i < 100000; i++)
		cmb_buf_printf(&b, "%s{\"settingInstance\":{\"settingDefinitionId\":\"s%d\"}}", i ? "," : "", i);
	cmb_buf_addstr(&b, "]}");
	expect_refused(b.data, b.len, CMB_ETOOBIG, "CMB_POLICY_MAX_INSTANCES (5000)");
	/* Too many bytes, whatever they are. */
	cmb_buf_reset(&b);
	while (b.len <= CMB_POLICY_MAX_BODY)
		cmb_buf_addstr(&b, "                                                                ");
	expect_refused(b.data, b.len, CMB_ETOOBIG, "CMB_POLICY_MAX_BODY");
	/* Setting instances nested deeper than the limit, yet shallow JSON. */
	cmb_buf_reset(&b);
	cmb_buf_addstr(&b, "{\"id\":\"x\",\"settings\":[{\"settingInstance\":");
	for (int i = 0; i < 10; i++)
		cmb_buf_addstr(&b, "{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance\","
				   "\"settingDefinitionId\":\"d\",\"choiceSettingValue\":{\"value\":\"d_1\",\"children\":[");
	for (int i = 0; i < 10; i++)
		cmb_buf_addstr(&b, "]}}");
	cmb_buf_addstr(&b, "}]}");
	expect_refused(b.data, b.len, CMB_ETOOBIG, "CMB_POLICY_MAX_NESTING (8)");
	cmb_buf_free(&b);
	/* Not JSON, not an object, no id. */
	expect_refused("{\"id\":", 6, CMB_EPROTO, "not JSON");
	expect_refused("[1,2]", 5, CMB_EPROTO, "policy is not a JSON object");
	expect_refused("{\"name\":\"x\"}", 12, CMB_EPROTO, "policy has no id");
}

static void document_parse_refuses_dtd(void **state)
{
	(void)state;
	static const char evil[] = "<?xml version=\"1.0\"?>\n<!DOCTYPE cmbridgePolicy [<!ENTITY x \"y\">]>\n"
				   "<cmbridgePolicy xmlns=\"urn:cmbridge:policy:1\" tenantPolicyId=\"p\" version=\"1\" "
				   "contentHash=\"h\"><settings><setting definitionId=\"a\" csp=\"./b\" "
				   "type=\"string\">&x;</setting></settings></cmbridgePolicy>";
	struct cmb_policy_doc *d = NULL;
	assert_int_equal(cmb_map_policy_doc_parse(evil, strlen(evil), &d), CMB_EPROTO);
	assert_null(d);
	assert_string_equal(cmb_error_last(), "policy document carries a DTD (refused: no DTDs, no entities)");
	static const char other[] = "<cmbridgePolicy xmlns=\"urn:other\" tenantPolicyId=\"p\" version=\"1\" contentHash=\"h\"/>";
	assert_int_equal(cmb_map_policy_doc_parse(other, strlen(other), &d), CMB_EPROTO);
	assert_int_equal(cmb_map_policy_doc_parse("<a", 2, &d), CMB_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(catalog_coverage_and_consistency),
		cmocka_unit_test(edr_full_document),
		cmocka_unit_test(antivirus_whole),
		cmocka_unit_test(windows_security_whole),
		cmocka_unit_test(firewall_profiles_and_rules),
		cmocka_unit_test(asr_rules_whole),
		cmocka_unit_test(same_content_same_bytes),
		cmocka_unit_test(listing_page),
		cmocka_unit_test(rejected_one_reason_per_setting),
		cmocka_unit_test(rejected_untargetable_collection),
		cmocka_unit_test(rejected_malformed_at_depth_3),
		cmocka_unit_test(rejected_paged_settings),
		cmocka_unit_test(rejected_group_rules),
		cmocka_unit_test(not_for_connector_ignored),
		cmocka_unit_test(conflicts_and_merges),
		cmocka_unit_test(hostile_bodies),
		cmocka_unit_test(document_parse_refuses_dtd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
