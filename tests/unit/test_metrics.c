/*
 * test_metrics.c - the Prometheus text writer and the HTML escaping, to
 * the byte; /metrics and the status page written from a report gathered
 * from a real state with hostile strings in it; the listener's answers
 * to GET, HEAD, other methods and unknown paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/daemon/metrics.h"
#include "connector/daemon/prom.h"
#include "connector/daemon/report.h"
#include "connector/daemon/status_page.h"
#include "tests/unit/fixture.h"

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static char *take(struct cmb_buf *b)
{
	return b->data ? cmb_buf_detach(b, NULL) : xstrdup("");
}

/* ---- the writer ------------------------------------------------------------ */

static void prom_exact(void **state)
{
	(void)state;
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_prom_family(&b, "x_total", "counter", "a \\ help\nover two lines");
	cmb_prom_sample(&b, "x_total", NULL, 3);
	cmb_prom_sample(&b, "x_total", L("name", "PC\"7\\\n<b>", "side", "site"), 12345678901.0);
	cmb_prom_sample(&b, "x_total", L("k", ""), 0.25);
	cmb_prom_sample(&b, "x_total", NULL, -2);
	cmb_prom_sample(&b, "x_total", NULL, NAN);
	cmb_prom_sample(&b, "x_total", NULL, INFINITY);
	cmb_prom_sample(&b, "x_total", NULL, -INFINITY);
	cmb_prom_sample(&b, "x_total", NULL, 1.0 / 3);
	char *out = take(&b);
	assert_string_equal(out, "# HELP x_total a \\\\ help\\nover two lines\n"
				 "# TYPE x_total counter\n"
				 "x_total 3\n"
				 "x_total{name=\"PC\\\"7\\\\\\n<b>\",side=\"site\"} 12345678901\n"
				 "x_total{k=\"\"} 0.25\n"
				 "x_total -2\n"
				 "x_total NaN\n"
				 "x_total +Inf\n"
				 "x_total -Inf\n"
				 "x_total 0.333333333\n");
	free(out);
}

static void prom_histogram_exact(void **state)
{
	(void)state;
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	const double bounds[] = { 1, 2.5, 30 };
	const long per[] = { 2, 0, 1, 4 };
	cmb_prom_histogram(&b, "d_seconds", L("kind", "full"), bounds, per, 3, 1234.5);
	char *out = take(&b);
	assert_string_equal(out, "d_seconds_bucket{kind=\"full\",le=\"1\"} 2\n"
				 "d_seconds_bucket{kind=\"full\",le=\"2.5\"} 2\n"
				 "d_seconds_bucket{kind=\"full\",le=\"30\"} 3\n"
				 "d_seconds_bucket{kind=\"full\",le=\"+Inf\"} 7\n"
				 "d_seconds_sum{kind=\"full\"} 1234.5\n"
				 "d_seconds_count{kind=\"full\"} 7\n");
	free(out);
	cmb_prom_histogram(&b, "e", NULL, bounds, per, 0, 0);
	out = take(&b);
	assert_string_equal(out, "e_bucket{le=\"+Inf\"} 2\ne_sum 0\ne_count 2\n");
	free(out);
}

static void html_escape_exact(void **state)
{
	(void)state;
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_html_escape(&b, "<script>alert(\"x\")</script> & 'y'\x01\x1b\x7f\tok\n\xc3\xa9");
	cmb_html_escape(&b, NULL);
	char *out = take(&b);
	assert_string_equal(out, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
				 "&#xFFFD;&#xFFFD;&#xFFFD;\tok\n\xc3\xa9");
	free(out);
}

/* ---- counting ----------------------------------------------------------------- */

static struct cmb_sync_result result(const char *status, double seconds, long added, long agents_mdm)
{
	struct cmb_sync_result res = { .seconds = seconds };
	snprintf(res.status, sizeof(res.status), "%s", status);
	res.counts.added = added;
	res.counts.site_records = added + 1;
	res.counts.skipped = 1;
	res.counts.upload_requests = 1;
	res.devices.agent[CMB_MAP_AGENT_CLIENT_MDM] = agents_mdm;
	return res;
}

