/*
 * util.c - small helpers of the lab: memory, buffers, JSON text, random,
 * files, base64url, logging, loopback sockets. Nothing here knows HTTP.
 */
#include "lab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static void oom(void)
{
	fputs(LAB_NAME ": out of memory\n", stderr);
	abort();
}

void *lab_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *lab_xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *lab_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *lab_xstrdup(const char *s)
{
	return lab_xstrndup(s, strlen(s));
}

char *lab_xstrndup(const char *s, size_t n)
{
	char *p = lab_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *lab_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	va_end(ap);
	return p;
}

static void buf_grow(struct lab_buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->p = lab_xrealloc(b->p, cap);
	b->cap = cap;
}

void lab_buf_add(struct lab_buf *b, const void *data, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = 0;
}

void lab_buf_adds(struct lab_buf *b, const char *s)
{
	lab_buf_add(b, s, strlen(s));
}

void lab_buf_addc(struct lab_buf *b, char c)
{
	lab_buf_add(b, &c, 1);
}

void lab_buf_addf(struct lab_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void lab_buf_json_str(struct lab_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	buf_grow(b, n + 2);
	lab_buf_addc(b, '"');
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		lab_buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"': lab_buf_adds(b, "\\\""); break;
		case '\\': lab_buf_adds(b, "\\\\"); break;
		case '\n': lab_buf_adds(b, "\\n"); break;
		case '\r': lab_buf_adds(b, "\\r"); break;
		case '\t': lab_buf_adds(b, "\\t"); break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			lab_buf_add(b, e, 6);
		}
		}
	}
	lab_buf_add(b, s + start, n - start);
	lab_buf_addc(b, '"');
}

void lab_buf_json_cstr(struct lab_buf *b, const char *s)
{
	if (!s)
		lab_buf_adds(b, "null");
	else
		lab_buf_json_str(b, s, strlen(s));
}

void lab_buf_json_val(struct lab_buf *b, yajl_val v)
{
	if (!v || YAJL_IS_NULL(v)) {
		lab_buf_adds(b, "null");
	} else if (YAJL_IS_TRUE(v)) {
		lab_buf_adds(b, "true");
	} else if (YAJL_IS_FALSE(v)) {
		lab_buf_adds(b, "false");
	} else if (YAJL_IS_STRING(v)) {
		lab_buf_json_cstr(b, v->u.string);
	} else if (YAJL_IS_NUMBER(v)) {
		lab_buf_adds(b, v->u.number.r);
	} else if (YAJL_IS_ARRAY(v)) {
		lab_buf_addc(b, '[');
		for (size_t i = 0; i < v->u.array.len; i++) {
			if (i)
				lab_buf_addc(b, ',');
			lab_buf_json_val(b, v->u.array.values[i]);
		}
		lab_buf_addc(b, ']');
	} else if (YAJL_IS_OBJECT(v)) {
		lab_buf_addc(b, '{');
		for (size_t i = 0; i < v->u.object.len; i++) {
			if (i)
				lab_buf_addc(b, ',');
			lab_buf_json_cstr(b, v->u.object.keys[i]);
			lab_buf_addc(b, ':');
			lab_buf_json_val(b, v->u.object.values[i]);
		}
		lab_buf_addc(b, '}');
	}
}

void lab_buf_free(struct lab_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *lab_buf_steal(struct lab_buf *b, size_t *len)
{
	if (!b->p)
		lab_buf_add(b, "", 0);
	char *p = b->p;
	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void lab_random(void *out, size_t n)
{
	if (RAND_bytes(out, (int)n) != 1) {
		fputs(LAB_NAME ": no randomness available\n", stderr);
		abort();
	}
}

static void guid_fmt(unsigned char u[16], char out[37])
{
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

void lab_guid(char out[37])
{
	unsigned char u[16];
	lab_random(u, sizeof u);
	guid_fmt(u, out);
}

uint64_t lab_prng_next(struct lab_prng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint32_t lab_prng_below(struct lab_prng *r, uint32_t n)
{
	return n ? (uint32_t)(lab_prng_next(r) % n) : 0;
}

void lab_prng_guid(struct lab_prng *r, char out[37])
{
	unsigned char u[16];
	uint64_t a = lab_prng_next(r), b = lab_prng_next(r);
	memcpy(u, &a, 8);
	memcpy(u + 8, &b, 8);
	guid_fmt(u, out);
}

int lab_write_file(const char *path, const void *data, size_t n, int mode)
{
	char *tmp = lab_xasprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int rc = -1;
	if (fd < 0)
		goto done;
	if (fchmod(fd, (mode_t)mode) < 0 || write(fd, data, n) != (ssize_t)n) {
		close(fd);
		unlink(tmp);
		goto done;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		goto done;
	}
	rc = 0;
done:
	free(tmp);
	return rc;
}

char *lab_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct lab_buf b = {0};
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		lab_buf_add(&b, tmp, n);
	fclose(f);
	return lab_buf_steal(&b, len);
}

bool lab_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) { i++; continue; }
		else if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; }
		else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; }
		else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; }
		else return false;
		if (i + k >= n)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

char *lab_b64url(const unsigned char *data, size_t n)
{
	char *out = lab_xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = 0;
	for (int i = 0; i < len; i++) {
		if (out[i] == '+') out[i] = '-';
		else if (out[i] == '/') out[i] = '_';
	}
	return out;
}

unsigned char *lab_b64_decode(const char *s, size_t n, size_t *outlen)
{
	size_t pad = 0;
	if (n % 4)
		return NULL;
	if (n && s[n - 1] == '=') pad++;
	if (n > 1 && s[n - 2] == '=') pad++;
	unsigned char *out = lab_xmalloc(n / 4 * 3 + 1);
	int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)len - pad;
	out[*outlen] = 0;
	return out;
}

unsigned char *lab_b64url_decode(const char *s, size_t n, size_t *outlen)
{
	char *t = lab_xmalloc(n + 4);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '-') c = '+';
		else if (c == '_') c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			free(t);
			return NULL;
		}
		t[m++] = c;
	}
	while (m % 4)
		t[m++] = '=';
	unsigned char *out = lab_b64_decode(t, m, outlen);
	free(t);
	return out;
}

void lab_iso8601(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void lab_buf_urlenc(struct lab_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || c == '$' || c == ',')
			lab_buf_addc(b, (char)c);
		else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			lab_buf_add(b, e, 3);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

void lab_urldecode(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '+') {
			*o++ = ' ';
		} else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			*o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void lab_log_open(const char *path)
{
	FILE *f = fopen(path, "a");
	if (f) {
		setvbuf(f, NULL, _IOLBF, 0);
		log_file = f;
	}
}

void lab_log(const char *fmt, ...)
{
	char ts[32];
	lab_iso8601((int64_t)time(NULL), ts);
	pthread_mutex_lock(&log_lock);
	FILE *f = log_file ? log_file : stderr;
	fprintf(f, "%s [%d] ", ts, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	pthread_mutex_unlock(&log_lock);
}

int lab_listen(int port, int *bound_port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*bound_port = ntohs(sa.sin_port);
	return fd;
}
