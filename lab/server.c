/*
 * server.c - `cmbridge-lab up`: binds the two loopback ports, starts the
 * site and tenant HTTPS servers (libmicrohttpd, GnuTLS, thread pool) and
 * waits for SIGINT/SIGTERM. With --detach the parent returns only once
 * both servers accept connections. Handlers never log secrets.
 */
#include "lab.h"
#include "auth.h"
#include "actions.h"
#include "policies.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <microhttpd.h>
#include <openssl/evp.h>

const char *const lab_route_names[R_COUNT] = {
	[R_SITE_SERVICE] = "GET /AdminService/wmi/",
	[R_SITE_METADATA] = "GET /AdminService/wmi/$metadata",
	[R_SITE_CLASS0 + 0] = "GET /AdminService/wmi/SMS_R_System",
	[R_SITE_CLASS0 + 1] = "GET /AdminService/wmi/SMS_CombinedDeviceResources",
	[R_SITE_CLASS0 + 2] = "GET /AdminService/wmi/SMS_Client_ComanagementState",
	[R_SITE_CLASS0 + 3] = "GET /AdminService/wmi/SMS_G_System_COMPUTER_SYSTEM",
	[R_SITE_CLASS0 + 4] = "GET /AdminService/wmi/SMS_G_System_PC_BIOS",
	[R_SITE_CLASS0 + 5] = "GET /AdminService/wmi/SMS_FullCollectionMembership",
	[R_SITE_CLASS0 + 6] = "GET /AdminService/wmi/SMS_Collection",
	[R_SITE_CLASS0 + 7] = "GET /AdminService/wmi/SMS_Site",
	[R_TOKEN] = "POST /{tenant}/oauth2/v2.0/token",
	[R_GATEWAY] = "POST /api/gateway/DevicePost",
	[R_GRAPH_LIST] = "GET /beta/deviceManagement/managedDevices",
	[R_GRAPH_ONE] = "GET /beta/deviceManagement/managedDevices/{id}",
	[R_LAB_STATS] = "GET /_lab/stats",
	[R_LAB_MUTATE] = "POST /_lab/mutate",
	[R_OTHER_SITE] = "site: other",
	[R_OTHER_TENANT] = "tenant: other",
	[R_COLL_POST] = "POST /api/gateway/CollectionPost",
	[R_GRAPH_COLL_LIST] = "GET /beta/deviceManagement/configManagerCollections",
	[R_GRAPH_COLL_ONE] = "GET /beta/deviceManagement/configManagerCollections/{id}",
	[R_LAB_FAULTS] = "POST /_lab/faults",
	/* actions.c (same order as its route enum) */
	[R_ACT_FIRST + 0] = "POST /beta/deviceManagement/managedDevices/{id}/triggerConfigurationManagerAction",
	[R_ACT_FIRST + 1] = "POST /beta/deviceManagement/managedDevices/{id}/syncDevice",
	[R_ACT_FIRST + 2] = "POST /beta/deviceManagement/managedDevices/{id}/retire",
	[R_ACT_FIRST + 3] = "POST /beta/deviceManagement/managedDevices/{id}/wipe",
	[R_ACT_FIRST + 4] = "GET /api/gateway/Notification",
	[R_ACT_FIRST + 5] = "POST /api/gateway/NotificationResult",
	[R_ACT_FIRST + 6] = "POST /AdminService/wmi/SMS_ClientOperation.InitiateClientOperation",
	[R_ACT_FIRST + 7] = "GET /AdminService/wmi/SMS_ClientOperation",
	[R_ACT_FIRST + 8] = "GET /AdminService/wmi/SMS_ClientOperationStatus",
	[R_ACT_FIRST + 9] = "GET /AdminService/wmi/SMS_CN_ClientStatus",
	[R_ACT_FIRST + 10] = "POST /AdminService/wmi/SMS_Collection.BlockClients",
	[R_ACT_FIRST + 11] = "GET|POST /_lab/actions",
	/* policies.c, policystore.c (same order as their route enum, policies.h) */
	[R_POL_FIRST + 0] = "POST /beta/deviceManagement/configurationPolicies",
	[R_POL_FIRST + 1] = "GET /beta/deviceManagement/configurationPolicies",
	[R_POL_FIRST + 2] = "GET /beta/deviceManagement/configurationPolicies/{id}",
	[R_POL_FIRST + 3] = "PATCH /beta/deviceManagement/configurationPolicies/{id}",
	[R_POL_FIRST + 4] = "DELETE /beta/deviceManagement/configurationPolicies/{id}",
	[R_POL_FIRST + 5] = "GET /beta/deviceManagement/configurationPolicies/{id}/settings",
	[R_POL_FIRST + 6] = "GET /beta/deviceManagement/configurationPolicies/{id}/assignments",
	[R_POL_FIRST + 7] = "POST /beta/deviceManagement/configurationPolicies/{id}/assign",
	[R_POL_FIRST + 8] = "POST /api/gateway/PolicyStatusPost",
	[R_POL_FIRST + 9] = "GET /beta/deviceManagement/configManagerCollections/getPolicySummary(policyId='{id}')",
	[R_POL_FIRST + 10] = "POST /beta/deviceManagement/reports/exportJobs",
	[R_POL_FIRST + 11] = "GET /beta/deviceManagement/reports/exportJobs('{id}')",
	[R_POL_FIRST + 12] = "GET /reportexports/{id}.zip",
	[R_POL_FIRST + 13] = "PUT /AdminService/v1.0/CmbridgePolicy('{id}')",
	[R_POL_FIRST + 14] = "DELETE /AdminService/v1.0/CmbridgePolicy('{id}')",
	[R_POL_FIRST + 15] = "GET /AdminService/v1.0/CmbridgePolicy",
	[R_POL_FIRST + 16] = "GET /AdminService/v1.0/CmbridgePolicy('{id}')",
	[R_POL_FIRST + 17] = "GET /AdminService/v1.0/CmbridgePolicy('{id}')/Compliance",
};