/* The lines of text that start with prefix, each ended by a newline (caller frees). */
static char *lines(const char *text, const char *prefix)
{
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			cmb_buf_add(&b, p, len);
		p += len;
	}
	return take(&b);
}

static void count_cycles_and_relay(void **state)
{
	(void)state;
	struct cmb_metrics_counters c = { .started = 1700000000 };
	struct cmb_sync_result r1 = result("ok", 0.5, 10, 7), r2 = result("failed", 61, 3, 99);
	struct cmb_sync_result dry = result("dry-run", 2, 1000, 1000);
	cmb_metrics_count_cycle(&c, 1, &r1);
	cmb_metrics_count_cycle(&c, 0, &r2);
	cmb_metrics_count_cycle(&c, 0, &dry); /* not a cycle */
	struct cmb_relay_stats before = { .received = 5, .done = 1 }, after = { .received = 8, .done = 4, .reported = 2 };
	cmb_metrics_count_relay(&c, &before, &after, 0, 1700000100);
	cmb_metrics_count_relay(&c, &after, &after, CMB_ENETWORK, 1700000200);
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_metrics_write(&b, NULL, &c, 1700000300);
	char *out = take(&b);
	char *got = lines(out, "cmbridge_sync_cycles_total{");
	assert_string_equal(got, "cmbridge_sync_cycles_total{kind=\"delta\",status=\"ok\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"delta\",status=\"failed\"} 1\n"
				 "cmbridge_sync_cycles_total{kind=\"delta\",status=\"staging\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"delta\",status=\"deletion-threshold-exceeded\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"delta\",status=\"change-threshold-exceeded\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"full\",status=\"ok\"} 1\n"
				 "cmbridge_sync_cycles_total{kind=\"full\",status=\"failed\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"full\",status=\"staging\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"full\",status=\"deletion-threshold-exceeded\"} 0\n"
				 "cmbridge_sync_cycles_total{kind=\"full\",status=\"change-threshold-exceeded\"} 0\n");
	free(got);
	got = lines(out, "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\"");
	/* 61 s falls in (60, 120]. */
	assert_string_equal(got, "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"1\"} 0\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"5\"} 0\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"15\"} 0\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"30\"} 0\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"60\"} 0\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"120\"} 1\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"300\"} 1\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"600\"} 1\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"1200\"} 1\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"1800\"} 1\n"
				 "cmbridge_sync_cycle_duration_seconds_bucket{kind=\"delta\",le=\"+Inf\"} 1\n");
	free(got);
	assert_non_null(strstr(out, "\ncmbridge_sync_cycle_duration_seconds_bucket{kind=\"full\",le=\"1\"} 1\n"));
	assert_non_null(strstr(out, "\ncmbridge_sync_cycle_duration_seconds_sum{kind=\"full\"} 0.5\n"));
	assert_non_null(strstr(out, "\ncmbridge_sync_records_total{outcome=\"added\"} 13\n"));
	assert_non_null(strstr(out, "\ncmbridge_sync_records_total{outcome=\"skipped\"} 2\n"));
	assert_non_null(strstr(out, "\ncmbridge_sync_devices_read_total 15\n"));
	assert_non_null(strstr(out, "\ncmbridge_sync_upload_requests_total 2\n"));
	/* The devices of the last cycle whose read completed: the ok one, not the failed one. */
	assert_non_null(strstr(out, "\ncmbridge_devices_by_management_agent{management_agent=\"configurationManagerClientMdm\"} 7\n"));
	assert_non_null(strstr(out, "\ncmbridge_relay_actions_total{event=\"received\"} 3\n"));
	assert_non_null(strstr(out, "\ncmbridge_relay_actions_total{event=\"done\"} 3\n"));
	assert_non_null(strstr(out, "\ncmbridge_relay_actions_total{event=\"reported\"} 2\n"));
	assert_non_null(strstr(out, "\ncmbridge_relay_passes_total{result=\"ok\"} 1\ncmbridge_relay_passes_total{result=\"failed\"} 1\n"));
	assert_non_null(strstr(out, "\ncmbridge_last_success_timestamp_seconds{engine=\"relay\"} 1700000100\n"));
	assert_non_null(strstr(out, "\ncmbridge_start_time_seconds 1700000000\n"));
	assert_non_null(strstr(out, "# TYPE cmbridge_build_info gauge\ncmbridge_build_info{version=\"" CMB_VERSION "\"} 1\n"));
	/* Without a report: nothing of the state, rather than zeros. */
	assert_null(strstr(out, "cmbridge_devices_attached"));
	free(out);
}

