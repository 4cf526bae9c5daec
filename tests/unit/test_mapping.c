/*
 * test_mapping.c - site device -> tenant record, compared as whole strings.
 *
 * Each case starts from one fully populated ConfigMgr client, changes what
 * it is about, and states the exact record (or skip/quarantine reason) it
 * must produce. The expected JSON is the contract of docs/mapping.md; a
 * change in it is a change in what every tenant sees, and in every hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "connector/base/util.h"
#include "mapping/device.h"
#include "mapping/site_device.h"

#define R "\xef\xbf\xbd" /* U+FFFD */

static void set(char **field, const char *value)
{
	free(*field);
	*field = value ? xstrdup(value) : NULL;
}

/* A healthy, active ConfigMgr client that is not co-managed. */
static void base(struct cmb_site_device *d)
{
	cmb_site_device_init(d);
	d->resource_id = 16777220;
	set(&d->name, "PC-0001");
	set(&d->sms_unique_id, "GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42");
	set(&d->hardware_id, "2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E");
	set(&d->smbios_guid, "4C4C4544-0042-3510-8052-B7C04F4B3732");
	set(&d->os_name_version, "Microsoft Windows NT Workstation 10.0");
	set(&d->build, "10.0.22631");
	set(&d->build_ext, "10.0.22631.4460");
	set(&d->domain, "CONTOSO");
	d->client = 1;
	d->obsolete = 0;
	d->decommissioned = 0;
	d->active = 1;

	d->has_cdr = 1;
	set(&d->site_code, "PS1");
	set(&d->sms_id, "GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42");
	d->is_client = 1;
	d->is_active = 1;
	d->is_blocked = 0;
	d->is_obsolete = 0;
	set(&d->client_version, "5.00.9128.1007");
	d->client_active_status = 1;
	d->client_check_pass = 1;
	set(&d->last_policy_request, "2026-11-28T09:15:02Z");
	set(&d->last_active_time, "2026-11-28T09:20:11Z");
	set(&d->device_os, "Microsoft Windows NT Workstation 10.0");
	set(&d->device_os_build, "10.0.22631.4460");

	set(&d->manufacturer, "Dell Inc.");
	set(&d->model, "Latitude 7440");
	set(&d->serial_number, "7XK2Q83");
}

