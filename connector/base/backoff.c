/*
 * backoff.c - the delay after consecutive failures of a periodic task (backoff.h).
 */
#include "connector/base/backoff.h"

#include <math.h>

double cmb_backoff_delay(int failures, double base_s, double max_s)
{
	if (failures < 1)
		return 0;
	double d = base_s * ldexp(1.0, failures < 30 ? failures : 30);
	return d < max_s ? d : max_s;
}
