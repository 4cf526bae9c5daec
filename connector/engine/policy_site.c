/*
 * policy_site.c - the site side of one policy poll (policy.h,
 * docs/policies.md "Journal"): what the site holds, read back first; the
 * journal rows an interruption left open, closed from that; every PUT and
 * DELETE journaled and committed before it is sent and its outcome
 * recorded after it; the compliance of what the site holds, stored and
 * posted to the tenant when it changed.
 *
 * Must never: send a site write without its journal row committed; send
 * again a write the site is found to hold; post a device that has not
 * reported (pending); log a setting value.
 */
#include "connector/engine/policy_poll.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_BATCH 100         /* policies per PolicyStatusPost (wire-format §9.3) */
#define STATUS_DEVICES 5000      /* devices per policy in one post */

/* ---- what the site holds ---- */

int cmb_ppoll_read_site(struct ppoll *pp)
{
	const struct cmb_policy_env *env = pp->env;
	struct cmb_site_policy_entry *e = NULL;
	size_t n = 0;
	int rc = env->site->policy_list(env->policy_st, &e, &n);
	if (rc == CMB_ENOTFOUND)
		return cmb_error_wrap(rc, "the site has no policy document store (docs/wire-format.md §9.2: it needs "
				      "cmbridge's server-side component); policies are not relayed");
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		/* A document the state does not know (the state was lost): an item of its own, decided like any. */
		struct pitem *it = cmb_ppoll_item(pp, e[i].id);
		it->site_version = e[i].version;
		snprintf(it->site_hash, sizeof(it->site_hash), "%s", e[i].hash);
	}
	cmb_site_policy_entries_free(e, n);
	return 0;
}

/* 1 when what the site holds shows that journal row j took effect. */
static int row_done(const struct pitem *it, const struct cmb_pjournal *j)
{
	if (j->op == CMB_PJ_DELETE)
		return !it || it->site_version == 0;
	return it && it->site_version == j->version && strcmp(it->site_hash, j->hash) == 0;
}

int cmb_ppoll_reconcile(struct ppoll *pp)
{
	struct cmb_state *st = pp->env->state;
	struct cmb_pjournal *open = NULL;
	size_t n = 0;
	int rc = cmb_state_pjournal_open(st, &open, &n);
	if (rc < 0 || n == 0)
		return rc;
	if ((rc = cmb_state_begin(st)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct pitem *it = cmb_ppoll_find(pp, open[i].policy_id);
			int done = row_done(it, &open[i]);
			/* Not done: the write never reached the site; the plan sends it once, under a new row. */
			rc = cmb_state_pjournal_outcome(st, open[i].id, done ? CMB_PJ_ADOPTED : CMB_PJ_ABANDONED, NULL,
							pp->now);
			if (done)
				pp->stats->adopted++;
			cmb_info("policy %s: an interrupted %s of version %lld %s", open[i].policy_id,
				 cmb_state_pjournal_op_name(open[i].op), (long long)open[i].version,
				 done ? "took effect at the site: not sent again" : "never reached the site");
		}
		rc = rc == 0 ? cmb_state_commit(st) : (cmb_state_rollback(st), rc);
	}
	cmb_state_pjournal_free(open, n);
	return rc;
}

/* ---- writes ---- */

