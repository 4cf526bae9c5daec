/*
 * odata.h - a streaming parser for one OData v4 JSON collection page.
 *
 * The page is fed in whatever pieces the network delivers; each element of
 * the top-level "value" array is handed to a callback as soon as its closing
 * brace arrives, so memory is bounded by one record, never by one page.
 * "@odata.nextLink" and "@odata.context" are kept (before or after "value").
 *
 * Strings are passed through byte for byte: the JSON parser does not check
 * UTF-8 (one bad device name must never fail a page); mapping repairs them.
 * This file must never do I/O: it only sees bytes it is given.
 */
#ifndef CMB_AS_ODATA_H
#define CMB_AS_ODATA_H

#include <stddef.h>
#include <stdint.h>

#include "connector/base/limits.h"

/*
 * Default upper bound on one record (names and values), and on
 * nextLink/context. Beside it, from the same place: nesting deeper than
 * CMB_LIMIT_JSON_DEPTH_LEVELS and a string longer than
 * CMB_LIMIT_STRING_BYTES end the page (CMB_ETOOBIG, naming the limit).
 */
#define CMB_ODATA_MAX_RECORD CMB_LIMIT_RECORD_BYTES

enum cmb_odata_type {
	CMB_ODATA_NULL = 0,
	CMB_ODATA_BOOL,
	CMB_ODATA_NUMBER,   /* text is the number as written in the JSON */
	CMB_ODATA_STRING,   /* text is the decoded string (may hold any bytes, even NUL) */
	CMB_ODATA_LIST,     /* an array of scalars: text holds `items` NUL-terminated items, one after
			     * another (numbers as written, strings decoded, true/false; nulls left out) */
};

struct cmb_odata_field {
	char *name;
	enum cmb_odata_type type;
	char *text;         /* NUL-terminated; NULL for NULL and BOOL */
	size_t len;         /* bytes in text */
	int boolean;        /* for BOOL: 0 or 1 */
	size_t items;       /* for LIST: how many items text holds */
	uint32_t name_hash; /* the parser's, for finding a repeated name */
};

/*
 * One flat record: property name -> JSON scalar, or an array of scalars
 * (TargetResourceIDs). Nested objects, and arrays holding anything but
 * scalars, are skipped.
 */
struct cmb_odata_record {
	struct cmb_odata_field *fields;
	size_t n, cap;
	size_t bytes;       /* counted against the record limit */
};

/* The field called name (case-sensitive, as OData is), or NULL when absent. */
const struct cmb_odata_field *cmb_odata_record_get(const struct cmb_odata_record *rec, const char *name);
/*
 * The same, but when no field has exactly that name, one whose name differs
 * only in case (a second safety net: a site that spells a key otherwise
 * than its $metadata or the class reference). NULL when absent.
 */
const struct cmb_odata_field *cmb_odata_record_find(const struct cmb_odata_record *rec, const char *name);
/* Frees rec and everything in it; accepts NULL. */
void cmb_odata_record_free(struct cmb_odata_record *rec);

/*
 * Called once per element of "value", in order. rec becomes the callback's:
 * it must free it with cmb_odata_record_free() (now or later). Return 0 to go
 * on or a negative CMB_E* code (with the message set) to stop the parse.
 */
typedef int (*cmb_odata_record_cb)(void *ctx, struct cmb_odata_record *rec);

struct cmb_odata_parser;

/*
 * Creates a parser for one page. where names the page in messages
 * ("SMS_R_System page 3"; copied). max_record 0 means CMB_ODATA_MAX_RECORD.
 * *out is the caller's; free with cmb_odata_free().
 */
int cmb_odata_new(struct cmb_odata_parser **out, const char *where, size_t max_record,
		  cmb_odata_record_cb cb, void *ctx);
void cmb_odata_free(struct cmb_odata_parser *p);

/*
 * Feeds the next piece of the body. Returns 0, or CMB_EPROTO (malformed
 * JSON, wrong shape), CMB_ETOOBIG (a record over the limit) or the
 * callback's code, with a message naming the page and the byte offset.
 * After an error every further call returns the same code.
 */
int cmb_odata_feed(struct cmb_odata_parser *p, const void *data, size_t len);
/* Ends the page: a truncated body or a page without "value" is CMB_EPROTO. */
int cmb_odata_finish(struct cmb_odata_parser *p);

/* What the page said so far; NULL when absent. Valid until cmb_odata_free(). */
const char *cmb_odata_next_link(const struct cmb_odata_parser *p);
const char *cmb_odata_context(const struct cmb_odata_parser *p);
/* Elements of "value" delivered so far, and bytes fed. */
size_t cmb_odata_records(const struct cmb_odata_parser *p);
uint64_t cmb_odata_bytes(const struct cmb_odata_parser *p);

#endif
