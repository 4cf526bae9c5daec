/*
 * progress.c - the activity and its counters (progress.h), rendered for
 * the log, the terminal, systemd and `status`.
 */
#include "connector/daemon/progress.h"
#include "connector/daemon/sdnotify.h"
#include "connector/base/clock.h"
#include "connector/base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_EVERY_S 10.0
#define LOG_EVERY_PAGES 10
#define TERM_EVERY_S 0.2
#define SYSTEMD_EVERY_S 1.0

/* One activity's counters, started afresh with each. */
struct phase {
	int kind;                  /* 0 none, 1 read, 2 upload */
	double t0;                 /* phase start */
	long devices, page_size;   /* read */
	long total, records, batches; /* upload */
	double last_log, last_term, last_sd;
	long logged_at;            /* devices or batches at the last info line */
};

static struct {
	char activity[160];
	struct phase c;
	void (*listener)(void);
	char text[320];
} p;

void cmb_progress_set_listener(void (*fn)(void))
{
	p.listener = fn;
}

static double rate(long n, double now)
{
	double s = now - p.c.t0;
	return s > 0.05 ? (double)n / s : 0;
}

static void render(double now)
{
	if (!p.activity[0]) {
		snprintf(p.text, sizeof(p.text), "idle");
	} else if (p.c.kind == 1) {
		snprintf(p.text, sizeof(p.text), "%s: %ld devices read (~%ld pages), %.0f devices/s", p.activity,
			 p.c.devices, p.c.page_size > 0 ? (p.c.devices + p.c.page_size - 1) / p.c.page_size : 0,
			 rate(p.c.devices, now));
	} else if (p.c.kind == 2) {
		double r = rate(p.c.records, now);
		char eta[48] = "";
		if (p.c.total > p.c.records && r > 0)
			snprintf(eta, sizeof(eta), ", ETA %.0f s", (double)(p.c.total - p.c.records) / r);
		snprintf(p.text, sizeof(p.text), "%s: %ld of %ld records uploaded in %ld batches, %.0f records/s%s",
			 p.activity, p.c.records, p.c.total, p.c.batches, r, eta);
	} else {
		snprintf(p.text, sizeof(p.text), "%s", p.activity);
	}
}

/* Everything but the log line, each at its own pace. */
static void publish(double now, int force)
{
	render(now);
	if (force || now - p.c.last_term >= TERM_EVERY_S) {
		p.c.last_term = now;
		cmb_log_status_line(p.activity[0] ? p.text : NULL);
	}
	if (force || now - p.c.last_sd >= SYSTEMD_EVERY_S) {
		p.c.last_sd = now;
		cmb_sd_notify("STATUS=%s", p.text);
		if (p.listener)
			p.listener();
	}
}

void cmb_progress_activity(const char *fmt, ...)
{
	char buf[sizeof(p.activity)] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
	}
	memset(&p.c, 0, sizeof(p.c));
	memcpy(p.activity, buf, sizeof(buf));
	p.c.t0 = p.c.last_log = cmb_now_mono();
	publish(p.c.t0, 1);
}

/* The info line: every LOG_EVERY_PAGES pages (or batches) or LOG_EVERY_S seconds. */
static void maybe_log(double now, long done, long step)
{
	if (done - p.c.logged_at < step && now - p.c.last_log < LOG_EVERY_S)
		return;
	p.c.logged_at = done;
	p.c.last_log = now;
	cmb_info("progress: %s", p.text);
}

void cmb_progress_read(long devices, long page_size)
{
	double now = cmb_now_mono();
	p.c.kind = 1;
	p.c.devices = devices;
	p.c.page_size = page_size;
	publish(now, 0);
	maybe_log(now, devices, LOG_EVERY_PAGES * (page_size > 0 ? page_size : 1000));
}

void cmb_progress_upload(long total, long records, long batches)
{
	double now = cmb_now_mono();
	if (p.c.kind != 2) {
		p.c.kind = 2;
		p.c.t0 = p.c.last_log = now;
		p.c.logged_at = 0;
	}
	p.c.total = total;
	p.c.records = records;
	p.c.batches = batches;
	publish(now, 0);
	maybe_log(now, batches, LOG_EVERY_PAGES);
}

const char *cmb_progress_text(void)
{
	render(cmb_now_mono());
	return p.text;
}
