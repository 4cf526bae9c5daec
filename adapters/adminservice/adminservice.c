/*
 * adminservice.c - the AdminService site adapter: reads the five WMI classes
 * of classes.c over OData (HTTPS), one cursor per class (plus the membership
 * of [site] collection as a filter), and runs the merge join of join.c over
 * them; reads the collections marked for cloud sync and names their
 * hierarchy.
 *
 * Paging: server-driven first (follow @odata.nextLink verbatim, relative
 * links resolved against the request URL); when a $top window was filled
 * and the server gave no nextLink, client-driven with $skip. Each cursor
 * buffers the parsed records of one page (at most page_size), so the whole
 * read holds at most six pages.
 *
 * Retries: every request goes through get_page(), which retries transient
 * failures (retry.h) with a fresh parser. A page's rows reach the join only
 * after the whole page was received and parsed, so a retried page can never
 * hand a row over twice; what a failed attempt parsed is dropped.
 *
 * Must never: log or put in a message the password or the Authorization
 * header; accept a page that was not read to its end; trust a page that is
 * not JSON; yield a row of a page before that page is complete.
 */
#include "adapters/site.h"
#include "connector/transport/auth.h"
#include "connector/base/error.h"
#include "connector/transport/http.h"
#include "connector/base/log.h"
#include "connector/transport/retry.h"
#include "connector/base/util.h"
#include "adapters/adminservice/adminservice.h"
#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/join.h"
#include "adapters/adminservice/odata.h"
#include "adapters/adminservice/operations.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

/* An empty page that still has a nextLink is legal; this many in a row is a loop. */
#define MAX_EMPTY_PAGES 100
/* SMS_Site and SMS_Collection answers are small; more rows than this is not a site. */
#define MAX_SMALL_ROWS 1000
#define MAX_SMALL_PAGES 100

/* retry.h's defaults, used where the config leaves a value at 0 (hand-made configs in tests). */
static const struct cmb_retry_policy default_retry_policy = {
	.max_attempts = 6, .base_delay_s = 0.5, .max_delay_s = 60.0, .budget = 200,
};

struct as_state {
	char *base;                 /* [site] url, no trailing '/' */
	char *user;                 /* for messages only; NULL with auth = none */
	char *scheme;               /* "Basic", "NTLM", "Negotiate", "Bearer"; for messages; NULL with none */
	struct cmb_site_auth *sauth; /* [site] auth: the Authorization header (basic, bearer) */
	char *site_code;            /* [connector] site_code: the hierarchy fallback */
	char *collection;           /* [site] collection, or NULL: every device */
	long page_size;
	struct cmb_http *http;
	struct cmb_retry_policy policy;
	struct cmb_retry_budget budget;   /* this cycle's; reset by begin_cycle */
	struct cmb_rate_limit rate;
};

