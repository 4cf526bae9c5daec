/*
 * odata.c - streaming OData v4 page parser on the yajl 2.1 event parser.
 *
 * The parser is a small state machine over yajl's callbacks: the top-level
 * object, its "value" array, one record object inside it, and a counter for
 * skipping nested values nobody asked for. Only one record is ever held.
 * Never does I/O; never logs (errors go back through cmb_error_set()).
 *
 * The record being read lives in buffers the parser reuses from one record
 * to the next (a slot per property, its names and values one after another
 * in one string buffer); when it closes, it is copied into a single
 * allocation, so a record costs one malloc however many properties it has.
 */
#include "adapters/adminservice/odata.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

enum where_in_page {
	AT_START = 0,     /* before the top-level value */
	AT_TOP,           /* inside the top-level object */
	AT_VALUE,         /* inside "value": expecting an element */
	AT_RECORD,        /* inside one element */
	AT_LIST,          /* inside an array that is a property of the element */
	AT_END,           /* top-level object closed */
};

enum top_key { KEY_OTHER = 0, KEY_VALUE, KEY_NEXTLINK, KEY_CONTEXT };

#define NO_TEXT SIZE_MAX

/* One property of the record being read; offsets into the parser's strings. */
struct slot {
	size_t name;               /* NUL-terminated name */
	size_t text;               /* NUL-terminated text, or NO_TEXT */
	size_t len;
	size_t items;
	enum cmb_odata_type type;
	int boolean;
	uint32_t name_hash;
};

struct cmb_odata_parser {
	yajl_handle h;
	char *where;
	size_t max_record;
	cmb_odata_record_cb cb;
	void *ctx;

	enum where_in_page at;
	unsigned depth;            /* objects and arrays open, for the JSON depth limit */
	enum top_key key;          /* the last key read at AT_TOP */
	int skip;                  /* depth of a nested value being skipped; 0 = none */
	int seen_value;            /* "value" array seen (and closed) */
	struct cmb_buf field;      /* the last key read at AT_RECORD */
	int have_field;            /* field holds a key not yet used */
	uint32_t field_hash;       /* its name_hash */
	struct slot *slots;        /* the record being read: its properties, */
	size_t nslots, slots_cap;
	struct cmb_buf strings;    /* their names and values, */
	size_t rec_bytes;          /* and what they count against the record limit */
	struct cmb_buf list;       /* AT_LIST: the items so far */
	size_t list_items;
	int list_bad;              /* the array held an object or an array: dropped */

	char *next_link;
	char *context;
	size_t records;
	uint64_t fed_before;       /* bytes given to yajl in earlier feeds */
	int error;                 /* sticky error code */
};

const struct cmb_odata_field *cmb_odata_record_get(const struct cmb_odata_record *rec, const char *name)
{
	if (!rec)
		return NULL;
	for (size_t i = 0; i < rec->n; i++)
		if (strcmp(rec->fields[i].name, name) == 0)
			return &rec->fields[i];
	return NULL;
}

const struct cmb_odata_field *cmb_odata_record_find(const struct cmb_odata_record *rec, const char *name)
{
	const struct cmb_odata_field *f = cmb_odata_record_get(rec, name);
	if (f || !rec)
		return f;
	for (size_t i = 0; i < rec->n; i++)
		if (strcasecmp(rec->fields[i].name, name) == 0)
			return &rec->fields[i];
	return NULL;
}

void cmb_odata_record_free(struct cmb_odata_record *rec)
{
	/* one allocation: the record, its fields and their strings (record_take) */
	free(rec);
}

static uint64_t offset_now(const struct cmb_odata_parser *p)
{
	return p->fed_before + yajl_get_bytes_consumed(p->h);
}

/* Records an error at the current position and returns 0 so yajl stops. */
static int fail(struct cmb_odata_parser *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct cmb_odata_parser *p, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	p->error = cmb_error_set(code, "%s, byte %llu: %s", p->where,
				 (unsigned long long)offset_now(p), what);
	free(what);
	return 0;
}

