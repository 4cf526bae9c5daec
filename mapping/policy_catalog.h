/*
 * policy_catalog.h - lookups in the settings catalog (mapping/policy_catalog.def,
 * compiled into a table). Pure lookups over static data: no I/O, no state.
 */
#ifndef CMB_MAP_POLICY_CATALOG_H
#define CMB_MAP_POLICY_CATALOG_H

#include <stddef.h>

enum cmb_policy_family {
	CMB_PFAM_AV = 0,  /* Microsoft Defender Antivirus */
	CMB_PFAM_WSC = 1, /* Windows Security experience */
	CMB_PFAM_EDR = 2, /* Endpoint detection and response */
	CMB_PFAM_ASR = 3, /* Attack surface reduction rules */
	CMB_PFAM_FW = 4,  /* Windows Firewall (and its rules) */
};

enum cmb_policy_deftype {
	CMB_PDEF_CHOICE = 0,
	CMB_PDEF_INT = 1,
	CMB_PDEF_STRING = 2,
	CMB_PDEF_STRINGS = 3,
	CMB_PDEF_CHOICES_FLAGS = 4,
	CMB_PDEF_CHOICES_LIST = 5,
	CMB_PDEF_GROUP = 6,
	CMB_PDEF_GROUP_KV = 7,
	CMB_PDEF_SELECTOR = 8,
};

enum cmb_policy_mergekind {
	CMB_PMERGE_CONFLICT = 0,
	CMB_PMERGE_UNION = 1,
	CMB_PMERGE_STRICTEST = 2,
};

struct cmb_policy_def {
	enum cmb_policy_family family;
	const char *id;
	enum cmb_policy_deftype type;
	const char *csp;
	const char *parent;
	long long min, max;
	const char *options;
	enum cmb_policy_mergekind merge;
	const char *extra;
};

/* The entry for a settingDefinitionId (exact, as Graph spells it); NULL when not in the catalog. Static. */
const struct cmb_policy_def *cmb_map_policy_def(const char *id);

/* The whole table (static storage) and its length, in .def order. */
const struct cmb_policy_def *cmb_map_policy_defs(size_t *n);

/*
 * The value option id `option` (e.g. "<id>_1") stands for, written into out
 * (NUL-terminated; out_size >= 64 is enough for every catalog option).
 * Returns 0, or -1 when option is not one of def's options.
 */
int cmb_map_policy_option(const struct cmb_policy_def *def, const char *option, char *out, size_t out_size);

/* The option ids def allows, "a, b, c" (for reasons). Caller frees. */
char *cmb_map_policy_options_list(const struct cmb_policy_def *def);

/* "int", "bool" or "string": how a CSP value written for def looks. */
const char *cmb_map_policy_value_type(const struct cmb_policy_def *def, const char *value);

#endif
