/*
 * actions.c - remote actions in the lab (docs/wire-format.md §8):
 *
 *  tenant  POST /beta/deviceManagement/managedDevices/{id}/triggerConfigurationManagerAction,
 *          .../syncDevice, .../retire, .../wipe; deviceActionResults on
 *          GET .../managedDevices/{id}; the admin app registration's tokens;
 *          GET /api/gateway/Notification (long poll, MHD suspend/resume) and
 *          POST /api/gateway/NotificationResult; /_lab/actions.
 *  site    POST SMS_ClientOperation.InitiateClientOperation, GET
 *          SMS_ClientOperation, SMS_ClientOperationStatus, SMS_CN_ClientStatus,
 *          POST SMS_Collection.BlockClients, with simulated client outcomes.
 *  CLI     `trigger` and `actions`.
 *
 * Actions and operations live in lab.db (tenant_action, site_operation,
 * site_operation_target). The lab only stores what the connector reports:
 * it never fails an expired action by itself. It never logs a secret or a
 * token.
 */
#include "actions.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <microhttpd.h>

#define GRAPH_AUD "https://graph.microsoft.com"
#define MAX_NOTIFY 500
#define MAX_RESULTS 500
#define DUP_WINDOW_MS 60000
#define FIRST_OPERATION_ID 16777301

enum {
	A_TRIGGER, A_SYNC, A_RETIRE, A_WIPE, A_NOTIFY, A_RESULT, A_INITIATE, A_OPS, A_OPSTATUS, A_CNSTATUS,
	A_BLOCK, A_ADMIN
};

/* The actions an admin can trigger and the client notification each becomes
 * at the site (0: none; -1: BlockClients). */
static const struct {
	const char *name;
	int type;
	bool cm;              /* a configurationManagerActionType member */
} act_names[] = {
	{"refreshMachinePolicy", 8, true}, {"refreshUserPolicy", 9, true}, {"wakeUpClient", 150, true},
	{"appEvaluation", 13, true}, {"quickScan", 2, true}, {"fullScan", 1, true},
	{"windowsDefenderUpdateSignatures", 3, true},
	{"syncDevice", 8, false}, {"retire", -1, false}, {"wipe", 0, false},
};
#define N_ACT (sizeof act_names / sizeof act_names[0])

static int act_find(const char *s, bool cm_only)
{
	for (size_t i = 0; i < N_ACT; i++)
		if (!strcmp(act_names[i].name, s) && (!cm_only || act_names[i].cm))
			return (int)i;
	return -1;
}

/* Ranks: a state never moves to a lower rank; a final rank never changes. */
static const struct { const char *name; int rank; } delivery_ranks[] = {
	{"unknown", 0}, {"pendingDelivery", 1}, {"deliveredToConnectorService", 2},
	{"failedToDeliverToConnectorService", 3}, {"deliveredToOnPremisesServer", 3},
};
static const struct { const char *name; int rank; } state_ranks[] = {
	{"none", 0}, {"pending", 1}, {"active", 2}, {"canceled", 3}, {"done", 3}, {"failed", 3}, {"notSupported", 3},
};
#define FINAL_RANK 3

static int delivery_rank(const char *s)
{
	for (size_t i = 0; i < sizeof delivery_ranks / sizeof *delivery_ranks; i++)
		if (!strcmp(delivery_ranks[i].name, s))
			return delivery_ranks[i].rank;
	return -1;
}

static int state_rank(const char *s)
{
	for (size_t i = 0; i < sizeof state_ranks / sizeof *state_ranks; i++)
		if (!strcmp(state_ranks[i].name, s))
			return state_ranks[i].rank;
	return -1;
}

struct park {
	struct MHD_Connection *c;
	int64_t until;
};

struct recent {
	int64_t rid, ms;
	int type;
};

/* The statements of the hot paths, prepared once (stmt()). */
enum { S_DEV_BY_KEY, S_KEY_BY_ID, S_INSERT, S_NOTIFY, S_RESULT_GET, S_RESULT_SET, S_AUDIT, S_N };

struct lab_actions {
	pthread_mutex_t lock;      /* parks, gen, recent, stopping */
	pthread_cond_t cond;
	pthread_t timer;
	bool timer_started, stopping;
	uint64_t gen;              /* bumped by every trigger */
	struct park *parks;
	size_t npark, cappark;
	struct recent *recent;
	size_t nrecent, caprecent;
	int log_fd;                /* DIR/operations.log */
	atomic_llong results_received, after_expiry, operations, targets, duplicates, blocked;
	sqlite3_stmt *st[S_N];     /* prepared once, under db_lock; see stmt() */
};

/* ---- configuration --------------------------------------------------------- */

void lab_actions_conf_defaults(struct lab_conf *c)
{
	c->act_success_rate = 0.9;
	c->act_offline_rate = 0.05;
	c->act_delay_ms = 200;
	c->act_ttl = 86400;
	c->act_list_targets = true;
}

int lab_actions_conf_entry(struct lab_conf *c, const char *sec, const char *name, const char *value)
{
	char *e;
	if (!strcmp(sec, "tenant") && !strcmp(name, "admin_client_id")) {
		if (strlen(value) != 36)
			return 0;
		snprintf(c->admin_client_id, sizeof c->admin_client_id, "%s", value);
		return 1;
	}
	if (strcmp(sec, "actions"))
		return 0;
	if (!strcmp(name, "list_targets")) {
		if (strcmp(value, "yes") && strcmp(value, "no"))
			return 0;
		c->act_list_targets = !strcmp(value, "yes");
		return 1;
	}
	if (!strcmp(name, "success_rate") || !strcmp(name, "offline_rate")) {
		double d = strtod(value, &e);
		if (!*value || *e || !(d >= 0 && d <= 1))
			return 0;
		*(name[0] == 's' ? &c->act_success_rate : &c->act_offline_rate) = d;
		return 1;
	}
	if (!strcmp(name, "delay_ms") || !strcmp(name, "ttl")) {
		long v = strtol(value, &e, 10);
		if (!*value || *e || v < 0 || v > 100000000 || (name[0] == 't' && v < 1))
			return 0;
		*(name[0] == 'd' ? &c->act_delay_ms : &c->act_ttl) = (int)v;
		return 1;
	}
	return 0;
}

int lab_actions_conf_check(struct lab_conf *c)
{
	if (c->act_success_rate + c->act_offline_rate > 1.0 + 1e-9) {
		fprintf(stderr, LAB_NAME ": %s/lab.conf: [actions] success_rate + offline_rate must be at most 1\n", c->dir);
		return -1;
	}
	if (!c->admin_client_id[0]) {
		/* a lab made before the admin registration existed: a stable id */
		struct lab_prng r = {0x61646d696eULL};
		for (const char *p = c->tenant_id; *p; p++)
			r.s = r.s * 131 + (unsigned char)*p;
		lab_prng_guid(&r, c->admin_client_id);
	}
	return 0;
}

void lab_actions_conf_save(const struct lab_conf *c, struct lab_buf *b)
{
	lab_buf_addf(b, "[tenant]\nadmin_client_id = %s\n[actions]\nttl = %d\nsuccess_rate = %g\noffline_rate = %g\n"
		     "delay_ms = %d\nlist_targets = %s\n", c->admin_client_id, c->act_ttl, c->act_success_rate,
		     c->act_offline_rate, c->act_delay_ms, c->act_list_targets ? "yes" : "no");
}

int lab_actions_write_secret(const struct lab_conf *c)
{
	char *p = lab_path(c, "admin-secret");
	int rc = 0;
	if (access(p, F_OK) != 0) {
		static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~";
		unsigned char rnd[40];
		char s[41];
		lab_random(rnd, sizeof rnd);
		for (int i = 0; i < 40; i++)
			s[i] = alpha[rnd[i] % 66];
		memcpy(s + 3, "8Q~", 3);
		s[40] = 0;
		if ((rc = lab_write_file(p, s, 40, 0600)) < 0)
			fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
	}
	free(p);
	return rc;
}

/* ---- up / down ------------------------------------------------------------- */

static void *timer_main(void *arg)
{
	struct lab_actions *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		int64_t now = lab_now_ms(), next = 0;
		size_t w = 0;
		for (size_t i = 0; i < a->npark; i++) {
			if (a->parks[i].until <= now) {
				MHD_resume_connection(a->parks[i].c);
				continue;
			}
			if (!next || a->parks[i].until < next)
				next = a->parks[i].until;
			a->parks[w++] = a->parks[i];
		}
		a->npark = w;
		if (!next) {
			pthread_cond_wait(&a->cond, &a->lock);
		} else {
			struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
			pthread_cond_timedwait(&a->cond, &a->lock, &ts);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int lab_actions_up(struct lab *lab, char *err, size_t errlen)
{
	static const char *const sql =
		"CREATE TABLE IF NOT EXISTS tenant_action(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
		" device_id TEXT NOT NULL, key TEXT NOT NULL, action TEXT NOT NULL, requested_by TEXT NOT NULL,"
		" requested INTEGER NOT NULL, expires INTEGER NOT NULL, state TEXT NOT NULL, delivery TEXT NOT NULL,"
		" error_code INTEGER NOT NULL DEFAULT 0, message TEXT, updated TEXT NOT NULL);"
		"CREATE INDEX IF NOT EXISTS tenant_action_device ON tenant_action(device_id, action);"
		"CREATE INDEX IF NOT EXISTS tenant_action_key ON tenant_action(key, action);"
		"CREATE TABLE IF NOT EXISTS site_operation(id INTEGER PRIMARY KEY, type INTEGER NOT NULL,"
		" collection TEXT NOT NULL, created_by TEXT NOT NULL, requested_ms INTEGER NOT NULL,"
		" target_type INTEGER NOT NULL DEFAULT 1);"
		"CREATE TABLE IF NOT EXISTS site_operation_target(op INTEGER NOT NULL, resource_id INTEGER NOT NULL,"
		" outcome INTEGER NOT NULL, PRIMARY KEY(op, resource_id));";
	if (sqlite3_exec(lab->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "lab.db: cannot create the action tables: %s", sqlite3_errmsg(lab->db));
		return -1;
	}
	/* labs made before SMS_ClientOperation had TargetType: specific clients */
	sqlite3_exec(lab->db, "ALTER TABLE site_operation ADD COLUMN target_type INTEGER NOT NULL DEFAULT 1", NULL, NULL,
		     NULL);
	if (lab_actions_write_secret(&lab->conf) < 0) {
		snprintf(err, errlen, "%s/admin-secret: cannot write", lab->conf.dir);
		return -1;
	}
	char *p = lab_path(&lab->conf, "admin-secret");
	size_t n;
	char *s = lab_read_file(p, &n);
	if (!s) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		free(p);
		return -1;
	}
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	snprintf(lab->admin_secret, sizeof lab->admin_secret, "%s", s);
	free(s);
	free(p);
	struct lab_actions *a = lab_xcalloc(1, sizeof *a);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	p = lab_path(&lab->conf, "operations.log");
	a->log_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (a->log_fd < 0)
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
	free(p);
	lab->actions = a;
	if (a->log_fd < 0)
		return -1;
	if (pthread_create(&a->timer, NULL, timer_main, a) != 0) {
		snprintf(err, errlen, "cannot start the long-poll timer thread");
		return -1;
	}
	a->timer_started = true;
	return 0;
}

void lab_actions_stop(struct lab *lab)
{
	struct lab_actions *a = lab->actions;
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	for (size_t i = 0; i < a->npark; i++)
		MHD_resume_connection(a->parks[i].c);
	a->npark = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (a->timer_started)
		pthread_join(a->timer, NULL);
	a->timer_started = false;
}

void lab_actions_free(struct lab *lab)
{
	struct lab_actions *a = lab->actions;
	if (!a)
		return;
	lab_actions_stop(lab);
	if (a->log_fd >= 0)
		close(a->log_fd);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a->parks);
	free(a->recent);
	free(a);
	lab->actions = NULL;
}

