/*
 * policy.c - one poll of the policy relay (policy.h, docs/policies.md
 * "The engine"): the tenant's listing, the policies whose
 * lastModifiedDateTime moved read again, validation and the merge across
 * the policies that reach a collection (mapping/policy.h), and the plan:
 * for every policy its state, reasons and the document wanted at the site.
 * The site side (writes, journal, compliance, status) is policy_site.c.
 *
 * Must never: read a policy again whose lastModifiedDateTime did not
 * move (its stored body is merged instead); plan a write for a rejected
 * policy; log a setting value.
 */
#include "connector/engine/policy_poll.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* What the listing asks for: enough to tell what changed, and to count what is not for the connector. */
#define LIST_QUERY "$select=id,name,platforms,technologies,lastModifiedDateTime,templateReference"
#define GET_QUERY "$expand=settings,assignments"
#define UNASSIGNED_REASON "no collection targets: nothing is written to the site until the policy is assigned " \
			  "to a collection"

/* ---- items ---- */

struct pitem *cmb_ppoll_find(struct ppoll *pp, const char *id)
{
	for (size_t i = 0; i < pp->n; i++)
		if (strcmp(pp->items[i].row.id, id) == 0)
			return &pp->items[i];
	return NULL;
}

struct pitem *cmb_ppoll_item(struct ppoll *pp, const char *id)
{
	struct pitem *it = cmb_ppoll_find(pp, id);
	if (it)
		return it;
	if (pp->n == pp->cap) {
		pp->cap = pp->cap ? pp->cap * 2 : 16;
		pp->items = xrealloc(pp->items, pp->cap * sizeof(*pp->items));
	}
	it = &pp->items[pp->n++];
	memset(it, 0, sizeof(*it));
	it->row.id = xstrdup(id);
	it->row.name = xstrdup("");
	it->row.family = xstrdup("");
	it->row.targets = xstrdup("");
	it->row.state = CMB_PSTATE_PENDING;
	return it;
}

static void items_free(struct ppoll *pp)
{
	for (size_t i = 0; i < pp->n; i++) {
		struct pitem *it = &pp->items[i];
		cmb_state_policy_clear(&it->row);
		cmb_map_policy_free(it->model);
		cmb_map_policy_reasons_free(&it->reasons);
		free(it->doc);
	}
	free(pp->items);
}

static int load_rows(struct ppoll *pp)
{
	struct cmb_policy_row *rows = NULL;
	size_t n = 0;
	int rc = cmb_state_policies_list(pp->env->state, &rows, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct pitem *it = cmb_ppoll_item(pp, rows[i].id);
		cmb_state_policy_clear(&it->row);
		it->row = rows[i];
		it->known = 1;
	}
	free(rows); /* the strings moved into the items */
	return 0;
}

static void add_reason(struct cmb_policy_reasons *r, char *reason)
{
	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n++] = reason;
}

/* ---- the tenant ---- */

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = xstrdup(s ? s : "");
}

/*
 * lastModifiedDateTime exactly as Graph wrote it: two edits within one
 * second differ only in the fraction, which the model's UTC form drops.
 * The model's form when the text is not there or too long.
 */
static void listed_modified(const char *json, size_t len, const struct cmb_policy *p, char out[48])
{
	char *text = xstrndup(json, len);
	yajl_val root = yajl_tree_parse(text, NULL, 0);
	const char *path[] = { "lastModifiedDateTime", NULL };
	yajl_val v = root ? yajl_tree_get(root, path, yajl_t_string) : NULL;
	if (v && strlen(v->u.string) < 48)
		snprintf(out, 48, "%s", v->u.string);
	else
		snprintf(out, 48, "%s", p->last_modified);
	yajl_tree_free(root);
	free(text);
}

