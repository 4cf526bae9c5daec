/*
 * prom.c - the Prometheus text format (prom.h).
 */
#include "connector/daemon/prom.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_LABELS 8

void cmb_prom_escape_label(struct cmb_buf *b, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\')
			cmb_buf_addstr(b, "\\\\");
		else if (*p == '"')
			cmb_buf_addstr(b, "\\\"");
		else if (*p == '\n')
			cmb_buf_addstr(b, "\\n");
		else
			cmb_buf_add(b, p, 1);
	}
}

/* Help texts escape backslash and newline only. */
static void escape_help(struct cmb_buf *b, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			cmb_buf_addstr(b, "\\\\");
		else if (*p == '\n')
			cmb_buf_addstr(b, "\\n");
		else
			cmb_buf_add(b, p, 1);
	}
}

void cmb_prom_family(struct cmb_buf *b, const char *name, const char *type, const char *help)
{
	cmb_buf_printf(b, "# HELP %s ", name);
	escape_help(b, help);
	cmb_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void add_value(struct cmb_buf *b, double v)
{
	if (isnan(v))
		cmb_buf_addstr(b, "NaN");
	else if (isinf(v))
		cmb_buf_addstr(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: every integer below is exact */
		cmb_buf_printf(b, "%.0f", v);
	else
		cmb_buf_printf(b, "%.9g", v);
}

/* name{labels[,extra_key="extra"]} value */
static void sample(struct cmb_buf *b, const char *name, const char *const *labels, const char *extra_key,
		   const char *extra, double value)
{
	cmb_buf_addstr(b, name);
	int n = 0;
	for (const char *const *l = labels; l && l[0] && l[1] && n < MAX_LABELS; l += 2, n++) {
		cmb_buf_printf(b, "%s%s=\"", n ? "," : "{", l[0]);
		cmb_prom_escape_label(b, l[1]);
		cmb_buf_addstr(b, "\"");
	}
	if (extra_key) {
		cmb_buf_printf(b, "%s%s=\"", n ? "," : "{", extra_key);
		cmb_prom_escape_label(b, extra);
		cmb_buf_addstr(b, "\"");
		n++;
	}
	cmb_buf_addstr(b, n ? "} " : " ");
	add_value(b, value);
	cmb_buf_addstr(b, "\n");
}

void cmb_prom_sample(struct cmb_buf *b, const char *name, const char *const *labels, double value)
{
	sample(b, name, labels, NULL, NULL, value);
}

void cmb_prom_histogram(struct cmb_buf *b, const char *name, const char *const *labels, const double *bounds,
			const long *per_bucket, size_t n, double sum)
{
	char *bucket = xasprintf("%s_bucket", name), *sum_name = xasprintf("%s_sum", name);
	char *count_name = xasprintf("%s_count", name);
	long total = 0;
	for (size_t i = 0; i <= n; i++) {
		char le[32];
		total += per_bucket[i];
		if (i < n)
			snprintf(le, sizeof(le), "%.9g", bounds[i]);
		sample(b, bucket, labels, "le", i < n ? le : "+Inf", (double)total);
	}
	sample(b, sum_name, labels, NULL, NULL, sum);
	sample(b, count_name, labels, NULL, NULL, (double)total);
	free(bucket);
	free(sum_name);
	free(count_name);
}
