/*
 * test_sched.c - the daemon's scheduler in simulated time: first delays,
 * ties broken by the order tasks were added, the interval counted from
 * the end of a run, the random offset within its bound, the backoff after
 * failures (and its reset), a run cut short on request, the wait a task
 * may block for, postponing, retuning on reload, running a task now
 * (SIGUSR1, a control request), retiming after a new interval, and
 * sleeping until due.
 *
 * No real clock and no sleeping: the scheduler's clock is replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "connector/base/error.h"
#include "connector/daemon/sched.h"

struct sim {
	double t;                /* simulated monotonic seconds */
	double slept;            /* total slept */
	int sleeps;
	double random;           /* what random01 returns */
};

static double sim_now(void *ud)
{
	return ((struct sim *)ud)->t;
}

static void sim_sleep(void *ud, double s)
{
	struct sim *m = ud;
	m->t += s;
	m->slept += s;
	m->sleeps++;
}

static double sim_random(void *ud)
{
	return ((struct sim *)ud)->random;
}

/* A task that takes `takes` seconds of simulated time and returns the next of its scripted results. */
struct job {
	struct sim *sim;
	const char *name;
	double takes;
	int blocks;              /* takes all the wait it is given (a long poll with nothing to say) */
	int rcs[16];
	int n_rcs;
	int calls;
	double last_start, last_wait;
	char *trace;             /* appends name[0] on each run */
};

static int job_run(void *ud, double wait_s)
{
	struct job *j = ud;
	j->last_start = j->sim->t;
	j->last_wait = wait_s;
	int rc = j->calls < j->n_rcs ? j->rcs[j->calls] : 0;
	j->calls++;
	j->sim->t += j->blocks ? wait_s : j->takes;
	if (j->trace)
		strncat(j->trace, j->name, 1);
	return rc;
}

static struct cmb_sched *new_sched(struct sim *m)
{
	struct cmb_sched_clock c = { .now = sim_now, .sleep = sim_sleep, .random01 = sim_random, .ud = m };
	struct cmb_sched *s;
	cmb_sched_new(&s, &c);
	return s;
}

static int near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

/* Steps until n tasks have run (sleeps in between do not count). */
static void run_tasks(struct cmb_sched *s, int n)
{
	for (int guard = 0; n > 0 && guard < 10000; guard++)
		if (cmb_sched_step(s) != 1)
			n--;
	assert_int_equal(n, 0);
}

static void test_first_delays_and_ties(void **state)
{
	(void)state;
	struct sim m = { .t = 100 };
	char trace[64] = "";
	struct job full = { .sim = &m, .name = "F", .takes = 10, .trace = trace };
	struct job delta = { .sim = &m, .name = "D", .takes = 5, .trace = trace };
	struct job relay = { .sim = &m, .name = "R", .takes = 1, .trace = trace };
	struct cmb_sched *s = new_sched(&m);
	/* As `run` adds them: the full sync at once, the delta an interval later, the relay at once. */
	struct cmb_sched_task_opts fo = { .name = "full", .interval_s = 1000, .run = job_run, .ud = &full };
	struct cmb_sched_task_opts d_o = {
		.name = "delta", .interval_s = 60, .first_delay_s = 60, .run = job_run, .ud = &delta,
	};
	struct cmb_sched_task_opts ro = { .name = "relay", .run = job_run, .ud = &relay };
	cmb_sched_add(s, &fo);
	struct cmb_sched_task *dt = cmb_sched_add(s, &d_o);
	cmb_sched_add(s, &ro);
	assert_true(near(cmb_sched_task_due_in(dt), 60));
	run_tasks(s, 2);
	assert_string_equal(trace, "FR"); /* tie at t=100: the one added first */
	assert_true(near(full.last_start, 100));
	assert_true(near(relay.last_start, 110));
	/* The relay (interval 0) runs back to back until the delta is due at 160, then the delta goes first. */
	run_tasks(s, 50);
	assert_true(strchr(trace, 'D') != NULL);
	assert_true(near(delta.last_start, 160));
	assert_int_equal(m.sleeps, 0); /* something was always due */
	cmb_sched_free(s);
}

