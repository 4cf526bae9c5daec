/*
 * status_page.c - the status page (status_page.h). Every value shown has
 * an id, so a test (and a curious admin) can find it in the DOM.
 */
#include "connector/daemon/status_page.h"
#include "connector/base/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void cmb_html_escape(struct cmb_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '&': cmb_buf_addstr(b, "&amp;"); break;
		case '<': cmb_buf_addstr(b, "&lt;"); break;
		case '>': cmb_buf_addstr(b, "&gt;"); break;
		case '"': cmb_buf_addstr(b, "&quot;"); break;
		case '\'': cmb_buf_addstr(b, "&#39;"); break;
		default:
			if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f)
				cmb_buf_addstr(b, "&#xFFFD;");
			else
				cmb_buf_add(b, p, 1);
		}
	}
}

/* <tr><th>label</th><td id="id">text</td></tr>, text escaped. */
static void row(struct cmb_buf *b, const char *label, const char *id, const char *text)
{
	cmb_buf_printf(b, "<tr><th>%s</th><td id=\"%s\">", label, id);
	cmb_html_escape(b, text);
	cmb_buf_addstr(b, "</td></tr>\n");
}

static void row_long(struct cmb_buf *b, const char *label, const char *id, long n)
{
	char text[32];
	snprintf(text, sizeof(text), "%ld", n);
	row(b, label, id, text);
}

