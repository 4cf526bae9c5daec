/*
 * cli.c - cmbridge's commands: sync, diff, status, quarantine, check,
 * config, token, map, relay, run, reload, actions, policies (cli_policies.c).
 *
 * Readers (status, quarantine, actions, config) open the state read-only
 * and work while `run` runs; dry runs (diff, sync --dry-run) work on a
 * private copy of it; commands that change things (sync, relay --now,
 * reload) go through the running daemon's control socket when there is
 * one (ctl.h), and act directly when there is none.
 *
 * Each command is a function taking the parsed options; the logic lives in
 * the engine and adapters (reached only through their tables), the
 * sessions and the daemon's loop in daemon.c; this file only wires and
 * reports. Reports go to stdout (human, or --json generated through
 * base/json.h), diagnostics to the log (stderr by default).
 */
#include "connector/daemon/cli.h"
#include "connector/daemon/cli_policies.h"
#include "connector/daemon/usage.h"
#include "connector/daemon/check.h"
#include "connector/daemon/ctl.h"
#include "connector/daemon/daemon.h"
#include "connector/daemon/progress.h"
#include "connector/daemon/report.h"
#include "connector/daemon/standby.h"
#include "connector/transport/auth.h"
#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/log.h"
#include "connector/store/state.h"
#include "connector/engine/relay.h"
#include "connector/engine/sync.h"
#include "connector/base/util.h"
#include "adapters/site.h"
#include "adapters/tenant.h"
#include "mapping/device.h"
#include "connector/base/clock.h"

#include <getopt.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* -v: debug logging, also after a reload of `run`. */
static int cli_verbose;

/* A command returns 0, a negative CMB_E* code, or (status --check) the exit status itself. */
static int exit_for(int rc)
{
	if (rc >= 0)
		return rc;
	return rc == CMB_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
}

/*
 * --json documents are generated (connector/base/json.h), one generator per
 * document: written to stdout when complete, or row by row for listings
 * (cmb_json_flush), and ended with a newline.
 */
static void json_end(yajl_gen g)
{
	cmb_json_flush(g, stdout);
	fputc('\n', stdout);
	yajl_gen_free(g);
}


