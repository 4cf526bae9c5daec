/*
 * cursor.h - one paged read of an AdminService class: its rows one at a
 * time, pages fetched as they are needed through the core's request loop.
 * Every read of the adapter goes through it (device classes, collection
 * membership, collections, sites, client operations, client status).
 *
 * Paging, tolerating both readings of the AdminService (docs/wire-format.md
 * §1): server-driven when the site sends @odata.nextLink (followed as
 * given, relative links resolved; it must stay on the site's origin, or
 * the read fails: credentials never go elsewhere); otherwise client-driven
 * with $top/$skip windows. A window that comes back short without a
 * nextLink does not end a read that has never seen one: a site may cap its
 * pages below $top without saying so, so only an empty window ends it.
 *
 * Memory: one page of rows (at most $top). A page's rows are handed out
 * only after the whole page arrived and parsed, so a retried page can never
 * yield a row twice. Never logs a credential.
 */
#ifndef CMB_AS_CURSOR_H
#define CMB_AS_CURSOR_H

#include <stddef.h>

#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/join.h"
#include "adapters/adminservice/odata.h"
#include "adapters/adminservice/schema.h"

struct cmb_as_cursor_opts {
	const char *entity;          /* entity set (class), as the site spells it */
	const char *filter;          /* $filter expression, not encoded (literals already quoted); NULL: none */
	const char *select;          /* $select list; NULL: every property */
	const char *orderby;         /* $orderby property; NULL: none (then the server's order must be stable) */
	long page_size;              /* $top of every request */
	long max_pages;              /* more is an error (a loop, or not the class it should be); 0: no limit */
	int by_key;                  /* a $filter on the key: at most a row or two, so a short window is the end */
};

struct cmb_as_cursor {
	struct cmb_join_cursor join; /* for cmb_join_run; join.ctx is the cursor */
	struct cmb_as_client *cl;    /* borrowed */
	char *entity;
	char *query;                 /* "$filter=..&$select=..&$orderby=.." encoded, or "" */
	long page_size, max_pages;
	int by_key;
	char *url;                   /* the next page; NULL at the end */
	long pages;                  /* page requests that succeeded or failed */
	size_t bytes_in;
	unsigned long long skip;     /* $skip of the current client-driven window */
	unsigned long long window;   /* rows received in the current $top window */
	int saw_next_link;
	int empty_run;               /* consecutive empty pages with a nextLink */
	struct cmb_odata_record **buf;
	size_t n, next;
	long rows;                   /* rows handed out */
	long failed_status;          /* HTTP status of the answer that failed the read, 0 for none */
	char *failed_message;        /* what that answer's body said (cmb_request_describe_body) */
};

/*
 * "PROP eq 'VALUE'": the string literal quoted as OData says (' doubled),
 * for opts.filter, which the cursor percent-encodes whole into the URL, so
 * no byte of value (&, #, %, +, a control character) can end the literal or
 * the query component early. Caller frees.
 */
char *cmb_as_filter_eq(const char *prop, const char *value);

/* Prepares the read (no I/O). The cursor borrows cl. */
void cmb_as_cursor_init(struct cmb_as_cursor *c, struct cmb_as_client *cl, const struct cmb_as_cursor_opts *o);
void cmb_as_cursor_clear(struct cmb_as_cursor *c);

/*
 * The next row in *out (the caller's: cmb_odata_record_free), or NULL at
 * the end of the class. 0, or a negative code with the message set (the
 * request loop's, the page parser's, a foreign nextLink, too many pages).
 */
int cmb_as_cursor_next(struct cmb_as_cursor *c, struct cmb_odata_record **out);

/*
 * Reads the rest of c and collects property `prop` of class rc from each
 * row as a ResourceID (an integer 0..UINT32_MAX; rows without one are
 * skipped), sorted ascending, into *ids_out (caller frees) and *n_out.
 * The cursor is left for the caller to clear. On error nothing is returned.
 */
int cmb_as_cursor_ids(struct cmb_as_cursor *c, const struct cmb_as_rclass *rc, size_t prop, uint32_t **ids_out,
		      size_t *n_out);

/* ResourceIDs being collected by cmb_as_cursor_ids_more (v: the caller frees). */
struct cmb_as_ids {
	uint32_t *v;
	size_t n, cap;
};

/*
 * cmb_as_cursor_ids a slice at a time: collects into ids the rows of at
 * most `pages` more pages of c (0: the rest), each page taken whole. 1 when
 * c is read to its end (ids->v then sorted ascending), 0 when pages remain
 * (call again), or a negative code (ids keeps what it had; the caller
 * drops the read).
 */
int cmb_as_cursor_ids_more(struct cmb_as_cursor *c, const struct cmb_as_rclass *rc, size_t prop, long pages,
			   struct cmb_as_ids *ids);

#endif
