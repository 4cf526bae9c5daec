/*
 * adminservice.c - the AdminService site adapter: reads the five WMI classes
 * of classes.c over OData (HTTPS), one cursor per class, and runs the merge
 * join of join.c over them.
 *
 * Paging: server-driven first (follow @odata.nextLink verbatim, relative
 * links resolved against the request URL); when a $top window was filled
 * and the server gave no nextLink, client-driven with $skip. Each cursor
 * buffers the parsed records of one page (at most page_size), so the whole
 * read holds at most five pages.
 *
 * Must never: log or put in a message the password or the Authorization
 * header; accept a page that was not read to its end; trust a page that is
 * not JSON.
 */
#include "../site.h"
#include "../../connector/error.h"
#include "../../connector/http.h"
#include "../../connector/log.h"
#include "../../connector/util.h"
#include "classes.h"
#include "join.h"
#include "odata.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

/* An empty page that still has a nextLink is legal; this many in a row is a loop. */
#define MAX_EMPTY_PAGES 100

struct as_state {
	char *base;                 /* [site] url, no trailing '/' */
	char *user;                 /* for messages only; NULL with auth = none */
	char *auth_header;          /* "Authorization: Basic ..."; wiped on close */
	long page_size;
	struct cmb_http *http;
};

struct as_cursor {
	struct cmb_join_cursor base;   /* base.ctx points back here */
	struct as_state *st;
	const struct cmb_as_class *cls;
	char *select;
	char *url;                     /* the next page to request; NULL at the end */
	long pages;                    /* page requests made */
	size_t bytes_in;
	unsigned long long skip;       /* $skip of the current client-driven window */
	unsigned long long window;     /* rows received in the current $top window */
	int empty_run;                 /* consecutive empty pages */
	struct cmb_odata_record **buf; /* the current page's rows, at most page_size */
	size_t n, next;
};

/* ---- messages ---------------------------------------------------------- */

/*
 * Copies at most max bytes of s for a message: control bytes become '.',
 * and with ascii_only every byte >= 0x80 too (raw bytes of a page we could
 * not parse must not reach a log line as they are).
 */
static char *sanitise(const char *s, size_t len, size_t max, int ascii_only)
{
	size_t n = len < max ? len : max;
	char *out = xmalloc(n + 4);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || c == '\r' || c == '\t')
			out[o++] = ' ';
		else if (c < 0x20 || c == 0x7f || (ascii_only && c >= 0x80))
			out[o++] = '.';
		else
			out[o++] = (char)c;
	}
	if (len > max) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static int is_json(const char *ct)
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

/*
 * Describes an error body: the OData "error" code and message when it is
 * one, otherwise its content type and first bytes. Caller frees.
 */
static char *describe_error_body(const struct cmb_http_response *resp)
{
	const char *data = resp->body.data ? resp->body.data : "";
	size_t len = resp->body.len;
	if (len == 0)
		return xstrdup("empty body");
	if (is_json(resp->content_type)) {
		static const char *code_path[] = { "error", "code", NULL };
		static const char *msg_path[] = { "error", "message", NULL };
		yajl_val tree = yajl_tree_parse(data, NULL, 0);
		if (tree) {
			yajl_val code = yajl_tree_get(tree, code_path, yajl_t_string);
			yajl_val msg = yajl_tree_get(tree, msg_path, yajl_t_string);
			char *out = NULL;
			if (msg) {
				const char *m = YAJL_GET_STRING(msg);
				char *sm = sanitise(m, strlen(m), 400, 0);
				if (code) {
					const char *c = YAJL_GET_STRING(code);
					char *sc = sanitise(c, strlen(c), 80, 0);
					out = xasprintf("%s: %s", sc, sm);
					free(sc);
				} else {
					out = xasprintf("%s", sm);
				}
				free(sm);
			}
			yajl_tree_free(tree);
			if (out)
				return out;
		}
	}
	char *first = sanitise(data, len, 120, 1);
	char *out = xasprintf("not an OData error (Content-Type '%s'): '%s'",
			      resp->content_type ? resp->content_type : "none", first);
	free(first);
	return out;
}