static void test_interval_from_end_and_offset(void **state)
{
	(void)state;
	struct sim m = { .t = 0, .random = 0.5 };
	struct job j = { .sim = &m, .name = "J", .takes = 7 };
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts o = {
		.name = "j", .interval_s = 100, .random_offset_s = 20, .run = job_run, .ud = &j,
	};
	struct cmb_sched_task *t = cmb_sched_add(s, &o);
	assert_int_equal(cmb_sched_step(s), 0);
	/* Ended at 7: next at 7 + 100 + 0.5 * 20. */
	assert_true(near(cmb_sched_task_due_in(t), 110));
	assert_int_equal(cmb_sched_step(s), 1); /* not due: sleeps until it is */
	assert_true(near(m.t, 117));
	assert_int_equal(cmb_sched_step(s), 0);
	assert_true(near(j.last_start, 117));
	/* The offset stays within its bound: random01 in [0, 1). */
	m.random = 0.999;
	cmb_sched_postpone(t);
	assert_true(cmb_sched_task_due_in(t) < 120 && cmb_sched_task_due_in(t) >= 100);
	assert_int_equal(cmb_sched_task_runs(t), 2);
	cmb_sched_free(s);
}

static void test_backoff_and_reset(void **state)
{
	(void)state;
	struct sim m = { .t = 0 };
	struct job j = {
		.sim = &m, .name = "J", .takes = 0,
		.rcs = { CMB_ENETWORK, CMB_ENETWORK, CMB_ENETWORK, CMB_EHTTP, CMB_ENETWORK, CMB_ENETWORK, 0, CMB_ENETWORK },
		.n_rcs = 8,
	};
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts o = {
		.name = "j", .interval_s = 900, .backoff_base_s = 450, .backoff_max_s = 3600, .run = job_run, .ud = &j,
	};
	struct cmb_sched_task *t = cmb_sched_add(s, &o);
	/* 1, 2, 3 ... failures in a row: 900, 1800, 3600, 3600 ... (cmb_backoff_delay); then a success: 900. */
	static const double waits[] = { 900, 1800, 3600, 3600, 3600, 3600, 900, 900 };
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		int rc = cmb_sched_step(s);
		assert_int_equal(rc, j.rcs[i]);
		assert_int_equal(cmb_sched_task_failures(t), i < 6 ? (int)i + 1 : (i == 6 ? 0 : 1));
		assert_true(near(cmb_sched_task_due_in(t), waits[i]));
		assert_int_equal(cmb_sched_step(s), 1);
	}
	cmb_sched_free(s);
}

static void test_relay_backoff_series(void **state)
{
	(void)state;
	/* The daemon's relay task: interval 0, backoff 0.5 s doubling to 30 s, as `cmbridge relay` waits. */
	struct sim m = { .t = 0 };
	struct job j = { .sim = &m, .name = "R", .takes = 0, .n_rcs = 8 };
	for (int i = 0; i < 7; i++)
		j.rcs[i] = CMB_ENETWORK;
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts o = {
		.name = "relay", .backoff_base_s = 0.5, .backoff_max_s = 30, .run = job_run, .ud = &j,
	};
	struct cmb_sched_task *t = cmb_sched_add(s, &o);
	static const double waits[] = { 1, 2, 4, 8, 16, 30, 30, 0 };
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		run_tasks(s, 1);
		assert_true(near(cmb_sched_task_due_in(t), waits[i]));
	}
	cmb_sched_free(s);
}

static void test_canceled_runs_again(void **state)
{
	(void)state;
	struct sim m = { .t = 0 };
	struct job j = { .sim = &m, .name = "J", .takes = 3, .rcs = { CMB_ENETWORK, CMB_ECANCELED }, .n_rcs = 2 };
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts o = {
		.name = "j", .interval_s = 60, .backoff_base_s = 5, .backoff_max_s = 60, .run = job_run, .ud = &j,
	};
	struct cmb_sched_task *t = cmb_sched_add(s, &o);
	assert_int_equal(cmb_sched_step(s), CMB_ENETWORK);
	assert_int_equal(cmb_sched_task_failures(t), 1);
	run_tasks(s, 1);
	/* Cut short on request: due again at once, the failure count unchanged. */
	assert_true(near(cmb_sched_task_due_in(t), 0));
	assert_int_equal(cmb_sched_task_failures(t), 1);
	cmb_sched_free(s);
}

