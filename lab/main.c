/*
 * main.c - the cmbridge-lab command line: init, up, down, mutate, stats,
 * faults, trigger, actions, classes, schema-check. Exit 0 ok, 1 failure,
 * 2 usage error. The lab shares no code with connector/, adapters/ or
 * mapping/.
 */
#include "lab.h"
#include "auth.h"
#include "actions.h"
#include "policies.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <curl/curl.h>

#ifndef CMB_VERSION
#define CMB_VERSION "0.0.0"
#endif

static const char usage_text[] =
	"usage: cmbridge-lab COMMAND [options]\n"
	"\n"
	"  init DIR [--devices N] [--seed S] [--page-size P] [--epoch UNIXTIME] [--site-version current|old]\n"
	"           [--client-paging]\n"
	"        create a lab in DIR: CA and certificates, secrets, inventory, lab.conf, cmbridge.conf\n"
	"  up DIR [--detach]\n"
	"        serve the site (AdminService) and the tenant on 127.0.0.1 until SIGINT/SIGTERM\n"
	"  down DIR\n"
	"        stop the lab running from DIR\n"
	"  mutate DIR [--change N] [--add N] [--delete N] [--checkin N] [--health N] [--unjoin N]\n"
	"             [--duplicate N] [--verbose]\n"
	"        change the running site's inventory (plain devices only)\n"
	"  faults DIR [--site|--tenant] [--rate-500 R] [--rate-503 R] [--rate-429 R] [--retry-after S]\n"
	"             [--no-retry-after] [--rate-reset R] [--rate-truncate R] [--rate-reply-lost R]\n"
	"             [--latency-ms N] [--seed S] [--class-rows CLASS=N] [--lose-reply-at K] [--clear]\n"
	"        set the running lab's fault injection (replaces the side's settings)\n"
	"  stats DIR [--json]\n"
	"        counters of the running lab\n"
	"  trigger DIR DEVICE-ID ACTION [--requester UPN]\n"
	"  trigger DIR --many N ACTION [--devices K] [--requester UPN]\n"
	"        trigger remote actions as an admin (ACTION: a configurationManagerActionType member,\n"
	"        syncDevice, retire or wipe); prints the action ids\n"
	"  actions DIR [--json]\n"
	"        the running lab's actions and their states\n"
	"  policy DIR create FILE.json | update ID FILE.json | assign ID [COLLECTION...] | delete ID | list [--json]\n"
	"        author endpoint security policies in the running lab's tenant as an admin (Graph beta\n"
	"        configurationPolicies); create prints the new id\n"
	"  classes\n"
	"        the AdminService classes and properties the lab serves, with their sources (Markdown)\n"
	"  schema-check [--type TYPE] [--schema CSDL] FILE...\n"
	"        validate JSON objects against the Graph CSDL (default type managedDevice)\n"
	"  --help, --version\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, LAB_NAME ": %s\n", why);
	fputs(usage_text, stderr);
	return 2;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
	char *e;
	errno = 0;
	long long v = strtoll(s, &e, 10);
	if (!*s || *e || errno || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* ---- init ------------------------------------------------------------- */

static int cmd_init(int argc, char **argv)
{
	long long devices = 5000, seed = 1, page = 1000, epoch = -1;
	bool site_old = false, client_paging = false;
	static const struct option opts[] = {
		{"devices", required_argument, 0, 'd'}, {"seed", required_argument, 0, 's'},
		{"page-size", required_argument, 0, 'p'}, {"epoch", required_argument, 0, 'e'},
		{"site-version", required_argument, 0, 'v'}, {"client-paging", no_argument, 0, 'c'}, {0, 0, 0, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'v') {
			if (strcmp(optarg, "old") && strcmp(optarg, "current")) {
				fprintf(stderr, LAB_NAME ": init: invalid value '%s' for --site-version (current or old)\n", optarg);
				return 2;
			}
			site_old = !strcmp(optarg, "old");
			continue;
		}
		if (o == 'c') {
			client_paging = true;
			continue;
		}
		long long *dst = o == 'd' ? &devices : o == 's' ? &seed : o == 'p' ? &page : o == 'e' ? &epoch : NULL;
		long long lo = o == 'd' ? 0 : o == 'p' ? 1 : 0;
		long long hi = o == 'd' ? 10000000 : o == 'p' ? 100000 : INT64_MAX;
		if (!dst)
			return usage(NULL);
		if (parse_int(optarg, lo, hi, dst) < 0) {
			fprintf(stderr, LAB_NAME ": init: invalid value '%s' for --%s\n", optarg,
				o == 'd' ? "devices" : o == 's' ? "seed" : o == 'p' ? "page-size" : "epoch");
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage("init: one DIR is required");
	const char *dir = argv[optind];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", dir, strerror(errno));
		return 1;
	}
	chmod(dir, 0700);
	struct lab_conf c;
	memset(&c, 0, sizeof c);
	c.dir = realpath(dir, NULL);
	if (!c.dir) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int rc = 1;
	char *p = lab_path(&c, "lab.conf");
	sqlite3 *db = NULL;
	struct lab_inventory inv = {0};
	if (access(p, F_OK) == 0) {
		fprintf(stderr, LAB_NAME ": %s: already a lab directory (lab.conf exists)\n", c.dir);
		goto done;
	}
	lab_guid(c.tenant_id);
	lab_guid(c.client_id);
	lab_guid(c.admin_client_id);          /* remote actions' admin registration (actions.c) */
	lab_actions_conf_defaults(&c);
	lab_policies_conf_defaults(&c);       /* [policies] (policies.c) */
	snprintf(c.site_code, sizeof c.site_code, "PS1");
	snprintf(c.username, sizeof c.username, "CONTOSO\\svc-cmbridge");
	c.page_size = (int)page;
	c.site_old = site_old;                /* [site] version (odata.c) */
	c.client_paging = client_paging;      /* [site] paging */
	c.token_lifetime = 3599;
	snprintf(c.token_roles, sizeof c.token_roles, "%s", LAB_TOKEN_ROLES); /* [tenant] roles (tenant.c) */
	c.seed = (uint64_t)seed;
	c.devices = (int)devices;
	c.epoch = epoch >= 0 ? epoch : (int64_t)time(NULL) / 86400 * 86400;
	int s1 = lab_listen(0, &c.site_port), s2 = lab_listen(0, &c.tenant_port);
	if (s1 >= 0) close(s1);
	if (s2 >= 0) close(s2);
	if (s1 < 0 || s2 < 0) {
		fprintf(stderr, LAB_NAME ": cannot find free ports on 127.0.0.1: %s\n", strerror(errno));
		goto done;
	}
	if (lab_pki_create(c.dir) < 0)
		goto done;
	if (lab_auth_init_files(&c) < 0)     /* client*.pem/.key, site-client.pem/.key (auth_assertion.c) */
		goto done;
	/* secrets: an Entra-style client secret, a site password, the admin key */
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~";
	unsigned char rnd[64];
	char secret[41], pw[25], key[65];
	lab_random(rnd, sizeof rnd);
	for (int i = 0; i < 40; i++)
		secret[i] = alpha[rnd[i] % 66];
	memcpy(secret + 3, "8Q~", 3);
	secret[40] = 0;
	lab_random(rnd, sizeof rnd);
	for (int i = 0; i < 24; i++)
		pw[i] = alpha[rnd[i] % 62];
	pw[24] = 0;
	lab_random(rnd, 32);
	for (int i = 0; i < 32; i++)
		snprintf(key + 2 * i, 3, "%02x", rnd[i]);
	struct { const char *name, *val; } sec[] = {{"client-secret", secret}, {"site-password", pw}, {"lab.key", key}};
	for (size_t i = 0; i < 3; i++) {
		free(p);
		p = lab_path(&c, sec[i].name);
		if (lab_write_file(p, sec[i].val, strlen(sec[i].val), 0600) < 0) {
			fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
			goto done;
		}
	}
	if (lab_actions_write_secret(&c) < 0)     /* DIR/admin-secret */
		goto done;
	/* the CSDL copy that up reads */
	size_t sl;
	char *schema = lab_read_file(CMB_LAB_SCHEMA, &sl);
	if (!schema) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", CMB_LAB_SCHEMA, strerror(errno));
		goto done;
	}
	free(p);
	p = lab_path(&c, "schema.xml");
	int wrc = lab_write_file(p, schema, sl, 0644);
	free(schema);
	if (wrc < 0) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
		goto done;
	}
	free(p);
	p = lab_path(&c, "state");
	mkdir(p, 0700);
	free(p);
	p = lab_path(&c, "lab.db");
	if (sqlite3_open(p, &db) != SQLITE_OK || lab_db_schema(db) < 0) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", p, db ? sqlite3_errmsg(db) : "cannot open");
		goto done;
	}
	lab_inv_generate(&inv, &c);
	if (lab_inv_save(&inv, db) < 0) {
		fprintf(stderr, LAB_NAME ": %s: cannot store the inventory: %s\n", p, sqlite3_errmsg(db));
		goto done;
	}
	if (lab_conf_save(&c) < 0 || lab_conf_write_cmbridge(&c) < 0)
		goto done;
	printf("cmbridge-lab: initialised %s: %zu devices (seed %llu), site port %d, tenant port %d, tenant %s\n",
	       c.dir, inv.n, (unsigned long long)c.seed, c.site_port, c.tenant_port, c.tenant_id);
	rc = 0;