struct as_cursor {
	struct cmb_join_cursor base;   /* base.ctx points back here */
	struct as_state *st;
	const struct cmb_as_class *cls;
	char *filter;                  /* "$filter=...&" (encoded) or NULL */
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
			code = cmb_error_set(CMB_EAUTH, "%s: site refused the credentials for %s at %s (HTTP 401: %s) (%s)",
					     where, st->user, st->base, why, st->scheme ? st->scheme : "?");
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
	case 500:
	case 502:
	case 504:
		/* A gateway or a briefly failing provider: transient, retried like a reset. */
		code = cmb_error_set(CMB_ENETWORK, "%s: site answered HTTP %ld for %s: %s", where, resp->status,
				     url, why);
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

/* ---- one request, and its retries -------------------------------------- */

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
 * Requests url once and parses it as one OData page through parser (which
 * hands the records on). *bytes_in gets the body size even on failure;
 * *retry_after (the caller's) the raw header of a non-2xx reply.
 */
static int request_once(struct as_state *st, const char *url, const char *where, const char *cls,
			struct cmb_odata_parser *parser, size_t *bytes_in, char **retry_after)
{
	const char *headers[3] = { "Accept: application/json", NULL, NULL };
	struct page_sink ps = { .parser = parser, .where = where };
	struct cmb_http_response resp;
	int error;

	for (int renewed = 0;; renewed = 1) {
		/* Basic: a fixed header; bearer: a tenant token, renewed ahead of expiry. */
		if ((error = cmb_site_auth_header(st->sauth, &headers[1])) < 0)
			return cmb_error_wrap(error, "%s", where);
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
		/* A bearer token refused early (revoked, clock skew): one new token, one more try. */
		if (resp.status != 401 || renewed || !cmb_site_auth_refused(st->sauth))
			break;
		cmb_http_response_clear(&resp);
	}
	*bytes_in += resp.bytes_in;
	if (resp.status < 200 || resp.status > 299) {
		error = status_error(st, where, cls, url, &resp);
		if (resp.retry_after)
			*retry_after = xstrdup(resp.retry_after);
		goto done;
	}
	if (!ps.checked && !is_json(resp.content_type)) {
		error = cmb_error_set(CMB_EPROTO, "%s: site answered HTTP %ld with Content-Type '%s' and no body",
				      where, resp.status, resp.content_type ? resp.content_type : "none");
		goto done;
	}
	/* A complete transfer that ends inside the JSON is a malformed page: final, not retried. */
	error = cmb_odata_finish(parser);
done:
	cmb_http_response_clear(&resp);
	return error;
}

/* Where one page's rows go: on_record gets each, reset drops what a failed attempt delivered. */
struct page_consumer {
	cmb_odata_record_cb on_record;
	void (*reset)(void *ctx);
	void *ctx;
};

/* The client-side rate limit: one token per request, kept in this one place. */
static void take_token(struct as_state *st)
{
	cmb_rate_limit_take(&st->rate);
}

/* Adds why a failed request was not tried again to the message of error. */
static int give_up(struct as_state *st, int error, int attempts)
{
	if (cmb_error_retry_class(error) == CMB_RETRY_NEVER)
		return error;
	char *msg = xstrdup(cmb_error_last());
	if (attempts >= st->budget.policy.max_attempts)
		cmb_error_set(error, "%s (gave up after %d attempts)", msg, attempts);
	else
		cmb_error_set(error, "%s (not retried: the cycle's retry budget of %ld is spent)", msg,
			      st->budget.policy.budget);
	free(msg);
	return error;
}

/*
 * GETs url as one OData page into pc, retrying transient failures (network
 * errors, resets, truncated transfers, 500/502/504; 429/503 after
 * Retry-After) with a fresh parser each time, within the cycle's budget.
 * *next_link (when not NULL; the caller's) gets the page's nextLink or NULL.
 */
static int get_page(struct as_state *st, const char *url, const char *where, const char *cls,
		    const struct page_consumer *pc, size_t *bytes_in, char **next_link)
{
	int error;
	for (int attempt = 0;; attempt++) {
		struct cmb_odata_parser *parser = NULL;
		char *retry_after = NULL;
		double wait = 0;

		pc->reset(pc->ctx);
		if ((error = cmb_odata_new(&parser, where, 0, pc->on_record, pc->ctx)) < 0)
			return error;
		take_token(st);
		error = request_once(st, url, where, cls, parser, bytes_in, &retry_after);
		if (error == 0) {
			if (next_link) {
				const char *link = cmb_odata_next_link(parser);
				*next_link = link ? xstrdup(link) : NULL;
			}
			cmb_odata_free(parser);
			return 0;
		}
		cmb_odata_free(parser);
		pc->reset(pc->ctx);
		int again = cmb_retry_next(&st->budget, attempt, error, retry_after, &wait);
		free(retry_after);
		if (!again)
			return give_up(st, error, attempt + 1);
		cmb_warn("site: attempt %d of %d failed, retrying in %.2f s: %s", attempt + 1,
			 st->budget.policy.max_attempts, wait, cmb_error_last());
		if ((error = cmb_retry_sleep(wait, NULL)) < 0)
			return error;
	}
}

/* "$filter=PROP eq 'VALUE'&", percent-encoded, the literal quoted as OData says ('' for '). */
static char *filter_query(const char *prop, const char *value)
{
	struct cmb_buf b = CMB_BUF_INIT((size_t)1 << 20);
	cmb_buf_printf(&b, "%s eq '", prop);
	for (const char *v = value; *v; v++) {
		if (*v == '\'')
			cmb_buf_addstr(&b, "''");
		else
			cmb_buf_add(&b, v, 1);
	}
	cmb_buf_addstr(&b, "'");
	char *expr = cmb_http_escape(b.data);
	char *out = xasprintf("$filter=%s&", expr);
	free(expr);
	cmb_buf_free(&b);
	return out;
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
	const char *filter = c->filter ? c->filter : "";
	if (c->skip)
		return xasprintf("%s/wmi/%s?%s$select=%s&$orderby=" CMB_AS_KEY "&$top=%ld&$skip=%llu", c->st->base,
				 c->cls->name, filter, c->select, c->st->page_size, c->skip);
	return xasprintf("%s/wmi/%s?%s$select=%s&$orderby=" CMB_AS_KEY "&$top=%ld", c->st->base, c->cls->name,
			 filter, c->select, c->st->page_size);
}

static void cursor_drop_page(struct as_cursor *c)
{
	for (size_t i = c->next; i < c->n; i++)
		cmb_odata_record_free(c->buf[i]);
	c->n = c->next = 0;
}

/* Called before each attempt: none of this page's rows has been yielded yet. */
static void cursor_reset(void *ctx)
{
	cursor_drop_page(ctx);
}

/* Requests the page at c->url into the buffer and works out the next URL. */
static int cursor_fetch(struct as_cursor *c)
{
	const struct page_consumer pc = { keep_record, cursor_reset, c };
	char where[256];
	char *link = NULL, *next = NULL;
	int error;

	c->pages++;
	snprintf(where, sizeof(where), "%s page %ld", c->cls->name, c->pages);
	if ((error = get_page(c->st, c->url, where, c->cls->name, &pc, &c->bytes_in, &link)) < 0)
		goto done;

	c->window += c->n;
	c->empty_run = c->n ? 0 : c->empty_run + 1;
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
	free(link);
	free(next);
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
		/* Rows are yielded only from a page that arrived whole (see get_page). */
		if ((error = cursor_fetch(c)) < 0)
			return error;
	}
	*out = c->buf[c->next];
	c->buf[c->next++] = NULL;
	return 0;
}

/* filter (may be NULL) is taken over by the cursor. */
static void cursor_init(struct as_cursor *c, struct as_state *st, const struct cmb_as_class *cls, char *filter)
{
	memset(c, 0, sizeof(*c));
	c->base.next = cursor_next;
	c->base.ctx = c;
	c->st = st;
	c->cls = cls;
	c->filter = filter;
	c->select = cmb_as_class_select(cls);
	c->url = window_url(c);
	c->buf = xcalloc((size_t)st->page_size, sizeof(*c->buf));
}

static void cursor_clear(struct as_cursor *c)
{
	cursor_drop_page(c);
	free(c->buf);
	free(c->filter);
	free(c->select);
	free(c->url);
}

/* ---- small reads: rows of one page, kept until the page is complete ---- */

struct rowbuf {
	const char *where;
	struct cmb_odata_record *recs[MAX_SMALL_ROWS];
	size_t n;
};

static int rowbuf_keep(void *ctx, struct cmb_odata_record *rec)
{
	struct rowbuf *rb = ctx;
	if (rb->n == MAX_SMALL_ROWS) {
		cmb_odata_record_free(rec);
		return cmb_error_set(CMB_ETOOBIG, "%s: more than %d rows", rb->where, MAX_SMALL_ROWS);
	}
	rb->recs[rb->n++] = rec;
	return 0;
}

static void rowbuf_reset(void *ctx)
{
	struct rowbuf *rb = ctx;
	for (size_t i = 0; i < rb->n; i++)
		cmb_odata_record_free(rb->recs[i]);
	rb->n = 0;
}

static int count_record(void *ctx, struct cmb_odata_record *rec)
{
	(*(size_t *)ctx)++;
	cmb_odata_record_free(rec);
	return 0;
}

static void count_reset(void *ctx)
{
	*(size_t *)ctx = 0;
}

/* ---- the adapter table ------------------------------------------------- */

static void as_close(void *p)
{
	struct as_state *st = p;
	if (!st)
		return;
	cmb_site_auth_free(st->sauth);
	cmb_http_free(st->http);
	free(st->base);
	free(st->user);
	free(st->scheme);
	free(st->site_code);
	free(st->collection);
	free(st);
}

static int as_open(void **out, const struct cmb_config *cfg)
{
	struct as_state *st = xcalloc(1, sizeof(*st));
	int error;

	/* [sync] retry options and [site] rate_limit (docs/retry.md); 0 = the default / off. */
	st->policy = default_retry_policy;
	if (cfg->sync_max_attempts > 0)
		st->policy.max_attempts = (int)cfg->sync_max_attempts;
	if (cfg->sync_max_retry_wait > 0)
		st->policy.max_delay_s = (double)cfg->sync_max_retry_wait;
	if (cfg->sync_retry_budget > 0)
		st->policy.budget = cfg->sync_retry_budget;
	cmb_retry_budget_init(&st->budget, &st->policy);
	cmb_rate_limit_init(&st->rate, (double)cfg->site_rate_limit, (double)cfg->site_rate_burst);
	if (!cfg->site_url || !*cfg->site_url) {
		error = cmb_error_set(CMB_ECONFIG, "[site] url is not set");
		goto done;
	}
	st->base = xstrdup(cfg->site_url);
	for (size_t n = strlen(st->base); n && st->base[n - 1] == '/'; n--)
		st->base[n - 1] = '\0';
	st->page_size = cfg->site_page_size > 0 ? cfg->site_page_size : 1000;
	st->site_code = cfg->site_code ? xstrdup(cfg->site_code) : NULL;
	st->collection = cfg->site_collection && *cfg->site_collection ? xstrdup(cfg->site_collection) : NULL;

	struct cmb_http_opts opts = {
		.name = "site",
		.ca_file = cfg->site_ca_file,
		.connect_timeout_s = cfg->site_connect_timeout,
		.low_speed_time_s = cfg->site_timeout,
		.max_response = cfg->sync_max_response_mb > 0 ? (size_t)cfg->sync_max_response_mb << 20 : 0,
	};
	/* [site] auth, TLS pin and client certificate, [network] proxy: connector/auth.c, docs/credentials.md. */
	if ((error = cmb_site_auth_open(&st->sauth, &st->http, &opts, cfg)) < 0)
		goto done;
	if (cmb_site_auth_user(st->sauth))
		st->user = xstrdup(cmb_site_auth_user(st->sauth));
	if (cmb_site_auth_scheme(st->sauth))
		st->scheme = xstrdup(cmb_site_auth_scheme(st->sauth));

	*out = st;
	st = NULL;
	error = 0;
done:
	as_close(st);
	return error;
}

static void as_begin_cycle(void *p)
{
	struct as_state *st = p;
	cmb_retry_budget_init(&st->budget, &st->policy);
}

static int as_check(void *p)
{
	struct as_state *st = p;
	const struct cmb_as_class *sys = &cmb_as_classes[CMB_AS_SYSTEM];
	size_t rows = 0, bytes = 0;
	const struct page_consumer pc = { count_record, count_reset, &rows };
	char where[128];

	snprintf(where, sizeof(where), "%s check", sys->name);
	char *url = xasprintf("%s/wmi/%s?$select=" CMB_AS_KEY "&$top=1", st->base, sys->name);
	int error = get_page(st, url, where, sys->name, &pc, &bytes, NULL);
	free(url);
	return error;
}

static int as_read_devices(void *p, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats)
{
	struct as_state *st = p;
	struct as_cursor cursors[CMB_AS_NCLASSES];
	struct cmb_join_cursor *curp[CMB_AS_NCLASSES];
	struct as_cursor members;
	struct cmb_join_stats js;
	int error;

	for (int i = 0; i < CMB_AS_NCLASSES; i++) {
		cursor_init(&cursors[i], st, &cmb_as_classes[i], NULL);
		curp[i] = &cursors[i].base;
	}
	if (st->collection)
		cursor_init(&members, st, &cmb_as_membership,
			    filter_query(CMB_AS_MEMBERSHIP_FILTER_PROP, st->collection));
	error = cmb_join_run(curp, st->collection ? &members.base : NULL, cb, ctx, &js);

	if (stats) {
		memset(stats, 0, sizeof(*stats));
		stats->devices = js.devices;
		stats->filtered = js.filtered;
		for (int i = 0; i < CMB_AS_NCLASSES; i++) {
			stats->pages += cursors[i].pages;
			stats->bytes_in += cursors[i].bytes_in;
		}
		if (st->collection) {
			stats->pages += members.pages;
			stats->bytes_in += members.bytes_in;
		}
	}
	if (error == 0) {
		if (js.mismatches)
			cmb_warn("site: %ld properties had an unexpected JSON type and were read as absent",
				 js.mismatches);
		cmb_debug("site: %ld devices; rows %ld/%ld/%ld/%ld/%ld; %ld rows without a discovery record",
			  js.devices, js.rows[0], js.rows[1], js.rows[2], js.rows[3], js.rows[4], js.orphans);
		if (st->collection)
			cmb_debug("site: collection %s: %ld members, %ld devices left out as non-members, "
				  "%ld members without a discovery record", st->collection, js.member_rows,
				  js.filtered, js.members_unmatched);
	}
	if (st->budget.used)
		cmb_debug("site: %ld retries so far this cycle, %.2f s spent waiting", st->budget.used,
			  st->budget.waited_s);
	for (int i = 0; i < CMB_AS_NCLASSES; i++)
		cursor_clear(&cursors[i]);
	if (st->collection)
		cursor_clear(&members);
	return error;
}

/* ---- collections and the hierarchy ------------------------------------- */

static int string_empty(const struct cmb_odata_field *f)
{
	if (!f || f->type == CMB_ODATA_NULL)
		return 1;
	if (f->type != CMB_ODATA_STRING)
		return 0;
	for (size_t i = 0; i < f->len; i++)
		if (f->text[i] != ' ')
			return 0;
	return 1;
}

static char *field_string(const struct cmb_odata_record *rec, const char *name)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(rec, name);
	return f && f->type == CMB_ODATA_STRING && f->len ? xstrndup(f->text, f->len) : NULL;
}