/* Opens one more object or array: 1, or 0 with the error set past the JSON depth limit. */
static int nest(struct cmb_odata_parser *p)
{
	if (++p->depth <= CMB_LIMIT_JSON_DEPTH_LEVELS)
		return 1;
	p->error = cmb_limit_error(CMB_LIMIT_JSON_DEPTH, 0, "%s, byte %llu: nesting", p->where,
				   (unsigned long long)offset_now(p));
	return 0;
}

static int fail_too_big(struct cmb_odata_parser *p)
{
	return fail(p, CMB_ETOOBIG, "value[%zu] is larger than the record limit of %zu bytes",
		    p->records, p->max_record);
}

/* A new record starts: the buffers of the last one are reused. */
static void record_start(struct cmb_odata_parser *p)
{
	p->nslots = 0;
	p->rec_bytes = 0;
	cmb_buf_reset(&p->strings);
}

/* Appends len bytes and a NUL to the record's strings; their offset, or NO_TEXT past the limit. */
static size_t strings_add(struct cmb_odata_parser *p, const char *s, size_t len)
{
	size_t at = p->strings.len;
	if (cmb_buf_add(&p->strings, s, len) < 0 || cmb_buf_add(&p->strings, "", 1) < 0)
		return NO_TEXT;
	return at;
}

/* The slot named like the pending key, or a new one holding that name; NULL past the limit. */
static struct slot *slot_for_field(struct cmb_odata_parser *p, size_t name_len)
{
	const char *name = p->field.data;
	for (size_t i = 0; i < p->nslots; i++) {
		struct slot *f = &p->slots[i];
		if (f->name_hash == p->field_hash && strcmp(p->strings.data + f->name, name) == 0)
			return f;
	}
	size_t at = strings_add(p, name, name_len);
	if (at == NO_TEXT)
		return NULL;
	if (p->nslots == p->slots_cap) {
		p->slots_cap = p->slots_cap ? p->slots_cap * 2 : 16;
		p->slots = xrealloc(p->slots, p->slots_cap * sizeof(*p->slots));
	}
	struct slot *f = &p->slots[p->nslots++];
	f->name = at;
	f->name_hash = p->field_hash;
	return f;
}

/* Adds a scalar to the current record; a repeated name replaces the earlier value. */
static int record_add(struct cmb_odata_parser *p, enum cmb_odata_type type,
		      const char *text, size_t len, int boolean)
{
	size_t name_len = strlen(p->field.data);
	size_t cost = name_len + len + 32;
	if (cost > p->max_record || p->rec_bytes > p->max_record - cost)
		return fail_too_big(p);
	struct slot *f = slot_for_field(p, name_len);
	size_t at = f && text ? strings_add(p, text, len) : NO_TEXT;
	if (!f || (text && at == NO_TEXT))
		return fail_too_big(p); /* not reached: the strings are within rec_bytes */
	p->have_field = 0;
	p->rec_bytes += cost;
	f->type = type;
	f->text = at;
	f->len = text ? len : 0;
	f->boolean = type == CMB_ODATA_LIST ? 0 : boolean;
	f->items = type == CMB_ODATA_LIST ? (size_t)boolean : 0;
	return 1;
}

/* The record read, in one allocation: fields, then the strings they point into. */
static struct cmb_odata_record *record_take(const struct cmb_odata_parser *p)
{
	size_t n = p->nslots, slen = p->strings.len;
	struct cmb_odata_record *r = xmalloc(sizeof(*r) + n * sizeof(*r->fields) + slen + 1);
	struct cmb_odata_field *fields = (struct cmb_odata_field *)(r + 1);
	char *s = (char *)(fields + n);
	if (slen)
		memcpy(s, p->strings.data, slen);
	s[slen] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct slot *from = &p->slots[i];
		fields[i] = (struct cmb_odata_field){
			.name = s + from->name,
			.type = from->type,
			.text = from->text == NO_TEXT ? NULL : s + from->text,
			.len = from->len,
			.boolean = from->boolean,
			.items = from->items,
			.name_hash = from->name_hash,
		};
	}
	r->fields = n ? fields : NULL;
	r->n = r->cap = n;
	r->bytes = p->rec_bytes;
	return r;
}

