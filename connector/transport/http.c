/*
 * http.c - HTTP core on libcurl: one easy handle per endpoint (connection
 * reuse), TLS verification always on, bounded or streamed responses, gzip
 * request bodies, a token-bucket rate limit per handle, server (NTLM,
 * Negotiate) and proxy authentication, public-key pinning, client
 * certificates.
 *
 * TLS failures name the server certificate's subject and issuer: a verify
 * callback installed through CURLOPT_SSL_CTX_FUNCTION (libcurl on OpenSSL)
 * records the peer's leaf certificate during the handshake, which works
 * when verification fails (CURLOPT_CERTINFO only fills after a successful
 * handshake). It returns OpenSSL's own verdict unchanged.
 *
 * Must never: log a header value (tokens live there), turn off certificate
 * verification, or grow a buffer past the configured maximum. With
 * Negotiate, libcurl runs verbose so GSS-API's reason for a missing ticket
 * can be reported: the debug callback keeps only libcurl's text lines that
 * start with "gss_", never headers or data.
 */
#include "connector/transport/http.h"
#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/stop.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

struct cmb_http {
	CURL *curl;
	char *name;
	char *ca_file;
	char *user_agent;
	long connect_timeout_s;
	long low_speed_time_s;
	long min_speed;
	long deadline_s;
	char *deadline_option;       /* "[site] page_timeout" */
	size_t max_response;
	size_t total_out, total_in, total_requests;
	struct cmb_rate_limit rate;
	char *section;               /* "[site]" */
	char *pinned_public_key;
	char *client_cert_file, *client_key_file;
	enum cmb_http_auth auth;
	char *username, *password;   /* password wiped on free */
	char *proxy, *proxy_username, *proxy_password, *no_proxy;
	enum cmb_http_proxy_auth proxy_auth;
	/* What the last handshake saw (set by the verify callback). */
	char peer_subject[256], peer_issuer[256], peer_error[160];
	char peer_names[256], peer_not_after[40];
	int peer_error_code;         /* OpenSSL's X509_V_ERR_* of the first failure, 0 for none */
	char gss_error[256];         /* last "gss_..." line of libcurl, for Negotiate */
};

/*
 * libcurl calls this about once a second during a transfer: a stop request
 * (cmb_stop_requested(), util.h) aborts it, so a long poll or a stalled server
 * never keeps the daemon from stopping.
 */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	const struct cmb_http_request *req = ud;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cmb_stop_requested() || (req->interruptible && cmb_interrupted());
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int ctx_index = -1;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void cmb_http_opts_network(struct cmb_http_opts *o, const struct cmb_config *cfg)
{
	o->proxy = cfg->network_proxy;
	o->proxy_auth = !cfg->network_proxy_auth || strcmp(cfg->network_proxy_auth, "none") == 0 ? CMB_HTTP_PROXY_AUTH_NONE
			: strcmp(cfg->network_proxy_auth, "ntlm") == 0 ? CMB_HTTP_PROXY_AUTH_NTLM
									 : CMB_HTTP_PROXY_AUTH_BASIC;
	o->proxy_username = cfg->network_proxy_username;
	o->proxy_password_file = cfg->network_proxy_password_file;
	o->no_proxy = cfg->network_no_proxy;
}

void cmb_http_opts_tenant(struct cmb_http_opts *o, const struct cmb_config *cfg)
{
	o->name = "tenant";
	o->ca_file = cfg->tenant_ca_file;
	o->connect_timeout_s = cfg->tenant_connect_timeout;
	o->low_speed_time_s = cfg->tenant_timeout;
	o->min_speed = cfg->tenant_min_speed;
	o->deadline_s = cfg->tenant_request_timeout;
	o->deadline_option = "request_timeout";
	o->rate_limit = (double)cfg->tenant_rate_limit;
	o->rate_burst = (double)cfg->tenant_rate_burst;
	o->pinned_public_key = cfg->tenant_pinned_public_key;
	cmb_http_opts_network(o, cfg);
}

int cmb_http_is_json(const char *ct)
{
	static const char json[] = "application/json";
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
		return 0;
	char after = ct[sizeof(json) - 1];
	return after == '\0' || after == ';' || after == ' ';
}