/* Co-managed (MDM enrolled, co-management policy applied), hybrid joined. */
static void comanaged(struct cmb_site_device *d, int64_t workloads)
{
	d->has_comgmt = 1;
	d->mdm_enrolled = 1;
	d->comgmt_policy_present = 1;
	d->mdm_workloads = workloads;
	d->hybrid_aad_joined = 1;
	d->aad_joined = 0;
	set(&d->aad_device_id, "6A1D2C3B-4E5F-4071-8293-A4B5C6D7E8F9");
	set(&d->aad_tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47");
}

/* ---- the cases ---------------------------------------------------------- */

static void c_plain(struct cmb_site_device *d) { (void)d; }
static void c_wl_2(struct cmb_site_device *d) { comanaged(d, 1 | 2); }
static void c_wl_4(struct cmb_site_device *d) { comanaged(d, 1 | 4); }
static void c_wl_8(struct cmb_site_device *d) { comanaged(d, 1 | 8); }
static void c_wl_16(struct cmb_site_device *d) { comanaged(d, 1 | 16); }
static void c_wl_32(struct cmb_site_device *d) { comanaged(d, 1 | 32); }
static void c_wl_64(struct cmb_site_device *d) { comanaged(d, 1 | 64); }
static void c_wl_128(struct cmb_site_device *d) { comanaged(d, 1 | 128); }
static void c_wl_4096(struct cmb_site_device *d) { comanaged(d, 1 | 4096); }
static void c_wl_mix(struct cmb_site_device *d) { comanaged(d, 8193 | 2 | 16 | 32 | 4096 | 128); }
static void c_wl_1(struct cmb_site_device *d) { comanaged(d, 1); }
static void c_wl_8192(struct cmb_site_device *d) { comanaged(d, 8192); }
static void c_wl_unknown(struct cmb_site_device *d) { comanaged(d, 8193 | 4 | 256 | 1024); }
static void c_wl_absent(struct cmb_site_device *d) { comanaged(d, -1); }
static void c_not_comanaged_flags(struct cmb_site_device *d)
{
	/* Enrolled in MDM but no co-management policy: the flags mean nothing. */
	comanaged(d, 8193 | 2 | 8);
	d->comgmt_policy_present = 0;
}
static void c_join_entra(struct cmb_site_device *d)
{
	d->has_comgmt = 1;
	d->mdm_enrolled = 0;
	d->comgmt_policy_present = 0;
	d->aad_joined = 1;
	d->hybrid_aad_joined = 0;
	set(&d->aad_device_id, "{0E9B5A4C-7D3F-4A2B-9C1D-8E7F6A5B4C3D}");
}
static void c_join_none(struct cmb_site_device *d)
{
	d->has_comgmt = 1;
	d->mdm_enrolled = 0;
	d->comgmt_policy_present = 0;
	d->aad_joined = 0;
	d->hybrid_aad_joined = 0;
	set(&d->aad_device_id, "00000000-0000-0000-0000-000000000000");
}
static void c_inactive(struct cmb_site_device *d)
{
	d->client_active_status = 0;
	d->is_active = 0;
	d->active = 0;
}
static void c_check_failed(struct cmb_site_device *d) { d->client_check_pass = 2; }
static void c_check_no_results(struct cmb_site_device *d) { d->client_check_pass = 3; }
static void c_no_cdr(struct cmb_site_device *d)
{
	/* Discovered with a client, no SMS_CombinedDeviceResources row yet. */
	d->has_cdr = 0;
	set(&d->site_code, NULL);
	set(&d->sms_id, NULL);
	d->is_client = d->is_active = d->is_blocked = d->is_obsolete = -1;
	set(&d->client_version, NULL);
	d->client_active_status = d->client_check_pass = -1;
	set(&d->last_policy_request, NULL);
	set(&d->last_active_time, NULL);
	set(&d->device_os, NULL);
	set(&d->device_os_build, NULL);
	set(&d->manufacturer, NULL);
	set(&d->model, NULL);
	set(&d->serial_number, NULL);
	set(&d->build_ext, NULL);
}
static void c_blocked(struct cmb_site_device *d) { d->is_blocked = 1; }
static void c_obsolete(struct cmb_site_device *d) { d->obsolete = 1; }
static void c_cdr_obsolete(struct cmb_site_device *d) { d->is_obsolete = 1; }
static void c_decommissioned(struct cmb_site_device *d) { d->decommissioned = 1; }
static void c_no_client(struct cmb_site_device *d)
{
	d->client = 0;
	d->is_client = 0;
}
static void c_client_only_cdr(struct cmb_site_device *d) { d->client = -1; }
static void c_missing_name(struct cmb_site_device *d) { set(&d->name, NULL); }
static void c_empty_name(struct cmb_site_device *d) { set(&d->name, ""); }
static void c_resource_id_0(struct cmb_site_device *d) { d->resource_id = 0; }
static void c_bad_aad(struct cmb_site_device *d)
{
	comanaged(d, 8193);
	set(&d->aad_device_id, "6A1D2C3B-4E5F-4071-8293-A4B5C6D7E8FZ");
}
static void c_name_de(struct cmb_site_device *d) { set(&d->name, "B\xc3\xbcr\xc3\xb6-\xc3\x9c" "7"); }
static void c_name_ja(struct cmb_site_device *d) { set(&d->name, "\xe5\x96\xb6\xe6\xa5\xad-PC12"); }
static void c_name_invalid(struct cmb_site_device *d) { set(&d->name, "B\xfcro"); }
static void c_many_invalid(struct cmb_site_device *d)
{
	set(&d->model, "Lat\xc3itude");
	set(&d->serial_number, "\xff\xfe");
	set(&d->client_version, "5.00.\xed\xa0\x80");
}
static void c_name_255(struct cmb_site_device *d)
{
	char n[256];
	memset(n, 'A', 255);
	n[255] = '\0';
	set(&d->name, n);
}
static void c_name_256(struct cmb_site_device *d)
{
	char n[257];
	memset(n, 'A', 256);
	n[256] = '\0';
	set(&d->name, n);
}
static void c_name_grows(struct cmb_site_device *d)
{
	/* 86 invalid bytes: 86 bytes in, 258 bytes after repair. */
	char n[87];
	memset(n, 0xff, 86);
	n[86] = '\0';
	set(&d->name, n);
}
static void c_no_lpr(struct cmb_site_device *d) { set(&d->last_policy_request, NULL); }
static void c_bad_lpr(struct cmb_site_device *d) { set(&d->last_policy_request, "28/11/2026 09:15"); }
static void c_offset_lpr(struct cmb_site_device *d)
{
	set(&d->last_policy_request, "2026-11-28T10:15:02.1234567+01:00");
}
static void c_offset_neg_lpr(struct cmb_site_device *d)
{
	set(&d->last_policy_request, "2026-12-31T20:30:00.5-04:00");
}
static void c_os_fallbacks(struct cmb_site_device *d)
{
	set(&d->os_name_version, NULL);
	set(&d->device_os, "Microsoft Windows NT Server 10.0");
	set(&d->build_ext, NULL);
	set(&d->device_os_build, "10.0.20348.2849");
}
static void c_os_build_only(struct cmb_site_device *d)
{
	set(&d->build_ext, "");
	set(&d->device_os_build, NULL);
}
static void c_os_other(struct cmb_site_device *d)
{
	set(&d->os_name_version, "macOS 14.5");
	set(&d->device_os, NULL);
	set(&d->build_ext, NULL);
	set(&d->device_os_build, NULL);
	set(&d->build, NULL);
}
static void c_os_none(struct cmb_site_device *d)
{
	set(&d->os_name_version, NULL);
	set(&d->device_os, NULL);
}
static void c_ids_fallback(struct cmb_site_device *d)
{
	set(&d->sms_unique_id, NULL);
	set(&d->sms_id, "GUID:0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0");
	set(&d->hardware_id, NULL);
	set(&d->smbios_guid, NULL);
}
static void c_json_escapes(struct cmb_site_device *d)
{
	set(&d->model, "Model \"X\"\\\t/1\x01");
}

struct map_case {
	const char *what;
	void (*setup)(struct cmb_site_device *);
	int outcome;
	const char *expect; /* the JSON on CMB_MAP_OK, else the reason */
	unsigned repairs;
};

static const struct map_case map_cases[] = {
	{ "plain client", c_plain, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "compliance workload (2) with Intune", c_wl_2, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"unknown\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":true,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":3,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "resource access workload (4)", c_wl_4, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":true,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":5,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "device configuration workload (8)", c_wl_8, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":true,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":9,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Windows Update workload (16)", c_wl_16, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":true,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":17,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Endpoint Protection workload (32)", c_wl_32, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":true,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":33,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "client apps workload (64)", c_wl_64, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":true,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":65,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Office Click-to-Run workload (128)", c_wl_128, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":true,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":129,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Endpoint Protection workload (4096)", c_wl_4096, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":true,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":4097,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "mixed workloads", c_wl_mix, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"unknown\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":true,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":true,\"endpointProtection\":true,\"modernApps\":false,\"officeApps\":true,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":12467,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "co-management configured only (1)", c_wl_1, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":1,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "co-management configured only (8192)", c_wl_8192, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":8192,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "unknown workload bits kept", c_wl_unknown, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":true,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":9477,\"unknownWorkloadBits\":1280,\"utf8Repairs\":0}}",
	  0 },
	{ "co-managed, flags absent", c_wl_absent, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClientMdm\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"windowsCoManagement\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "flags without co-management policy", c_not_comanaged_flags, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":\"6a1d2c3b-4e5f-4071-8293-a4b5c6d7e8f9\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"hybridAzureADJoined\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\",\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":8203,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Entra joined, braces and upper case GUID", c_join_entra, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":\"0e9b5a4c-7d3f-4a2b-9c1d-8e7f6a5b4c3d\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"azureADJoined\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "not joined, nil GUID", c_join_none, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "inactive client", c_inactive, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"communicationError\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "client check failed", c_check_failed, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"installFailed\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "client check no results", c_check_no_results, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"installed\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "no SMS_CombinedDeviceResources row", c_no_cdr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631\",\"serialNumber\":null,\"manufacturer\":null,\"model\":null,\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"unknown\",\"errorCode\":0,\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":null,\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "blocked", c_blocked, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":true}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "client only in SMS_CombinedDeviceResources", c_client_only_cdr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "obsolete", c_obsolete, CMB_MAP_SKIP,
	  "obsolete (SMS_R_System.Obsolete or SMS_CombinedDeviceResources.IsObsolete)",
	  0 },
	{ "obsolete in SMS_CombinedDeviceResources", c_cdr_obsolete, CMB_MAP_SKIP,
	  "obsolete (SMS_R_System.Obsolete or SMS_CombinedDeviceResources.IsObsolete)",
	  0 },
	{ "decommissioned", c_decommissioned, CMB_MAP_SKIP,
	  "decommissioned (SMS_R_System.Decommissioned)",
	  0 },
	{ "no client", c_no_client, CMB_MAP_SKIP,
	  "no ConfigMgr client (SMS_R_System.Client is not 1 and SMS_CombinedDeviceResources.IsClient is not true)",
	  0 },
	{ "missing name", c_missing_name, CMB_MAP_QUARANTINE,
	  "SMS_R_System.Name is missing or empty",
	  0 },
	{ "empty name", c_empty_name, CMB_MAP_QUARANTINE,
	  "SMS_R_System.Name is missing or empty",
	  0 },
	{ "ResourceID 0", c_resource_id_0, CMB_MAP_QUARANTINE,
	  "SMS_R_System.ResourceID is 0",
	  0 },
	{ "AADDeviceID not a GUID", c_bad_aad, CMB_MAP_QUARANTINE,
	  "SMS_R_System.AADDeviceID is not a GUID (36 bytes)",
	  0 },
	{ "German name", c_name_de, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"B\xc3\xbcr\xc3\xb6-\xc3\x9c" "7\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "Japanese name", c_name_ja, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"\xe5\x96\xb6\xe6\xa5\xad-PC12\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "invalid UTF-8 name", c_name_invalid, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"B" R "ro\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":1}}",
	  1 },
	{ "invalid UTF-8 in three fields", c_many_invalid, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"" R R "\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Lat" R "itude\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00." R R R "\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":6}}",
	  6 },
	{ "name of 255 bytes", c_name_255, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "name of 256 bytes", c_name_256, CMB_MAP_QUARANTINE,
	  "SMS_R_System.Name is 256 bytes long (limit 255)",
	  0 },
	{ "name of 258 bytes after repair", c_name_grows, CMB_MAP_QUARANTINE,
	  "SMS_R_System.Name is 258 bytes long (limit 255)",
	  0 },
	{ "no LastPolicyRequest", c_no_lpr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "unparseable LastPolicyRequest", c_bad_lpr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"0001-01-01T00:00:00Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "LastPolicyRequest with offset and fraction", c_offset_lpr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "LastPolicyRequest with negative offset, crossing the year", c_offset_neg_lpr, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2027-01-01T00:30:00Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2027-01-01T00:30:00Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "OS from DeviceOS and DeviceOSBuild", c_os_fallbacks, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.20348.2849\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "osVersion from Build", c_os_build_only, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "non-Windows OS, no build", c_os_other, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"macOS 14.5\",\"osVersion\":null,\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "no OS reported", c_os_none, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":null,\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "identifier fallbacks", c_ids_fallback, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Latitude 7440\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":null,\"smbiosGuid\":null,\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
	{ "JSON escapes", c_json_escapes, CMB_MAP_OK,
	  "{\"key\":\"PS1:16777220\","
	  "\"managedDevice\":{\"deviceName\":\"PC-0001\",\"managementAgent\":\"configurationManagerClient\",\"azureADDeviceId\":null,\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.4460\",\"serialNumber\":\"7XK2Q83\",\"manufacturer\":\"Dell Inc.\",\"model\":\"Model \\\"X\\\"\\\\\\t/1\\u0001\",\"joinType\":\"unknown\",\"deviceEnrollmentType\":\"unknown\",\"complianceState\":\"configManager\",\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\","
	  "\"configurationManagerClientEnabledFeatures\":{\"compliancePolicy\":false,\"resourceAccess\":false,\"deviceConfiguration\":false,\"windowsUpdateForBusiness\":false,\"endpointProtection\":false,\"modernApps\":false,\"officeApps\":false,\"inventory\":false},"
	  "\"configurationManagerClientHealthState\":{\"state\":\"healthy\",\"errorCode\":0,\"lastSyncDateTime\":\"2026-11-28T09:15:02Z\"},"
	  "\"configurationManagerClientInformation\":{\"clientIdentifier\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"isBlocked\":false}},"
	  "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220,\"smsId\":\"GUID:2F3A9C4E-1B7D-4E21-9A60-0C5B8E7D1F42\",\"clientVersion\":\"5.00.9128.1007\",\"hardwareId\":\"2:6C1C8E4B0F1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E\",\"smbiosGuid\":\"4C4C4544-0042-3510-8052-B7C04F4B3732\",\"aadTenantId\":null,\"collectionIds\":[\"PS100012\",\"SMS00001\"],\"comanagementWorkloads\":null,\"unknownWorkloadBits\":0,\"utf8Repairs\":0}}",
	  0 },
};

