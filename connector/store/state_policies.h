/*
 * state_policies.h - the policy relay's state (part of state.h: include
 * that; schema v5, docs/policies.md "The engine", docs/state.md).
 *
 * Per tenant policy: what was last seen of it in the tenant (its
 * lastModifiedDateTime and body), its state, reasons and targets, the
 * document the connector wants at the site (content version and hash) and
 * the one the site confirmed holding; the compliance last read for it, per
 * collection and per device; and the journal of site writes (intent
 * before each PUT or DELETE, outcome after it).
 */
#ifndef CMB_STATE_POLICIES_H
#define CMB_STATE_POLICIES_H

#ifndef CMB_STATE_H_INSIDE
#error "include connector/store/state.h, not state_policies.h"
#endif

/* Where a policy is in the relay (docs/policies.md); the text is what policies.state stores. */
#define CMB_POLICY_STATES(X) \
	X(CMB_PSTATE_PENDING, "pending")   /* seen; its document is not (yet) at the site: staging, or a write failed */ \
	X(CMB_PSTATE_APPLIED, "applied")   /* the site holds its document at the wanted version */ \
	X(CMB_PSTATE_REJECTED, "rejected") /* refused whole, with its reasons; nothing of it was written */ \
	X(CMB_PSTATE_CONFLICT, "conflict") /* applied without the settings another policy sets differently */ \
	X(CMB_PSTATE_REMOVING, "removing") /* gone from the tenant or unassigned: its document is being removed */ \
	X(CMB_PSTATE_IGNORED, "ignored")   /* technologies lack configManager: counted, never written */
enum cmb_policy_state { CMB_POLICY_STATES(CMB_STATE_ENUM_ITEM) };
#define CMB_PSTATE_COUNT (CMB_PSTATE_IGNORED + 1)
const char *cmb_state_policy_state_name(enum cmb_policy_state state);
int cmb_state_policy_state_parse(const char *text, enum cmb_policy_state *out);

/* A device's compliance with a policy as the site reports it (wire-format §9.2). */
#define CMB_PDEVICE_STATES(X) \
	X(CMB_PDEV_PENDING, "pending") \
	X(CMB_PDEV_COMPLIANT, "compliant") \
	X(CMB_PDEV_NONCOMPLIANT, "nonCompliant") \
	X(CMB_PDEV_ERROR, "error") \
	X(CMB_PDEV_CONFLICT, "conflict") \
	X(CMB_PDEV_NOT_APPLICABLE, "notApplicable")
enum cmb_pdevice_state { CMB_PDEVICE_STATES(CMB_STATE_ENUM_ITEM) };
const char *cmb_state_pdevice_state_name(enum cmb_pdevice_state state);
int cmb_state_pdevice_state_parse(const char *text, enum cmb_pdevice_state *out);

/* One policy row. Strings are the struct's (cmb_state_policy_clear). */
struct cmb_policy_row {
	char *id;                /* the Graph policy id */
	char *name;
	char *family;            /* templateReference.templateFamily, "" when none */
	char modified[48];       /* lastModifiedDateTime last read, as Graph wrote it (fractions and offset kept) */
	enum cmb_policy_state state;
	char *targets;           /* collection ids, sorted, comma-separated ("" none) */
	int64_t version;         /* content version of the wanted document (0: none yet) */
	char hash[65];           /* its contentHash ("" none) */
	long settings;           /* settings (nodes) in it */
	int64_t site_version;    /* the version the site confirmed holding (0: none) */
	char site_hash[65];
	int64_t compliance_version; /* the document version the stored compliance is for (0: none) */
	int64_t compliance_at;   /* epoch seconds it was read */
	char reported_hash[65];  /* digest of the status last accepted by the tenant */
	int64_t updated;         /* epoch seconds of the last change */
};

void cmb_state_policy_clear(struct cmb_policy_row *p);
void cmb_state_policies_free(struct cmb_policy_row *list, size_t n);
/*
 * Inserts or updates the tenant side of p: name, family, modified, state,
 * targets, updated (a new row starts with no document and nothing at the site).
 */
int cmb_state_policy_put(struct cmb_state *st, const struct cmb_policy_row *p);
int cmb_state_policy_set_state(struct cmb_state *st, const char *id, enum cmb_policy_state state, int64_t updated);
/* The policy's body as Graph returned it (kept to merge it with changed ones without reading it again). */
int cmb_state_policy_set_body(struct cmb_state *st, const char *id, const char *body, size_t len);
/* The wanted document, its version and hash, and how many settings it has. */
int cmb_state_policy_set_document(struct cmb_state *st, const char *id, int64_t version, const char *hash,
				  const char *doc, size_t len, long settings);
/* What the site confirmed holding (version 0 and hash "": nothing). */
int cmb_state_policy_set_site(struct cmb_state *st, const char *id, int64_t version, const char *hash);
int cmb_state_policy_set_reported(struct cmb_state *st, const char *id, const char *hash);
/* 0 and *out (caller clears) when known; CMB_ENOTFOUND when not. */
int cmb_state_policy_get(struct cmb_state *st, const char *id, struct cmb_policy_row *out);
/* Every policy, by id (caller frees with cmb_state_policies_free). */
int cmb_state_policies_list(struct cmb_state *st, struct cmb_policy_row **out, size_t *n);
/* The stored body and document (each newly allocated, NUL-terminated; NULL and 0 when none). */
int cmb_state_policy_blobs(struct cmb_state *st, const char *id, char **body, size_t *body_len, char **doc,
			   size_t *doc_len);
