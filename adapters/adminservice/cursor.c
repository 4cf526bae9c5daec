/*
 * cursor.c - one paged read of an AdminService class (see cursor.h).
 */
#include "adapters/adminservice/cursor.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/util.h"
#include "connector/transport/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An empty page that still has a nextLink is legal; this many in a row is a loop. */
#define MAX_EMPTY_PAGES 100

char *cmb_as_filter_eq(const char *prop, const char *value)
{
	struct cmb_buf b = CMB_BUF_INIT(2 * (strlen(prop) + strlen(value)) + 16);
	cmb_buf_printf(&b, "%s eq '", prop);
	for (const char *v = value; *v; v++)
		cmb_buf_add(&b, *v == '\'' ? "''" : v, *v == '\'' ? 2 : 1);
	cmb_buf_addstr(&b, "'");
	return cmb_buf_detach(&b, NULL);
}

/* ---- one page ------------------------------------------------------------ */

/* One page being received: a fresh parser for every attempt, rows kept until the page is whole. */
struct page {
	struct cmb_as_cursor *c;
	char where[256];
	struct cmb_odata_parser *parser;
	int parser_rc;
	int checked;                 /* the content type was looked at */
};

static void drop_rows(struct cmb_as_cursor *c)
{
	for (size_t i = c->next; i < c->n; i++)
		cmb_odata_record_free(c->buf[i]);
	c->n = c->next = 0;
}

static int keep_row(void *ctx, struct cmb_odata_record *rec)
{
	struct cmb_as_cursor *c = ctx;
	if (c->n >= (size_t)c->page_size) {
		cmb_odata_record_free(rec);
		/* The one-page memory bound relies on $top being honoured. */
		return cmb_limit_error(CMB_LIMIT_PAGE, (size_t)c->page_size,
				       "%s page %ld: site returned more than $top=%ld rows in one page, which", c->entity,
				       c->pages, c->page_size);
	}
	c->buf[c->n++] = rec;
	return 0;
}

static void page_reset(void *ctx)
{
	struct page *pg = ctx;
	drop_rows(pg->c);
	cmb_odata_free(pg->parser);
	pg->parser = NULL;
	pg->checked = 0;
	pg->parser_rc = cmb_odata_new(&pg->parser, pg->where, 0, keep_row, pg->c);
}

static int page_sink(void *ctx, long status, const char *content_type, const char *data, size_t len)
{
	struct page *pg = ctx;
	if (pg->parser_rc < 0)
		return pg->parser_rc;
	if (!pg->checked) {
		pg->checked = 1;
		if (!cmb_http_is_json(content_type)) {
			char *first = cmb_request_sanitise(data, len, 120, 1);
			int code = cmb_error_set(CMB_EPROTO, "%s: site answered HTTP %ld with Content-Type '%s', not JSON "
						 "(a proxy or login page?): '%s'", pg->where, status,
						 content_type ? content_type : "none", first);
			free(first);
			return code;
		}
	}
	return cmb_odata_feed(pg->parser, data, len);
}

static int page_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct page *pg = ctx;
	if (pg->parser_rc < 0)
		return pg->parser_rc;
	if (!pg->checked && !cmb_http_is_json(resp->content_type))
		return cmb_error_set(CMB_EPROTO, "%s: site answered HTTP %ld with Content-Type '%s' and no body",
				     pg->where, resp->status, resp->content_type ? resp->content_type : "none");
	/* A complete transfer that ends inside the JSON is a malformed page: final, not retried. */
	return cmb_odata_finish(pg->parser);
}

/* ---- windows and links ------------------------------------------------- */

static char *window_url(const struct cmb_as_cursor *c)
{
	const char *sep = c->query[0] ? "&" : "";
	if (c->skip)
		return xasprintf("%s/wmi/%s?%s%s$top=%ld&$skip=%llu", c->cl->conn->base, c->entity, c->query, sep,
				 c->page_size, c->skip);
	return xasprintf("%s/wmi/%s?%s%s$top=%ld", c->cl->conn->base, c->entity, c->query, sep, c->page_size);
}