/* sha256 of map_cases[0].expect, computed outside cmbridge (Python hashlib). */
#define PLAIN_SHA256 "64f8a8da1ba5273e4db99005836fcf30455636cefd3327b86c3237d598383a6a"
/*
 * The record digest of map_cases[0] (docs/mapping.md §7), computed outside
 * cmbridge from the canonical form the doc gives (Python hashlib and
 * struct.pack('<Q')): the stable and the full hash.
 */
#define PLAIN_DIGEST_STABLE "bad0852d1a150cc1281bd8612652bd02f9cdaac9a1f2178ff26e7e3ff3fac895"
#define PLAIN_DIGEST "aba4f2286caf50f7476d21384556c7000cd3b91fd2b2d574c534c68ffe215fbf"

/* ---- runners ------------------------------------------------------------ */

static const char *const collections[] = { "SMS00001", "PS100012" };

static const struct cmb_map_ctx ctx = {
	.site_code = "PS1",
	.collection_ids = collections,
	.n_collection_ids = 2,
};

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

#define N_CASES (sizeof(map_cases) / sizeof(map_cases[0]))

static void test_table(void **state)
{
	(void)state;
	int failed = 0;
	char hashes[N_CASES][65];
	const char *jsons[N_CASES] = { 0 };

	for (size_t i = 0; i < N_CASES; i++) {
		const struct map_case *c = &map_cases[i];
		struct cmb_site_device dev;
		struct cmb_tenant_record rec;
		char *reason = (char *)"unset";

		base(&dev);
		c->setup(&dev);
		int rc = cmb_map_device(&ctx, &dev, &rec, &reason);
		const char *got = rc == CMB_MAP_OK ? rec.json : reason;
		if (rc != c->outcome || !got || !c->expect || strcmp(got, c->expect) != 0 ||
		    (rc == CMB_MAP_OK && rec.utf8_repairs != c->repairs)) {
			print_error("case '%s': outcome %d (want %d), repairs %u (want %u)\n"
				    "  got:  %s\n  want: %s\n",
				    c->what, rc, c->outcome, rec.utf8_repairs, c->repairs,
				    got ? got : "(null)", c->expect ? c->expect : "(null)");
			failed++;
		}
		if (rc == CMB_MAP_OK) {
			char want_hash[65];
			char *key = xasprintf("PS1:%u", dev.resource_id);
			assert_null(reason);
			assert_string_equal(rec.key, key);
			assert_int_equal(rec.json_len, strlen(rec.json));
			sha256_hex(rec.json, rec.json_len, want_hash);
			assert_string_equal(rec.legacy_hash, want_hash);
			/* Mapped without the JSON: the same key, digests and counts. */
			struct cmb_tenant_record d;
			assert_int_equal(cmb_map_device_digest(&ctx, &dev, &d, NULL), CMB_MAP_OK);
			assert_null(d.json);
			assert_string_equal(d.key, rec.key);
			assert_string_equal(d.hash, rec.hash);
			assert_string_equal(d.stable_hash, rec.stable_hash);
			assert_string_equal(d.legacy_hash, "");
			assert_int_equal(d.utf8_repairs, rec.utf8_repairs);
			assert_int_equal(d.no_entra_id, rec.no_entra_id);
			assert_int_equal(d.unknown_workload_bits, rec.unknown_workload_bits);
			/* ...and its JSON written afterwards is the record's, byte for byte. */
			assert_int_equal(cmb_map_device_json(&ctx, &dev, &d), CMB_MAP_OK);
			assert_string_equal(d.json, rec.json);
			assert_string_equal(d.legacy_hash, rec.legacy_hash);
			assert_string_equal(d.legacy_stable_hash, rec.legacy_stable_hash);
			cmb_tenant_record_clear(&d);
			memcpy(hashes[i], rec.hash, 65);
			jsons[i] = c->expect;
			free(key);
		} else {
			/* Nothing is left in rec for the caller to free or upload. */
			assert_null(rec.key);
			assert_null(rec.json);
			assert_int_equal(rec.json_len, 0);
		}
		free(rc == CMB_MAP_OK ? NULL : reason);
		cmb_tenant_record_clear(&rec);
		cmb_site_device_clear(&dev);
	}
	assert_int_equal(failed, 0);
	/* The digest says what the JSON says: two cases share one exactly when they share the bytes. */
	for (size_t i = 0; i < N_CASES; i++)
		for (size_t j = i + 1; j < N_CASES; j++)
			if (jsons[i] && jsons[j]) {
				int same_json = strcmp(jsons[i], jsons[j]) == 0;
				if (same_json != (strcmp(hashes[i], hashes[j]) == 0)) {
					print_error("cases '%s' and '%s': JSON %s, digest %s\n", map_cases[i].what,
						    map_cases[j].what, same_json ? "equal" : "differs",
						    same_json ? "differs" : "equal");
					failed++;
				}
			}
	assert_int_equal(failed, 0);
}

