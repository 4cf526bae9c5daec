/*
 * site.c - the list of site adapters, looked up by the [site] adapter name,
 * and what every adapter shares (clearing a collection, a policy listing,
 * a compliance read).
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

void cmb_site_policy_entries_free(struct cmb_site_policy_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		free(e[i].id);
	free(e);
}

void cmb_site_policy_compliance_clear(struct cmb_site_policy_compliance *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_devices; i++) {
		for (size_t k = 0; k < c->devices[i].n_failing; k++)
			free(c->devices[i].failing[k]);
		free(c->devices[i].failing);
	}
	free(c->devices);
	free(c->collections);
	memset(c, 0, sizeof(*c));
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
