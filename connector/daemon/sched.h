/*
 * sched.h - the daemon's scheduler: periodic tasks run one at a time by the
 * main loop, each with an interval, a first delay, a random offset and a
 * backoff after failures (the rules of SSSD's be_ptask, without an event
 * library: cmbridge runs one task at a time in one thread).
 *
 * `cmbridge run` schedules three tasks on it: the full sync, the delta sync
 * and the action relay (daemon.c). Must never: run two tasks at once, run a
 * failing task sooner than its backoff allows, or sleep through a stop or
 * reload request (every wait ends on the flags of base/stop.h).
 */
#ifndef CMB_SCHED_H
#define CMB_SCHED_H

struct cmb_sched;
struct cmb_sched_task;

/*
 * A task's work. wait_s is how long it may block (until the next other
 * task is due: a long poll is held no longer). Returns 0 on success (next
 * run interval_s later), CMB_ECANCELED when a stop or reload request cut
 * it short (due again at once, not counted as a failure), or another
 * negative CMB_E* code: a failure (next run after the backoff).
 */
typedef int (*cmb_sched_run_fn)(void *ud, double wait_s);

struct cmb_sched_task_opts {
	const char *name;           /* for the log ("delta sync"); copied */
	double interval_s;          /* from the end of a successful run to the next; 0: again at once */
	double first_delay_s;       /* from cmb_sched_add to the first run (no random offset on it) */
	double random_offset_s;     /* up to this much more after each run, drawn afresh each time; 0: none */
	double backoff_base_s;      /* after n failures in a row the next run waits */
	double backoff_max_s;       /*   cmb_backoff_delay(n, base, max) (base/backoff.h) instead of the interval */
	cmb_sched_run_fn run;
	void *ud;                   /* passed to run; borrowed */
};

/*
 * Time and chance, replaceable for tests (simulated time, no sleeping).
 * A NULL clock or NULL member means: cmb_now_mono(); a real sleep that
 * ends early on a stop or reload request (base/stop.h); RAND_bytes.
 */
struct cmb_sched_clock {
	double (*now)(void *ud);            /* monotonic seconds */
	void (*sleep)(void *ud, double s);  /* waits up to s seconds; may return sooner */
	double (*random01)(void *ud);       /* uniform in [0, 1) */
	void *ud;
};

/* *out is the caller's (cmb_sched_free); clock is copied. */
void cmb_sched_new(struct cmb_sched **out, const struct cmb_sched_clock *clock);
/* Frees s and its tasks; NULL is fine. */
void cmb_sched_free(struct cmb_sched *s);

/* Adds a task, first due first_delay_s from now. The task belongs to s (valid until cmb_sched_free). */
struct cmb_sched_task *cmb_sched_add(struct cmb_sched *s, const struct cmb_sched_task_opts *o);
/*
 * New interval, random offset and backoff for t (a reload); they apply
 * from its next scheduling, the due time already set is kept. name, run,
 * ud and first_delay_s of o are ignored.
 */
void cmb_sched_task_tune(struct cmb_sched_task *t, const struct cmb_sched_task_opts *o);
/* Schedules t as if it had just run successfully (another task did its work). */
void cmb_sched_postpone(struct cmb_sched_task *t);
/*
 * Makes t due before every other task (SIGUSR1, a control request); after
 * that run it is scheduled as usual. Its failures are kept.
 */
void cmb_sched_run_now(struct cmb_sched_task *t);
/*
 * After a reload changed t's interval (cmb_sched_task_tune): due one new
 * interval after its last run ended (or after it was added, when it has
 * not run), unless it is failing (its backoff stands) or was asked to run
 * now. A shorter interval so takes effect at once, not after the old one.
 */
void cmb_sched_task_retime(struct cmb_sched_task *t);

/* Seconds until t is due (0 when it is); its failures in a row; its runs so far. */
double cmb_sched_task_due_in(const struct cmb_sched_task *t);
int cmb_sched_task_failures(const struct cmb_sched_task *t);
long cmb_sched_task_runs(const struct cmb_sched_task *t);

/*
 * One turn of the main loop: when a task is due, runs the one due first
 * (on a tie, the one added first), schedules its next run and returns what
 * it returned; otherwise sleeps until one is due, or less (a stop or
 * reload request), and returns 1 without running anything. The caller
 * looks at its flags between turns.
 */
int cmb_sched_step(struct cmb_sched *s);

#endif
