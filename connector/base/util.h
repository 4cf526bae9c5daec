/*
 * util.h - allocation, growable buffers with a hard ceiling, small string helpers.
 *
 * Out-of-memory is not an error cmbridge can recover from in a useful way,
 * so the x* family aborts with a message instead of returning NULL (isync,
 * chrony). Buffers carry a maximum size fixed at creation (curl's dynbuf):
 * anything fed from the network must never grow without bound.
 */
#ifndef CMB_UTIL_H
#define CMB_UTIL_H

#include <stdarg.h>
#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The one way out for what cannot happen in a correct program (a library
 * misused, memory exhausted): says what on stderr and aborts. Modules that
 * never print (mapping/) call this instead.
 */
void cmb_fatal(const char *what) __attribute__((noreturn));

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/*
 * s (len bytes) made safe to print in a message or a log line, whatever a
 * server put in it: at most max bytes ("..." after), newline, CR and tab
 * as a blank, every other control byte as '.', and with ascii_only every
 * byte >= 0x80 too. Never writes a raw control character (no log forging,
 * no terminal escapes). Caller frees.
 */
char *cmb_str_printable(const char *s, size_t len, size_t max, int ascii_only);

/* A byte buffer, always NUL-terminated after len, never larger than max. */
struct cmb_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

#define CMB_BUF_INIT(maxsize) { NULL, 0, 0, (maxsize) }

void cmb_buf_init(struct cmb_buf *b, size_t max);
/* Returns 0, or CMB_ETOOBIG (without changing b) when max would be exceeded. */
int cmb_buf_add(struct cmb_buf *b, const void *data, size_t len);
/* Makes room for cap bytes (NUL included) at once, when that is more than b has and within its max. */
void cmb_buf_reserve(struct cmb_buf *b, size_t cap);
int cmb_buf_addstr(struct cmb_buf *b, const char *s);
int cmb_buf_printf(struct cmb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmb_buf_reset(struct cmb_buf *b);
/* Hands the data to the caller (who frees it) and resets b. */
char *cmb_buf_detach(struct cmb_buf *b, size_t *len);
void cmb_buf_free(struct cmb_buf *b);

/* Case-insensitive Levenshtein distance of two short names; SIZE_MAX past 64 characters. */
size_t cmb_edit_distance(const char *a, const char *b);
/* The candidate nearest to name, if within CMB_SUGGEST_MAX_DISTANCE edits: for "did you mean". */
#define CMB_SUGGEST_MAX_DISTANCE 2
const char *cmb_suggest(const char *name, const char *const *candidates, size_t n);

/* A random RFC 4122 version 4 UUID, lower case, 36 chars + NUL. */
void cmb_uuid4(char out[37]);

/* Lower-case hex SHA-256 of data (64 chars + NUL). */
void cmb_sha256_hex(const void *data, size_t len, char out[65]);
/*
 * SHA-256 for EVP_DigestInit_ex, fetched from OpenSSL's providers once
 * (thread-safe): EVP_sha256() is fetched again at every initialisation,
 * which costs more than hashing a short record.
 */
const EVP_MD *cmb_sha256(void);
/* 32 digest bytes as lower-case hex (64 chars + NUL). */
void cmb_hex32(const unsigned char raw[32], char out[65]);

/* Reads a whole file (at most max bytes) into *out (NUL-terminated, caller frees). */
int cmb_file_read(const char *path, size_t max, char **out, size_t *len);
/*
 * Reads a secret from a file: refused when the file is readable or writable
 * by group or others, trailing newline stripped. *out is the caller's; wipe
 * it with cmb_secret_free().
 */
int cmb_secret_read(const char *path, char **out);
void cmb_secret_free(char *secret);

#endif
