/*
 * progress.h - what this process is doing now and how far it got: the
 * activity ("delta sync: reading the site"), counters of the phase
 * (devices read, records uploaded, batches), their rate and an ETA.
 *
 * One place reports them everywhere they are wanted: an info line every
 * ten pages' worth or ten seconds during a long read or upload, a live
 * line on a terminal (log.h keeps it out of the log), STATUS= to systemd
 * (sdnotify.h), and the text `cmbridge status` shows (progress_text).
 * Called from the main thread only. Must never: log more than one line
 * per ten seconds and ten pages, or count what it did not see.
 */
#ifndef CMB_PROGRESS_H
#define CMB_PROGRESS_H

/* A new activity (printf format; NULL or "" is idle); the counters start again. */
void cmb_progress_activity(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The site read: devices passed on so far; page_size turns them into pages for the log. */
void cmb_progress_read(long devices, long page_size);
/* The upload: total records to send (0: unknown), then records and batches done so far. */
void cmb_progress_upload(long total, long records, long batches);
/* The current activity and progress as one line (static buffer, overwritten by the next call). */
const char *cmb_progress_text(void);
/* Called after every change of the text (the daemon republishes its view); NULL: none. */
void cmb_progress_set_listener(void (*fn)(void));

#endif
