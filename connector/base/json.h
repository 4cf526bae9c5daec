/*
 * json.h - JSON output through yajl_gen: a few helpers so that every body
 * and every --json listing the connector writes is generated, never built
 * by hand (escaping, nesting and numbers are yajl's).
 */
#ifndef CMB_JSON_H
#define CMB_JSON_H

#include <stddef.h>
#include <stdio.h>
#include <yajl/yajl_gen.h>

/* A new generator (beautify: indented output for people). Never NULL. */
yajl_gen cmb_json_new(int beautify);
/* Object keys and values; a NULL string is JSON null. */
void cmb_json_key(yajl_gen g, const char *key);
void cmb_json_str(yajl_gen g, const char *s);
void cmb_json_strn(yajl_gen g, const char *s, size_t len);
void cmb_json_int(yajl_gen g, long long v);
void cmb_json_bool(yajl_gen g, int v);
void cmb_json_null(yajl_gen g);
/* key + value in one call. */
void cmb_json_kv_str(yajl_gen g, const char *key, const char *s);
void cmb_json_kv_int(yajl_gen g, const char *key, long long v);
void cmb_json_kv_bool(yajl_gen g, const char *key, int v);
/* key + an array of the n strings of v. */
void cmb_json_kv_strings(yajl_gen g, const char *key, const char *const *v, size_t n);
/* An already generated JSON text, inserted as one value (a stored record). */
void cmb_json_raw(yajl_gen g, const char *json, size_t len);
/* Frees g and returns what it generated (NUL-terminated, the caller's; *len may be NULL). */
char *cmb_json_take(yajl_gen g, size_t *len);
/* Writes what g generated so far to fp and clears its buffer (long listings stream). */
void cmb_json_flush(yajl_gen g, FILE *fp);

#endif