/* A message of one or more lines (all the errors of one kind at once), each line as its own "cmbridge: " line. */
static void print_lines(FILE *fp, const char *prefix, const char *msg)
{
	for (const char *p = msg;;) {
		const char *nl = strchr(p, '\n');
		fprintf(fp, "%s%.*s\n", prefix, nl ? (int)(nl - p) : (int)strlen(p), p);
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* ---- sync ---- */

/* The sync command's options. */
struct sync_args {
	struct cmb_sync_opts opts;
	int now;                 /* --now: the running daemon runs it (also without: when one runs) */
};

/* The N of --allow-deletes N and --allow-changes N. */
static int parse_approval(const char *opt, const char *what, long *out)
{
	char *end;
	*out = strtol(optarg, &end, 10);
	if (*end || end == optarg || *out < 0)
		return cmb_error_set(CMB_ECONFIG, "sync: --%s takes a number of %s, not '%s'", opt, what, optarg);
	return 0;
}

static int parse_sync(int argc, char **argv, struct sync_args *a)
{
	static const struct option lo[] = { { "full", no_argument, NULL, 'f' },
					    { "dry-run", no_argument, NULL, 'n' },
					    { "now", no_argument, NULL, 'N' },
					    { "allow-deletes", required_argument, NULL, 'a' },
					    { "allow-changes", required_argument, NULL, 'c' },
					    { NULL, 0, NULL, 0 } };
	int ch, rc;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (ch == 'f') {
			a->opts.full = 1;
		} else if (ch == 'n') {
			a->opts.dry_run = 1;
		} else if (ch == 'N') {
			a->now = 1;
		} else if (ch == 'a') {
			if ((rc = parse_approval("allow-deletes", "removals", &a->opts.allow_deletes)) < 0)
				return rc;
		} else if (ch == 'c') {
			if ((rc = parse_approval("allow-changes", "changes", &a->opts.allow_changes)) < 0)
				return rc;
		} else {
			return cmb_error_set(CMB_ECONFIG, "sync: unknown option (see cmbridge --help)");
		}
	}
	if (optind < argc)
		return cmb_error_set(CMB_ECONFIG, "sync: unexpected argument '%s'", argv[optind]);
	if (a->opts.dry_run && (a->now || a->opts.allow_deletes || a->opts.allow_changes))
		return cmb_error_set(CMB_ECONFIG, "sync: --dry-run sends nothing, so --now, --allow-deletes and "
				     "--allow-changes do not go with it");
	return 0;
}

static void print_sync_result(const struct cmb_sync_result *res, const struct cmb_sync_opts *opts, int rc)
{
	const struct cmb_cycle_counts *c = &res->counts;
	printf("cycle %lld (%s) %s in %.2f s\n", (long long)res->cycle_id, opts->full ? "full" : "delta", res->status,
	       res->seconds);
	printf("  site:    %ld devices read in %ld pages, %ld in scope, %ld skipped, %ld quarantined, %ld duplicates, "
	       "%ld without Entra device id, %ld names repaired\n",
	       c->site_records, res->site.pages, c->site_records - c->skipped, c->skipped, c->quarantined,
	       c->duplicates, c->no_entra_id, c->utf8_repairs);
	if (strcmp(res->status, "dry-run") == 0 || strcmp(res->status, "staging") == 0)
		printf("  tenant:  would upload %ld records and remove %ld (nothing was sent)\n", res->pending_uploads,
		       res->pending_removals);
	else
		printf("  tenant:  %ld uploaded (%ld added, %ld changed, %ld refreshed), %ld removed, %ld rejected, "
		       "%ld unchanged, %ld requests\n",
		       c->added + c->changed + c->refreshed, c->added, c->changed, c->refreshed, c->removed,
		       c->rejected, c->unchanged, c->upload_requests);
	if (res->collections_uploaded || res->collections_removed)
		printf("  collections: %ld uploaded, %ld removed\n", res->collections_uploaded, res->collections_removed);
	if (res->details_refresh && strcmp(res->status, "failed") != 0)
		printf("  details: check-in times refreshed this cycle\n");
	if (rc < 0)
		printf("  %s %s\n", rc == CMB_EGUARD ? "held:   " : "error:  ", cmb_error_last());
}

/* A staging cycle that ended well: the warm standby imports the tenant's records (standby.h). */
static int standby_after(const struct cmb_sync_env *env, const struct cmb_sync_result *res)
{
	struct cmb_standby_stats st;
	int rc = cmb_standby_import(env, res->cycle_id, &st);
	if (rc == 0)
		printf("  standby: %ld tenant records: %ld as the site has them, %ld but for check-in times, %ld "
		       "different, %ld forgotten, %ld matching no site device\n",
		       st.tenant_records, st.same, st.refresh, st.differ, st.forgotten, st.unmatched);
	return rc;
}

/* The cycle in this process (no daemon runs, or a dry run on a private copy of the state). */
static int sync_here(const struct cmb_config *cfg, const struct cmb_sync_opts *opts)
{
	struct cmb_daemon_session s;
	int rc = cmb_daemon_session_open(&s, cfg, opts->dry_run ? CMB_DAEMON_DRY_RUN : CMB_DAEMON_SYNC);
	if (rc < 0)
		return rc;
	cmb_log_set_component("sync");
	cmb_progress_activity("%s sync%s", opts->full ? "full" : "delta", opts->dry_run ? " (dry run)" : "");
	struct cmb_sync_env env = cmb_daemon_sync_env(&s);
	struct cmb_sync_result res;
	rc = cmb_sync_run(&env, opts, &res);
	cmb_progress_activity(NULL);
	print_sync_result(&res, opts, rc);
	if (rc == 0 && !opts->dry_run && strcmp(res.status, "staging") == 0)
		rc = standby_after(&env, &res);
	cmb_daemon_session_close(&s);
	return rc;
}

static long long reply_int(yajl_val v, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val n = yajl_tree_get(v, path, yajl_t_number);
	return n && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : 0;
}

static const char *reply_str(yajl_val v, const char *name)
{
	const char *path[] = { name, NULL };
	yajl_val s = yajl_tree_get(v, path, yajl_t_string);
	return s ? s->u.string : NULL;
}

/* 0 when the daemon's reply says ok, else CMB_ERROR with its error (CMB_EGUARD for a held cycle). */
static int reply_rc(yajl_val v)
{
	const char *path[] = { "ok", NULL };
	if (yajl_tree_get(v, path, yajl_t_true))
		return 0;
	const char *status = reply_str(v, "status"), *err = reply_str(v, "error");
	int held = status && (strcmp(status, "deletion-threshold-exceeded") == 0 ||
			      strcmp(status, "change-threshold-exceeded") == 0);
	return cmb_error_set(held ? CMB_EGUARD : CMB_ERROR,
			     "%s", err ? err : "the daemon gave no reason");
}

static void print_cycle_reply(yajl_val v, const struct cmb_sync_opts *opts)
{
	const char *path[] = { "counts", NULL };
	yajl_val c = yajl_tree_get(v, path, yajl_t_object);
	printf("cycle %lld (%s) %s, run by the daemon\n", reply_int(v, "cycle"), reply_str(v, "kind"),
	       reply_str(v, "status"));
	printf("  tenant:  %lld uploaded (%lld added, %lld changed, %lld refreshed), %lld removed, %lld rejected\n",
	       reply_int(c, "uploaded"), reply_int(c, "added"), reply_int(c, "changed"), reply_int(c, "refreshed"),
	       reply_int(c, "removed"), reply_int(c, "rejected"));
	if (opts->allow_deletes)
		printf("  approved: up to %ld removals; %lld removed\n", opts->allow_deletes, reply_int(c, "removed"));
	if (opts->allow_changes)
		printf("  approved: up to %ld changes; %lld changed\n", opts->allow_changes, reply_int(c, "changed"));
}

/* Through the running daemon; CMB_ENOTFOUND (quietly) when none runs. */
static int sync_by_daemon(const struct cmb_config *cfg, const struct cmb_sync_opts *opts)
{
	char line[96];
	if (opts->allow_deletes && opts->allow_changes)
		snprintf(line, sizeof(line), "sync allow-deletes %ld allow-changes %ld", opts->allow_deletes,
			 opts->allow_changes);
	else if (opts->allow_deletes)
		snprintf(line, sizeof(line), "sync allow-deletes %ld", opts->allow_deletes);
	else if (opts->allow_changes)
		snprintf(line, sizeof(line), "sync allow-changes %ld", opts->allow_changes);
	else
		snprintf(line, sizeof(line), "sync%s", opts->full ? " full" : "");
	yajl_val v = NULL;
	int rc = cmb_ctl_call(cfg->state_dir, line, &v);
	if (rc < 0)
		return rc;
	if (reply_int(v, "cycle"))
		print_cycle_reply(v, opts);
	rc = reply_rc(v);
	if (rc < 0)
		printf("  %s %s\n", rc == CMB_EGUARD ? "held:   " : "error:  ", cmb_error_last());
	yajl_tree_free(v);
	return rc;
}

static int cmd_sync(const struct cmb_config *cfg, int argc, char **argv)
{
	struct sync_args a = { 0 };
	int rc = parse_sync(argc, argv, &a);
	if (rc < 0)
		return rc;
	if (!a.opts.dry_run) {
		rc = sync_by_daemon(cfg, &a.opts);
		if (rc != CMB_ENOTFOUND)
			return rc;
		cmb_error_clear();
	}
	return sync_here(cfg, &a.opts);
}

/* ---- diff ---- */

struct diff_ctx {
	yajl_gen json;           /* --json: the document being written; NULL: text */
	struct cmb_state *st;
	long in_flight;          /* keys in flight: each listed key is looked up when there are any */
	long n;
};

/* 1 when key is an upload in flight (the tenant may hold it: docs/safety.md), 0 when not, or an error. */
static int diff_in_flight(const struct diff_ctx *d, const char *key)
{
	if (!d->in_flight)
		return 0;
	int rc = cmb_state_inflight_get(d->st, key, NULL);
	return rc == 0 ? 1 : rc == CMB_ENOTFOUND ? 0 : rc;
}

static char *record_device_name(const char *json, size_t len)
{
	char *copy = xstrndup(json, len), eb[64];
	yajl_val root = yajl_tree_parse(copy, eb, sizeof(eb));
	const char *path[] = { "managedDevice", "deviceName", NULL };
	yajl_val v = root ? yajl_tree_get(root, path, yajl_t_string) : NULL;
	char *name = v ? xstrdup(v->u.string) : NULL;
	yajl_tree_free(root);
	free(copy);
	return name;
}

static int diff_pending(void *ud, const char *key, const char *hash, const char *stable_hash,
			enum cmb_pending_kind kind, const char *json, size_t len)
{
	struct diff_ctx *d = ud;
	const char *k = cmb_state_pending_kind_name(kind);
	int in_flight = diff_in_flight(d, key);
	if (in_flight < 0)
		return in_flight;
	char *name = record_device_name(json, len);
	if (d->json) {
		yajl_gen_map_open(d->json);
		cmb_json_kv_str(d->json, "op", k);
		cmb_json_kv_str(d->json, "key", key);
		cmb_json_kv_str(d->json, "deviceName", name);
		cmb_json_kv_bool(d->json, "inFlight", in_flight);
		cmb_json_key(d->json, "record");
		cmb_json_raw(d->json, json, len);
		yajl_gen_map_close(d->json);
		cmb_json_flush(d->json, stdout);
	} else {
		printf("  %-8s %-24s %s%s\n", k, key, name ? name : "", in_flight ? " (in flight: sent again)" : "");
	}
	free(name);
	d->n++;
	return 0;
}

static int diff_removal(void *ud, const char *key, const char *tenant_id)
{
	struct diff_ctx *d = ud;
	int in_flight = diff_in_flight(d, key);
	if (in_flight < 0)
		return in_flight;
	if (d->json) {
		yajl_gen_map_open(d->json);
		cmb_json_kv_str(d->json, "op", "remove");
		cmb_json_kv_str(d->json, "key", key);
		cmb_json_kv_str(d->json, "id", tenant_id);
		cmb_json_kv_bool(d->json, "inFlight", in_flight);
		yajl_gen_map_close(d->json);
		cmb_json_flush(d->json, stdout);
	} else {
		printf("  %-8s %-24s %s\n", "remove", key,
		       in_flight && !tenant_id ? "(in flight: the tenant may hold it)" : tenant_id ? tenant_id : "");
	}
	d->n++;
	return 0;
}

static int parse_flags(int argc, char **argv, const char *const *names, int *on, const char *usage);

static int cmd_diff(const struct cmb_config *cfg, int argc, char **argv)
{
	static const char *const names[] = { "--json", "--policies", NULL };
	int on[2] = { 0 };
	int rc = parse_flags(argc, argv, names, on, "diff [--json] [--policies]");
	if (rc < 0)
		return rc;
	int json = on[0];
	if (on[1])
		return cmb_cli_diff_policies(cfg, json);
	/* A private copy of the state: works while `run` runs, and writes nothing to the state's file. */
	struct cmb_daemon_session s;
	rc = cmb_daemon_session_open(&s, cfg, CMB_DAEMON_DRY_RUN);
	if (rc < 0)
		return rc;
	struct cmb_sync_env env = cmb_daemon_sync_env(&s);
	struct cmb_sync_opts opts = { .dry_run = 1 };
	struct cmb_sync_result res;
	yajl_gen g = NULL;
	/* The cycle's staged records and unseen devices are exactly what a normal cycle would send. */
	cmb_log_set_level(cmb_log_get_level() < CMB_LOG_WARN ? cmb_log_get_level() : CMB_LOG_WARN);
	cmb_progress_activity("diff");
	rc = cmb_sync_run(&env, &opts, &res);
	cmb_progress_activity(NULL);
	if (rc < 0)
		goto done;
	if (json)
		g = cmb_json_new(0);
	struct diff_ctx d = { .json = g, .st = s.state, .in_flight = cmb_state_inflight_count(s.state) };
	if (d.in_flight < 0) {
		rc = (int)d.in_flight;
		goto done;
	}
	if (g) {
		yajl_gen_map_open(g);
		cmb_json_kv_int(g, "cycle", res.cycle_id);
		cmb_json_key(g, "changes");
		yajl_gen_array_open(g);
	}
	if ((rc = cmb_state_pending_each(s.state, res.cycle_id, NULL, SIZE_MAX, diff_pending, &d)) == 0)
		rc = cmb_state_devices_unseen(s.state, res.cycle_id, diff_removal, &d);
	if (rc < 0)
		goto done;
	long removals = res.pending_removals;
	const struct cmb_cycle_counts *c = &res.counts;
	if (g) {
		yajl_gen_array_close(g);
		cmb_json_key(g, "counts");
		yajl_gen_map_open(g);
		cmb_json_kv_int(g, "upload", res.pending_uploads);
		cmb_json_kv_int(g, "remove", removals);
		cmb_json_kv_int(g, "unchanged", c->unchanged);
		cmb_json_kv_int(g, "duplicates", c->duplicates);
		cmb_json_kv_int(g, "quarantined", c->quarantined);
		cmb_json_kv_int(g, "inFlight", d.in_flight);
		yajl_gen_map_close(g);
		cmb_json_kv_bool(g, "removalsWouldBeHeld", res.removals_would_hold || res.changes_would_hold);
		cmb_json_kv_bool(g, "changesWouldBeHeld", res.changes_would_hold);
		cmb_json_kv_bool(g, "detailsRefresh", res.details_refresh);
		yajl_gen_map_close(g);
		json_end(g);
		g = NULL;
	} else {
		printf("%ld to upload, %ld to remove, %ld unchanged, %ld duplicates, %ld quarantined, %ld in flight%s%s\n",
		       res.pending_uploads, removals, c->unchanged, c->duplicates, c->quarantined, d.in_flight,
		       res.removals_would_hold ? " (the removals would be held by the deletion guard)" : "",
		       res.changes_would_hold ? " (the changes and removals would be held by the change guard)" : "");
	}
done:
	if (g)
		yajl_gen_free(g);
	cmb_daemon_session_close(&s);
	return rc;
}

/* ---- readers ---- */

/*
 * Opens the state read-only for a listing (works while `run` runs). No
 * state yet: says so on stderr, prints an empty listing ([] with --json)
 * and returns 0 with *st NULL; 1 when *st is open; negative on error.
 */
static int open_reader(const struct cmb_config *cfg, struct cmb_state **st, int json)
{
	*st = NULL;
	int rc = cmb_state_open_readonly(st, cfg->state_dir);
	if (rc == CMB_ENOTFOUND) {
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
		if (json)
			printf("[]\n");
		return 0;
	}
	return rc < 0 ? rc : 1;
}

/* ---- quarantine ---- */

struct quar_ctx {
	yajl_gen json;           /* --json: the listing being written; NULL: text */
	long n;
};

static int quar_row(void *ud, const char *key, enum cmb_quarantine_kind qkind, const char *reason, int64_t when)
{
	struct quar_ctx *q = ud;
	const char *kind = cmb_state_quarantine_kind_name(qkind);
	char t[32];
	cmb_time_iso8601(when, t);
	if (q->json) {
		yajl_gen_map_open(q->json);
		cmb_json_kv_str(q->json, "key", key);
		cmb_json_kv_str(q->json, "kind", kind);
		cmb_json_kv_str(q->json, "since", t);
		cmb_json_kv_str(q->json, "reason", reason);
		yajl_gen_map_close(q->json);
		cmb_json_flush(q->json, stdout);
	} else {
		printf("  %-24s %-9s since %s: %s\n", key, kind, t, reason);
	}
	q->n++;
	return 0;
}

static int cmd_quarantine(const struct cmb_config *cfg, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if (argc > 1 + json)
		return cmb_error_set(CMB_ECONFIG, "quarantine: unexpected argument '%s'", argv[1 + json]);
	struct cmb_state *st;
	int rc = open_reader(cfg, &st, json);
	if (rc <= 0)
		return rc;
	struct quar_ctx q = { .json = json ? cmb_json_new(0) : NULL };
	if (q.json)
		yajl_gen_array_open(q.json);
	rc = cmb_state_quarantine_each(st, quar_row, &q);
	if (q.json) {
		yajl_gen_array_close(q.json);
		json_end(q.json);
	} else if (rc == 0)
		printf("%ld records in quarantine\n", q.n);
	cmb_state_close(st);
	return rc;
}

/* ---- status ---- */

/*
 * A command's flags: on[i] is set for each names[i] given (NULL-terminated);
 * anything else is a usage error naming what the command takes.
 */
static int parse_flags(int argc, char **argv, const char *const *names, int *on, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		int k = 0;
		while (names[k] && strcmp(argv[i], names[k]) != 0)
			k++;
		if (!names[k])
			return cmb_error_set(CMB_ECONFIG, "%s: unexpected argument '%s' (%s)", argv[0], argv[i], usage);
		on[k] = 1;
	}
	return 0;
}

