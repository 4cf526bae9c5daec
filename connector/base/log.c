/*
 * log.c - leveled log lines in the configured format (log.h), written
 * whole under one lock so threads never interleave, with size-based
 * rotation of [log] file to .lo_ and a terminal status line kept out of
 * the log.
 *
 * Must never: write a partial line, leave the status line inside a log
 * line, or follow a symlink when it creates the file.
 */
#include "connector/base/log.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 4096
#define LINE_MAX_BYTES (MSG_MAX + 512)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum cmb_log_level log_level = CMB_LOG_INFO;
static enum cmb_log_format log_format = CMB_LOG_TEXT;
static FILE *log_fp;             /* NULL: stderr */
static char *log_path;           /* of log_fp, for rotation */
static long log_size;            /* bytes in log_fp */
static long log_max_size;        /* 0: no rotation */
static char *status_text;        /* the terminal status line, when drawn */
static _Thread_local char log_cid[64];
static _Thread_local char log_component[24];

void cmb_log_set_level(enum cmb_log_level level) { log_level = level; }
enum cmb_log_level cmb_log_get_level(void) { return log_level; }
void cmb_log_set_format(enum cmb_log_format format) { log_format = format; }
void cmb_log_set_max_size(long max_bytes) { log_max_size = max_bytes > 0 ? max_bytes : 0; }

static int parse_name(const char *s, const char *const *names, int n)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int cmb_log_level_parse(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	return parse_name(s, names, 4);
}

int cmb_log_format_parse(const char *s)
{
	static const char *const names[] = { "text", "journal", "json", "cmtrace" };
	return parse_name(s, names, 4);
}

/* Opens path for appending, created 0640 (never through a symlink), line-buffered. */
static FILE *open_append(const char *path, long *size)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return NULL;
	struct stat sb;
	*size = fstat(fd, &sb) == 0 ? (long)sb.st_size : 0;
	FILE *fp = fdopen(fd, "a");
	if (!fp) {
		close(fd);
		return NULL;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	return fp;
}

int cmb_log_open(const char *path)
{
	FILE *fp = NULL;
	long size = 0;
	if (path && *path && !(fp = open_append(path, &size)))
		return cmb_error_set(CMB_EIO, "cannot open log file %s: %s", path, strerror(errno));
	pthread_mutex_lock(&log_lock);
	if (log_fp)
		fclose(log_fp);
	free(log_path);
	log_fp = fp;
	log_path = fp ? xstrdup(path) : NULL;
	log_size = size;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void cmb_log_set_cid(const char *cid)
{
	snprintf(log_cid, sizeof(log_cid), "%s", cid ? cid : "");
}

const char *cmb_log_get_cid(void)
{
	return log_cid;
}

void cmb_log_set_component(const char *component)
{
	snprintf(log_component, sizeof(log_component), "%s", component ? component : "");
}

/* x.log -> x.lo_ (ConfigMgr's history file), anything else -> anything.lo_; caller frees. */
static char *history_name(const char *path)
{
	size_t n = strlen(path);
	if (n > 4 && strcmp(path + n - 4, ".log") == 0)
		return xasprintf("%.*s.lo_", (int)(n - 4), path);
	return xasprintf("%s.lo_", path);
}

/* Called with the lock held before a line of len bytes goes to the file. */
static void rotate_if_full(size_t len)
{
	if (!log_fp || !log_max_size || log_size == 0 || log_size + (long)len <= log_max_size)
		return;
	char *old = history_name(log_path);
	long size = 0;
	if (rename(log_path, old) == 0) {
		FILE *fp = open_append(log_path, &size);
		if (fp) {
			fclose(log_fp);
			log_fp = fp;
			log_size = size;
		}
	}
	free(old);
}

/* stderr is journald's stream (systemd sets JOURNAL_STREAM to its device:inode). */
static int stderr_is_journal(void)
{
	static int known = -1;
	if (known >= 0)
		return known;
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev = 0, ino = 0;
	struct stat sb;
	known = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &sb) == 0 &&
		(unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
	return known;
}

static const char *component_of(void)
{
	return log_component[0] ? log_component : "cmbridge";
}

static const char *base_name(const char *file)
{
	const char *slash = file ? strrchr(file, '/') : NULL;
	return slash ? slash + 1 : file ? file : "";
}

static int text_line(char *out, enum cmb_log_level level, const struct timeval *tv, const char *msg)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	return snprintf(out, LINE_MAX_BYTES, "%s.%03ldZ %-5s %s%s%s%s\n", ts, (long)(tv->tv_usec / 1000), tags[level],
			log_cid[0] ? "[" : "", log_cid, log_cid[0] ? "] " : "", msg);
}

