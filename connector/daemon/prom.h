/*
 * prom.h - the Prometheus text exposition format, version 0.0.4, written
 * into a buffer: a family's # HELP and # TYPE lines, then its samples,
 * label values and help texts escaped. No library for it exists among
 * Debian's C packages; this is the part of it /metrics needs.
 *
 * Must never: write a label value or a help text unescaped (device and
 * class names come from the site), or a family's samples before its
 * # TYPE line.
 */
#ifndef CMB_PROM_H
#define CMB_PROM_H

#include <stddef.h>

#include "connector/base/util.h"

#define CMB_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram). */
void cmb_prom_family(struct cmb_buf *b, const char *name, const char *type, const char *help);
/*
 * "name{k1="v1",k2="v2"} value\n". labels: k, v pairs ending in NULL
 * (NULL: no labels). Integral values are written as integers, others
 * with 9 significant digits; NaN and infinities as Prometheus spells them.
 */
void cmb_prom_sample(struct cmb_buf *b, const char *name, const char *const *labels, double value);
/*
 * A histogram's samples: name_bucket{labels,le="bound"} (cumulative),
 * le="+Inf", name_sum and name_count. per_bucket[i] counts the
 * observations in (bounds[i-1], bounds[i]]; per_bucket[n] those above
 * the last bound.
 */
void cmb_prom_histogram(struct cmb_buf *b, const char *name, const char *const *labels, const double *bounds,
			const long *per_bucket, size_t n, double sum);
/* v as a label value inside the quotes: \ " and newline escaped. */
void cmb_prom_escape_label(struct cmb_buf *b, const char *v);

#endif