static int cmd_status(const struct cmb_config *cfg, int argc, char **argv)
{
	static const char *const names[] = { "--json", "--check", NULL };
	int on[2] = { 0 };
	int rc = parse_flags(argc, argv, names, on, "status [--json] [--check]");
	return rc < 0 ? rc : cmb_report_status(cfg, on[0], on[1]);
}

/* ---- check ---- */

static int cmd_check(const struct cmb_config *cfg, int argc, char **argv)
{
	if (argc > 1)
		return cmb_error_set(CMB_ECONFIG, "check: unexpected argument '%s'", argv[1]);
	return cmb_check_run(cfg);
}

/* ---- token ---- */

static int cmd_token(const struct cmb_config *cfg, int argc, char **argv)
{
	int site = argc == 2 && strcmp(argv[1], "--site") == 0;
	if (argc > 2 || (argc == 2 && !site))
		return cmb_error_set(CMB_ECONFIG, "token: unexpected argument '%s' (expected --site or nothing)",
				     argv[argc - 1]);
	if (site && !cfg->site_scope)
		return cmb_error_set(CMB_ECONFIG, "token --site: [site] scope is not set (it goes with auth = bearer)");
	const char *scope = site ? cfg->site_scope : cfg->tenant_scope;
	struct cmb_daemon_session s;
	int rc = cmb_daemon_session_open(&s, cfg, CMB_DAEMON_TENANT);
	if (rc < 0)
		return rc;
	struct cmb_tenant_token_info ti;
	if (!s.tenant->token_describe)
		rc = cmb_error_set(CMB_ECONFIG, "token: the tenant adapter %s cannot show its tokens", s.tenant->name);
	else if ((rc = s.tenant->token_describe(s.tenant_st, cfg, scope, &ti)) == 0) {
		printf("token:    acquired from %s for client %s with a %s\n", cfg->tenant_token_url,
		       cfg->tenant_client_id, ti.credential);
		printf("scope:    %s\n", scope);
		printf("type:     Bearer\n");
		printf("lifetime: %ld s\n", ti.lifetime);
		/* Only the payload's public claims: the token and its signature are never printed. */
		if (ti.claims)
			printf("claims:\n%s", ti.claims);
		else
			printf("claims:   none shown (not a JWT: the token is opaque to the client)\n");
		free(ti.claims);
	}
	cmb_daemon_session_close(&s);
	return rc;
}

