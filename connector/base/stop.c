/*
 * stop.c - the process-wide stop and interrupt requests: flags a signal
 * handler sets and long waits (transfers, retry back-off) check; the hold
 * that lets a batch in flight finish; the heartbeat those checks give.
 */
#include "connector/base/stop.h"
#include "connector/base/clock.h"

#include <stddef.h>

static volatile int *cancel_flag;
static void (*heartbeat)(void);
static int held;
static double hold_grace, first_seen;

void cmb_stop_set_flag(volatile int *flag)
{
	cancel_flag = flag;
}

void cmb_stop_set_heartbeat(void (*fn)(void))
{
	heartbeat = fn;
}

void cmb_stop_hold(double grace_s)
{
	held = 1;
	hold_grace = grace_s;
	first_seen = 0;
}

void cmb_stop_release(void)
{
	held = 0;
}

int cmb_stop_requested(void)
{
	if (heartbeat)
		heartbeat();
	if (!cancel_flag || !*cancel_flag)
		return 0;
	if (!held)
		return 1;
	double now = cmb_now_mono();
	if (first_seen == 0)
		first_seen = now;
	return now - first_seen >= hold_grace;
}

static volatile int *interrupt_flag;

void cmb_interrupt_set_flag(volatile int *flag)
{
	interrupt_flag = flag;
}

int cmb_interrupted(void)
{
	return interrupt_flag && *interrupt_flag;
}
