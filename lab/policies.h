/*
 * policies.h - endpoint security policies in the lab (docs/wire-format.md
 * §9, docs/lab.md "Endpoint security policies"):
 *
 *  policies.c     the tenant: Graph beta configurationPolicies (create,
 *                 list, get, settings, assignments, update, delete,
 *                 assign), the gateway's PolicyStatusPost, and the Graph
 *                 surfaces that show what was posted
 *                 (configManagerCollections/getPolicySummary, the
 *                 DeviceStatusesByConfigurationProfile export job); the
 *                 `policy` command.
 *  policystore.c  the site: cmbridge's policy document store on the
 *                 AdminService's v1.0 route (PUT, DELETE, list, get) and
 *                 the simulated compliance of its targets.
 *
 * The other files only call these hooks. Nothing here is taken from the
 * connector's code: the shapes come from Microsoft's documentation, or are
 * cmbridge's own and written down in wire-format §9.
 */
#ifndef CMB_LAB_POLICIES_H
#define CMB_LAB_POLICIES_H

#include "lab.h"

/* conf.c: defaults before lab.conf is read; one [policies] entry (1 =
 * taken, 0 = unknown or invalid); the checks after reading (-1 with a
 * message on stderr); the lines lab_conf_save appends. */
void lab_policies_conf_defaults(struct lab_conf *c);
int lab_policies_conf_entry(struct lab_conf *c, const char *name, const char *value);
int lab_policies_conf_check(const struct lab_conf *c);
void lab_policies_conf_save(const struct lab_conf *c, struct lab_buf *b);

/* server.c: the tables in lab.db and the counters (after lab_actions_up);
 * freed at the end. write_route: a request whose lost reply must not undo
 * its effect (fault reply-lost applies: site PUT/DELETE of a document, the
 * tenant's PolicyStatusPost). */
int lab_policies_up(struct lab *lab, char *err, size_t errlen);
void lab_policies_free(struct lab *lab);
bool lab_policies_write_route(bool site, const char *method, const char *url);

/* tenant.c: the tenant routes of this module (1 = handled). */
int lab_policies_tenant(struct lab *lab, const struct lab_req *q, struct lab_reply *r);

/* site.c: /AdminService/v1.0/... after the site's authentication; rest is
 * the path after "/AdminService" (1 = handled). */
int lab_policies_site(struct lab *lab, const struct lab_req *q, const char *host, const char *rest,
		      struct lab_reply *r);

/* tenant.c /_lab/stats: appends "policies":{...}, (flat integers). */
void lab_policies_stats(struct lab *lab, struct lab_buf *b);

/* main.c: `policy DIR create|update|assign|delete|list ...`. */
int lab_policies_cmd(int argc, char **argv);

/* ---- between policies.c and policystore.c ----------------------------------- */

/* The route counters of this module, in lab_route_names order from
 * R_POL_FIRST (server.c). */
enum {
	P_CREATE, P_LIST, P_GET, P_PATCH, P_DELETE, P_SETTINGS, P_ASSIGNMENTS, P_ASSIGN, P_STATUS_POST,
	P_SUMMARY, P_EXPORT_POST, P_EXPORT_GET, P_EXPORT_DOWNLOAD,
	P_SITE_PUT, P_SITE_DELETE, P_SITE_LIST, P_SITE_GET, P_SITE_COMPLIANCE, P_NROUTES
};

struct lab_policies {
	atomic_llong graph_writes, status_posts, status_replayed, status_accepted, status_devices;
	atomic_llong site_puts, site_created, site_updated, site_repeats, site_rejected, site_conflicts,
		site_deletes, site_delete_unknown, compliance_reads;
};

/* policystore.c: its tables; the site counters inside "policies". */
int lab_policystore_up(struct lab *lab, char *err, size_t errlen);
void lab_policystore_stats(struct lab *lab, struct lab_buf *b);

/* The endpoint security template families a policy document may carry:
 * the endpointSecurity* members of deviceManagementConfigurationTemplateFamily
 * in the reference CSDL. Returns the index or -1. */
int lab_policy_family(const char *s);
extern const char *const lab_policy_families[];

#endif