/*
 * The reference record's JSON and its digest are pinned together. The
 * digest is taken from the mapped values, not the bytes: when this fails on
 * PLAIN_SHA256 alone, what gen_record writes changed for the same values,
 * and CMB_MAP_RECORD_VERSION in mapping/device.c must be bumped (then both
 * digests here change), or tenants would keep the old records. Any change of
 * the digest re-uploads every device once.
 */
static void test_hash_pinned(void **state)
{
	(void)state;
	struct cmb_site_device dev;
	struct cmb_tenant_record rec;
	char *reason;

	base(&dev);
	assert_int_equal(cmb_map_device(&ctx, &dev, &rec, &reason), CMB_MAP_OK);
	assert_string_equal(rec.legacy_hash, PLAIN_SHA256);
	assert_string_equal(rec.stable_hash, PLAIN_DIGEST_STABLE);
	assert_string_equal(rec.hash, PLAIN_DIGEST);
	cmb_tenant_record_clear(&rec);
	cmb_site_device_clear(&dev);
}

static void test_hash_changes(void **state)
{
	(void)state;
	struct cmb_site_device dev;
	struct cmb_tenant_record a, b, c;
	char *reason;

	base(&dev);
	assert_int_equal(cmb_map_device(&ctx, &dev, &a, &reason), CMB_MAP_OK);
	/* Same input, same bytes. */
	assert_int_equal(cmb_map_device(&ctx, &dev, &b, &reason), CMB_MAP_OK);
	assert_string_equal(a.json, b.json);
	assert_string_equal(a.hash, b.hash);
	cmb_tenant_record_clear(&b);

	/* The order collections were read in is not a change; a new one is. */
	const char *const reordered[] = { "PS100012", "SMS00001", "PS100012" };
	struct cmb_map_ctx ctx2 = { "PS1", reordered, 3 };
	assert_int_equal(cmb_map_device(&ctx2, &dev, &b, &reason), CMB_MAP_OK);
	assert_string_equal(a.hash, b.hash);
	cmb_tenant_record_clear(&b);
	const char *const more[] = { "PS100012", "SMS00001", "PS100099" };
	struct cmb_map_ctx ctx3 = { "PS1", more, 3 };
	assert_int_equal(cmb_map_device(&ctx3, &dev, &b, &reason), CMB_MAP_OK);
	assert_string_not_equal(a.hash, b.hash);
	cmb_tenant_record_clear(&b);

	/* One field of each kind. */
	set(&dev.model, "Latitude 7450");
	assert_int_equal(cmb_map_device(&ctx, &dev, &b, &reason), CMB_MAP_OK);
	assert_string_not_equal(a.hash, b.hash);
	cmb_tenant_record_clear(&b);
	set(&dev.model, "Latitude 7440");
	dev.is_blocked = 1;
	assert_int_equal(cmb_map_device(&ctx, &dev, &b, &reason), CMB_MAP_OK);
	assert_string_not_equal(a.hash, b.hash);
	dev.is_blocked = 0;
	set(&dev.last_policy_request, "2026-11-28T10:15:02Z");
	assert_int_equal(cmb_map_device(&ctx, &dev, &c, &reason), CMB_MAP_OK);
	assert_string_not_equal(a.hash, c.hash);
	assert_string_not_equal(b.hash, c.hash);
	/* Back to the original: back to the original hash. */
	set(&dev.last_policy_request, "2026-11-28T09:15:02Z");
	cmb_tenant_record_clear(&c);
	assert_int_equal(cmb_map_device(&ctx, &dev, &c, &reason), CMB_MAP_OK);
	assert_string_equal(a.hash, c.hash);

	cmb_tenant_record_clear(&a);
	cmb_tenant_record_clear(&b);
	cmb_tenant_record_clear(&c);
	cmb_site_device_clear(&dev);
}

