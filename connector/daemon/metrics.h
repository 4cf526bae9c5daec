/*
 * metrics.h - what `cmbridge run` serves on [metrics] listen: /metrics
 * (the Prometheus text format, prom.h), /healthz (status --check's rule)
 * and / (the status page, status_page.h), with libmicrohttpd's own
 * thread. docs/operations.md, "Metrics and status page".
 *
 * The main loop feeds it: each cycle's result and each relay pass, the
 * report it gathers after them from its own state connection, and the
 * view `status` gets from the control socket. Requests are answered from
 * that snapshot under a mutex, like ctl.c's status view. Must never:
 * touch the state, the adapters or the configuration from the server's
 * thread, answer anything but GET and HEAD, or let a signal be delivered
 * to its thread.
 */
#ifndef CMB_METRICS_H
#define CMB_METRICS_H

#include <stdint.h>

#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/daemon/report.h"
#include "connector/engine/relay.h"
#include "connector/engine/sync.h"

/* The cycle duration histogram's bounds, seconds: suited to 1 s - 30 min. */
#define CMB_METRICS_DURATION_BOUNDS { 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800 }
#define CMB_METRICS_N_BOUNDS 10
/* The statuses a real cycle ends with, as cmbridge_sync_cycles_total labels them. */
#define CMB_METRICS_STATUSES { "ok", "failed", "staging", "deletion-threshold-exceeded", "change-threshold-exceeded" }
#define CMB_METRICS_N_STATUSES 5

/* What this process did since it started (counters), and the last complete cycle's devices. */
struct cmb_metrics_counters {
	int64_t started;                               /* epoch seconds */
	long cycles[2][CMB_METRICS_N_STATUSES];        /* [full][status] */
	long duration[2][CMB_METRICS_N_BOUNDS + 1];    /* [full][bucket], not cumulative; the last above 1800 s */
	double duration_sum[2];
	struct cmb_cycle_counts records;               /* the cycles' counts, summed */
	long collections_uploaded, collections_removed;
	int have_devices;                              /* a cycle's read completed */
	struct cmb_map_tally devices;                  /* its mapped records */
	long relay_passes[2];                          /* [failed] */
	int64_t relay_last_success;                    /* epoch seconds of the last good pass; 0: none */
	struct cmb_relay_stats relay;                  /* the passes' stats, summed */
};

/* Adds a cycle that ended to c (dry runs are not cycles: ignored). */
void cmb_metrics_count_cycle(struct cmb_metrics_counters *c, int full, const struct cmb_sync_result *res);
/* Adds a relay pass (its stats after minus before, the pass's return code) to c at now. */
void cmb_metrics_count_relay(struct cmb_metrics_counters *c, const struct cmb_relay_stats *before,
			     const struct cmb_relay_stats *after, int rc, int64_t now);
/* /metrics from r (NULL: no report yet) and c at now. */
void cmb_metrics_write(struct cmb_buf *b, const struct cmb_report *r, const struct cmb_metrics_counters *c,
		       int64_t now);

struct cmb_metrics;

/*
 * Binds cfg's [metrics] listen and starts serving (nothing, *out NULL,
 * when it is not set). CMB_EIO naming the address when it cannot be
 * bound. *out is the caller's (cmb_metrics_stop).
 */
int cmb_metrics_start(struct cmb_metrics **out, const struct cmb_config *cfg);
/* The port it listens on (the one bound, for listen = ...:0). */
unsigned cmb_metrics_port(const struct cmb_metrics *m);
/* Stops serving and frees m (NULL is fine). */
void cmb_metrics_stop(struct cmb_metrics *m);

/* The main loop's feed; each accepts m NULL (no listener) and does nothing then. */
void cmb_metrics_cycle(struct cmb_metrics *m, int full, const struct cmb_sync_result *res);
void cmb_metrics_relay(struct cmb_metrics *m, const struct cmb_relay_stats *before,
		       const struct cmb_relay_stats *after, int rc);
/* The report requests are answered from from now on (taken; freed when replaced or at stop). */
void cmb_metrics_publish(struct cmb_metrics *m, struct cmb_report *r);
/* The daemon's view (ctl.h's status reply, copied): the page's pid, activity and next runs. */
void cmb_metrics_view(struct cmb_metrics *m, const char *view_json);

#endif