static void row_time(struct cmb_buf *b, const char *label, const char *id, int64_t t)
{
	char iso[32] = "-";
	if (t)
		cmb_time_iso8601(t, iso);
	row(b, label, id, iso);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static void head(struct cmb_buf *b, const struct cmb_report *r)
{
	cmb_buf_addstr(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
			  "<meta http-equiv=\"refresh\" content=\"30\">\n<title>cmbridge ");
	cmb_html_escape(b, r->site_code);
	cmb_buf_addstr(b, "</title>\n<style>body{font-family:sans-serif;margin:1em 2em}"
			  "table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #ccc;"
			  "padding:2px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}"
			  ".OK{color:#060}.WARNING{color:#a60}.CRITICAL,.UNKNOWN{color:#b00}</style>\n"
			  "</head><body>\n<h1>cmbridge ");
	cmb_html_escape(b, CMB_VERSION);
	cmb_buf_addstr(b, ", site ");
	cmb_html_escape(b, r->site_code);
	cmb_buf_printf(b, " (%s)</h1>\n", r->staging ? "staging" : "normal");
}

static void section_health(struct cmb_buf *b, const struct cmb_report *r, int64_t now)
{
	char what[1024];
	int64_t age;
	enum cmb_check_status st = cmb_report_check(r, now, what, sizeof(what), &age);
	cmb_buf_printf(b, "<p class=\"%s\"><strong id=\"check\">%s</strong>: <span id=\"check-reason\">",
		       cmb_report_check_name(st), cmb_report_check_name(st));
	cmb_html_escape(b, what);
	cmb_buf_addstr(b, "</span></p>\n<h2>Daemon</h2>\n<table>\n");
	row(b, "version", "version", CMB_VERSION);
	if (r->no_state)
		row(b, "state", "state", r->no_state);
	if (r->daemon)
		row_long(b, "pid", "daemon-pid", (long)cmb_report_daemon_int(r, "pid"));
	row(b, "started", "daemon-started", or_dash(cmb_report_daemon_str(r, "started")));
	row(b, "doing", "daemon-activity", or_dash(cmb_report_daemon_str(r, "activity")));
	row(b, "next delta", "next-delta", or_dash(cmb_report_daemon_str(r, "nextDelta")));
	row(b, "next full", "next-full", or_dash(cmb_report_daemon_str(r, "nextFull")));
	row_time(b, "last success", "last-success", r->last_success);
	row(b, "last error", "last-error", cmb_report_last_error(r) ? cmb_report_last_error(r) : "none");
	if (r->cert_rc == 0) {
		char text[96], na[32];
		cmb_time_iso8601(r->not_after, na);
		snprintf(text, sizeof(text), "expires %s (%" PRId64 " days)%s", na, r->days_left,
			 r->soon ? ": renew it" : "");
		row(b, "certificate", "certificate", text);
	}
	cmb_buf_addstr(b, "</table>\n");
}

static void section_devices(struct cmb_buf *b, const struct cmb_report *r)
{
	cmb_buf_addstr(b, "<h2>Devices</h2>\n<table>\n");
	row_long(b, "attached", "devices-attached", r->devices);
	row_long(b, "uploads in flight", "in-flight", r->in_flight);
	row_long(b, "quarantined", "quarantined", r->quarantined);
	for (int k = 0; k < CMB_REPORT_N_QUARANTINE_KINDS; k++) {
		const char *kind = cmb_state_quarantine_kind_name((enum cmb_quarantine_kind)k);
		char label[48], id[48];
		snprintf(label, sizeof(label), "quarantined: %s", kind);
		snprintf(id, sizeof(id), "quarantine-%s", kind);
		row_long(b, label, id, r->quar_kind[k]);
	}
	cmb_buf_addstr(b, "</table>\n");
	if (!r->n_in_flight_keys)
		return;
	cmb_buf_addstr(b, "<p>In flight (outcome unknown, settled by the next cycle): <span id=\"in-flight-keys\">");
	for (size_t i = 0; i < r->n_in_flight_keys && i < 10; i++) {
		cmb_buf_addstr(b, i ? ", " : "");
		cmb_html_escape(b, r->in_flight_keys[i]);
	}
	cmb_buf_printf(b, "%s</span></p>\n", r->in_flight > 10 ? ", ..." : "");
}

static void section_guards(struct cmb_buf *b, const struct cmb_report *r)
{
	char text[1024];
	cmb_buf_addstr(b, "<h2>Guards</h2>\n<table>\n");
	cmb_report_guard_text(r, 0, text, sizeof(text));
	row(b, "deletion guard", "deletion-guard", text);
	cmb_report_guard_text(r, 1, text, sizeof(text));
	row(b, "change guard", "change-guard", text);
	cmb_buf_addstr(b, "</table>\n");
}

static void section_actions(struct cmb_buf *b, const struct cmb_report *r)
{
	cmb_buf_addstr(b, "<h2>Actions</h2>\n<table>\n");
	row_long(b, "pending", "actions-pending", r->actions_open);
	row_long(b, "failed", "actions-failed", r->actions_failed);
	row_long(b, "results waiting", "actions-results-waiting", r->outbox);
	cmb_buf_addstr(b, "</table>\n<table id=\"recent-actions\">\n<tr><th>action</th><th>device</th>"
			  "<th>requested by</th><th>state</th><th>updated</th><th>message</th></tr>\n");
	for (size_t i = 0; i < r->n_recent; i++) {
		const struct cmb_action *a = &r->recent[i];
		const char *cells[] = { a->action, a->key, a->requested_by, cmb_state_action_state_name(a->state) };
		char iso[32];
		cmb_time_iso8601(a->updated, iso);
		cmb_buf_addstr(b, "<tr>");
		for (size_t c = 0; c < sizeof(cells) / sizeof(cells[0]); c++) {
			cmb_buf_addstr(b, "<td>");
			cmb_html_escape(b, cells[c]);
			cmb_buf_addstr(b, "</td>");
		}
		cmb_buf_printf(b, "<td>%s</td><td>", iso);
		cmb_html_escape(b, or_dash(a->message));
		cmb_buf_addstr(b, "</td></tr>\n");
	}
	cmb_buf_addstr(b, "</table>\n<h2>Policies</h2>\n");
	if (!r->policies_known) {
		cmb_buf_addstr(b, "<p id=\"policies\">not relayed by this version</p>\n");
		return;
	}
	cmb_buf_addstr(b, "<table id=\"policies\">\n");
	for (size_t i = 0; i < r->n_policy_states; i++) {
		char id[48];
		snprintf(id, sizeof(id), "policies-%s", r->policies[i].state);
		row_long(b, r->policies[i].state, id, r->policies[i].n);
	}
	cmb_buf_addstr(b, "</table>\n");
}

static void cycle_row(struct cmb_buf *b, const struct cmb_cycle *cy)
{
	char started[32], ended[32] = "-";
	const struct cmb_cycle_counts *c = &cy->counts;
	cmb_time_iso8601(cy->started, started);
	if (cy->ended)
		cmb_time_iso8601(cy->ended, ended);
	cmb_buf_printf(b, "<tr><td class=\"cycle-id\">%lld</td><td class=\"cycle-kind\">", (long long)cy->id);
	cmb_html_escape(b, cy->kind);
	cmb_buf_printf(b, "</td><td>%s</td><td>%s</td><td class=\"cycle-status\">", started, ended);
	cmb_html_escape(b, cy->status);
	cmb_buf_printf(b, "</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>",
		       c->site_records, c->added + c->changed + c->refreshed, c->removed, c->rejected, c->quarantined,
		       c->duplicates);
	cmb_html_escape(b, or_dash(cy->error));
	cmb_buf_addstr(b, "</td></tr>\n");
}

static void section_cycles(struct cmb_buf *b, const struct cmb_report *r)
{
	cmb_buf_addstr(b, "<h2>Last cycles</h2>\n<table id=\"cycles\">\n<tr><th>cycle</th><th>kind</th><th>started</th>"
			  "<th>ended</th><th>status</th><th>read</th><th>uploaded</th><th>removed</th><th>rejected</th>"
			  "<th>quarantined</th><th>duplicates</th><th>error</th></tr>\n");
	for (size_t i = 0; i < r->n; i++)
		cycle_row(b, r->cy[i]);
	cmb_buf_addstr(b, "</table>\n");
	if (r->n == 0)
		cmb_buf_addstr(b, "<p>No sync cycle has run yet.</p>\n");
}

void cmb_status_page(struct cmb_buf *b, const struct cmb_report *r, int64_t now)
{
	head(b, r);
	section_health(b, r, now);
	section_devices(b, r);
	section_guards(b, r);
	section_cycles(b, r);
	section_actions(b, r);
	cmb_buf_addstr(b, "</body></html>\n");
}
