/*
 * test_gateway.c - the real gateway tenant adapter against an in-process
 * HTTPS server (libmicrohttpd, certificates made for the run) that answers
 * from a script and records every request (curl's test servers).
 *
 * Checks the retry policy end to end: 5xx and dropped replies are sent
 * again under the same batchId, a replayed answer is accepted, 429 waits
 * what Retry-After says (read from the adapter's counters, never from a
 * clock), a 401 renews the token once, 4xx are final with Graph's message,
 * and the exact shape of both upload requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "adapters/tenant.h"
#include "adapters/tenant/gateway.h"
#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"

#define SECRET "gw-test-secret-value"
#define MAX_SCRIPT 16
#define MAX_REQ 64

enum action { REPLY = 0, DROP = 1 };

struct reply {
	enum action action;
	unsigned status;
	const char *body;
	const char *retry_after;
};

struct request {
	char *path;
	char *authorization;
	char *content_encoding;
	char *body;          /* decompressed */
};

struct server {
	struct MHD_Daemon *d;
	unsigned short port;
	pthread_mutex_t mu;
	struct reply token[MAX_SCRIPT], upload[MAX_SCRIPT];
	int n_token, i_token, n_upload, i_upload;
	int token_hits;
	struct request req[MAX_REQ];
	int n_req;
};

struct fx {
	char dir[64];
	char *cert_pem, *key_pem;
	struct server srv;
	struct cmb_config cfg;
	void *gw;
	struct cmb_buf outcomes;
};

/* ---- certificates ---- */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
	return 0;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : x;
	int rc = add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (!issuer) {
		rc |= add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
		rc |= add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		rc |= add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
		rc |= add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
		rc |= add_ext(x, iss, NID_ext_key_usage, "serverAuth");
		rc |= add_ext(x, iss, NID_subject_alt_name, "IP:127.0.0.1");
	}
	assert_int_equal(rc, 0);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static char *pem_of(EVP_PKEY *key, X509 *cert)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (key)
		PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	if (cert)
		PEM_write_bio_X509(b, cert);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* ---- the server ---- */

struct conn {
	struct cmb_buf body;
};

static char *gunzip(const char *in, size_t len)
{
	struct cmb_buf out = CMB_BUF_INIT(64 << 20);
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + 15) != Z_OK)
		return NULL;
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	char buf[16384];
	int zrc;
	do {
		zs.next_out = (Bytef *)buf;
		zs.avail_out = sizeof(buf);
		zrc = inflate(&zs, Z_NO_FLUSH);
		cmb_buf_add(&out, buf, sizeof(buf) - zs.avail_out);
	} while (zrc == Z_OK);
	inflateEnd(&zs);
	if (zrc != Z_STREAM_END) {
		cmb_buf_free(&out);
		return NULL;
	}
	cmb_buf_add(&out, "", 0);
	return cmb_buf_detach(&out, NULL);
}

struct drop_body {
	char *data;
	size_t len;
};

/* Announces the whole length, sends half, then drops the connection. */
static ssize_t drop_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct drop_body *d = cls;
	size_t half = d->len / 2;
	if (pos >= half)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = half - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, d->data + pos, n);
	return (ssize_t)n;
}

