/*
 * fixture.c - the unit tests' shared fixtures (fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/fixture.h"
#include "connector/base/error.h"
#include "connector/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- files -------------------------------------------------------------- */

int fx_tmpdir(char dir[FX_DIR_SIZE], const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, FX_DIR_SIZE, "%s/cmb-%s.XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp", tag);
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void fx_rmtree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

char *fx_path(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

void fx_write(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

void fx_write_str(const char *path, const char *text, mode_t mode)
{
	fx_write(path, text, strlen(text), mode);
}

long fx_count(const char *hay, const char *needle)
{
	long n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

void fx_check_message(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *want = xvasprintf(fmt, ap);
	va_end(ap);
	const char *got = cmb_error_last();
	if (strcmp(got, want) != 0) {
		print_error("message: got\n  '%s'\nwant\n  '%s'\n", got, want);
		free(want);
		_fail(file, line);
	}
	free(want);
}

/* ---- certificates ------------------------------------------------------- */

static char *bio_text(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

char *fx_pem_cert(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	return bio_text(b);
}

char *fx_pem_key(EVP_PKEY *k, const char *pass)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(b, k, pass ? EVP_aes_256_cbc() : NULL, NULL, 0, NULL, (void *)pass),
			 1);
	return bio_text(b);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ex);
	X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
}

/* The CA when issuer is NULL, else a server certificate for 127.0.0.1 that issuer signs. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : x;
	add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (!issuer) {
		add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
		add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, iss, NID_ext_key_usage, "serverAuth");
		add_ext(x, iss, NID_subject_alt_name, "IP:127.0.0.1");
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

void fx_pki_make(struct fx_pki *p, const char *ca_name)
{
	EVP_PKEY *cakey = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
	assert_non_null(cakey);
	assert_non_null(key);
	X509 *ca = make_cert(cakey, ca_name, NULL, NULL);
	X509 *leaf = make_cert(key, "127.0.0.1", ca, cakey);
	p->ca_pem = fx_pem_cert(ca);
	p->cert_pem = fx_pem_cert(leaf);
	p->key_pem = fx_pem_key(key, NULL);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
}

void fx_pki_free(struct fx_pki *p)
{
	free(p->ca_pem);
	free(p->cert_pem);
	if (p->key_pem)
		OPENSSL_cleanse(p->key_pem, strlen(p->key_pem));
	free(p->key_pem);
	memset(p, 0, sizeof(*p));
}

struct fx_pki fx_group_pki;

int fx_group_setup(void **state)
{
	(void)state;
	fx_pki_make(&fx_group_pki, "cmbridge test CA");
	cmb_log_set_level(getenv("CMB_TEST_VERBOSE") ? CMB_LOG_DEBUG : CMB_LOG_ERROR);
	return 0;
}

int fx_group_teardown(void **state)
{
	(void)state;
	fx_pki_free(&fx_group_pki);
	return 0;
}

/* ---- the scripted HTTPS server ------------------------------------------ */

/* One request while it arrives: its URI as received, its body so far. */
struct req_ctx {
	char *uri;
	int started;
	struct cmb_buf body;
};

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls, (void)c;
	struct req_ctx *rc = xcalloc(1, sizeof(*rc));
	rc->uri = xstrdup(uri);
	cmb_buf_init(&rc->body, 64 << 20);
	return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)c, (void)toe;
	struct req_ctx *rc = *req_cls;
	if (rc) {
		free(rc->uri);
		cmb_buf_free(&rc->body);
		free(rc);
	}
	*req_cls = NULL;
}

