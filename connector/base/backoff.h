/*
 * backoff.h - how long a periodic task that keeps failing waits before it
 * runs again: one formula for the daemon's scheduler (daemon/sched.c) and
 * the relay's own loop (`cmbridge relay`, engine/relay.c).
 *
 * Not for single requests: those back off with full jitter within a
 * cycle's retry budget (transport/retry.h).
 */
#ifndef CMB_BACKOFF_H
#define CMB_BACKOFF_H

/*
 * The wait after `failures` consecutive failures (1 after the first):
 * base_s * 2^failures, at most max_s; 0 when failures < 1. With base 0.5
 * and max 30: 1, 2, 4, 8, 16, 30, 30 ... seconds.
 */
double cmb_backoff_delay(int failures, double base_s, double max_s);

#endif
