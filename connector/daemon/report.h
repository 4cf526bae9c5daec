/*
 * report.h - `cmbridge status [--json] [--check]`: what the state says
 * (read-only, no lock: it works while `run` runs, and creates nothing)
 * and, when a daemon runs, what it says over the control socket (its
 * activity, the next delta and full times).
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

#include "connector/config/config.h"
#include "connector/store/state.h"

enum cmb_check_status { CMB_CHECK_OK = 0, CMB_CHECK_WARNING = 1, CMB_CHECK_CRITICAL = 2, CMB_CHECK_UNKNOWN = 3 };

/* A cycle's counters as a JSON object (status, the sync command, control replies). */
void cmb_report_counts_json(yajl_gen g, const struct cmb_cycle_counts *c);
/* key: t as an ISO 8601 time. */
void cmb_report_kv_time(yajl_gen g, const char *key, int64_t t);
/* 1 when a cycle of that status is a real one (not a dry run). */
int cmb_report_real_cycle(const char *status);

/*
 * Prints the report (text, or --json) to stdout. Returns 0 (or a
 * negative code when the report could not be made); with check, the
 * check's exit status instead (enum cmb_check_status).
 */
int cmb_report_status(const struct cmb_config *cfg, int json, int check);

#endif