/* What a record says of its device, for the metrics: the enums match the JSON it carries. */
static void test_tally(void **state)
{
	(void)state;
	struct cmb_site_device dev;
	struct cmb_tenant_record rec;
	struct cmb_map_ctx ps1 = { "PS1", NULL, 0 };
	struct cmb_map_tally t = { 0 };

	base(&dev);
	assert_int_equal(cmb_map_device(&ps1, &dev, &rec, NULL), CMB_MAP_OK);
	assert_int_equal(rec.agent, CMB_MAP_AGENT_CLIENT);
	assert_int_equal(rec.health, CMB_MAP_HEALTH_HEALTHY);
	assert_int_equal(rec.join, CMB_MAP_JOIN_UNKNOWN);
	cmb_map_tally_add(&t, &rec);
	cmb_tenant_record_clear(&rec);

	comanaged(&dev, 1);
	dev.client_active_status = 0;
	assert_int_equal(cmb_map_device(&ps1, &dev, &rec, NULL), CMB_MAP_OK);
	assert_int_equal(rec.agent, CMB_MAP_AGENT_CLIENT_MDM);
	assert_int_equal(rec.health, CMB_MAP_HEALTH_COMMUNICATION_ERROR);
	assert_int_equal(rec.join, CMB_MAP_JOIN_HYBRID);
	assert_non_null(strstr(rec.json, "\"managementAgent\":\"configurationManagerClientMdm\""));
	assert_non_null(strstr(rec.json, "\"joinType\":\"hybridAzureADJoined\""));
	assert_non_null(strstr(rec.json, "{\"state\":\"communicationError\","));
	cmb_map_tally_add(&t, &rec);
	cmb_map_tally_add(&t, &rec);
	cmb_tenant_record_clear(&rec);

	assert_int_equal(t.agent[CMB_MAP_AGENT_CLIENT], 1);
	assert_int_equal(t.agent[CMB_MAP_AGENT_CLIENT_MDM], 2);
	assert_int_equal(t.health[CMB_MAP_HEALTH_HEALTHY], 1);
	assert_int_equal(t.health[CMB_MAP_HEALTH_COMMUNICATION_ERROR], 2);
	assert_int_equal(t.join[CMB_MAP_JOIN_UNKNOWN], 1);
	assert_int_equal(t.join[CMB_MAP_JOIN_HYBRID], 2);
	assert_int_equal(t.join[CMB_MAP_JOIN_AZURE_AD], 0);
	assert_string_equal(cmb_map_health_names[CMB_MAP_HEALTH_INSTALL_FAILED], "installFailed");
	assert_string_equal(cmb_map_join_names[CMB_MAP_JOIN_AZURE_AD], "azureADJoined");
	assert_string_equal(cmb_map_agent_names[CMB_MAP_AGENT_CLIENT], "configurationManagerClient");
	cmb_site_device_clear(&dev);
}

