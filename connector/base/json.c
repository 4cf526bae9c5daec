/*
 * json.c - JSON output helpers over yajl_gen (see json.h).
 */
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <stdlib.h>
#include <string.h>

yajl_gen cmb_json_new(int beautify)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (!g)
		abort();
	if (beautify) {
		yajl_gen_config(g, yajl_gen_beautify, 1);
		yajl_gen_config(g, yajl_gen_indent_string, "  ");
	}
	return g;
}

void cmb_json_key(yajl_gen g, const char *key)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
}

void cmb_json_str(yajl_gen g, const char *s)
{
	if (!s)
		yajl_gen_null(g);
	else
		yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void cmb_json_strn(yajl_gen g, const char *s, size_t len)
{
	yajl_gen_string(g, (const unsigned char *)s, len);
}

void cmb_json_int(yajl_gen g, long long v)
{
	yajl_gen_integer(g, v);
}

void cmb_json_bool(yajl_gen g, int v)
{
	yajl_gen_bool(g, v != 0);
}

void cmb_json_null(yajl_gen g)
{
	yajl_gen_null(g);
}

void cmb_json_kv_str(yajl_gen g, const char *key, const char *s)
{
	cmb_json_key(g, key);
	cmb_json_str(g, s);
}

void cmb_json_kv_int(yajl_gen g, const char *key, long long v)
{
	cmb_json_key(g, key);
	cmb_json_int(g, v);
}

void cmb_json_kv_bool(yajl_gen g, const char *key, int v)
{
	cmb_json_key(g, key);
	cmb_json_bool(g, v);
}

void cmb_json_kv_strings(yajl_gen g, const char *key, const char *const *v, size_t n)
{
	cmb_json_key(g, key);
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++)
		cmb_json_str(g, v[i]);
	yajl_gen_array_close(g);
}

/*
 * yajl_gen_number writes its text as it is, with the separators a value
 * needs at this point: the way to insert a whole generated JSON value.
 */
void cmb_json_raw(yajl_gen g, const char *json, size_t len)
{
	yajl_gen_number(g, json, len);
}

char *cmb_json_take(yajl_gen g, size_t *len)
{
	const unsigned char *buf;
	size_t n;
	yajl_gen_get_buf(g, &buf, &n);
	char *out = xstrndup((const char *)buf, n);
	if (len)
		*len = n;
	yajl_gen_free(g);
	return out;
}

void cmb_json_flush(yajl_gen g, FILE *fp)
{
	const unsigned char *buf;
	size_t n;
	yajl_gen_get_buf(g, &buf, &n);
	fwrite(buf, 1, n, fp);
	yajl_gen_clear(g);
}
