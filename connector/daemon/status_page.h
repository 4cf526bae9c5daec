/*
 * status_page.h - the daemon's read-only status page (`/` of [metrics]
 * listen): one static HTML document written from the gathered report
 * (report.h), the same data as `status --json`. No script, no external
 * asset; it reloads itself every 30 s. docs/operations.md.
 *
 * Must never: write a string that came from the site, the tenant or the
 * state without escaping it (device names, keys and errors are hostile
 * input), or show a secret (the report holds none).
 */
#ifndef CMB_STATUS_PAGE_H
#define CMB_STATUS_PAGE_H

#include <stdint.h>

#include "connector/base/util.h"
#include "connector/daemon/report.h"

/* The headers the page is served with (metrics.c). */
#define CMB_STATUS_PAGE_CSP "default-src 'none'; style-src 'unsafe-inline'"

/*
 * s as HTML text or attribute value: & < > " ' as character references,
 * C0 controls other than tab, newline and return as U+FFFD. NULL is "".
 */
void cmb_html_escape(struct cmb_buf *b, const char *s);
/* The page of r as it stands at now (epoch seconds), a whole document. */
void cmb_status_page(struct cmb_buf *b, const struct cmb_report *r, int64_t now);

#endif