/* Works out the next URL from what page c->url brought (its rows are in c->buf, link may be NULL). */
static int next_url(struct cmb_as_cursor *c, const char *where, const char *link, char **out)
{
	*out = NULL;
	c->window += c->n;
	c->empty_run = c->n ? 0 : c->empty_run + 1;
	if (link) {
		char *next = cmb_http_resolve(c->url, link);
		if (!next) {
			/* The site's text, shown printable: a link is no way to put control bytes into a log. */
			char *shown = cmb_str_printable(link, strlen(link), 300, 1);
			int rc = cmb_error_set(CMB_EPROTO, "%s: cannot resolve @odata.nextLink '%s' against %s", where, shown,
					       c->url);
			free(shown);
			return rc;
		}
		if (!cmb_http_same_origin(next, c->cl->conn->base)) {
			int rc = cmb_error_set(CMB_EPROTO, "%s: @odata.nextLink leads to %s, outside the site's origin "
					       "(%s): not followed, and the read is incomplete", where, next,
					       c->cl->conn->base);
			free(next);
			return rc;
		}
		if (strcmp(next, c->url) == 0) {
			int rc = cmb_error_set(CMB_EPROTO, "%s: @odata.nextLink points at the page itself (%s)", where,
					       next);
			free(next);
			return rc;
		}
		if (c->empty_run >= MAX_EMPTY_PAGES) {
			free(next);
			return cmb_error_set(CMB_EPROTO, "%s: %d empty pages in a row, each with a nextLink", where,
					     c->empty_run);
		}
		c->saw_next_link = 1;
		*out = next;
		return 0;
	}
	if (c->window == 0 || c->n == 0)
		return 0;       /* an empty window, or an empty last page: the end */
	if ((c->saw_next_link || c->by_key) && c->window < (unsigned long long)c->page_size)
		return 0;       /* a server that pages by nextLink and sent none, or a lookup by key: the end */
	/*
	 * A full window, or a short one from a site that never sent a nextLink
	 * (it may cap its pages below $top): ask for the next window; only an
	 * empty one ends the read.
	 */
	c->skip += c->window;
	c->window = 0;
	*out = window_url(c);
	return 0;
}

/* Requests the page at c->url into the buffer and moves c->url on. */
static int fetch(struct cmb_as_cursor *c)
{
	static const char *const headers[] = { "Accept: application/json", NULL };
	struct page pg = { .c = c };
	char resource[160];
	char *next = NULL;
	int error;

	c->pages++;
	if (c->max_pages > 0 && c->pages > c->max_pages)
		return cmb_error_set(CMB_EPROTO, "%s: more than %ld pages (a paging loop, or not the class it should be)",
				     c->entity, c->max_pages);
	snprintf(pg.where, sizeof(pg.where), "%s page %ld", c->entity, c->pages);
	snprintf(resource, sizeof(resource), "class %s", c->entity);
	const struct cmb_request rq = {
		.url = c->url, .what = pg.where, .resource = resource, .headers = headers, .sink = page_sink,
		.sink_ctx = &pg, .reset = page_reset, .finish = page_finish, .finish_ctx = &pg,
	};
	struct cmb_http_response resp;
	size_t before = c->cl->counters.bytes_in;
	error = cmb_request(&c->cl->ep, &rq, &resp, &c->cl->counters);
	c->bytes_in += c->cl->counters.bytes_in - before;
	if (error < 0 && resp.status >= 400) {
		/* Kept so the adapter can learn from it (a 400 naming a property, a 404 for a class). */
		c->failed_status = resp.status;
		free(c->failed_message);
		c->failed_message = cmb_request_describe_body(&resp);
	}
	cmb_http_response_clear(&resp);
	if (error == 0)
		error = next_url(c, pg.where, cmb_odata_next_link(pg.parser), &next);
	cmb_odata_free(pg.parser);
	if (error < 0) {
		drop_rows(c);
		return error;
	}
	free(c->url);
	c->url = next;
	return 0;
}