/*
 * Reads SMS_Site and works out the hierarchy's top site: the one row with
 * an empty ReportingSiteCode; with several or none, this connector's own
 * site. *id and *name are the caller's.
 */
static int read_hierarchy(struct as_state *st, char **id, char **name)
{
	struct rowbuf *rb = xcalloc(1, sizeof(*rb));
	const struct page_consumer pc = { rowbuf_keep, rowbuf_reset, rb };
	char *url = xasprintf("%s/wmi/" CMB_AS_SITE_CLASS "?$select=" CMB_AS_SITE_SELECT, st->base);
	char *top_id = NULL, *top_name = NULL, *own_name = NULL;
	long tops = 0, rows = 0, own = 0;
	size_t bytes = 0;
	char where[64];
	int error = 0;

	for (int page = 1; url; page++) {
		char *link = NULL, *next = NULL;
		snprintf(where, sizeof(where), CMB_AS_SITE_CLASS " page %d", page);
		rb->where = where;
		if (page > MAX_SMALL_PAGES) {
			error = cmb_error_set(CMB_EPROTO, "%s: more than %d pages of sites", where, MAX_SMALL_PAGES);
			goto done;
		}
		if ((error = get_page(st, url, where, CMB_AS_SITE_CLASS, &pc, &bytes, &link)) < 0)
			goto done;
		for (size_t i = 0; i < rb->n; i++) {
			const struct cmb_odata_record *r = rb->recs[i];
			char *code = field_string(r, CMB_AS_SITE_CODE);
			rows++;
			if (!code)
				continue;
			if (string_empty(cmb_odata_record_get(r, CMB_AS_SITE_REPORTING)) && tops++ == 0) {
				top_id = xstrdup(code);
				top_name = field_string(r, CMB_AS_SITE_NAME);
			}
			if (st->site_code && strcasecmp(code, st->site_code) == 0 && !own++)
				own_name = field_string(r, CMB_AS_SITE_NAME);
			free(code);
		}
		rowbuf_reset(rb);
		if (link && !(next = cmb_http_resolve(url, link)))
			error = cmb_error_set(CMB_EPROTO, "%s: cannot resolve @odata.nextLink '%s' against %s", where,
					      link, url);
		else if (next && strcmp(next, url) == 0)
			error = cmb_error_set(CMB_EPROTO, "%s: @odata.nextLink points at the page itself (%s)", where,
					      next);
		free(link);
		free(url);
		url = next;
		if (error < 0)
			goto done;
	}

	if (tops == 1) {
		*id = top_id;
		*name = top_name ? top_name : xstrdup(top_id);
		top_id = top_name = NULL;
		goto done;
	}
	if (!st->site_code) {
		error = cmb_error_set(CMB_EPROTO, "%s: %ld of %ld sites report to no other site, and [connector] "
				      "site_code is not set to fall back on", CMB_AS_SITE_CLASS, tops, rows);
		goto done;
	}
	cmb_debug("site: %ld of %ld %s rows have an empty %s, so the top site is unclear; naming the hierarchy "
		  "after this connector's site %s%s", tops, rows, CMB_AS_SITE_CLASS, CMB_AS_SITE_REPORTING,
		  st->site_code, own ? "" : " (which SMS_Site does not list)");
	*id = xstrdup(st->site_code);
	*name = own_name ? own_name : xstrdup(st->site_code);
	own_name = NULL;
done:
	rowbuf_reset(rb);
	free(rb);
	free(url);
	free(top_id);
	free(top_name);
	free(own_name);
	return error;
}