void lab_actions_park(struct lab *lab, void *mhd_connection, const struct lab_reply *r)
{
	struct lab_actions *a = lab->actions;
	struct MHD_Connection *c = mhd_connection;
	MHD_suspend_connection(c);
	pthread_mutex_lock(&a->lock);
	if (a->stopping || a->gen != r->park_gen) {
		/* an action arrived since the handler looked: run it again now */
		MHD_resume_connection(c);
	} else {
		if (a->npark == a->cappark) {
			a->cappark = a->cappark ? a->cappark * 2 : 16;
			a->parks = lab_xrealloc(a->parks, a->cappark * sizeof *a->parks);
		}
		a->parks[a->npark].c = c;
		a->parks[a->npark].until = r->park_until_ms;
		a->npark++;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
}

static void wake_all(struct lab *lab)
{
	struct lab_actions *a = lab->actions;
	pthread_mutex_lock(&a->lock);
	a->gen++;
	for (size_t i = 0; i < a->npark; i++)
		MHD_resume_connection(a->parks[i].c);
	a->npark = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* ---- small helpers ----------------------------------------------------------- */

static yajl_val jget(yajl_val o, const char *k)
{
	if (!o || !YAJL_IS_OBJECT(o))
		return NULL;
	for (size_t i = 0; i < o->u.object.len; i++)
		if (!strcmp(o->u.object.keys[i], k))
			return o->u.object.values[i];
	return NULL;
}

static yajl_val parse_body(const struct lab_req *q)
{
	char *s = lab_xstrndup(q->body, q->body_len);
	yajl_val v = yajl_tree_parse(s, NULL, 0);
	free(s);
	return v;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/* The cached statement `which` for sql, reset with its bindings cleared;
 * NULL when it cannot be prepared. Caller holds db_lock. */
static sqlite3_stmt *stmt(struct lab *lab, int which, const char *sql)
{
	sqlite3_stmt **st = &lab->actions->st[which];
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	} else if (sqlite3_prepare_v3(lab->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
		*st = NULL;
	}
	return *st;
}

/* Ends a cached statement's use: its read transaction and locks go. */
static void stmt_done(sqlite3_stmt *st)
{
	if (st)
		sqlite3_reset(st);
}

void lab_actions_db_close(struct lab *lab)
{
	if (!lab->actions)
		return;
	for (int i = 0; i < S_N; i++) {
		sqlite3_finalize(lab->actions->st[i]);
		lab->actions->st[i] = NULL;
	}
}

static void iso_now(char out[32])
{
	lab_iso8601(lab_tenant_time(), out);
}

/* An ISO 8601 date-time with Z or an offset (the Edm.DateTimeOffset shape). */
static bool iso_valid(const char *s)
{
	int y, mo, d, h, mi, sec;
	char rest[64];
	if (strlen(s) > 40 || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%63s", &y, &mo, &d, &h, &mi, &sec, rest) < 6)
		return false;
	const char *p = strchr(s, 'T') + 9;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return !strcmp(p, "Z") || ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':');
}

static void odata_err(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void odata_err(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lab_odata_error(r, status, code, msg);
}

static void echo_request_id(const struct lab_req *q, struct lab_reply *r)
{
	const char *cr = q->header(q->hctx, "client-request-id");
	if (cr && strlen(cr) < 100 && !strpbrk(cr, "\r\n"))
		lab_reply_hdr(r, "client-request-id", cr);
}

/* ---- actions in lab.db --------------------------------------------------------- */

/* Creates one action; caller holds db_lock (and a transaction when many). */
static int action_insert(struct lab *lab, const char *device_id, const char *key, const char *action,
			 const char *requester, char id[37])
{
	int64_t now = lab_tenant_time();
	char upd[32];
	lab_iso8601(now, upd);
	lab_guid(id);
	sqlite3_stmt *st = stmt(lab, S_INSERT, "INSERT INTO tenant_action(id,device_id,key,action,requested_by,requested,"
				"expires,state,delivery,error_code,message,updated)"
				" VALUES(?,?,?,?,?,?,?,'pending','pendingDelivery',0,NULL,?)");
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, requester, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, now + lab->conf.act_ttl);
	sqlite3_bind_text(st, 8, upd, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	stmt_done(st);
	return rc;
}

static void default_requester(const struct lab *lab, char *out, size_t n)
{
	snprintf(out, n, "admin@%.8s.onmicrosoft.com", lab->conf.tenant_id);
}

/* A UPN-shaped requester: local@domain, printable ASCII without quotes. */
static bool upn_ok(const char *s)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (!n || n > 256 || !at || at == s || !at[1] || strchr(at + 1, '@'))
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			return false;
	return true;
}

static void handle_trigger(struct lab *lab, const struct lab_req *q, const char *device_id, int verb,
			   struct lab_reply *r)
{
	static const char *const verbs[] = {"triggerConfigurationManagerAction", "syncDevice", "retire", "wipe"};
	const char *action = verbs[verb];
	yajl_val v = NULL;
	bool empty = true;
	for (size_t i = 0; i < q->body_len; i++)
		if (q->body[i] != ' ' && q->body[i] != '\n' && q->body[i] != '\r' && q->body[i] != '\t')
			empty = false;
	if (!empty && (!(v = parse_body(q)) || !YAJL_IS_OBJECT(v))) {
		lab_reply_graph_error(r, 400, "BadRequest", "The request body must be a JSON object.");
		goto done;
	}
	if (verb == 0) {
		yajl_val cma = jget(v, "configurationManagerAction"), act = jget(cma, "action");
		if (!cma || !YAJL_IS_OBJECT(cma)) {
			lab_reply_graph_error(r, 400, "BadRequest",
					      "configurationManagerAction: missing or not an object (microsoft.graph.configurationManagerAction).");
			goto done;
		}
		if (!act || !YAJL_IS_STRING(act)) {
			lab_reply_graph_error(r, 400, "BadRequest", "configurationManagerAction.action: missing or not a string.");
			goto done;
		}
		if (act_find(act->u.string, true) < 0) {
			lab_reply_graph_error(r, 400, "BadRequest",
					      "configurationManagerAction.action: '%s' is not a member of graph.configurationManagerActionType.",
					      act->u.string);
			goto done;
		}
		for (size_t i = 0; i < v->u.object.len; i++)
			if (strcmp(v->u.object.keys[i], "configurationManagerAction")) {
				lab_reply_graph_error(r, 400, "BadRequest", "'%s' is not a parameter of triggerConfigurationManagerAction.",
						      v->u.object.keys[i]);
				goto done;
			}
		for (size_t i = 0; i < cma->u.object.len; i++)
			if (strcmp(cma->u.object.keys[i], "action") && strncmp(cma->u.object.keys[i], "@odata.", 7)) {
				lab_reply_graph_error(r, 400, "BadRequest", "configurationManagerAction.%s: not a property of graph.configurationManagerAction.",
						      cma->u.object.keys[i]);
				goto done;
			}
		action = act->u.string;
	} else if (v) {
		static const char *const wipe_params[] = {"keepEnrollmentData", "keepUserData", "macOsUnlockCode",
							 "persistEsimDataPlan"};
		for (size_t i = 0; i < v->u.object.len; i++) {
			bool ok = false;
			for (size_t k = 0; verb == 3 && k < 4; k++)
				ok |= !strcmp(v->u.object.keys[i], wipe_params[k]);
			if (!ok) {
				lab_reply_graph_error(r, 400, "BadRequest", "'%s' is not a parameter of %s.", v->u.object.keys[i], verbs[verb]);
				goto done;
			}
		}
	}
	char req[260];
	const char *h = q->header(q->hctx, "X-Lab-Requester");
	if (h) {
		if (!upn_ok(h)) {
			lab_reply_graph_error(r, 400, "BadRequest", "X-Lab-Requester: not a user principal name (name@domain).");
			goto done;
		}
		snprintf(req, sizeof req, "%s", h);
	} else {
		default_requester(lab, req, sizeof req);
	}
	char id[37];
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st = stmt(lab, S_KEY_BY_ID, "SELECT key FROM tenant_device WHERE id=?");
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	char *key = sqlite3_step(st) == SQLITE_ROW ? lab_xstrdup(col_text(st, 0)) : NULL;
	stmt_done(st);
	int rc = key ? action_insert(lab, device_id, key, action, req, id) : 0;
	pthread_mutex_unlock(&lab->db_lock);
	if (!key) {
		lab_reply_graph_error(r, 404, "ResourceNotFound", "Resource not found: no managedDevice with id '%s'.", device_id);
	} else if (rc < 0) {
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the action.");
	} else {
		r->status = 204;
		r->body = lab_xstrdup("");
		r->len = 0;
		lab_reply_hdr(r, "X-Lab-Action-Id", id);
		lab_log("action %s: %s on %s (%s) by %s", id, action, device_id, key, req);
		wake_all(lab);
	}
	free(key);
done:
	yajl_tree_free(v);
}

/* ---- notification channel ------------------------------------------------------- */

static void handle_notification(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *cs = lab_req_arg(q, "cursor"), *ws = lab_req_arg(q, "wait");
	unsigned long long after = 0;
	long wait = 0;
	if (cs && *cs) {
		char *e;
		errno = 0;
		after = strtoull(cs, &e, 16);
		if (*e || errno || strlen(cs) > 16 || cs[0] == '-' || cs[0] == '+' || cs[0] == ' ') {
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid cursor '%s': use the cursor of the previous reply.", cs);
			return;
		}
	}
	if (ws) {
		char *e;
		wait = strtol(ws, &e, 10);
		if (!*ws || *e || wait < 0 || wait > 60) {
			lab_reply_graph_error(r, 400, "BadRequest", "Invalid wait '%s': whole seconds from 0 to 60.", ws);
			return;
		}
	}
	struct lab_actions *a = lab->actions;
	pthread_mutex_lock(&a->lock);
	uint64_t gen = a->gen;
	bool stopping = a->stopping;
	pthread_mutex_unlock(&a->lock);
	struct lab_buf list = {0};
	long n = 0;
	unsigned long long last = after;
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st = stmt(lab, S_NOTIFY, "SELECT seq,id,device_id,key,action,requested_by,requested,expires"
				" FROM tenant_action WHERE seq > ? ORDER BY seq LIMIT ?");
	sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
	sqlite3_bind_int(st, 2, MAX_NOTIFY);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char t1[32], t2[32];
		last = (unsigned long long)sqlite3_column_int64(st, 0);
		lab_iso8601(sqlite3_column_int64(st, 6), t1);
		lab_iso8601(sqlite3_column_int64(st, 7), t2);
		lab_buf_adds(&list, n ? ",{\"id\":" : "{\"id\":");
		lab_buf_json_cstr(&list, col_text(st, 1));
		lab_buf_adds(&list, ",\"deviceId\":");
		lab_buf_json_cstr(&list, col_text(st, 2));
		lab_buf_adds(&list, ",\"key\":");
		lab_buf_json_cstr(&list, col_text(st, 3));
		lab_buf_adds(&list, ",\"action\":");
		lab_buf_json_cstr(&list, col_text(st, 4));
		lab_buf_adds(&list, ",\"requestedBy\":");
		lab_buf_json_cstr(&list, col_text(st, 5));
		lab_buf_addf(&list, ",\"requestedDateTime\":\"%s\",\"expirationDateTime\":\"%s\"}", t1, t2);
		n++;
	}
	stmt_done(st);
	pthread_mutex_unlock(&lab->db_lock);
	if (!n && wait > 0 && !stopping) {
		int64_t deadline = q->parked_until_ms ? q->parked_until_ms : lab_now_ms() + wait * 1000;
		if (lab_now_ms() < deadline) {
			r->park_until_ms = deadline;
			r->park_gen = gen;
			lab_buf_free(&list);
			return;
		}
	}
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"cursor\":\"%llx\",\"notifications\":[", last);
	if (list.len)
		lab_buf_add(&b, list.p, list.len);
	lab_buf_adds(&b, "]}");
	lab_buf_free(&list);
	lab_reply_json(r, 200, &b);
}

static void handle_result(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	yajl_val v = parse_body(q), res = jget(v, "results");
	char why[300] = "";
	if (!v || !YAJL_IS_OBJECT(v))
		snprintf(why, sizeof why, "The request body must be a JSON object {\"results\":[...]}.");
	else if (!res || !YAJL_IS_ARRAY(res))
		snprintf(why, sizeof why, "results: missing or not an array.");
	else if (res->u.array.len > MAX_RESULTS)
		snprintf(why, sizeof why, "results: more than %d entries in one request.", MAX_RESULTS);
	for (size_t i = 0; !why[0] && i < res->u.array.len; i++) {
		yajl_val e = res->u.array.values[i], id = jget(e, "id"), ds = jget(e, "actionDeliveryStatus"),
			 as = jget(e, "actionState"), ec = jget(e, "errorCode"), lu = jget(e, "lastUpdatedDateTime"),
			 msg = jget(e, "message");
		if (!YAJL_IS_OBJECT(e) || !id || !YAJL_IS_STRING(id) || !*id->u.string)
			snprintf(why, sizeof why, "results[%zu]: not an object with a non-empty string 'id'.", i);
		else if (!ds && !as)
			snprintf(why, sizeof why, "results[%zu]: neither actionDeliveryStatus nor actionState.", i);
		else if (ds && (!YAJL_IS_STRING(ds) || delivery_rank(ds->u.string) < 0))
			snprintf(why, sizeof why, "results[%zu].actionDeliveryStatus: not a member of graph.configurationManagerActionDeliveryStatus.", i);
		else if (as && (!YAJL_IS_STRING(as) || state_rank(as->u.string) < 0))
			snprintf(why, sizeof why, "results[%zu].actionState: not a member of graph.actionState.", i);
		else if (ec && (!YAJL_IS_INTEGER(ec) || ec->u.number.i < INT32_MIN || ec->u.number.i > INT32_MAX))
			snprintf(why, sizeof why, "results[%zu].errorCode: not an integer (Edm.Int32).", i);
		else if (lu && (!YAJL_IS_STRING(lu) || !iso_valid(lu->u.string)))
			snprintf(why, sizeof why, "results[%zu].lastUpdatedDateTime: not an ISO 8601 date-time with offset.", i);
		else if (msg && !YAJL_IS_STRING(msg) && !YAJL_IS_NULL(msg))
			snprintf(why, sizeof why, "results[%zu].message: not a string.", i);
		for (size_t k = 0; !why[0] && k < e->u.object.len; k++) {
			const char *kn = e->u.object.keys[k];
			if (strcmp(kn, "id") && strcmp(kn, "actionDeliveryStatus") && strcmp(kn, "actionState") &&
			    strcmp(kn, "errorCode") && strcmp(kn, "lastUpdatedDateTime") && strcmp(kn, "message"))
				snprintf(why, sizeof why, "results[%zu].%.64s: unknown property.", i, kn);
		}
	}
	if (why[0]) {
		lab_reply_graph_error(r, 400, "BadRequest", "%s", why);
		yajl_tree_free(v);
		return;
	}
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"results\":[");
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_exec(lab->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; i < res->u.array.len; i++) {
		yajl_val e = res->u.array.values[i], ds = jget(e, "actionDeliveryStatus"), as = jget(e, "actionState"),
			 ec = jget(e, "errorCode"), lu = jget(e, "lastUpdatedDateTime"), msg = jget(e, "message");
		const char *id = jget(e, "id")->u.string;
		sqlite3_stmt *st = stmt(lab, S_RESULT_GET, "SELECT state, delivery FROM tenant_action WHERE id=?");
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		bool known = sqlite3_step(st) == SQLITE_ROW;
		char state[32] = "", delivery[48] = "";
		if (known) {
			snprintf(state, sizeof state, "%s", col_text(st, 0));
			snprintf(delivery, sizeof delivery, "%s", col_text(st, 1));
		}
		stmt_done(st);
		if (known) {
			int sr = state_rank(state), dr = delivery_rank(delivery);
			bool ns = as && sr < FINAL_RANK && state_rank(as->u.string) > sr;
			bool nd = ds && dr < FINAL_RANK && delivery_rank(ds->u.string) > dr;
			if (ns || nd) {
				char now[32];
				iso_now(now);
				st = stmt(lab, S_RESULT_SET, "UPDATE tenant_action SET state=?, delivery=?, error_code=?,"
					  " message=?, updated=? WHERE id=?");
				sqlite3_bind_text(st, 1, ns ? as->u.string : state, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 2, nd ? ds->u.string : delivery, -1, SQLITE_STATIC);
				if (ec)
					sqlite3_bind_int64(st, 3, ec->u.number.i);
				else
					sqlite3_bind_int(st, 3, 0);
				if (msg && YAJL_IS_STRING(msg))
					sqlite3_bind_text(st, 4, msg->u.string, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 5, lu ? lu->u.string : now, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
				sqlite3_step(st);
				stmt_done(st);
			}
		}
		lab_buf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
		lab_buf_json_cstr(&b, id);
		lab_buf_addf(&b, ",\"status\":\"%s\"}", known ? "accepted" : "unknown");
	}
	int ok = sqlite3_exec(lab->db, "COMMIT", NULL, NULL, NULL);
	if (ok != SQLITE_OK)
		sqlite3_exec(lab->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&lab->db_lock);
	atomic_fetch_add(&lab->actions->results_received, (long long)res->u.array.len);
	lab_buf_adds(&b, "]}");
	if (ok != SQLITE_OK) {
		lab_buf_free(&b);
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the results.");
	} else {
		lab_reply_json(r, 200, &b);
	}
	yajl_tree_free(v);
}

/* ---- deviceActionResults ---------------------------------------------------------- */

void lab_actions_decorate(struct lab *lab, const char *device_id, struct lab_buf *obj, char *const *sel, int nsel)
{
	bool want = nsel == 0;
	for (int i = 0; i < nsel; i++)
		want |= !strcmp(sel[i], "deviceActionResults");
	if (!want || !lab->actions)
		return;
	/* the latest action of each name, oldest first */
	struct lab_buf arr = {0};
	lab_buf_addc(&arr, '[');
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT action,state,requested,updated,delivery,error_code FROM tenant_action a"
			   " WHERE device_id=?1 AND seq=(SELECT max(seq) FROM tenant_action b WHERE b.device_id=?1 AND"
			   " b.action=a.action) ORDER BY seq", -1, &st, NULL);
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char t[32];
		lab_iso8601(sqlite3_column_int64(st, 2), t);
		lab_buf_adds(&arr, n++ ? ",{" : "{");
		lab_buf_adds(&arr, "\"@odata.type\":\"#microsoft.graph.configurationManagerActionResult\",\"actionName\":");
		lab_buf_json_cstr(&arr, col_text(st, 0));
		lab_buf_addf(&arr, ",\"actionState\":\"%s\",\"startDateTime\":\"%s\",\"lastUpdatedDateTime\":",
			     col_text(st, 1), t);
		lab_buf_json_cstr(&arr, col_text(st, 3));
		lab_buf_addf(&arr, ",\"actionDeliveryStatus\":\"%s\",\"errorCode\":%lld}", col_text(st, 4),
			     (long long)sqlite3_column_int64(st, 5));
	}
	sqlite3_finalize(st);
	lab_buf_addc(&arr, ']');
	yajl_val v = yajl_tree_parse(obj->p, NULL, 0);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		lab_buf_free(&arr);
		return;
	}
	struct lab_buf out = {0};
	bool put = false;
	lab_buf_addc(&out, '{');
	for (size_t i = 0; i < v->u.object.len; i++) {
		if (i)
			lab_buf_addc(&out, ',');
		lab_buf_json_cstr(&out, v->u.object.keys[i]);
		lab_buf_addc(&out, ':');
		if (!strcmp(v->u.object.keys[i], "deviceActionResults")) {
			lab_buf_add(&out, arr.p, arr.len);
			put = true;
		} else {
			lab_buf_json_val(&out, v->u.object.values[i]);
		}
	}
	if (!put) {
		if (v->u.object.len)
			lab_buf_addc(&out, ',');
		lab_buf_adds(&out, "\"deviceActionResults\":");
		lab_buf_add(&out, arr.p, arr.len);
	}
	lab_buf_addc(&out, '}');
	yajl_tree_free(v);
	lab_buf_free(&arr);
	lab_buf_free(obj);
	*obj = out;
}

