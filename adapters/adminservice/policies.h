/*
 * policies.h - the site's policy document store (docs/wire-format.md
 * §9.2) behind the site table's policy_* members (adapters/site.h), and
 * the members of a collection.
 */
#ifndef CMB_AS_POLICIES_H
#define CMB_AS_POLICIES_H

#include "adapters/site.h"

/* Over the connection of the device reader st (adminservice.c). */
int cmb_as_policies_open(void **out, void *st);
void cmb_as_policies_close(void *pst);
int cmb_as_policy_put(void *pst, const char *id, const char *xml, size_t len, struct cmb_site_policy_put *out);
int cmb_as_policy_delete(void *pst, const char *id, int *existed);
int cmb_as_policy_list(void *pst, struct cmb_site_policy_entry **out, size_t *n);
int cmb_as_policy_compliance(void *pst, const char *id, struct cmb_site_policy_compliance *out);
int cmb_as_collection_members(void *pst, const char *collection_id, uint32_t **ids, size_t *n);

#endif
