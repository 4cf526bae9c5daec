/*
 * test_policy_engine.c - the policy relay's poll against a scripted
 * tenant and site (no sockets): a policy written once and not again, a
 * crash between the journal row and its outcome settled by reading the
 * site back (adopted, or sent once), a write without an answer leaving its
 * row open, a 409 answered with a version above the site's, a 400 turning
 * into a rejection, a lost state adopting what the site holds, and staging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/engine/policy.h"
#include "connector/store/state.h"
#include "tests/unit/fixture.h"

#define MAX_P 8
#define PID "0f0e0d0c-0b0a-4909-8807-060504030201"
#define RTM "device_vendor_msft_policy_config_defender_allowrealtimemonitoring"

/* ---- scripted tenant: policies as Graph returns them ---- */

struct tpol {
	char id[40];
	char modified[40];
	int value;               /* allowrealtimemonitoring option */
	int assigned;
	int broken;              /* get_policy answers a body cut short */
};

struct fake_tenant {
	struct tpol p[MAX_P];
	int n;
	int gets, posts;
};

static char *policy_json(const struct tpol *p, int whole)
{
	char *settings = whole ? xasprintf(",\"settings\":[{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationSetting\","
					   "\"id\":\"0\",\"settingInstance\":{\"@odata.type\":\"#microsoft.graph."
					   "deviceManagementConfigurationChoiceSettingInstance\",\"settingDefinitionId\":\"" RTM "\","
					   "\"choiceSettingValue\":{\"value\":\"" RTM "_%d\",\"children\":[]}}}],\"assignments\":[%s]",
					   p->value, p->assigned ? "{\"target\":{\"@odata.type\":\"#microsoft.graph."
								   "configurationManagerCollectionAssignmentTarget\","
								   "\"collectionId\":\"PS100012\"}}" : "")
			       : xstrdup("");
	char *j = xasprintf("{\"@odata.type\":\"#microsoft.graph.deviceManagementConfigurationPolicy\",\"id\":\"%s\","
			    "\"name\":\"AV\",\"platforms\":\"windows10\",\"technologies\":\"configManager\","
			    "\"lastModifiedDateTime\":\"%s\",\"templateReference\":{\"templateFamily\":"
			    "\"endpointSecurityAntivirus\"}%s}", p->id, p->modified, settings);
	free(settings);
	return j;
}

static int t_list(void *st, const char *query, cmb_tenant_device_cb cb, void *ctx, long *pages)
{
	(void)query, (void)pages;
	struct fake_tenant *t = st;
	for (int i = 0; i < t->n; i++) {
		char *j = policy_json(&t->p[i], 0);
		int rc = cb(ctx, t->p[i].id, j, strlen(j));
		free(j);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int t_get(void *st, const char *id, const char *query, char **json, size_t *len)
{
	(void)query;
	struct fake_tenant *t = st;
	t->gets++;
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->p[i].id, id) == 0) {
			*json = policy_json(&t->p[i], 1);
			*len = strlen(*json);
			if (t->p[i].broken)
				*len /= 2;
			return 0;
		}
	return cmb_error_set(CMB_ENOTFOUND, "no policy %s (scripted)", id);
}

static int t_post(void *st, const struct cmb_tenant_policy_status_batch *b, int *accepted)
{
	struct fake_tenant *t = st;
	t->posts++;
	for (size_t i = 0; i < b->n; i++)
		accepted[i] = 1;
	return 0;
}

static const struct cmb_tenant_adapter fake_tenant_adapter = {
	.version = CMB_TENANT_ADAPTER_VERSION, .name = "fake", .list_policies = t_list, .get_policy = t_get,
	.post_policy_status = t_post,
};

/* ---- scripted site: the policy document store ---- */

struct sdoc {
	char id[40];
	int64_t version;
	char hash[65];
};

struct fake_site {
	struct sdoc d[MAX_P];
	int n;
	int puts, writes, deletes;
	int put_fail;            /* the next PUT: 0 ok, -1 taken but no answer, 400, 409 */
	int64_t conflict_version;/* 409: the version the site holds */
};

static struct sdoc *s_find(struct fake_site *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->d[i].id, id) == 0)
			return &s->d[i];
	return NULL;
}

/* The version and contentHash attributes of a document. */
static void doc_attrs(const char *xml, int64_t *version, char hash[65])
{
	const char *root = strstr(xml, "<cmbridgePolicy");
	const char *v = root ? strstr(root, " version=\"") : NULL, *h = root ? strstr(root, " contentHash=\"") : NULL;
	*version = v ? strtoll(v + 10, NULL, 10) : 0;
	snprintf(hash, 65, "%.64s", h ? h + 14 : "");
}