/* ---- admin: list and bulk trigger ------------------------------------------------------ */

static void action_json(struct lab_buf *b, sqlite3_stmt *st, bool full)
{
	char t1[32], t2[32];
	lab_iso8601(sqlite3_column_int64(st, 6), t1);
	lab_iso8601(sqlite3_column_int64(st, 7), t2);
	lab_buf_adds(b, "{\"id\":");
	lab_buf_json_cstr(b, col_text(st, 1));
	lab_buf_adds(b, ",\"deviceId\":");
	lab_buf_json_cstr(b, col_text(st, 2));
	lab_buf_adds(b, ",\"key\":");
	lab_buf_json_cstr(b, col_text(st, 3));
	lab_buf_adds(b, ",\"action\":");
	lab_buf_json_cstr(b, col_text(st, 4));
	lab_buf_adds(b, ",\"requestedBy\":");
	lab_buf_json_cstr(b, col_text(st, 5));
	lab_buf_addf(b, ",\"requestedDateTime\":\"%s\",\"expirationDateTime\":\"%s\"", t1, t2);
	if (full) {
		lab_buf_addf(b, ",\"actionState\":\"%s\",\"actionDeliveryStatus\":\"%s\",\"errorCode\":%lld,\"message\":",
			     col_text(st, 8), col_text(st, 9), (long long)sqlite3_column_int64(st, 10));
		if (sqlite3_column_type(st, 11) == SQLITE_NULL)
			lab_buf_adds(b, "null");
		else
			lab_buf_json_cstr(b, col_text(st, 11));
		lab_buf_adds(b, ",\"lastUpdatedDateTime\":");
		lab_buf_json_cstr(b, col_text(st, 12));
		lab_buf_addf(b, ",\"expired\":%s", sqlite3_column_int64(st, 7) <= (sqlite3_int64)lab_tenant_time() ? "true" : "false");
	}
	lab_buf_addc(b, '}');
}

