/*
 * error.h - the project's error codes and the last error message.
 *
 * Functions return 0 on success or a negative CMB_E* code; the human message
 * goes through cmb_error_set() and is read by the caller that decides to log
 * it (libgit2). Each code also says whether trying again can help (isync).
 */
#ifndef CMB_ERROR_H
#define CMB_ERROR_H

enum cmb_error_code {
	CMB_OK = 0,
	CMB_ERROR = -1,     /* generic, final */
	CMB_EINVAL = -2,    /* bad input from a caller or a file: final */
	CMB_ECONFIG = -3,   /* configuration error: final, exit status 2 */
	CMB_EIO = -4,       /* local file or system error */
	CMB_ENETWORK = -5,  /* connection failed, reset, timed out: transient */
	CMB_ETHROTTLED = -6,/* 429 / 503 from a server: wait and retry */
	CMB_EHTTP = -7,     /* a server answered with an error status: final */
	CMB_EAUTH = -8,     /* credentials refused: final until an admin acts */
	CMB_EPROTO = -9,    /* malformed or unexpected response: final for the cycle */
	CMB_ETOOBIG = -10,  /* a response or record exceeded its limit */
	CMB_ESTATE = -11,   /* state database error */
	CMB_ENOTFOUND = -12,
	CMB_ECANCELED = -13,/* stopped on request (signal) */
	CMB_ETLS = -14,     /* certificate verification or TLS handshake failed */
	CMB_EGUARD = -15,   /* a safety guard held part of a cycle back until an admin approves */
};

enum cmb_retry_class {
	CMB_RETRY_NEVER = 0,
	CMB_RETRY_SOON = 1,   /* transient: retry with backoff */
	CMB_RETRY_LATER = 2,  /* server asked us to wait */
};

/* Sets the thread's last error message; returns code so callers can `return cmb_error_set(...)`. */
int cmb_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with more context ("reading page 3: <old>"). Returns code. */
int cmb_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message of this thread; never NULL (empty when none). */
const char *cmb_error_last(void);
void cmb_error_clear(void);
const char *cmb_error_name(int code);
enum cmb_retry_class cmb_error_retry_class(int code);

#endif