static int s_put(void *pst, const char *id, const char *xml, size_t len, struct cmb_site_policy_put *out)
{
	(void)len;
	struct fake_site *s = pst;
	int64_t v;
	char h[65];
	doc_attrs(xml, &v, h);
	s->puts++;
	memset(out, 0, sizeof(*out));
	int fail = s->put_fail;
	s->put_fail = 0;
	if (fail == 400 || fail == 409) {
		if (fail == 409) {
			struct sdoc *d = s_find(s, id);
			if (!d) {
				d = &s->d[s->n++];
				snprintf(d->id, sizeof(d->id), "%s", id);
			}
			d->version = s->conflict_version;
			memset(d->hash, 'f', 64);
			d->hash[64] = '\0';
		}
		out->status = fail;
		return cmb_error_set(CMB_EHTTP, "site: HTTP %d (scripted)", fail);
	}
	struct sdoc *d = s_find(s, id);
	if (d && d->version == v && strcmp(d->hash, h) == 0) {
		snprintf(out->state, sizeof(out->state), "unchanged");
	} else {
		if (!d) {
			d = &s->d[s->n++];
			snprintf(d->id, sizeof(d->id), "%s", id);
		}
		d->version = v;
		snprintf(d->hash, sizeof(d->hash), "%s", h);
		s->writes++;
		snprintf(out->state, sizeof(out->state), "updated");
	}
	if (fail < 0)
		return cmb_error_set(CMB_ENETWORK, "site: the reply was lost (scripted)");
	return 0;
}

static int s_delete(void *pst, const char *id, int *existed)
{
	struct fake_site *s = pst;
	struct sdoc *d = s_find(s, id);
	*existed = d != NULL;
	if (d) {
		*d = s->d[--s->n];
		s->deletes++;
	}
	return 0;
}

static int s_list(void *pst, struct cmb_site_policy_entry **out, size_t *n)
{
	struct fake_site *s = pst;
	struct cmb_site_policy_entry *e = xcalloc((size_t)s->n + 1, sizeof(*e));
	for (int i = 0; i < s->n; i++) {
		e[i].id = xstrdup(s->d[i].id);
		e[i].version = s->d[i].version;
		snprintf(e[i].hash, sizeof(e[i].hash), "%s", s->d[i].hash);
	}
	*out = e;
	*n = (size_t)s->n;
	return 0;
}

static int s_compliance(void *pst, const char *id, struct cmb_site_policy_compliance *out)
{
	struct fake_site *s = pst;
	struct sdoc *d = s_find(s, id);
	if (!d)
		return CMB_ENOTFOUND;
	memset(out, 0, sizeof(*out));
	out->version = d->version;
	snprintf(out->hash, sizeof(out->hash), "%s", d->hash);
	out->reported = 1;
	out->collections = xcalloc(1, sizeof(*out->collections));
	out->n_collections = 1;
	snprintf(out->collections[0].collection_id, sizeof(out->collections[0].collection_id), "PS100012");
	out->collections[0].targeted = 2;
	out->collections[0].compliant = 1;
	out->collections[0].error = 1;
	out->devices = xcalloc(2, sizeof(*out->devices));
	out->n_devices = 2;
	out->devices[0] = (struct cmb_site_policy_device){ .resource_id = 16777220, .state = "compliant" };
	out->devices[1] = (struct cmb_site_policy_device){ .resource_id = 16777221, .state = "error" };
	out->devices[1].failing = xcalloc(1, sizeof(char *));
	out->devices[1].failing[0] = xstrdup(RTM);
	out->devices[1].n_failing = 1;
	return 0;
}

static const struct cmb_site_adapter fake_site_adapter = {
	.version = CMB_SITE_ADAPTER_VERSION, .name = "fake", .policy_put = s_put, .policy_delete = s_delete,
	.policy_list = s_list, .policy_compliance = s_compliance,
};

/* ---- fixture ---- */

struct fx {
	char dir[FX_DIR_SIZE];
	struct cmb_config cfg;
	struct cmb_state *st;
	struct fake_tenant tenant;
	struct fake_site site;
	struct cmb_policy_env env;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "polengine") < 0)
		return -1;
	f->cfg.site_code = "PS1";
	f->cfg.state_dir = f->dir;
	cmb_log_set_level(CMB_LOG_ERROR);
	if (cmb_state_open(&f->st, f->dir) < 0 ||
	    cmb_state_collection_put(f->st, "PS1:PS100012", "tc-1", "h", "2024-01-01T00:00:00Z") < 0)
		return -1;
	f->tenant.n = 1;
	f->tenant.p[0] = (struct tpol){ .id = PID, .modified = "2026-01-01T00:00:00Z", .value = 1, .assigned = 1 };
	f->env = (struct cmb_policy_env){
		.cfg = &f->cfg, .state = f->st, .site = &fake_site_adapter, .policy_st = &f->site,
		.tenant = &fake_tenant_adapter, .tenant_st = &f->tenant,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_state_close(f->st);
	fx_rmtree(f->dir);
	free(f);
	return 0;
}

