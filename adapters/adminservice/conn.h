/*
 * conn.h - the AdminService adapter's one connection to the site: the base
 * URL, the [site] credentials, one HTTP handle and the retry budget, shared
 * by the device reader and the operations (one handle and one credential
 * per endpoint, whatever the command). Requests go through the core's one
 * request loop (connector/transport/request.h).
 *
 * Must never: log or put in a message the password or the Authorization
 * header.
 */
#ifndef CMB_AS_CONN_H
#define CMB_AS_CONN_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "connector/transport/auth.h"
#include "connector/transport/request.h"

struct cmb_config;

struct cmb_as_conn {
	char *base;                       /* [site] url without the trailing '/' ("https://HOST/AdminService") */
	char *user;                       /* for messages: the [site] principal, NULL with auth = none */
	char *account;                    /* the account operations are created by ([site] username), or NULL */
	char *scheme;                     /* "Basic", "NTLM", "Negotiate", "Bearer"; NULL with none */
	struct cmb_site_auth *sauth;
	struct cmb_http *http;
	struct cmb_retry_policy policy;   /* [sync] retry options (cmb_retry_policy_from_config) */
	int refs;
};

/* Opens the connection from cfg ([site], [network], [sync]); no I/O. *out is the caller's (release it). */
int cmb_as_conn_open(struct cmb_as_conn **out, const struct cmb_config *cfg);
/* One more holder; each calls cmb_as_conn_release once. */
struct cmb_as_conn *cmb_as_conn_ref(struct cmb_as_conn *c);
void cmb_as_conn_release(struct cmb_as_conn *c);

/*
 * One user of the connection (the device reader, the operations): its own
 * retry budget and counters over the shared handle and credentials.
 */
struct cmb_as_client {
	struct cmb_as_conn *conn;
	struct cmb_retry_budget budget;   /* the current cycle's (reader) or call's (operations) */
	struct cmb_endpoint ep;
	struct cmb_request_counters counters;
};

/* Takes a reference on conn. */
void cmb_as_client_init(struct cmb_as_client *cl, struct cmb_as_conn *conn);
void cmb_as_client_clear(struct cmb_as_client *cl);
/* Starts a fresh retry budget: a new cycle, or (only_when_spent) a relay call after the last one spent it. */
void cmb_as_client_fresh_budget(struct cmb_as_client *cl, int only_when_spent);

/*
 * One request whose reply is a JSON object (a page of a small class, a
 * method's answer), into *out (the caller's, yajl_tree_free). body is JSON
 * or NULL. A 2xx reply that is empty: method calls (body set) get an empty
 * object, reads CMB_EPROTO; a cut-off JSON reply is CMB_ENETWORK (the
 * request may have been applied); another body is CMB_EPROTO.
 */
int cmb_as_client_json(struct cmb_as_client *cl, const char *method, const char *url, const char *body,
		       enum cmb_request_retry retry, const char *what, const char *resource, yajl_val *out);

#endif
