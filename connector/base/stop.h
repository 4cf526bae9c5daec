/*
 * stop.h - the process-wide stop request (SIGTERM, SIGINT) and the softer
 * interrupt request (SIGHUP, a control request): one mechanism for the
 * whole process.
 */
#ifndef CMB_STOP_H
#define CMB_STOP_H

/*
 * The process-wide stop request: a flag a signal handler sets. Long waits
 * (transfers, retry back-off) check it so the daemon stops within about a
 * second. NULL (the default) means never.
 */
void cmb_stop_set_flag(volatile int *flag);
int cmb_stop_requested(void);
/*
 * While held, a stop request is not seen for up to grace_s seconds from
 * when it is first checked: an upload batch in flight may finish, and its
 * acknowledgement be recorded, instead of being cut off and rolled back.
 * Past the grace the request is seen as usual. Holds do not nest; release
 * ends the hold (the request, if any, is seen at the next check).
 */
void cmb_stop_hold(double grace_s);
void cmb_stop_release(void);
/*
 * Called by every cmb_stop_requested() (each wait and transfer checks it
 * about every 200 ms): the places where the process is known to be making
 * progress, so the daemon's watchdog ping rides on it. NULL: none.
 */
void cmb_stop_set_heartbeat(void (*fn)(void));
/*
 * A softer request (SIGHUP: reload) that ends only waits that are safe to
 * cut and start again, such as an idle long poll (cmb_http_request's
 * `interruptible`). NULL (the default) means never.
 */
void cmb_interrupt_set_flag(volatile int *flag);
int cmb_interrupted(void);

#endif