static int poll(struct fx *f, struct cmb_policy_stats *s)
{
	return cmb_policy_poll(&f->env, NULL, s);
}

static struct cmb_policy_row row(struct fx *f)
{
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), 0);
	return p;
}

static long open_rows(struct fx *f)
{
	struct cmb_pjournal *j;
	size_t n;
	assert_int_equal(cmb_state_pjournal_open(f->st, &j, &n), 0);
	cmb_state_pjournal_free(j, n);
	return (long)n;
}

/* The tenant changes the policy: a new value and lastModifiedDateTime. */
static void edit(struct fx *f, int value, const char *modified)
{
	f->tenant.p[0].value = value;
	snprintf(f->tenant.p[0].modified, sizeof(f->tenant.p[0].modified), "%s", modified);
}

/* ---- tests ---- */

static void written_once(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.written, 1);
	assert_int_equal(s.reported, 1);
	assert_int_equal(f->site.n, 1);
	assert_int_equal(f->site.d[0].version, 1);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.state, CMB_PSTATE_APPLIED);
	assert_int_equal(p.site_version, 1);
	assert_string_equal(p.site_hash, f->site.d[0].hash);
	cmb_state_policy_clear(&p);
	/* Compliance kept as the site gave it. */
	struct cmb_pcoll_counts *c;
	struct cmb_pdevice *d;
	size_t nc, nd;
	assert_int_equal(cmb_state_policy_compliance(f->st, PID, &c, &nc, &d, &nd), 0);
	assert_int_equal(nc, 1);
	assert_int_equal(c[0].error, 1);
	assert_int_equal(nd, 2);
	assert_int_equal(d[1].state, CMB_PDEV_ERROR);
	assert_string_equal(d[1].failing, RTM);
	free(c);
	cmb_state_pdevices_free(d, nd);
	/* Again: not read again, not written again, the same status not posted again. */
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(f->tenant.gets, 1);
	assert_int_equal(f->site.puts, 1);
	assert_int_equal(f->tenant.posts, 1);
	/* A change: read again, version 2. */
	edit(f, 0, "2026-01-02T00:00:00Z");
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(f->tenant.gets, 2);
	assert_int_equal(f->site.d[0].version, 2);
	assert_int_equal(s.written, 1);
	/* A second edit within the same second: only the fraction moved, and that is enough. */
	edit(f, 1, "2026-01-02T00:00:00.5000000Z");
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(f->tenant.gets, 3);
	assert_int_equal(f->site.d[0].version, 3);
}

/* A write the site took but whose answer was lost: the row stays open, the next poll adopts it. */
static void lost_reply_adopted(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	f->site.put_fail = -1;
	assert_int_equal(poll(f, &s), CMB_ENETWORK);
	assert_int_equal(open_rows(f), 1);
	assert_int_equal(f->site.writes, 1);
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.adopted, 1);
	assert_int_equal(s.written + s.unchanged, 0); /* nothing sent again */
	assert_int_equal(f->site.puts, 1);
	assert_int_equal(open_rows(f), 0);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.state, CMB_PSTATE_APPLIED);
	assert_int_equal(p.site_version, 1);
	cmb_state_policy_clear(&p);
	struct cmb_pjournal *j;
	size_t n;
	assert_int_equal(cmb_state_pjournal_recent(f->st, PID, 5, &j, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(j[0].outcome, CMB_PJ_ADOPTED);
	cmb_state_pjournal_free(j, n);
}

/* A row left open by a crash before the request went out: abandoned, and the write sent once. */
static void crash_before_send(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	assert_int_equal(poll(f, &s), 0);
	edit(f, 0, "2026-01-02T00:00:00Z");
	int64_t jid;
	assert_int_equal(cmb_state_pjournal_add(f->st, PID, CMB_PJ_PUT, 2, "00", 1, &jid), 0);
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.adopted, 0);
	assert_int_equal(s.written, 1);
	assert_int_equal(f->site.d[0].version, 2);
	assert_int_equal(open_rows(f), 0);
	struct cmb_pjournal *j;
	size_t n;
	assert_int_equal(cmb_state_pjournal_recent(f->st, PID, 5, &j, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(j[1].id, jid);
	assert_int_equal(j[1].outcome, CMB_PJ_ABANDONED);
	assert_int_equal(j[0].outcome, CMB_PJ_DONE);
	cmb_state_pjournal_free(j, n);
}

/* 409: the site holds a newer version; one PUT above it follows, in the same poll. */
static void conflict_bumps(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	f->site.put_fail = 409;
	f->site.conflict_version = 7;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.refused, 1);
	assert_int_equal(s.written, 1);
	assert_int_equal(f->site.d[0].version, 8);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.version, 8);
	assert_int_equal(p.site_version, 8);
	assert_int_equal(p.state, CMB_PSTATE_APPLIED);
	cmb_state_policy_clear(&p);
}