done:
	if (db)
		sqlite3_close(db);
	lab_inv_free(&inv);
	free(p);
	lab_conf_free(&c);
	return rc;
}

/* ---- down ------------------------------------------------------------- */

static bool is_lab_process(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	size_t n;
	char *s = lab_read_file(path, &n);
	if (!s)
		return kill(pid, 0) == 0;  /* no /proc: trust the pid file */
	bool ok = false;
	for (size_t i = 0; i < n; i += strlen(s + i) + 1)
		if (strstr(s + i, "cmbridge-lab"))
			ok = true;
	free(s);
	return ok;
}

static int cmd_down(int argc, char **argv)
{
	if (argc != 2)
		return usage("down: one DIR is required");
	struct lab_conf c;
	if (lab_conf_load(&c, argv[1]) < 0)
		return 1;
	char *p = lab_path(&c, "lab.pid");
	char *s = lab_read_file(p, NULL);
	pid_t pid = s ? (pid_t)atoi(s) : 0;
	free(s);
	int rc = 0;
	if (pid <= 0 || kill(pid, 0) < 0 || !is_lab_process(pid)) {
		printf("cmbridge-lab: %s: not running\n", c.dir);
		unlink(p);
		goto done;
	}
	kill(pid, SIGTERM);
	for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
		/* a zombie of our own shell counts as stopped */
		char st[64];
		snprintf(st, sizeof st, "/proc/%d/stat", (int)pid);
		char *t = lab_read_file(st, NULL);
		char *rp = t ? strrchr(t, ')') : NULL;
		bool zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
		free(t);
		if (zombie)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (kill(pid, 0) == 0) {
		char st[64];
		snprintf(st, sizeof st, "/proc/%d/stat", (int)pid);
		char *t = lab_read_file(st, NULL);
		char *rp = t ? strrchr(t, ')') : NULL;
		bool zombie = rp && rp[1] == ' ' && rp[2] == 'Z';
		free(t);
		if (!zombie) {
			fprintf(stderr, LAB_NAME ": %s: pid %d did not stop within 10 s\n", c.dir, (int)pid);
			rc = 1;
			goto done;
		}
	}
	unlink(p);
	printf("cmbridge-lab: %s: stopped (pid %d)\n", c.dir, (int)pid);
done:
	free(p);
	lab_conf_free(&c);
	return rc;
}