/* One policy of the listing: its summary (no settings) tells whether it must be read again. */
static int on_listed(void *ctx, const char *id, const char *json, size_t len)
{
	struct ppoll *pp = ctx;
	struct cmb_policy *p = NULL;
	int rc = cmb_map_policy_parse(json, len, &p);
	if (rc < 0)
		return cmb_error_wrap(rc, "tenant: configuration policy %s in the listing", id);
	struct pitem *it = cmb_ppoll_item(pp, p->id);
	if (it->listed) {
		cmb_map_policy_free(p);
		return cmb_error_set(CMB_EPROTO, "tenant: configuration policy %s is listed twice", id);
	}
	it->listed = 1;
	it->for_connector = p->for_connector;
	listed_modified(json, len, p, it->listed_modified);
	set_str(&it->row.name, p->name);
	set_str(&it->row.family, p->template_family);
	/* Remember what the listing said in the model slot until the whole policy replaces it. */
	cmb_map_policy_free(it->model);
	it->model = p;
	pp->stats->listed++;
	return 0;
}

/*
 * A policy read from Graph is kept at once with its lastModifiedDateTime:
 * a poll cut short does not read it again, whatever else it had done.
 */
static int keep_body(struct ppoll *pp, struct pitem *it, const char *body, size_t len)
{
	struct cmb_state *st = pp->env->state;
	snprintf(it->row.modified, sizeof(it->row.modified), "%s", it->listed_modified);
	it->row.updated = pp->now;
	int rc = cmb_state_begin(st);
	if (rc == 0 && (rc = cmb_state_policy_put(st, &it->row)) == 0 &&
	    (rc = cmb_state_policy_set_body(st, it->row.id, body, len)) == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

/* The whole policy: from the state when the listing's lastModifiedDateTime is the one stored, else from Graph. */
static int read_whole(struct ppoll *pp, struct pitem *it, int *changed)
{
	const struct cmb_policy_env *env = pp->env;
	char *body = NULL;
	size_t len = 0;
	int rc = 0;
	*changed = 0;
	if (it->known && strcmp(it->row.modified, it->listed_modified) == 0)
		rc = cmb_state_policy_blobs(env->state, it->row.id, &body, &len, NULL, NULL);
	if (rc < 0)
		return rc;
	if (!body || !len) {
		free(body);
		body = NULL;
		if ((rc = env->tenant->get_policy(env->tenant_st, it->row.id, GET_QUERY, &body, &len)) < 0)
			return rc;
		*changed = 1;
		pp->stats->read++;
	}
	struct cmb_policy *p = NULL;
	if ((rc = cmb_map_policy_parse(body, len, &p)) < 0) {
		free(body);
		return cmb_error_wrap(rc, "tenant: configuration policy %s", it->row.id);
	}
	cmb_map_policy_free(it->model);
	it->model = p;
	rc = *changed ? keep_body(pp, it, body, len) : 0;
	free(body);
	return rc;
}

/*
 * One policy Graph gave in a form the connector cannot take (a body that
 * does not parse, over a limit, an id that is no Graph id): rejected with
 * the reason, the others go on; what the site holds of it stays as it is.
 */
static void unreadable(struct pitem *it)
{
	cmb_warn("policy %s: %s", it->row.id, cmb_error_last());
	it->unreadable = 1;
	it->verdict = CMB_POLICY_REJECTED;
	add_reason(&it->reasons, xasprintf("the policy could not be read from the tenant: %s", cmb_error_last()));
	cmb_error_clear();
}

/* Reads every listed policy meant for the connector whose body is not current. */
static int read_policies(struct ppoll *pp)
{
	for (size_t i = 0; i < pp->n; i++) {
		struct pitem *it = &pp->items[i];
		if (!it->listed)
			continue;
		if (!it->for_connector) {
			snprintf(it->row.modified, sizeof(it->row.modified), "%s", it->listed_modified);
			continue;
		}
		if (cmb_stop_requested())
			return cmb_error_set(CMB_ECANCELED, "policy poll stopped on request");
		int changed;
		int rc = read_whole(pp, it, &changed);
		if (rc == CMB_ENOTFOUND) {
			it->listed = 0; /* deleted since the listing: removed like any policy gone */
			cmb_error_clear();
		} else if (rc == CMB_EPROTO || rc == CMB_EINVAL || rc == CMB_ETOOBIG || rc == CMB_EHTTP) {
			unreadable(it);
		} else if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- validation and merge ---- */

/* The collections uploaded to the tenant (state collections, "<site>:<id>"): the ones a policy may target. */
static int attached_collections(struct ppoll *pp, char ***out, size_t *n_out)
{
	char **keys = NULL;
	size_t n = 0, k = 0;
	int rc = cmb_state_collection_keys(pp->env->state, &keys, &n);
	if (rc < 0)
		return rc;
	size_t plen = strlen(pp->env->cfg->site_code);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(keys[i], pp->env->cfg->site_code, plen) == 0 && keys[i][plen] == ':') {
			char *id = xstrdup(keys[i] + plen + 1);
			free(keys[i]);
			keys[k++] = id;
		} else {
			free(keys[i]);
		}
	}
	*out = keys;
	*n_out = k;
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int validate_all(struct ppoll *pp)
{
	char **attached = NULL;
	size_t n_attached = 0;
	int rc = attached_collections(pp, &attached, &n_attached);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < pp->n; i++) {
		struct pitem *it = &pp->items[i];
		if (!it->listed || !it->for_connector || it->unreadable)
			continue;
		it->verdict = cmb_map_policy_validate(it->model, (const char *const *)attached, n_attached, &it->reasons);
	}
	strv_free(attached, n_attached);
	return 0;
}

static int accepted_with_targets(const struct pitem *it)
{
	return it->listed && it->for_connector && it->verdict == CMB_POLICY_ACCEPTED && it->model->n_collections > 0;
}

/* 1 when the sorted lists a and b share an element. */
static int share_member(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (a[i] == b[j])
			return 1;
		if (a[i] < b[j])
			i++;
		else
			j++;
	}
	return 0;
}

/* The collections the accepted policies target, sorted and unique. */
static void targeted_collections(struct ppoll *pp, const char ***out, size_t *n_out)
{
	const char **v = NULL;
	size_t n = 0;
	for (size_t i = 0; i < pp->n; i++) {
		if (!accepted_with_targets(&pp->items[i]))
			continue;
		const struct cmb_policy *p = pp->items[i].model;
		for (size_t c = 0; c < p->n_collections; c++) {
			size_t k = 0;
			while (k < n && strcmp(v[k], p->collections[c]) != 0)
				k++;
			if (k == n) {
				v = xrealloc(v, (n + 1) * sizeof(*v));
				v[n++] = p->collections[c];
			}
		}
	}
	*out = v;
	*n_out = n;
}

/* Which targeted collections share members, from the site's membership (docs/policies.md §4). */
static int read_overlaps(struct ppoll *pp, const char **colls, size_t n, struct cmb_policy_overlap **out,
			 size_t *n_out)
{
	const struct cmb_policy_env *env = pp->env;
	*out = NULL;
	*n_out = 0;
	if (n < 2 || !env->site->collection_members)
		return 0;
	uint32_t **members = xcalloc(n, sizeof(*members));
	size_t *counts = xcalloc(n, sizeof(*counts));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = env->site->collection_members(env->policy_st, colls[i], &members[i], &counts[i]);
	struct cmb_policy_overlap *ov = NULL;
	size_t k = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		for (size_t j = i + 1; j < n; j++)
			if (share_member(members[i], counts[i], members[j], counts[j])) {
				ov = xrealloc(ov, (k + 1) * sizeof(*ov));
				ov[k++] = (struct cmb_policy_overlap){ .a = colls[i], .b = colls[j] };
			}
	for (size_t i = 0; i < n; i++)
		free(members[i]);
	free(members);
	free(counts);
	if (rc < 0) {
		free(ov);
		return rc;
	}
	*out = ov;
	*n_out = k;
	return 0;
}

static int merge_all(struct ppoll *pp, struct cmb_policy_merge **merge)
{
	const struct cmb_policy **accepted = xcalloc(pp->n + 1, sizeof(*accepted));
	size_t n = 0, n_colls = 0, n_ov = 0;
	for (size_t i = 0; i < pp->n; i++)
		if (accepted_with_targets(&pp->items[i]))
			accepted[n++] = pp->items[i].model;
	const char **colls = NULL;
	struct cmb_policy_overlap *ov = NULL;
	targeted_collections(pp, &colls, &n_colls);
	int rc = read_overlaps(pp, colls, n_colls, &ov, &n_ov);
	if (rc == 0)
		rc = cmb_map_policy_merge(accepted, n, ov, n_ov, merge);
	free(colls);
	free(ov);
	free(accepted);
	return rc;
}

/* One reason per setting and collection this policy is in conflict for (no values: they may be private). */
static void conflict_reasons(struct pitem *it, const struct cmb_policy_merge *m)
{
	for (size_t c = 0; c < m->n_collections; c++) {
		const struct cmb_policy_collection_result *cr = &m->collections[c];
		for (size_t k = 0; k < cr->n_conflicts; k++) {
			const struct cmb_policy_conflict *cf = &cr->conflicts[k];
			int mine = 0;
			struct cmb_buf others = CMB_BUF_INIT(SIZE_MAX / 2);
			for (size_t j = 0; j < cf->n; j++) {
				if (strcmp(cf->policies[j], it->row.id) == 0)
					mine = 1;
				else
					cmb_buf_printf(&others, "%s%s", others.len ? ", " : "", cf->policies[j]);
			}
			char *o = cmb_buf_detach(&others, NULL);
			if (mine)
				add_reason(&it->reasons, xasprintf("%s (%s): in conflict in collection %s with policy %s, "
								   "which sets it differently; neither value is applied",
								   cf->definition_id, cf->csp, cr->collection_id, o));
			free(o);
		}
	}
}

/* ---- the plan ---- */

static void join_targets(struct pitem *it)
{
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	for (size_t i = 0; it->model && i < it->model->n_collections; i++)
		cmb_buf_printf(&b, "%s%s", i ? "," : "", it->model->collections[i]);
	free(it->row.targets);
	it->row.targets = cmb_buf_detach(&b, NULL);
}

static long count_settings(const char *doc, size_t len)
{
	long n = 0;
	for (const char *p = doc; p && (p = memmem(p, len - (size_t)(p - doc), "<setting ", 9)); p += 9)
		n++;
	return n;
}

/*
 * The document of an accepted, targeted policy, at the version the rules
 * give: the stored one while the content hash stays, the site's when the
 * site already holds this content, else one above both.
 */
static int plan_document(struct pitem *it, const struct cmb_policy_merge *m)
{
	char hash[65];
	char *xml = NULL;
	size_t len = 0;
	int64_t v = it->row.version > 0 ? it->row.version : 1;
	int rc = cmb_map_policy_doc(it->model, (unsigned long long)v, m, &xml, &len, hash);
	if (rc < 0)
		return rc;
	int64_t want = v;
	if (it->site_version > 0 && strcmp(it->site_hash, hash) == 0)
		want = it->site_version;
	else if (it->row.version == 0 || strcmp(it->row.hash, hash) != 0)
		want = (it->row.version > it->site_version ? it->row.version : it->site_version) + 1;
	if (want != v) {
		free(xml);
		if ((rc = cmb_map_policy_doc(it->model, (unsigned long long)want, m, &xml, &len, hash)) < 0)
			return rc;
	}
	it->doc = xml;
	it->doc_len = len;
	it->version = want;
	snprintf(it->hash, sizeof(it->hash), "%s", hash);
	it->settings = count_settings(xml, len);
	return 0;
}

/* A policy the site should hold: its document and whether a PUT is due. */
static int plan_accepted(struct ppoll *pp, struct pitem *it, const struct cmb_policy_merge *m)
{
	size_t before = it->reasons.n;
	conflict_reasons(it, m);
	int rc = plan_document(it, m);
	if (rc < 0)
		return cmb_error_wrap(rc, "policy %s: building its document", it->row.id);
	int held = it->site_version == it->version && strcmp(it->site_hash, it->hash) == 0;
	it->action = held ? CMB_PACT_NONE : CMB_PACT_PUT;
	if (it->reasons.n > before) {
		it->row.state = CMB_PSTATE_CONFLICT;
		pp->stats->conflicts++;
	} else {
		it->row.state = held ? CMB_PSTATE_APPLIED : CMB_PSTATE_PENDING;
	}
	pp->stats->accepted++;
	return 0;
}

/* Gone from the tenant, not for the connector, rejected or unassigned: what becomes of it. */
static void plan_other(struct ppoll *pp, struct pitem *it)
{
	int at_site = it->site_version > 0;
	if (!it->listed) {
		it->row.state = CMB_PSTATE_REMOVING;
		it->action = at_site ? CMB_PACT_DELETE : CMB_PACT_NONE;
	} else if (!it->for_connector) {
		it->row.state = CMB_PSTATE_IGNORED;
		it->action = at_site ? CMB_PACT_DELETE : CMB_PACT_NONE;
		pp->stats->ignored++;
	} else if (it->verdict == CMB_POLICY_REJECTED) {
		/* Nothing of it is written; a document of an earlier, valid version stays as it is. */
		it->row.state = CMB_PSTATE_REJECTED;
		it->action = CMB_PACT_NONE;
		pp->stats->rejected++;
	} else {
		add_reason(&it->reasons, xstrdup(UNASSIGNED_REASON));
		it->row.state = at_site ? CMB_PSTATE_REMOVING : CMB_PSTATE_PENDING;
		it->action = at_site ? CMB_PACT_DELETE : CMB_PACT_NONE;
		pp->stats->unassigned++;
	}
	if (it->action == CMB_PACT_DELETE)
		it->version = it->site_version;
}

static int plan_all(struct ppoll *pp)
{
	int rc = merge_all(pp, &pp->merge);
	for (size_t i = 0; i < pp->n && rc == 0; i++) {
		struct pitem *it = &pp->items[i];
		if (it->listed && it->for_connector && !it->unreadable)
			join_targets(it);
		if (accepted_with_targets(it))
			rc = plan_accepted(pp, it, pp->merge);
		else
			plan_other(pp, it);
	}
	return rc;
}

int cmb_ppoll_replan(struct ppoll *pp, struct pitem *it)
{
	free(it->doc);
	it->doc = NULL;
	it->row.hash[0] = '\0'; /* a version above the site's, whatever the content */
	int rc = plan_document(it, pp->merge);
	if (rc < 0)
		return rc;
	rc = cmb_state_policy_set_document(pp->env->state, it->row.id, it->version, it->hash, it->doc, it->doc_len,
					   it->settings);
	if (rc == 0) {
		it->row.version = it->version;
		snprintf(it->row.hash, sizeof(it->row.hash), "%s", it->hash);
	}
	return rc;
}

/* ---- the tenant side into the state ---- */

static int record_one(struct ppoll *pp, struct pitem *it)
{
	struct cmb_state *st = pp->env->state;
	if (!it->listed && !it->known && it->site_version == 0)
		return 0;
	it->row.updated = pp->now;
	int rc = cmb_state_policy_put(st, &it->row);
	if (rc == 0 && it->doc)
		rc = cmb_state_policy_set_document(st, it->row.id, it->version, it->hash, it->doc, it->doc_len,
						   it->settings);
	if (rc == 0 && (it->site_version != it->row.site_version || strcmp(it->site_hash, it->row.site_hash) != 0))
		rc = cmb_state_policy_set_site(st, it->row.id, it->site_version, it->site_hash);
	if (rc == 0)
		rc = cmb_state_policy_set_reasons(st, it->row.id, (const char *const *)it->reasons.v, it->reasons.n);
	if (rc == 0 && it->doc) {
		it->row.version = it->version;
		snprintf(it->row.hash, sizeof(it->row.hash), "%s", it->hash);
		it->row.settings = it->settings;
	}
	it->row.site_version = it->site_version;
	snprintf(it->row.site_hash, sizeof(it->row.site_hash), "%s", it->site_hash);
	return rc;
}

/* Everything the plan decided, in one transaction, before the site is written. */
static int record_all(struct ppoll *pp)
{
	struct cmb_state *st = pp->env->state;
	int rc = cmb_state_begin(st);
	for (size_t i = 0; i < pp->n && rc == 0; i++)
		rc = record_one(pp, &pp->items[i]);
	if (rc == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

static void report_plans(struct ppoll *pp)
{
	if (!pp->opts || !pp->opts->plan)
		return;
	for (size_t i = 0; i < pp->n; i++) {
		const struct pitem *it = &pp->items[i];
		const struct cmb_policy_plan p = {
			.id = it->row.id, .name = it->row.name, .state = it->row.state, .action = it->action,
			.version = it->action == CMB_PACT_NONE ? it->row.version : it->version,
			.site_version = it->site_version, .hash = it->hash, .settings = it->settings,
			.targets = it->row.targets, .reasons = (const char *const *)it->reasons.v, .n_reasons = it->reasons.n,
		};
		pp->opts->plan(pp->opts->plan_ctx, &p);
	}
}

/* ---- one poll ---- */

static int check_env(const struct cmb_policy_env *env)
{
	const struct cmb_site_adapter *s = env->site;
	const struct cmb_tenant_adapter *t = env->tenant;
	if (!s->policy_put || !s->policy_delete || !s->policy_list || !s->policy_compliance || !env->policy_st)
		return cmb_error_set(CMB_ECONFIG, "the site adapter %s has no policy store: policies cannot be relayed",
				     s->name);
	if (!t->list_policies || !t->get_policy || !t->post_policy_status)
		return cmb_error_set(CMB_ECONFIG, "the tenant adapter %s cannot read policies", t->name);
	return 0;
}

static int poll_steps(struct ppoll *pp)
{
	const struct cmb_policy_env *env = pp->env;
	int rc;
	if ((rc = load_rows(pp)) < 0 || (rc = cmb_ppoll_read_site(pp)) < 0)
		return rc;
	if (pp->writes && (rc = cmb_ppoll_reconcile(pp)) < 0)
		return rc;
	if ((rc = env->tenant->list_policies(env->tenant_st, LIST_QUERY, on_listed, pp, NULL)) < 0 ||
	    (rc = read_policies(pp)) < 0 || (rc = validate_all(pp)) < 0 || (rc = plan_all(pp)) < 0 ||
	    (rc = record_all(pp)) < 0)
		return rc;
	report_plans(pp);
	if (!pp->writes)
		return 0;
	if ((rc = cmb_ppoll_apply(pp)) < 0)
		return rc;
	return cmb_ppoll_report(pp);
}

int cmb_policy_poll(const struct cmb_policy_env *env, const struct cmb_policy_opts *opts,
		    struct cmb_policy_stats *stats)
{
	struct cmb_policy_stats local;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	int rc = check_env(env);
	if (rc < 0)
		return rc;
	struct ppoll pp = {
		.env = env, .opts = opts, .stats = stats, .now = cmb_now(),
		.writes = env->cfg->mode != CMB_MODE_STAGING && !(opts && opts->dry_run),
	};
	stats->staged = !pp.writes;
	rc = poll_steps(&pp);
	if (rc == 0)
		cmb_info("policy: %ld listed (%ld read, %ld not for ConfigMgr), %ld accepted (%ld in conflict), %ld rejected, "
			 "%ld unassigned; site: %ld written, %ld removed, %ld refused%s", stats->listed, stats->read,
			 stats->ignored, stats->accepted, stats->conflicts, stats->rejected, stats->unassigned,
			 stats->written, stats->removed, stats->refused,
			 pp.writes ? "" : " (staging: nothing written)");
	cmb_map_policy_merge_free(pp.merge);
	items_free(&pp);
	return rc;
}
