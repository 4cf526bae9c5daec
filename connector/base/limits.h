/*
 * limits.h - every bound on what cmbridge accepts from a server, in one
 * place (docs/security.md, "Limits"). The site and the tenant are outside
 * the trust boundary: whatever they send is read within these bounds, and
 * each bound that is exceeded ends the read with an error naming it
 * (cmb_limit_error), never with a crash, an unbounded allocation or a
 * silently shortened value.
 *
 * The values are macros so that tables elsewhere (metadata.h's defaults)
 * can be built from them at compile time.
 */
#ifndef CMB_LIMITS_H
#define CMB_LIMITS_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

/* One HTTP response body ([sync] max_response_mb; this is its default). */
#define CMB_LIMIT_RESPONSE_BYTES ((size_t)256 << 20)
/* The part of an error body (a non-2xx answer) kept to explain it. */
#define CMB_LIMIT_ERROR_BODY_BYTES ((size_t)64 << 10)
/* Nesting of any JSON document read: OData pages, tenant and token replies, error bodies. */
#define CMB_LIMIT_JSON_DEPTH_LEVELS 64u
/* Records of one OData page: its $top, which [site] page_size bounds to this. */
#define CMB_LIMIT_PAGE_RECORDS 100000u
/* Notifications of one poll of the tenant's channel (docs/wire-format.md §8). */
#define CMB_LIMIT_NOTIFICATIONS 500u
/* One string value of an OData record (a property). */
#define CMB_LIMIT_STRING_BYTES ((size_t)64 << 10)
/* One OData record, names and values together. */
#define CMB_LIMIT_RECORD_BYTES ((size_t)1 << 20)
/* The site's $metadata document (adapters/adminservice/metadata.h takes its defaults from here). */
#define CMB_LIMIT_XML_BYTES ((size_t)256 << 20)       /* the document */
#define CMB_LIMIT_XML_DEPTH_LEVELS 64u                /* element nesting */
#define CMB_LIMIT_XML_NAME_BYTES ((size_t)1024)       /* a name, type or namespace */
#define CMB_LIMIT_XML_MARKUP_BYTES ((size_t)64 << 10) /* one tag, comment, CDATA section, PI */
#define CMB_LIMIT_XML_ATTRS 64u                       /* attributes of one element */
#define CMB_LIMIT_XML_PROPS ((size_t)4096)            /* properties (and keys) of one class */
#define CMB_LIMIT_XML_CLASSES ((size_t)1024)          /* classes kept */
#define CMB_LIMIT_XML_KEPT_BYTES ((size_t)16 << 20)   /* all that is kept */
/* One access token (Entra tokens are a few KiB; HTTP servers refuse headers far below 1 MiB). */
#define CMB_LIMIT_TOKEN_BYTES ((size_t)32 << 10)
/* A token endpoint's reply (the token and a few claims). */
#define CMB_LIMIT_TOKEN_REPLY_BYTES ((size_t)1 << 20)

enum cmb_limit {
	CMB_LIMIT_RESPONSE = 0,
	CMB_LIMIT_ERROR_BODY,
	CMB_LIMIT_JSON_DEPTH,
	CMB_LIMIT_PAGE,
	CMB_LIMIT_NOTIFICATION_PAGE,
	CMB_LIMIT_STRING,
	CMB_LIMIT_RECORD,
	CMB_LIMIT_XML,
	CMB_LIMIT_XML_DEPTH,
	CMB_LIMIT_TOKEN,
	CMB_LIMIT_TOKEN_REPLY,
	CMB_LIMIT_COUNT
};

struct cmb_limit_info {
	const char *name;            /* "JSON depth": named in every message */
	size_t value;                /* the default bound */
	const char *unit;            /* "bytes", "levels", "records" */
	const char *option;          /* the option that sets it, or NULL when fixed */
};

/* The table row of l (never NULL for a valid l). */
const struct cmb_limit_info *cmb_limit_get(enum cmb_limit l);

/*
 * Sets the error for an exceeded limit and returns CMB_ETOOBIG:
 * "<what> exceeds the limit of <N> <unit> (<name>[, <option>],
 * connector/base/limits.h)", where what is fmt and N is limit (0: the
 * table's value; configured bounds pass their own).
 */
int cmb_limit_error(enum cmb_limit l, size_t limit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Checks a JSON text before a tree parser sees it (yajl's tree is built
 * and freed recursively, so a deep document would overflow the stack):
 * 0 when its nesting stays within max_depth (0: CMB_LIMIT_JSON_DEPTH_LEVELS),
 * else the CMB_ETOOBIG of cmb_limit_error with what as its subject. The
 * text need not be valid JSON; the parser judges that afterwards.
 * *nul_escapes (may be NULL) gets the number of \u0000 escapes in strings.
 */
int cmb_limit_json_scan(const char *data, size_t len, unsigned max_depth, const char *what, size_t *nul_escapes);

/*
 * yajl_tree_parse within the limits, for every JSON reply read whole (the
 * tenant's, the token endpoint's, the site's method replies, error
 * bodies): the nesting is checked first (cmb_limit_json_scan), and a
 * \u0000 escape inside a string is read as U+FFFD, so a NUL can never cut
 * a string short where C sees it (yajl's tree keeps no lengths). data is
 * len bytes (need not be NUL-terminated). Returns 0 with *out set (the
 * caller's: yajl_tree_free), CMB_ETOOBIG with the message set (what names
 * the document), or CMB_EPROTO with yajl's reason in errbuf and the
 * message left to the caller (a cut reply may be transient to it).
 */
int cmb_limit_json_tree(const char *data, size_t len, const char *what, yajl_val *out, char *errbuf,
			size_t errlen);

#endif
