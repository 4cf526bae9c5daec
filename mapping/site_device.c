/*
 * site_device.c - life cycle of one site device record.
 *
 * "Absent" must be distinguishable from false/0 everywhere (the mapping
 * rules differ), so init sets every tri-state to -1 rather than zero.
 */
#include "mapping/site_device.h"

#include "connector/base/util.h"

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

/* Every string of the struct, once: clear and copy walk the same list. */
#define SITE_DEVICE_STRINGS(X) \
	X(name) X(sms_unique_id) X(hardware_id) X(smbios_guid) X(aad_device_id) X(aad_tenant_id) \
	X(os_name_version) X(build) X(build_ext) X(domain) X(site_code) X(sms_id) X(client_version) \
	X(last_policy_request) X(last_active_time) X(device_os) X(device_os_build) X(manufacturer) X(model) \
	X(serial_number)

void cmb_site_device_clear(struct cmb_site_device *dev)
{
	if (!dev)
		return;
#define FREE_STRING(f) free(dev->f);
	SITE_DEVICE_STRINGS(FREE_STRING)
#undef FREE_STRING
	cmb_site_device_init(dev);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void cmb_site_device_copy(struct cmb_site_device *dst, const struct cmb_site_device *src)
{
	*dst = *src;
#define COPY_STRING(f) dst->f = dup_or_null(src->f);
	SITE_DEVICE_STRINGS(COPY_STRING)
#undef COPY_STRING
}