/* ---- admin client (mutate, stats) ------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	lab_buf_add(ud, data, size * n);
	return size * n;
}

/* Calls the running lab's admin route; fills out with the body. */
static int admin_call(const struct lab_conf *c, const char *route, const char *post, struct lab_buf *out, long *status)
{
	char *keyp = lab_path(c, "lab.key"), *ca = lab_path(c, "ca.pem");
	char *key = lab_read_file(keyp, NULL);
	int rc = -1;
	if (!key) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", keyp, strerror(errno));
		goto done;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	char *url = lab_xasprintf("https://127.0.0.1:%d%s", c->tenant_port, route);
	char *hdr = lab_xasprintf("X-Lab-Key: %s", key);
	struct curl_slist *hl = curl_slist_append(NULL, hdr);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		fprintf(stderr, LAB_NAME ": %s: %s: %s (is the lab up?)\n", c->dir, url, ebuf[0] ? ebuf : curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
		rc = 0;
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	free(url);
	free(hdr);
done:
	free(key);
	free(keyp);
	free(ca);
	return rc;
}

static const char *graph_message(yajl_val v)
{
	const char *path[] = {"error", "message", NULL};
	yajl_val m = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
	return m ? m->u.string : "(no message)";
}

static void print_ids(const char *label, yajl_val v, const char *key)
{
	const char *path[] = {key, NULL};
	yajl_val a = yajl_tree_get(v, path, yajl_t_array);
	printf("%s:", label);
	for (size_t i = 0; a && i < a->u.array.len; i++)
		printf(" %s", a->u.array.values[i]->u.number.r);
	printf("\n");
}

static int cmd_mutate(int argc, char **argv)
{
	static const char *const names[] = {"change", "add", "delete", "checkin", "health", "unjoin", "duplicate"};
	long long n[7] = {0};
	bool verbose = false, any = false;
	static const struct option opts[] = {
		{"change", required_argument, 0, 0}, {"add", required_argument, 0, 1},
		{"delete", required_argument, 0, 2}, {"checkin", required_argument, 0, 3},
		{"health", required_argument, 0, 4}, {"unjoin", required_argument, 0, 5},
		{"duplicate", required_argument, 0, 6}, {"verbose", no_argument, 0, 'v'}, {0, 0, 0, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		if (o == 'v') {
			verbose = true;
			continue;
		}
		if (o < 0 || o > 6)
			return usage(NULL);
		if (parse_int(optarg, 0, 1000000, &n[o]) < 0) {
			fprintf(stderr, LAB_NAME ": mutate: invalid count '%s' for --%s\n", optarg, names[o]);
			return 2;
		}
		any = true;
	}
	if (optind != argc - 1)
		return usage("mutate: one DIR is required");
	if (!any)
		return usage("mutate: give at least one of --change, --add, --delete, --checkin, --health, --unjoin, --duplicate");
	struct lab_conf c;
	if (lab_conf_load(&c, argv[optind]) < 0)
		return 1;
	struct lab_buf body = {0};
	for (int i = 0; i < 7; i++)
		lab_buf_addf(&body, "%s\"%s\":%lld", i ? "," : "{", names[i], n[i]);
	lab_buf_addc(&body, '}');
	struct lab_buf out = {0};
	long status = 0;
	int rc = 1;
	if (admin_call(&c, "/_lab/mutate", body.p, &out, &status) == 0) {
		yajl_val v = yajl_tree_parse(out.p ? out.p : "", NULL, 0);
		if (status != 200) {
			fprintf(stderr, LAB_NAME ": mutate %s: %s\n", c.dir, graph_message(v));
		} else {
			const char *sp[] = {"siteDevices", NULL};
			yajl_val sd = yajl_tree_get(v, sp, yajl_t_number);
			printf("cmbridge-lab: mutate: changed %lld, added %lld, deleted %lld", n[0], n[1], n[2]);
			if (n[3] || n[4] || n[5] || n[6])
				printf(", checked in %lld, health %lld, unjoined %lld, duplicated %lld", n[3], n[4], n[5], n[6]);
			printf("; the site has %s devices\n", sd ? sd->u.number.r : "?");
			if (verbose) {
				print_ids("changed", v, "changed");
				print_ids("added", v, "added");
				print_ids("deleted", v, "deleted");
				print_ids("checkin", v, "checkedIn");
				print_ids("health", v, "health");
				print_ids("unjoin", v, "unjoined");
				print_ids("duplicated", v, "duplicated");
				print_ids("twins", v, "twins");
			}
			rc = 0;
		}
		yajl_tree_free(v);
	}
	lab_buf_free(&body);
	lab_buf_free(&out);
	lab_conf_free(&c);
	return rc;
}

static int parse_rate(const char *s, double lo, double hi, double *out)
{
	char *e;
	errno = 0;
	double v = strtod(s, &e);
	if (!*s || *e || errno || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int cmd_faults(int argc, char **argv)
{
	enum { O_SITE = 1, O_TENANT, O_500, O_429, O_RA, O_NORA, O_RESET, O_TRUNC, O_LOST, O_LAT, O_SEED, O_CLEAR,
	       O_ROWS, O_LOSE_AT, O_503 };
	static const struct option opts[] = {
		{"site", no_argument, 0, O_SITE}, {"tenant", no_argument, 0, O_TENANT},
		{"rate-500", required_argument, 0, O_500}, {"rate-429", required_argument, 0, O_429},
		{"retry-after", required_argument, 0, O_RA}, {"no-retry-after", no_argument, 0, O_NORA},
		{"rate-reset", required_argument, 0, O_RESET}, {"rate-truncate", required_argument, 0, O_TRUNC},
		{"rate-reply-lost", required_argument, 0, O_LOST}, {"latency-ms", required_argument, 0, O_LAT},
		{"seed", required_argument, 0, O_SEED}, {"clear", no_argument, 0, O_CLEAR},
		{"class-rows", required_argument, 0, O_ROWS}, {"lose-reply-at", required_argument, 0, O_LOSE_AT},
		{"rate-503", required_argument, 0, O_503}, {0, 0, 0, 0}};
	bool site = false, tenant = false;
	struct lab_buf body = {0};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		double d;
		long long i;
		const char *key = NULL;
		switch (o) {
		case O_SITE: site = true; continue;
		case O_TENANT: tenant = true; continue;
		case O_NORA: lab_buf_adds(&body, ",\"noRetryAfter\":true"); continue;
		case O_CLEAR: lab_buf_adds(&body, ",\"clear\":true"); continue;
		case O_ROWS: {
			/* CLASS=N: a class name is letters, digits and '_' (nothing to escape) */
			const char *eq = strchr(optarg, '=');
			size_t nl = eq ? (size_t)(eq - optarg) : 0;
			static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
			if (!eq || !nl || strspn(optarg, name_chars) != nl || parse_int(eq + 1, 0, INT32_MAX, &i) < 0) {
				fprintf(stderr, LAB_NAME ": faults: invalid value '%s' for --class-rows (CLASS=N)\n", optarg);
				lab_buf_free(&body);
				return 2;
			}
			lab_buf_addf(&body, ",\"shortClass\":\"%.*s\",\"shortRows\":%lld", (int)nl, optarg, i);
			continue;
		}
		case O_500: key = "rate500"; break;
		case O_503: key = "rate503"; break;
		case O_429: key = "rate429"; break;
		case O_RESET: key = "rateReset"; break;
		case O_TRUNC: key = "rateTruncate"; break;
		case O_LOST: key = "rateReplyLost"; break;
		case O_RA: key = "retryAfter"; break;
		case O_LAT: key = "latencyMs"; break;
		case O_SEED: key = "seed"; break;
		case O_LOSE_AT: key = "loseReplyAt"; break;
		default:
			lab_buf_free(&body);
			return usage(NULL);
		}
		bool bad = o == O_LAT ? parse_int(optarg, 0, 60000, &i) < 0
			 : o == O_SEED ? parse_int(optarg, 0, INT64_MAX, &i) < 0
			 : o == O_LOSE_AT ? parse_int(optarg, 1, INT32_MAX, &i) < 0
			 : parse_rate(optarg, 0, o == O_RA ? 3600 : 1, &d) < 0;
		if (bad) {
			fprintf(stderr, LAB_NAME ": faults: invalid value '%s' for --%s\n", optarg, opts[o - 1].name);
			lab_buf_free(&body);
			return 2;
		}
		if (o == O_LAT || o == O_SEED || o == O_LOSE_AT)
			lab_buf_addf(&body, ",\"%s\":%lld", key, i);
		else
			lab_buf_addf(&body, ",\"%s\":%.17g", key, d);
	}
	if (optind != argc - 1) {
		lab_buf_free(&body);
		return usage("faults: one DIR is required");
	}
	struct lab_conf c;
	if (lab_conf_load(&c, argv[optind]) < 0) {
		lab_buf_free(&body);
		return 1;
	}
	char *req = lab_xasprintf("{\"side\":\"%s\"%s}", site == tenant ? "both" : site ? "site" : "tenant",
				  body.p ? body.p : "");
	struct lab_buf out = {0};
	long status = 0;
	int rc = 1;
	if (admin_call(&c, "/_lab/faults", req, &out, &status) == 0) {
		yajl_val v = yajl_tree_parse(out.p ? out.p : "", NULL, 0);
		if (status != 200) {
			fprintf(stderr, LAB_NAME ": faults %s: %s\n", c.dir, graph_message(v));
		} else {
			printf("%s\n", out.p);
			rc = 0;
		}
		yajl_tree_free(v);
	}
	free(req);
	lab_buf_free(&body);
	lab_buf_free(&out);
	lab_conf_free(&c);
	return rc;
}

static int cmd_stats(int argc, char **argv)
{
	bool json = false;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || dir)
			return usage("stats: DIR [--json]");
		else
			dir = argv[i];
	}
	if (!dir)
		return usage("stats: one DIR is required");
	struct lab_conf c;
	if (lab_conf_load(&c, dir) < 0)
		return 1;
	struct lab_buf out = {0};
	long status = 0;
	int rc = 1;
	if (admin_call(&c, "/_lab/stats", NULL, &out, &status) == 0) {
		yajl_val v = yajl_tree_parse(out.p ? out.p : "", NULL, 0);
		if (status != 200 || !v) {
			fprintf(stderr, LAB_NAME ": stats %s: %s\n", c.dir, graph_message(v));
		} else if (json) {
			printf("%s\n", out.p);
			rc = 0;
		} else {
			for (size_t i = 0; i < v->u.object.len; i++) {
				yajl_val sec = v->u.object.values[i];
				printf("%s:\n", v->u.object.keys[i]);
				for (size_t j = 0; YAJL_IS_OBJECT(sec) && j < sec->u.object.len; j++)
					printf("  %-52s %s\n", sec->u.object.keys[j], sec->u.object.values[j]->u.number.r);
			}
			rc = 0;
		}
		yajl_tree_free(v);
	}
	lab_buf_free(&out);
	lab_conf_free(&c);
	return rc;
}

/* ---- schema-check ----------------------------------------------------- */

struct sc_ctx {
	const char *file;
	size_t index;
	int errors;
};

static void sc_err(void *ctx, const char *path, const char *msg)
{
	struct sc_ctx *s = ctx;
	printf("%s:%zu: %s: %s\n", s->file, s->index, *path ? path : "(object)", msg);
	s->errors++;
}

static int check_file(const struct lab_schema *schema, const char *type, const char *file)
{
	size_t len;
	char *data = lab_read_file(file, &len);
	if (!data) {
		printf("%s:0: (file): %s\n", file, strerror(errno));
		return 1;
	}
	struct sc_ctx ctx = {file, 0, 0};
	char perr[512];
	yajl_val v = strlen(data) == len ? yajl_tree_parse(data, perr, sizeof perr) : NULL;
	if (v) {
		const char *vp[] = {"value", NULL};
		yajl_val arr = YAJL_IS_OBJECT(v) ? yajl_tree_get(v, vp, yajl_t_array) : NULL;
		if (arr) {
			for (size_t i = 0; i < arr->u.array.len; i++) {
				ctx.index = i;
				lab_schema_validate(schema, type, arr->u.array.values[i], sc_err, &ctx);
			}
		} else {
			lab_schema_validate(schema, type, v, sc_err, &ctx);
		}
		yajl_tree_free(v);
	} else {
		/* one JSON object per line */
		char *save = NULL;
		size_t idx = 0;
		for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char *t = line;
			while (*t == ' ' || *t == '\t' || *t == '\r')
				t++;
			if (!*t)
				continue;
			ctx.index = idx++;
			yajl_val lv = yajl_tree_parse(line, perr, sizeof perr);
			if (!lv) {
				char *nl = strchr(perr, '\n');
				if (nl)
					*nl = 0;
				sc_err(&ctx, "(json)", perr);
				continue;
			}
			lab_schema_validate(schema, type, lv, sc_err, &ctx);
			yajl_tree_free(lv);
		}
		if (idx == 0)
			sc_err(&ctx, "(json)", "no JSON object found");
	}
	free(data);
	return ctx.errors ? 1 : 0;
}

