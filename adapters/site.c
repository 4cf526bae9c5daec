/*
 * site.c - the list of site adapters, looked up by the [site] adapter name.
 */
#include "site.h"

#include <string.h>

static const struct cmb_site_adapter *const adapters[] = {
	&cmb_site_adminservice,
};

const struct cmb_site_adapter *cmb_site_adapter_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(adapters) / sizeof(adapters[0]); i++)
		if (strcmp(adapters[i]->name, name) == 0)
			return adapters[i];
	return NULL;
}