static void drop_free(void *cls)
{
	struct drop_body *d = cls;
	free(d->data);
	free(d);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct conn *cn = *con_cls;
	if (!cn) {
		cn = xcalloc(1, sizeof(*cn));
		cmb_buf_init(&cn->body, 64 << 20);
		*con_cls = cn;
		return MHD_YES;
	}
	if (*upload_data_size) {
		cmb_buf_add(&cn->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&s->mu);
	int is_token = strstr(url, "/oauth2/v2.0/token") != NULL;
	struct reply r;
	static char tokbuf[128];
	if (is_token) {
		s->token_hits++;
		if (s->i_token < s->n_token) {
			r = s->token[s->i_token++];
		} else {
			snprintf(tokbuf, sizeof(tokbuf),
				 "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-%d\"}", s->token_hits);
			r = (struct reply){ .status = 200, .body = tokbuf };
		}
	} else if (s->i_upload < s->n_upload) {
		r = s->upload[s->i_upload++];
	} else {
		r = (struct reply){ .status = 500, .body = "{\"error\":{\"code\":\"Script\",\"message\":\"script exhausted\"}}" };
	}
	if (s->n_req < MAX_REQ) {
		struct request *q = &s->req[s->n_req++];
		const char *ce = header(c, "Content-Encoding"), *au = header(c, "Authorization");
		q->path = xstrdup(url);
		q->authorization = au ? xstrdup(au) : NULL;
		q->content_encoding = ce ? xstrdup(ce) : NULL;
		cmb_buf_add(&cn->body, "", 0);
		q->body = ce && strcmp(ce, "gzip") == 0 ? gunzip(cn->body.data, cn->body.len)
							: xstrndup(cn->body.data ? cn->body.data : "", cn->body.len);
	}
	pthread_mutex_unlock(&s->mu);

	struct MHD_Response *resp;
	if (r.action == DROP) {
		struct drop_body *d = xcalloc(1, sizeof(*d));
		d->data = xstrdup(r.body);
		d->len = strlen(r.body);
		resp = MHD_create_response_from_callback(d->len, 4096, drop_reader, d, drop_free);
	} else {
		resp = MHD_create_response_from_buffer(strlen(r.body), (void *)(uintptr_t)r.body, MHD_RESPMEM_MUST_COPY);
	}
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (r.retry_after)
		MHD_add_response_header(resp, "Retry-After", r.retry_after);
	if (r.status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
	enum MHD_Result ret = MHD_queue_response(c, r.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;
	if (cn) {
		cmb_buf_free(&cn->body);
		free(cn);
		*con_cls = NULL;
	}
}

static void server_start(struct fx *f)
{
	struct server *s = &f->srv;
	pthread_mutex_init(&s->mu, NULL);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				handler, s, MHD_OPTION_HTTPS_MEM_KEY, f->key_pem, MHD_OPTION_HTTPS_MEM_CERT, f->cert_pem,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED, completed,
				NULL, MHD_OPTION_END);
	assert_non_null(s->d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	s->port = info->port;
	assert_true(s->port > 0);
}

static void server_stop(struct server *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	for (int i = 0; i < s->n_req; i++) {
		free(s->req[i].path);
		free(s->req[i].authorization);
		free(s->req[i].content_encoding);
		free(s->req[i].body);
	}
	pthread_mutex_destroy(&s->mu);
}

static void script_token(struct fx *f, struct reply r)
{
	f->srv.token[f->srv.n_token++] = r;
}

static void script_upload(struct fx *f, struct reply r)
{
	f->srv.upload[f->srv.n_upload++] = r;
}

/* ---- fixture ---- */

static char *g_ca_pem, *g_cert_pem, *g_key_pem;

static int group_setup(void **state)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(cakey, "cmbridge test CA", NULL, NULL);
	X509 *leaf = make_cert(key, "127.0.0.1", ca, cakey);
	g_ca_pem = pem_of(NULL, ca);
	g_cert_pem = pem_of(NULL, leaf);
	g_key_pem = pem_of(key, NULL);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	return 0;
}

static int group_teardown(void **state)
{
	free(g_ca_pem);
	free(g_cert_pem);
	OPENSSL_cleanse(g_key_pem, strlen(g_key_pem));
	free(g_key_pem);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/cmbgw.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	f->cert_pem = g_cert_pem;
	f->key_pem = g_key_pem;
	server_start(f);
	char *p = xasprintf("%s/ca.pem", f->dir);
	write_file(p, g_ca_pem, 0644);
	f->cfg.tenant_ca_file = p;
	p = xasprintf("%s/client.secret", f->dir);
	write_file(p, SECRET "\n", 0600);
	f->cfg.tenant_client_secret_file = p;
	f->cfg.site_code = xstrdup("PS1");
	f->cfg.tenant_token_url = xasprintf("https://127.0.0.1:%u/contoso/oauth2/v2.0/token", f->srv.port);
	f->cfg.tenant_gateway_url = xasprintf("https://127.0.0.1:%u/", f->srv.port);
	f->cfg.tenant_client_id = xstrdup("11111111-2222-3333-4444-555555555555");
	f->cfg.tenant_scope = xstrdup("https://graph.microsoft.com/.default");
	f->cfg.tenant_timeout = 10;
	f->cfg.tenant_connect_timeout = 5;
	f->cfg.tenant_rate_limit = 0;
	f->cfg.tenant_rate_burst = 5;
	f->cfg.sync_max_response_mb = 16;
	f->cfg.sync_retry_budget = 20;
	f->cfg.sync_max_retry_wait = 5;
	f->cfg.sync_max_attempts = 6;
	cmb_buf_init(&f->outcomes, 1 << 20);
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->gw)
		cmb_tenant_gateway.close(f->gw);
	server_stop(&f->srv);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f->cfg.tenant_ca_file);
	free(f->cfg.tenant_client_secret_file);
	free(f->cfg.site_code);
	free(f->cfg.tenant_token_url);
	free(f->cfg.tenant_gateway_url);
	free(f->cfg.tenant_client_id);
	free(f->cfg.tenant_scope);
	cmb_buf_free(&f->outcomes);
	free(f);
	return 0;
}

