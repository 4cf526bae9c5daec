/*
 * util.c - allocation, bounded buffers, time, UUIDs, hashing, file reading.
 */
#include "connector/base/util.h"
#include "connector/base/error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
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

void cmb_fatal(const char *what)
{
	fprintf(stderr, "cmbridge: %s\n", what);
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

char *cmb_str_printable(const char *s, size_t len, size_t max, int ascii_only)
{
	size_t n = len < max ? len : max;
	char *out = xmalloc(n + 4);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || c == '\r' || c == '\t')
			out[o++] = ' ';
		else if (c < 0x20 || c == 0x7f || (ascii_only && c >= 0x80))
			out[o++] = '.';
		else
			out[o++] = (char)c;
	}
	if (len > max) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
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

void cmb_buf_reserve(struct cmb_buf *b, size_t cap)
{
	if (cap > b->cap && cap <= b->max + 1) {
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
		b->data[b->len] = '\0';
	}
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

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *cmb_sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

void cmb_hex32(const unsigned char raw[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0xf];
	}
	out[64] = '\0';
}

void cmb_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(data, len, md, &mdlen, cmb_sha256(), NULL) != 1 || mdlen != 32)
		cmb_fatal("SHA-256 failed");
	cmb_hex32(md, out);
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

size_t cmb_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t prev[65], cur[65];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = prev[j - 1] + cost;
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			cur[j] = best;
		}
		memcpy(prev, cur, sizeof(prev));
	}
	return prev[lb];
}

const char *cmb_suggest(const char *name, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	size_t best_d = CMB_SUGGEST_MAX_DISTANCE + 1;
	for (size_t i = 0; i < n; i++) {
		size_t d = cmb_edit_distance(name, candidates[i]);
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best;
}
