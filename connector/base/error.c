/*
 * error.c - per-thread last error message (libgit2's giterr model).
 */
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_msg[2048];

int cmb_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	va_end(ap);
	return code;
}

int cmb_error_wrap(int code, const char *fmt, ...)
{
	char prefix[1024];
	char old[sizeof(last_msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, last_msg, sizeof(old));
	/* Truncation is acceptable for a message; build it piecewise. */
	size_t n = strlen(prefix);
	if (n >= sizeof(last_msg))
		n = sizeof(last_msg) - 1;
	memcpy(last_msg, prefix, n);
	last_msg[n] = '\0';
	if (old[0] && n + 2 < sizeof(last_msg)) {
		memcpy(last_msg + n, ": ", 2);
		size_t rest = sizeof(last_msg) - n - 3;
		size_t olen = strlen(old);
		if (olen > rest)
			olen = rest;
		memcpy(last_msg + n + 2, old, olen);
		last_msg[n + 2 + olen] = '\0';
	}
	return code;
}

const char *cmb_error_last(void)
{
	return last_msg;
}

void cmb_error_clear(void)
{
	last_msg[0] = '\0';
}

const char *cmb_error_name(int code)
{
	switch (code) {
	case CMB_OK: return "ok";
	case CMB_EINVAL: return "invalid-input";
	case CMB_ECONFIG: return "config";
	case CMB_EIO: return "io";
	case CMB_ENETWORK: return "network";
	case CMB_ETHROTTLED: return "throttled";
	case CMB_EHTTP: return "http";
	case CMB_EAUTH: return "auth";
	case CMB_EPROTO: return "protocol";
	case CMB_ETOOBIG: return "too-big";
	case CMB_ESTATE: return "state";
	case CMB_ENOTFOUND: return "not-found";
	case CMB_ECANCELED: return "canceled";
	case CMB_ETLS: return "tls";
	case CMB_EGUARD: return "guard";
	default: return "error";
	}
}

enum cmb_retry_class cmb_error_retry_class(int code)
{
	switch (code) {
	case CMB_ENETWORK: return CMB_RETRY_SOON;
	case CMB_ETHROTTLED: return CMB_RETRY_LATER;
	default: return CMB_RETRY_NEVER;
	}
}
