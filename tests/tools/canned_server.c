/*
 * canned_server.c - a test HTTPS server that answers requests with canned
 * replies, to drive the connector's handling of bad and hostile input
 * (curl's test servers: bind port 0, report the port, serve canned
 * replies, record the requests).
 *
 * usage: canned_server --cert PEM --key PEM --port-file FILE --body FILE
 *            [--status N] [--content-type T] [--truncate N] [--log FILE]
 *            [--drip BYTES_PER_S] [--stall N] [--header 'Name: value']...
 *            [--route 'PATTERN' FILE STATUS]...
 *            [--header-log FILE] [--bind ADDRESS]
 *
 * Every request gets --body with --status, unless a --route matches it:
 * routes are tried in order, each an fnmatch(3) pattern of the request
 * line "METHOD /path?query" (the query rebuilt from the decoded
 * arguments, "k=v&k=v" in the order sent; no '?' when there are none), so
 * 'GET *$skip=*' matches every client-driven window. --truncate N
 * announces the body's full length but sends only N bytes and then drops
 * the connection. --drip N sends every body N bytes a second (a slow or
 * hostile server). --stall N sends N bytes of every body, then nothing
 * more while the connection stays open (a server that stalls
 * mid-response). --header adds a header to every reply (a Location for a
 * redirect). --log writes "METHOD URL" per request; --header-log writes
 * "METHOD URL" and the names of the request's headers, with the scheme of
 * Authorization and Proxy-Authorization (never their credentials), so a
 * test can prove which credentials reached this server. --bind picks the
 * loopback address (default 127.0.0.1). Runs until SIGTERM.
 */
#include <arpa/inet.h>
#include <fnmatch.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 16
#define MAX_HEADERS 8

struct reply {
	char *body;
	size_t len;
	unsigned status;
};

struct route {
	const char *match;  /* fnmatch(3) pattern of "METHOD /path?query" */
	struct reply r;
};

struct canned {
	struct reply dflt;
	struct route routes[MAX_ROUTES];
	int n_routes;
	const char *headers[MAX_HEADERS];
	int n_headers;
	long truncate;      /* -1: send everything */
	long drip;          /* bytes per second, 0: at once */
	long stall;         /* bytes sent before the reply stops for good, -1: none */
	const char *content_type;
	FILE *log;
	FILE *header_log;
};

/* One reply being sent slowly or in part. */
struct sending {
	const struct canned *c;
	const struct reply *r;
	size_t limit;       /* bytes sent before the connection is dropped (truncate) */
};

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		exit(2);
	}
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static atomic_bool stopping;   /* SIGTERM or SIGINT received */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sending *s = cls;
	if (s->c->stall >= 0 && pos >= (uint64_t)s->c->stall) {
		/* Stalled: the connection stays open and silent until the client gives up or we stop. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		for (int i = 0; i < 36000 && !atomic_load(&stopping); i++)
			nanosleep(&ts, NULL);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (s->c->stall >= 0 && pos + max > (uint64_t)s->c->stall)
		max = (size_t)((uint64_t)s->c->stall - pos);
	if (pos >= s->limit)
		return s->limit < s->r->len ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = s->limit - (size_t)pos;
	if (n > max)
		n = max;
	if (s->c->drip > 0) {
		/* One piece of drip bytes a second: the connection stays open, almost idle. */
		if (n > (size_t)s->c->drip)
			n = (size_t)s->c->drip;
		struct timespec ts = { 1, 0 };
		nanosleep(&ts, NULL);
	}
	memcpy(buf, s->r->body + pos, n);
	return (ssize_t)n;
}

static void sending_free(void *cls)
{
	free(cls);
}

struct query {
	char buf[2048];
	size_t len;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query *q = cls;
	(void)kind;
	int n = snprintf(q->buf + q->len, sizeof(q->buf) - q->len, "%s%s=%s", q->len ? "&" : "?", key,
			 value ? value : "");
	if (n > 0 && (size_t)n < sizeof(q->buf) - q->len)
		q->len += (size_t)n;
	return MHD_YES;
}

static enum MHD_Result log_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	FILE *fp = cls;
	(void)kind;
	if (!strcasecmp(key, "Authorization") || !strcasecmp(key, "Proxy-Authorization")) {
		size_t scheme = value ? strcspn(value, " ") : 0;
		fprintf(fp, " %s=%.*s", key, (int)scheme, value ? value : "");
	} else {
		fprintf(fp, " %s", key);
	}
	return MHD_YES;
}