/* Forgets the policy with its reasons and compliance (its journal rows stay). */
int cmb_state_policy_delete(struct cmb_state *st, const char *id);
/* Policies in state; negative on error. */
long cmb_state_policies_count(struct cmb_state *st, enum cmb_policy_state state);

/* Replaces the policy's reasons with r[0..n). */
int cmb_state_policy_set_reasons(struct cmb_state *st, const char *id, const char *const *r, size_t n);
/* Its reasons in order (newly allocated array of allocated strings; caller frees all). */
int cmb_state_policy_reasons(struct cmb_state *st, const char *id, char ***out, size_t *n);

/* ---- compliance as last read from the site ---- */
struct cmb_pcoll_counts {
	char collection_id[16];
	long targeted, compliant, non_compliant, error, conflict, not_applicable;
};

struct cmb_pdevice {
	uint32_t resource_id;
	enum cmb_pdevice_state state;
	char *failing;           /* failing settings' definition ids, comma-separated ("" none) */
};

void cmb_state_pdevices_free(struct cmb_pdevice *list, size_t n);
/* Replaces the policy's compliance with what was read at `at` for document version `version`. */
int cmb_state_policy_set_compliance(struct cmb_state *st, const char *id, int64_t version, int64_t at,
				    const struct cmb_pcoll_counts *c, size_t n_c, const struct cmb_pdevice *d,
				    size_t n_d);
/* The stored compliance (arrays newly allocated; free c with free(), d with cmb_state_pdevices_free). */
int cmb_state_policy_compliance(struct cmb_state *st, const char *id, struct cmb_pcoll_counts **c, size_t *n_c,
				struct cmb_pdevice **d, size_t *n_d);

/* ---- the journal of site writes ---- */
#define CMB_PJOURNAL_OPS(X) \
	X(CMB_PJ_PUT, "put")       /* PUT CmbridgePolicy('{id}') of version, hash */ \
	X(CMB_PJ_DELETE, "delete") /* DELETE CmbridgePolicy('{id}') */
enum cmb_pjournal_op { CMB_PJOURNAL_OPS(CMB_STATE_ENUM_ITEM) };
const char *cmb_state_pjournal_op_name(enum cmb_pjournal_op op);
int cmb_state_pjournal_op_parse(const char *text, enum cmb_pjournal_op *out);

#define CMB_PJOURNAL_OUTCOMES(X) \
	X(CMB_PJ_NONE, NULL)             /* not recorded: the write may or may not have happened; read the site back */ \
	X(CMB_PJ_DONE, "done")           /* the site holds it (PUT) or no longer has it (DELETE) */ \
	X(CMB_PJ_ADOPTED, "adopted")     /* found done at the site after an interruption: not written again */ \
	X(CMB_PJ_REFUSED, "refused")     /* the site refused the document (4xx): nothing was stored */ \
	X(CMB_PJ_CONFLICT, "conflict")   /* the site holds a newer version or another hash (409) */ \
	X(CMB_PJ_ABANDONED, "abandoned") /* superseded before it was known: a later row writes the policy */
enum cmb_pjournal_outcome { CMB_PJOURNAL_OUTCOMES(CMB_STATE_ENUM_ITEM) };
const char *cmb_state_pjournal_outcome_name(enum cmb_pjournal_outcome o);
int cmb_state_pjournal_outcome_parse(const char *text, enum cmb_pjournal_outcome *out);

struct cmb_pjournal {
	int64_t id;
	char *policy_id;
	enum cmb_pjournal_op op;
	int64_t version;         /* PUT: the document's version; DELETE: the version removed */
	char hash[65];
	int64_t intended;        /* epoch seconds */
	enum cmb_pjournal_outcome outcome;
	char *message;           /* the site's reason (refused, conflict), or NULL */
	int64_t completed;       /* epoch seconds the outcome was recorded, 0 when none */
};

void cmb_state_pjournal_free(struct cmb_pjournal *list, size_t n);
int cmb_state_pjournal_add(struct cmb_state *st, const char *policy_id, enum cmb_pjournal_op op, int64_t version,
			   const char *hash, int64_t intended, int64_t *journal_id);
int cmb_state_pjournal_outcome(struct cmb_state *st, int64_t journal_id, enum cmb_pjournal_outcome outcome,
			       const char *message, int64_t completed);
/* Rows without an outcome, oldest first (caller frees with cmb_state_pjournal_free). */
int cmb_state_pjournal_open(struct cmb_state *st, struct cmb_pjournal **out, size_t *n);
/* The newest limit rows of one policy (NULL: of all), newest first. */
int cmb_state_pjournal_recent(struct cmb_state *st, const char *policy_id, size_t limit, struct cmb_pjournal **out,
			      size_t *n);

#endif
