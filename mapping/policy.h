/*
 * policy.h - endpoint security policies from the tenant (Graph beta
 * deviceManagementConfigurationPolicy) mapped to what a ConfigMgr site
 * applies: parse, validate against the settings catalog, merge across the
 * policies that reach one collection, and the site's policy document
 * (docs/policies.md).
 *
 * Pure transforms: these functions never do I/O, never log and keep no
 * state between calls. Memory that comes back through an out-parameter is
 * the caller's and goes back through the matching _free() (all accept NULL).
 */
#ifndef CMB_MAP_POLICY_H
#define CMB_MAP_POLICY_H

#include <stddef.h>

/*
 * Limits, all in one place. A body over any of them is refused whole with
 * CMB_ETOOBIG before a model is built: a tenant's policy is far below each.
 */
#define CMB_POLICY_MAX_BODY (8u * 1024 * 1024)  /* bytes of one JSON body */
#define CMB_POLICY_MAX_JSON_DEPTH 64             /* JSON nesting ({ and [) */
#define CMB_POLICY_MAX_NESTING 8                 /* setting instances inside instances */
#define CMB_POLICY_MAX_INSTANCES 5000            /* setting instances in one policy, all levels */
#define CMB_POLICY_MAX_STRING 65536              /* bytes of one JSON string (an onboarding blob is ~10 KB) */
#define CMB_POLICY_MAX_ITEMS 1000                /* values in one collection value */
#define CMB_POLICY_MAX_ASSIGNMENTS 1000          /* assignments of one policy */
#define CMB_POLICY_MAX_LIST 10000                /* policies on one listing page */

/* A list of reasons (admin-readable strings), owned by whoever holds the list. */
struct cmb_policy_reasons {
	char **v;
	size_t n;
};
void cmb_map_policy_reasons_free(struct cmb_policy_reasons *r); /* frees the strings, not r */

/* ---- The model: the tree of setting instances as Graph sent it ---- */

enum cmb_policy_itype {
	CMB_PI_CHOICE = 0,      /* choiceSettingValue: option id + child instances */
	CMB_PI_CHOICE_COLL = 1, /* choiceSettingCollectionValue: option ids */
	CMB_PI_INT = 2,         /* simpleSettingValue, IntegerSettingValue */
	CMB_PI_STRING = 3,      /* simpleSettingValue, StringSettingValue (and SecretSettingValue) */
	CMB_PI_COLL = 4,        /* simpleSettingCollectionValue: values as strings */
	CMB_PI_GROUP_COLL = 5,  /* groupSettingCollectionValue: groups of child instances */
};

struct cmb_policy_instance;

struct cmb_policy_group {
	struct cmb_policy_instance *children;
	size_t n_children;
};

struct cmb_policy_instance {
	char *definition_id;
	char *path;   /* where it was in the body, e.g. "settings[3]/.../children[1]" */
	enum cmb_policy_itype type;
	char *choice; /* CHOICE: the option id */
	long long ival; /* INT */
	char *sval;   /* STRING */
	char **items; /* COLL: the values (integers in decimal); CHOICE_COLL: option ids */
	size_t n_items;
	struct cmb_policy_instance *children; /* CHOICE: children of the chosen option */
	size_t n_children;
	struct cmb_policy_group *groups; /* GROUP_COLL */
	size_t n_groups;
};

struct cmb_policy {
	char *id;
	char *name;            /* may be NULL */
	char *description;     /* may be NULL */
	char *platforms;       /* as sent, e.g. "windows10" */
	char *technologies;    /* as sent, e.g. "mdm,microsoftSense" */
	char *template_id;     /* templateReference.templateId, may be NULL */
	char *template_family; /* templateReference.templateFamily, may be NULL */
	char last_modified[21]; /* lastModifiedDateTime in UTC, "YYYY-MM-DDTHH:MM:SSZ" */
	int for_connector;     /* technologies include configManager */
	struct cmb_policy_instance *settings;
	size_t n_settings;
	char **collections;    /* configurationManagerCollectionAssignmentTarget ids, sorted, unique */
	size_t n_collections;
	/* What parsing refused inside the body: malformed instances (dropped
	 * from the tree) and assignments the connector cannot deliver. Each
	 * one is a rejection reason for cmb_map_policy_validate(). */
	struct cmb_policy_reasons malformed;
};

/*
 * Parses one policy (GET .../configurationPolicies/{id}?$expand=settings,assignments)
 * from buf. Annotations (@odata.*, x@odata.type) and properties Graph may add
 * are ignored. Returns 0 with *out (caller frees with cmb_map_policy_free()),
 * or CMB_ETOOBIG (a limit above), CMB_EPROTO (not JSON, not an object, no
 * id) with cmb_error_set(); *out is untouched on failure. A malformed setting
 * instance does not fail the parse: it is left out and recorded in
 * (*out)->malformed so validation rejects the policy saying where.
 */
int cmb_map_policy_parse(const char *buf, size_t len, struct cmb_policy **out);

