/*
 * clock.h - wall and monotonic clocks; timestamps to and from text.
 */
#ifndef CMB_CLOCK_H
#define CMB_CLOCK_H

#include <stdint.h>

/* Current wall-clock time in seconds; monotonic seconds for measuring intervals. */
int64_t cmb_now(void);
double cmb_now_mono(void);
/* Epoch seconds as ISO 8601 UTC, "2026-11-29T03:04:05Z" (years before 1970 too). */
void cmb_time_iso8601(int64_t t, char out[32]);
/*
 * Parses a timestamp to epoch seconds; 0, or -1 when s is none of:
 *  - ISO 8601 / OData DateTimeOffset "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]"
 *    (also a space for the T, and +hhmm or +hh; no zone = UTC);
 *  - WMI's DMTF form "yyyymmddHHMMSS.mmmmmm+UUU" (UUU: minutes east of
 *    UTC; '*' for an unknown fraction or offset), as the SMS Provider
 *    writes DateTime properties.
 * The fraction is truncated; dates are calendar-checked.
 */
int cmb_time_parse(const char *s, int64_t *out);
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range Graph's DateTimeOffset values take. */
#define CMB_TIME_MIN (-62135596800LL)
#define CMB_TIME_MAX (253402300799LL)

#endif