int cmb_http_new(struct cmb_http **out, const struct cmb_http_opts *opts)
{
	pthread_once(&curl_once, curl_init_once);
	struct cmb_http *h = xcalloc(1, sizeof(*h));
	h->curl = curl_easy_init();
	if (!h->curl) {
		free(h);
		return cmb_error_set(CMB_ERROR, "cannot initialise libcurl");
	}
	h->name = xstrdup(opts->name ? opts->name : "server");
	h->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
	h->user_agent = xstrdup(opts->user_agent ? opts->user_agent : "cmbridge/" CMB_VERSION);
	h->connect_timeout_s = opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 15;
	h->low_speed_time_s = opts->low_speed_time_s > 0 ? opts->low_speed_time_s : 60;
	h->min_speed = opts->min_speed > 0 ? opts->min_speed : 1;
	h->deadline_s = opts->deadline_s > 0 ? opts->deadline_s : 0;
	h->max_response = opts->max_response ? opts->max_response : CMB_LIMIT_RESPONSE_BYTES;
	cmb_rate_limit_init(&h->rate, opts->rate_limit, opts->rate_burst);
	h->section = opts->config_section ? xstrdup(opts->config_section) : xasprintf("[%s]", h->name);
	h->deadline_option = xasprintf("%s %s", h->section, opts->deadline_option ? opts->deadline_option : "deadline");
	h->pinned_public_key = dup_or_null(opts->pinned_public_key);
	h->client_cert_file = dup_or_null(opts->client_cert_file);
	h->client_key_file = dup_or_null(opts->client_key_file);
	h->auth = opts->auth;
	h->username = dup_or_null(opts->username);
	h->password = dup_or_null(opts->password);
	h->proxy = dup_or_null(opts->proxy);
	h->proxy_auth = opts->proxy_auth;
	h->proxy_username = dup_or_null(opts->proxy_username);
	h->no_proxy = dup_or_null(opts->no_proxy);
	if (h->auth == CMB_HTTP_AUTH_NTLM && (!h->username || !h->password)) {
		cmb_http_free(h);
		return cmb_error_set(CMB_ECONFIG, "NTLM towards the %s needs a username and a password", opts->name);
	}
	if (h->proxy_auth != CMB_HTTP_PROXY_AUTH_NONE) {
		int rc;
		if (!h->proxy || strcmp(h->proxy, "none") == 0 || !h->proxy_username || !opts->proxy_password_file) {
			cmb_http_free(h);
			return cmb_error_set(CMB_ECONFIG, "[network] proxy_auth needs proxy, proxy_username and proxy_password_file");
		}
		if ((rc = cmb_secret_read(opts->proxy_password_file, &h->proxy_password)) < 0) {
			cmb_error_wrap(rc, "[network] proxy_password_file");
			cmb_http_free(h);
			return rc;
		}
	}
	*out = h;
	return 0;
}

void cmb_http_free(struct cmb_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	free(h->name);
	free(h->ca_file);
	free(h->user_agent);
	free(h->section);
	free(h->deadline_option);
	free(h->pinned_public_key);
	free(h->client_cert_file);
	free(h->client_key_file);
	free(h->username);
	wipe_free(h->password);
	free(h->proxy);
	free(h->proxy_username);
	wipe_free(h->proxy_password);
	free(h->no_proxy);
	free(h);
}

void cmb_http_counters(const struct cmb_http *h, size_t *bytes_out, size_t *bytes_in, size_t *requests)
{
	if (bytes_out)
		*bytes_out = h->total_out;
	if (bytes_in)
		*bytes_in = h->total_in;
	if (requests)
		*requests = h->total_requests;
}

double cmb_http_rate_waited(const struct cmb_http *h)
{
	return h->rate.waited_s;
}

long cmb_http_deadline(const struct cmb_http *h, const char **option)
{
	if (option)
		*option = h->deadline_option;
	return h->deadline_s;
}

struct transfer {
	struct cmb_http *h;
	const struct cmb_http_request *req;
	struct cmb_http_response *resp;
	int sink_rc;          /* error the sink returned, or ours (too big) */
	int use_sink;         /* decided at the first body byte */
	int decided;
};