/* ---- config ---- */

static int config_is_template(int argc, char **argv)
{
	return argc == 2 && strcmp(argv[1], "--template") == 0;
}

static int cmd_config(const struct cmb_config *cfg, int argc, char **argv)
{
	if (config_is_template(argc, argv)) {
		cmb_config_write_template(stdout);
		return 0;
	}
	if (argc > 1)
		return cmb_error_set(CMB_ECONFIG, "config: unexpected argument '%s'", argv[1]);
	cmb_config_print(cfg, stdout);
	return 0;
}

/* ---- map ---- */

struct map_ctx {
	const char *site_code;   /* --site-code, else each device's own SiteCode */
	long mapped, skipped, quarantined;
};

static int map_one(void *ud, const struct cmb_site_device *dev)
{
	struct map_ctx *m = ud;
	struct cmb_map_ctx mc = { .site_code = m->site_code ? m->site_code : dev->site_code };
	struct cmb_tenant_record rec;
	char *reason = NULL;
	if (!mc.site_code) {
		m->quarantined++;
		fprintf(stderr, "quarantined ResourceID %u: no site code (the page has no SiteCode; use --site-code)\n",
			dev->resource_id);
		return 0;
	}
	int outcome = cmb_map_device(&mc, dev, &rec, &reason);
	if (outcome == CMB_MAP_OK) {
		fwrite(rec.json, 1, rec.json_len, stdout);
		fputc('\n', stdout);
		m->mapped++;
		cmb_tenant_record_clear(&rec);
	} else {
		if (outcome == CMB_MAP_SKIP)
			m->skipped++;
		else
			m->quarantined++;
		fprintf(stderr, "%s ResourceID %u: %s\n", outcome == CMB_MAP_SKIP ? "skipped" : "quarantined",
			dev->resource_id, reason ? reason : "");
		free(reason);
	}
	return 0;
}

