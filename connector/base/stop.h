/*
 * stop.h - the process-wide stop request (SIGTERM, SIGINT) and the softer
 * interrupt request (SIGHUP): one mechanism for the whole process.
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
 * A softer request (SIGHUP: reload) that ends only waits that are safe to
 * cut and start again, such as an idle long poll (cmb_http_request's
 * `interruptible`). NULL (the default) means never.
 */
void cmb_interrupt_set_flag(volatile int *flag);
int cmb_interrupted(void);

#endif
