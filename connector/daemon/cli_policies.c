/*
 * cli_policies.c - `cmbridge policies` and `cmbridge diff --policies`
 * (cli_policies.h): the policy relay's state as a listing or one policy in
 * detail, one poll run here, and what a poll would write.
 *
 * The listing opens the state read-only (works while `run` runs); the diff
 * works on a private copy of it and writes nothing to the site or the
 * tenant; --once holds the state like any writer; --now asks the running
 * daemon for one poll over its control socket, and polls here when none
 * runs. JSON through
 * base/json.h, never built by hand.
 */
#include "connector/daemon/cli_policies.h"
#include "connector/daemon/ctl.h"
#include "connector/daemon/daemon.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/log.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define SHOW_JOURNAL 20          /* journal rows `policies show` lists */

static void json_done(yajl_gen g)
{
	cmb_json_flush(g, stdout);
	fputc('\n', stdout);
	yajl_gen_free(g);
}

/* "a,b" as a JSON array of strings. */
static void gen_list(yajl_gen g, const char *key, const char *commas)
{
	cmb_json_key(g, key);
	yajl_gen_array_open(g);
	for (const char *p = commas ? commas : ""; *p;) {
		size_t len = strcspn(p, ",");
		cmb_json_strn(g, p, len);
		p += len + (p[len] == ',');
	}
	yajl_gen_array_close(g);
}

static void gen_counts(yajl_gen g, const struct cmb_pcoll_counts *c)
{
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "collectionId", c->collection_id);
	cmb_json_kv_int(g, "targeted", c->targeted);
	cmb_json_kv_int(g, "compliant", c->compliant);
	cmb_json_kv_int(g, "nonCompliant", c->non_compliant);
	cmb_json_kv_int(g, "error", c->error);
	cmb_json_kv_int(g, "conflict", c->conflict);
	cmb_json_kv_int(g, "notApplicable", c->not_applicable);
	yajl_gen_map_close(g);
}

/* What one policy's listing entry needs besides its row. */
struct pol_detail {
	char **reasons;
	size_t n_reasons;
	struct cmb_pcoll_counts *colls;
	size_t n_colls;
	struct cmb_pdevice *devs;
	size_t n_devs;
	long by_state[CMB_PDEV_NOT_APPLICABLE + 1];
};

static int detail_read(struct cmb_state *st, const char *id, struct pol_detail *d)
{
	memset(d, 0, sizeof(*d));
	int rc = cmb_state_policy_reasons(st, id, &d->reasons, &d->n_reasons);
	if (rc == 0)
		rc = cmb_state_policy_compliance(st, id, &d->colls, &d->n_colls, &d->devs, &d->n_devs);
	for (size_t i = 0; rc == 0 && i < d->n_devs; i++)
		d->by_state[d->devs[i].state]++;
	return rc;
}

static void detail_clear(struct pol_detail *d)
{
	for (size_t i = 0; i < d->n_reasons; i++)
		free(d->reasons[i]);
	free(d->reasons);
	free(d->colls);
	cmb_state_pdevices_free(d->devs, d->n_devs);
	memset(d, 0, sizeof(*d));
}

static void gen_policy(yajl_gen g, const struct cmb_policy_row *p, const struct pol_detail *d)
{
	char at[32];
	cmb_json_kv_str(g, "id", p->id);
	cmb_json_kv_str(g, "name", p->name);
	cmb_json_kv_str(g, "family", p->family);
	cmb_json_kv_str(g, "state", cmb_state_policy_state_name(p->state));
	cmb_json_kv_str(g, "lastModifiedDateTime", p->modified);
	gen_list(g, "targets", p->targets);
	cmb_json_kv_int(g, "version", p->version);
	cmb_json_kv_int(g, "siteVersion", p->site_version);
	cmb_json_kv_str(g, "contentHash", p->hash[0] ? p->hash : NULL);
	cmb_json_kv_int(g, "settings", p->settings);
	cmb_json_kv_strings(g, "reasons", (const char *const *)d->reasons, d->n_reasons);
	cmb_json_key(g, "compliance");
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "version", p->compliance_version);
	cmb_time_iso8601(p->compliance_at, at);
	cmb_json_kv_str(g, "readAt", p->compliance_at ? at : NULL);
	cmb_json_key(g, "collections");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < d->n_colls; i++)
		gen_counts(g, &d->colls[i]);
	yajl_gen_array_close(g);
	cmb_json_key(g, "devicesByState");
	yajl_gen_map_open(g);
	for (int s = 0; s <= CMB_PDEV_NOT_APPLICABLE; s++)
		cmb_json_kv_int(g, cmb_state_pdevice_state_name((enum cmb_pdevice_state)s), d->by_state[s]);
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	cmb_json_kv_bool(g, "reported", p->reported_hash[0] != '\0');
}

