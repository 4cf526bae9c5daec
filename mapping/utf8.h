/*
 * utf8.h - UTF-8 validation and repair for strings that come from the site.
 *
 * The JSON parser runs with string validation off (so one bad name never
 * fails a whole page); every string that reaches the tenant passes here.
 */
#ifndef CMB_MAP_UTF8_H
#define CMB_MAP_UTF8_H

#include <stddef.h>

/*
 * 1 when s[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, <= U+10FFFF), else 0. NUL is well-formed UTF-8, so a string
 * with embedded NULs is "valid" here yet still changed by cmb_utf8_repair():
 * do not use this as a shortcut around repair.
 */
int cmb_utf8_valid(const char *s, size_t len);

/*
 * Returns a newly allocated, NUL-terminated copy of s[0..len) in which every
 * maximal invalid subsequence is replaced by U+FFFD (Unicode's "substitution
 * of maximal subparts"), and adds the number of replacements to *repairs.
 * Embedded NUL bytes are replaced too. repairs may be NULL. s may be NULL
 * when len is 0. Caller frees.
 */
char *cmb_utf8_repair(const char *s, size_t len, unsigned *repairs);

#endif
