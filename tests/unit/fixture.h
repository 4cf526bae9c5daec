/*
 * fixture.h - what the unit tests share instead of each writing its own:
 * temporary directories, files with an exact mode, a CA and a server
 * certificate made for the run, a scripted HTTPS server, the tenant
 * options of a config that points at it, and log capture.
 *
 * The server (libmicrohttpd on 127.0.0.1, port 0, a thread per connection)
 * answers each path from its script and records every request as it
 * arrived: method, URI, the headers that matter, the body (decompressed when
 * gzip) and the connection it came on, so a test asserts the exact request
 * (curl's test servers).
 *
 * Everything here is freed by its _free, _stop or _clear function, so the
 * tests that use it stay leak-free under the sanitizers (SSSD's fixtures).
 * A fixture that cannot be set up fails the test through a cmocka
 * assertion. Compiled into the tests that name FIXTURE in cmb_unit_test
 * (tests/unit/CMakeLists.txt).
 */
#ifndef CMB_TEST_FIXTURE_H
#define CMB_TEST_FIXTURE_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "connector/base/log.h"
#include "connector/base/util.h"

struct cmb_config;

/* ---- files -------------------------------------------------------------- */

#define FX_DIR_SIZE 64

/* Creates $TMPDIR/cmb-<tag>.XXXXXX (/tmp when TMPDIR is unset or long) in dir. 0, or -1. */
int fx_tmpdir(char dir[FX_DIR_SIZE], const char *tag);
/* Removes dir and everything below it (NULL or "": nothing). */
void fx_rmtree(const char *dir);
/* dir/name. Caller frees. */
char *fx_path(const char *dir, const char *name);
/* Writes len bytes to path (created or truncated), with exactly mode whatever the umask. */
void fx_write(const char *path, const void *data, size_t len, mode_t mode);
void fx_write_str(const char *path, const char *text, mode_t mode);
/* How often needle occurs in hay (not overlapping). */
long fx_count(const char *hay, const char *needle);
/* Fails (at the caller's line) unless the last error message, cmb_error_last(), is exactly the formatted text. */
#define fx_assert_message(...) fx_check_message(__FILE__, __LINE__, __VA_ARGS__)
void fx_check_message(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- certificates ------------------------------------------------------- */

struct fx_pki {
	char *ca_pem;     /* the CA certificate ("CN=<ca_name>"): what a client trusts */
	char *cert_pem;   /* the server's, "CN=127.0.0.1" with IP:127.0.0.1, issued by the CA */
	char *key_pem;    /* the server's key (wiped when freed) */
};

/* A fresh CA (P-256) and a server certificate it issued, valid from an hour ago for a day. */
void fx_pki_make(struct fx_pki *p, const char *ca_name);
void fx_pki_free(struct fx_pki *p);
/*
 * A cmocka group setup and teardown for the tests of a server: fx_group_pki
 * (CA "cmbridge test CA") made once for the group, the log quiet but for
 * errors (everything, debug included, with CMB_TEST_VERBOSE set).
 */
extern struct fx_pki fx_group_pki;
int fx_group_setup(void **state);
int fx_group_teardown(void **state);
/* PEM texts. Caller frees. fx_pem_key encrypts with AES-256-CBC when pass is not NULL. */
char *fx_pem_cert(X509 *x);
char *fx_pem_key(EVP_PKEY *k, const char *pass);

/* ---- the scripted HTTPS server ------------------------------------------ */

enum fx_cut {
	FX_FULL = 0,
	FX_CUT_CHUNKED,   /* chunked, the connection dropped after `at` body bytes */
	FX_CUT_LENGTH,    /* the whole Content-Length announced, the connection dropped after `at` bytes */
	FX_DROP,          /* the request is taken, the connection closed without any reply */
};

struct fx_reply {
	unsigned status;            /* 0: 200 */
	const char *body;           /* NULL: empty; copied by fx_script */
	size_t len;                 /* 0: strlen(body) */
	const char *content_type;   /* NULL: the server's content_type (borrowed, as retry_after) */
	const char *retry_after;    /* Retry-After, or NULL */
	enum fx_cut cut;
	size_t at;
	unsigned delay_ms;          /* silence before the reply (a stall, a long poll) */
};

#define FX_MAX_REPLIES 32
#define FX_MAX_ROUTES 16

struct fx_route {
	char path[128];             /* the request path exactly, or a prefix when it ends with '/' */
	struct fx_reply replies[FX_MAX_REPLIES];  /* their bodies are the route's */
	int n, next;
	int sticky;                 /* the last reply answers every request after the script */
	int token;                  /* after the script: a bearer token "tok-<hits>" (a token endpoint) */
	int hits;                   /* requests received */
	struct cmb_buf uris;        /* one request URI per line, as received */
};

struct fx_request {
	char *method, *uri, *path;  /* uri: path and query as received */
	char *authorization, *content_type, *content_encoding;  /* NULL when absent */
	char *raw;                  /* the body as sent (NUL-terminated), raw_len bytes */
	size_t raw_len;
	char *body;                 /* raw, gunzipped when Content-Encoding: gzip; NULL when that failed */
	int conn;                   /* which connection it came on: 1, 2... in order of opening */
};

struct fx_server {
	struct MHD_Daemon *daemon;
	unsigned short port;
	pthread_mutex_t mu;
	const char *content_type;      /* of replies that name none; default "application/json" */
	const char *www_authenticate;  /* sent with every 401 when set */
	struct fx_route routes[FX_MAX_ROUTES];
	int n_routes;
	struct fx_request *req;        /* every request, in order of arrival */
	int n_req, cap_req;
	struct cmb_buf unrouted;       /* "METHOD uri\n" of each request no route took (answered 418) */
	int connections;               /* connections opened so far */
	volatile int stopping;
};

/* Starts s (every member reset first) with pki's server certificate; then set content_type, www_authenticate. */
void fx_server_start(struct fx_server *s, const struct fx_pki *pki);
/* Stops s and frees all it holds. */
void fx_server_stop(struct fx_server *s);
/* Forgets the routes, the requests and the unrouted list; the server keeps running. */
void fx_server_reset(struct fx_server *s);
/* https://127.0.0.1:<port><path>. Caller frees. */
char *fx_server_url(const struct fx_server *s, const char *path);

/* The route for path, added when new. */
struct fx_route *fx_route(struct fx_server *s, const char *path);
/* Appends r to path's script (status 0 is 200). */
void fx_script(struct fx_server *s, const char *path, struct fx_reply r);
/* r answers every request for path, however many. */
void fx_always(struct fx_server *s, const char *path, struct fx_reply r);
/* path is a token endpoint: once its script is spent, each request gets a new bearer token. */
void fx_token_endpoint(struct fx_server *s, const char *path);
/* The URIs path's route received, one per line ("" when none). */
const char *fx_uris(struct fx_server *s, const char *path);
/* Requests whose path contains needle. */
int fx_requests_to(struct fx_server *s, const char *needle);
/* The Authorization header of the last request ("" when it had none, or there was none). */
const char *fx_last_auth(struct fx_server *s);
/* Fails unless every request was routed and every script not sticky was served whole. */
void fx_assert_all_served(struct fx_server *s);

/* ---- the tenant in a config ---------------------------------------------- */

#define FX_TOKEN_PATH "/contoso/oauth2/v2.0/token"
#define FX_CLIENT_ID "11111111-2222-3333-4444-555555555555"

/*
 * The [tenant] and [sync] options of cfg for a tenant served by s: the token
 * endpoint at FX_TOKEN_PATH (made a token route of s), the gateway at its
 * root, the CA file (ca_pem) and the client secret file (secret) written to
 * dir, 10 s timeouts, no rate limit, 6 attempts, a budget of 20 retries.
 * The strings are cfg's: fx_tenant_config_clear frees them.
 */
void fx_tenant_config(struct cmb_config *cfg, struct fx_server *s, const char *dir, const char *ca_pem,
		      const char *secret);
void fx_tenant_config_clear(struct cmb_config *cfg);

/* ---- log capture --------------------------------------------------------- */

/* Log lines at level or above go to dir/log until fx_log_take. */
void fx_log_capture(const char *dir, enum cmb_log_level level);
/* Back to stderr at CMB_LOG_ERROR; what was logged meanwhile ("" when nothing). Caller frees. */
char *fx_log_take(void);

#endif