static void open_gw(struct fx *f)
{
	assert_int_equal(cmb_tenant_gateway.open(&f->gw, &f->cfg), 0);
	cmb_tenant_gateway.begin_cycle(f->gw);
}

static int on_outcome(void *ctx, const struct cmb_tenant_outcome *o)
{
	struct fx *f = ctx;
	char *line = xasprintf("%s%s %s %s %s\n", o->is_removal ? "-" : "+", o->key, o->status,
			       o->tenant_id ? o->tenant_id : "-", o->error ? o->error : "-");
	cmb_buf_addstr(&f->outcomes, line);
	free(line);
	return 0;
}

/* One device, one removal. */
#define REC_JSON "{\"key\":\"PS1:16777220\",\"managedDevice\":{\"deviceName\":\"PC-0001\"}," \
		 "\"configurationManager\":{\"siteCode\":\"PS1\",\"resourceId\":16777220}}"
#define BATCH_ID "0f8e6a52-7c1d-4a8e-9b3f-2d6c5e4a1b00"
#define OK_REPLY(replayed) "{\"batchId\":\"" BATCH_ID "\",\"replayed\":" replayed ",\"results\":[{\"key\":" \
		 "\"PS1:16777220\",\"status\":\"created\",\"id\":\"md-1\"}],\"removals\":[{\"key\":\"PS1:16777311\"," \
		 "\"status\":\"removed\"}]}"
#define WANT_OUTCOMES "+PS1:16777220 created md-1 -\n-PS1:16777311 removed - -\n"
#define SERVER_ERROR(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

static int upload_one(struct fx *f)
{
	struct cmb_tenant_record rec = { .key = "PS1:16777220", .json = REC_JSON, .json_len = strlen(REC_JSON) };
	const char *removals[] = { "PS1:16777311" };
	struct cmb_tenant_batch b = { .batch_id = BATCH_ID, .records = &rec, .n_records = 1, .removals = removals,
				      .n_removals = 1 };
	f->outcomes.len = 0;
	if (f->outcomes.data)
		f->outcomes.data[0] = '\0';
	return cmb_tenant_gateway.upload(f->gw, &b, on_outcome, f);
}

static int count_path(const struct fx *f, const char *needle)
{
	int n = 0;
	for (int i = 0; i < f->srv.n_req; i++)
		n += strstr(f->srv.req[i].path, needle) != NULL;
	return n;
}

/* Every upload request carried the batch's id, and only it. */
static void assert_same_batch_id(const struct fx *f, int want_uploads)
{
	int n = 0;
	for (int i = 0; i < f->srv.n_req; i++) {
		const struct request *q = &f->srv.req[i];
		if (!strstr(q->path, "/api/gateway/"))
			continue;
		n++;
		assert_non_null(q->body);
		assert_non_null(q->content_encoding);
		assert_string_equal(q->content_encoding, "gzip");
		assert_non_null(strstr(q->body, "{\"batchId\":\"" BATCH_ID "\","));
		assert_null(strstr(strstr(q->body, BATCH_ID) + 1, "batchId"));
	}
	assert_int_equal(n, want_uploads);
}

static struct cmb_gateway_counters counters(struct fx *f)
{
	struct cmb_gateway_counters c;
	cmb_gateway_counters(f->gw, &c);
	return c;
}

/* ---- tests ---- */

