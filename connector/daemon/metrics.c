/*
 * metrics.c - the metrics, /healthz and the status page (metrics.h): the
 * counters the main loop feeds, /metrics written from them and the last
 * report, and the libmicrohttpd server that answers from that snapshot.
 */
#include "connector/daemon/metrics.h"
#include "connector/daemon/prom.h"
#include "connector/daemon/status_page.h"
#include "connector/base/addr.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/transport/request.h"

#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTION_LIMIT 16
#define CONNECTION_TIMEOUT_S 10
#define CONNECTION_MEMORY 32768
#define BODY_MAX (4u << 20)

/* ---- counting ---------------------------------------------------------- */

static const char *const statuses[CMB_METRICS_N_STATUSES] = CMB_METRICS_STATUSES;
static const double bounds[CMB_METRICS_N_BOUNDS] = CMB_METRICS_DURATION_BOUNDS;

static void add_counts(struct cmb_cycle_counts *sum, const struct cmb_cycle_counts *c)
{
	long *s = (long *)sum;
	const long *a = (const long *)c;
	_Static_assert(sizeof(struct cmb_cycle_counts) % sizeof(long) == 0, "cmb_cycle_counts holds longs only");
	for (size_t i = 0; i < sizeof(*c) / sizeof(long); i++)
		s[i] += a[i];
}

void cmb_metrics_count_cycle(struct cmb_metrics_counters *c, int full, const struct cmb_sync_result *res)
{
	size_t st = 0;
	while (st < CMB_METRICS_N_STATUSES && strcmp(statuses[st], res->status) != 0)
		st++;
	if (st == CMB_METRICS_N_STATUSES)
		return; /* a dry run, or a cycle that never began */
	full = full ? 1 : 0;
	c->cycles[full][st]++;
	size_t b = 0;
	while (b < CMB_METRICS_N_BOUNDS && res->seconds > bounds[b])
		b++;
	c->duration[full][b]++;
	c->duration_sum[full] += res->seconds;
	add_counts(&c->records, &res->counts);
	c->collections_uploaded += res->collections_uploaded;
	c->collections_removed += res->collections_removed;
	if (strcmp(res->status, "failed") != 0) {
		/* The read completed: its tally covers every device in scope. */
		c->devices = res->devices;
		c->have_devices = 1;
	}
}

void cmb_metrics_count_relay(struct cmb_metrics_counters *c, const struct cmb_relay_stats *before,
			     const struct cmb_relay_stats *after, int rc, int64_t now)
{
	long *s = (long *)&c->relay;
	const long *a = (const long *)after, *b = (const long *)before;
	_Static_assert(sizeof(struct cmb_relay_stats) % sizeof(long) == 0, "cmb_relay_stats holds longs only");
	for (size_t i = 0; i < sizeof(*after) / sizeof(long); i++)
		s[i] += a[i] - b[i];
	c->relay_passes[rc < 0 && rc != CMB_ECANCELED]++;
	if (rc == 0)
		c->relay_last_success = now;
}

/* ---- /metrics ------------------------------------------------------------ */

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* A family of one sample without labels. */
static void one(struct cmb_buf *b, const char *name, const char *type, const char *help, double v)
{
	cmb_prom_family(b, name, type, help);
	cmb_prom_sample(b, name, NULL, v);
}

static void write_cycles(struct cmb_buf *b, const struct cmb_metrics_counters *c)
{
	static const char *const kinds[2] = { "delta", "full" };
	cmb_prom_family(b, "cmbridge_sync_cycles_total", "counter",
			"Sync cycles this process ran, by kind and how they ended");
	for (int k = 0; k < 2; k++)
		for (int s = 0; s < CMB_METRICS_N_STATUSES; s++)
			cmb_prom_sample(b, "cmbridge_sync_cycles_total", L("kind", kinds[k], "status", statuses[s]),
					(double)c->cycles[k][s]);
	cmb_prom_family(b, "cmbridge_sync_cycle_duration_seconds", "histogram", "How long the sync cycles took");
	for (int k = 0; k < 2; k++)
		cmb_prom_histogram(b, "cmbridge_sync_cycle_duration_seconds", L("kind", kinds[k]), bounds,
				   c->duration[k], CMB_METRICS_N_BOUNDS, c->duration_sum[k]);
}