/*
 * Parses a listing page ({"value":[policy, ...], "@odata.nextLink":...}).
 * *out is an array of *n policies (caller frees with cmb_map_policy_list_free());
 * *next_link is the next page's URL or NULL (caller frees). A policy object
 * in the page that cannot be modelled fails the page (CMB_EPROTO) naming its
 * index: a page is taken whole or not at all.
 */
int cmb_map_policy_parse_page(const char *buf, size_t len, struct cmb_policy ***out, size_t *n,
			      char **next_link);

void cmb_map_policy_free(struct cmb_policy *p);
void cmb_map_policy_list_free(struct cmb_policy **v, size_t n);

/* ---- Validation ---- */

enum cmb_policy_verdict {
	CMB_POLICY_ACCEPTED = 0,
	CMB_POLICY_REJECTED = 1,          /* one reason per offending setting or target */
	CMB_POLICY_NOT_FOR_CONNECTOR = 2, /* technologies lack configManager: ignore, count */
};

/*
 * Checks p against the catalog and the collections the site has attached
 * and enabled for cloud sync (attached, n_attached; collection ids, exact
 * match). Appends the reasons to *reasons (caller owns; may already hold
 * some). Returns the verdict; a rejected policy must not be mapped at all.
 */
enum cmb_policy_verdict cmb_map_policy_validate(const struct cmb_policy *p, const char *const *attached,
					       size_t n_attached, struct cmb_policy_reasons *reasons);

/* ---- Merge across the accepted policies that reach one collection ---- */

/* Two collections that share members (the caller knows; the pair is unordered). */
struct cmb_policy_overlap {
	const char *a;
	const char *b;
};

/* One CSP node's effective value for a collection. */
struct cmb_policy_effective {
	char *csp;
	char *type;      /* "int", "bool" or "string" */
	char *value;
	char **origins;  /* the ids of the policies the value comes from, sorted */
	size_t n_origins;
};

/* Two or more policies setting one setting differently: none of them applies it. */
struct cmb_policy_conflict {
	char *definition_id;
	char *csp;
	char **policies; /* sorted */
	char **values;   /* values[i] is what policies[i] sets */
	size_t n;
};

struct cmb_policy_collection_result {
	char *collection_id;
	struct cmb_policy_effective *entries; /* sorted by csp */
	size_t n_entries;
	struct cmb_policy_conflict *conflicts; /* sorted by csp, then definition id */
	size_t n_conflicts;
};

struct cmb_policy_merge {
	struct cmb_policy_collection_result *collections; /* sorted by collection id */
	size_t n_collections;
};

/*
 * Computes, for every collection targeted by the accepted policies
 * (policies[0..n), each already ACCEPTED by cmb_map_policy_validate()), the
 * effective CSP values and the conflicts, taking into account every policy
 * that targets the collection or one that overlaps it. Returns 0 with *out
 * (caller frees with cmb_map_policy_merge_free()), or CMB_EINVAL (a policy
 * that would not validate) with cmb_error_set().
 */
int cmb_map_policy_merge(const struct cmb_policy *const *policies, size_t n,
			 const struct cmb_policy_overlap *overlaps, size_t n_overlaps,
			 struct cmb_policy_merge **out);
void cmb_map_policy_merge_free(struct cmb_policy_merge *m);

/* ---- The site policy document (XML, namespace urn:cmbridge:policy:1) ---- */

#define CMB_POLICY_DOC_NS "urn:cmbridge:policy:1"

/*
 * Builds the document for one ACCEPTED policy. version is the content
 * version the connector keeps (it increments it when the content hash
 * changes). When merge is not NULL, the settings this policy has in conflict
 * (in any collection) are left out of the document. The same content gives
 * the same bytes whatever the order Graph sent it in. Returns 0 with *xml
 * (NUL-terminated, *len bytes, caller frees with free()) and hash (the
 * contentHash written in it), or CMB_EINVAL with cmb_error_set().
 */
int cmb_map_policy_doc(const struct cmb_policy *p, unsigned long long version, const struct cmb_policy_merge *merge,
		       char **xml, size_t *len, char hash[65]);

/* A document read back (for the lab and tests). */
struct cmb_policy_doc_setting {
	char *definition_id;
	char *csp;
	char *type;
	char *value;
	char *group_definition_id; /* the <group> it was in, or NULL */
	char *group_csp;           /* that group's csp, or NULL */
};

struct cmb_policy_doc {
	char *tenant_policy_id;
	unsigned long long version;
	char *content_hash;
	char *family;
	char *name;
	char *last_modified;
	char **collections;
	size_t n_collections;
	struct cmb_policy_doc_setting *settings; /* in document order */
	size_t n_settings;
};

/*
 * Parses a document (libxml2, no network, no DTD, no entity expansion: a
 * document carrying a DTD is refused). Returns 0 with *out (caller frees
 * with cmb_map_policy_doc_free()), or CMB_EPROTO with cmb_error_set().
 */
int cmb_map_policy_doc_parse(const char *buf, size_t len, struct cmb_policy_doc **out);
void cmb_map_policy_doc_free(struct cmb_policy_doc *d);

#endif