static void test_wait_until_next_other(void **state)
{
	(void)state;
	struct sim m = { .t = 0 };
	struct job sync = { .sim = &m, .name = "S", .takes = 2 };
	struct job relay = { .sim = &m, .name = "R", .blocks = 1 };
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts so = {
		.name = "sync", .interval_s = 50, .first_delay_s = 30, .run = job_run, .ud = &sync,
	};
	struct cmb_sched_task_opts ro = { .name = "relay", .run = job_run, .ud = &relay };
	cmb_sched_add(s, &so);
	cmb_sched_add(s, &ro);
	run_tasks(s, 1);
	assert_true(near(relay.last_wait, 30)); /* its long poll must end when the sync is due */
	run_tasks(s, 1);
	assert_int_equal(sync.calls, 1); /* both due at 30: the sync, added first */
	assert_true(near(sync.last_start, 30));
	run_tasks(s, 1);
	assert_true(near(relay.last_wait, 50)); /* the sync ended at 32, next at 82 */
	run_tasks(s, 1);
	assert_true(near(sync.last_start, 82));
	assert_int_equal(m.sleeps, 0); /* the relay's poll is the wait: the loop never sleeps */
	cmb_sched_free(s);
}

static void test_postpone_and_tune(void **state)
{
	(void)state;
	struct sim m = { .t = 0 };
	struct job full = { .sim = &m, .name = "F", .takes = 0 };
	struct job delta = { .sim = &m, .name = "D", .takes = 0 };
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts fo = { .name = "full", .interval_s = 3600, .run = job_run, .ud = &full };
	struct cmb_sched_task_opts d_o = {
		.name = "delta", .interval_s = 900, .first_delay_s = 900, .run = job_run, .ud = &delta,
	};
	cmb_sched_add(s, &fo);
	struct cmb_sched_task *dt = cmb_sched_add(s, &d_o);
	m.t = 500;
	cmb_sched_postpone(dt); /* as the full sync does for the delta */
	assert_true(near(cmb_sched_task_due_in(dt), 900));
	/* A reload changes the interval from the next scheduling on; the due time stays. */
	d_o.interval_s = 600;
	cmb_sched_task_tune(dt, &d_o);
	assert_true(near(cmb_sched_task_due_in(dt), 900));
	run_tasks(s, 2); /* the full at 500, then the delta at 1400 */
	assert_true(near(delta.last_start, 1400));
	assert_true(near(cmb_sched_task_due_in(dt), 600));
	cmb_sched_free(s);
}

static void test_run_now_and_retime(void **state)
{
	(void)state;
	struct sim m = { .t = 0 };
	char trace[16] = "";
	struct job relay = { .sim = &m, .name = "R", .takes = 1, .trace = trace };
	struct job delta = { .sim = &m, .name = "D", .takes = 10, .trace = trace };
	struct cmb_sched *s = new_sched(&m);
	struct cmb_sched_task_opts d_o = {
		.name = "delta", .interval_s = 900, .first_delay_s = 900, .backoff_base_s = 60, .backoff_max_s = 600,
		.run = job_run, .ud = &delta,
	};
	struct cmb_sched_task_opts ro = { .name = "relay", .interval_s = 0, .run = job_run, .ud = &relay };
	struct cmb_sched_task *dt = cmb_sched_add(s, &d_o);
	cmb_sched_add(s, &ro);
	run_tasks(s, 1); /* the relay, due at once */
	/* Asked for now: it goes before the relay, which is due too, then is scheduled as usual. */
	cmb_sched_run_now(dt);
	assert_true(near(cmb_sched_task_due_in(dt), 0));
	run_tasks(s, 2);
	assert_string_equal(trace, "RDR");
	assert_true(near(delta.last_start, 1));
	assert_true(near(cmb_sched_task_due_in(dt), 900 - 1));
	/* A reload shortens the interval: due 300 s after the run ended (t = 11), not after 900. */
	d_o.interval_s = 300;
	cmb_sched_task_tune(dt, &d_o);
	cmb_sched_task_retime(dt);
	assert_true(near(cmb_sched_task_due_in(dt), 11 + 300 - m.t));
	/* A failing task keeps its backoff through a retime. */
	delta.rcs[delta.calls] = CMB_ENETWORK;
	delta.n_rcs = delta.calls + 1;
	cmb_sched_run_now(dt);
	run_tasks(s, 1);
	double backoff = cmb_sched_task_due_in(dt);
	cmb_sched_task_retime(dt);
	assert_true(near(cmb_sched_task_due_in(dt), backoff));
	assert_int_equal(cmb_sched_task_failures(dt), 1);
	cmb_sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_delays_and_ties),
		cmocka_unit_test(test_interval_from_end_and_offset),
		cmocka_unit_test(test_backoff_and_reset),
		cmocka_unit_test(test_relay_backoff_series),
		cmocka_unit_test(test_canceled_runs_again),
		cmocka_unit_test(test_wait_until_next_other),
		cmocka_unit_test(test_postpone_and_tune),
		cmocka_unit_test(test_run_now_and_retime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