static int join_next(struct cmb_join_cursor *cur, struct cmb_odata_record **out)
{
	return cmb_as_cursor_next(cur->ctx, out);
}

int cmb_as_cursor_next(struct cmb_as_cursor *c, struct cmb_odata_record **out)
{
	int error;
	while (c->next == c->n) {
		c->n = c->next = 0;
		if (!c->url) {
			*out = NULL;
			return 0;
		}
		/* Rows are handed out only from a page that arrived whole. */
		if ((error = fetch(c)) < 0)
			return error;
	}
	*out = c->buf[c->next];
	c->buf[c->next++] = NULL;
	c->rows++;
	return 0;
}

void cmb_as_cursor_init(struct cmb_as_cursor *c, struct cmb_as_client *cl, const struct cmb_as_cursor_opts *o)
{
	memset(c, 0, sizeof(*c));
	c->join.next = join_next;
	c->join.ctx = c;
	c->cl = cl;
	c->entity = xstrdup(o->entity);
	c->page_size = o->page_size > 0 ? o->page_size : 1000;
	c->max_pages = o->max_pages;
	c->by_key = o->by_key;
	struct cmb_buf q = CMB_BUF_INIT((size_t)1 << 20);
	if (o->filter) {
		char *enc = cmb_http_escape(o->filter);
		cmb_buf_printf(&q, "$filter=%s", enc);
		free(enc);
	}
	if (o->select)
		cmb_buf_printf(&q, "%s$select=%s", q.len ? "&" : "", o->select);
	if (o->orderby)
		cmb_buf_printf(&q, "%s$orderby=%s", q.len ? "&" : "", o->orderby);
	c->query = q.data ? cmb_buf_detach(&q, NULL) : xstrdup("");
	c->url = window_url(c);
	c->buf = xcalloc((size_t)c->page_size, sizeof(*c->buf));
}

void cmb_as_cursor_clear(struct cmb_as_cursor *c)
{
	if (!c->buf && !c->url && !c->entity)
		return;
	drop_rows(c);
	free(c->buf);
	free(c->entity);
	free(c->query);
	free(c->url);
	free(c->failed_message);
	memset(c, 0, sizeof(*c));
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int cmb_as_cursor_ids_more(struct cmb_as_cursor *c, const struct cmb_as_rclass *rc, size_t prop, long pages,
			   struct cmb_as_ids *ids)
{
	long stop = pages > 0 ? c->pages + pages : 0;
	struct cmb_odata_record *rec = NULL;
	int rc_next;
	for (;;) {
		/* A slice ends between pages: every row of the last page fetched is taken. */
		if (stop && c->next == c->n && c->pages >= stop && c->url)
			return 0;
		if ((rc_next = cmb_as_cursor_next(c, &rec)) < 0)
			return rc_next;
		if (!rec)
			break;
		long long rid;
		if (cmb_as_value_integer(cmb_as_record_get(rc, rec, prop), &rid) == 0 && rid >= 0 && rid <= UINT32_MAX) {
			if (ids->n == ids->cap) {
				ids->cap = ids->cap ? ids->cap * 2 : 256;
				ids->v = xrealloc(ids->v, ids->cap * sizeof(*ids->v));
			}
			ids->v[ids->n++] = (uint32_t)rid;
		}
		cmb_odata_record_free(rec);
	}
	if (ids->n)
		qsort(ids->v, ids->n, sizeof(*ids->v), cmp_u32);
	return 1;
}

int cmb_as_cursor_ids(struct cmb_as_cursor *c, const struct cmb_as_rclass *rc, size_t prop, uint32_t **ids_out,
		      size_t *n_out)
{
	struct cmb_as_ids ids = { 0 };
	int rc_more = cmb_as_cursor_ids_more(c, rc, prop, 0, &ids);
	if (rc_more < 0) {
		free(ids.v);
		return rc_more;
	}
	*ids_out = ids.v;
	*n_out = ids.n;
	return 0;
}