/* The value of header line buf when it is the header called name ("retry-after:"), trimmed; NULL otherwise. */
static char *header_value(const char *buf, size_t len, const char *name)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(buf, name, nl) != 0)
		return NULL;
	const char *v = buf + nl;
	size_t vl = len - nl;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	return xstrndup(v, vl);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	char *v;
	if ((v = header_value(buf, len, "retry-after:"))) {
		free(t->resp->retry_after);
		t->resp->retry_after = v;
	} else if ((v = header_value(buf, len, "location:"))) {
		free(t->resp->location);
		t->resp->location = v;
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	if (!t->decided) {
		long status = 0;
		curl_easy_getinfo(t->h->curl, CURLINFO_RESPONSE_CODE, &status);
		char *ct = NULL;
		curl_easy_getinfo(t->h->curl, CURLINFO_CONTENT_TYPE, &ct);
		t->resp->status = status;
		free(t->resp->content_type);
		t->resp->content_type = ct ? xstrdup(ct) : NULL;
		t->use_sink = t->req->sink && status >= 200 && status < 300;
		/*
		 * A success body the caller collects (no sink) is kept whole, up to
		 * max_response (checked below); error bodies only up to 64 KiB.
		 */
		if (!t->use_sink && status >= 200 && status < 300)
			t->resp->body.max = t->req->max_response ? t->req->max_response : t->h->max_response;
		t->decided = 1;
	}
	size_t max = t->req->max_response ? t->req->max_response : t->h->max_response;
	if (len > max || t->resp->bytes_in > max - len) {
		enum cmb_limit which = t->req->max_limit ? t->req->max_limit : CMB_LIMIT_RESPONSE;
		t->sink_rc = cmb_limit_error(which, max, "the response from %s", t->req->url);
		return 0;
	}
	t->resp->bytes_in += len;
	if (t->use_sink) {
		int rc = t->req->sink(t->req->sink_ctx, t->resp->status, t->resp->content_type, data, len);
		if (rc < 0) {
			t->sink_rc = rc;
			return 0;
		}
		return len;
	}
	/* Error bodies stop at CMB_LIMIT_ERROR_BODY_BYTES: enough to explain, never a memory sink; the rest is dropped. */
	size_t room = t->resp->body.max - t->resp->body.len;
	if (cmb_buf_add(&t->resp->body, data, len < room ? len : room) < 0)
		return 0;
	return len;
}

static int gzip_body(const void *in, size_t in_len, struct cmb_buf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	/* Level 1: uploads must never become CPU-bound; 16+15 selects the gzip wrapper. */
	if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return cmb_error_set(CMB_ERROR, "zlib: cannot initialise gzip");
	size_t bound = deflateBound(&zs, (uLong)in_len) + 32;
	cmb_buf_init(out, bound + 1);
	out->data = xmalloc(bound + 1);
	out->cap = bound + 1;
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)in_len;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)bound;
	int zrc = deflate(&zs, Z_FINISH);
	out->len = bound - zs.avail_out;
	deflateEnd(&zs);
	if (zrc != Z_STREAM_END) {
		cmb_buf_free(out);
		return cmb_error_set(CMB_ERROR, "zlib: gzip of %zu bytes failed", in_len);
	}
	return 0;
}

/* ---- TLS: what the server presented ---- */

static void name_line(const X509_NAME *n, char *out, size_t size)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	out[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
	len = BIO_get_mem_data(b, &data);
	if (len > 0)
		snprintf(out, size, "%.*s", (int)len, data);
	BIO_free(b);
}

/* The DNS and IP names of a certificate ("DNS:a, IP:127.0.0.1"), for a host name mismatch. */
static void alt_names(X509 *x, char *out, size_t size)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;
	out[0] = '\0';
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && used < size; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *sep = used ? ", " : "";
		if (g->type == GEN_DNS)
			used += (size_t)snprintf(out + used, size - used, "%sDNS:%.*s", sep,
						 ASN1_STRING_length(g->d.dNSName), (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			used += (size_t)snprintf(out + used, size - used, "%sIP:%u.%u.%u.%u", sep, a[0], a[1], a[2], a[3]);
		}
	}
	GENERAL_NAMES_free(names);
}

