/*
 * site_device.c - life cycle of one site device record.
 *
 * "Absent" must be distinguishable from false/0 everywhere (the mapping
 * rules differ), so init sets every tri-state to -1 rather than zero.
 */
#include "mapping/site_device.h"

#include <stdlib.h>
#include <string.h>

void cmb_site_device_init(struct cmb_site_device *dev)
{
	memset(dev, 0, sizeof(*dev));
	dev->resource_id = 0;
	dev->client = -1;
	dev->obsolete = -1;
	dev->decommissioned = -1;
	dev->active = -1;

	dev->has_cdr = 0;
	dev->is_client = -1;
	dev->is_active = -1;
	dev->is_blocked = -1;
	dev->is_obsolete = -1;
	dev->client_active_status = -1;
	dev->client_check_pass = -1;

	dev->has_comgmt = 0;
	dev->mdm_enrolled = -1;
	dev->comgmt_policy_present = -1;
	dev->mdm_workloads = -1;
	dev->hybrid_aad_joined = -1;
	dev->aad_joined = -1;
}

void cmb_site_device_clear(struct cmb_site_device *dev)
{
	if (!dev)
		return;
	free(dev->name);
	free(dev->sms_unique_id);
	free(dev->hardware_id);
	free(dev->smbios_guid);
	free(dev->aad_device_id);
	free(dev->aad_tenant_id);
	free(dev->os_name_version);
	free(dev->build);
	free(dev->build_ext);
	free(dev->domain);
	free(dev->site_code);
	free(dev->sms_id);
	free(dev->client_version);
	free(dev->last_policy_request);
	free(dev->last_active_time);
	free(dev->device_os);
	free(dev->device_os_build);
	free(dev->manufacturer);
	free(dev->model);
	free(dev->serial_number);
	cmb_site_device_init(dev);
}
