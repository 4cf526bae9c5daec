/*
 * limits.c - the table of limits (limits.h), their one message, and the
 * bounded JSON tree parse every whole-document reply goes through.
 *
 * Never logs; never keeps what it scans.
 */
#include "connector/base/limits.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct cmb_limit_info table[CMB_LIMIT_COUNT] = {
	[CMB_LIMIT_RESPONSE] = { "response size", CMB_LIMIT_RESPONSE_BYTES, "bytes", "[sync] max_response_mb" },
	[CMB_LIMIT_ERROR_BODY] = { "error body", CMB_LIMIT_ERROR_BODY_BYTES, "bytes", NULL },
	[CMB_LIMIT_JSON_DEPTH] = { "JSON depth", CMB_LIMIT_JSON_DEPTH_LEVELS, "levels", NULL },
	[CMB_LIMIT_PAGE] = { "records per page", CMB_LIMIT_PAGE_RECORDS, "records", "[site] page_size" },
	[CMB_LIMIT_NOTIFICATION_PAGE] = { "notifications per poll", CMB_LIMIT_NOTIFICATIONS, "notifications", NULL },
	[CMB_LIMIT_STRING] = { "string length", CMB_LIMIT_STRING_BYTES, "bytes", NULL },
	[CMB_LIMIT_RECORD] = { "record size", CMB_LIMIT_RECORD_BYTES, "bytes", NULL },
	[CMB_LIMIT_XML] = { "XML size", CMB_LIMIT_XML_BYTES, "bytes", NULL },
	[CMB_LIMIT_XML_DEPTH] = { "XML depth", CMB_LIMIT_XML_DEPTH_LEVELS, "levels", NULL },
	[CMB_LIMIT_TOKEN] = { "token size", CMB_LIMIT_TOKEN_BYTES, "bytes", NULL },
	[CMB_LIMIT_TOKEN_REPLY] = { "token reply", CMB_LIMIT_TOKEN_REPLY_BYTES, "bytes", NULL },
};

const struct cmb_limit_info *cmb_limit_get(enum cmb_limit l)
{
	return (unsigned)l < CMB_LIMIT_COUNT ? &table[l] : &table[CMB_LIMIT_RESPONSE];
}

int cmb_limit_error(enum cmb_limit l, size_t limit, const char *fmt, ...)
{
	const struct cmb_limit_info *li = cmb_limit_get(l);
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	int rc = cmb_error_set(CMB_ETOOBIG, "%s exceeds the limit of %zu %s (%s%s%s, connector/base/limits.h)", what,
			       limit ? limit : li->value, li->unit, li->name, li->option ? ", " : "",
			       li->option ? li->option : "");
	free(what);
	return rc;
}

/* 1 when data[i..] starts a \u0000 escape (i is just after the backslash). */
static int nul_escape_at(const char *data, size_t len, size_t i)
{
	return i + 5 <= len && data[i] == 'u' && memcmp(data + i + 1, "0000", 4) == 0;
}

int cmb_limit_json_scan(const char *data, size_t len, unsigned max_depth, const char *what, size_t *nul_escapes)
{
	unsigned depth = 0, max = max_depth ? max_depth : CMB_LIMIT_JSON_DEPTH_LEVELS;
	size_t nuls = 0;
	int in_string = 0;
	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (in_string) {
			if (c == '\\') {
				if (i + 1 < len && nul_escape_at(data, len, i + 1))
					nuls++;
				i++; /* the escaped character, whatever it is */
			} else if (c == '"') {
				in_string = 0;
			}
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return cmb_limit_error(CMB_LIMIT_JSON_DEPTH, max, "%s: nesting", what);
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	if (nul_escapes)
		*nul_escapes = nuls;
	return 0;
}

int cmb_limit_json_tree(const char *data, size_t len, const char *what, yajl_val *out, char *errbuf, size_t errlen)
{
	size_t nuls = 0;
	int rc = cmb_limit_json_scan(data, len, 0, what, &nuls);
	if (rc < 0)
		return rc;
	/* A NUL-terminated copy; each \u0000 becomes \ufffd (same length), so no string ends early. */
	char *text = xmalloc(len + 1);
	memcpy(text, data, len);
	text[len] = '\0';
	for (size_t i = 0, in_string = 0; nuls && i < len; i++) {
		if (!in_string) {
			in_string = text[i] == '"';
		} else if (text[i] == '"') {
			in_string = 0;
		} else if (text[i] == '\\') {
			if (nul_escape_at(text, len, i + 1))
				memcpy(text + i + 2, "fffd", 4);
			i++;
		}
	}
	if (errlen)
		errbuf[0] = '\0';
	yajl_val root = yajl_tree_parse(text, errbuf, errlen);
	free(text);
	if (!root)
		return CMB_EPROTO;
	*out = root;
	return 0;
}