static const struct reply *pick(const struct canned *c, const char *method, const char *url,
				struct MHD_Connection *conn)
{
	struct query q = { .len = 0 };
	q.buf[0] = '\0';
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	char line[4096];
	snprintf(line, sizeof(line), "%s %s%s", method, url, q.buf);
	for (int i = 0; i < c->n_routes; i++)
		if (fnmatch(c->routes[i].match, line, 0) == 0)
			return &c->routes[i].r;
	return &c->dflt;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **state)
{
	struct canned *c = cls;
	(void)version;
	(void)upload_data;
	if (*state == NULL) {
		*state = (void *)1;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (c->log) {
		fprintf(c->log, "%s %s\n", method, url);
		fflush(c->log);
	}
	if (c->header_log) {
		fprintf(c->header_log, "%s %s", method, url);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, log_header, c->header_log);
		fputc('\n', c->header_log);
		fflush(c->header_log);
	}
	const struct reply *rp = pick(c, method, url, conn);
	struct MHD_Response *r;
	if (c->truncate >= 0 || c->drip > 0 || c->stall >= 0) {
		struct sending *s = calloc(1, sizeof(*s));
		if (!s)
			return MHD_NO;
		s->c = c;
		s->r = rp;
		s->limit = c->truncate >= 0 && (size_t)c->truncate < rp->len ? (size_t)c->truncate : rp->len;
		r = MHD_create_response_from_callback(rp->len, 4096, reader, s, sending_free);
	} else {
		r = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_PERSISTENT);
	}
	if (c->content_type)
		MHD_add_response_header(r, "Content-Type", c->content_type);
	for (int i = 0; i < c->n_headers; i++) {
		const char *colon = strchr(c->headers[i], ':');
		if (!colon)
			continue;
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(colon - c->headers[i]), c->headers[i]);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		MHD_add_response_header(r, name, v);
	}
	enum MHD_Result ret = MHD_queue_response(conn, rp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static void usage(void)
{
	fprintf(stderr, "usage: canned_server --cert PEM --key PEM --port-file FILE --body FILE [--status N] "
			"[--content-type T] [--truncate N] [--log FILE] [--drip N] [--stall N] [--header 'Name: value'] "
			"[--route 'PATTERN' FILE STATUS] [--header-log FILE] [--bind ADDRESS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct canned c = { .truncate = -1, .stall = -1, .dflt = { .status = 200 }, .content_type = "application/json" };
	const char *cert = NULL, *key = NULL, *port_file = NULL, *body = NULL, *bind = "127.0.0.1";
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(o, "--cert")) cert = v;
		else if (!strcmp(o, "--key")) key = v;
		else if (!strcmp(o, "--port-file")) port_file = v;
		else if (!strcmp(o, "--body")) body = v;
		else if (!strcmp(o, "--status")) c.dflt.status = (unsigned)atoi(v);
		else if (!strcmp(o, "--content-type")) c.content_type = v;
		else if (!strcmp(o, "--truncate")) c.truncate = atol(v);
		else if (!strcmp(o, "--drip")) c.drip = atol(v);
		else if (!strcmp(o, "--stall")) c.stall = atol(v);
		else if (!strcmp(o, "--log")) c.log = fopen(v, "a");
		else if (!strcmp(o, "--header-log")) c.header_log = fopen(v, "a");
		else if (!strcmp(o, "--bind")) bind = v;
		else if (!strcmp(o, "--header")) {
			if (c.n_headers == MAX_HEADERS)
				usage();
			c.headers[c.n_headers++] = v;
		} else if (!strcmp(o, "--route")) {
			if (c.n_routes == MAX_ROUTES || i + 2 >= argc)
				usage();
			struct route *rt = &c.routes[c.n_routes++];
			rt->match = v;
			rt->r.body = slurp(argv[++i], &rt->r.len);
			rt->r.status = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "canned_server: unknown option %s\n", o);
			return 2;
		}
	}
	if (!cert || !key || !port_file || !body)
		usage();
	size_t n;
	char *cert_pem = slurp(cert, &n), *key_pem = slurp(key, &n);
	c.dflt.body = slurp(body, &c.dflt.len);
	/* Loopback only: tests never listen on other addresses. */
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, bind, &sin.sin_addr) != 1 || (ntohl(sin.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "canned_server: --bind %s is not a loopback address\n", bind);
		return 2;
	}
	/* A thread per connection: a dripping reply must not hold up the others. */
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0,
		NULL, NULL, handler, &c, MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "canned_server: cannot start\n");
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	FILE *pf = fopen(port_file, "w");
	if (!pf || fprintf(pf, "%u\n", (unsigned)info->port) < 0 || fclose(pf) != 0) {
		fprintf(stderr, "canned_server: cannot write %s\n", port_file);
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sig;
	sigwait(&set, &sig);
	atomic_store(&stopping, true);   /* a stalled reply ends, so its thread can be joined */
	MHD_stop_daemon(d);
	return 0;
}
