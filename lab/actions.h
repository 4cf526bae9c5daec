/*
 * actions.h - remote actions in the lab (docs/wire-format.md §8, docs/lab.md
 * "Remote actions"): the Graph trigger routes and deviceActionResults, the
 * gateway notification channel (long poll) and NotificationResult, the
 * site's SMS_ClientOperation / SMS_ClientOperationStatus / SMS_CN_ClientStatus
 * classes and BlockClients, the admin routes and the `trigger` and `actions`
 * commands. Everything lives in actions.c; the other files only call these
 * hooks. Never logs a secret or a token.
 */
#ifndef CMB_LAB_ACTIONS_H
#define CMB_LAB_ACTIONS_H

#include "lab.h"

/* conf.c: defaults before lab.conf is read; one [actions] or
 * [tenant] admin_client_id entry (1 = taken, 0 = invalid); after reading
 * (derives admin_client_id for labs made before it existed; checks ranges,
 * -1 with a message on stderr); the lines lab_conf_save appends. */
void lab_actions_conf_defaults(struct lab_conf *c);
int lab_actions_conf_entry(struct lab_conf *c, const char *sec, const char *name, const char *value);
int lab_actions_conf_check(struct lab_conf *c);
void lab_actions_conf_save(const struct lab_conf *c, struct lab_buf *b);

/* init: writes DIR/admin-secret (0600) unless it exists. */
int lab_actions_write_secret(const struct lab_conf *c);

/* up: tables in lab.db, admin secret, operations.log, the long-poll timer.
 * stop resumes every held long poll (before the servers stop); free after. */
int lab_actions_up(struct lab *lab, char *err, size_t errlen);
void lab_actions_stop(struct lab *lab);
void lab_actions_free(struct lab *lab);
/* Finalizes the statements the action routes keep; before lab->db is closed. */
void lab_actions_db_close(struct lab *lab);

/* server.c: holds the connection (MHD_Connection *) of a long poll whose
 * handler set r->park_until_ms; it is resumed at that time or as soon as an
 * action is triggered, and the handler runs again (q->parked_until_ms set). */
void lab_actions_park(struct lab *lab, void *mhd_connection, const struct lab_reply *r);

/* tenant.c: the token endpoint for the admin app registration (returns 1
 * when client_id is the admin's and r holds the reply, 0 otherwise); the
 * routes of this module (1 = handled); deviceActionResults for a device
 * object in obj (caller holds db_lock; sel = $select names, nsel 0 = all). */
int lab_actions_admin_token(struct lab *lab, const struct lab_req *q, const char *tenant, struct lab_reply *r);
int lab_actions_tenant(struct lab *lab, const struct lab_req *q, struct lab_reply *r);
void lab_actions_decorate(struct lab *lab, const char *device_id, struct lab_buf *obj, char *const *sel, int nsel);
/* tenant.c: the Bearer check of every tenant route (0 = valid). */
int lab_tenant_bearer(struct lab *lab, const struct lab_req *q, struct lab_reply *r);

/* site.c: the site routes of this module (1 = handled): GET of the classes
 * SMS_ClientOperation, SMS_ClientOperationStatus, SMS_CN_ClientStatus and
 * POST of the methods SMS_ClientOperation.InitiateClientOperation and
 * SMS_Collection.BlockClients. cls is the class the URL named (odata.c),
 * method the text after its '.' or NULL; host as served. */
int lab_actions_site(struct lab *lab, const struct lab_req *q, const char *host, int cls, const char *method,
		     struct lab_reply *r);

/* tenant.c /_lab/stats: appends the site counters (inside "site") and the
 * "actions" object: ,"operations":..},"actions":{..}, */
void lab_actions_stats(struct lab *lab, struct lab_buf *b);

/* The CLI's HTTPS client for the running lab's tenant (the `trigger` and
 * `policy` commands): method (NULL: GET, or POST with a body), route,
 * headers (NULL-terminated), body or NULL; returns the status or -1 with
 * a message on stderr. lab_cli_admin_auth gets a Graph token for the admin
 * app registration and returns "Authorization: Bearer ..." (caller frees)
 * or NULL (message on stderr, naming cmd). lab_cli_err_message: the
 * message of a Graph or Entra error body (static buffer). */
long lab_cli_call(const struct lab_conf *c, const char *method, const char *route, const char *const *hdrs,
		  const char *body, struct lab_buf *out);
char *lab_cli_admin_auth(const struct lab_conf *c, const char *cmd);
const char *lab_cli_err_message(const char *body);

/* main.c: `trigger` and `actions`. */
int lab_actions_cmd_trigger(int argc, char **argv);
int lab_actions_cmd_list(int argc, char **argv);

#endif