/* Numbers each connection as it opens; the number is the connection's socket context. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx, enum MHD_ConnectionNotificationCode code)
{
	(void)c;
	struct fx_server *s = cls;
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	pthread_mutex_lock(&s->mu);
	*socket_ctx = (void *)(intptr_t)++s->connections;
	pthread_mutex_unlock(&s->mu);
}

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

static struct fx_route *match(struct fx_server *s, const char *path)
{
	for (int i = 0; i < s->n_routes; i++) {
		const char *p = s->routes[i].path;
		size_t n = strlen(p);
		if (n && p[n - 1] == '/' ? strncmp(path, p, n) == 0 : strcmp(path, p) == 0)
			return &s->routes[i];
	}
	return NULL;
}

static char *dup_header(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	return v ? xstrdup(v) : NULL;
}

static void record(struct fx_server *s, struct MHD_Connection *c, const char *method, const char *path,
		   struct req_ctx *rc)
{
	if (s->n_req == s->cap_req) {
		s->cap_req = s->cap_req ? 2 * s->cap_req : 32;
		s->req = xrealloc(s->req, (size_t)s->cap_req * sizeof(*s->req));
	}
	struct fx_request *q = &s->req[s->n_req++];
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	q->method = xstrdup(method);
	q->uri = xstrdup(rc->uri);
	q->path = xstrdup(path);
	q->authorization = dup_header(c, "Authorization");
	q->content_type = dup_header(c, "Content-Type");
	q->content_encoding = dup_header(c, "Content-Encoding");
	q->raw_len = rc->body.len;
	q->raw = xmalloc(q->raw_len + 1);
	if (q->raw_len)
		memcpy(q->raw, rc->body.data, q->raw_len);
	q->raw[q->raw_len] = '\0';
	q->body = q->content_encoding && strcmp(q->content_encoding, "gzip") == 0 ? gunzip(q->raw, q->raw_len)
										     : xstrdup(q->raw);
	q->conn = ci ? (int)(intptr_t)ci->socket_context : 0;
}

/* What the route answers now: the next scripted reply, the sticky one, or a token; 0 when none. */
static int next_reply(struct fx_route *rt, struct fx_reply *out, char *tok, size_t toksize)
{
	rt->hits++;
	if (rt->next < rt->n) {
		*out = rt->replies[rt->next++];
	} else if (rt->sticky && rt->n) {
		*out = rt->replies[rt->n - 1];
	} else if (rt->token) {
		snprintf(tok, toksize, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"tok-%d\"}",
			 rt->hits);
		*out = (struct fx_reply){ .status = 200, .body = tok };
	} else {
		return 0;
	}
	return 1;
}

struct cut_body {
	char *data;
	size_t at;
};

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct cut_body *cb = cls;
	if (pos >= cb->at)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = cb->at - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, cb->data + pos, n);
	return (ssize_t)n;
}

static void cut_free(void *cls)
{
	struct cut_body *cb = cls;
	free(cb->data);
	free(cb);
}