static void test_context(void **state)
{
	(void)state;
	struct cmb_site_device dev;
	struct cmb_tenant_record rec;
	char *reason;

	base(&dev);
	struct cmb_map_ctx none = { NULL, NULL, 0 };
	assert_int_equal(cmb_map_device(&none, &dev, &rec, &reason), CMB_MAP_QUARANTINE);
	assert_string_equal(reason, "site code missing from the mapping context (or not alphanumeric)");
	assert_null(rec.json);
	free(reason);
	struct cmb_map_ctx empty = { "", NULL, 0 };
	assert_int_equal(cmb_map_device(&empty, &dev, &rec, &reason), CMB_MAP_QUARANTINE);
	free(reason);
	struct cmb_map_ctx colon = { "PS1:2", NULL, 0 };
	assert_int_equal(cmb_map_device(&colon, &dev, &rec, &reason), CMB_MAP_QUARANTINE);
	free(reason);
	/* Reason is optional. */
	assert_int_equal(cmb_map_device(&none, &dev, &rec, NULL), CMB_MAP_QUARANTINE);

	/* No collections: an empty array; the key uses the context's site code. */
	struct cmb_map_ctx lab = { "LAB", NULL, 0 };
	dev.resource_id = 1;
	assert_int_equal(cmb_map_device(&lab, &dev, &rec, &reason), CMB_MAP_OK);
	assert_null(reason);
	assert_string_equal(rec.key, "LAB:1");
	assert_non_null(strstr(rec.json, "{\"key\":\"LAB:1\",\"managedDevice\":{"));
	assert_non_null(strstr(rec.json, "\"configurationManager\":{\"siteCode\":\"LAB\",\"resourceId\":1,"));
	assert_non_null(strstr(rec.json, "\"collectionIds\":[],"));
	cmb_tenant_record_clear(&rec);

	/* The largest ResourceID. */
	dev.resource_id = UINT32_MAX;
	assert_int_equal(cmb_map_device(&lab, &dev, &rec, NULL), CMB_MAP_OK);
	assert_string_equal(rec.key, "LAB:4294967295");
	assert_non_null(strstr(rec.json, "\"resourceId\":4294967295,"));
	cmb_tenant_record_clear(&rec);
	cmb_site_device_clear(&dev);

	char *key = cmb_map_device_key("PS1", 16777220);
	assert_string_equal(key, "PS1:16777220");
	free(key);
	cmb_tenant_record_clear(NULL);
}