static void admin_list(struct lab *lab, struct lab_reply *r)
{
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"value\":[");
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(lab->db, "SELECT seq,id,device_id,key,action,requested_by,requested,expires,state,delivery,"
			   "error_code,message,updated FROM tenant_action ORDER BY seq", -1, &st, NULL);
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n++)
			lab_buf_addc(&b, ',');
		action_json(&b, st, true);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_adds(&b, "]}");
	lab_reply_json(r, 200, &b);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_dev_rid(const void *a, const void *b)
{
	return cmp_i64(&(*(const struct lab_device *const *)a)->resource_id, &(*(const struct lab_device *const *)b)->resource_id);
}

static const struct lab_device *find_dev(const struct lab *lab, int64_t rid)
{
	size_t lo = 0, hi = lab->inv.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int64_t m = lab->inv.dev[mid].resource_id;
		if (m == rid)
			return &lab->inv.dev[mid];
		if (m < rid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = 0; i < lab->inv.n; i++)     /* not sorted after all */
		if (lab->inv.dev[i].resource_id == rid)
			return &lab->inv.dev[i];
	return NULL;
}

struct cand { int64_t rid; char *id, *key; };

/* The plain site devices in ResourceID order, for the walk below. */
static const struct lab_device **plain_by_rid(const struct lab *lab, size_t *n)
{
	const struct lab_device **d = lab_xmalloc((lab->inv.n + 1) * sizeof *d);
	bool sorted = true;
	*n = 0;
	for (size_t i = 0; i < lab->inv.n; i++) {
		if (!lab_dev_plain(&lab->inv.dev[i]))
			continue;
		sorted &= !*n || d[*n - 1]->resource_id < lab->inv.dev[i].resource_id;
		d[(*n)++] = &lab->inv.dev[i];
	}
	if (!sorted)
		qsort(d, *n, sizeof *d, cmp_dev_rid);
	return d;
}

/*
 * Tenant devices whose key (SITE:ResourceID) names a plain site device,
 * lowest ResourceID first: each plain device's key looked up in the key's
 * index until `need` are found, so a trigger costs its devices, not the
 * tenant's. *nc is the count found (all of them when fewer than need).
 * Caller holds inv_lock and db_lock.
 */
static struct cand *plain_candidates(struct lab *lab, size_t need, size_t *nc)
{
	size_t nd;
	const struct lab_device **d = plain_by_rid(lab, &nd);
	struct cand *c = lab_xmalloc((need < nd ? need : nd) * sizeof *c + sizeof *c);
	sqlite3_stmt *st = stmt(lab, S_DEV_BY_KEY, "SELECT id FROM tenant_device WHERE key=?");
	*nc = 0;
	for (size_t i = 0; st && i < nd && *nc < need; i++) {
		char key[64];
		snprintf(key, sizeof key, "%s:%lld", lab->conf.site_code, (long long)d[i]->resource_id);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_ROW)
			continue;
		c[*nc] = (struct cand){d[i]->resource_id, lab_xstrdup(col_text(st, 0)), lab_xstrdup(key)};
		(*nc)++;
	}
	stmt_done(st);
	free(d);
	return c;
}