static int cmb_cli_map(int argc, char **argv)
{
	struct map_ctx m = { 0 };
	const char *from = NULL;
	static const struct option lo[] = { { "from", required_argument, NULL, 'f' },
					    { "site-code", required_argument, NULL, 's' },
					    { NULL, 0, NULL, 0 } };
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (ch == 'f')
			from = optarg;
		else if (ch == 's')
			m.site_code = optarg;
		else
			return cmb_error_set(CMB_ECONFIG, "map: unknown option (see cmbridge --help)");
	}
	/* The adapter whose saved pages these are, through its table; adminservice is the one that reads files so far. */
	const struct cmb_site_adapter *site = from ? cmb_site_adapter_find(from) : NULL;
	if (!site || !site->read_files)
		return cmb_error_set(CMB_ECONFIG, "map: --from adminservice is required (the only offline source so far)");
	if (optind >= argc)
		return cmb_error_set(CMB_ECONFIG, "map: name at least one saved AdminService page");
	int rc = site->read_files((const char *const *)argv + optind, (size_t)(argc - optind), map_one, &m);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cmb_error_set(CMB_EIO, "map: cannot write the records to standard output");
	if (rc == 0)
		fprintf(stderr, "map: %ld records, %ld skipped, %ld quarantined\n", m.mapped, m.skipped, m.quarantined);
	return rc;
}

