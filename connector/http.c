/*
 * http.c - HTTP core on libcurl: one easy handle per endpoint (connection
 * reuse), TLS verification always on, bounded or streamed responses, gzip
 * request bodies, a token-bucket rate limit per handle.
 *
 * Must never: log a header value (tokens live there), turn off certificate
 * verification, or grow a buffer past the configured maximum.
 */
#include "http.h"
#include "error.h"
#include "log.h"
#include "retry.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct cmb_http {
	CURL *curl;
	char *name;
	char *ca_file;
	char *user_agent;
	long connect_timeout_s;
	long low_speed_time_s;
	size_t max_response;
	size_t total_out, total_in, total_requests;
	struct cmb_rate_limit rate;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
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
	h->max_response = opts->max_response ? opts->max_response : (size_t)256 << 20;
	cmb_rate_limit_init(&h->rate, opts->rate_limit, opts->rate_burst);
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

struct transfer {
	struct cmb_http *h;
	const struct cmb_http_request *req;
	struct cmb_http_response *resp;
	int sink_rc;          /* error the sink returned, or ours (too big) */
	int use_sink;         /* decided at the first body byte */
	int decided;
};

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	static const char ra[] = "retry-after:";
	if (len > sizeof(ra) - 1 && strncasecmp(buf, ra, sizeof(ra) - 1) == 0) {
		const char *v = buf + sizeof(ra) - 1;
		size_t vl = len - (sizeof(ra) - 1);
		while (vl && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		free(t->resp->retry_after);
		t->resp->retry_after = xstrndup(v, vl);
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
		t->decided = 1;
	}
	if (len > t->h->max_response || t->resp->bytes_in > t->h->max_response - len) {
		t->sink_rc = cmb_error_set(CMB_ETOOBIG, "response from %s exceeds the limit of %zu bytes",
					   t->req->url, t->h->max_response);
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
	/* Error bodies are kept only up to 64 KiB: enough to explain, never a memory sink. */
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

static int map_curl_error(struct cmb_http *h, CURLcode cc, const char *url, const char *errbuf)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return cmb_error_set(CMB_ETLS, "TLS with the %s at %s failed: %s (check [%s] ca_file)", h->name, url,
				     detail, h->name);
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2_STREAM:
		/* The connection went away mid-reply: what arrived must not be taken for the answer. */
		return cmb_error_set(CMB_ENETWORK, "the connection to the %s at %s closed before the reply was complete: %s",
				     h->name, url, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return cmb_error_set(CMB_ENETWORK, "the %s at %s did not answer in time: %s", h->name, url, detail);
	default:
		return cmb_error_set(CMB_ENETWORK, "request to the %s at %s failed: %s", h->name, url, detail);
	}
}

int cmb_http_request(struct cmb_http *h, const struct cmb_http_request *req, struct cmb_http_response *resp)
{
	CURL *c = h->curl;
	struct curl_slist *hdrs = NULL;
	struct cmb_buf gz = CMB_BUF_INIT(0);
	char errbuf[CURL_ERROR_SIZE] = "";
	int rc = 0;

	memset(resp, 0, sizeof(*resp));
	cmb_buf_init(&resp->body, 64 * 1024);
	struct transfer t = { .h = h, .req = req, .resp = resp };

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);

	for (const char *const *p = req->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	if (req->bearer) {
		char *a = xasprintf("Authorization: Bearer %s", req->bearer);
		hdrs = curl_slist_append(hdrs, a);
		OPENSSL_cleanse(a, strlen(a));
		free(a);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");

	const char *method = req->method ? req->method : "GET";
	if (strcmp(method, "GET") != 0) {
		const void *body = req->body ? req->body : "";
		size_t body_len = req->body ? req->body_len : 0;
		if (req->gzip_body && body_len) {
			if ((rc = gzip_body(body, body_len, &gz)) < 0)
				goto done;
			body = gz.data;
			body_len = gz.len;
			hdrs = curl_slist_append(hdrs, "Content-Encoding: gzip");
		}
		if (strcmp(method, "POST") == 0)
			curl_easy_setopt(c, CURLOPT_POST, 1L);
		else
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		resp->bytes_out = body_len;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

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
	if (cc != CURLE_OK) {
		rc = map_curl_error(h, cc, req->url, errbuf);
		goto done;
	}
	if (!t.decided) {
		/* No body at all: still report status and content type. */
		char *ct = NULL;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		resp->content_type = ct ? xstrdup(ct) : NULL;
	}
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