static void test_datetime(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} t[] = {
		{ "2026-11-28T09:15:02Z", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28t09:15:02z", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T09:15:02", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T09:15:02.9999999Z", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T09:15:02.1+00:00", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T09:15:02-00:00", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T10:15:02+01:00", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T01:15:02-08:30", 0, "2026-11-28T09:45:02Z" },
		{ "2026-01-01T00:30:00+01:00", 0, "2025-12-31T23:30:00Z" },
		{ "2026-12-31T23:30:00-01:00", 0, "2027-01-01T00:30:00Z" },
		{ "2024-02-29T12:00:00Z", 0, "2024-02-29T12:00:00Z" },
		{ "2024-03-01T00:00:00+00:01", 0, "2024-02-29T23:59:00Z" },
		{ "2000-02-29T00:00:00Z", 0, "2000-02-29T00:00:00Z" },
		{ "2016-12-31T23:59:60Z", 0, "2017-01-01T00:00:00Z" },
		{ "1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z" },
		{ "1969-12-31T23:59:59Z", 0, "1969-12-31T23:59:59Z" },
		{ "0001-01-01T00:00:00Z", 0, "0001-01-01T00:00:00Z" },
		{ "0001-01-01T01:00:00+01:00", 0, "0001-01-01T00:00:00Z" },
		{ "9999-12-31T23:59:59Z", 0, "9999-12-31T23:59:59Z" },
		{ "0001-01-01T00:30:00+01:00", -1, "0001-01-01T00:00:00Z" },
		{ "9999-12-31T23:59:59-00:01", -1, "0001-01-01T00:00:00Z" },
		{ "0000-01-01T00:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2023-02-29T12:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "1900-02-29T12:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-04-31T12:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-13-01T00:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T24:00:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T09:60:00Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T09:15:61Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T09:15:02+0100", 0, "2026-11-28T08:15:02Z" },
		{ "2026-11-28T09:15:02+24:00", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T09:15:02.Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28T09:15:02Zjunk", -1, "0001-01-01T00:00:00Z" },
		{ " 2026-11-28T09:15:02Z", -1, "0001-01-01T00:00:00Z" },
		{ "+2026-11-28T09:15:02Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28 09:15:02Z", 0, "2026-11-28T09:15:02Z" },
		{ "2026-11-28T09:15Z", -1, "0001-01-01T00:00:00Z" },
		{ "2026-11-28", -1, "0001-01-01T00:00:00Z" },
		{ "20261128T091502Z", -1, "0001-01-01T00:00:00Z" },
		{ "", -1, "0001-01-01T00:00:00Z" },
		{ NULL, -1, "0001-01-01T00:00:00Z" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char out[21];
		memset(out, 'x', sizeof(out));
		int rc = cmb_map_datetime(t[i].in, out);
		if (rc != t[i].rc || strcmp(out, t[i].out) != 0) {
			print_error("'%s': rc %d (want %d), '%s' (want '%s')\n",
				    t[i].in ? t[i].in : "(null)", rc, t[i].rc, out, t[i].out);
			fail();
		}
	}
}

static void test_site_device_init_clear(void **state)
{
	(void)state;
	struct cmb_site_device d;
	memset(&d, 0x5a, sizeof(d));
	cmb_site_device_init(&d);
	assert_null(d.name);
	assert_int_equal(d.client, -1);
	assert_int_equal(d.is_client, -1);
	assert_int_equal(d.client_check_pass, -1);
	assert_int_equal(d.mdm_workloads, -1);
	assert_int_equal(d.has_cdr, 0);
	assert_int_equal(d.has_comgmt, 0);
	base(&d);
	cmb_site_device_clear(&d);
	assert_null(d.name);
	assert_null(d.serial_number);
	assert_int_equal(d.client, -1);
	cmb_site_device_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_hash_pinned),
		cmocka_unit_test(test_hash_changes),
		cmocka_unit_test(test_context),
		cmocka_unit_test(test_tally),
		cmocka_unit_test(test_datetime),
		cmocka_unit_test(test_site_device_init_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
