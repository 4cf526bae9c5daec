/*
 * stop.c - the process-wide stop and interrupt requests: flags a signal
 * handler sets and long waits (transfers, retry back-off) check.
 */
#include "connector/base/stop.h"

#include <stddef.h>

static volatile int *cancel_flag;

void cmb_stop_set_flag(volatile int *flag)
{
	cancel_flag = flag;
}

int cmb_stop_requested(void)
{
	return cancel_flag && *cancel_flag;
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