static void time_line(const ASN1_TIME *t, char *out, size_t size)
{
	struct tm tm;
	out[0] = '\0';
	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int on_verify(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct cmb_http *h = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	if (h && leaf) {
		name_line(X509_get_subject_name(leaf), h->peer_subject, sizeof(h->peer_subject));
		name_line(X509_get_issuer_name(leaf), h->peer_issuer, sizeof(h->peer_issuer));
		alt_names(leaf, h->peer_names, sizeof(h->peer_names));
		time_line(X509_get0_notAfter(leaf), h->peer_not_after, sizeof(h->peer_not_after));
		if (!ok && !h->peer_error[0]) {
			h->peer_error_code = X509_STORE_CTX_get_error(xs);
			snprintf(h->peer_error, sizeof(h->peer_error), "%s",
				 X509_verify_cert_error_string(h->peer_error_code));
		}
	}
	return ok; /* OpenSSL's verdict, unchanged: this callback only watches */
}

static CURLcode on_ssl_ctx(CURL *c, void *sslctx, void *ud)
{
	(void)c;
	SSL_CTX *ctx = sslctx;
	SSL_CTX_set_ex_data(ctx, ctx_index, ud);
	/* libcurl set SSL_VERIFY_PEER (verification is always on); keep the mode, add the watcher. */
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), on_verify);
	return CURLE_OK;
}

/* Keeps libcurl's GSS-API diagnostics (text lines only: never headers or data). */
static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *ud)
{
	(void)c;
	struct cmb_http *h = ud;
	if (type == CURLINFO_TEXT && size > 4 && strncmp(data, "gss_", 4) == 0) {
		size_t n = size;
		while (n && (data[n - 1] == '\n' || data[n - 1] == '\r' || data[n - 1] == ' '))
			n--;
		snprintf(h->gss_error, sizeof(h->gss_error), "%.*s", (int)n, data);
	}
	return 0;
}

static void url_host(const char *url, char *out, size_t size)
{
	CURLU *u = curl_url();
	char *host = NULL;
	snprintf(out, size, "%s", url);
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		snprintf(out, size, "%s", host);
	curl_free(host);
	curl_url_cleanup(u);
}

static int tls_error(struct cmb_http *h, CURLcode cc, const char *url, const char *detail)
{
	char host[256], peer[600] = "";
	url_host(url, host, sizeof(host));
	if (h->peer_subject[0])
		snprintf(peer, sizeof(peer), "; server certificate subject '%s', issuer '%s'", h->peer_subject,
			 h->peer_issuer);
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		/* Say what to fix: the server's certificate, this machine's clock, the URL, or what to trust. */
		if (h->peer_error_code == X509_V_ERR_CERT_HAS_EXPIRED)
			return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the certificate of %s expired on %s%s "
					     "(the server's certificate must be renewed; if it was, check this machine's "
					     "clock)", h->name, url, host, h->peer_not_after, peer);
		if (h->peer_error_code == X509_V_ERR_CERT_NOT_YET_VALID)
			return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the certificate of %s is not valid "
					     "yet%s (check this machine's clock)", h->name, url, host, peer);
		if (!h->peer_error[0] && h->peer_subject[0] && strstr(detail, "match") && strstr(detail, "host"))
			return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the certificate of %s is for other "
					     "host names (%s)%s (check %s url: it must name the server as its certificate "
					     "does)", h->name, url, host, h->peer_names[0] ? h->peer_names : "none listed",
					     peer, h->section);
		return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the certificate of %s did not verify (%s)%s "
				     "(check %s ca_file)", h->name, url, host, h->peer_error[0] ? h->peer_error : detail,
				     peer, h->section);
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the public key of %s does not match %s "
				     "pinned_public_key%s", h->name, url, host, h->section, peer);
	case CURLE_SSL_CERTPROBLEM:
		return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: the client certificate could not be used: "
				     "%s (check %s client_certificate_file and client_key_file)", h->name, url, detail,
				     h->section);
	default:
		if (strstr(detail, "alert certificate required") || strstr(detail, "alert handshake failure") ||
		    strstr(detail, "alert bad certificate") || strstr(detail, "alert unknown ca"))
			return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: %s refused the handshake (%s)%s: "
					     "does it require a client certificate (%s client_certificate_file)?",
					     h->name, url, host, detail, peer, h->section);
		return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: %s%s (check %s ca_file)", h->name, url,
				     detail, peer, h->section);
	}
}

