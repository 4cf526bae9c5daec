/*
 * log.h - leveled logging to stderr (or a file) with a correlation id, in
 * one of four formats (text, journal, json, cmtrace).
 *
 * Every line of one sync cycle or relay step carries its correlation id
 * (SSSD), and a component (sync, relay, policy...) that cmtrace shows as
 * its own column. Both are per thread. Values that come from outside are
 * quoted by the caller with %s inside quotes; secrets and tokens are never
 * passed here, at any level. Safe to call from any thread.
 */
#ifndef CMB_LOG_H
#define CMB_LOG_H

enum cmb_log_level { CMB_LOG_ERROR = 0, CMB_LOG_WARN, CMB_LOG_INFO, CMB_LOG_DEBUG };

enum cmb_log_format {
	CMB_LOG_TEXT = 0,    /* "2024-05-01T10:00:00.000Z info  [cycle-3] message"; journal on a journald stderr */
	CMB_LOG_JOURNAL,     /* "<6>[cycle-3] message": journald adds the time and reads the priority */
	CMB_LOG_JSON,        /* {"time":..,"level":..,"component":..,"cid":..,"file":..,"message":..} */
	CMB_LOG_CMTRACE,     /* <![LOG[message]LOG]!><time=".." date=".." component=".." ...> (docs/operations.md) */
};

void cmb_log_set_level(enum cmb_log_level level);
enum cmb_log_level cmb_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int cmb_log_level_parse(const char *s);
/* Parses "text", "journal", "json", "cmtrace"; returns -1 when unknown. */
int cmb_log_format_parse(const char *s);
/*
 * Opens path for appending (NULL means stderr) and closes the file used
 * so far: called again with the same path, it reopens it (after logrotate
 * moved it). A new file is created with mode 0640. Returns 0, or CMB_EIO
 * with the old file still in use.
 */
int cmb_log_open(const char *path);
void cmb_log_set_format(enum cmb_log_format format);
/*
 * A file opened with cmb_log_open that would grow past max_bytes is renamed
 * to its name with .lo_ for .log (or .lo_ added), replacing an older one,
 * and started afresh, as ConfigMgr's own logs are. 0: no limit.
 */
void cmb_log_set_max_size(long max_bytes);
/* Sets the calling thread's correlation id printed on each line (NULL clears). Copied. */
void cmb_log_set_cid(const char *cid);
/* The calling thread's correlation id ("" when none): to restore after a line of another's. */
const char *cmb_log_get_cid(void);
/* Sets the calling thread's component ("sync", "relay"; NULL: "cmbridge"). Copied. */
void cmb_log_set_component(const char *component);
/*
 * A live status line on a terminal (progress): drawn on stderr when stderr
 * is a terminal, erased before each log line written there and drawn again
 * after it, so the log itself never holds it. NULL erases it.
 */
void cmb_log_status_line(const char *text);

/*
 * 1 when lines go to stderr as plain text (no [log] file, text format, not
 * the journal): a command's own "cmbridge: ..." message then says it all;
 * otherwise the command logs its failure too, where the admin reads.
 */
int cmb_log_is_plain_stderr(void);
/* 1 when lines go to [log] file. */
int cmb_log_has_file(void);

void cmb_log_at(enum cmb_log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define cmb_log(level, ...) cmb_log_at(level, __FILE__, __LINE__, __VA_ARGS__)

#define cmb_error_log(...) cmb_log_at(CMB_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define cmb_warn(...) cmb_log_at(CMB_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define cmb_info(...) cmb_log_at(CMB_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define cmb_debug(...) cmb_log_at(CMB_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#endif
