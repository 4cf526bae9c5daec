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
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

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
int cmb_buf_addstr(struct cmb_buf *b, const char *s);
int cmb_buf_printf(struct cmb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmb_buf_reset(struct cmb_buf *b);
/* Hands the data to the caller (who frees it) and resets b. */
char *cmb_buf_detach(struct cmb_buf *b, size_t *len);
void cmb_buf_free(struct cmb_buf *b);

/* Current wall-clock time in seconds; monotonic seconds for measuring intervals. */
int64_t cmb_now(void);
double cmb_now_mono(void);
/* Epoch seconds as ISO 8601 UTC, "2026-11-29T03:04:05Z" (years before 1970 too). */
void cmb_time_iso8601(int64_t t, char out[32]);
/*
 * Parses ISO 8601 / OData DateTimeOffset "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]"
 * (no zone = UTC; fraction truncated; calendar-checked) to epoch seconds. 0 or -1.
 */
int cmb_time_parse(const char *s, int64_t *out);
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range Graph's DateTimeOffset values take. */
#define CMB_TIME_MIN (-62135596800LL)
#define CMB_TIME_MAX (253402300799LL)

/*
 * The process-wide stop request: a flag a signal handler sets. Long waits
 * (transfers, retry back-off) check it so the daemon stops within about a
 * second. NULL (the default) means never.
 */
void cmb_cancel_set_flag(volatile int *flag);
int cmb_canceled(void);
/*
 * A softer request (SIGHUP: reload) that ends only waits that are safe to
 * cut and start again, such as an idle long poll (cmb_http_request's
 * `interruptible`). NULL (the default) means never.
 */
void cmb_interrupt_set_flag(volatile int *flag);
int cmb_interrupted(void);

/* A random RFC 4122 version 4 UUID, lower case, 36 chars + NUL. */
void cmb_uuid4(char out[37]);

/* Lower-case hex SHA-256 of data (64 chars + NUL). */
void cmb_sha256_hex(const void *data, size_t len, char out[65]);

/* Reads a whole file (at most max bytes) into *out (NUL-terminated, caller frees). */
int cmb_file_read(const char *path, size_t max, char **out, size_t *len);
/*
 * Reads a secret from a file: refused when the file is readable or writable
 * by group or others, trailing newline stripped. *out is the caller's; wipe
 * it with cmb_secret_free().
 */
int cmb_secret_read(const char *path, char **out);
void cmb_secret_free(char *secret);

/* Appends str to b as a JSON string literal (with quotes), escaping as RFC 8259. */
int cmb_buf_add_json_string(struct cmb_buf *b, const char *s, size_t len);

#endif