/* syslog priorities (sd-daemon.h's SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG). */
static int journal_line(char *out, enum cmb_log_level level, const char *msg)
{
	static const int prio[] = { 3, 4, 6, 7 };
	return snprintf(out, LINE_MAX_BYTES, "<%d>%s%s%s%s\n", prio[level], log_cid[0] ? "[" : "", log_cid,
			log_cid[0] ? "] " : "", msg);
}

static int json_line(char *out, enum cmb_log_level level, const struct timeval *tv, const char *file, int line,
		     const char *msg)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	char ts[40], where[96];
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv->tv_usec / 1000));
	snprintf(where, sizeof(where), "%s:%d", base_name(file), line);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_str(g, "time", ts);
	cmb_json_kv_str(g, "level", tags[level]);
	cmb_json_kv_str(g, "component", component_of());
	cmb_json_kv_str(g, "cid", log_cid[0] ? log_cid : NULL);
	cmb_json_kv_str(g, "file", where);
	cmb_json_kv_str(g, "message", msg);
	yajl_gen_map_close(g);
	char *doc = cmb_json_take(g, NULL);
	int len = snprintf(out, LINE_MAX_BYTES, "%s\n", doc);
	free(doc);
	return len;
}

/*
 * CMTrace's line (docs/operations.md): the time is UTC, so the time zone
 * bias after it is +000; type 1 information, 2 warning, 3 error. The
 * message may not hold the closing "]LOG]!>" of its own frame.
 */
static int cmtrace_line(char *out, enum cmb_log_level level, const struct timeval *tv, const char *file, int line,
			char *msg)
{
	for (char *p = strstr(msg, "]LOG]!>"); p; p = strstr(p, "]LOG]!>"))
		*p = ')';
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	int type = level == CMB_LOG_ERROR ? 3 : level == CMB_LOG_WARN ? 2 : 1;
	return snprintf(out, LINE_MAX_BYTES,
			"<![LOG[%s%s%s%s]LOG]!><time=\"%02d:%02d:%02d.%03ld+000\" date=\"%02d-%02d-%04d\" "
			"component=\"%s\" context=\"\" type=\"%d\" thread=\"%ld\" file=\"%s:%d\">\n",
			log_cid[0] ? "[" : "", log_cid, log_cid[0] ? "] " : "", msg, tm.tm_hour, tm.tm_min, tm.tm_sec,
			(long)(tv->tv_usec / 1000), tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, component_of(), type,
			(long)gettid(), base_name(file), line);
}

static int stderr_is_tty(void)
{
	static int known = -1;
	if (known < 0)
		known = isatty(STDERR_FILENO);
	return known;
}

/* Called with the lock held. */
static void status_erase(void)
{
	if (status_text && stderr_is_tty())
		fputs("\r\033[K", stderr);
}

static void status_draw(void)
{
	if (status_text && stderr_is_tty()) {
		fputs(status_text, stderr);
		fflush(stderr);
	}
}

void cmb_log_status_line(const char *text)
{
	if (!stderr_is_tty())
		return;
	pthread_mutex_lock(&log_lock);
	status_erase();
	free(status_text);
	status_text = text ? xstrdup(text) : NULL;
	status_draw();
	pthread_mutex_unlock(&log_lock);
}

int cmb_log_has_file(void)
{
	return log_fp != NULL;
}

int cmb_log_is_plain_stderr(void)
{
	return !log_fp && log_format == CMB_LOG_TEXT && !stderr_is_journal();
}

/* The line in the format in force for where it goes; returns its length (at most LINE_MAX_BYTES - 1). */
static int format_line(char *out, enum cmb_log_level level, const char *file, int line, char *msg)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	enum cmb_log_format f = log_format;
	if (f == CMB_LOG_TEXT && !log_fp && stderr_is_journal())
		f = CMB_LOG_JOURNAL; /* journald stamps its own time */
	int len = f == CMB_LOG_JOURNAL ? journal_line(out, level, msg)
		: f == CMB_LOG_JSON    ? json_line(out, level, &tv, file, line, msg)
		: f == CMB_LOG_CMTRACE ? cmtrace_line(out, level, &tv, file, line, msg)
				       : text_line(out, level, &tv, msg);
	if (len >= LINE_MAX_BYTES) {
		len = LINE_MAX_BYTES - 1;
		out[len - 1] = '\n';
	}
	return len < 0 ? 0 : len;
}

void cmb_log_at(enum cmb_log_level level, const char *file, int line, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *buf = xmalloc(LINE_MAX_BYTES);
	pthread_mutex_lock(&log_lock);
	int len = format_line(buf, level, file, line, msg);
	if (log_fp) {
		rotate_if_full((size_t)len);
		if (fwrite(buf, 1, (size_t)len, log_fp) == (size_t)len)
			log_size += len;
	} else {
		status_erase();
		fwrite(buf, 1, (size_t)len, stderr);
		status_draw();
	}
	pthread_mutex_unlock(&log_lock);
	free(buf);
}
