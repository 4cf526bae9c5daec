/*
 * sdnotify.h - systemd's service notification protocol without libsystemd
 * (sd_notify(3); chrony does the same in a few lines): one datagram of
 * "NAME=value" lines on $NOTIFY_SOCKET, and the watchdog's keep-alive
 * when $WATCHDOG_USEC asks for one.
 *
 * Must never: block (a datagram is sent or dropped), fail the daemon
 * because systemd is not listening, or ping the watchdog from a thread
 * other than the main loop's (a stuck loop must stop the pings).
 */
#ifndef CMB_SDNOTIFY_H
#define CMB_SDNOTIFY_H

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; the calling thread is the main loop's. */
void cmb_sd_init(void);
/* 1 when NOTIFY_SOCKET is set. */
int cmb_sd_active(void);
/* Sends the lines of fmt (e.g. "READY=1\nSTATUS=idle"); nothing when not under systemd. */
void cmb_sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with MONOTONIC_USEC, as systemd wants it before a reload. */
void cmb_sd_reloading(void);
/*
 * WATCHDOG=1 when a third of the watchdog interval passed since the last ping;
 * from the main thread only (elsewhere it does nothing). Cheap: called on
 * every stop check.
 */
void cmb_sd_watchdog(void);
/* The watchdog interval in seconds, 0 when none was asked for. */
double cmb_sd_watchdog_interval(void);

#endif