/* One item of a property's array: kept as text, NUL-terminated. */
static int list_add(struct cmb_odata_parser *p, enum cmb_odata_type type, const unsigned char *s, size_t len,
		    int boolean)
{
	if (type == CMB_ODATA_NULL)
		return 1;
	if (type == CMB_ODATA_BOOL) {
		s = (const unsigned char *)(boolean ? "true" : "false");
		len = strlen((const char *)s);
	}
	if (cmb_buf_add(&p->list, s, len) < 0 || cmb_buf_add(&p->list, "", 1) < 0)
		return fail_too_big(p);
	p->list_items++;
	return 1;
}

/* Keeps a top-level string ("@odata.nextLink", "@odata.context"). */
static int keep_top_string(struct cmb_odata_parser *p, char **dst, const char *name,
			   const unsigned char *s, size_t len)
{
	if (len > p->max_record)
		return fail(p, CMB_ETOOBIG, "'%s' is longer than %zu bytes", name, p->max_record);
	free(*dst);
	*dst = xstrndup((const char *)s, len);
	return 1;
}

/* A scalar anywhere: s/len for strings and numbers, NULL for null and booleans. */
static int on_scalar(struct cmb_odata_parser *p, enum cmb_odata_type type,
		     const unsigned char *s, size_t len, int boolean)
{
	if (p->skip)
		return 1;
	if (type == CMB_ODATA_STRING && len > CMB_LIMIT_STRING_BYTES && (p->at == AT_RECORD || p->at == AT_LIST)) {
		p->error = cmb_limit_error(CMB_LIMIT_STRING, 0, "%s, byte %llu: value[%zu].%s, a string of %zu bytes,",
					   p->where, (unsigned long long)offset_now(p), p->records,
					   p->have_field ? p->field.data : "(list item)", len);
		return 0;
	}
	switch (p->at) {
	case AT_START:
		return fail(p, CMB_EPROTO, "the page is not a JSON object");
	case AT_TOP:
		switch (p->key) {
		case KEY_VALUE:
			return fail(p, CMB_EPROTO, "'value' is not an array");
		case KEY_NEXTLINK:
			if (type == CMB_ODATA_NULL)
				return 1;
			if (type != CMB_ODATA_STRING)
				return fail(p, CMB_EPROTO, "'@odata.nextLink' is not a string");
			if (len == 0)
				return fail(p, CMB_EPROTO, "'@odata.nextLink' is empty");
			return keep_top_string(p, &p->next_link, "@odata.nextLink", s, len);
		case KEY_CONTEXT:
			if (type == CMB_ODATA_STRING)
				return keep_top_string(p, &p->context, "@odata.context", s, len);
			return 1;
		default:
			return 1;
		}
	case AT_VALUE:
		return fail(p, CMB_EPROTO, "value[%zu] is not an object", p->records);
	case AT_RECORD:
		return record_add(p, type, (const char *)s, len, boolean);
	case AT_LIST:
		return list_add(p, type, s, len, boolean);
	case AT_END:
		break;
	}
	return fail(p, CMB_EPROTO, "unexpected value after the page");
}

static int cb_null(void *ctx)
{
	return on_scalar(ctx, CMB_ODATA_NULL, NULL, 0, 0);
}