#define MAX_UPLOAD (64u * 1024 * 1024)

void lab_reply_json(struct lab_reply *r, int status, struct lab_buf *b)
{
	free(r->body);
	r->status = status;
	r->body = lab_buf_steal(b, &r->len);
	r->ctype = "application/json";
}

void lab_reply_hdr(struct lab_reply *r, const char *name, const char *val)
{
	if (r->nhdr == 4)
		return;
	r->hdr_name[r->nhdr] = lab_xstrdup(name);
	r->hdr_val[r->nhdr] = lab_xstrdup(val);
	r->nhdr++;
}

const char *lab_req_arg(const struct lab_req *q, const char *k)
{
	for (int i = 0; i < q->nargs; i++)
		if (!strcmp(q->args[i].k, k))
			return q->args[i].v ? q->args[i].v : "";
	return NULL;
}

struct srv {
	struct lab *lab;
	bool site;
};

struct conn {
	struct lab_buf body;
	bool too_big;
	bool admin;                  /* /_lab/ on the tenant: never faulted, logged as "admin" */
	bool faultable;
	int64_t t_ms;                /* arrival */
	int64_t parked_until;        /* a held long poll (actions.c): run again, no new fault */
	enum lab_fault fault;        /* drawn once, at the first call: a parked request keeps it */
};

/* A body sent only in part (fault "truncate"). */
struct partial {
	char *body;
	size_t half;
};

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct partial *p = cls;
	if (pos >= p->half)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = p->half - (size_t)pos < max ? p->half - (size_t)pos : max;
	memcpy(buf, p->body + pos, n);
	return (ssize_t)n;
}

static void partial_free(void *cls)
{
	struct partial *p = cls;
	free(p->body);
	free(p);
}

static void free_reply(struct lab_reply *r)
{
	free(r->body);
	r->body = NULL;
	for (int i = 0; i < r->nhdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_val[i]);
	}
	r->nhdr = 0;
}

struct argvec {
	struct lab_req *q;
	int cap;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct argvec *a = cls;
	(void)kind;
	if (a->q->nargs == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->q->args = lab_xrealloc(a->q->args, (size_t)a->cap * sizeof *a->q->args);
	}
	a->q->args[a->q->nargs].k = lab_xstrdup(key);
	a->q->args[a->q->nargs].v = value ? lab_xstrdup(value) : NULL;
	a->q->nargs++;
	return MHD_YES;
}