/* A timed-out transfer: over its deadline, too slow once connected, or no connection in time. */
static int timeout_error(struct cmb_http *h, const struct cmb_http_request *req, const char *detail)
{
	const char *url = req->url;
	curl_off_t total_us = 0, connected_us = 0;
	curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME_T, &total_us);
	curl_easy_getinfo(h->curl, CURLINFO_APPCONNECT_TIME_T, &connected_us);
	if (req->timeout_s > 0 && (double)total_us / 1e6 >= req->timeout_s - 0.25)
		return cmb_error_set(CMB_ENETWORK, "the %s at %s did not finish within the %.1f s left of its deadline", h->name,
				     url, req->timeout_s);
	if (connected_us > 0 || strstr(detail, "too slow"))
		return cmb_error_set(CMB_ENETWORK, "the %s at %s was slower than %ld bytes/s for %ld s (%s min_speed, timeout)",
				     h->name, url, h->min_speed, req->stall_s > 0 ? req->stall_s : h->low_speed_time_s,
				     h->section);
	return cmb_error_set(CMB_ENETWORK, "the %s at %s did not answer in time: %s", h->name, url, detail);
}

static int map_curl_error(struct cmb_http *h, CURLcode cc, const struct cmb_http_request *req, const char *errbuf)
{
	const char *url = req->url;
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
	long connect_code = 0;
	curl_easy_getinfo(h->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
	/* 407 is the proxy's "authenticate"; some proxies (tinyproxy) answer a CONNECT with 401 instead. */
	if (connect_code == 407 || connect_code == 401) {
		if (h->proxy_auth == CMB_HTTP_PROXY_AUTH_NONE)
			return cmb_error_set(CMB_EAUTH, "the proxy %s requires authentication for the %s at %s (HTTP %ld): "
					     "set [network] proxy_auth, proxy_username and proxy_password_file",
					     h->proxy ? h->proxy : "from the environment", h->name, url, connect_code);
		return cmb_error_set(CMB_EAUTH, "the proxy %s refused the credentials for %s (HTTP %ld, %s) on the way "
				     "to the %s at %s", h->proxy, h->proxy_username, connect_code,
				     h->proxy_auth == CMB_HTTP_PROXY_AUTH_NTLM ? "NTLM" : "Basic", h->name, url);
	}
	if (connect_code >= 300)
		return cmb_error_set(CMB_EHTTP, "the proxy %s refused the tunnel to the %s at %s (CONNECT answered HTTP %ld)",
				     h->proxy ? h->proxy : "from the environment", h->name, url, connect_code);
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return tls_error(h, cc, url, detail);
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2_STREAM:
		/* The connection went away mid-reply: what arrived must not be taken for the answer. */
		return cmb_error_set(CMB_ENETWORK, "the connection to the %s at %s closed before the reply was complete: %s",
				     h->name, url, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return timeout_error(h, req, detail);
	default:
		return cmb_error_set(CMB_ENETWORK, "request to the %s at %s failed: %s", h->name, url, detail);
	}
}

/* TLS: verification always on, the CA file, the pin, the client certificate, the peer recorder. */
static void setup_tls(struct cmb_http *h)
{
	CURL *c = h->curl;
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h);
	h->peer_subject[0] = h->peer_issuer[0] = h->peer_error[0] = h->gss_error[0] = '\0';
	h->peer_names[0] = h->peer_not_after[0] = '\0';
	h->peer_error_code = 0;
	if (h->pinned_public_key)
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, h->pinned_public_key);
	if (h->client_cert_file) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, h->client_cert_file);
		curl_easy_setopt(c, CURLOPT_SSLKEY, h->client_key_file ? h->client_key_file : h->client_cert_file);
	}
}

