/*
 * policy_catalog.c - the settings catalog as a table: mapping/policy_catalog.def
 * is included as an X-macro, so the data is checked by the compiler and
 * costs nothing at run time. Never does I/O.
 */
#include "mapping/policy_catalog.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <string.h>

static const struct cmb_policy_def table[] = {
#define CMB_POLICY_SETTING(fam, id, type, csp, parent, min, max, options, merge, extra)                 \
	{ CMB_PFAM_##fam, id, CMB_PDEF_##type, csp, parent, min, max, options, CMB_PMERGE_##merge, extra },
#include "mapping/policy_catalog.def"
#undef CMB_POLICY_SETTING
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

const struct cmb_policy_def *cmb_map_policy_def(const char *id)
{
	if (!id)
		return NULL;
	/* ~180 entries looked up a few hundred times per policy: a linear scan
	 * is cheaper than keeping the .def sorted by hand. */
	for (size_t i = 0; i < TABLE_LEN; i++)
		if (strcmp(table[i].id, id) == 0)
			return &table[i];
	return NULL;
}

const struct cmb_policy_def *cmb_map_policy_defs(size_t *n)
{
	*n = TABLE_LEN;
	return table;
}

/*
 * Walks def->options ("suffix[=value] ..."); for each token calls back with
 * the suffix and value spans. Returns what the callback returns when it is
 * non-zero, else 0.
 */
typedef int (*option_fn)(const char *suffix, size_t slen, const char *value, size_t vlen, void *arg);

static int each_option(const struct cmb_policy_def *def, option_fn fn, void *arg)
{
	const char *p = def->options;
	if (!p)
		return 0;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *tok = p;
		while (*p && *p != ' ')
			p++;
		size_t tlen = (size_t)(p - tok);
		const char *eq = memchr(tok, '=', tlen);
		size_t slen = eq ? (size_t)(eq - tok) : tlen;
		const char *val = eq ? eq + 1 : tok;
		size_t vlen = eq ? tlen - slen - 1 : tlen;
		int r = fn(tok, slen, val, vlen, arg);
		if (r)
			return r;
	}
	return 0;
}

struct find_arg {
	const char *suffix;
	char *out;
	size_t out_size;
};

static int find_cb(const char *suffix, size_t slen, const char *value, size_t vlen, void *arg)
{
	struct find_arg *a = arg;
	if (strlen(a->suffix) != slen || memcmp(a->suffix, suffix, slen) != 0)
		return 0;
	if (vlen + 1 > a->out_size)
		return -1;
	memcpy(a->out, value, vlen);
	a->out[vlen] = '\0';
	return 1;
}

int cmb_map_policy_option(const struct cmb_policy_def *def, const char *option, char *out, size_t out_size)
{
	size_t idlen = strlen(def->id);
	if (!option || strncmp(option, def->id, idlen) != 0 || option[idlen] != '_')
		return -1;
	struct find_arg a = { option + idlen + 1, out, out_size };
	return each_option(def, find_cb, &a) == 1 ? 0 : -1;
}

struct list_arg {
	struct cmb_buf *b;
	const char *id;
};

static int list_cb(const char *suffix, size_t slen, const char *value, size_t vlen, void *arg)
{
	struct list_arg *a = arg;
	(void)value;
	(void)vlen;
	cmb_buf_printf(a->b, "%s%s_%.*s", a->b->len ? ", " : "", a->id, (int)slen, suffix);
	return 0;
}

char *cmb_map_policy_options_list(const struct cmb_policy_def *def)
{
	struct cmb_buf b = CMB_BUF_INIT(64 * 1024);
	struct list_arg a = { &b, def->id };
	each_option(def, list_cb, &a);
	if (!b.data)
		return xstrdup("");
	return cmb_buf_detach(&b, NULL);
}

const char *cmb_map_policy_value_type(const struct cmb_policy_def *def, const char *value)
{
	switch (def->type) {
	case CMB_PDEF_INT:
	case CMB_PDEF_CHOICES_FLAGS:
		return "int";
	case CMB_PDEF_CHOICE: {
		if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
			return "bool";
		const char *p = value;
		if (*p == '-')
			p++;
		if (!*p)
			return "string";
		for (; *p; p++)
			if (*p < '0' || *p > '9')
				return "string";
		return "int";
	}
	default:
		return "string";
	}
}