static void print_policy(const struct cmb_policy_row *p, const struct pol_detail *d)
{
	printf("  %-36s %-9s v%-3lld site v%-3lld %-24s %s\n", p->id, cmb_state_policy_state_name(p->state),
	       (long long)p->version, (long long)p->site_version, p->targets[0] ? p->targets : "(no targets)", p->name);
	for (size_t i = 0; i < d->n_colls; i++) {
		const struct cmb_pcoll_counts *c = &d->colls[i];
		printf("      %s: %ld targeted, %ld compliant, %ld nonCompliant, %ld error, %ld conflict, %ld notApplicable\n",
		       c->collection_id, c->targeted, c->compliant, c->non_compliant, c->error, c->conflict,
		       c->not_applicable);
	}
	for (size_t i = 0; i < d->n_reasons; i++)
		printf("      reason: %s\n", d->reasons[i]);
}

static int policies_list(struct cmb_state *st, int json)
{
	struct cmb_policy_row *rows = NULL;
	size_t n = 0;
	long by_state[CMB_PSTATE_COUNT] = { 0 };
	int rc = cmb_state_policies_list(st, &rows, &n);
	if (rc < 0)
		return rc;
	yajl_gen g = json ? cmb_json_new(0) : NULL;
	if (g)
		yajl_gen_array_open(g);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct pol_detail d;
		if ((rc = detail_read(st, rows[i].id, &d)) < 0)
			break;
		by_state[rows[i].state]++;
		if (g) {
			yajl_gen_map_open(g);
			gen_policy(g, &rows[i], &d);
			yajl_gen_map_close(g);
			cmb_json_flush(g, stdout);
		} else {
			print_policy(&rows[i], &d);
		}
		detail_clear(&d);
	}
	if (g) {
		yajl_gen_array_close(g);
		json_done(g);
	} else if (rc == 0) {
		printf("%zu policies", n);
		for (int s = 0; s < CMB_PSTATE_COUNT; s++)
			printf("%s%ld %s", s ? ", " : " (", by_state[s], cmb_state_policy_state_name((enum cmb_policy_state)s));
		printf(")\n");
	}
	cmb_state_policies_free(rows, n);
	return rc;
}