/* Server authentication libcurl does itself (NTLM, Negotiate), and the proxy. */
static void setup_auth_and_proxy(struct cmb_http *h)
{
	CURL *c = h->curl;
	/* NTLM and Negotiate authenticate HTTP/1.1 connections; over HTTP/2 servers refuse them. */
	int conn_auth = h->auth != CMB_HTTP_AUTH_NONE || h->proxy_auth == CMB_HTTP_PROXY_AUTH_NTLM;
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)(conn_auth ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2TLS));
	if (h->auth == CMB_HTTP_AUTH_NTLM) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_NTLM);
		curl_easy_setopt(c, CURLOPT_USERNAME, h->username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, h->password);
	} else if (h->auth == CMB_HTTP_AUTH_NEGOTIATE) {
		/* ":": no user name; GSS-API takes the credentials from the ccache or KRB5_CLIENT_KTNAME. */
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
		curl_easy_setopt(c, CURLOPT_USERPWD, ":");
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
		curl_easy_setopt(c, CURLOPT_DEBUGDATA, h);
	}
	if (h->proxy) {
		curl_easy_setopt(c, CURLOPT_PROXY, strcmp(h->proxy, "none") == 0 ? "" : h->proxy);
		if (h->proxy_auth != CMB_HTTP_PROXY_AUTH_NONE) {
			curl_easy_setopt(c, CURLOPT_PROXYAUTH, (long)(h->proxy_auth == CMB_HTTP_PROXY_AUTH_NTLM
									      ? CURLAUTH_NTLM : CURLAUTH_BASIC));
			curl_easy_setopt(c, CURLOPT_PROXYUSERNAME, h->proxy_username);
			curl_easy_setopt(c, CURLOPT_PROXYPASSWORD, h->proxy_password);
		}
	}
	if (h->no_proxy)
		curl_easy_setopt(c, CURLOPT_NOPROXY, h->no_proxy);
}

/* Timeouts, the stop request, the callbacks; redirects are never followed (credentials stay home). */
static void setup_transfer(struct cmb_http *h, const struct cmb_http_request *req, struct transfer *t, char *errbuf)
{
	CURL *c = h->curl;
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->connect_timeout_s);
	/* A server that drips bytes is as stuck as a silent one: below min_speed for the stall time ends it. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, h->min_speed);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->stall_s > 0 ? req->stall_s : h->low_speed_time_s);
	if (req->timeout_s > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(req->timeout_s * 1000.0) + 1);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)req);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* Not on a reused connection: libcurl would send it again if that connection died without a reply. */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, req->once ? 1L : 0L);
}