/* Turns a non-2xx reply into an error; where names the class and page. */
static int status_error(const struct as_state *st, const char *where, const char *cls,
			const char *url, const struct cmb_http_response *resp)
{
	char *why = describe_error_body(resp);
	int code;
	switch (resp->status) {
	case 401:
		if (st->user)
			code = cmb_error_set(CMB_EAUTH, "%s: site refused the credentials for %s at %s (HTTP 401: %s)",
					     where, st->user, st->base, why);
		else
			code = cmb_error_set(CMB_EAUTH, "%s: site at %s requires authentication but [site] auth = none "
					     "(HTTP 401: %s)", where, st->base, why);
		break;
	case 403:
		code = cmb_error_set(CMB_EAUTH, "%s: site denied %s access to %s (HTTP 403: %s)", where,
				     st->user ? st->user : "anonymous", url, why);
		break;
	case 404:
		code = cmb_error_set(CMB_ENOTFOUND, "%s: class %s not found at %s (HTTP 404: %s)", where, cls,
				     st->base, why);
		break;
	case 429:
	case 503:
		code = cmb_error_set(CMB_ETHROTTLED, "%s: site is busy (HTTP %ld%s%s): %s", where, resp->status,
				     resp->retry_after ? ", Retry-After " : "",
				     resp->retry_after ? resp->retry_after : "", why);
		break;
	default:
		code = cmb_error_set(CMB_EHTTP, "%s: site answered HTTP %ld for %s: %s", where, resp->status, url, why);
		break;
	}
	free(why);
	return code;
}

/* ---- one page request -------------------------------------------------- */

struct page_sink {
	struct cmb_odata_parser *parser;
	const char *where;
	int checked;
};

static int on_body(void *ctx, long status, const char *content_type, const char *data, size_t len)
{
	struct page_sink *ps = ctx;
	if (!ps->checked) {
		ps->checked = 1;
		if (!is_json(content_type)) {
			char *first = sanitise(data, len, 120, 1);
			int code = cmb_error_set(CMB_EPROTO, "%s: site answered HTTP %ld with Content-Type '%s', not JSON "
						 "(a proxy or login page?): '%s'", ps->where, status,
						 content_type ? content_type : "none", first);
			free(first);
			return code;
		}
	}
	return cmb_odata_feed(ps->parser, data, len);
}

/*
 * Requests url and parses it as one OData page through parser (which hands
 * the records on). *bytes_in gets the body size even on failure.
 */
static int request_page(struct as_state *st, const char *url, const char *where, const char *cls,
			struct cmb_odata_parser *parser, size_t *bytes_in)
{
	const char *headers[3] = { "Accept: application/json", NULL, NULL };
	struct page_sink ps = { .parser = parser, .where = where };
	struct cmb_http_response resp;
	int error;

	if (st->auth_header)
		headers[1] = st->auth_header;
	struct cmb_http_request req = {
		.method = "GET", .url = url, .headers = headers, .sink = on_body, .sink_ctx = &ps,
	};
	cmb_debug("site: GET %s", url);
	if ((error = cmb_http_request(st->http, &req, &resp)) < 0) {
		/* Parser and sink messages already say where; the transport's do not. */
		if (strncmp(cmb_error_last(), where, strlen(where)) != 0)
			cmb_error_wrap(error, "%s", where);
		return error;
	}
	*bytes_in += resp.bytes_in;
	if (resp.status < 200 || resp.status > 299) {
		error = status_error(st, where, cls, url, &resp);
		goto done;
	}
	if (!ps.checked && !is_json(resp.content_type)) {
		error = cmb_error_set(CMB_EPROTO, "%s: site answered HTTP %ld with Content-Type '%s' and no body",
				      where, resp.status, resp.content_type ? resp.content_type : "none");
		goto done;
	}
	error = cmb_odata_finish(parser);
done:
	cmb_http_response_clear(&resp);
	return error;
}

/* ---- the class cursor -------------------------------------------------- */

static int keep_record(void *ctx, struct cmb_odata_record *rec)
{
	struct as_cursor *c = ctx;
	if (c->n >= (size_t)c->st->page_size) {
		cmb_odata_record_free(rec);
		/* The one-page memory bound relies on $top being honoured. */
		return cmb_error_set(CMB_EPROTO, "%s page %ld: site returned more than $top=%ld rows in one page",
				     c->cls->name, c->pages, c->st->page_size);
	}
	c->buf[c->n++] = rec;
	return 0;
}

static char *window_url(const struct as_cursor *c)
{
	if (c->skip)
		return xasprintf("%s/wmi/%s?$select=%s&$orderby=" CMB_AS_KEY "&$top=%ld&$skip=%llu", c->st->base,
				 c->cls->name, c->select, c->st->page_size, c->skip);
	return xasprintf("%s/wmi/%s?$select=%s&$orderby=" CMB_AS_KEY "&$top=%ld", c->st->base, c->cls->name,
			 c->select, c->st->page_size);
}

