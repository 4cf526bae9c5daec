/*
 * util.c - allocation, bounded buffers, time, UUIDs, hashing, file reading.
 */
#include "util.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "cmbridge: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *out;
	if (vasprintf(&out, fmt, ap) < 0)
		oom(strlen(fmt));
	return out;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

void cmb_buf_init(struct cmb_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

int cmb_buf_add(struct cmb_buf *b, const void *data, size_t len)
{
	if (len > b->max || b->len > b->max - len)
		return cmb_error_set(CMB_ETOOBIG, "buffer limit of %zu bytes exceeded", b->max);
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int cmb_buf_addstr(struct cmb_buf *b, const char *s)
{
	return cmb_buf_add(b, s, strlen(s));
}

int cmb_buf_printf(struct cmb_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	int rc = cmb_buf_addstr(b, s);
	free(s);
	return rc;
}

void cmb_buf_reset(struct cmb_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *cmb_buf_detach(struct cmb_buf *b, size_t *len)
{
	char *d = b->data ? b->data : xstrdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void cmb_buf_free(struct cmb_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int cmb_buf_add_json_string(struct cmb_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int rc;
	if ((rc = cmb_buf_add(b, "\"", 1)) < 0)
		return rc;
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t elen = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\'; esc[1] = (char)c; elen = 2;
		} else if (c == '\n') {
			esc[0] = '\\'; esc[1] = 'n'; elen = 2;
		} else if (c == '\r') {
			esc[0] = '\\'; esc[1] = 'r'; elen = 2;
		} else if (c == '\t') {
			esc[0] = '\\'; esc[1] = 't'; elen = 2;
		} else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4]; esc[5] = hex[c & 15]; elen = 6;
		} else {
			continue;
		}
		if ((rc = cmb_buf_add(b, s + start, i - start)) < 0 || (rc = cmb_buf_add(b, esc, elen)) < 0)
			return rc;
		start = i + 1;
	}
	if ((rc = cmb_buf_add(b, s + start, len - start)) < 0)
		return rc;
	return cmb_buf_add(b, "\"", 1);
}

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
	char buf[128];
	snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long)y, (long long)m,
		 (long long)d, (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60));
	memcpy(out, buf, 31);
	out[31] = '\0';
}

int cmb_time_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	if (!s || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
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
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		p += 6;
	}
	/* No zone designator at all: taken as UTC. */
	if (*p != '\0')
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
	return 0;
}

static volatile int *cancel_flag;

void cmb_cancel_set_flag(volatile int *flag)
{
	cancel_flag = flag;
}

int cmb_canceled(void)
{
	return cancel_flag && *cancel_flag;
}

static volatile int *interrupt_flag;

void cmb_interrupt_set_flag(volatile int *flag)
{
	interrupt_flag = flag;
}

int cmb_interrupted(void)
{
	return interrupt_flag && *interrupt_flag;
}

void cmb_uuid4(char out[37])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1) {
		fprintf(stderr, "cmbridge: no randomness available\n");
		abort();
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

void cmb_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int cmb_file_read(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cmb_error_set(CMB_EIO, "cannot open %s: %s", path, strerror(errno));
	struct cmb_buf b = CMB_BUF_INIT(max);
	char chunk[65536];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = cmb_error_set(CMB_EIO, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((rc = cmb_buf_add(&b, chunk, (size_t)n)) < 0) {
			rc = cmb_error_set(CMB_ETOOBIG, "%s is larger than %zu bytes", path, max);
			break;
		}
	}
	close(fd);
	if (rc < 0) {
		cmb_buf_free(&b);
		return rc;
	}
	*out = cmb_buf_detach(&b, len);
	return 0;
}

int cmb_secret_read(const char *path, char **out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return cmb_error_set(CMB_ECONFIG, "secret file %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cmb_error_set(CMB_ECONFIG, "secret file %s is not a regular file", path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return cmb_error_set(CMB_ECONFIG,
				     "secret file %s is accessible by group or others (mode %03o); "
				     "run: chmod 600 %s",
				     path, (unsigned)(st.st_mode & 0777), path);
	char *data;
	size_t len;
	int rc = cmb_file_read(path, 64 * 1024, &data, &len);
	if (rc < 0)
		return rc;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	if (len == 0 || memchr(data, '\0', len)) {
		cmb_secret_free(data);
		return cmb_error_set(CMB_ECONFIG, "secret file %s is empty or not text", path);
	}
	*out = data;
	return 0;
}

void cmb_secret_free(char *secret)
{
	if (!secret)
		return;
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
}
