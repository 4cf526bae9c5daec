/*
 * assertion_shim.c - an LD_PRELOAD library for tests/integration/credentials.sh:
 * makes cmbridge send client assertions the lab must refuse, which the
 * connector has no switch for. It bends only calls made from the cmbridge
 * executable itself (not libcurl's or OpenSSL's own), each behind a variable:
 *   CMB_SHIM_TAMPER=1        flips one bit of each signature jwt.c makes
 *   CMB_SHIM_CLOCK_SHIFT=S   moves cmbridge's wall clock (time()) by S seconds
 *   CMB_SHIM_FIXED_RANDOM=1  makes cmbridge's random bytes (the jti) constant
 * Built with the tests (tests/tools/CMakeLists.txt), so the test never needs a
 * compiler of its own. Never linked into anything.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

/* Only calls made from the cmbridge executable itself (no ".so" in the caller's object). */
static int from_exe(void *ret)
{
	Dl_info i;
	return dladdr(ret, &i) && i.dli_fname && !strstr(i.dli_fname, ".so");
}

time_t time(time_t *t)
{
	static time_t (*real)(time_t *);
	if (!real)
		real = (time_t (*)(time_t *))dlsym(RTLD_NEXT, "time");
	time_t v = real(NULL);
	const char *s = getenv("CMB_SHIM_CLOCK_SHIFT");
	if (s && from_exe(__builtin_return_address(0)))
		v += atol(s);
	if (t)
		*t = v;
	return v;
}

int RAND_bytes(unsigned char *buf, int num)
{
	static int (*real)(unsigned char *, int);
	if (!real)
		real = (int (*)(unsigned char *, int))dlsym(RTLD_NEXT, "RAND_bytes");
	int r = real(buf, num);
	if (getenv("CMB_SHIM_FIXED_RANDOM") && from_exe(__builtin_return_address(0)))
		memset(buf, 0x42, (size_t)num);
	return r;
}

int EVP_DigestSign(EVP_MD_CTX *c, unsigned char *sig, size_t *len, const unsigned char *tbs, size_t n)
{
	static int (*real)(EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);
	if (!real)
		real = (int (*)(EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t))dlsym(RTLD_NEXT, "EVP_DigestSign");
	int r = real(c, sig, len, tbs, n);
	if (r == 1 && sig && getenv("CMB_SHIM_TAMPER") && from_exe(__builtin_return_address(0)))
		sig[*len / 2] ^= 1;
	return r;
}