static void write_records(struct cmb_buf *b, const struct cmb_metrics_counters *c)
{
	const struct cmb_cycle_counts *n = &c->records;
	const struct { const char *outcome; long v; } o[] = {
		{ "added", n->added }, { "changed", n->changed }, { "refreshed", n->refreshed },
		{ "unchanged", n->unchanged }, { "removed", n->removed }, { "rejected", n->rejected },
		{ "quarantined", n->quarantined }, { "skipped", n->skipped }, { "duplicates", n->duplicates },
	};
	one(b, "cmbridge_sync_devices_read_total", "counter", "Devices read from the site by the cycles",
	    (double)n->site_records);
	cmb_prom_family(b, "cmbridge_sync_records_total", "counter",
			"What the cycles did with the devices they read (removed: removals the tenant acknowledged)");
	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
		cmb_prom_sample(b, "cmbridge_sync_records_total", L("outcome", o[i].outcome), (double)o[i].v);
	one(b, "cmbridge_sync_upload_requests_total", "counter", "Upload requests (device and collection batches)",
	    (double)n->upload_requests);
	cmb_prom_family(b, "cmbridge_sync_collections_total", "counter",
			"configManagerCollection records uploaded and removed");
	cmb_prom_sample(b, "cmbridge_sync_collections_total", L("outcome", "uploaded"), (double)c->collections_uploaded);
	cmb_prom_sample(b, "cmbridge_sync_collections_total", L("outcome", "removed"), (double)c->collections_removed);
}

static void write_tally(struct cmb_buf *b, const struct cmb_metrics_counters *c)
{
	if (!c->have_devices)
		return; /* no cycle has read the site yet: nothing to say, rather than zeros */
	cmb_prom_family(b, "cmbridge_devices_by_management_agent", "gauge",
			"Devices mapped by the last complete cycle, by managementAgent");
	for (int i = 0; i < CMB_MAP_N_AGENTS; i++)
		cmb_prom_sample(b, "cmbridge_devices_by_management_agent", L("management_agent", cmb_map_agent_names[i]),
				(double)c->devices.agent[i]);
	cmb_prom_family(b, "cmbridge_devices_by_client_health", "gauge",
			"Devices mapped by the last complete cycle, by ConfigMgr client health state");
	for (int i = 0; i < CMB_MAP_N_HEALTH; i++)
		cmb_prom_sample(b, "cmbridge_devices_by_client_health", L("state", cmb_map_health_names[i]),
				(double)c->devices.health[i]);
	cmb_prom_family(b, "cmbridge_devices_by_join_type", "gauge", "Devices mapped by the last complete cycle, by joinType");
	for (int i = 0; i < CMB_MAP_N_JOIN; i++)
		cmb_prom_sample(b, "cmbridge_devices_by_join_type", L("join_type", cmb_map_join_names[i]),
				(double)c->devices.join[i]);
}

static void write_state(struct cmb_buf *b, const struct cmb_report *r, int64_t now)
{
	char what[1024];
	int64_t age;
	one(b, "cmbridge_check_status", "gauge", "status --check's verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
	    (double)cmb_report_check(r, now, what, sizeof(what), &age));
	one(b, "cmbridge_devices_attached", "gauge", "Devices the tenant has acknowledged", (double)r->devices);
	one(b, "cmbridge_uploads_in_flight", "gauge", "Uploads whose outcome is unknown until the next cycle",
	    (double)r->in_flight);
	cmb_prom_family(b, "cmbridge_quarantined_records", "gauge", "Records held back, by why");
	for (int k = 0; k < CMB_REPORT_N_QUARANTINE_KINDS; k++)
		cmb_prom_sample(b, "cmbridge_quarantined_records",
				L("kind", cmb_state_quarantine_kind_name((enum cmb_quarantine_kind)k)), (double)r->quar_kind[k]);
	cmb_prom_family(b, "cmbridge_guard_held", "gauge", "What the deletion and the change guard hold of the last cycle");
	cmb_prom_sample(b, "cmbridge_guard_held", L("guard", "deletion"), (double)r->held);
	cmb_prom_sample(b, "cmbridge_guard_held", L("guard", "change"), (double)r->changes_held);
	cmb_prom_family(b, "cmbridge_actions", "gauge", "Remote actions in the inbox, by state");
	for (int i = 0; i < CMB_REPORT_N_ACTION_STATES; i++)
		cmb_prom_sample(b, "cmbridge_actions", L("state", cmb_state_action_state_name((enum cmb_action_state)i)),
				(double)r->actions_by_state[i]);
	one(b, "cmbridge_action_results_waiting", "gauge", "Action results the tenant has not acknowledged yet",
	    (double)r->outbox);
	if (r->policies_known) {
		cmb_prom_family(b, "cmbridge_policies", "gauge", "Endpoint security policies, by state");
		for (size_t i = 0; i < r->n_policy_states; i++)
			cmb_prom_sample(b, "cmbridge_policies", L("state", r->policies[i].state), (double)r->policies[i].n);
	}
	if (r->cert_rc == 0) {
		cmb_prom_family(b, "cmbridge_certificate_expiry_timestamp_seconds", "gauge",
				"When the tenant credential's certificate expires");
		cmb_prom_sample(b, "cmbridge_certificate_expiry_timestamp_seconds", NULL, (double)r->not_after);
	}
}

