/*
 * canned_server.c - a test HTTPS server that answers every request with one
 * canned reply, to drive the connector's handling of bad input (curl's test
 * servers: bind port 0, report the port, serve canned replies, record the
 * requests).
 *
 * usage: canned_server --cert PEM --key PEM --port-file FILE --body FILE
 *            [--status N] [--content-type T] [--truncate N] [--log FILE]
 *
 * --truncate N announces the body's full length but sends only N bytes and
 * then drops the connection. Runs until SIGTERM.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct canned {
	char *body;
	size_t len;
	long truncate;      /* -1: send everything */
	unsigned status;
	const char *content_type;
	FILE *log;
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

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct canned *c = cls;
	if ((long)pos >= c->truncate)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = (size_t)c->truncate - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, c->body + pos, n);
	return (ssize_t)n;
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
	struct MHD_Response *r;
	if (c->truncate >= 0)
		r = MHD_create_response_from_callback(c->len, 4096, reader, c, NULL);
	else
		r = MHD_create_response_from_buffer(c->len, c->body, MHD_RESPMEM_PERSISTENT);
	if (c->content_type)
		MHD_add_response_header(r, "Content-Type", c->content_type);
	enum MHD_Result ret = MHD_queue_response(conn, c->status, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	struct canned c = { .truncate = -1, .status = 200, .content_type = "application/json" };
	const char *cert = NULL, *key = NULL, *port_file = NULL, *body = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--cert")) cert = argv[i + 1];
		else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
		else if (!strcmp(argv[i], "--port-file")) port_file = argv[i + 1];
		else if (!strcmp(argv[i], "--body")) body = argv[i + 1];
		else if (!strcmp(argv[i], "--status")) c.status = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--content-type")) c.content_type = argv[i + 1];
		else if (!strcmp(argv[i], "--truncate")) c.truncate = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--log")) c.log = fopen(argv[i + 1], "a");
		else {
			fprintf(stderr, "canned_server: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!cert || !key || !port_file || !body) {
		fprintf(stderr, "usage: canned_server --cert PEM --key PEM --port-file FILE --body FILE [...]\n");
		return 2;
	}
	size_t n;
	char *cert_pem = slurp(cert, &n), *key_pem = slurp(key, &n);
	c.body = slurp(body, &c.len);
	if (c.truncate > (long)c.len)
		c.truncate = (long)c.len;
	/* Loopback only: tests never listen on other addresses. */
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, &c,
		MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
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
	MHD_stop_daemon(d);
	return 0;
}