static void device_request_shape(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(f->srv.n_req, 2);
	assert_string_equal(f->srv.req[0].path, "/contoso/oauth2/v2.0/token");
	assert_non_null(strstr(f->srv.req[0].body, "grant_type=client_credentials&client_id=11111111-2222-3333-"
						   "4444-555555555555&client_secret=" SECRET "&scope=https%3A%2F%2F"
						   "graph.microsoft.com%2F.default"));
	assert_string_equal(f->srv.req[1].path, "/api/gateway/DevicePost");
	assert_string_equal(f->srv.req[1].authorization, "Bearer tok-1");
	assert_string_equal(f->srv.req[1].body, "{\"batchId\":\"" BATCH_ID "\",\"siteCode\":\"PS1\",\"devices\":["
						REC_JSON "],\"removals\":[\"PS1:16777311\"]}");
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.requests, 1);
	assert_int_equal(c.token_requests, 1);
	assert_int_equal(c.retries, 0);
}

static void server_error_then_ok(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 500, .body = SERVER_ERROR("InternalServerError", "try again") });
	script_upload(f, (struct reply){ .status = 502, .body = "bad gateway" });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 3);
	assert_int_equal(f->srv.token_hits, 1);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.requests, 3);
	assert_int_equal(c.retries, 2);
	/* Full jitter: the first two backoffs are below 0.5 s and 1 s. */
	assert_true(c.retry_waited_s >= 0 && c.retry_waited_s < 1.5);
}

static void throttled_honours_retry_after(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 429, .body = SERVER_ERROR("TooManyRequests", "slow down"),
					 .retry_after = "0.2" });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 2);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_true(c.retry_waited_s >= 0.2 - 1e-9);
	assert_true(c.retry_waited_s < 0.2 + 1e-9);

	/* A Retry-After beyond max_retry_wait is capped, a 503 too; a new cycle resets the counters. */
	cmb_tenant_gateway.begin_cycle(f->gw);
	assert_int_equal(counters(f).retries, 0);
	f->cfg.sync_max_retry_wait = 1;
	cmb_tenant_gateway.close(f->gw);
	f->gw = NULL;
	script_upload(f, (struct reply){ .status = 503, .body = "{}", .retry_after = "3600" });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_true(c.retry_waited_s > 1 - 1e-9 && c.retry_waited_s < 1 + 1e-9);
}

static void dropped_reply_then_replay(void **state)
{
	struct fx *f = *state;
	/* The tenant applied the batch, but the answer was cut off mid-body. */
	script_upload(f, (struct reply){ .action = DROP, .status = 200, .body = OK_REPLY("false") });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("true") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	/* Exactly one report per record: the replayed answer, nothing from the cut one. */
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_same_batch_id(f, 2);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.replays, 1);
}

static void unauthorized_renews_token_once(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 401,
					 .body = SERVER_ERROR("InvalidAuthenticationToken", "Access token has expired.") });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(f->srv.token_hits, 2);
	assert_int_equal(count_path(f, "/api/gateway/DevicePost"), 2);
	assert_same_batch_id(f, 2);
	/* token, upload (tok-1), token, upload (tok-2) */
	assert_string_equal(f->srv.req[1].authorization, "Bearer tok-1");
	assert_string_equal(f->srv.req[3].authorization, "Bearer tok-2");
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.token_renewals, 1);
	assert_int_equal(c.retries, 0);

	/* A second 401 in a row is final. */
	script_upload(f, (struct reply){ .status = 401, .body = SERVER_ERROR("InvalidAuthenticationToken", "no") });
	script_upload(f, (struct reply){ .status = 401, .body = SERVER_ERROR("InvalidAuthenticationToken", "still no") });
	assert_int_equal(upload_one(f), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), "upload of device batch "));
	assert_non_null(strstr(cmb_error_last(), ": tenant refused the credentials of client "));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost (HTTP 401: InvalidAuthenticationToken: still no)"));
	assert_int_equal(f->srv.token_hits, 3);
	assert_int_equal(f->outcomes.len, 0);
}

