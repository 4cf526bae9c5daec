/*
 * log.h - leveled logging to stderr (or a file) with a correlation id.
 *
 * Every line of one sync cycle carries the cycle's id (SSSD). Values that
 * come from outside are quoted by the caller with %s inside quotes; secrets
 * and tokens are never passed here, at any level.
 */
#ifndef CMB_LOG_H
#define CMB_LOG_H

enum cmb_log_level { CMB_LOG_ERROR = 0, CMB_LOG_WARN, CMB_LOG_INFO, CMB_LOG_DEBUG };

void cmb_log_set_level(enum cmb_log_level level);
enum cmb_log_level cmb_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int cmb_log_level_parse(const char *s);
/*
 * Opens path for appending (NULL means stderr) and closes the file used
 * so far: called again with the same path, it reopens it (after logrotate
 * moved it). Returns 0, or CMB_EIO with the old file still in use.
 */
int cmb_log_open(const char *path);
/* Sets the correlation id printed on each line (NULL clears). Copied. */
void cmb_log_set_cid(const char *cid);

void cmb_log(enum cmb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cmb_error_log(...) cmb_log(CMB_LOG_ERROR, __VA_ARGS__)
#define cmb_warn(...) cmb_log(CMB_LOG_WARN, __VA_ARGS__)
#define cmb_info(...) cmb_log(CMB_LOG_INFO, __VA_ARGS__)
#define cmb_debug(...) cmb_log(CMB_LOG_DEBUG, __VA_ARGS__)

#endif
