/*
 * clock.c - the clocks (wall and monotonic) and the one parser and printer
 * of timestamps the connector uses. Pure arithmetic, no time zone database.
 */
#include "connector/base/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t cmb_now(void)
{
	return (int64_t)time(NULL);
}

double cmb_now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Proleptic Gregorian calendar arithmetic (H. Hinnant's days_from_civil and
 * civil_from_days): exact for every year cmbridge meets, including Graph's
 * 0001-01-01 "unset" value, with no dependence on time_t or the C library.
 */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dim[m - 1];
}

/* Exactly n ASCII digits at s. */
static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

void cmb_time_iso8601(int64_t t, char out[32])
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t rem = t - days * 86400, y, m, d;
	civil_from_days(days, &y, &m, &d);
	if (y >= 0 && y <= 9999) {
		/* Every timestamp of every device is written here: digits by hand, not snprintf. */
		const int64_t v[6] = { y, m, d, rem / 3600, rem / 60 % 60, rem % 60 };
		static const char sep[6] = { '-', '-', 'T', ':', ':', 'Z' };
		char *p = out;
		for (int i = 0; i < 6; i++) {
			int64_t x = v[i];
			if (i == 0) {
				*p++ = (char)('0' + x / 1000);
				*p++ = (char)('0' + x / 100 % 10);
			}
			*p++ = (char)('0' + x / 10 % 10);
			*p++ = (char)('0' + x % 10);
			*p++ = sep[i];
		}
		*p = '\0';
		return;
	}
	char buf[128];
	snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long)y, (long long)m,
		 (long long)d, (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60));
	memcpy(out, buf, 31);
	out[31] = '\0';
}

/* ISO 8601 / OData DateTimeOffset; see clock.h. */
static int parse_iso(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) || s[13] != ':' ||
	    digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -1;
	const char *p = s + 19;
	if (*p == '.') {
		/* Fractions are truncated: whole seconds are all cmbridge keeps. */
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1, 2, &oh) || oh > 23)
			return -1;
		p += 3;
		if (*p == ':')
			p++;
		if (*p) {
			if (digits(p, 2, &om) || om > 59)
				return -1;
			p += 2;
		}
	}
	/* No zone designator at all: taken as UTC. */
	if (*p != '\0')
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
	return 0;
}

/*
 * WMI's CIM_DATETIME (DMTF) form, "yyyymmddHHMMSS.mmmmmmsUUU": local time,
 * then the offset from UTC in minutes. WMI writes '*' for fields it does
 * not know; an unknown fraction is 0 and an unknown offset is UTC, but the
 * date and time themselves must be there.
 */
static int parse_dmtf(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, off = 0;
	if (strlen(s) != 25 || digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) ||
	    digits(s + 8, 2, &h) || digits(s + 10, 2, &mi) || digits(s + 12, 2, &sec) || s[14] != '.')
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -1;
	for (int i = 15; i < 21; i++)
		if ((s[i] < '0' || s[i] > '9') && s[i] != '*')
			return -1;
	if (s[21] != '+' && s[21] != '-')
		return -1;
	if (strcmp(s + 22, "***") != 0) {
		if (digits(s + 22, 3, &off) || off > 14 * 60)
			return -1;
		if (s[21] == '-')
			off = -off;
	}
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
	return 0;
}

int cmb_time_parse(const char *s, int64_t *out)
{
	if (!s)
		return -1;
	/* "2026-..." has its '-' at 4; DMTF is digits up to the '.' at 14. */
	if (s[0] && s[1] && s[2] && s[3] && s[4] == '-')
		return parse_iso(s, out);
	return parse_dmtf(s, out);
}