static void bad_request_is_final(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 400, .body = SERVER_ERROR("BadRequest", "removals is not an array") });
	open_gw(f);
	cmb_error_clear();
	assert_int_equal(upload_one(f), CMB_EHTTP);
	assert_non_null(strstr(cmb_error_last(), ": tenant answered HTTP 400 for https://127.0.0.1:"));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost: BadRequest: removals is not an array"));
	assert_int_equal(count_path(f, "/api/gateway/"), 1);
	assert_int_equal(f->outcomes.len, 0);
	script_upload(f, (struct reply){ .status = 413, .body = SERVER_ERROR("RequestEntityTooLarge", "64 MiB") });
	assert_int_equal(upload_one(f), CMB_EHTTP);
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost: RequestEntityTooLarge: 64 MiB"));
	script_upload(f, (struct reply){ .status = 403, .body = SERVER_ERROR("Forbidden", "no permission") });
	assert_int_equal(upload_one(f), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), ": tenant denied client "));
	assert_non_null(strstr(cmb_error_last(), "/api/gateway/DevicePost (HTTP 403: Forbidden: no permission)"));
	assert_int_equal(count_path(f, "/api/gateway/"), 3);
	assert_int_equal(counters(f).retries, 0);
}

static void budget_runs_out(void **state)
{
	struct fx *f = *state;
	f->cfg.sync_retry_budget = 2;
	for (int i = 0; i < 5; i++)
		script_upload(f, (struct reply){ .status = 504, .body = SERVER_ERROR("GatewayTimeout", "slow") });
	open_gw(f);
	assert_int_equal(upload_one(f), CMB_ENETWORK);
	assert_non_null(strstr(cmb_error_last(), "GatewayTimeout: slow (not retried: the cycle's retry budget of 2 is spent)"));
	assert_int_equal(count_path(f, "/api/gateway/"), 3);
	/* The budget is for the cycle: the next request gets no retry either. */
	assert_int_equal(upload_one(f), CMB_ENETWORK);
	assert_int_equal(count_path(f, "/api/gateway/"), 4);
}

static void token_transient_then_ok(void **state)
{
	struct fx *f = *state;
	script_token(f, (struct reply){ .status = 503, .body = "{}", .retry_after = "0" });
	script_token(f, (struct reply){ .status = 500, .body = "oops" });
	script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_int_equal(f->srv.token_hits, 3);
	struct cmb_gateway_counters c = counters(f);
	assert_int_equal(c.token_requests, 3);
	assert_int_equal(c.retries, 2);
}

static void token_refused_is_final(void **state)
{
	struct fx *f = *state;
	script_token(f, (struct reply){ .status = 401,
					.body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
						"client secret provided.\\r\\nTrace ID: x\",\"error_codes\":[7000215]}" });
	open_gw(f);
	long exp = 0;
	assert_int_equal(cmb_tenant_gateway.check(f->gw, &exp), CMB_EAUTH);
	assert_non_null(strstr(cmb_error_last(), "acquiring a token: token endpoint refused the credentials of client "));
	assert_non_null(strstr(cmb_error_last(), "(HTTP 401: invalid_client: AADSTS7000215: Invalid client secret provided.)"));
	assert_null(strstr(cmb_error_last(), "Trace ID"));
	assert_null(strstr(cmb_error_last(), SECRET));
	assert_int_equal(f->srv.token_hits, 1);
	assert_int_equal(counters(f).retries, 0);
}