static void write_relay(struct cmb_buf *b, const struct cmb_metrics_counters *c)
{
	const struct cmb_relay_stats *s = &c->relay;
	const struct { const char *event; long v; } e[] = {
		{ "received", s->received }, { "refused", s->refused }, { "done", s->done },
		{ "failed", s->failed },     { "reported", s->reported },
	};
	cmb_prom_family(b, "cmbridge_relay_passes_total", "counter", "Action relay passes, by result");
	cmb_prom_sample(b, "cmbridge_relay_passes_total", L("result", "ok"), (double)c->relay_passes[0]);
	cmb_prom_sample(b, "cmbridge_relay_passes_total", L("result", "failed"), (double)c->relay_passes[1]);
	cmb_prom_family(b, "cmbridge_relay_actions_total", "counter",
			"Actions the relay received, refused, saw done or failed, and results the tenant acknowledged");
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
		cmb_prom_sample(b, "cmbridge_relay_actions_total", L("event", e[i].event), (double)e[i].v);
	one(b, "cmbridge_relay_site_operations_total", "counter", "Client operations the relay created at the site",
	    (double)s->operations);
}

static void write_transport(struct cmb_buf *b)
{
	struct cmb_request_totals t[CMB_REQUEST_SIDES];
	cmb_request_totals(t);
	static const struct { const char *name, *help; size_t off; } f[] = {
#define F(name, help, field) { name, help, offsetof(struct cmb_request_totals, field) }
		F("cmbridge_http_requests_total", "HTTP exchanges, retries included, by side", requests),
		F("cmbridge_http_retries_total", "Requests tried again after a failure, by side", retries),
		F("cmbridge_http_throttled_total", "429 Too Many Requests answers, by side", throttled),
		F("cmbridge_credential_renewals_total", "Credentials renewed after a 401, by side", renewals),
#undef F
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		cmb_prom_family(b, f[i].name, "counter", f[i].help);
		for (int s = 0; s < CMB_REQUEST_SIDES; s++)
			cmb_prom_sample(b, f[i].name, L("side", cmb_request_side_name((enum cmb_request_side)s)),
					(double)*(const long *)((const char *)&t[s] + f[i].off));
	}
	one(b, "cmbridge_tokens_obtained_total", "counter", "Access tokens obtained from the token endpoint",
	    (double)t[CMB_REQUEST_SIDE_TOKEN].tokens);
}

void cmb_metrics_write(struct cmb_buf *b, const struct cmb_report *r, const struct cmb_metrics_counters *c,
		       int64_t now)
{
	cmb_prom_family(b, "cmbridge_build_info", "gauge", "The version of cmbridge serving these metrics");
	cmb_prom_sample(b, "cmbridge_build_info", L("version", CMB_VERSION), 1);
	one(b, "cmbridge_start_time_seconds", "gauge", "When this process started", (double)c->started);
	cmb_prom_family(b, "cmbridge_last_success_timestamp_seconds", "gauge",
			"When an engine last succeeded: sync, the last cycle that ended ok; relay, the last good pass");
	if (r && r->last_success)
		cmb_prom_sample(b, "cmbridge_last_success_timestamp_seconds", L("engine", "sync"), (double)r->last_success);
	if (c->relay_last_success)
		cmb_prom_sample(b, "cmbridge_last_success_timestamp_seconds", L("engine", "relay"),
				(double)c->relay_last_success);
	write_cycles(b, c);
	write_records(b, c);
	write_tally(b, c);
	if (r)
		write_state(b, r, now);
	write_relay(b, c);
	write_transport(b);
}

/* ---- the server ---------------------------------------------------------- */

struct cmb_metrics {
	pthread_mutex_t lock;
	struct MHD_Daemon *mhd;
	unsigned port;
	struct cmb_report *report;       /* the last published; NULL until the first */
	char *view;                      /* the daemon's view, JSON */
	struct cmb_metrics_counters c;
};

/* A response of text (copied) with status; the page's headers on HTML. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const char *text,
			     size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (strncmp(ctype, "text/html", 9) == 0)
		MHD_add_response_header(resp, "Content-Security-Policy", CMB_STATUS_PAGE_CSP);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The body of url at now, under m's lock; its status, or 0 for an unknown path. */
