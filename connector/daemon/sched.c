/*
 * sched.c - periodic tasks of the daemon (sched.h): a handful of tasks in
 * the order they were added, each with its due time; a turn runs the
 * earliest due or sleeps until it is.
 */
#include "connector/daemon/sched.h"
#include "connector/base/backoff.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"
#include "connector/base/util.h"
#include "connector/transport/retry.h"

#include <math.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* wait_s of a task that no other task waits for. */
#define NO_OTHER_TASK_S 86400.0
/* Real sleeps look at the stop and reload requests this often. */
#define SLEEP_SLICE_S 0.2

struct cmb_sched_task {
	struct cmb_sched *sched;
	char *name;
	struct cmb_sched_task_opts o;   /* name points at the copy above */
	double due;                     /* monotonic seconds; -INFINITY: run now */
	double last_end;                /* when its last run ended, or when it was added */
	int failures;                   /* in a row */
	long runs;
};

struct cmb_sched {
	struct cmb_sched_clock clock;
	struct cmb_sched_task **tasks;
	size_t n;
};

static double real_now(void *ud)
{
	(void)ud;
	return cmb_now_mono();
}

static void real_sleep(void *ud, double s)
{
	(void)ud;
	double end = cmb_now_mono() + s;
	while (!cmb_stop_requested() && !cmb_interrupted()) {
		double left = end - cmb_now_mono();
		if (left <= 0)
			return;
		cmb_retry_sleep(left < SLEEP_SLICE_S ? left : SLEEP_SLICE_S);
	}
}

static double real_random01(void *ud)
{
	(void)ud;
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0.5; /* no randomness: the middle of the offset, still bounded */
	return (double)r / 4294967296.0;
}

void cmb_sched_new(struct cmb_sched **out, const struct cmb_sched_clock *clock)
{
	struct cmb_sched *s = xcalloc(1, sizeof(*s));
	if (clock)
		s->clock = *clock;
	if (!s->clock.now)
		s->clock.now = real_now;
	if (!s->clock.sleep)
		s->clock.sleep = real_sleep;
	if (!s->clock.random01)
		s->clock.random01 = real_random01;
	*out = s;
}

void cmb_sched_free(struct cmb_sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->tasks[i]->name);
		free(s->tasks[i]);
	}
	free(s->tasks);
	free(s);
}

static double now(const struct cmb_sched *s)
{
	return s->clock.now(s->clock.ud);
}

struct cmb_sched_task *cmb_sched_add(struct cmb_sched *s, const struct cmb_sched_task_opts *o)
{
	struct cmb_sched_task *t = xcalloc(1, sizeof(*t));
	t->sched = s;
	t->name = xstrdup(o->name ? o->name : "task");
	t->o = *o;
	t->o.name = t->name;
	t->last_end = now(s);
	t->due = t->last_end + (o->first_delay_s > 0 ? o->first_delay_s : 0);
	s->tasks = xrealloc(s->tasks, (s->n + 1) * sizeof(*s->tasks));
	s->tasks[s->n++] = t;
	return t;
}

void cmb_sched_task_tune(struct cmb_sched_task *t, const struct cmb_sched_task_opts *o)
{
	t->o.interval_s = o->interval_s;
	t->o.random_offset_s = o->random_offset_s;
	t->o.backoff_base_s = o->backoff_base_s;
	t->o.backoff_max_s = o->backoff_max_s;
}

/* The next run after a success: the interval plus this time's share of the random offset. */
static double period(struct cmb_sched_task *t)
{
	double d = t->o.interval_s > 0 ? t->o.interval_s : 0;
	if (t->o.random_offset_s > 0)
		d += t->o.random_offset_s * t->sched->clock.random01(t->sched->clock.ud);
	return d;
}

void cmb_sched_postpone(struct cmb_sched_task *t)
{
	t->due = now(t->sched) + period(t);
}

void cmb_sched_run_now(struct cmb_sched_task *t)
{
	t->due = -INFINITY;
}

void cmb_sched_task_retime(struct cmb_sched_task *t)
{
	if (t->failures == 0 && t->due != -INFINITY)
		t->due = t->last_end + period(t);
}

double cmb_sched_task_due_in(const struct cmb_sched_task *t)
{
	double d = t->due - now(t->sched);
	return d > 0 ? d : 0;
}

int cmb_sched_task_failures(const struct cmb_sched_task *t)
{
	return t->failures;
}

long cmb_sched_task_runs(const struct cmb_sched_task *t)
{
	return t->runs;
}

/* After a run that returned rc, ending at end. */
static void reschedule(struct cmb_sched_task *t, int rc, double end)
{
	if (rc == CMB_ECANCELED) {
		t->due = end; /* cut short on request: neither done nor failed */
		return;
	}
	t->last_end = end;
	if (rc == 0) {
		t->failures = 0;
		t->due = end + period(t);
		return;
	}
	if (t->failures < 1000000)
		t->failures++;
	double wait = cmb_backoff_delay(t->failures, t->o.backoff_base_s, t->o.backoff_max_s);
	t->due = end + wait;
	cmb_info("run: %s failed (%d in a row); next try in %.0f s", t->name, t->failures, wait);
}

int cmb_sched_step(struct cmb_sched *s)
{
	if (s->n == 0) {
		s->clock.sleep(s->clock.ud, NO_OTHER_TASK_S);
		return 1;
	}
	struct cmb_sched_task *next = s->tasks[0];
	for (size_t i = 1; i < s->n; i++)
		if (s->tasks[i]->due < next->due)
			next = s->tasks[i];
	double t0 = now(s);
	if (next->due > t0) {
		s->clock.sleep(s->clock.ud, next->due - t0);
		return 1;
	}
	double wait = NO_OTHER_TASK_S;
	for (size_t i = 0; i < s->n; i++)
		if (s->tasks[i] != next && s->tasks[i]->due - t0 < wait)
			wait = s->tasks[i]->due - t0;
	next->runs++;
	int rc = next->o.run(next->o.ud, wait > 0 ? wait : 0);
	reschedule(next, rc, now(s));
	return rc;
}
