/*
 * site.c - the list of site adapters, looked up by the [site] adapter name,
 * and what every adapter shares (clearing a collection).
 */
#include "adapters/site.h"

#include <stdlib.h>
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

void cmb_site_collection_clear(struct cmb_site_collection *c)
{
	if (!c)
		return;
	free(c->collection_id);
	free(c->name);
	free(c->comment);
	free(c->limit_to);
	free(c->last_change);
	free(c->hierarchy_id);
	free(c->hierarchy_name);
	memset(c, 0, sizeof(*c));
}