/* The request's headers (the bearer token among them) and body, gzip-compressed when asked. */
static int setup_request(struct cmb_http *h, const struct cmb_http_request *req, struct curl_slist **hdrs,
			 struct cmb_buf *gz, struct cmb_http_response *resp)
{
	CURL *c = h->curl;
	int rc;
	for (const char *const *p = req->headers; p && *p; p++)
		*hdrs = curl_slist_append(*hdrs, *p);
	if (req->bearer) {
		char *a = xasprintf("Authorization: Bearer %s", req->bearer);
		*hdrs = curl_slist_append(*hdrs, a);
		OPENSSL_cleanse(a, strlen(a));
		free(a);
	}
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	const char *method = req->method ? req->method : "GET";
	if (strcmp(method, "GET") != 0) {
		const void *body = req->body ? req->body : "";
		size_t body_len = req->body ? req->body_len : 0;
		if (req->gzip_body && body_len) {
			if ((rc = gzip_body(body, body_len, gz)) < 0)
				return rc;
			body = gz->data;
			body_len = gz->len;
			*hdrs = curl_slist_append(*hdrs, "Content-Encoding: gzip");
		}
		if (strcmp(method, "POST") == 0)
			curl_easy_setopt(c, CURLOPT_POST, 1L);
		else
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		resp->bytes_out = body_len;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	return 0;
}

/* A 401 to Negotiate when libcurl could not even build a token: why, in the admin's terms. */
static int negotiate_error(struct cmb_http *h, const struct cmb_http_request *req)
{
	char host[256];
	url_host(req->url, host, sizeof(host));
	if (strstr(h->gss_error, "No credentials were supplied") || strstr(h->gss_error, "No Kerberos credentials") ||
	    (strstr(h->gss_error, "not found") && strstr(h->gss_error, "cache")))
		return cmb_error_set(CMB_EAUTH, "no Kerberos ticket for the %s at %s: run kinit or set "
				     "KRB5_CLIENT_KTNAME to a client keytab (GSS-API: %s)", h->name, req->url, h->gss_error);
	return cmb_error_set(CMB_EAUTH, "Kerberos could not get a ticket for HTTP/%s (the %s at %s): %s "
			     "(is the SPN HTTP/%s registered, and the realm reachable?)", host, h->name, req->url,
			     h->gss_error, host);
}

int cmb_http_request(struct cmb_http *h, const struct cmb_http_request *req, struct cmb_http_response *resp)
{
	CURL *c = h->curl;
	struct curl_slist *hdrs = NULL;
	struct cmb_buf gz = CMB_BUF_INIT(0);
	char errbuf[CURL_ERROR_SIZE] = "";
	int rc = 0;

	memset(resp, 0, sizeof(*resp));
	cmb_buf_init(&resp->body, CMB_LIMIT_ERROR_BODY_BYTES);
	struct transfer t = { .h = h, .req = req, .resp = resp };

	curl_easy_reset(c);
	setup_tls(h);
	setup_auth_and_proxy(h);
	setup_transfer(h, req, &t, errbuf);
	if ((rc = setup_request(h, req, &hdrs, &gz, resp)) < 0)
		goto done;

	/* Every request counts against the endpoint's limit, retries and token requests included. */
	cmb_rate_limit_take(&h->rate);
	CURLcode cc = curl_easy_perform(c);
	h->total_requests++;
	h->total_out += resp->bytes_out;
	h->total_in += resp->bytes_in;
	if (cc == CURLE_WRITE_ERROR && t.sink_rc < 0) {
		rc = t.sink_rc;
		goto done;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		rc = cmb_error_set(CMB_ECANCELED, "request to the %s at %s %s", h->name, req->url,
				   cmb_stop_requested() ? "stopped on request" : "interrupted (reload)");
		goto done;
	}
	if (cc != CURLE_OK) {
		rc = map_curl_error(h, cc, req, errbuf);
		goto done;
	}
	if (!t.decided) {
		/* No body at all: still report status and content type. */
		char *ct = NULL;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		resp->content_type = ct ? xstrdup(ct) : NULL;
	}
	if (h->auth == CMB_HTTP_AUTH_NEGOTIATE && resp->status == 401 && h->gss_error[0])
		rc = negotiate_error(h, req);
done:
	/* The header list may hold the bearer token: wipe before freeing. */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		OPENSSL_cleanse(s->data, strlen(s->data));
	curl_slist_free_all(hdrs);
	cmb_buf_free(&gz);
	if (rc < 0)
		cmb_http_response_clear(resp);
	return rc;
}

void cmb_http_response_clear(struct cmb_http_response *resp)
{
	if (!resp)
		return;
	free(resp->content_type);
	free(resp->retry_after);
	free(resp->location);
	cmb_buf_free(&resp->body);
	memset(resp, 0, sizeof(*resp));
}

char *cmb_http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		abort();
	char *out = xstrdup(e);
	curl_free(e);
	return out;
}

char *cmb_http_resolve(const char *base, const char *ref)
{
	CURLU *u = curl_url();
	char *out = NULL, *res = NULL;
	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_URL, ref, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &res, 0) != CURLUE_OK)
		goto done;
	out = xstrdup(res);
done:
	curl_free(res);
	curl_url_cleanup(u);
	return out;
}

/* scheme, host and port, the scheme's default port filled in; all NULL on failure (curl_free them). */
static int url_origin(const char *url, char **scheme, char **host, char **port)
{
	CURLU *u = curl_url();
	int rc = -1;
	*scheme = *host = *port = NULL;
	if (!u)
		return -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		rc = 0;
	curl_url_cleanup(u);
	if (rc < 0) {
		curl_free(*scheme);
		curl_free(*host);
		curl_free(*port);
		*scheme = *host = *port = NULL;
	}
	return rc;
}

int cmb_http_same_origin(const char *a, const char *b)
{
	char *sa, *ha, *pa, *sb, *hb, *pb;
	int ra = url_origin(a, &sa, &ha, &pa), rb = url_origin(b, &sb, &hb, &pb);
	int same = ra == 0 && rb == 0 && strcasecmp(sa, sb) == 0 && strcasecmp(ha, hb) == 0 && strcmp(pa, pb) == 0;
	curl_free(sa);
	curl_free(ha);
	curl_free(pa);
	curl_free(sb);
	curl_free(hb);
	curl_free(pb);
	return same;
}