/* ---- relay, run, actions ---- */

static void print_relay_stats(const struct cmb_relay_stats *st, double secs)
{
	printf("relay: %ld received (%ld replays dropped), %ld refused, %ld operations to %ld devices, %ld blocked, "
	       "%ld done, %ld failed, %ld results reported, %ld reconciled (%ld adopted, %ld sent) in %.2f s\n",
	       st->received, st->replays, st->refused, st->operations, st->targets, st->blocks, st->done, st->failed,
	       st->reported, st->adopted + st->reissued, st->adopted, st->reissued, secs);
	if (st->staged)
		printf("relay: staging mode: %ld actions kept in the inbox, nothing relayed\n", st->staged);
}

/* relay --now while `run` runs: one relay pass by the daemon. */
static int relay_by_daemon(const struct cmb_config *cfg)
{
	yajl_val v = NULL;
	int rc = cmb_ctl_call(cfg->state_dir, "relay", &v);
	if (rc < 0)
		return rc;
	printf("relay: one pass by the daemon: %lld received, %lld refused, %lld operations, %lld done, %lld failed, "
	       "%lld results reported\n", reply_int(v, "received"), reply_int(v, "refused"), reply_int(v, "operations"),
	       reply_int(v, "done"), reply_int(v, "failed"), reply_int(v, "reported"));
	rc = reply_rc(v);
	yajl_tree_free(v);
	return rc;
}

static int cmd_relay(const struct cmb_config *cfg, int argc, char **argv)
{
	static const char *const names[] = { "--once", "--now", NULL };
	int on[2] = { 0 };
	int rc = parse_flags(argc, argv, names, on, "relay [--once] [--now]");
	if (rc < 0)
		return rc;
	int once = on[0], now = on[1];
	if (now) {
		rc = relay_by_daemon(cfg);
		if (rc != CMB_ENOTFOUND)
			return rc;
		cmb_error_clear();
		once = 1; /* no daemon: one pass here, until nothing is left */
	}
	struct cmb_daemon_session s;
	rc = cmb_daemon_session_open(&s, cfg, CMB_DAEMON_RELAY);
	if (rc < 0)
		return rc;
	double t0 = cmb_now_mono();
	cmb_log_set_component("relay");
	cmb_log_set_cid("relay");
	rc = cmb_relay_run(s.relay, once, 5);
	cmb_log_set_cid(NULL);
	print_relay_stats(cmb_relay_get_stats(s.relay), cmb_now_mono() - t0);
	if (rc == CMB_ECANCELED)
		rc = 0; /* stopped on request: the state is consistent */
	cmb_daemon_session_close(&s);
	return rc;
}

/* reload: the running daemon loads its configuration again and says how that went. */
static int cmd_reload(const struct cmb_config *cfg, int argc, char **argv)
{
	if (argc > 1)
		return cmb_error_set(CMB_ECONFIG, "reload: unexpected argument '%s'", argv[1]);
	yajl_val v = NULL;
	int rc = cmb_ctl_call(cfg->state_dir, "reload", &v);
	if (rc == CMB_ENOTFOUND)
		return cmb_error_set(CMB_ERROR, "reload: %s (the configuration %s is valid; `cmbridge run` reads it "
				     "when it starts)", cmb_error_last(), cfg->path);
	if (rc < 0)
		return rc;
	if ((rc = reply_rc(v)) == 0)
		printf("reload: %s\n", reply_str(v, "message"));
	yajl_tree_free(v);
	return rc;
}

/* The daemon: sync cycles and the relay as tasks of one scheduler (run.c). */
static int cmd_run(const struct cmb_config *cfg, int argc, char **argv)
{
	if (argc > 1)
		return cmb_error_set(CMB_ECONFIG, "run: unexpected argument '%s'", argv[1]);
	return cmb_daemon_run(cfg, cli_verbose);
}

struct audit_print {
	yajl_gen json;           /* --json: the document being written; NULL: text */
	long n;
};

static int audit_row(void *ud, const struct cmb_audit_entry *e)
{
	struct audit_print *p = ud;
	char at[32];
	cmb_time_iso8601(e->at, at);
	if (p->json) {
		yajl_gen_map_open(p->json);
		cmb_json_kv_int(p->json, "seq", e->seq);
		cmb_json_kv_str(p->json, "at", at);
		cmb_json_kv_str(p->json, "event", cmb_state_audit_event_name(e->event));
		cmb_json_kv_str(p->json, "outcome", e->outcome);
		cmb_json_kv_str(p->json, "reason", e->reason);
		yajl_gen_map_close(p->json);
		cmb_json_flush(p->json, stdout);
	} else {
		printf("  %s  %-9s %-12s %s\n", at, cmb_state_audit_event_name(e->event), e->outcome,
		       e->reason ? e->reason : "");
	}
	p->n++;
	return 0;
}