static void admin_many(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	yajl_val v = parse_body(q), many = jget(v, "many"), act = jget(v, "action"), devs = jget(v, "devices"),
		 rq = jget(v, "requester");
	char req[260];
	if (!many || !YAJL_IS_INTEGER(many) || many->u.number.i < 1 || many->u.number.i > 100000 || !act ||
	    !YAJL_IS_STRING(act) || act_find(act->u.string, false) < 0 ||
	    (devs && (!YAJL_IS_INTEGER(devs) || devs->u.number.i < 1)) || (rq && (!YAJL_IS_STRING(rq) || !upn_ok(rq->u.string)))) {
		lab_reply_graph_error(r, 400, "BadRequest", "the body must be {\"many\":N (1-100000),\"action\":A,"
				      "\"devices\":K,\"requester\":UPN} with A a configurationManagerActionType member, syncDevice, retire or wipe");
		yajl_tree_free(v);
		return;
	}
	if (rq)
		snprintf(req, sizeof req, "%s", rq->u.string);
	else
		default_requester(lab, req, sizeof req);
	long n = (long)many->u.number.i;
	size_t nc = 0;
	pthread_rwlock_rdlock(&lab->inv_lock);
	pthread_mutex_lock(&lab->db_lock);
	struct cand *c = plain_candidates(lab, devs ? (size_t)devs->u.number.i : (size_t)n, &nc);
	pthread_rwlock_unlock(&lab->inv_lock);
	size_t k = devs ? (size_t)devs->u.number.i : ((size_t)n < nc ? (size_t)n : nc);
	struct lab_buf b = {0};
	int rc = 0;
	if (!nc || k > nc) {
		pthread_mutex_unlock(&lab->db_lock);
		lab_reply_graph_error(r, 409, "Conflict", "%zu tenant devices are plain site devices (key %s:<ResourceID>); %zu needed",
				      nc, lab->conf.site_code, k ? k : 1);
		goto done;
	}
	sqlite3_exec(lab->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	lab_buf_addf(&b, "{\"created\":%ld,\"devices\":%zu,\"ids\":[", n, k);
	for (long i = 0; i < n && rc == 0; i++) {
		char id[37];
		rc = action_insert(lab, c[(size_t)i % k].id, c[(size_t)i % k].key, act->u.string, req, id);
		lab_buf_addf(&b, "%s\"%s\"", i ? "," : "", id);
	}
	if (rc == 0 && sqlite3_exec(lab->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = -1;
	if (rc < 0)
		sqlite3_exec(lab->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_adds(&b, "]}");
	if (rc < 0) {
		lab_buf_free(&b);
		lab_reply_graph_error(r, 500, "InternalServerError", "The lab could not store the actions.");
	} else {
		lab_log("actions: %ld x %s over %zu devices by %s", n, act->u.string, k, req);
		lab_reply_json(r, 200, &b);
		wake_all(lab);
	}
done:
	for (size_t i = 0; i < nc; i++) {
		free(c[i].id);
		free(c[i].key);
	}
	free(c);
	yajl_tree_free(v);
}

/* ---- admin token --------------------------------------------------------------------- */

static void token_err(struct lab *lab, struct lab_reply *r, int status, const char *err, int code, const char *msg)
{
	char trace[37], corr[37], ts[32];
	lab_guid(trace);
	lab_guid(corr);
	iso_now(ts);
	struct lab_buf b = {0}, d = {0};
	lab_buf_addf(&d, "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code, msg, trace, corr, ts);
	lab_buf_adds(&b, "{\"error\":");
	lab_buf_json_cstr(&b, err);
	lab_buf_adds(&b, ",\"error_description\":");
	lab_buf_json_str(&b, d.p, d.len);
	lab_buf_addf(&b, ",\"error_codes\":[%d],\"timestamp\":\"%s\",\"trace_id\":\"%s\",\"correlation_id\":\"%s\","
		     "\"error_uri\":\"https://login.microsoftonline.com/error?code=%d\"}", code, ts, trace, corr, code);
	lab_buf_free(&d);
	lab_reply_json(r, status, &b);
	lab_reply_hdr(r, "Cache-Control", "no-store, no-cache");
	atomic_fetch_add(&lab->st.token_errors, 1);
}

int lab_actions_admin_token(struct lab *lab, const struct lab_req *q, const char *tenant, struct lab_reply *r)
{
	const char *ct = q->header(q->hctx, "Content-Type");
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) || !lab->conf.admin_client_id[0])
		return 0;
	char *body = lab_xstrndup(q->body, q->body_len), *save = NULL;
	char *gt = NULL, *cid = NULL, *sec = NULL, *scope = NULL;
	for (char *t = strtok_r(body, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(t, '=');
		if (!eq)
			continue;
		*eq = 0;
		lab_urldecode(t);
		lab_urldecode(eq + 1);
		char **dst = !strcmp(t, "grant_type") ? &gt : !strcmp(t, "client_id") ? &cid
			   : !strcmp(t, "client_secret") ? &sec : !strcmp(t, "scope") ? &scope : NULL;
		if (dst && !*dst)
			*dst = eq + 1;
	}
	int handled = 0;
	if (!cid || strcmp(cid, lab->conf.admin_client_id))
		goto done;
	handled = 1;
	struct lab_conf *c = &lab->conf;
	if (strcmp(tenant, c->tenant_id))
		token_err(lab, r, 400, "invalid_tenant", 90002, "Tenant not found. Check to make sure you have the correct tenant ID.");
	else if (!gt || strcmp(gt, "client_credentials"))
		token_err(lab, r, 400, gt ? "unsupported_grant_type" : "invalid_request", gt ? 70003 : 900144,
			  gt ? "The app requested an unsupported grant type." : "The request body must contain the following parameter: 'grant_type'.");
	else if (!scope || (strcmp(scope, GRAPH_AUD "/.default") && strcmp(scope, "00000003-0000-0000-c000-000000000000/.default")))
		token_err(lab, r, 400, "invalid_scope", 1002012, "The provided value for scope is not valid: the admin registration asks for https://graph.microsoft.com/.default.");
	else if (!sec || !*sec)
		token_err(lab, r, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_secret'.");
	else if (strcmp(sec, lab->admin_secret))
		token_err(lab, r, 401, "invalid_client", 7000215, "Invalid client secret provided.");
	else {
		int64_t now = lab_tenant_time();
		char uti[37], oid[37];
		lab_guid(uti);
		struct lab_prng pr = {0x6f6964ULL};
		for (const char *p = c->admin_client_id; *p; p++)
			pr.s = pr.s * 131 + (unsigned char)*p;
		lab_prng_guid(&pr, oid);
		char *claims = lab_xasprintf(
			"{\"aud\":\"%s\",\"iss\":\"https://sts.windows.net/%s/\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
			"\"app_displayname\":\"cmbridge-lab admin\",\"appid\":\"%s\",\"appidacr\":\"1\",\"idp\":\"https://sts.windows.net/%s/\","
			"\"idtyp\":\"app\",\"oid\":\"%s\",\"roles\":[\"DeviceManagementManagedDevices.PrivilegedOperations.All\","
			"\"DeviceManagementManagedDevices.ReadWrite.All\"],\"sub\":\"%s\",\"tid\":\"%s\",\"uti\":\"%s\",\"ver\":\"1.0\"}",
			GRAPH_AUD, c->tenant_id, (long long)now, (long long)now - 300, (long long)(now + c->token_lifetime),
			c->admin_client_id, c->tenant_id, oid, oid, c->tenant_id, uti);
		char *tok = lab_jwt_sign(lab->jwt_key, lab->jwt_kid, claims);
		free(claims);
		if (!tok) {
			token_err(lab, r, 500, "server_error", 50000, "The lab could not sign the token.");
		} else {
			struct lab_buf b = {0};
			lab_buf_addf(&b, "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,\"access_token\":\"%s\"}",
				     c->token_lifetime, c->token_lifetime, tok);
			free(tok);
			lab_reply_json(r, 200, &b);
			lab_reply_hdr(r, "Cache-Control", "no-store, no-cache");
			atomic_fetch_add(&lab->st.tokens_issued, 1);
		}
	}
done:
	free(body);
	return handled;
}

/* ---- tenant routes ---------------------------------------------------------------------- */

int lab_actions_tenant(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	const char *p = q->path;
	bool post = !strcmp(q->method, "POST"), get = !strcmp(q->method, "GET");
	if (!lab->actions)
		return 0;
	if (!strcmp(p, "/_lab/actions")) {
		atomic_fetch_add(&lab->routes[R_ACT_FIRST + A_ADMIN], 1);
		const char *k = q->header(q->hctx, "X-Lab-Key");
		if (!k || strcmp(k, lab->lab_key))
			lab_reply_graph_error(r, 401, "Unauthorized", "X-Lab-Key missing or wrong (see DIR/lab.key).");
		else if (get)
			admin_list(lab, r);
		else if (post)
			admin_many(lab, q, r);
		else
			lab_reply_graph_error(r, 405, "MethodNotAllowed", "Use GET or POST for /_lab/actions.");
		return 1;
	}
	int route = -1;
	const char *dev = NULL;
	size_t devlen = 0;
	if (!strcmp(p, "/api/gateway/Notification"))
		route = A_NOTIFY;
	else if (!strcmp(p, "/api/gateway/NotificationResult"))
		route = A_RESULT;
	else {
		static const char *const verbs[] = {"triggerConfigurationManagerAction", "syncDevice", "retire", "wipe"};
		const char *lp = "/beta/deviceManagement/managedDevices/";
		size_t ll = strlen(lp);
		const char *slash = strncmp(p, lp, ll) ? NULL : strchr(p + ll, '/');
		if (!slash || slash == p + ll)
			return 0;
		for (int i = 0; i < 4; i++)
			if (!strcmp(slash + 1, verbs[i]))
				route = A_TRIGGER + i;
		if (route < 0)
			return 0;
		dev = p + ll;
		devlen = (size_t)(slash - dev);
	}
	atomic_fetch_add(&lab->routes[R_ACT_FIRST + route], 1);
	echo_request_id(q, r);
	if (route == A_NOTIFY ? !get : !post) {
		lab_reply_graph_error(r, 405, "MethodNotAllowed", "Use %s for this route.", route == A_NOTIFY ? "GET" : "POST");
		return 1;
	}
	if (lab_tenant_bearer(lab, q, r) != 0)
		return 1;
	if (route == A_NOTIFY) {
		handle_notification(lab, q, r);
	} else if (route == A_RESULT) {
		atomic_fetch_add(&lab->st.writes, 1);
		handle_result(lab, q, r);
	} else {
		char *id = lab_xstrndup(dev, devlen);
		handle_trigger(lab, q, id, route - A_TRIGGER, r);
		free(id);
	}
	return 1;
}

/* ---- site: client outcomes ---------------------------------------------------------------- */

enum { O_COMPLETED = 1, O_FAILED = 2, O_OFFLINE = 3 };

static double draw(uint64_t seed, uint64_t a, uint64_t b)
{
	struct lab_prng r = {seed * 0x9e3779b97f4a7c15ULL ^ a * 0xd1b54a32d192ed03ULL ^ b * 0x8cb92ba72f3d8dd7ULL};
	lab_prng_next(&r);
	return (double)(lab_prng_next(&r) >> 11) * (1.0 / 9007199254740992.0);
}

/* A client is online unless it has none, is inactive or blocked, or falls in
 * offline_rate (fixed per device and seed). */
static bool dev_online(const struct lab *lab, const struct lab_device *d)
{
	if (d->client != 1 || d->active_status != 1 || d->blocked)
		return false;
	return draw(lab->conf.seed, (uint64_t)d->resource_id, 0x0ff11e) >= lab->conf.act_offline_rate;
}

static int outcome(const struct lab *lab, const struct lab_device *d, int64_t op)
{
	if (!dev_online(lab, d))
		return O_OFFLINE;
	double online = 1.0 - lab->conf.act_offline_rate;
	double p = online > 0 ? lab->conf.act_success_rate / online : 1.0;
	return draw(lab->conf.seed, (uint64_t)d->resource_id, (uint64_t)op) < p ? O_COMPLETED : O_FAILED;
}

/* Double delivery and delivery after expiry; caller holds db_lock. type -1:
 * BlockClients (matches retire). */
static void audit_target(struct lab *lab, int64_t rid, int type, int64_t now_ms)
{
	struct lab_actions *a = lab->actions;
	pthread_mutex_lock(&a->lock);
	size_t w = 0;
	bool dup = false;
	for (size_t i = 0; i < a->nrecent; i++) {
		if (a->recent[i].ms <= now_ms - DUP_WINDOW_MS)
			continue;
		dup |= a->recent[i].rid == rid && a->recent[i].type == type;
		a->recent[w++] = a->recent[i];
	}
	a->nrecent = w;
	if (a->nrecent == a->caprecent) {
		a->caprecent = a->caprecent ? a->caprecent * 2 : 256;
		a->recent = lab_xrealloc(a->recent, a->caprecent * sizeof *a->recent);
	}
	a->recent[a->nrecent++] = (struct recent){rid, now_ms, type};
	pthread_mutex_unlock(&a->lock);
	if (dup)
		atomic_fetch_add(&a->duplicates, 1);
	/* the actions this target can be for: same device key, an action that maps to the type */
	char key[64];
	snprintf(key, sizeof key, "%s:%lld", lab->conf.site_code, (long long)rid);
	sqlite3_stmt *st = stmt(lab, S_AUDIT, "SELECT action, expires, state FROM tenant_action WHERE key=?");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	bool live = false, expired = false;
	int64_t now = now_ms / 1000;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int ai = act_find(col_text(st, 0), false);
		if (ai < 0 || act_names[ai].type != type)
			continue;
		if (sqlite3_column_int64(st, 1) - lab_clock_offset <= now)   /* the tenant's clock, on the site's */
			expired = true;
		else if (state_rank(col_text(st, 2)) < FINAL_RANK)
			live = true;
	}
	stmt_done(st);
	if (expired && !live)
		atomic_fetch_add(&a->after_expiry, 1);
}

static void oplog(struct lab *lab, int64_t t_ms, const char *op, const char *type, int64_t rid)
{
	char line[128];
	int n = snprintf(line, sizeof line, "%lld.%03lld %s %s %lld\n", (long long)(t_ms / 1000), (long long)(t_ms % 1000),
			 op, type, (long long)rid);
	if (write(lab->actions->log_fd, line, (size_t)n) < 0) { /* best effort, like requests.log */ }
}

static const char *basic_user(const struct lab *lab, const struct lab_req *q, char *out, size_t n)
{
	const char *a = q->header(q->hctx, "Authorization");
	snprintf(out, n, "%s", lab->conf.username);
	if (a && !strncasecmp(a, "Basic ", 6)) {
		size_t len;
		unsigned char *d = lab_b64_decode(a + 6, strlen(a + 6), &len);
		if (d) {
			unsigned char *colon = memchr(d, ':', len);
			if (colon && lab_utf8_valid((char *)d, (size_t)(colon - d)) && !memchr(d, '"', (size_t)(colon - d)))
				snprintf(out, n, "%.*s", (int)(colon - d), (char *)d);
			free(d);
		}
	}
	return out;
}

/* The ResourceIDs of a body array: integers, deduplicated, sorted. */
static int64_t *rid_array(yajl_val a, size_t *n)
{
	if (!a || !YAJL_IS_ARRAY(a) || !a->u.array.len)
		return NULL;
	int64_t *v = lab_xmalloc(a->u.array.len * sizeof *v);
	for (size_t i = 0; i < a->u.array.len; i++) {
		yajl_val x = a->u.array.values[i];
		if (!YAJL_IS_INTEGER(x) || x->u.number.i <= 0) {
			free(v);
			return NULL;
		}
		v[i] = x->u.number.i;
	}
	qsort(v, a->u.array.len, sizeof *v, cmp_i64);
	size_t w = 0;
	for (size_t i = 0; i < a->u.array.len; i++)
		if (!w || v[w - 1] != v[i])
			v[w++] = v[i];
	*n = w;
	return v;
}

/* A WMI method's reply: 201 (sccmhunter checks status_code == 201 after
 * InitiateClientOperation and other method calls) with the out parameters;
 * rv < 0: no ReturnValue at all ([site] block_reply = empty). */
static void return_value(struct lab_reply *r, const char *host, const char *method, int rv, long long opid)
{
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata#%s\"", host, method);
	if (rv >= 0)
		lab_buf_addf(&b, ",\"ReturnValue\":%d", rv);
	if (opid > 0)
		lab_buf_addf(&b, ",\"OperationID\":%lld", opid);
	lab_buf_addc(&b, '}');
	lab_reply_json(r, 201, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

/* Why WMI's binder refuses InitiateClientOperation's parameters (allocated), or NULL. */
static char *initiate_refusal(yajl_val v)
{
	static const int types[] = {8, 9, 13, 150, 1, 2, 3};
	yajl_val ty = jget(v, "Type"), coll = jget(v, "TargetCollectionID"), rw = jget(v, "RandomizationWindow");
	bool type_ok = false;
	for (size_t i = 0; ty && YAJL_IS_INTEGER(ty) && i < sizeof types / sizeof *types; i++)
		type_ok |= ty->u.number.i == types[i];
	if (!v || !YAJL_IS_OBJECT(v))
		return lab_xstrdup("The request body must be a JSON object.");
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		if (strcmp(k, "Type") && strcmp(k, "TargetCollectionID") && strcmp(k, "TargetResourceIDs") &&
		    strcmp(k, "RandomizationWindow"))
			return lab_xasprintf("'%s' is not a parameter of InitiateClientOperation.", k);
	}
	if (!type_ok)
		return lab_xstrdup("Type: missing or not a client notification type the lab knows (8, 9, 13, 150, 1, 2, 3).");
	if (!coll || !YAJL_IS_STRING(coll) || !*coll->u.string)
		return lab_xstrdup("TargetCollectionID: missing or not a non-empty string.");
	if (rw && (!YAJL_IS_INTEGER(rw) || rw->u.number.i < 0))
		return lab_xstrdup("RandomizationWindow: not a non-negative integer.");
	return NULL;
}

/*
 * The operation's targets, under inv_lock: the given ResourceIDs, or
 * without them (TargetResourceIDs is [optional]) the collection's current
 * members (TargetType 0). False when WMI would refuse: an unknown or user
 * collection, a target that is not a member.
 */
static bool initiate_targets(struct lab *lab, const char *coll, bool whole, int64_t **rids, size_t *n,
			     const struct lab_device ***dv)
{
	int ci = -1;
	for (int i = 0; i < LAB_NCOLL; i++)
		if (!strcmp(lab_colls[i].id, coll))
			ci = i;
	bool ok = ci >= 0 && lab_colls[ci].type == 2;
	if (whole && ok) {
		*rids = lab_xmalloc((lab->inv.n + 1) * sizeof **rids);
		for (size_t i = 0; i < lab->inv.n; i++)
			if (lab_coll_member(ci, &lab->inv.dev[i], lab->conf.seed))
				(*rids)[(*n)++] = lab->inv.dev[i].resource_id;
		qsort(*rids, *n, sizeof **rids, cmp_i64);
	}
	*dv = lab_xcalloc(*n + 1, sizeof **dv);
	for (size_t i = 0; ok && i < *n; i++)
		ok = ((*dv)[i] = find_dev(lab, (*rids)[i])) && lab_coll_member(ci, (*dv)[i], lab->conf.seed);
	return ok;
}

/* Stores the operation and its targets in one transaction (db_lock held); 0 or -1. */
static int initiate_store(struct lab *lab, long long opid, int type, const char *coll, const char *who, int64_t now,
			  bool whole, const int64_t *rids, const int *oc, size_t n)
{
	sqlite3_stmt *st;
	sqlite3_exec(lab->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	int rc = 0;
	sqlite3_prepare_v2(lab->db, "INSERT INTO site_operation(id,type,collection,created_by,requested_ms,target_type)"
			   " VALUES(?,?,?,?,?,?)", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, opid);
	sqlite3_bind_int(st, 2, type);
	sqlite3_bind_text(st, 3, coll, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, who, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int(st, 6, whole ? 0 : 1);   /* SMS_ClientOperation.TargetType */
	rc |= sqlite3_step(st) != SQLITE_DONE;
	sqlite3_finalize(st);
	sqlite3_prepare_v2(lab->db, "INSERT INTO site_operation_target(op,resource_id,outcome) VALUES(?,?,?)", -1, &st, NULL);
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, opid);
		sqlite3_bind_int64(st, 2, rids[i]);
		sqlite3_bind_int(st, 3, oc[i]);
		rc |= sqlite3_step(st) != SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc == 0 && sqlite3_exec(lab->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	sqlite3_exec(lab->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void site_initiate(struct lab *lab, const struct lab_req *q, const char *host, struct lab_reply *r)
{
	yajl_val v = parse_body(q), ty = jget(v, "Type"), coll = jget(v, "TargetCollectionID"),
		 ids = jget(v, "TargetResourceIDs");
	size_t n = 0;
	int64_t *rids = NULL;
	int *oc = NULL;
	const struct lab_device **dv = NULL;
	char *why = initiate_refusal(v);
	bool whole = !ids;
	if (!why && !whole && !(rids = rid_array(ids, &n)))
		why = lab_xstrdup("TargetResourceIDs: empty, or not an array of ResourceIDs.");
	if (why) {
		odata_err(r, 400, "BadRequest", "%s", why);
		goto done;
	}
	char who[160];
	basic_user(lab, q, who, sizeof who);
	int64_t now = lab_now_ms();
	int type = (int)ty->u.number.i;
	pthread_rwlock_rdlock(&lab->inv_lock);
	if (!initiate_targets(lab, coll->u.string, whole, &rids, &n, &dv)) {
		pthread_rwlock_unlock(&lab->inv_lock);
		lab_log("InitiateClientOperation refused: collection '%s', %zu targets", coll->u.string, n);
		return_value(r, host, "SMS_ClientOperation.InitiateClientOperation", 1, 0);
		goto done;
	}
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	long long opid = FIRST_OPERATION_ID;
	sqlite3_prepare_v2(lab->db, "SELECT max(id) FROM site_operation", -1, &st, NULL);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		opid = sqlite3_column_int64(st, 0) + 1;
	sqlite3_finalize(st);
	oc = lab_xmalloc((n + 1) * sizeof *oc);
	for (size_t i = 0; i < n; i++)
		oc[i] = outcome(lab, dv[i], opid);
	pthread_rwlock_unlock(&lab->inv_lock);
	if (initiate_store(lab, opid, type, coll->u.string, who, now, whole, rids, oc, n) < 0) {
		pthread_mutex_unlock(&lab->db_lock);
		odata_err(r, 500, "InternalServerError", "The lab could not store the operation.");
		goto done;
	}
	char tstr[16], ops[24];
	snprintf(tstr, sizeof tstr, "%d", type);
	snprintf(ops, sizeof ops, "%lld", opid);
	for (size_t i = 0; i < n; i++) {
		audit_target(lab, rids[i], type, now);
		oplog(lab, now, ops, tstr, rids[i]);
	}
	pthread_mutex_unlock(&lab->db_lock);
	atomic_fetch_add(&lab->actions->operations, 1);
	atomic_fetch_add(&lab->actions->targets, (long long)n);
	return_value(r, host, "SMS_ClientOperation.InitiateClientOperation", 0, opid);
done:
	free(why);
	free(oc);
	free(dv);
	free(rids);
	yajl_tree_free(v);
}

static void site_block(struct lab *lab, const struct lab_req *q, const char *host, struct lab_reply *r)
{
	yajl_val v = parse_body(q), ids = jget(v, "ResourceIDs"), bl = jget(v, "Blocked");
	size_t n = 0;
	int64_t *rids = NULL;
	if (!v || !YAJL_IS_OBJECT(v)) {
		odata_err(r, 400, "BadRequest", "The request body must be a JSON object.");
		goto done;
	}
	for (size_t i = 0; i < v->u.object.len; i++)
		if (strcmp(v->u.object.keys[i], "ResourceIDs") && strcmp(v->u.object.keys[i], "Blocked")) {
			odata_err(r, 400, "BadRequest", "'%s' is not a parameter of BlockClients.", v->u.object.keys[i]);
			goto done;
		}
	if (!bl || !(YAJL_IS_TRUE(bl) || YAJL_IS_FALSE(bl))) {
		odata_err(r, 400, "BadRequest", "Blocked: missing or not a boolean.");
		goto done;
	}
	if (!(rids = rid_array(ids, &n))) {
		odata_err(r, 400, "BadRequest", "ResourceIDs: missing, empty, or not an array of ResourceIDs.");
		goto done;
	}
	bool block = YAJL_IS_TRUE(bl);
	pthread_rwlock_wrlock(&lab->inv_lock);
	bool ok = true;
	for (size_t i = 0; ok && i < n; i++)
		ok = find_dev(lab, rids[i]) != NULL;
	if (!ok) {
		pthread_rwlock_unlock(&lab->inv_lock);
		return_value(r, host, "SMS_Collection.BlockClients", 1, 0);
		goto done;
	}
	int64_t now = lab_now_ms();
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st;
	sqlite3_exec(lab->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_prepare_v2(lab->db, "UPDATE site_device SET blocked=? WHERE resource_id=?", -1, &st, NULL);
	for (size_t i = 0; i < n; i++) {
		struct lab_device *d = (struct lab_device *)find_dev(lab, rids[i]);
		d->blocked = block;
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, block);
		sqlite3_bind_int64(st, 2, rids[i]);
		sqlite3_step(st);
		if (block)
			audit_target(lab, rids[i], -1, now);
		oplog(lab, now, "-", block ? "Block" : "Unblock", rids[i]);
	}
	sqlite3_finalize(st);
	sqlite3_exec(lab->db, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&lab->db_lock);
	lab_site_cache_clear(lab);
	pthread_rwlock_unlock(&lab->inv_lock);
	if (block)
		atomic_fetch_add(&lab->actions->blocked, (long long)n);
	/* its reply body is not public: ReturnValue 0, or nothing but the
	 * context with [site] block_reply = empty */
	return_value(r, host, "SMS_Collection.BlockClients", lab->conf.block_reply_empty ? -1 : 0, 0);
done:
	free(rids);
	yajl_tree_free(v);
}

/* ---- site: the three read classes (odata.c parses their queries) ------------------------------ */

/* One row of an operation class: its values by position in the class's
 * property table (odata.c); own[] holds the strings they point to. */
#define OCOLS 16
struct orow {
	struct lab_odata_val v[OCOLS];
	char *own[OCOLS];
};

struct orows {
	int cls;
	struct orow *row;
	size_t n, cap;
};

static struct orow *orow_add(struct orows *rs)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 64;
		rs->row = lab_xrealloc(rs->row, rs->cap * sizeof *rs->row);
	}
	struct orow *w = &rs->row[rs->n++];
	memset(w, 0, sizeof *w);
	for (int i = 0; i < OCOLS; i++)
		w->v[i].t = LAB_V_NULL;
	return w;
}

static int ocol(int cls, enum lab_col col)
{
	const struct lab_odata_prop *p = lab_odata_classes[cls].props;
	for (int i = 0; p[i].name; i++)
		if (p[i].col == col)
			return i;
	return -1;
}

static void oint(struct orows *rs, struct orow *w, enum lab_col col, int64_t v)
{
	int i = ocol(rs->cls, col);
	if (i >= 0)
		lab_odata_vint(&w->v[i], v);
}

static void odate(struct orows *rs, struct orow *w, enum lab_col col, int64_t t)
{
	int i = ocol(rs->cls, col);
	if (i >= 0) {
		w->v[i].t = LAB_V_DATE;
		w->v[i].i = t;
	}
}

/* s is copied; NULL is null, "" stays "". */
static void ostr(struct orows *rs, struct orow *w, enum lab_col col, const char *s)
{
	int i = ocol(rs->cls, col);
	if (i < 0 || !s)
		return;
	w->own[i] = lab_xstrdup(s);
	w->v[i].t = LAB_V_STR;
	w->v[i].s = w->own[i];
	w->v[i].n = strlen(s);
}

/* json is taken over (a JSON array). */
static void ojson(struct orows *rs, struct orow *w, enum lab_col col, char *json)
{
	int i = ocol(rs->cls, col);
	if (i < 0) {
		free(json);
		return;
	}
	w->own[i] = json;
	w->v[i].t = LAB_V_JSON;
	w->v[i].s = json;
	w->v[i].n = strlen(json);
}

static void orows_free(struct orows *rs)
{
	for (size_t k = 0; k < rs->n; k++)
		for (int i = 0; i < OCOLS; i++)
			free(rs->row[k].own[i]);
	free(rs->row);
}

static void oget(void *ctx, const void *row, const struct lab_odata_prop *p, struct lab_odata_val *v)
{
	const struct orows *rs = ctx;
	*v = ((const struct orow *)row)->v[p - lab_odata_classes[rs->cls].props];
}

struct osort {
	const struct orows *rs;
	const struct lab_odata_query *q;
};

static int ocmp(const void *a, const void *b, void *arg)
{
	const struct osort *s = arg;
	struct lab_odata_val x, y;
	int c = 0;
	if (s->q->order) {
		oget((void *)s->rs, a, s->q->order, &x);
		oget((void *)s->rs, b, s->q->order, &y);
		c = lab_odata_cmp(&x, &y);
	}
	if (!c) {    /* ties, and the natural order: the key */
		int k = ocol(s->rs->cls, s->rs->cls == LAB_CLS_CNSTATUS ? LAB_C_RID : LAB_C_OPID);
		c = lab_odata_cmp(&((const struct orow *)a)->v[k], &((const struct orow *)b)->v[k]);
	}
	return s->q->desc ? -c : c;
}

/* Filters, orders, pages and serialises the rows (offset $skiptoken "O<n>"). */
/* Where a page starts among the matching rows: $skip, or the offset token
 * a nextLink carried. false for a token the lab did not issue. */
static bool ostart(const struct lab_odata_query *q, size_t *start)
{
	*start = q->skip > 0 ? (size_t)q->skip : 0;
	if (q->token) {
		char *e;
		long long v = q->token[0] == 'O' ? strtoll(q->token + 1, &e, 10) : -1;
		if (v < 0 || *e)
			return false;
		*start = (size_t)v;
	}
	return true;
}

/* The page [start, start + limit) of the matching rows, in order: rs holds
 * them from the first-th on (the rows before it were counted, not built);
 * total is how many match (first + rs->n at least). */
static void opage(struct lab *lab, const char *host, const struct lab_odata_query *q, const struct orows *rs,
		  size_t first, size_t start, size_t total, struct lab_reply *r)
{
	if (start > total)
		start = total;
	size_t limit = lab_odata_limit(lab, q);
	size_t end = start + limit < total ? start + limit : total;
	char tmp[32];
	bool more = !lab->conf.client_paging && end < total && (q->top < 0 || (long long)(end - start) < q->top);
	if (more)
		snprintf(tmp, sizeof tmp, "O%zu", end);
	lab_odata_page(lab, r, q, host, oget, (void *)rs, rs->row, sizeof *rs->row, start - first, end - first, total,
		       more ? tmp : NULL);
	lab_reply_hdr(r, "OData-Version", "4.0");
}

static void oreply(struct lab *lab, const char *host, const struct lab_odata_query *q, struct orows *rs,
		   struct lab_reply *r)
{
	size_t w = 0;
	for (size_t i = 0; i < rs->n; i++) {
		if (lab_odata_match(q, oget, rs, &rs->row[i])) {
			struct orow t = rs->row[w];
			rs->row[w++] = rs->row[i];
			rs->row[i] = t;
		}
	}
	size_t total = w;
	struct osort so = {rs, q};
	qsort_r(rs->row, total, sizeof *rs->row, ocmp, &so);
	size_t start;
	if (!ostart(q, &start)) {
		char err[160];
		snprintf(err, sizeof err, "The $skiptoken '%.64s' is not valid for this query.", q->token);
		lab_odata_error(r, 400, "", err);
		return;
	}
	opage(lab, host, q, rs, 0, start, total, r);
}

static const char *coll_name(const char *id)
{
	for (int i = 0; i < LAB_NCOLL; i++)
		if (!strcmp(lab_colls[i].id, id))
			return lab_colls[i].name;
	return NULL;
}

static void site_read(struct lab *lab, const struct lab_req *q, const char *host, int cls, struct lab_reply *r)
{
	struct lab_odata_query m;
	char err[512];
	if (lab_odata_parse(lab, q, cls, &m, err, sizeof err) < 0) {
		lab_odata_query_free(&m);
		lab_odata_error(r, 400, "", err);
		return;
	}
	struct orows rs = {.cls = cls};
	int64_t pin = 0;
	if (cls == LAB_CLS_CNSTATUS) {
		int64_t on = 0;
		bool one = lab_odata_pinned(&m, LAB_C_RID, &pin), by_online = lab_odata_pinned(&m, LAB_C_ONLINE, &on);
		pthread_rwlock_rdlock(&lab->inv_lock);
		/* the conditions are all and-ed: a pinned ResourceID is one device,
		 * a pinned OnlineStatus leaves out the rest before any row is built */
		const struct lab_device *only = one ? find_dev(lab, pin) : NULL;
		size_t from = only ? (size_t)(only - lab->inv.dev) : 0, to = only ? from + 1 : one ? 0 : lab->inv.n;
		/* In ResourceID order (the natural one) without $count, a page is
		 * built as a window: the matching rows before it counted, its own
		 * rows and one more built, not every client's row per page. */
		size_t start = 0, skipped = 0, limit = lab_odata_limit(lab, &m);
		bool window = !m.count && (!m.order || (m.order->col == LAB_C_RID && !m.desc)) && ostart(&m, &start);
		for (size_t i = from; i < to && !(window && rs.n > limit); i++) {
			const struct lab_device *d = &lab->inv.dev[i];
			/* client notification status exists for clients only */
			if (d->client != 1 || (by_online && (dev_online(lab, d) ? 1 : 0) != on))
				continue;
			struct orow *w = orow_add(&rs);
			oint(&rs, w, LAB_C_CHANNEL, 0);
			odate(&rs, w, LAB_C_LASTSTATUS, d->last_active);
			oint(&rs, w, LAB_C_ONLINE, dev_online(lab, d) ? 1 : 0);
			oint(&rs, w, LAB_C_RID, d->resource_id);
			oint(&rs, w, LAB_C_SERVERID, 1);
			if (!window)
				continue;
			bool hit = lab_odata_match(&m, oget, &rs, w);
			if (!hit || skipped < start) {
				skipped += hit;
				for (int k = 0; k < OCOLS; k++)
					free(w->own[k]);
				rs.n--;
			}
		}
		pthread_rwlock_unlock(&lab->inv_lock);
		if (window)
			opage(lab, host, &m, &rs, skipped, skipped, skipped + rs.n, r);
		else
			oreply(lab, host, &m, &rs, r);
		orows_free(&rs);
		lab_odata_query_free(&m);
		return;
	}
	bool one = lab_odata_pinned(&m, LAB_C_OPID, &pin);
	int64_t now = lab_now_ms();
	pthread_mutex_lock(&lab->db_lock);
	sqlite3_stmt *st, *tg;
	sqlite3_prepare_v2(lab->db, "SELECT id,type,collection,created_by,requested_ms,target_type FROM site_operation"
			   " WHERE ?1 IS NULL OR id=?1 ORDER BY id", -1, &st, NULL);
	sqlite3_prepare_v2(lab->db, "SELECT resource_id, outcome FROM site_operation_target WHERE op=? ORDER BY resource_id",
			   -1, &tg, NULL);
	if (one)
		sqlite3_bind_int64(st, 1, pin);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), req = sqlite3_column_int64(st, 4);
		const char *coll = col_text(st, 2);
		struct orow *w = orow_add(&rs);
		oint(&rs, w, LAB_C_OPID, id);
		ostr(&rs, w, LAB_C_OPCOLL, coll);
		ostr(&rs, w, LAB_C_OPCOLLNAME, coll_name(coll));
		ostr(&rs, w, LAB_C_CREATEDBY, col_text(st, 3));
		odate(&rs, w, LAB_C_REQUESTED, req / 1000);
		oint(&rs, w, LAB_C_OPSTATE, 1);
		sqlite3_reset(tg);
		sqlite3_bind_int64(tg, 1, id);
		long cnt[4] = {0}, total = 0;
		struct lab_buf ids = {0};
		lab_buf_addc(&ids, '[');
		bool settled = now >= req + lab->conf.act_delay_ms;
		while (sqlite3_step(tg) == SQLITE_ROW) {
			lab_buf_addf(&ids, "%s%lld", total ? "," : "", (long long)sqlite3_column_int64(tg, 0));
			int o = sqlite3_column_int(tg, 1);
			cnt[settled && o >= 1 && o <= 3 ? o : 0]++;
			total++;
		}
		lab_buf_addc(&ids, ']');
		if (cls == LAB_CLS_OP) {
			/* What the site records as PrimaryActionType for a client
			 * notification is not public: 0, so nothing is read from it. */
			oint(&rs, w, LAB_C_PRIMARYACTION, 0);
			ostr(&rs, w, LAB_C_SOURCESITE, lab->conf.site_code);
			oint(&rs, w, LAB_C_TARGETTYPE, sqlite3_column_int64(st, 5));
			if (lab->conf.act_list_targets) {
				ojson(&rs, w, LAB_C_TARGETS, lab_buf_steal(&ids, NULL));
			} else {
				/* [actions] list_targets = no: left out of listings, as an
				 * enumeration leaves out what WMI does not fill in */
				w->v[ocol(cls, LAB_C_TARGETS)].t = LAB_V_ABSENT;
				lab_buf_free(&ids);
			}
		} else {
			lab_buf_free(&ids);
			oint(&rs, w, LAB_C_OPTYPE, sqlite3_column_int64(st, 1));
			oint(&rs, w, LAB_C_TOTAL, total);
			oint(&rs, w, LAB_C_COMPLETED, cnt[O_COMPLETED]);
			oint(&rs, w, LAB_C_FAILED, cnt[O_FAILED]);
			oint(&rs, w, LAB_C_OFFLINE, cnt[O_OFFLINE]);
			oint(&rs, w, LAB_C_UNKNOWN, cnt[0]);
			oint(&rs, w, LAB_C_EXPIRED, 0);
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(tg);
	pthread_mutex_unlock(&lab->db_lock);
	oreply(lab, host, &m, &rs, r);
	orows_free(&rs);
	lab_odata_query_free(&m);
}

int lab_actions_site(struct lab *lab, const struct lab_req *q, const char *host, int cls, const char *method,
		     struct lab_reply *r)
{
	int route = -1;
	bool post = false;
	if (!lab->actions)
		return 0;
	if (method) {
		/* method names follow the class names' case rule (release 2006) */
		int (*eq)(const char *, const char *) = lab->conf.site_old ? strcmp : strcasecmp;
		if (cls == LAB_CLS_OP && !eq(method, "InitiateClientOperation"))
			route = A_INITIATE;
		else if (cls == LAB_CLS_COLL && !eq(method, "BlockClients"))
			route = A_BLOCK;
		post = true;
	} else if (cls == LAB_CLS_OP || cls == LAB_CLS_OPSTATUS || cls == LAB_CLS_CNSTATUS) {
		route = cls == LAB_CLS_OP ? A_OPS : cls == LAB_CLS_OPSTATUS ? A_OPSTATUS : A_CNSTATUS;
	}
	if (route < 0)
		return 0;
	atomic_fetch_add(&lab->routes[R_ACT_FIRST + route], 1);
	if (strcmp(q->method, post ? "POST" : "GET")) {
		char msg[160];
		snprintf(msg, sizeof msg, "Use %s for %s.", post ? "POST" : "GET", q->path + 18);
		lab_odata_error(r, 405, "MethodNotAllowed", msg);
		lab_reply_hdr(r, "Allow", post ? "POST" : "GET");
		return 1;
	}
	switch (route) {
	case A_INITIATE: site_initiate(lab, q, host, r); break;
	case A_BLOCK: site_block(lab, q, host, r); break;
	default: site_read(lab, q, host, cls, r); break;
	}
	return 1;
}

/* ---- stats ------------------------------------------------------------------------------------- */

void lab_actions_stats(struct lab *lab, struct lab_buf *b)
{
	struct lab_actions *a = lab->actions;
	long long c[8] = {0};
	static const char *const sql[8] = {
		"SELECT count(*) FROM tenant_action",
		"SELECT count(*) FROM tenant_action WHERE delivery IN ('pendingDelivery','unknown')",
		"SELECT count(*) FROM tenant_action WHERE delivery='deliveredToConnectorService'",
		"SELECT count(*) FROM tenant_action WHERE delivery='deliveredToOnPremisesServer'",
		"SELECT count(*) FROM tenant_action WHERE state='done'",
		"SELECT count(*) FROM tenant_action WHERE state='failed'",
		"SELECT count(*) FROM tenant_action WHERE state='notSupported'",
		NULL};
	pthread_mutex_lock(&lab->db_lock);
	for (int i = 0; a && sql[i]; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(lab->db, sql[i], -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				c[i] = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	}
	pthread_mutex_unlock(&lab->db_lock);
	lab_buf_addf(b, ",\"operations\":%lld,\"operationTargets\":%lld,\"duplicateTargets\":%lld,\"blockedClients\":%lld},"
		     "\"actions\":{\"triggered\":%lld,\"pending\":%lld,\"deliveredToConnector\":%lld,\"deliveredToSite\":%lld,"
		     "\"done\":%lld,\"failed\":%lld,\"notSupported\":%lld,\"resultsReceived\":%lld,\"deliveredAfterExpiry\":%lld},",
		     a ? (long long)a->operations : 0, a ? (long long)a->targets : 0, a ? (long long)a->duplicates : 0,
		     a ? (long long)a->blocked : 0, c[0], c[1], c[2], c[3], c[4], c[5], c[6],
		     a ? (long long)a->results_received : 0, a ? (long long)a->after_expiry : 0);
}

/* ---- CLI ------------------------------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	lab_buf_add(ud, data, size * n);
	return size * n;
}

struct hdrcap {
	char action_id[64];
};

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct hdrcap *h = ud;
	size_t len = size * n;
	if (len > 16 && !strncasecmp(data, "X-Lab-Action-Id:", 16)) {
		const char *p = data + 16;
		while (*p == ' ')
			p++;
		size_t k = 0;
		while (k < sizeof h->action_id - 1 && p + k < data + len && p[k] != '\r' && p[k] != '\n')
			k++;
		memcpy(h->action_id, p, k);
		h->action_id[k] = 0;
	}
	return len;
}

/* One HTTPS request to the running lab's tenant; returns the status or -1.
 * method NULL: GET, or POST when there is a body. */
static long call_m(const struct lab_conf *c, const char *method, const char *route, const char *const *hdrs,
		   const char *body, struct lab_buf *out, struct hdrcap *hc)
{
	char *ca = lab_path(c, "ca.pem");
	char *url = lab_xasprintf("https://127.0.0.1:%d%s", c->tenant_port, route);
	CURL *h = curl_easy_init();
	struct curl_slist *hl = NULL;
	for (int i = 0; hdrs && hdrs[i]; i++)
		hl = curl_slist_append(hl, hdrs[i]);
	char ebuf[CURL_ERROR_SIZE] = "";
	long status = -1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	if (hc) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, hc);
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	if (method)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		fprintf(stderr, LAB_NAME ": %s: %s: %s (is the lab up?)\n", c->dir, url, ebuf[0] ? ebuf : curl_easy_strerror(cc));
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	free(url);
	free(ca);
	return status;
}

static long call(const struct lab_conf *c, const char *route, const char *const *hdrs, const char *body,
		 struct lab_buf *out, struct hdrcap *hc)
{
	return call_m(c, NULL, route, hdrs, body, out, hc);
}

long lab_cli_call(const struct lab_conf *c, const char *method, const char *route, const char *const *hdrs,
		  const char *body, struct lab_buf *out)
{
	return call_m(c, method, route, hdrs, body, out, NULL);
}

static const char *err_message(const char *body)
{
	static char msg[512];
	yajl_val v = yajl_tree_parse(body ? body : "", NULL, 0);
	const char *p1[] = {"error", "message", NULL}, *p2[] = {"error_description", NULL};
	yajl_val m = v ? yajl_tree_get(v, p1, yajl_t_string) : NULL;
	if (!m && v)
		m = yajl_tree_get(v, p2, yajl_t_string);
	snprintf(msg, sizeof msg, "%s", m ? m->u.string : "(no message)");
	yajl_tree_free(v);
	return msg;
}

static char *read_trim(const struct lab_conf *c, const char *name)
{
	char *p = lab_path(c, name);
	size_t n;
	char *s = lab_read_file(p, &n);
	if (!s)
		fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
	while (s && n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	free(p);
	return s;
}

char *lab_cli_admin_auth(const struct lab_conf *c, const char *cmd)
{
	char *secret = read_trim(c, "admin-secret");
	struct lab_buf out = {0}, form = {0};
	char *auth = NULL;
	if (!secret)
		return NULL;
	lab_buf_adds(&form, "grant_type=client_credentials&client_id=");
	lab_buf_urlenc(&form, c->admin_client_id);
	lab_buf_adds(&form, "&client_secret=");
	lab_buf_urlenc(&form, secret);
	lab_buf_adds(&form, "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
	const char *fh[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
	char *route = lab_xasprintf("/%s/oauth2/v2.0/token", c->tenant_id);
	long st = call(c, route, fh, form.p, &out, NULL);
	free(route);
	if (st >= 0 && st != 200) {
		fprintf(stderr, LAB_NAME ": %s %s: admin token: %ld %s\n", cmd, c->dir, st, err_message(out.p));
	} else if (st == 200) {
		yajl_val v = yajl_tree_parse(out.p, NULL, 0);
		const char *tp[] = {"access_token", NULL};
		yajl_val t = v ? yajl_tree_get(v, tp, yajl_t_string) : NULL;
		auth = t ? lab_xasprintf("Authorization: Bearer %s", t->u.string) : NULL;
		yajl_tree_free(v);
		if (!auth)
			fprintf(stderr, LAB_NAME ": %s %s: the token reply has no access_token\n", cmd, c->dir);
	}
	lab_buf_free(&out);
	lab_buf_free(&form);
	free(secret);
	return auth;
}

const char *lab_cli_err_message(const char *body)
{
	return err_message(body);
}

static int trigger_one(const struct lab_conf *c, const char *device, const char *action, const char *requester)
{
	int rc = 1;
	struct lab_buf out = {0};
	char *route;
	long st;
	char *auth = lab_cli_admin_auth(c, "trigger");
	if (!auth)
		return 1;
	bool cm = act_find(action, true) >= 0;
	char *body = cm ? lab_xasprintf("{\"configurationManagerAction\":{\"action\":\"%s\"}}", action) : lab_xstrdup("");
	char *rh = requester ? lab_xasprintf("X-Lab-Requester: %s", requester) : NULL;
	const char *gh[] = {auth, "Content-Type: application/json", rh, NULL};
	struct lab_buf dev = {0};
	lab_buf_urlenc(&dev, device);
	route = lab_xasprintf("/beta/deviceManagement/managedDevices/%s/%s", dev.p, cm ? "triggerConfigurationManagerAction" : action);
	struct hdrcap hc = {""};
	st = call(c, route, gh, body, &out, &hc);
	if (st == 204 && hc.action_id[0]) {
		printf("%s\n", hc.action_id);
		rc = 0;
	} else if (st >= 0) {
		fprintf(stderr, LAB_NAME ": trigger %s: %s: %ld %s\n", c->dir, route, st, err_message(out.p));
	}
	free(route);
	free(body);
	free(rh);
	free(auth);
	lab_buf_free(&dev);
	lab_buf_free(&out);
	return rc;
}

static int admin(const struct lab_conf *c, const char *body, struct lab_buf *out, long *status)
{
	char *key = read_trim(c, "lab.key");
	if (!key)
		return -1;
	char *kh = lab_xasprintf("X-Lab-Key: %s", key);
	const char *h[] = {kh, "Content-Type: application/json", NULL};
	*status = call(c, "/_lab/actions", h, body, out, NULL);
	free(kh);
	free(key);
	return *status < 0 ? -1 : 0;
}

int lab_actions_cmd_trigger(int argc, char **argv)
{
	static const struct option opts[] = {
		{"requester", required_argument, 0, 'r'}, {"many", required_argument, 0, 'm'},
		{"devices", required_argument, 0, 'd'}, {0, 0, 0, 0}};
	const char *requester = NULL;
	long many = 0, devices = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *e;
		if (o == 'r') {
			requester = optarg;
			if (!upn_ok(optarg)) {
				fprintf(stderr, LAB_NAME ": trigger: --requester '%s' is not a user principal name\n", optarg);
				return 2;
			}
		} else if (o == 'm' || o == 'd') {
			long v = strtol(optarg, &e, 10);
			if (!*optarg || *e || v < 1 || v > 100000) {
				fprintf(stderr, LAB_NAME ": trigger: invalid value '%s' for --%s\n", optarg, o == 'm' ? "many" : "devices");
				return 2;
			}
			*(o == 'm' ? &many : &devices) = v;
		} else {
			goto usage;
		}
	}
	int rest = argc - optind;
	if ((many && rest != 2) || (!many && (rest != 3 || devices)))
		goto usage;
	const char *action = argv[argc - 1];
	if (act_find(action, false) < 0) {
		fprintf(stderr, LAB_NAME ": trigger: '%s' is not an action (refreshMachinePolicy, refreshUserPolicy, "
			"wakeUpClient, appEvaluation, quickScan, fullScan, windowsDefenderUpdateSignatures, syncDevice, retire, wipe)\n",
			action);
		return 2;
	}
	struct lab_conf c;
	if (lab_conf_load(&c, argv[optind]) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = 1;
	if (!many) {
		rc = trigger_one(&c, argv[optind + 1], action, requester);
	} else {
		struct lab_buf body = {0}, out = {0};
		long st = 0;
		lab_buf_addf(&body, "{\"many\":%ld,\"action\":\"%s\"", many, action);
		if (devices)
			lab_buf_addf(&body, ",\"devices\":%ld", devices);
		if (requester)
			lab_buf_addf(&body, ",\"requester\":\"%s\"", requester);
		lab_buf_addc(&body, '}');
		if (admin(&c, body.p, &out, &st) == 0) {
			if (st != 200) {
				fprintf(stderr, LAB_NAME ": trigger %s: %s\n", c.dir, err_message(out.p));
			} else {
				yajl_val v = yajl_tree_parse(out.p, NULL, 0);
				const char *ip[] = {"ids", NULL};
				yajl_val ids = v ? yajl_tree_get(v, ip, yajl_t_array) : NULL;
				for (size_t i = 0; ids && i < ids->u.array.len; i++)
					printf("%s\n", ids->u.array.values[i]->u.string);
				yajl_tree_free(v);
				rc = 0;
			}
		}
		lab_buf_free(&body);
		lab_buf_free(&out);
	}
	curl_global_cleanup();
	lab_conf_free(&c);
	return rc;
usage:
	fprintf(stderr, LAB_NAME ": usage: trigger DIR DEVICE-ID ACTION [--requester UPN]\n"
		"       trigger DIR --many N ACTION [--devices K] [--requester UPN]\n");
	return 2;
}

int lab_actions_cmd_list(int argc, char **argv)
{
	bool json = false;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || dir)
			dir = NULL, argc = -1;
		else
			dir = argv[i];
	}
	if (!dir || argc < 0) {
		fprintf(stderr, LAB_NAME ": usage: actions DIR [--json]\n");
		return 2;
	}
	struct lab_conf c;
	if (lab_conf_load(&c, dir) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct lab_buf out = {0};
	long st = 0;
	int rc = 1;
	if (admin(&c, NULL, &out, &st) == 0) {
		yajl_val v = yajl_tree_parse(out.p ? out.p : "", NULL, 0);
		const char *vp[] = {"value", NULL};
		yajl_val arr = v ? yajl_tree_get(v, vp, yajl_t_array) : NULL;
		if (st != 200 || !arr) {
			fprintf(stderr, LAB_NAME ": actions %s: %s\n", c.dir, err_message(out.p));
		} else if (json) {
			printf("%s\n", out.p);
			rc = 0;
		} else {
			for (size_t i = 0; i < arr->u.array.len; i++) {
				yajl_val a = arr->u.array.values[i];
				const char *k[] = {"id", "action", "key", "actionState", "actionDeliveryStatus", "errorCode", "requestedBy"};
				for (int j = 0; j < 7; j++) {
					yajl_val x = jget(a, k[j]);
					printf("%s%s", j ? " " : "", x && YAJL_IS_STRING(x) ? x->u.string : x && YAJL_IS_NUMBER(x) ? x->u.number.r : "-");
				}
				printf("\n");
			}
			rc = 0;
		}
		yajl_tree_free(v);
	}
	lab_buf_free(&out);
	curl_global_cleanup();
	lab_conf_free(&c);
	return rc;
}
