/*
 * policy_merge.c - the effective CSP values of every collection reached by
 * the accepted policies, and their conflicts (docs/policies.md, "Conflicts
 * and merges"). Never does I/O.
 *
 * For a collection C, the policies that count are those targeting C and
 * those targeting a collection that overlaps C: a device in both gets both,
 * so a conflict that can happen on any member of C is reported for C.
 */
#include "mapping/policy.h"
#include "mapping/policy_internal.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <stdlib.h>
#include <string.h>

/* One policy's item, as one candidate for a (csp, key). */
struct cand {
	const struct cmb_policy_item *it;
	const char *policy;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = strcmp(x->it->csp, y->it->csp);
	if (c)
		return c;
	c = strcmp(x->it->key ? x->it->key : "", y->it->key ? y->it->key : "");
	if (c)
		return c;
	return strcmp(x->policy, y->policy);
}

static int same_node(const struct cand *a, const struct cand *b)
{
	return strcmp(a->it->csp, b->it->csp) == 0 && cmb_policy_streq(a->it->key, b->it->key);
}

/*
 * ASR rule modes by strictness (Microsoft Learn, "Attack surface reduction
 * rules reference", rule modes: Block stops the behaviour; Warn stops it
 * unless the user overrides; Audit only reports; Off/Not configured does
 * nothing).
 */
static int asr_rank(const char *mode)
{
	if (strcmp(mode, "1") == 0)
		return 3; /* block */
	if (strcmp(mode, "6") == 0)
		return 2; /* warn */
	if (strcmp(mode, "2") == 0)
		return 1; /* audit */
	return 0;         /* off (0) */
}

/* A merged (csp, key) before entries are composed per csp. */
struct node {
	const char *csp;
	const char *key;
	const char *type;
	char *value;
	char **origins;
	size_t n_origins;
};

static void strv_add(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int overlaps(const char *a, const char *b, const struct cmb_policy_overlap *ov, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((cmb_policy_streq(ov[i].a, a) && cmb_policy_streq(ov[i].b, b)) ||
		    (cmb_policy_streq(ov[i].a, b) && cmb_policy_streq(ov[i].b, a)))
			return 1;
	return 0;
}

static int reaches(const struct cmb_policy *p, const char *coll, const struct cmb_policy_overlap *ov, size_t nov)
{
	for (size_t i = 0; i < p->n_collections; i++)
		if (strcmp(p->collections[i], coll) == 0 || overlaps(p->collections[i], coll, ov, nov))
			return 1;
	return 0;
}

static void add_conflict(struct cmb_policy_collection_result *r, const struct cand *c, size_t n)
{
	r->conflicts = xrealloc(r->conflicts, (r->n_conflicts + 1) * sizeof(*r->conflicts));
	struct cmb_policy_conflict *k = &r->conflicts[r->n_conflicts++];
	k->definition_id = xstrdup(c[0].it->def->id);
	k->csp = xstrdup(c[0].it->csp);
	k->policies = xcalloc(n, sizeof(char *));
	k->values = xcalloc(n, sizeof(char *));
	k->n = n;
	for (size_t i = 0; i < n; i++) { /* candidates are sorted by policy id */
		k->policies[i] = xstrdup(c[i].policy);
		k->values[i] = xstrdup(c[i].it->value);
	}
}

/* Merges the candidates of one (csp, key); 1 with *out filled, 0 when in conflict. */
static int merge_node(const struct cand *c, size_t n, struct node *out, struct cmb_policy_collection_result *r)
{
	memset(out, 0, sizeof(*out));
	out->csp = c[0].it->csp;
	out->key = c[0].it->key;
	out->type = c[0].it->type;
	enum cmb_policy_mergekind mk = c[0].it->def->merge;
	if (mk == CMB_PMERGE_UNION) {
		char **set = NULL;
		size_t ns = 0;
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < c[i].it->n_set; j++)
				strv_add(&set, &ns, c[i].it->set[j]);
		ns = cmb_policy_sort_unique(set, ns);
		struct cmb_buf b = CMB_BUF_INIT((size_t)CMB_POLICY_MAX_BODY * 4);
		for (size_t i = 0; i < ns; i++) {
			if (i)
				cmb_buf_addstr(&b, c[0].it->def->extra);
			cmb_buf_addstr(&b, set[i]);
		}
		strv_free(set, ns);
		out->value = cmb_buf_detach(&b, NULL);
		for (size_t i = 0; i < n; i++)
			strv_add(&out->origins, &out->n_origins, c[i].policy);
		return 1;
	}
	if (mk == CMB_PMERGE_STRICTEST) {
		size_t best = 0;
		for (size_t i = 1; i < n; i++)
			if (asr_rank(c[i].it->value) > asr_rank(c[best].it->value))
				best = i;
		out->value = xstrdup(c[best].it->value);
		for (size_t i = 0; i < n; i++)
			if (strcmp(c[i].it->value, c[best].it->value) == 0)
				strv_add(&out->origins, &out->n_origins, c[i].policy);
		return 1;
	}
	for (size_t i = 1; i < n; i++) {
		if (strcmp(c[i].it->value, c[0].it->value) != 0) {
			add_conflict(r, c, n);
			return 0;
		}
	}
	out->value = xstrdup(c[0].it->value);
	for (size_t i = 0; i < n; i++)
		strv_add(&out->origins, &out->n_origins, c[i].policy);
	return 1;
}