/* Reads one collection by id into *c (the caller clears it, even on failure). */
static int read_collection(struct as_state *st, const char *id, struct cmb_site_collection *c)
{
	struct rowbuf *rb = xcalloc(1, sizeof(*rb));
	const struct page_consumer pc = { rowbuf_keep, rowbuf_reset, rb };
	char *filter = filter_query(CMB_AS_COLLECTION_KEY, id);
	char *url = xasprintf("%s/wmi/" CMB_AS_COLLECTION_CLASS "?%s$select=" CMB_AS_COLLECTION_SELECT, st->base,
			      filter);
	size_t bytes = 0;
	char where[128];
	int type, error;

	snprintf(where, sizeof(where), CMB_AS_COLLECTION_CLASS " %s", id);
	rb->where = where;
	if ((error = get_page(st, url, where, CMB_AS_COLLECTION_CLASS, &pc, &bytes, NULL)) < 0)
		goto done;
	if (rb->n == 0) {
		error = cmb_error_set(CMB_ENOTFOUND, "collection %s is not on the site (no %s row at %s)", id,
				      CMB_AS_COLLECTION_CLASS, st->base);
		goto done;
	}
	if (rb->n > 1) {
		error = cmb_error_set(CMB_EPROTO, "%s: site returned %zu rows for %s eq '%s' (was $filter ignored?)",
				      where, rb->n, CMB_AS_COLLECTION_KEY, id);
		goto done;
	}
	cmb_as_collection_fill(rb->recs[0], c, &type);
	if (!c->collection_id || strcasecmp(c->collection_id, id) != 0) {
		char *got = c->collection_id ? sanitise(c->collection_id, strlen(c->collection_id), 40, 1) : NULL;
		error = cmb_error_set(CMB_EPROTO, "%s: site returned collection '%s' (was $filter ignored?)", where,
				      got ? got : "(none)");
		free(got);
		goto done;
	}
	if (type == CMB_AS_COLLECTION_TYPE_USER) {
		error = cmb_error_set(CMB_EINVAL, "collection %s is a user collection; tenant attach targets device "
				      "collections", id);
		goto done;
	}
	if (type != CMB_AS_COLLECTION_TYPE_DEVICE) {
		error = type < 0 ? cmb_error_set(CMB_EPROTO, "%s: no CollectionType (2, device, expected)", where)
				 : cmb_error_set(CMB_EPROTO, "collection %s has CollectionType %d, not 2 (device)", id,
						 type);
		goto done;
	}
	error = 0;
done:
	rowbuf_reset(rb);
	free(rb);
	free(filter);
	free(url);
	return error;
}

