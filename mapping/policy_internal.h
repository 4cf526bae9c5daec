/*
 * policy_internal.h - what mapping/policy*.c share and nothing else sees:
 * a validated policy flattened into the CSP nodes it writes ("items").
 * Pure: never does I/O.
 */
#ifndef CMB_MAP_POLICY_INTERNAL_H
#define CMB_MAP_POLICY_INTERNAL_H

#include "mapping/policy.h"
#include "mapping/policy_catalog.h"

#include <stddef.h>

struct cmb_policy_item {
	const struct cmb_policy_def *def;       /* the setting */
	char *csp;                              /* the node (a rule's child: with the rule id in it) */
	char *key;                              /* GROUP_KV children: the key ("GUID", threat level); else NULL */
	char *value;                            /* as written (STRINGS: joined) */
	const char *type;                       /* "int", "bool", "string" */
	char **set;                             /* STRINGS: the items (UNION: sorted, unique) */
	size_t n_set;
	const struct cmb_policy_def *group_def; /* GROUP children: the group (a firewall rule) */
	char *group_csp;                        /* its node, else NULL */
};

/*
 * Flattens a policy that validates into items, sorted by (csp, key).
 * Returns 0 with *out (*n items; free with cmb_policy_items_free()), or
 * CMB_EINVAL with cmb_error_set() when p does not validate.
 */
int cmb_policy_items(const struct cmb_policy *p, struct cmb_policy_item **out, size_t *n);
void cmb_policy_items_free(struct cmb_policy_item *v, size_t n);

/* Sorts strings in place (byte order) and drops duplicates; returns the new count. */
size_t cmb_policy_sort_unique(char **v, size_t n);

/* a==b for possibly NULL strings. */
int cmb_policy_streq(const char *a, const char *b);

#endif