/* Sleeps ms, in steps, so a server being stopped does not wait for a scripted silence. */
static void quiet(struct fx_server *s, unsigned ms)
{
	for (unsigned waited = 0; waited < ms && !s->stopping; waited += 10) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
	(void)version;
	struct fx_server *s = cls;
	struct req_ctx *rc = *req_cls;
	/* The body arrives in later calls: read it all, then answer. */
	if (!rc->started) {
		rc->started = 1;
		return MHD_YES;
	}
	if (*upload_size) {
		cmb_buf_add(&rc->body, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}

	char tok[128];
	struct fx_reply r = { .status = 418, .body = "{\"error\":{\"code\":\"Test\",\"message\":\"no scripted reply\"}}" };
	pthread_mutex_lock(&s->mu);
	record(s, c, method, url, rc);
	struct fx_route *rt = match(s, url);
	if (rt)
		cmb_buf_printf(&rt->uris, "%s\n", rc->uri);
	if (!rt || !next_reply(rt, &r, tok, sizeof(tok)))
		cmb_buf_printf(&s->unrouted, "%s %s\n", method, rc->uri);
	/* Copied under the lock: a script may be changed as soon as it is released. */
	size_t len = r.body ? (r.len ? r.len : strlen(r.body)) : 0;
	char *body = xmalloc(len + 1);
	if (len)
		memcpy(body, r.body, len);
	const char *ctype = r.content_type ? r.content_type : s->content_type ? s->content_type : "application/json";
	const char *www = r.status == 401 ? s->www_authenticate : NULL;
	pthread_mutex_unlock(&s->mu);

	quiet(s, r.delay_ms);
	if (r.cut == FX_DROP) {
		free(body);
		return MHD_NO;
	}
	struct MHD_Response *resp;
	if (r.cut == FX_FULL) {
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	} else {
		struct cut_body *cb = xmalloc(sizeof(*cb));
		cb->data = body;
		cb->at = r.at < len ? r.at : len;
		resp = MHD_create_response_from_callback(r.cut == FX_CUT_LENGTH ? (uint64_t)len : MHD_SIZE_UNKNOWN, 64,
							  cut_reader, cb, cut_free);
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	if (r.retry_after)
		MHD_add_response_header(resp, "Retry-After", r.retry_after);
	if (www)
		MHD_add_response_header(resp, "WWW-Authenticate", www);
	enum MHD_Result ret = MHD_queue_response(c, r.status ? r.status : 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

void fx_server_start(struct fx_server *s, const struct fx_pki *pki)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	cmb_buf_init(&s->unrouted, 1 << 20);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A thread per connection: a scripted silence holds up only its own connection. */
	s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS, 0,
				     NULL, NULL, handler, s, MHD_OPTION_HTTPS_MEM_KEY, pki->key_pem,
				     MHD_OPTION_HTTPS_MEM_CERT, pki->cert_pem, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				     MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
				     NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
				     (unsigned)30, MHD_OPTION_END);
	assert_non_null(s->daemon);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	s->port = info->port;
	assert_true(s->port > 0);
}

static void requests_free(struct fx_server *s)
{
	for (int i = 0; i < s->n_req; i++) {
		struct fx_request *q = &s->req[i];
		free(q->method);
		free(q->uri);
		free(q->path);
		free(q->authorization);
		free(q->content_type);
		free(q->content_encoding);
		free(q->raw);
		free(q->body);
	}
	s->n_req = 0;
}

void fx_server_reset(struct fx_server *s)
{
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_routes; i++) {
		cmb_buf_free(&s->routes[i].uris);
		for (int j = 0; j < s->routes[i].n; j++)
			free((char *)s->routes[i].replies[j].body);
	}
	memset(s->routes, 0, sizeof(s->routes));
	s->n_routes = 0;
	requests_free(s);
	cmb_buf_reset(&s->unrouted);
	pthread_mutex_unlock(&s->mu);
}

void fx_server_stop(struct fx_server *s)
{
	s->stopping = 1;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	s->daemon = NULL;
	fx_server_reset(s);
	free(s->req);
	s->req = NULL;
	s->cap_req = 0;
	cmb_buf_free(&s->unrouted);
	pthread_mutex_destroy(&s->mu);
}

char *fx_server_url(const struct fx_server *s, const char *path)
{
	return xasprintf("https://127.0.0.1:%u%s", s->port, path);
}

static struct fx_route *route_locked(struct fx_server *s, const char *path)
{
	for (int i = 0; i < s->n_routes; i++)
		if (strcmp(s->routes[i].path, path) == 0)
			return &s->routes[i];
	assert_true(s->n_routes < FX_MAX_ROUTES);
	assert_true(strlen(path) < sizeof(s->routes[0].path));
	struct fx_route *rt = &s->routes[s->n_routes++];
	snprintf(rt->path, sizeof(rt->path), "%s", path);
	cmb_buf_init(&rt->uris, 1 << 20);
	return rt;
}

struct fx_route *fx_route(struct fx_server *s, const char *path)
{
	pthread_mutex_lock(&s->mu);
	struct fx_route *rt = route_locked(s, path);
	pthread_mutex_unlock(&s->mu);
	return rt;
}

void fx_script(struct fx_server *s, const char *path, struct fx_reply r)
{
	pthread_mutex_lock(&s->mu);
	struct fx_route *rt = route_locked(s, path);
	assert_true(rt->n < FX_MAX_REPLIES);
	if (!r.status)
		r.status = 200;
	if (r.body) {
		size_t len = r.len ? r.len : strlen(r.body);
		char *copy = xmalloc(len + 1);
		memcpy(copy, r.body, len);
		copy[len] = '\0';
		r.body = copy;
		r.len = len;
	}
	rt->replies[rt->n++] = r;
	pthread_mutex_unlock(&s->mu);
}

void fx_always(struct fx_server *s, const char *path, struct fx_reply r)
{
	fx_script(s, path, r);
	pthread_mutex_lock(&s->mu);
	route_locked(s, path)->sticky = 1;
	pthread_mutex_unlock(&s->mu);
}

void fx_token_endpoint(struct fx_server *s, const char *path)
{
	pthread_mutex_lock(&s->mu);
	route_locked(s, path)->token = 1;
	pthread_mutex_unlock(&s->mu);
}

const char *fx_uris(struct fx_server *s, const char *path)
{
	for (int i = 0; i < s->n_routes; i++)
		if (strcmp(s->routes[i].path, path) == 0)
			return s->routes[i].uris.data ? s->routes[i].uris.data : "";
	return "";
}

int fx_requests_to(struct fx_server *s, const char *needle)
{
	int n = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_req; i++)
		n += strstr(s->req[i].path, needle) != NULL;
	pthread_mutex_unlock(&s->mu);
	return n;
}

