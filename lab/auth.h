/*
 * auth.h - how the lab checks credentials (docs/wire-format.md §6-7,
 * docs/lab.md "Authentication"): client assertions at the token endpoint
 * (auth_assertion.c), the site's schemes none/basic/ntlm/negotiate/bearer
 * and mutual TLS (auth_site.c, auth_ntlm.c, auth_gss.c).
 *
 * Every check is real: signatures verified with OpenSSL, NTLMv2 proofs
 * recomputed from the password, Kerberos tickets accepted by GSS-API.
 * Nothing here logs a secret, a token or a key.
 */
#ifndef CMB_LAB_AUTH_H
#define CMB_LAB_AUTH_H

#include "lab.h"

/* init: the client certificates (client*.pem/.key, site-client.pem/.key)
 * and the defaults of the auth keys in c. Needs ca.pem/ca.key in c->dir. */
int lab_auth_init_files(struct lab_conf *c);

/* up: loads the registered certificate, the site's CA for mutual TLS and the
 * GSS acceptor. On failure err says what and where. lab->auth is freed by
 * lab_auth_free (NULL allowed). */
int lab_auth_up(struct lab *lab, char *err, size_t errlen);
void lab_auth_free(struct lab *lab);

/* The CA PEM that the site's TLS layer trusts for client certificates, or
 * NULL when [site] client_ca is not set. Owned by lab->auth. */
const char *lab_auth_site_trust(const struct lab *lab);

/* An error of the token endpoint: status, OAuth error, AADSTS code, text. */
struct lab_auth_err {
	int status;
	const char *error;
	int code;
	char msg[640];
};

/* Token endpoint client authentication, after client_id was matched.
 * secret/atype/assertion are the form values (NULL when absent); aud is the
 * token endpoint URL as requested. 0 = authenticated; -1 = e filled. */
int lab_auth_client(struct lab *lab, const char *client_id, const char *secret, const char *atype,
		    const char *assertion, const char *aud, struct lab_auth_err *e);

/* True when scope is "<bearer_audience>/.default" (the site's resource). */
bool lab_auth_site_scope(const struct lab *lab, const char *scope);

/* Site request check for [site] auth and mutual TLS. 0 = allowed (r may
 * carry a mutual-auth header); -1 = r holds the 401/403 reply. */
int lab_site_auth(struct lab *lab, const struct lab_req *q, struct lab_reply *r);

/* Per-connection state (NTLM handshake, authenticated flag): server.c keeps
 * one per connection as its MHD socket context, made by lab_auth_conn_new
 * when the connection starts and freed (NULL allowed) when it closes. */
void *lab_auth_conn_new(void);
void lab_auth_conn_free(void *state);

/* ---- inside auth_*.c ---------------------------------------------------- */

struct lab_jti {
	char *id;
	int64_t exp;
};

struct lab_auth {
	struct evp_pkey_st *client_key;    /* public key of the registered certificate */
	unsigned char x5t_s256[32], x5t[20];
	int64_t cert_not_after;
	char *cert_path;
	pthread_mutex_t jti_lock;          /* jtis of accepted assertions, kept until their exp */
	struct lab_jti *jtis;
	size_t njti, jcap;
	char *site_trust;                  /* [site] client_ca PEM */
	bool gss;                          /* negotiate acceptor ready */
};

struct lab_auth_conn {
	bool authenticated;        /* NTLM or Negotiate succeeded on this connection */
	bool ntlm_pending;         /* a challenge was sent; next is the type 3 */
	unsigned char challenge[8];
};

/* auth_ntlm.c: processes one "Authorization: NTLM <b64>" value. Returns 1
 * authenticated, 0 challenge to send (*out = malloc'd header value "NTLM
 * <b64>"), -1 refused. */
int lab_ntlm_step(struct lab *lab, struct lab_auth_conn *st, const char *b64, char **out);

/* auth_gss.c: acceptor setup and one "Negotiate <b64>" step. Returns 1
 * accepted (*out = "Negotiate <b64>" mutual token or NULL), -1 refused. */
int lab_gss_init(const char *keytab, char *err, size_t errlen);
int lab_gss_accept(const char *b64, char **out, char *who, size_t wholen);

#endif