/* actions show ID: the action, then its audit history. */
static int actions_show(struct cmb_state *st, const char *show, int json)
{
	struct cmb_action a;
	int rc;
	if ((rc = cmb_state_action_get(st, show, &a)) < 0) {
		if (rc == CMB_ENOTFOUND)
			cmb_error_set(rc, "actions: no action \"%s\" in the inbox", show);
		return rc;
	}
	struct audit_print p = { .json = json ? cmb_json_new(0) : NULL };
	if (p.json) {
		yajl_gen_map_open(p.json);
		cmb_json_key(p.json, "action");
		cmb_report_action_json(p.json, &a);
		cmb_json_key(p.json, "history");
		yajl_gen_array_open(p.json);
	} else {
		char rq[32];
		cmb_time_iso8601(a.requested, rq);
		printf("action %s: %s on %s (%s, ResourceID %u) by %s at %s\n", a.id, a.action, a.key, a.device_id,
		       a.resource_id, a.requested_by, rq);
		printf("state %s, %s, errorCode %ld%s%s\n", cmb_state_action_state_name(a.state), a.delivery, a.error_code, a.message ? ": " : "",
		       a.message ? a.message : "");
		printf("history:\n");
	}
	rc = cmb_state_audit_each(st, show, audit_row, &p);
	if (p.json) {
		yajl_gen_array_close(p.json);
		yajl_gen_map_close(p.json);
		json_end(p.json);
	}
	cmb_state_action_clear(&a);
	return rc;
}

/* actions [--json]: every action, newest first. */
static int actions_list(struct cmb_state *st, int json)
{
	struct cmb_action *list = NULL;
	size_t n = 0;
	int rc;
	if ((rc = cmb_state_actions_recent(st, SIZE_MAX, &list, &n)) < 0)
		return rc;
	yajl_gen g = json ? cmb_json_new(0) : NULL;
	if (g)
		yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		if (g) {
			cmb_report_action_json(g, &list[i]);
			cmb_json_flush(g, stdout);
		} else {
			char rq[32];
			cmb_time_iso8601(list[i].requested, rq);
			printf("  %s %-12s %-32s %-20s %-24s %s%s%s\n", rq, cmb_state_action_state_name(list[i].state), list[i].action, list[i].key,
			       list[i].requested_by, list[i].id, list[i].message ? "  " : "",
			       list[i].message ? list[i].message : "");
		}
	}
	if (g) {
		yajl_gen_array_close(g);
		json_end(g);
	} else {
		printf("%zu actions (%ld not final, %ld results waiting to be reported)\n", n, cmb_state_actions_open(st),
		       cmb_state_outbox_count(st));
	}
	cmb_state_actions_free(list, n);
	return 0;
}

static int cmd_actions(const struct cmb_config *cfg, int argc, char **argv)
{
	int json = 0;
	const char *show = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "show") == 0 && i + 1 < argc)
			show = argv[++i];
		else
			return cmb_error_set(CMB_ECONFIG, "actions: unexpected argument '%s' (actions [--json] | actions "
					     "show ID [--json])", argv[i]);
	}
	struct cmb_state *st;
	int rc = open_reader(cfg, &st, json && !show);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return show ? cmb_error_set(CMB_ENOTFOUND, "actions: no action \"%s\": there is no state yet", show) : 0;
	rc = show ? actions_show(st, show, json) : actions_list(st, json);
	cmb_state_close(st);
	return rc;
}

/* ---- main ---- */

/* A command's failure: on stderr for the admin, and in the log when the log is not plain stderr. */
static void report_failure(const char *cmd)
{
	if (cmb_log_is_plain_stderr() || cmb_log_has_file())
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
	if (!cmb_log_is_plain_stderr())
		cmb_error_log("%s: %s", cmd, cmb_error_last());
}

static int cmd_map(const struct cmb_config *cfg, int argc, char **argv)
{
	(void)cfg;
	cmb_log_set_level(cli_verbose ? CMB_LOG_DEBUG : CMB_LOG_WARN);
	return cmb_cli_map(argc, argv);
}

static int always(int argc, char **argv)
{
	(void)argc, (void)argv;
	return 1;
}