const char *fx_last_auth(struct fx_server *s)
{
	return s->n_req && s->req[s->n_req - 1].authorization ? s->req[s->n_req - 1].authorization : "";
}

void fx_assert_all_served(struct fx_server *s)
{
	assert_string_equal(s->unrouted.data ? s->unrouted.data : "", "");
	for (int i = 0; i < s->n_routes; i++)
		if (!s->routes[i].sticky && s->routes[i].next != s->routes[i].n)
			fail_msg("%s: %d of %d scripted replies served", s->routes[i].path, s->routes[i].next,
				 s->routes[i].n);
}

/* ---- the tenant in a config ---------------------------------------------- */

void fx_tenant_config(struct cmb_config *cfg, struct fx_server *s, const char *dir, const char *ca_pem,
		      const char *secret)
{
	cfg->tenant_ca_file = fx_path(dir, "ca.pem");
	fx_write_str(cfg->tenant_ca_file, ca_pem, 0644);
	cfg->tenant_client_secret_file = fx_path(dir, "client.secret");
	char *line = xasprintf("%s\n", secret);
	fx_write_str(cfg->tenant_client_secret_file, line, 0600);
	free(line);
	cfg->site_code = xstrdup("PS1");
	cfg->tenant_token_url = fx_server_url(s, FX_TOKEN_PATH);
	cfg->tenant_gateway_url = fx_server_url(s, "/");
	cfg->tenant_client_id = xstrdup(FX_CLIENT_ID);
	cfg->tenant_scope = xstrdup("https://graph.microsoft.com/.default");
	cfg->tenant_timeout = 10;
	cfg->tenant_connect_timeout = 5;
	cfg->tenant_rate_limit = 0;
	cfg->tenant_rate_burst = 5;
	cfg->sync_max_response_mb = 16;
	cfg->sync_retry_budget = 20;
	cfg->sync_max_retry_wait = 5;
	cfg->sync_max_attempts = 6;
	fx_token_endpoint(s, FX_TOKEN_PATH);
}

void fx_tenant_config_clear(struct cmb_config *cfg)
{
	free(cfg->tenant_ca_file);
	free(cfg->tenant_client_secret_file);
	free(cfg->site_code);
	free(cfg->tenant_token_url);
	free(cfg->tenant_gateway_url);
	free(cfg->tenant_client_id);
	free(cfg->tenant_scope);
	cfg->tenant_ca_file = cfg->tenant_client_secret_file = cfg->site_code = cfg->tenant_token_url = NULL;
	cfg->tenant_gateway_url = cfg->tenant_client_id = cfg->tenant_scope = NULL;
}

/* ---- log capture --------------------------------------------------------- */

static char log_path[FX_DIR_SIZE + 8];

void fx_log_capture(const char *dir, enum cmb_log_level level)
{
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	unlink(log_path);
	assert_int_equal(cmb_log_open(log_path), 0);
	cmb_log_set_level(level);
}

char *fx_log_take(void)
{
	char *text = NULL;
	size_t len = 0;
	cmb_log_open(NULL);
	cmb_log_set_level(CMB_LOG_ERROR);
	if (!log_path[0] || cmb_file_read(log_path, 1 << 20, &text, &len) < 0)
		return xstrdup("");
	unlink(log_path);
	return text;
}
