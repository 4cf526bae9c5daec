/*
 * report.h - `cmbridge status [--json] [--check]`: what the state says
 * (read-only, no lock: it works while `run` runs, and creates nothing)
 * and, when a daemon runs, what it says over the control socket (its
 * activity, the next delta and full times).
 *
 * Gathered once into a struct cmb_report, then written as text, JSON, one
 * monitoring line, the daemon's status page (status_page.c) or /metrics
 * (metrics.c): one gathering, so they all say the same.
 *
 * Real cycles only: dry runs (`diff`, `sync --dry-run`) are not cycles.
 * --check is a monitoring check (Nagios plugin exit codes, one line):
 * 0 OK, 1 WARNING (the deletion guard holds a cycle), 2 CRITICAL (the
 * last cycle failed, or ended longer ago than [sync] max_age), 3 UNKNOWN
 * (no state or no cycle yet, state unreadable). docs/operations.md.
 */
#ifndef CMB_REPORT_H
#define CMB_REPORT_H

#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "connector/config/config.h"
#include "connector/store/state.h"

enum cmb_check_status { CMB_CHECK_OK = 0, CMB_CHECK_WARNING = 1, CMB_CHECK_CRITICAL = 2, CMB_CHECK_UNKNOWN = 3 };

#define CMB_REPORT_CYCLES 10           /* real cycles shown */
#define CMB_REPORT_ACTIONS 10          /* recent actions shown */
#define CMB_REPORT_N_ACTION_STATES (CMB_ACTION_STATE_NOT_SUPPORTED + 1)
#define CMB_REPORT_N_QUARANTINE_KINDS (CMB_QUARANTINE_DUPLICATE + 1)
#define CMB_REPORT_N_POLICY_STATES 8

/*
 * Everything `status` shows. Nothing in it points into the configuration
 * (copied: the daemon's report outlives a reload). Strings and arrays are
 * the report's (cmb_report_free).
 */
struct cmb_report {
	/* the configuration it was gathered with */
	char *site_code;
	int staging;
	long delete_threshold, delete_threshold_percent, change_threshold, change_threshold_percent;
	long max_age;                    /* [sync] max_age, or 3 x interval */
	/* the state */
	char *no_state;                  /* "no state yet ..." when there is none */
	struct cmb_cycle *all;
	size_t n_all;
	const struct cmb_cycle *cy[CMB_REPORT_CYCLES]; /* the newest real cycles, newest first */
	size_t n;
	const struct cmb_cycle *last;    /* the newest real cycle that ended */
	int64_t last_success;            /* when the newest cycle that ended ok or staging ended; 0: none */
	long devices, quarantined, quar_kind[CMB_REPORT_N_QUARANTINE_KINDS];
	long actions_open, actions_failed, outbox;
	long actions_by_state[CMB_REPORT_N_ACTION_STATES];
	struct cmb_action *recent;       /* the newest CMB_REPORT_ACTIONS actions, newest first */
	size_t n_recent;
	/* Policies by state (enum cmb_policy_state order, its texts); policies_known 0 when not gathered. */
	int policies_known;
	size_t n_policy_states;
	struct { const char *state; long n; } policies[CMB_REPORT_N_POLICY_STATES];
	long held;                       /* removals the deletion guard holds (last cycle) */
	long changes_held;               /* changes the change guard holds (last cycle), with its removals */
	long in_flight;                  /* uploads whose outcome is unknown (docs/safety.md) */
	char **in_flight_keys;           /* the first of them, in key order */
	size_t n_in_flight_keys;
	char guard[256];                 /* why, as "300 > 180 = 10% of 1801 attached" */
	/* the tenant certificate */
	int cert_rc;                     /* 0: the certificate below was read */
	int64_t not_after, days_left;
	char *subject;
	int soon;
	/* the daemon's view (ctl.h's status reply), NULL when none runs */
	yajl_val daemon;
};

/*
 * Gathers the report: from st when given (the daemon's own connection,
 * between tasks), else from the state opened read-only (no state yet is
 * a report saying so, not an error); the daemon's view over the control
 * socket only when st is NULL (the daemon sets its own: cmb_report_free
 * frees it). *out is the caller's (cmb_report_free), untouched on failure.
 */
int cmb_report_gather(struct cmb_report **out, const struct cmb_config *cfg, struct cmb_state *st);
void cmb_report_free(struct cmb_report *r);

/* The report as `status --json` writes it: one object. */
void cmb_report_json(yajl_gen g, const struct cmb_report *r);
/*
 * The --check verdict at now: the status and, in what, why (one line,
 * e.g. "cycle 12 holds 300 removals: ..."); *age the last cycle's age in
 * seconds (0 when none).
 */
enum cmb_check_status cmb_report_check(const struct cmb_report *r, int64_t now, char *what, size_t cap,
				       int64_t *age);
/* "OK", "WARNING", "CRITICAL", "UNKNOWN". */
const char *cmb_report_check_name(enum cmb_check_status st);
/* The daemon's view's string member name, or NULL (no daemon, or no such member). */
const char *cmb_report_daemon_str(const struct cmb_report *r, const char *name);
/* The same for an integer member (0 when none). */
long long cmb_report_daemon_int(const struct cmb_report *r, const char *name);
/*
 * What a guard holds, one line (status, the page): the deletion guard's,
 * or with change the change guard's, with how to approve.
 */
void cmb_report_guard_text(const struct cmb_report *r, int change, char *out, size_t cap);
/* The last error a cycle or the daemon kept, or NULL. */
const char *cmb_report_last_error(const struct cmb_report *r);

/* A cycle's counters as a JSON object (status, the sync command, control replies). */
void cmb_report_counts_json(yajl_gen g, const struct cmb_cycle_counts *c);
/* key: t as an ISO 8601 time. */
void cmb_report_kv_time(yajl_gen g, const char *key, int64_t t);
void cmb_report_action_json(yajl_gen g, const struct cmb_action *a);
/* 1 when a cycle of that status is a real one (not a dry run). */
int cmb_report_real_cycle(const char *status);

/*
 * Prints the report (text, or --json) to stdout. Returns 0 (or a
 * negative code when the report could not be made); with check, the
 * check's exit status instead (enum cmb_check_status).
 */
int cmb_report_status(const struct cmb_config *cfg, int json, int check);

#endif