static void gen_devices(yajl_gen g, const struct pol_detail *d)
{
	cmb_json_key(g, "devices");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < d->n_devs; i++) {
		yajl_gen_map_open(g);
		cmb_json_kv_int(g, "resourceId", d->devs[i].resource_id);
		cmb_json_kv_str(g, "state", cmb_state_pdevice_state_name(d->devs[i].state));
		gen_list(g, "failingSettings", d->devs[i].failing);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void gen_journal(yajl_gen g, const struct cmb_pjournal *j, size_t n)
{
	cmb_json_key(g, "journal");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		char at[32];
		yajl_gen_map_open(g);
		cmb_json_kv_int(g, "id", j[i].id);
		cmb_json_kv_str(g, "op", cmb_state_pjournal_op_name(j[i].op));
		cmb_json_kv_int(g, "version", j[i].version);
		cmb_json_kv_str(g, "outcome", cmb_state_pjournal_outcome_name(j[i].outcome));
		cmb_time_iso8601(j[i].intended, at);
		cmb_json_kv_str(g, "intended", at);
		cmb_json_kv_str(g, "message", j[i].message);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void print_show(const struct cmb_policy_row *p, const struct pol_detail *d, const struct cmb_pjournal *j,
		       size_t n_j)
{
	printf("policy %s: %s (%s), lastModifiedDateTime %s\n", p->id, p->name, p->family[0] ? p->family : "no family",
	       p->modified);
	printf("state %s; document version %lld (%ld settings), the site holds version %lld\n",
	       cmb_state_policy_state_name(p->state), (long long)p->version, p->settings, (long long)p->site_version);
	print_policy(p, d);
	for (size_t i = 0; i < d->n_devs; i++)
		printf("    device %u: %s%s%s\n", d->devs[i].resource_id, cmb_state_pdevice_state_name(d->devs[i].state),
		       d->devs[i].failing[0] ? ", failing " : "", d->devs[i].failing);
	printf("journal:\n");
	for (size_t i = 0; i < n_j; i++) {
		const char *o = cmb_state_pjournal_outcome_name(j[i].outcome);
		printf("    #%lld %s version %lld: %s%s%s\n", (long long)j[i].id, cmb_state_pjournal_op_name(j[i].op),
		       (long long)j[i].version, o ? o : "(not known yet)", j[i].message ? ": " : "",
		       j[i].message ? j[i].message : "");
	}
}

static int policies_show(struct cmb_state *st, const char *id, int json)
{
	struct cmb_policy_row p;
	int rc = cmb_state_policy_get(st, id, &p);
	if (rc == CMB_ENOTFOUND)
		return cmb_error_set(rc, "policies: no policy \"%s\" in the state", id);
	if (rc < 0)
		return rc;
	struct pol_detail d;
	struct cmb_pjournal *j = NULL;
	size_t n_j = 0;
	if ((rc = detail_read(st, id, &d)) == 0 && (rc = cmb_state_pjournal_recent(st, id, SHOW_JOURNAL, &j, &n_j)) == 0) {
		if (json) {
			yajl_gen g = cmb_json_new(0);
			yajl_gen_map_open(g);
			gen_policy(g, &p, &d);
			gen_devices(g, &d);
			gen_journal(g, j, n_j);
			yajl_gen_map_close(g);
			json_done(g);
		} else {
			print_show(&p, &d, j, n_j);
		}
	}
	cmb_state_pjournal_free(j, n_j);
	detail_clear(&d);
	cmb_state_policy_clear(&p);
	return rc;
}

static void print_stats(const struct cmb_policy_stats *s)
{
	printf("policies: %ld listed (%ld read, %ld not for ConfigMgr), %ld accepted (%ld in conflict), %ld rejected, "
	       "%ld unassigned; site: %ld written, %ld already held, %ld removed, %ld refused, %ld reconciled; "
	       "%ld compliance reads, %ld statuses reported%s\n",
	       s->listed, s->read, s->ignored, s->accepted, s->conflicts, s->rejected, s->unassigned, s->written,
	       s->unchanged, s->removed, s->refused, s->adopted, s->compliance, s->reported,
	       s->staged ? " (staging: nothing written to the site or the tenant)" : "");
}

/* policies --once: one poll here (the state is held as by any writer). */
static int policies_once(const struct cmb_config *cfg)
{
	struct cmb_daemon_session s;
	int rc = cmb_daemon_session_open(&s, cfg, CMB_DAEMON_STATE | CMB_DAEMON_POLICIES);
	if (rc < 0)
		return rc;
	struct cmb_policy_env env = cmb_daemon_policy_env(&s);
	struct cmb_policy_stats stats;
	cmb_log_set_component("policy");
	cmb_log_set_cid("policy");
	rc = cmb_policy_poll(&env, NULL, &stats);
	cmb_log_set_cid(NULL);
	cmb_log_set_component(NULL);
	print_stats(&stats);
	if (rc == CMB_ECANCELED)
		rc = 0;
	cmb_daemon_session_close(&s);
	return rc;
}

static long long reply_num(yajl_val v, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val x = yajl_tree_get(v, path, yajl_t_number);
	return x && YAJL_IS_INTEGER(x) ? YAJL_GET_INTEGER(x) : 0;
}

/* policies --now while `run` runs: one poll by the daemon; CMB_ENOTFOUND when none runs. */
static int policies_by_daemon(const struct cmb_config *cfg)
{
	yajl_val v = NULL;
	int rc = cmb_ctl_call(cfg->state_dir, "policies", &v);
	if (rc < 0)
		return rc;
	const char *pok[] = { "ok", NULL }, *perr[] = { "error", NULL };
	yajl_val ok = yajl_tree_get(v, pok, yajl_t_any), err = yajl_tree_get(v, perr, yajl_t_string);
	printf("policies: one poll by the daemon: %lld listed (%lld read), %lld accepted (%lld in conflict), %lld rejected; "
	       "site: %lld written, %lld removed; %lld statuses reported\n", reply_num(v, "listed"), reply_num(v, "read"),
	       reply_num(v, "accepted"), reply_num(v, "conflicts"), reply_num(v, "rejected"), reply_num(v, "written"),
	       reply_num(v, "removed"), reply_num(v, "reported"));
	rc = ok && YAJL_IS_TRUE(ok) ? 0 : cmb_error_set(CMB_ERROR, "policies: the daemon's poll failed: %s",
						       err ? err->u.string : "no reason given");
	yajl_tree_free(v);
	return rc;
}

int cmb_cli_policies(const struct cmb_config *cfg, int argc, char **argv)
{
	int json = 0, once = 0, now = 0;
	const char *show = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--once") == 0)
			once = 1;
		else if (strcmp(argv[i], "--now") == 0)
			now = 1;
		else if (strcmp(argv[i], "show") == 0 && i + 1 < argc)
			show = argv[++i];
		else
			return cmb_error_set(CMB_ECONFIG, "policies: unexpected argument '%s' (policies [--json] | policies "
					     "show ID [--json] | policies --once | policies --now)", argv[i]);
	}
	if ((once || now) && (show || json))
		return cmb_error_set(CMB_ECONFIG, "policies: --once and --now run a poll; list or show them afterwards");
	if (now) {
		int rc = policies_by_daemon(cfg);
		if (rc != CMB_ENOTFOUND)
			return rc;
		cmb_error_clear();
		once = 1; /* no daemon: one poll here */
	}
	if (once)
		return policies_once(cfg);
	struct cmb_state *st = NULL;
	int rc = cmb_state_open_readonly(&st, cfg->state_dir);
	if (rc == CMB_ENOTFOUND && !show) {
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
		if (json)
			printf("[]\n");
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = show ? policies_show(st, show, json) : policies_list(st, json);
	cmb_state_close(st);
	return rc;
}

/* ---- diff --policies ---- */

static const char *const action_names[] = { "none", "put", "delete" };

struct diff_plan {
	yajl_gen g;
	long n[3];
};

static void on_plan(void *ctx, const struct cmb_policy_plan *p)
{
	struct diff_plan *d = ctx;
	d->n[p->action]++;
	if (d->g) {
		yajl_gen_map_open(d->g);
		cmb_json_kv_str(d->g, "id", p->id);
		cmb_json_kv_str(d->g, "name", p->name);
		cmb_json_kv_str(d->g, "state", cmb_state_policy_state_name(p->state));
		cmb_json_kv_str(d->g, "action", action_names[p->action]);
		cmb_json_kv_int(d->g, "version", p->version);
		cmb_json_kv_int(d->g, "siteVersion", p->site_version);
		cmb_json_kv_str(d->g, "contentHash", p->action == CMB_PACT_PUT ? p->hash : NULL);
		cmb_json_kv_int(d->g, "settings", p->settings);
		gen_list(d->g, "targets", p->targets);
		cmb_json_kv_strings(d->g, "reasons", p->reasons, p->n_reasons);
		yajl_gen_map_close(d->g);
		return;
	}
	if (p->action == CMB_PACT_PUT)
		printf("put     %s version %lld (site holds %lld), %ld settings, targets %s: %s\n", p->id,
		       (long long)p->version, (long long)p->site_version, p->settings, p->targets, p->name);
	else if (p->action == CMB_PACT_DELETE)
		printf("delete  %s version %lld (%s): %s\n", p->id, (long long)p->version,
		       cmb_state_policy_state_name(p->state), p->name);
	else
		printf("keep    %s (%s): %s\n", p->id, cmb_state_policy_state_name(p->state), p->name);
	for (size_t i = 0; i < p->n_reasons; i++)
		printf("        reason: %s\n", p->reasons[i]);
}

int cmb_cli_diff_policies(const struct cmb_config *cfg, int json)
{
	struct cmb_daemon_session s;
	int rc = cmb_daemon_session_open(&s, cfg, CMB_DAEMON_DRY_RUN | CMB_DAEMON_POLICIES);
	if (rc < 0)
		return rc;
	struct cmb_policy_env env = cmb_daemon_policy_env(&s);
	struct diff_plan d = { .g = json ? cmb_json_new(0) : NULL };
	const struct cmb_policy_opts opts = { .dry_run = 1, .plan = on_plan, .plan_ctx = &d };
	if (d.g) {
		yajl_gen_map_open(d.g);
		cmb_json_key(d.g, "policies");
		yajl_gen_array_open(d.g);
	}
	cmb_log_set_component("policy");
	cmb_log_set_level(cmb_log_get_level() < CMB_LOG_WARN ? cmb_log_get_level() : CMB_LOG_WARN);
	rc = cmb_policy_poll(&env, &opts, NULL);
	cmb_log_set_component(NULL);
	if (d.g) {
		yajl_gen_array_close(d.g);
		cmb_json_key(d.g, "counts");
		yajl_gen_map_open(d.g);
		for (int i = 0; i < 3; i++)
			cmb_json_kv_int(d.g, action_names[i], d.n[i]);
		yajl_gen_map_close(d.g);
		yajl_gen_map_close(d.g);
		if (rc == 0)
			json_done(d.g);
		else
			yajl_gen_free(d.g);
	} else if (rc == 0) {
		printf("%ld documents to write, %ld to remove, %ld unchanged\n", d.n[CMB_PACT_PUT], d.n[CMB_PACT_DELETE],
		       d.n[CMB_PACT_NONE]);
	}
	cmb_daemon_session_close(&s);
	return rc;
}