/* Composes the nodes of one csp into one entry ("key=value|..." for keyed nodes). */
static void add_entry(struct cmb_policy_collection_result *r, struct node *v, size_t n)
{
	r->entries = xrealloc(r->entries, (r->n_entries + 1) * sizeof(*r->entries));
	struct cmb_policy_effective *e = &r->entries[r->n_entries++];
	memset(e, 0, sizeof(*e));
	e->csp = xstrdup(v[0].csp);
	if (v[0].key) {
		struct cmb_buf b = CMB_BUF_INIT((size_t)CMB_POLICY_MAX_BODY);
		for (size_t i = 0; i < n; i++)
			cmb_buf_printf(&b, "%s%s=%s", i ? "|" : "", v[i].key, v[i].value);
		e->value = cmb_buf_detach(&b, NULL);
		e->type = xstrdup("string");
	} else {
		e->value = xstrdup(v[0].value);
		e->type = xstrdup(v[0].type);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < v[i].n_origins; j++)
			strv_add(&e->origins, &e->n_origins, v[i].origins[j]);
	e->n_origins = cmb_policy_sort_unique(e->origins, e->n_origins);
}

static int conflict_cmp(const void *a, const void *b)
{
	const struct cmb_policy_conflict *x = a, *y = b;
	int c = strcmp(x->csp, y->csp);
	return c ? c : strcmp(x->definition_id, y->definition_id);
}

static void merge_collection(struct cmb_policy_collection_result *r, struct cand *c, size_t nc)
{
	if (nc)
		qsort(c, nc, sizeof(*c), cand_cmp);
	struct node *nodes = xcalloc(nc ? nc : 1, sizeof(*nodes));
	size_t nn = 0;
	for (size_t i = 0; i < nc;) {
		size_t j = i + 1;
		while (j < nc && same_node(&c[i], &c[j]))
			j++;
		if (merge_node(&c[i], j - i, &nodes[nn], r))
			nn++;
		i = j;
	}
	for (size_t i = 0; i < nn;) {
		size_t j = i + 1;
		while (j < nn && strcmp(nodes[i].csp, nodes[j].csp) == 0)
			j++;
		add_entry(r, &nodes[i], j - i);
		i = j;
	}
	for (size_t i = 0; i < nn; i++) {
		free(nodes[i].value);
		strv_free(nodes[i].origins, nodes[i].n_origins);
	}
	free(nodes);
	if (r->n_conflicts > 1)
		qsort(r->conflicts, r->n_conflicts, sizeof(*r->conflicts), conflict_cmp);
}

int cmb_map_policy_merge(const struct cmb_policy *const *policies, size_t n,
			 const struct cmb_policy_overlap *overlaps_v, size_t n_overlaps, struct cmb_policy_merge **out)
{
	struct cmb_policy_item **items = xcalloc(n ? n : 1, sizeof(*items));
	size_t *n_items = xcalloc(n ? n : 1, sizeof(*n_items));
	char **colls = NULL;
	size_t ncolls = 0;
	int rc = 0;
	size_t done = 0;
	for (; done < n; done++) {
		if ((rc = cmb_policy_items(policies[done], &items[done], &n_items[done])) < 0)
			break;
		for (size_t j = 0; j < policies[done]->n_collections; j++)
			strv_add(&colls, &ncolls, policies[done]->collections[j]);
	}
	if (rc == 0) {
		ncolls = cmb_policy_sort_unique(colls, ncolls);
		struct cmb_policy_merge *m = xcalloc(1, sizeof(*m));
		m->collections = xcalloc(ncolls ? ncolls : 1, sizeof(*m->collections));
		m->n_collections = ncolls;
		for (size_t k = 0; k < ncolls; k++) {
			struct cmb_policy_collection_result *r = &m->collections[k];
			r->collection_id = xstrdup(colls[k]);
			struct cand *c = NULL;
			size_t nc = 0;
			for (size_t i = 0; i < n; i++) {
				if (!reaches(policies[i], colls[k], overlaps_v, n_overlaps))
					continue;
				c = xrealloc(c, (nc + n_items[i] + 1) * sizeof(*c));
				for (size_t j = 0; j < n_items[i]; j++)
					c[nc++] = (struct cand){ &items[i][j], policies[i]->id };
			}
			merge_collection(r, c, nc);
			free(c);
		}
		*out = m;
	}
	for (size_t i = 0; i < done; i++)
		cmb_policy_items_free(items[i], n_items[i]);
	free(items);
	free(n_items);
	strv_free(colls, ncolls);
	return rc;
}

void cmb_map_policy_merge_free(struct cmb_policy_merge *m)
{
	if (!m)
		return;
	for (size_t k = 0; k < m->n_collections; k++) {
		struct cmb_policy_collection_result *r = &m->collections[k];
		free(r->collection_id);
		for (size_t i = 0; i < r->n_entries; i++) {
			free(r->entries[i].csp);
			free(r->entries[i].type);
			free(r->entries[i].value);
			strv_free(r->entries[i].origins, r->entries[i].n_origins);
		}
		free(r->entries);
		for (size_t i = 0; i < r->n_conflicts; i++) {
			free(r->conflicts[i].definition_id);
			free(r->conflicts[i].csp);
			strv_free(r->conflicts[i].policies, r->conflicts[i].n);
			strv_free(r->conflicts[i].values, r->conflicts[i].n);
		}
		free(r->conflicts);
	}
	free(m->collections);
	free(m);
}