/* A fresh counter struct says nothing of devices (no cycle read the site yet). */
static void no_cycle_no_devices(void **state)
{
	(void)state;
	struct cmb_metrics_counters c = { 0 };
	struct cmb_sync_result failed = result("failed", 1, 0, 5);
	cmb_metrics_count_cycle(&c, 0, &failed);
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_metrics_write(&b, NULL, &c, 0);
	char *out = take(&b);
	assert_null(strstr(out, "cmbridge_devices_by_"));
	free(out);
}

/* ---- a report from a state with hostile strings ------------------------------------ */

struct fx {
	char dir[FX_DIR_SIZE];
	struct cmb_config cfg;
	struct cmb_report *r;
};

static const char hostile[] = "<script>alert(1)</script>\"&'";

static void hostile_state(struct fx *f)
{
	struct cmb_state *st = NULL;
	assert_int_equal(cmb_state_open(&st, f->dir), 0);
	int64_t id;
	struct cmb_cycle_counts counts = { .site_records = 3, .added = 2, .duplicates = 1 };
	assert_int_equal(cmb_state_cycle_begin(st, "full", 1700000000, &id), 0);
	assert_int_equal(cmb_state_cycle_end(st, id, 1700000060, "ok", &counts, NULL), 0);
	assert_int_equal(cmb_state_cycle_begin(st, "delta", 1700000900, &id), 0);
	assert_int_equal(cmb_state_cycle_end(st, id, 1700000910, "failed", &counts, hostile), 0);
	assert_int_equal(cmb_state_quarantine_put(st, "PS1:<b>", CMB_QUARANTINE_MAPPING, hostile, NULL, id, 1), 0);
	struct cmb_action a = { .id = (char *)"a1", .device_id = (char *)"d1", .key = (char *)"PS1:</td><script>",
				.resource_id = 1, .action = (char *)"fullScan", .requested_by = (char *)hostile,
				.requested = 1700000000, .expires = 1700090000, .received_ms = 1700000000000,
				.state = CMB_ACTION_STATE_FAILED, .message = (char *)hostile, .updated = 1700000001 };
	assert_int_equal(cmb_state_action_add(st, &a, NULL), 0);
	assert_int_equal(cmb_state_action_update(st, "a1", CMB_ACTION_STATE_FAILED, "failed", 1, hostile, -1, -1,
						  1700000001), 0);
	cmb_state_close(st);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "metrics") < 0)
		return -1;
	f->cfg = (struct cmb_config){ .site_code = (char *)"PS1", .state_dir = f->dir, .sync_interval = 900,
				      .sync_delete_threshold = 500, .sync_delete_threshold_percent = 10,
				      .sync_change_threshold = 500, .sync_change_threshold_percent = 10 };
	hostile_state(f);
	assert_int_equal(cmb_report_gather(&f->r, &f->cfg, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cmb_report_free(f->r);
	fx_rmtree(f->dir);
	free(f);
	return 0;
}

static void page_escapes_everything(void **state)
{
	struct fx *f = *state;
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_status_page(&b, f->r, 1700001000);
	char *page = take(&b);
	assert_null(strstr(page, "<script"));
	assert_null(strstr(page, "</td><script>"));
	assert_non_null(strstr(page, "<meta http-equiv=\"refresh\" content=\"30\">"));
	/* The failed cycle's error, as status --check says it, escaped. */
	assert_non_null(strstr(page, "<strong id=\"check\">CRITICAL</strong>: <span id=\"check-reason\">cycle 2 (delta) "
				     "failed 90 s ago: &lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;&#39;</span>"));
	assert_non_null(strstr(page, "<td>PS1:&lt;/td&gt;&lt;script&gt;</td>"));
	assert_non_null(strstr(page, "<td id=\"quarantine-mapping\">1</td>"));
	assert_non_null(strstr(page, "<td id=\"devices-attached\">0</td>"));
	assert_non_null(strstr(page, "<td class=\"cycle-id\">2</td><td class=\"cycle-kind\">delta</td>"));
	assert_null(strstr(page, "src=")); /* no external asset */
	assert_null(strstr(page, "href="));
	free(page);
}

static void metrics_from_the_report(void **state)
{
	struct fx *f = *state;
	struct cmb_metrics_counters c = { 0 };
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_metrics_write(&b, f->r, &c, 1700001000);
	char *out = take(&b);
	assert_non_null(strstr(out, "\ncmbridge_check_status 2\n"));
	assert_non_null(strstr(out, "\ncmbridge_quarantined_records{kind=\"mapping\"} 1\n"));
	assert_non_null(strstr(out, "\ncmbridge_actions{state=\"failed\"} 1\n"));
	assert_non_null(strstr(out, "\ncmbridge_actions{state=\"done\"} 0\n"));
	assert_non_null(strstr(out, "\ncmbridge_last_success_timestamp_seconds{engine=\"sync\"} 1700000060\n"));
	assert_null(strstr(out, "script"));
	assert_non_null(strstr(out, "\ncmbridge_policies{state=\"applied\"} 0\n"));
	assert_non_null(strstr(out, "\ncmbridge_policies{state=\"ignored\"} 0\n"));
	free(out);
}

/* ---- the listener ----------------------------------------------------------------- */

/* One request over HTTP/1.0 to 127.0.0.1:port; the whole answer (caller frees). */
static char *http(unsigned port, const char *request)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
	struct cmb_buf b = CMB_BUF_INIT(1 << 22);
	char chunk[4096];
	ssize_t n;
	while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
		cmb_buf_add(&b, chunk, (size_t)n);
	close(fd);
	return take(&b);
}