static void cursor_drop_page(struct as_cursor *c)
{
	for (size_t i = c->next; i < c->n; i++)
		cmb_odata_record_free(c->buf[i]);
	c->n = c->next = 0;
}

/* Requests the page at c->url into the buffer and works out the next URL. */
static int cursor_fetch(struct as_cursor *c)
{
	struct cmb_odata_parser *parser = NULL;
	char where[256];
	char *next = NULL;
	int error;

	c->pages++;
	snprintf(where, sizeof(where), "%s page %ld", c->cls->name, c->pages);
	if ((error = cmb_odata_new(&parser, where, 0, keep_record, c)) < 0)
		return error;
	if ((error = request_page(c->st, c->url, where, c->cls->name, parser, &c->bytes_in)) < 0)
		goto done;

	c->window += c->n;
	c->empty_run = c->n ? 0 : c->empty_run + 1;
	const char *link = cmb_odata_next_link(parser);
	if (link) {
		if (!(next = cmb_http_resolve(c->url, link))) {
			error = cmb_error_set(CMB_EPROTO, "%s: cannot resolve @odata.nextLink '%s' against %s", where,
					      link, c->url);
			goto done;
		}
		if (strcmp(next, c->url) == 0) {
			error = cmb_error_set(CMB_EPROTO, "%s: @odata.nextLink points at the page itself (%s)", where,
					      next);
			goto done;
		}
		if (c->empty_run >= MAX_EMPTY_PAGES) {
			error = cmb_error_set(CMB_EPROTO, "%s: %d empty pages in a row, each with a nextLink", where,
					      c->empty_run);
			goto done;
		}
	} else if (c->n > 0 && c->window >= (unsigned long long)c->st->page_size) {
		/* A full $top window and no nextLink: there may be more; ask for the next window. */
		c->skip += c->window;
		c->window = 0;
		next = window_url(c);
	}
	free(c->url);
	c->url = next;
	next = NULL;
	error = 0;
done:
	free(next);
	cmb_odata_free(parser);
	if (error < 0)
		cursor_drop_page(c);
	return error;
}

static int cursor_next(struct cmb_join_cursor *cur, struct cmb_odata_record **out)
{
	struct as_cursor *c = cur->ctx;
	int error;
	while (c->next == c->n) {
		c->n = c->next = 0;
		if (!c->url) {
			*out = NULL;
			return 0;
		}
		if ((error = cursor_fetch(c)) < 0)
			return error;
	}
	*out = c->buf[c->next];
	c->buf[c->next++] = NULL;
	return 0;
}

static void cursor_init(struct as_cursor *c, struct as_state *st, const struct cmb_as_class *cls)
{
	memset(c, 0, sizeof(*c));
	c->base.next = cursor_next;
	c->base.ctx = c;
	c->st = st;
	c->cls = cls;
	c->select = cmb_as_class_select(cls);
	c->url = window_url(c);
	c->buf = xcalloc((size_t)st->page_size, sizeof(*c->buf));
}

static void cursor_clear(struct as_cursor *c)
{
	cursor_drop_page(c);
	free(c->buf);
	free(c->select);
	free(c->url);
}

/* ---- the adapter table ------------------------------------------------- */

static void as_close(void *p)
{
	struct as_state *st = p;
	if (!st)
		return;
	if (st->auth_header) {
		OPENSSL_cleanse(st->auth_header, strlen(st->auth_header));
		free(st->auth_header);
	}
	cmb_http_free(st->http);
	free(st->base);
	free(st->user);
	free(st);
}

static char *basic_header(const char *user, const char *password)
{
	char *pair = xasprintf("%s:%s", user, password);
	size_t len = strlen(pair);
	size_t enc_len = 4 * ((len + 2) / 3);
	char *enc = xmalloc(enc_len + 1);
	EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)pair, (int)len);
	char *header = xasprintf("Authorization: Basic %s", enc);
	OPENSSL_cleanse(pair, len);
	OPENSSL_cleanse(enc, enc_len);
	free(pair);
	free(enc);
	return header;
}