static int cmd_schema_check(int argc, char **argv)
{
	const char *type = "managedDevice", *path = CMB_LAB_SCHEMA;
	static const struct option opts[] = {
		{"type", required_argument, 0, 't'}, {"schema", required_argument, 0, 's'}, {0, 0, 0, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 't') type = optarg;
		else if (o == 's') path = optarg;
		else return usage(NULL);
	}
	if (optind >= argc)
		return usage("schema-check: at least one FILE is required");
	char err[512];
	struct lab_schema *s = lab_schema_load(path, err, sizeof err);
	if (!s) {
		fprintf(stderr, LAB_NAME ": %s\n", err);
		return 1;
	}
	if (!lab_schema_has_type(s, type)) {
		fprintf(stderr, LAB_NAME ": schema-check: '%s' is not an entity or complex type of %s\n", type, path);
		lab_schema_free(s);
		return 2;
	}
	int rc = 0;
	for (int i = optind; i < argc; i++)
		rc |= check_file(s, type, argv[i]);
	lab_schema_free(s);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(NULL);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("cmbridge-lab %s\n", CMB_VERSION);
		return 0;
	}
	argc--;
	argv++;
	if (!strcmp(cmd, "init"))
		return cmd_init(argc, argv);
	if (!strcmp(cmd, "up")) {
		bool detach = false;
		const char *dir = NULL;
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--detach"))
				detach = true;
			else if (argv[i][0] == '-' || dir)
				return usage("up: DIR [--detach]");
			else
				dir = argv[i];
		}
		if (!dir)
			return usage("up: one DIR is required");
		return lab_up(dir, detach);
	}
	if (!strcmp(cmd, "down"))
		return cmd_down(argc, argv);
	if (!strcmp(cmd, "mutate"))
		return cmd_mutate(argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "faults"))
		return cmd_faults(argc, argv);
	if (!strcmp(cmd, "trigger"))
		return lab_actions_cmd_trigger(argc, argv);
	if (!strcmp(cmd, "actions"))
		return lab_actions_cmd_list(argc, argv);
	if (!strcmp(cmd, "policy"))
		return lab_policies_cmd(argc, argv);
	if (!strcmp(cmd, "schema-check"))
		return cmd_schema_check(argc, argv);
	if (!strcmp(cmd, "classes")) {
		if (argc != 1)
			return usage("classes: no arguments");
		struct lab_buf b = {0};
		lab_odata_markdown(&b);
		fwrite(b.p, 1, b.len, stdout);
		lab_buf_free(&b);
		return 0;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "unknown command '%s'", cmd);
	return usage(msg);
}