static const char *get_header(void *ctx, const char *name)
{
	return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

/* A WMI method call on the site (POST /AdminService/wmi/{Class}.{Method}). */
static bool site_method(const struct lab *lab, const char *url)
{
	static const char *const m[] = {"SMS_ClientOperation.InitiateClientOperation", "SMS_Collection.BlockClients"};
	if (strncmp(url, "/AdminService/wmi/", 18))
		return false;
	for (size_t i = 0; i < sizeof m / sizeof *m; i++)   /* the case rule of odata.c */
		if (!(lab->conf.site_old ? strcmp : strcasecmp)(url + 18, m[i]))
			return true;
	return false;
}

/* The reply of an injected 500, 503 or 429; the last two say busy, with Retry-After (RFC 9110 10.2.3). */
static void injected_error(struct srv *s, enum lab_fault fault, int side, double retry_after, bool send_ra,
			   struct lab_reply *r)
{
	static const struct {
		int status;
		const char *code, *msg;
	} e[] = {
		[F_500] = {500, "InternalServerError", "The lab injected a server error (fault injection)."},
		[F_503] = {503, "ServiceUnavailable", "The service is temporarily unavailable (fault injection)."},
		[F_429] = {429, "TooManyRequests", "Too many requests: the lab is throttling this client (fault injection)."},
	};
	atomic_fetch_add(fault == F_429 ? &s->lab->st.injected429 : fault == F_503 ? &s->lab->st.injected503
										   : &s->lab->st.injected500, 1);
	if (s->site) {
		struct lab_buf b = {0};
		lab_buf_addf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", e[fault].code, e[fault].msg);
		lab_reply_json(r, e[fault].status, &b);
		r->ctype = "application/json; odata.metadata=minimal";
	} else {
		lab_reply_graph_error(r, e[fault].status, e[fault].code, "%s", e[fault].msg);
	}
	if (fault != F_500 && send_ra) {
		char ra[32];
		snprintf(ra, sizeof ra, "%g", retry_after);
		lab_reply_hdr(r, "Retry-After", ra);
		lab_faults_asked_wait(s->lab, side, retry_after);
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct srv *s = cls;
	struct conn *cn = *con_cls;
	(void)version;
	if (!cn) {
		cn = lab_xcalloc(1, sizeof *cn);
		*con_cls = cn;
		cn->admin = !s->site && !strncmp(url, "/_lab/", 6);
		if (cn->admin) {
			cn->t_ms = lab_now_ms();
		} else {
			cn->t_ms = lab_faults_arrive(s->lab, s->site ? LAB_SITE : LAB_TENANT);
			cn->faultable = !s->site || !strncmp(url, "/AdminService", 13);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (cn->body.len + *upload_size > MAX_UPLOAD + 1)
			cn->too_big = true;
		else
			lab_buf_add(&cn->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	int side = s->site ? LAB_SITE : LAB_TENANT;
	const char *sname = cn->admin ? "admin" : s->site ? "site" : "tenant";
	bool get = !strcmp(method, "GET");
	/* the requests a lost reply applies to: the tenant's uploads, the
	 * site's WMI method calls and policy document writes (applied, then
	 * the reply is dropped) */
	bool upload = (!strcmp(method, "POST") &&
		       (s->site ? site_method(s->lab, url)
				: !strcmp(url, "/api/gateway/DevicePost") || !strcmp(url, "/api/gateway/CollectionPost"))) ||
		      lab_policies_write_route(s->site, method, url);
	enum lab_fault fault = F_NONE;
	int latency = 0;
	double retry_after = 0;
	bool send_ra = false;
	if (cn->faultable && !cn->parked_until)
		cn->fault = lab_faults_draw(s->lab, side, get, upload, &latency, &retry_after, &send_ra);
	fault = cn->fault;
	if (latency > 0) {
		struct timespec ts = {latency / 1000, (long)(latency % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (fault == F_RESET) {
		atomic_fetch_add(&s->lab->st.resets, 1);
		lab_reqlog(s->lab, cn->t_ms, sname, method, url, "reset", "reset");
		return MHD_NO;
	}
	struct lab_req q = {0};
	struct argvec av = {&q, 0};
	q.method = method;
	q.path = url;
	q.header = get_header;
	q.hctx = c;
	q.conn = c;
	q.parked_until_ms = cn->parked_until;
	q.body = cn->body.p ? cn->body.p : "";
	q.body_len = cn->body.len;
	q.host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &av);
	struct lab_reply r = {0};
	if (fault == F_500 || fault == F_429 || fault == F_503) {
		injected_error(s, fault, side, retry_after, send_ra, &r);
	} else if (cn->too_big)
		lab_reply_graph_error(&r, 413, "RequestEntityTooLarge", "The request body is larger than 64 MiB.");
	else if (s->site)
		lab_site_handle(s->lab, &q, &r);
	else
		lab_tenant_handle(s->lab, &q, &r);
	for (int i = 0; i < q.nargs; i++) {
		free(q.args[i].k);
		free(q.args[i].v);
	}
	free(q.args);
	if (r.park_until_ms) {
		/* a long poll with nothing to say yet (actions.c): suspended, run again later */
		cn->parked_until = r.park_until_ms;
		lab_actions_park(s->lab, c, &r);
		free_reply(&r);
		return MHD_YES;
	}
	if (!r.status) {
		struct lab_buf b = {0};
		lab_buf_adds(&b, "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"no reply\"}}");
		lab_reply_json(&r, 500, &b);
	}
	if (fault == F_REPLY_LOST) {
		/* applied, but the client never hears of it */
		atomic_fetch_add(&s->lab->st.replies_lost, 1);
		lab_reqlog(s->lab, cn->t_ms, sname, method, url, "reply-lost", "reply-lost");
		free_reply(&r);
		return MHD_NO;
	}
	struct MHD_Response *resp;
	if (fault == F_TRUNCATE) {
		struct partial *pt = lab_xcalloc(1, sizeof *pt);
		pt->body = r.body;
		pt->half = r.len / 2;
		resp = MHD_create_response_from_callback(r.len, 64 * 1024, partial_read, pt, partial_free);
		atomic_fetch_add(&s->lab->st.truncated, 1);
	} else {
		resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
	}
	MHD_add_response_header(resp, "Content-Type", r.ctype ? r.ctype : "application/json");
	if (r.gzip)
		MHD_add_response_header(resp, "Content-Encoding", "gzip");
	if (s->site)
		MHD_add_response_header(resp, "Vary", "Accept-Encoding");
	for (int i = 0; i < r.nhdr; i++) {
		MHD_add_response_header(resp, r.hdr_name[i], r.hdr_val[i]);
		free(r.hdr_name[i]);
		free(r.hdr_val[i]);
	}
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, resp);
	MHD_destroy_response(resp);
	char st[16];
	snprintf(st, sizeof st, "%d", r.status);
	static const char *const fname[] = {"-", "reset", "500", "429", "truncate", "reply-lost", "503"};
	lab_reqlog(s->lab, cn->t_ms, sname, method, url, fault == F_TRUNCATE ? "truncated" : st, fname[fault]);
	if (r.status >= 500 || r.status == 413)
		lab_log("%s %s -> %d", method, url, r.status);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct conn *cn = *con_cls;
	(void)cls; (void)c; (void)t;
	if (cn) {
		lab_buf_free(&cn->body);
		free(cn);
		*con_cls = NULL;
	}
}

/* Per-connection auth state (NTLM and Negotiate authenticate the connection). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls; (void)c;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = lab_auth_conn_new();
	} else {
		lab_auth_conn_free(*socket_context);
		*socket_context = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	lab_log("httpd: %s", msg);
}

static struct MHD_Daemon *start(struct srv *s, int fd, const char *cert, const char *key)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
				on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_HTTPS_MEM_CERT, cert,
				MHD_OPTION_HTTPS_MEM_KEY, key,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
				/* [site] client_ca: ask for a client certificate (auth_site.c checks it) */
				MHD_OPTION_HTTPS_MEM_TRUST, s->site ? lab_auth_site_trust(s->lab) : NULL,
				MHD_OPTION_END);
}

/* Reads a secret file, trimming one trailing newline. */
static int read_secret(const struct lab_conf *c, const char *name, char *out, size_t n, char *err, size_t en)
{
	char *p = lab_path(c, name);
	size_t len;
	char *s = lab_read_file(p, &len);
	if (!s) {
		snprintf(err, en, "%s: %s", p, strerror(errno));
		free(p);
		return -1;
	}
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = 0;
	snprintf(out, n, "%s", s);
	free(s);
	free(p);
	return 0;
}

static pid_t read_pid(const char *dir)
{
	char *p = lab_xasprintf("%s/lab.pid", dir);
	char *s = lab_read_file(p, NULL);
	free(p);
	pid_t pid = s ? (pid_t)atoi(s) : 0;
	free(s);
	return pid;
}

int lab_up(const char *dir, bool detach)
{
	struct lab *lab = lab_xcalloc(1, sizeof *lab);
	char err[1024] = "";
	int rc = 1, sfd = -1, tfd = -1, pipefd[2] = {-1, -1};
	char *scert = NULL, *skey = NULL, *tcert = NULL, *tkey = NULL, *p = NULL;
	struct MHD_Daemon *sd = NULL, *td = NULL;
	struct srv ssrv = {lab, true}, tsrv = {lab, false};
	bool child = false;

	if (lab_conf_load(&lab->conf, dir) < 0)
		return 1;
	struct lab_conf *c = &lab->conf;
	pid_t old = read_pid(c->dir);
	if (old > 0 && kill(old, 0) == 0) {
		fprintf(stderr, LAB_NAME ": %s: the lab is already running (pid %d); run down first\n", c->dir, (int)old);
		goto out;
	}
	if (read_secret(c, "site-password", lab->site_password, sizeof lab->site_password, err, sizeof err) < 0 ||
	    read_secret(c, "client-secret", lab->client_secret, sizeof lab->client_secret, err, sizeof err) < 0 ||
	    read_secret(c, "lab.key", lab->lab_key, sizeof lab->lab_key, err, sizeof err) < 0)
		goto fail;
#define LOAD(var, name) do { free(p); p = lab_path(c, name); if (!(var = lab_read_file(p, NULL))) { \
		snprintf(err, sizeof err, "%s: %s", p, strerror(errno)); goto fail; } } while (0)
	LOAD(scert, "site.pem");
	LOAD(skey, "site.key");
	LOAD(tcert, "tenant.pem");
	LOAD(tkey, "tenant.key");
#undef LOAD
	free(p);
	p = lab_path(c, "jwt.key");
	if (!(lab->jwt_key = lab_pki_load_key(p))) {
		snprintf(err, sizeof err, "%s: cannot read the JWT signing key", p);
		goto fail;
	}
	lab->jwt_kid = lab_pki_kid(lab->jwt_key);
	if (lab_auth_up(lab, err, sizeof err) < 0)
		goto fail;
	free(p);
	p = lab_path(c, "schema.xml");
	if (!(lab->schema = lab_schema_load(p, err, sizeof err)))
		goto fail;

	/* Ports: the recorded ones when free, else new ones (then rewrite the configs). */
	int sp = 0, tp = 0;
	sfd = c->site_port > 0 ? lab_listen(c->site_port, &sp) : -1;
	if (sfd < 0)
		sfd = lab_listen(0, &sp);
	tfd = c->tenant_port > 0 && c->tenant_port != sp ? lab_listen(c->tenant_port, &tp) : -1;
	if (tfd < 0)
		tfd = lab_listen(0, &tp);
	if (sfd < 0 || tfd < 0) {
		snprintf(err, sizeof err, "cannot listen on 127.0.0.1: %s", strerror(errno));
		goto fail;
	}
	if (sp != c->site_port || tp != c->tenant_port) {
		fprintf(stderr, LAB_NAME ": ports %d/%d are taken; using %d/%d and rewriting lab.conf and cmbridge.conf\n",
			c->site_port, c->tenant_port, sp, tp);
		c->site_port = sp;
		c->tenant_port = tp;
		if (lab_conf_save(c) < 0 || lab_conf_write_cmbridge(c) < 0) {
			snprintf(err, sizeof err, "%s: cannot rewrite lab.conf or cmbridge.conf", c->dir);
			goto fail;
		}
	}

	free(p);
	p = lab_path(c, "lab.log");
	if (detach) {
		if (pipe(pipefd) < 0) {
			snprintf(err, sizeof err, "pipe: %s", strerror(errno));
			goto fail;
		}
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			snprintf(err, sizeof err, "fork: %s", strerror(errno));
			goto fail;
		}
		if (pid > 0) {
			close(pipefd[1]);
			char msg[1024];
			ssize_t n, got = 0;
			while (got < (ssize_t)sizeof msg - 1 &&
			       (n = read(pipefd[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0)
				got += n;
			msg[got > 0 ? got : 0] = 0;
			close(pipefd[0]);
			if (!strncmp(msg, "OK", 2)) {
				printf("%s", msg + 3);
				rc = 0;
			} else {
				fprintf(stderr, LAB_NAME ": %s: the lab did not start: %s\n", c->dir,
					got > 0 ? msg : "it exited without a reason (see lab.log)");
			}
			close(sfd);
			close(tfd);
			sfd = tfd = -1;
			goto out;
		}
		child = true;
		close(pipefd[0]);
		pipefd[0] = -1;
		setsid();
		int nul = open("/dev/null", O_RDWR);
		int logfd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (nul >= 0) dup2(nul, 0);
		if (logfd >= 0) { dup2(logfd, 1); dup2(logfd, 2); }
		if (nul > 2) close(nul);
		if (logfd > 2) close(logfd);
	}
	lab_log_open(p);

	/* Signals are taken synchronously by sigwait; threads inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	free(p);
	p = lab_path(c, "lab.db");
	if (sqlite3_open_v2(p, &lab->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
	    lab_db_schema(lab->db) < 0) {
		snprintf(err, sizeof err, "%s: %s", p, lab->db ? sqlite3_errmsg(lab->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(lab->db, 5000);
	if (lab_inv_load(&lab->inv, lab->db) < 0) {
		snprintf(err, sizeof err, "%s: cannot read the site inventory: %s", p, sqlite3_errmsg(lab->db));
		goto fail;
	}
	pthread_mutex_init(&lab->db_lock, NULL);
	pthread_rwlock_init(&lab->inv_lock, NULL);
	lab_site_cache_init(lab);
	bool times = false;
	for (int ci = 0; ci < LAB_NCOLL; ci++)
		times |= lab->inv.coll_mchange[ci] != 0;
	if (!times)
		lab_coll_init_times(&lab->inv, c->epoch);
	lab_site_recount(lab);
	free(p);
	p = lab_path(c, "requests.log");
	if (lab_faults_init(lab, p) < 0) {
		snprintf(err, sizeof err, "%s: %s", p, strerror(errno));
		goto fail;
	}
	if (lab_actions_up(lab, err, sizeof err) < 0)     /* remote actions (actions.c) */
		goto fail;
	if (lab_policies_up(lab, err, sizeof err) < 0)    /* endpoint security policies (policies.c) */
		goto fail;

	sd = start(&ssrv, sfd, scert, skey);
	td = sd ? start(&tsrv, tfd, tcert, tkey) : NULL;
	if (!sd || !td) {
		snprintf(err, sizeof err, "cannot start the HTTPS servers (libmicrohttpd with TLS; see lab.log)");
		goto fail;
	}
	free(p);
	p = lab_path(c, "lab.pid");
	char pidbuf[32];
	int pl = snprintf(pidbuf, sizeof pidbuf, "%d\n", (int)getpid());
	if (lab_write_file(p, pidbuf, (size_t)pl, 0644) < 0) {
		snprintf(err, sizeof err, "%s: %s", p, strerror(errno));
		goto fail;
	}
	char ready[512];
	snprintf(ready, sizeof ready,
		 "cmbridge-lab: up (pid %d): site https://127.0.0.1:%d/AdminService, tenant https://127.0.0.1:%d, %zu devices\n",
		 (int)getpid(), c->site_port, c->tenant_port, lab->inv.n);
	lab_log("%.*s", (int)strlen(ready) - 1, ready);
	if (child) {
		char msg[600];
		int n = snprintf(msg, sizeof msg, "OK\n%s", ready);
		if (write(pipefd[1], msg, (size_t)n) < 0) { /* parent gone: keep serving */ }
		close(pipefd[1]);
		pipefd[1] = -1;
	} else {
		printf("%s", ready);
		fflush(stdout);
	}
	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		lab_log("SIGHUP ignored (nothing to reload)");
	lab_log("signal %d: stopping", sig);
	rc = 0;
	unlink(p);
	goto out;
fail:
	if (child) {
		lab_log("cannot start: %s", err);
		if (pipefd[1] >= 0 && write(pipefd[1], err, strlen(err)) < 0) { /* nothing more to do */ }
	} else {
		fprintf(stderr, LAB_NAME ": %s: %s\n", c->dir, err);
	}
	rc = 1;
out:
	lab_actions_stop(lab);       /* resumes held long polls before the servers stop */
	if (sd) MHD_stop_daemon(sd);
	if (td) MHD_stop_daemon(td);
	if (!sd && sfd >= 0) close(sfd);
	if (!td && tfd >= 0) close(tfd);
	if (pipefd[0] >= 0) close(pipefd[0]);
	if (pipefd[1] >= 0) close(pipefd[1]);
	lab_actions_db_close(lab);
	if (lab->db) sqlite3_close(lab->db);
	lab_site_cache_free(lab);
	lab_faults_free(lab);
	lab_actions_free(lab);
	lab_policies_free(lab);
	lab_inv_free(&lab->inv);
	lab_schema_free(lab->schema);
	EVP_PKEY_free(lab->jwt_key);
	lab_auth_free(lab);
	free(lab->jwt_kid);
	free(scert); free(skey); free(tcert); free(tkey); free(p);
	lab_conf_free(&lab->conf);
	free(lab);
	if (child)
		_exit(rc);
	return rc;
}