static void collections_request_shape(void **state)
{
	struct fx *f = *state;
	script_upload(f, (struct reply){ .status = 500, .body = "{}" });
	script_upload(f, (struct reply){
		.status = 200,
		.body = "{\"batchId\":\"" BATCH_ID "\",\"replayed\":false,\"results\":[{\"key\":\"PS1:PS100012\","
			"\"status\":\"created\",\"id\":\"c-1\"},{\"key\":\"PS1:PS100013\",\"status\":\"rejected\","
			"\"error\":{\"code\":\"InvalidProperty\",\"message\":\"displayName is empty\"}}],"
			"\"removals\":[{\"key\":\"PS1:PS100099\",\"status\":\"notFound\"}]}" });
	open_gw(f);
	const char *keys[] = { "PS1:PS100012", "PS1:PS100013" };
	const char *json[] = {
		"{\"collectionIdentifier\":\"PS100012\",\"displayName\":\"Finance laptops\",\"hierarchyName\":\"Contoso "
		"Primary Site\",\"hierarchyIdentifier\":\"PS1\",\"createdDateTime\":\"2026-01-04T10:00:00Z\","
		"\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}",
		"{\"collectionIdentifier\":\"PS100013\",\"displayName\":\"\"}",
	};
	const char *removals[] = { "PS1:PS100099" };
	struct cmb_tenant_collection_batch b = { .batch_id = BATCH_ID, .keys = keys, .json = json, .n = 2,
						 .removals = removals, .n_removals = 1 };
	assert_int_equal(cmb_tenant_gateway.upload_collections(f->gw, &b, on_outcome, f), 0);
	assert_string_equal(f->outcomes.data, "+PS1:PS100012 created c-1 -\n"
					      "+PS1:PS100013 rejected - InvalidProperty: displayName is empty\n"
					      "-PS1:PS100099 notFound - -\n");
	assert_int_equal(count_path(f, "/api/gateway/CollectionPost"), 2);
	assert_same_batch_id(f, 2);
	for (int i = 1; i <= 2; i++)
		assert_string_equal(
			f->srv.req[i].body,
			"{\"batchId\":\"" BATCH_ID "\",\"siteCode\":\"PS1\",\"collections\":["
			"{\"key\":\"PS1:PS100012\",\"configManagerCollection\":{\"collectionIdentifier\":\"PS100012\","
			"\"displayName\":\"Finance laptops\",\"hierarchyName\":\"Contoso Primary Site\","
			"\"hierarchyIdentifier\":\"PS1\",\"createdDateTime\":\"2026-01-04T10:00:00Z\","
			"\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}},"
			"{\"key\":\"PS1:PS100013\",\"configManagerCollection\":{\"collectionIdentifier\":\"PS100013\","
			"\"displayName\":\"\"}}],"
			"\"removals\":[\"PS1:PS100099\"]}");

	/* A reply that does not answer for every key is refused, not half-applied. */
	script_upload(f, (struct reply){ .status = 200,
					 .body = "{\"batchId\":\"" BATCH_ID "\",\"results\":[],\"removals\":[]}" });
	f->outcomes.len = 0;
	assert_int_equal(cmb_tenant_gateway.upload_collections(f->gw, &b, on_outcome, f), CMB_EPROTO);
	assert_int_equal(f->outcomes.len, 0);
}

/* A success reply larger than the 64 KiB kept of error bodies is read whole, not cut and retried. */
static void large_reply_read_whole(void **state)
{
	struct fx *f = *state;
	size_t pad = 200 * 1024;
	const char *head = "{\"padding\":\"";
	const char *tail = OK_REPLY("false");
	char *body = xmalloc(strlen(head) + pad + 3 + strlen(tail));
	strcpy(body, head);
	memset(body + strlen(head), 'x', pad);
	strcpy(body + strlen(head) + pad, "\",");
	strcat(body, tail + 1); /* the reply's own members follow the padding */
	script_upload(f, (struct reply){ .status = 200, .body = body });
	open_gw(f);
	assert_int_equal(upload_one(f), 0);
	assert_string_equal(f->outcomes.data, WANT_OUTCOMES);
	assert_int_equal(count_path(f, "/api/gateway/DevicePost"), 1);
	free(body);
}

static void rate_limit_counts_waits(void **state)
{
	struct fx *f = *state;
	f->cfg.tenant_rate_limit = 20;
	f->cfg.tenant_rate_burst = 1;
	for (int i = 0; i < 3; i++)
		script_upload(f, (struct reply){ .status = 200, .body = OK_REPLY("false") });
	open_gw(f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(upload_one(f), 0);
	/* token + 3 uploads through a bucket of 1 at 20/s: the limiter had to wait. */
	struct cmb_gateway_counters c = counters(f);
	assert_true(c.rate_waited_s > 0);
	assert_true(c.rate_waited_s <= 3.0 / 20 + 1e-6);
}

int main(void)
{
	cmb_log_set_level(getenv("GW_VERBOSE") ? CMB_LOG_DEBUG : CMB_LOG_ERROR);
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(device_request_shape),
		T(server_error_then_ok),
		T(throttled_honours_retry_after),
		T(dropped_reply_then_replay),
		T(unauthorized_renews_token_once),
		T(bad_request_is_final),
		T(budget_runs_out),
		T(token_transient_then_ok),
		T(token_refused_is_final),
		T(collections_request_shape),
		T(rate_limit_counts_waits),
		T(large_reply_read_whole),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