/* The commands, in the order --help lists them; cmbridge(8) and the bash completion follow it. */
static const struct cmb_cli_command commands[] = {
	{ .name = "sync", .run = cmd_sync,
	  .synopsis = "sync [--now] [--full] [--dry-run] [--allow-deletes N] [--allow-changes N]",
	  .help = "run one sync cycle (delta unless --full); --allow-deletes\n"
		  "approves up to N removals past the deletion guard, once;\n"
		  "--allow-changes up to N changes past the change guard, once;\n"
		  "while `run` runs, the daemon runs it (--now says so)" },
	{ .name = "diff", .run = cmd_diff, .synopsis = "diff [--json] [--policies]",
	  .help = "what the next cycle would add, change and remove (sends nothing);\n"
		  "--policies: the policy documents the next poll would write or remove" },
	{ .name = "status", .run = cmd_status, .synopsis = "status [--json] [--check]",
	  .help = "last cycles, next runs, devices, quarantine, guards, actions;\n"
		  "--check: one line and exit 0 ok, 1 held, 2 failed or old, 3 unknown" },
	{ .name = "quarantine", .run = cmd_quarantine, .synopsis = "quarantine [--json]",
	  .help = "records held back, with the reason" },
	{ .name = "check", .run = cmd_check, .synopsis = "check",
	  .help = "everything a cycle needs: config, [actions] names, site, token\n"
		  "and its roles, gateway and Graph answering (both sides at once)" },
	{ .name = "config", .run = cmd_config, .config_free = config_is_template, .synopsis = "config [--template]",
	  .help = "print the effective configuration (no secrets); --template:\n"
		  "a commented sample configuration, every option at its default" },
	{ .name = "token", .run = cmd_token, .synopsis = "token [--site]",
	  .help = "acquire a tenant token (--site: for [site] scope) and show its\n"
		  "type, lifetime and public claims (never the token itself)" },
	{ .name = "map", .run = cmd_map, .config_free = always,
	  .synopsis = "map --from adminservice [--site-code CODE] FILE...",
	  .help = "map saved AdminService JSON pages to tenant records,\n"
		  "one JSON object a line (offline, no network, no configuration)" },
	{ .name = "relay", .run = cmd_relay, .synopsis = "relay [--once] [--now]",
	  .help = "relay remote actions from the tenant to the site; --once\n"
		  "exits when nothing is left (inbox settled, outbox empty);\n"
		  "--now: one pass, by the daemon while `run` runs" },
	{ .name = "run", .run = cmd_run, .synopsis = "run",
	  .help = "sync cycles every [sync] interval and the relay, until stopped\n"
		  "(SIGTERM stops, SIGHUP reloads, SIGUSR1 runs a delta cycle)" },
	{ .name = "reload", .run = cmd_reload, .synopsis = "reload",
	  .help = "make the running daemon load its configuration again" },
	{ .name = "actions", .run = cmd_actions, .synopsis = "actions [show ID] [--json]",
	  .help = "remote actions received, with their state; show ID: one action\n"
		  "and its audit history" },
	{ .name = "policies", .run = cmb_cli_policies, .synopsis = "policies [show ID] [--json] [--once] [--now]",
	  .help = "endpoint security policies: state, reasons, targets, compliance;\n"
		  "show ID: one policy, its devices and journal; --once: one poll\n"
		  "(tenant to site documents, compliance back) and exit;\n"
		  "--now: one poll by the daemon while `run` runs" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The configuration's error, with where to start when the default file does not exist. */
static void config_failed(const char *path)
{
	if (strcmp(path, CMB_CONFIG_DEFAULT_PATH) == 0 && access(path, F_OK) != 0)
		fprintf(stderr, "cmbridge: %s; start from the commented sample: cmbridge config --template > %s\n",
			cmb_error_last(), path);
	else
		print_lines(stderr, "cmbridge: ", cmb_error_last());
}

/* The file, then what only the engine can judge of it ([actions] names: mapping/ is not config's to read). */
static int config_load(struct cmb_config **cfg, const char *path)
{
	int rc = cmb_config_load(cfg, path);
	if (rc == 0 && (rc = cmb_relay_check_config(*cfg, NULL)) < 0) {
		cmb_config_free(*cfg);
		*cfg = NULL;
	}
	return rc;
}

/* Runs one command with its arguments (the global options among them already taken out). */
static int run_command(const struct cmb_cli_command *c, const struct cmb_cli_globals *g, int argc, char **argv)
{
	int rc = cmb_usage_check_options(stderr, c, argc, argv);
	if (rc < 0) {
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
		return EXIT_USAGE;
	}
	struct cmb_config *cfg = NULL;
	if (!(c->config_free && c->config_free(argc, argv))) {
		if ((rc = config_load(&cfg, g->config_path)) < 0) {
			config_failed(g->config_path);
			return EXIT_USAGE;
		}
		if ((rc = cmb_daemon_log_apply(cfg, g->verbose)) < 0) {
			fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
			cmb_config_free(cfg);
			return EXIT_USAGE;
		}
	}
	rc = c->run(cfg, argc, argv);
	if (rc < 0) {
		if (cfg)
			report_failure(c->name);
		else
			fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
	}
	cmb_config_free(cfg);
	return exit_for(rc);
}

int cmb_cli_main(int argc, char **argv)
{
	struct cmb_cli_globals g = { .config_path = CMB_CONFIG_DEFAULT_PATH };
	int ch;
	static const struct option lo[] = { { "config", required_argument, NULL, 'c' },
					    { "verbose", no_argument, NULL, 'v' },
					    { "help", no_argument, NULL, 'h' },
					    { "version", no_argument, NULL, 'V' },
					    { NULL, 0, NULL, 0 } };
	while ((ch = getopt_long(argc, argv, "+c:vhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': g.config_path = optarg; break;
		case 'v': g.verbose = 1; break;
		case 'h': g.help = 1; break;
		case 'V': printf("cmbridge %s\n", CMB_VERSION); return EXIT_OK;
		default: fprintf(stderr, "cmbridge: see cmbridge --help\n"); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cmb_usage_print(g.help ? stdout : stderr, commands, N_COMMANDS);
		return g.help ? EXIT_OK : EXIT_USAGE;
	}
	const struct cmb_cli_command *c = cmb_usage_find(commands, N_COMMANDS, argv[optind]);
	if (!c) {
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
		return EXIT_USAGE;
	}
	int cargc = argc - optind;
	char **cargv = argv + optind;
	if (cmb_usage_take_globals(&cargc, cargv, &g) < 0) {
		fprintf(stderr, "cmbridge: %s\n", cmb_error_last());
		return EXIT_USAGE;
	}
	if (g.help) {
		cmb_usage_command(stdout, c);
		return EXIT_OK;
	}
	cli_verbose = g.verbose;
	cmb_daemon_signals_init();
	return run_command(c, &g, cargc, cargv);
}