/* Journals the write, committed before anything is sent. */
static int journal(struct ppoll *pp, const struct pitem *it, enum cmb_pjournal_op op, int64_t version,
		   const char *hash, int64_t *jid)
{
	struct cmb_state *st = pp->env->state;
	int rc = cmb_state_begin(st);
	if (rc == 0 && (rc = cmb_state_pjournal_add(st, it->row.id, op, version, hash, pp->now, jid)) == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

/* The outcome and what follows from it, in one transaction. */
static int record_put(struct ppoll *pp, struct pitem *it, int64_t jid, enum cmb_pjournal_outcome o,
		      const char *message)
{
	struct cmb_state *st = pp->env->state;
	int rc = cmb_state_begin(st);
	if (rc == 0 && jid > 0) /* 0: no row (found held after a 409, nothing sent) */
		rc = cmb_state_pjournal_outcome(st, jid, o, message, pp->now);
	if (rc == 0 && o == CMB_PJ_DONE) {
		it->site_version = it->version;
		snprintf(it->site_hash, sizeof(it->site_hash), "%s", it->hash);
		if (it->row.state == CMB_PSTATE_PENDING)
			it->row.state = CMB_PSTATE_APPLIED;
		rc = cmb_state_policy_set_site(st, it->row.id, it->version, it->hash);
	}
	if (rc == 0 && o == CMB_PJ_REFUSED) {
		it->row.state = CMB_PSTATE_REJECTED;
		it->reasons.v = xrealloc(it->reasons.v, (it->reasons.n + 1) * sizeof(*it->reasons.v));
		it->reasons.v[it->reasons.n++] = xasprintf("the site refused the document: %s", message);
		rc = cmb_state_policy_set_reasons(st, it->row.id, (const char *const *)it->reasons.v, it->reasons.n);
	}
	if (rc == 0)
		rc = cmb_state_policy_set_state(st, it->row.id, it->row.state, pp->now);
	if (rc == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

/* One PUT of the planned document: 0 (stored, refused or in conflict: outcomes), or a failure to retry later. */
static int put_once(struct ppoll *pp, struct pitem *it, long *status)
{
	const struct cmb_policy_env *env = pp->env;
	int64_t jid = 0;
	int rc = journal(pp, it, CMB_PJ_PUT, it->version, it->hash, &jid);
	if (rc < 0)
		return rc;
	struct cmb_site_policy_put res;
	rc = env->site->policy_put(env->policy_st, it->row.id, it->doc, it->doc_len, &res);
	*status = rc == CMB_EHTTP ? res.status : 0;
	if (rc == 0) {
		int same = strcmp(res.state, "unchanged") == 0;
		if (same)
			pp->stats->unchanged++;
		else
			pp->stats->written++;
		cmb_info("policy %s (%s): version %lld %s at the site (%ld settings, targets %s)", it->row.id, it->row.name,
			 (long long)it->version, same ? "already held" : res.state, it->settings, it->row.targets);
		return record_put(pp, it, jid, CMB_PJ_DONE, NULL);
	}
	if (rc != CMB_EHTTP)
		return rc; /* no answer: the row stays open and the next poll reads the site back */
	char *msg = xstrdup(cmb_error_last());
	pp->stats->refused++;
	cmb_warn("policy %s (%s): the site refused version %lld: %s", it->row.id, it->row.name, (long long)it->version,
		 msg);
	rc = record_put(pp, it, jid, res.status == 409 ? CMB_PJ_CONFLICT : CMB_PJ_REFUSED, msg);
	free(msg);
	return rc;
}

/* The site's version and hash of one document now (after a 409). */
static int reread_site(struct ppoll *pp, struct pitem *it)
{
	const struct cmb_policy_env *env = pp->env;
	struct cmb_site_policy_entry *e = NULL;
	size_t n = 0;
	int rc = env->site->policy_list(env->policy_st, &e, &n);
	if (rc < 0)
		return rc;
	it->site_version = 0;
	it->site_hash[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].id, it->row.id) == 0) {
			it->site_version = e[i].version;
			snprintf(it->site_hash, sizeof(it->site_hash), "%s", e[i].hash);
		}
	cmb_site_policy_entries_free(e, n);
	return 0;
}

static int write_put(struct ppoll *pp, struct pitem *it)
{
	long status = 0;
	int rc = put_once(pp, it, &status);
	if (rc < 0 || status != 409)
		return rc;
	/* The site holds a newer version, or this one with other content (a lost state): one above it, once. */
	if ((rc = reread_site(pp, it)) < 0 || (rc = cmb_ppoll_replan(pp, it)) < 0)
		return rc;
	if (it->site_version == it->version && strcmp(it->site_hash, it->hash) == 0)
		return record_put(pp, it, 0, CMB_PJ_DONE, NULL);
	return put_once(pp, it, &status);
}

static int write_delete(struct ppoll *pp, struct pitem *it)
{
	const struct cmb_policy_env *env = pp->env;
	struct cmb_state *st = env->state;
	int64_t jid = 0;
	int existed = 0;
	int rc = journal(pp, it, CMB_PJ_DELETE, it->site_version, it->site_hash, &jid);
	if (rc == 0)
		rc = env->site->policy_delete(env->policy_st, it->row.id, &existed);
	if (rc < 0)
		return rc;
	pp->stats->removed++;
	cmb_info("policy %s (%s): version %lld removed from the site%s", it->row.id, it->row.name,
		 (long long)it->site_version, existed ? "" : " (it was no longer there)");
	it->site_version = 0;
	it->site_hash[0] = '\0';
	if ((rc = cmb_state_begin(st)) == 0 && (rc = cmb_state_pjournal_outcome(st, jid, CMB_PJ_DONE, NULL, pp->now)) == 0)
		rc = cmb_state_policy_set_site(st, it->row.id, 0, "");
	if (rc == 0 && it->row.state == CMB_PSTATE_REMOVING && it->listed) {
		it->row.state = CMB_PSTATE_PENDING; /* unassigned: back when it is assigned again */
		rc = cmb_state_policy_set_state(st, it->row.id, it->row.state, pp->now);
	}
	if (rc == 0)
		return cmb_state_commit(st);
	cmb_state_rollback(st);
	return rc;
}

/* A policy gone from the tenant whose document is gone too is forgotten. */
static int forget(struct ppoll *pp, struct pitem *it)
{
	if (it->listed || it->site_version != 0)
		return 0;
	cmb_info("policy %s (%s): gone from the tenant and from the site; forgotten", it->row.id, it->row.name);
	return cmb_state_policy_delete(pp->env->state, it->row.id);
}

int cmb_ppoll_apply(struct ppoll *pp)
{
	int rc = 0;
	for (size_t i = 0; i < pp->n && rc == 0; i++) {
		struct pitem *it = &pp->items[i];
		if (cmb_stop_requested())
			return cmb_error_set(CMB_ECANCELED, "policy poll stopped on request");
		char cid[96];
		snprintf(cid, sizeof(cid), "policy-%.36s-v%lld", it->row.id, (long long)it->version);
		cmb_log_set_cid(cid);
		if (it->action == CMB_PACT_PUT)
			rc = write_put(pp, it);
		else if (it->action == CMB_PACT_DELETE)
			rc = write_delete(pp, it);
		if (rc == 0)
			rc = forget(pp, it);
		cmb_log_set_cid("policy");
	}
	return rc;
}

/* ---- compliance ---- */

static int pdevice_state(const char *s, enum cmb_pdevice_state *out)
{
	return cmb_state_pdevice_state_parse(s, out);
}

static int store_compliance(struct ppoll *pp, struct pitem *it, const struct cmb_site_policy_compliance *c)
{
	struct cmb_pcoll_counts *counts = xcalloc(c->n_collections + 1, sizeof(*counts));
	struct cmb_pdevice *devs = xcalloc(c->n_devices + 1, sizeof(*devs));
	int rc = 0;
	for (size_t i = 0; i < c->n_collections; i++) {
		const struct cmb_site_policy_counts *s = &c->collections[i];
		counts[i] = (struct cmb_pcoll_counts){
			.targeted = s->targeted, .compliant = s->compliant, .non_compliant = s->non_compliant,
			.error = s->error, .conflict = s->conflict, .not_applicable = s->not_applicable,
		};
		snprintf(counts[i].collection_id, sizeof(counts[i].collection_id), "%s", s->collection_id);
	}
	for (size_t i = 0; i < c->n_devices && rc == 0; i++) {
		struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
		for (size_t k = 0; k < c->devices[i].n_failing; k++)
			cmb_buf_printf(&b, "%s%s", k ? "," : "", c->devices[i].failing[k]);
		devs[i].resource_id = c->devices[i].resource_id;
		devs[i].failing = cmb_buf_detach(&b, NULL);
		rc = pdevice_state(c->devices[i].state, &devs[i].state);
	}
	struct cmb_state *st = pp->env->state;
	if (rc == 0 && (rc = cmb_state_begin(st)) == 0) {
		rc = cmb_state_policy_set_compliance(st, it->row.id, c->version, pp->now, counts, c->n_collections, devs,
						     c->n_devices);
		rc = rc == 0 ? cmb_state_commit(st) : (cmb_state_rollback(st), rc);
	}
	for (size_t i = 0; i < c->n_devices; i++)
		free(devs[i].failing);
	free(devs);
	free(counts);
	return rc;
}

static int read_compliance(struct ppoll *pp, struct pitem *it)
{
	const struct cmb_policy_env *env = pp->env;
	struct cmb_site_policy_compliance c = { 0 };
	int rc = env->site->policy_compliance(env->policy_st, it->row.id, &c);
	if (rc == CMB_ENOTFOUND) {
		cmb_error_clear();
		return 0; /* gone since the listing: the next poll sees it */
	}
	if (rc < 0)
		return rc;
	pp->stats->compliance++;
	/* States of another version than the one the site confirmed say nothing about it. */
	if (c.version == it->site_version && strcmp(c.hash, it->site_hash) == 0)
		rc = store_compliance(pp, it, &c);
	cmb_site_policy_compliance_clear(&c);
	return rc;
}

/* ---- the status posted to the tenant ---- */

/* One policy's status as posted, with what its members point to. */
struct pstatus {
	struct cmb_tenant_policy_status s;
	char **reasons;
	size_t n_reasons;
	struct cmb_pcoll_counts *counts;
	struct cmb_tenant_policy_collection *colls;
	struct cmb_pdevice *devs;
	size_t n_devs;
	struct cmb_tenant_policy_device *tdevs;
	char **keys;
	char ***failing;
	char digest[65];
	struct pitem *it;
};

static void pstatus_clear(struct pstatus *p)
{
	for (size_t i = 0; i < p->n_reasons; i++)
		free(p->reasons[i]);
	free(p->reasons);
	for (size_t i = 0; p->keys && i < p->n_devs; i++) {
		free(p->keys[i]);
		for (size_t k = 0; p->failing[i] && p->failing[i][k]; k++)
			free(p->failing[i][k]);
		free(p->failing[i]);
	}
	free(p->keys);
	free(p->failing);
	free(p->tdevs);
	free(p->colls);
	free(p->counts);
	cmb_state_pdevices_free(p->devs, p->n_devs);
	memset(p, 0, sizeof(*p));
}

/* "a,b" into a NULL-terminated array of n strings. */
static char **split_commas(const char *s, size_t *n)
{
	char **v = xcalloc(strlen(s) / 2 + 2, sizeof(*v));
	*n = 0;
	for (const char *p = s; *p;) {
		size_t len = strcspn(p, ",");
		v[(*n)++] = xstrndup(p, len);
		p += len + (p[len] == ',');
	}
	return v;
}

static void status_devices(struct ppoll *pp, struct pstatus *p)
{
	p->tdevs = xcalloc(p->n_devs + 1, sizeof(*p->tdevs));
	p->keys = xcalloc(p->n_devs + 1, sizeof(*p->keys));
	p->failing = xcalloc(p->n_devs + 1, sizeof(*p->failing));
	for (size_t i = 0; i < p->n_devs; i++) {
		const struct cmb_pdevice *d = &p->devs[i];
		if (d->state == CMB_PDEV_PENDING)
			continue; /* only devices that reported */
		size_t nf;
		p->keys[i] = xasprintf("%s:%u", pp->env->cfg->site_code, d->resource_id);
		p->failing[i] = split_commas(d->failing, &nf);
		p->tdevs[p->s.n_devices++] = (struct cmb_tenant_policy_device){
			.key = p->keys[i], .state = cmb_state_pdevice_state_name(d->state),
			.failing = (const char *const *)p->failing[i], .n_failing = nf,
		};
	}
}

/* The digest of what would be posted: posted again only when it changes. */
static void status_digest(struct pstatus *p)
{
	struct cmb_buf b = CMB_BUF_INIT(SIZE_MAX / 2);
	cmb_buf_printf(&b, "%s\n%s\n", p->s.policy_id, p->s.state);
	for (size_t i = 0; i < p->s.n_reasons; i++)
		cmb_buf_printf(&b, "R %s\n", p->s.reasons[i]);
	for (size_t i = 0; i < p->s.n_collections; i++) {
		const struct cmb_tenant_policy_collection *c = &p->s.collections[i];
		cmb_buf_printf(&b, "C %s %ld %ld %ld %ld %ld %ld\n", c->collection_id, c->targeted, c->compliant,
			       c->non_compliant, c->error, c->conflict, c->not_applicable);
	}
	for (size_t i = 0; i < p->s.n_devices; i++) {
		cmb_buf_printf(&b, "D %s %s", p->s.devices[i].key, p->s.devices[i].state);
		for (size_t k = 0; k < p->s.devices[i].n_failing; k++)
			cmb_buf_printf(&b, " %s", p->s.devices[i].failing[k]);
		cmb_buf_printf(&b, "\n");
	}
	size_t len;
	char *text = cmb_buf_detach(&b, &len);
	cmb_sha256_hex(text, len, p->digest);
	free(text);
}

static int build_status(struct ppoll *pp, struct pitem *it, struct pstatus *p)
{
	struct cmb_state *st = pp->env->state;
	size_t n_c = 0;
	int rc = cmb_state_policy_reasons(st, it->row.id, &p->reasons, &p->n_reasons);
	if (rc == 0)
		rc = cmb_state_policy_compliance(st, it->row.id, &p->counts, &n_c, &p->devs, &p->n_devs);
	if (rc < 0)
		return rc;
	p->it = it;
	p->colls = xcalloc(n_c + 1, sizeof(*p->colls));
	for (size_t i = 0; i < n_c; i++) {
		const struct cmb_pcoll_counts *c = &p->counts[i];
		p->colls[i] = (struct cmb_tenant_policy_collection){
			.collection_id = c->collection_id, .targeted = c->targeted, .compliant = c->compliant,
			.non_compliant = c->non_compliant, .error = c->error, .conflict = c->conflict,
			.not_applicable = c->not_applicable,
		};
	}
	p->s = (struct cmb_tenant_policy_status){
		.policy_id = it->row.id, .state = cmb_state_policy_state_name(it->row.state),
		.reasons = (const char *const *)p->reasons, .n_reasons = p->n_reasons, .collections = p->colls,
		.n_collections = n_c,
	};
	status_devices(pp, p);
	p->s.devices = p->tdevs;
	status_digest(p);
	return 0;
}

/* Posts v[0..n) in slices of at most STATUS_DEVICES devices each; the tenant upserts devices by key. */
static int post_batch(struct ppoll *pp, struct pstatus *v, size_t n)
{
	const struct cmb_policy_env *env = pp->env;
	struct cmb_tenant_policy_status *s = xcalloc(n, sizeof(*s));
	int *accepted = xcalloc(n, sizeof(*accepted));
	int rc = 0, more = 1;
	for (size_t off = 0; more && rc == 0; off += STATUS_DEVICES) {
		more = 0;
		for (size_t i = 0; i < n; i++) {
			s[i] = v[i].s;
			size_t left = v[i].s.n_devices > off ? v[i].s.n_devices - off : 0;
			s[i].devices = v[i].s.devices + (left ? off : 0);
			s[i].n_devices = left > STATUS_DEVICES ? STATUS_DEVICES : left;
			more |= left > STATUS_DEVICES;
		}
		char batch_id[37];
		cmb_uuid4(batch_id);
		const struct cmb_tenant_policy_status_batch b = { .batch_id = batch_id, .policies = s, .n = n };
		rc = env->tenant->post_policy_status(env->tenant_st, &b, accepted);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (accepted[i])
			pp->stats->reported++;
		else
			cmb_warn("policy %s: the tenant does not know it; its status is not kept there", v[i].s.policy_id);
		rc = cmb_state_policy_set_reported(env->state, v[i].s.policy_id, v[i].digest);
	}
	free(accepted);
	free(s);
	return rc;
}

static int reportable(const struct pitem *it)
{
	enum cmb_policy_state s = it->row.state;
	return it->listed && it->for_connector &&
	       (s == CMB_PSTATE_APPLIED || s == CMB_PSTATE_REJECTED || s == CMB_PSTATE_CONFLICT || s == CMB_PSTATE_PENDING);
}

static int post_statuses(struct ppoll *pp)
{
	struct pstatus *v = xcalloc(STATUS_BATCH, sizeof(*v));
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < pp->n && rc == 0; i++) {
		if (!reportable(&pp->items[i]))
			continue;
		if ((rc = build_status(pp, &pp->items[i], &v[n])) < 0)
			break;
		if (strcmp(v[n].digest, pp->items[i].row.reported_hash) == 0) {
			pstatus_clear(&v[n]); /* the tenant has this already */
			continue;
		}
		if (++n == STATUS_BATCH) {
			rc = post_batch(pp, v, n);
			for (size_t k = 0; k < n; k++)
				pstatus_clear(&v[k]);
			n = 0;
		}
	}
	if (rc == 0 && n)
		rc = post_batch(pp, v, n);
	for (size_t k = 0; k < n; k++)
		pstatus_clear(&v[k]);
	free(v);
	return rc;
}

int cmb_ppoll_report(struct ppoll *pp)
{
	int rc = 0;
	for (size_t i = 0; i < pp->n && rc == 0; i++) {
		struct pitem *it = &pp->items[i];
		if (it->listed && it->site_version > 0 &&
		    (it->row.state == CMB_PSTATE_APPLIED || it->row.state == CMB_PSTATE_CONFLICT))
			rc = read_compliance(pp, it);
	}
	return rc == 0 ? post_statuses(pp) : rc;
}