static void listener_answers(void **state)
{
	struct fx *f = *state;
	struct cmb_metrics *m = NULL;
	f->cfg.metrics_listen = (char *)"127.0.0.1:0";
	assert_int_equal(cmb_metrics_start(&m, &f->cfg), 0);
	unsigned port = cmb_metrics_port(m);
	assert_true(port > 0);
	char *a = http(port, "GET /healthz HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 503 Service Unavailable\r\n"));
	assert_non_null(strstr(a, "\r\n\r\nunknown: starting, no report gathered yet\n"));
	free(a);
	cmb_metrics_publish(m, f->r);
	f->r = NULL;
	a = http(port, "GET /healthz HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, " 503 "));
	assert_non_null(strstr(a, "\r\n\r\ncritical: cycle 2 (delta) failed "));
	free(a);
	a = http(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(a, "\r\nAllow: GET, HEAD\r\n"));
	free(a);
	a = http(port, "GET /metrics/ HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 404 Not Found\r\n"));
	free(a);
	a = http(port, "HEAD / HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(a, "\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"));
	assert_non_null(strstr(a, "\r\nX-Content-Type-Options: nosniff\r\n"));
	assert_null(strstr(a, "<html")); /* HEAD: headers only */
	free(a);
	a = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(a, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(strstr(a, "\ncmbridge_quarantined_records{kind=\"mapping\"} 1\n"));
	free(a);
	cmb_metrics_stop(m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prom_exact),
		cmocka_unit_test(prom_histogram_exact),
		cmocka_unit_test(html_escape_exact),
		cmocka_unit_test(count_cycles_and_relay),
		cmocka_unit_test(no_cycle_no_devices),
		T(page_escapes_everything),
		T(metrics_from_the_report),
		T(listener_answers),
	};
	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