static int as_read_collections(void *p, const char *const *ids, size_t n, struct cmb_site_collection **out)
{
	struct as_state *st = p;
	struct cmb_site_collection *colls = NULL;
	char *hid = NULL, *hname = NULL;
	int error = 0;

	if (n == 0) {
		*out = NULL;
		return 0;
	}
	colls = xcalloc(n, sizeof(*colls));
	for (size_t i = 0; i < n; i++)
		if ((error = read_collection(st, ids[i], &colls[i])) < 0)
			goto done;
	if ((error = read_hierarchy(st, &hid, &hname)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		colls[i].hierarchy_id = xstrdup(hid);
		colls[i].hierarchy_name = xstrdup(hname);
	}
	*out = colls;
	colls = NULL;
done:
	if (colls) {
		for (size_t i = 0; i < n; i++)
			cmb_site_collection_clear(&colls[i]);
		free(colls);
	}
	free(hid);
	free(hname);
	return error;
}

/* ---- beyond the table (adminservice.h) --------------------------------- */

void cmb_adminservice_set_retry_policy(void *p, const struct cmb_retry_policy *policy)
{
	struct as_state *st = p;
	st->policy = policy ? *policy : default_retry_policy;
	cmb_retry_budget_init(&st->budget, &st->policy);
}

const struct cmb_retry_budget *cmb_adminservice_retry_budget(const void *p)
{
	const struct as_state *st = p;
	return &st->budget;
}

void cmb_adminservice_set_rate_limit(void *p, double rate, double burst)
{
	struct as_state *st = p;
	cmb_rate_limit_init(&st->rate, rate, burst);
}

const struct cmb_site_adapter cmb_site_adminservice = {
	.version = CMB_SITE_ADAPTER_VERSION,
	.name = "adminservice",
	.open = as_open,
	.check = as_check,
	.begin_cycle = as_begin_cycle,
	.read_devices = as_read_devices,
	.read_collections = as_read_collections,
	.close = as_close,
	.ops_open = cmb_as_ops_open, .ops_close = cmb_as_ops_close, .initiate_operation = cmb_as_ops_initiate,
	.list_operations = cmb_as_ops_list, .operation_status = cmb_as_ops_status,
	.offline_clients = cmb_as_ops_offline_clients, .block_clients = cmb_as_ops_block,
};