static unsigned render(struct cmb_metrics *m, const char *url, struct cmb_buf *b, const char **ctype)
{
	int64_t now = cmb_now();
	*ctype = "text/plain; charset=utf-8";
	if (strcmp(url, "/metrics") == 0) {
		*ctype = CMB_PROM_CONTENT_TYPE;
		cmb_metrics_write(b, m->report, &m->c, now);
		return MHD_HTTP_OK;
	}
	if (strcmp(url, "/healthz") == 0) {
		char what[1024];
		int64_t age;
		if (!m->report) {
			cmb_buf_addstr(b, "unknown: starting, no report gathered yet\n");
			return MHD_HTTP_SERVICE_UNAVAILABLE;
		}
		enum cmb_check_status st = cmb_report_check(m->report, now, what, sizeof(what), &age);
		static const char *const verdict[] = { "ok", "warning", "critical", "unknown" };
		if (st == CMB_CHECK_OK)
			cmb_buf_addstr(b, "ok\n");
		else
			cmb_buf_printf(b, "%s: %s\n", verdict[st], what);
		return st <= CMB_CHECK_WARNING ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	if (strcmp(url, "/") == 0) {
		*ctype = "text/html; charset=utf-8";
		if (!m->report) {
			cmb_buf_addstr(b, "<!DOCTYPE html><html><head><meta http-equiv=\"refresh\" content=\"5\">"
					  "<title>cmbridge</title></head><body><p>Starting.</p></body></html>\n");
			return MHD_HTTP_OK;
		}
		/* The daemon's view is parsed here so the page shows what `status` would now. */
		m->report->daemon = m->view ? yajl_tree_parse(m->view, NULL, 0) : NULL;
		cmb_status_page(b, m->report, now);
		yajl_tree_free(m->report->daemon);
		m->report->daemon = NULL;
		return MHD_HTTP_OK;
	}
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	(void)version, (void)upload_data, (void)upload_data_size, (void)req_cls;
	struct cmb_metrics *m = cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		static const char msg[] = "method not allowed: only GET and HEAD\n";
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
	}
	struct cmb_buf b = CMB_BUF_INIT(BODY_MAX);
	const char *ctype;
	pthread_mutex_lock(&m->lock);
	unsigned status = render(m, url, &b, &ctype);
	pthread_mutex_unlock(&m->lock);
	if (!status) {
		cmb_buf_addstr(&b, "not found: cmbridge serves /, /metrics and /healthz\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	enum MHD_Result ret = reply(conn, status, ctype, b.data ? b.data : "", b.len);
	cmb_buf_free(&b);
	return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	cmb_warn("metrics: %s", msg);
}

int cmb_metrics_start(struct cmb_metrics **out, const struct cmb_config *cfg)
{
	struct cmb_addr a;
	*out = NULL;
	if (!cfg->metrics_listen)
		return 0;
	if (cmb_addr_parse(cfg->metrics_listen, &a) < 0) /* the config loader checked it: a bug */
		return cmb_error_set(CMB_ECONFIG, "[metrics] listen: %s is not an address:port", cfg->metrics_listen);
	struct cmb_metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->c.started = cmb_now();
	/* Signals stay with the main thread: its handlers set the flags the loop reads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (a.ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a.ss, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!m->mhd) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return cmb_error_set(CMB_EIO, "[metrics] listen = %s: cannot listen there (in use, or not an address of "
				     "this host)", cfg->metrics_listen);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info ? info->port : 0;
	char where[80];
	cmb_addr_format(&a, m->port, where, sizeof(where));
	cmb_info("metrics: serving http://%s/ (/metrics, /healthz and the status page)", where);
	*out = m;
	return 0;
}

unsigned cmb_metrics_port(const struct cmb_metrics *m)
{
	return m ? m->port : 0;
}

void cmb_metrics_stop(struct cmb_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	cmb_report_free(m->report);
	free(m->view);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void cmb_metrics_cycle(struct cmb_metrics *m, int full, const struct cmb_sync_result *res)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	cmb_metrics_count_cycle(&m->c, full, res);
	pthread_mutex_unlock(&m->lock);
}

void cmb_metrics_relay(struct cmb_metrics *m, const struct cmb_relay_stats *before,
		       const struct cmb_relay_stats *after, int rc)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	cmb_metrics_count_relay(&m->c, before, after, rc, cmb_now());
	pthread_mutex_unlock(&m->lock);
}

void cmb_metrics_publish(struct cmb_metrics *m, struct cmb_report *r)
{
	if (!m) {
		cmb_report_free(r);
		return;
	}
	pthread_mutex_lock(&m->lock);
	struct cmb_report *old = m->report;
	m->report = r;
	pthread_mutex_unlock(&m->lock);
	cmb_report_free(old);
}

void cmb_metrics_view(struct cmb_metrics *m, const char *view_json)
{
	if (!m)
		return;
	char *copy = xstrdup(view_json);
	pthread_mutex_lock(&m->lock);
	char *old = m->view;
	m->view = copy;
	pthread_mutex_unlock(&m->lock);
	free(old);
}