static int as_open(void **out, const struct cmb_config *cfg)
{
	struct as_state *st = xcalloc(1, sizeof(*st));
	char *password = NULL;
	int error;

	if (!cfg->site_url || !*cfg->site_url) {
		error = cmb_error_set(CMB_ECONFIG, "[site] url is not set");
		goto done;
	}
	st->base = xstrdup(cfg->site_url);
	for (size_t n = strlen(st->base); n && st->base[n - 1] == '/'; n--)
		st->base[n - 1] = '\0';
	st->page_size = cfg->site_page_size > 0 ? cfg->site_page_size : 1000;

	const char *auth = cfg->site_auth ? cfg->site_auth : "none";
	if (strcmp(auth, "basic") == 0) {
		if (!cfg->site_username || !cfg->site_password_file) {
			error = cmb_error_set(CMB_ECONFIG, "[site] auth = basic needs username and password_file");
			goto done;
		}
		if (strchr(cfg->site_username, ':')) {
			error = cmb_error_set(CMB_ECONFIG, "[site] username: HTTP Basic cannot carry a ':' in the user name");
			goto done;
		}
		if ((error = cmb_secret_read(cfg->site_password_file, &password)) < 0) {
			cmb_error_wrap(error, "[site] password_file");
			goto done;
		}
		st->user = xstrdup(cfg->site_username);
		st->auth_header = basic_header(cfg->site_username, password);
	} else if (strcmp(auth, "none") != 0) {
		error = cmb_error_set(CMB_ECONFIG, "[site] auth: '%s' is not none or basic", auth);
		goto done;
	}

	struct cmb_http_opts opts = {
		.name = "site",
		.ca_file = cfg->site_ca_file,
		.low_speed_time_s = cfg->site_timeout,
		.max_response = cfg->sync_max_response_mb > 0 ? (size_t)cfg->sync_max_response_mb << 20 : 0,
	};
	if ((error = cmb_http_new(&st->http, &opts)) < 0)
		goto done;
	if (cfg->site_collection)
		cmb_warn("site: [site] collection = '%s' is not supported yet; every device is read",
			 cfg->site_collection);
	*out = st;
	st = NULL;
	error = 0;
done:
	cmb_secret_free(password);
	as_close(st);
	return error;
}

static int count_record(void *ctx, struct cmb_odata_record *rec)
{
	(*(size_t *)ctx)++;
	cmb_odata_record_free(rec);
	return 0;
}

static int as_check(void *p)
{
	struct as_state *st = p;
	const struct cmb_as_class *sys = &cmb_as_classes[CMB_AS_SYSTEM];
	struct cmb_odata_parser *parser = NULL;
	size_t rows = 0, bytes = 0;
	char where[128];
	int error;

	snprintf(where, sizeof(where), "%s check", sys->name);
	char *url = xasprintf("%s/wmi/%s?$select=" CMB_AS_KEY "&$top=1", st->base, sys->name);
	if ((error = cmb_odata_new(&parser, where, 0, count_record, &rows)) < 0)
		goto done;
	error = request_page(st, url, where, sys->name, parser, &bytes);
done:
	cmb_odata_free(parser);
	free(url);
	return error;
}

static int as_read_devices(void *p, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats)
{
	struct as_state *st = p;
	struct as_cursor cursors[CMB_AS_NCLASSES];
	struct cmb_join_cursor *curp[CMB_AS_NCLASSES];
	struct cmb_join_stats js;
	int error;

	for (int i = 0; i < CMB_AS_NCLASSES; i++) {
		cursor_init(&cursors[i], st, &cmb_as_classes[i]);
		curp[i] = &cursors[i].base;
	}
	error = cmb_join_run(curp, cb, ctx, &js);

	if (stats) {
		memset(stats, 0, sizeof(*stats));
		stats->devices = js.devices;
		for (int i = 0; i < CMB_AS_NCLASSES; i++) {
			stats->pages += cursors[i].pages;
			stats->bytes_in += cursors[i].bytes_in;
		}
	}
	if (error == 0) {
		if (js.mismatches)
			cmb_warn("site: %ld properties had an unexpected JSON type and were read as absent",
				 js.mismatches);
		cmb_debug("site: %ld devices; rows %ld/%ld/%ld/%ld/%ld; %ld rows without a discovery record",
			  js.devices, js.rows[0], js.rows[1], js.rows[2], js.rows[3], js.rows[4], js.orphans);
	}
	for (int i = 0; i < CMB_AS_NCLASSES; i++)
		cursor_clear(&cursors[i]);
	return error;
}

const struct cmb_site_adapter cmb_site_adminservice = {
	.version = CMB_SITE_ADAPTER_VERSION,
	.name = "adminservice",
	.open = as_open,
	.check = as_check,
	.read_devices = as_read_devices,
	.close = as_close,
};