/* 400: the site refused the document: rejected, with the site's reason. */
static void refused_rejects(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	f->site.put_fail = 400;
	assert_int_equal(poll(f, &s), 0);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.state, CMB_PSTATE_REJECTED);
	assert_int_equal(p.site_version, 0);
	cmb_state_policy_clear(&p);
	char **r;
	size_t n;
	assert_int_equal(cmb_state_policy_reasons(f->st, PID, &r, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0], "the site refused the document: site: HTTP 400 (scripted)");
	free(r[0]);
	free(r);
}

/* A lost state: the site's document of the same content is adopted at its version, not rewritten. */
static void lost_state_adopts(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	assert_int_equal(poll(f, &s), 0);
	f->site.d[0].version = 5; /* as if written long ago at 5 with this content */
	cmb_state_close(f->st);
	fx_rmtree(f->dir);
	assert_int_equal(cmb_state_open(&f->st, f->dir), 0);
	assert_int_equal(cmb_state_collection_put(f->st, "PS1:PS100012", "tc-1", "h", "2024-01-01T00:00:00Z"), 0);
	f->env.state = f->st;
	int puts = f->site.puts;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(f->site.puts, puts);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.version, 5);
	assert_int_equal(p.state, CMB_PSTATE_APPLIED);
	cmb_state_policy_clear(&p);
}

/* Unassigned, then deleted: removed from the site, then forgotten. */
static void unassign_delete(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	assert_int_equal(poll(f, &s), 0);
	f->tenant.p[0].assigned = 0;
	snprintf(f->tenant.p[0].modified, sizeof(f->tenant.p[0].modified), "2026-01-03T00:00:00Z");
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.removed, 1);
	assert_int_equal(f->site.n, 0);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.state, CMB_PSTATE_PENDING);
	cmb_state_policy_clear(&p);
	f->tenant.n = 0;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(cmb_state_policy_get(f->st, PID, &p), CMB_ENOTFOUND);
	assert_int_equal(f->site.deletes, 1);
}

/* A body Graph sent that cannot be taken rejects that policy, saying why; the others go on. */
static void unreadable_rejected(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	f->tenant.n = 2;
	f->tenant.p[1] = (struct tpol){ .id = "1f0e0d0c-0b0a-4909-8807-060504030201", .modified = "2026-01-01T00:00:00Z",
					.value = 1, .assigned = 1, .broken = 1 };
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.written, 1);
	assert_int_equal(s.rejected, 1);
	struct cmb_policy_row p;
	assert_int_equal(cmb_state_policy_get(f->st, f->tenant.p[1].id, &p), 0);
	assert_int_equal(p.state, CMB_PSTATE_REJECTED);
	cmb_state_policy_clear(&p);
	char **r;
	size_t n;
	assert_int_equal(cmb_state_policy_reasons(f->st, f->tenant.p[1].id, &r, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(r[0], "the policy could not be read from the tenant: tenant: configuration policy "
				     "1f0e0d0c-0b0a-4909-8807-060504030201"));
	free(r[0]);
	free(r);
	/* Fixed in the tenant: read again, applied. */
	f->tenant.p[1].broken = 0;
	snprintf(f->tenant.p[1].modified, sizeof(f->tenant.p[1].modified), "2026-01-05T00:00:00Z");
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.written, 1);
	assert_int_equal(f->site.n, 2);
}

/* Staging: the plan is kept, nothing reaches the site or the tenant. */
static void staging_writes_nothing(void **state)
{
	struct fx *f = *state;
	struct cmb_policy_stats s;
	f->cfg.mode = CMB_MODE_STAGING;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(s.staged, 1);
	assert_int_equal(f->site.puts, 0);
	assert_int_equal(f->tenant.posts, 0);
	struct cmb_policy_row p = row(f);
	assert_int_equal(p.state, CMB_PSTATE_PENDING);
	assert_int_equal(p.version, 1);
	cmb_state_policy_clear(&p);
	f->cfg.mode = CMB_MODE_NORMAL;
	assert_int_equal(poll(f, &s), 0);
	assert_int_equal(f->site.d[0].version, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(written_once),
		T(lost_reply_adopted),
		T(crash_before_send),
		T(conflict_bumps),
		T(refused_rejects),
		T(lost_state_adopts),
		T(unassign_delete),
		T(staging_writes_nothing),
		T(unreadable_rejected),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
