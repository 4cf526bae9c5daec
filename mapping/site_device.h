/*
 * site_device.h - one ConfigMgr device as the site reports it.
 *
 * The site adapter fills this from the AdminService classes joined by
 * their keys (see docs/wire-format.md §1); mapping reads it. Strings are the
 * raw bytes the site sent (they may be invalid UTF-8) or NULL when the site
 * did not report the property. Tri-state booleans are -1 when absent.
 */
#ifndef CMB_SITE_DEVICE_H
#define CMB_SITE_DEVICE_H

#include <stdint.h>

struct cmb_site_device {
	uint32_t resource_id;

	/* SMS_R_System (always present: the join is driven by it) */
	char *name;                 /* Name */
	char *sms_unique_id;        /* SMSUniqueIdentifier, "GUID:..." */
	char *hardware_id;          /* HardwareID */
	char *smbios_guid;          /* SMBIOSGUID */
	char *aad_device_id;        /* AADDeviceID */
	char *aad_tenant_id;        /* AADTenantID */
	char *os_name_version;      /* OperatingSystemNameandVersion */
	char *build;                /* Build, "10.0.22631" */
	char *build_ext;            /* BuildExt, "10.0.22631.4460" */
	char *domain;               /* ResourceDomainORWorkgroup */
	int client;                 /* Client (0/1) */
	int obsolete;               /* Obsolete (0/1) */
	int decommissioned;         /* Decommissioned (0/1) */
	int active;                 /* Active (0/1) */

	/* SMS_CombinedDeviceResources */
	int has_cdr;
	char *site_code;            /* SiteCode */
	char *sms_id;               /* SMSID */
	int is_client;              /* IsClient */
	int is_active;              /* IsActive */
	int is_blocked;             /* IsBlocked */
	int is_obsolete;            /* IsObsolete */
	char *client_version;       /* ClientVersion */
	int client_active_status;   /* ClientActiveStatus: 1 active, 0 inactive, -1 absent */
	int client_check_pass;      /* ClientCheckPass: 1 passed, 2 failed, 3 no results, -1 absent */
	char *last_policy_request;  /* LastPolicyRequest, ISO 8601 */
	char *last_active_time;     /* LastActiveTime, ISO 8601 */
	char *device_os;            /* DeviceOS */
	char *device_os_build;      /* DeviceOSBuild */

	/* SMS_Client_ComanagementState */
	int has_comgmt;
	int mdm_enrolled;           /* MDMEnrolled */
	int comgmt_policy_present;  /* ComgmtPolicyPresent */
	int64_t mdm_workloads;      /* MDMWorkloads flags, -1 absent */
	int hybrid_aad_joined;      /* HybridAADJoined */
	int aad_joined;             /* AADJoined */

	/* SMS_G_System_COMPUTER_SYSTEM and SMS_G_System_PC_BIOS (hardware inventory) */
	char *manufacturer;         /* COMPUTER_SYSTEM.Manufacturer */
	char *model;                /* COMPUTER_SYSTEM.Model */
	char *serial_number;        /* PC_BIOS.SerialNumber */
};

/* Sets every field to its "absent" value (NULL, -1, has_* = 0). */
void cmb_site_device_init(struct cmb_site_device *dev);
/* Frees the strings and re-initialises; the struct itself is the caller's. */
void cmb_site_device_clear(struct cmb_site_device *dev);

#endif