static int cb_boolean(void *ctx, int b)
{
	return on_scalar(ctx, CMB_ODATA_BOOL, NULL, 0, b ? 1 : 0);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	return on_scalar(ctx, CMB_ODATA_NUMBER, (const unsigned char *)s, len, 0);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	return on_scalar(ctx, CMB_ODATA_STRING, s, len, 0);
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct cmb_odata_parser *p = ctx;
	if (p->skip)
		return 1;
	if (p->at == AT_TOP) {
		if (len == 5 && memcmp(s, "value", 5) == 0) {
			if (p->seen_value)
				return fail(p, CMB_EPROTO, "'value' appears twice");
			p->key = KEY_VALUE;
		} else if (len == 15 && memcmp(s, "@odata.nextLink", 15) == 0) {
			p->key = KEY_NEXTLINK;
		} else if (len == 14 && memcmp(s, "@odata.context", 14) == 0) {
			p->key = KEY_CONTEXT;
		} else {
			p->key = KEY_OTHER;
		}
		return 1;
	}
	/* AT_RECORD: the only other place yajl can give a key */
	if (len > p->max_record)
		return fail_too_big(p);
	cmb_buf_reset(&p->field);
	if (cmb_buf_add(&p->field, s, len) < 0)
		return fail_too_big(p);
	p->have_field = 1;
	/* FNV-1a: a repeated name is found without comparing every name before it. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 16777619u;
	p->field_hash = h;
	return 1;
}

/*
 * An object or array opens: where it may (the page, value, a record, a list
 * property) the parser moves in; anything else nested is skipped whole.
 */
static int on_open(struct cmb_odata_parser *p, int array)
{
	if (!nest(p))
		return 0;
	if (p->skip) {
		p->skip++;
		return 1;
	}
	switch (p->at) {
	case AT_START:
		if (array)
			return fail(p, CMB_EPROTO, "the page is not a JSON object");
		p->at = AT_TOP;
		return 1;
	case AT_TOP:
		if (p->key == KEY_VALUE && !array)
			return fail(p, CMB_EPROTO, "'value' is not an array");
		if (p->key == KEY_VALUE) {
			p->at = AT_VALUE;
			return 1;
		}
		if (p->key == KEY_NEXTLINK)
			return fail(p, CMB_EPROTO, "'@odata.nextLink' is not a string");
		p->skip = 1;
		return 1;
	case AT_VALUE:
		if (array)
			return fail(p, CMB_EPROTO, "value[%zu] is not an object", p->records);
		record_start(p);
		p->at = AT_RECORD;
		return 1;
	case AT_RECORD:
		if (!array) {
			/* A nested object: not something the class table selects. */
			p->have_field = 0;
			p->skip = 1;
			return 1;
		}
		/* An array property (TargetResourceIDs): its scalar items are kept. */
		cmb_buf_reset(&p->list);
		p->list_items = 0;
		p->list_bad = 0;
		p->at = AT_LIST;
		return 1;
	case AT_LIST:
		p->list_bad = 1;
		p->skip = 1;
		return 1;
	case AT_END:
		break;
	}
	return fail(p, CMB_EPROTO, "unexpected value after the page");
}

/* An object or array closes: 1 when it was one being skipped (nothing more to do). */
static int closing_skipped(struct cmb_odata_parser *p)
{
	p->depth--;
	if (!p->skip)
		return 0;
	p->skip--;
	return 1;
}

static int cb_start_map(void *ctx)
{
	return on_open(ctx, 0);
}

static int cb_start_array(void *ctx)
{
	return on_open(ctx, 1);
}

static int cb_end_map(void *ctx)
{
	struct cmb_odata_parser *p = ctx;
	if (closing_skipped(p))
		return 1;
	if (p->at == AT_RECORD) {
		struct cmb_odata_record *r = record_take(p);
		p->at = AT_VALUE;
		p->records++;
		int rc = p->cb ? p->cb(p->ctx, r) : (cmb_odata_record_free(r), 0);
		if (rc < 0) {
			p->error = rc;
			return 0;
		}
		return 1;
	}
	/* AT_TOP */
	p->at = AT_END;
	return 1;
}

static int cb_end_array(void *ctx)
{
	struct cmb_odata_parser *p = ctx;
	if (closing_skipped(p))
		return 1;
	if (p->at == AT_LIST) {
		p->at = AT_RECORD;
		if (p->list_bad) {
			p->have_field = 0;
			return 1;
		}
		return record_add(p, CMB_ODATA_LIST, p->list.data ? p->list.data : "", p->list.len,
				  (int)p->list_items);
	}
	/* AT_VALUE: the only array that is not skipped */
	p->at = AT_TOP;
	p->seen_value = 1;
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_boolean,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_map_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

int cmb_odata_new(struct cmb_odata_parser **out, const char *where, size_t max_record,
		  cmb_odata_record_cb cb, void *ctx)
{
	struct cmb_odata_parser *p = xcalloc(1, sizeof(*p));
	p->where = xstrdup(where ? where : "page");
	p->max_record = max_record ? max_record : CMB_ODATA_MAX_RECORD;
	p->cb = cb;
	p->ctx = ctx;
	cmb_buf_init(&p->field, p->max_record);
	cmb_buf_init(&p->strings, p->max_record);
	cmb_buf_init(&p->list, p->max_record);
	p->h = yajl_alloc(&callbacks, NULL, p);
	if (!p->h) {
		free(p->where);
		free(p);
		return cmb_error_set(CMB_ERROR, "cannot allocate a JSON parser");
	}
	/* Strings pass through unchecked: mapping repairs invalid UTF-8 per record. */
	yajl_config(p->h, yajl_dont_validate_strings, 1);
	yajl_config(p->h, yajl_allow_partial_values, 0);
	yajl_config(p->h, yajl_allow_trailing_garbage, 0);
	yajl_config(p->h, yajl_allow_multiple_values, 0);
	*out = p;
	return 0;
}

void cmb_odata_free(struct cmb_odata_parser *p)
{
	if (!p)
		return;
	if (p->h)
		yajl_free(p->h);
	free(p->slots);
	cmb_buf_free(&p->strings);
	cmb_buf_free(&p->list);
	cmb_buf_free(&p->field);
	free(p->next_link);
	free(p->context);
	free(p->where);
	free(p);
}

/* Turns a yajl error into ours, with the offset yajl reached. */
static int yajl_failure(struct cmb_odata_parser *p, const char *what, uint64_t offset)
{
	unsigned char *e = yajl_get_error(p->h, 0, NULL, 0);
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", e ? (const char *)e : "unknown error");
	if (e)
		yajl_free_error(p->h, e);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	p->error = cmb_error_set(CMB_EPROTO, "%s, byte %llu: %s (%s)", p->where,
				 (unsigned long long)offset, what, msg);
	return p->error;
}

int cmb_odata_feed(struct cmb_odata_parser *p, const void *data, size_t len)
{
	if (p->error)
		return p->error;
	if (len == 0)
		return 0;
	yajl_status st = yajl_parse(p->h, data, len);
	if (st == yajl_status_ok) {
		p->fed_before += len;
		return 0;
	}
	if (st == yajl_status_client_canceled)
		return p->error ? p->error : (p->error = cmb_error_set(CMB_ERROR, "%s: parse stopped", p->where));
	return yajl_failure(p, "malformed JSON", offset_now(p));
}

int cmb_odata_finish(struct cmb_odata_parser *p)
{
	if (p->error)
		return p->error;
	yajl_status st = yajl_complete_parse(p->h);
	if (st == yajl_status_client_canceled)
		return p->error ? p->error : (p->error = cmb_error_set(CMB_ERROR, "%s: parse stopped", p->where));
	if (st != yajl_status_ok) {
		if (p->fed_before == 0)
			return p->error = cmb_error_set(CMB_EPROTO, "%s, byte 0: empty body", p->where);
		return yajl_failure(p, "truncated or malformed JSON", p->fed_before);
	}
	if (!p->seen_value)
		return p->error = cmb_error_set(CMB_EPROTO, "%s, byte %llu: no 'value' array in the page",
						p->where, (unsigned long long)p->fed_before);
	return 0;
}

const char *cmb_odata_next_link(const struct cmb_odata_parser *p)
{
	return p->next_link;
}

const char *cmb_odata_context(const struct cmb_odata_parser *p)
{
	return p->context;
}

size_t cmb_odata_records(const struct cmb_odata_parser *p)
{
	return p->records;
}

uint64_t cmb_odata_bytes(const struct cmb_odata_parser *p)
{
	return p->fed_before;
}
