/*
 * log.c - leveled log lines: time, level, correlation id, message.
 */
#include "connector/base/log.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum cmb_log_level log_level = CMB_LOG_INFO;
static FILE *log_fp;
static char log_cid[64];

void cmb_log_set_level(enum cmb_log_level level) { log_level = level; }
enum cmb_log_level cmb_log_get_level(void) { return log_level; }

int cmb_log_level_parse(const char *s)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int cmb_log_open(const char *path)
{
	if (!path || !*path) {
		if (log_fp)
			fclose(log_fp);
		log_fp = NULL;
		return 0;
	}
	FILE *fp = fopen(path, "ae");
	if (!fp)
		return cmb_error_set(CMB_EIO, "cannot open log file %s: %s", path, strerror(errno));
	setvbuf(fp, NULL, _IOLBF, 0);
	if (log_fp)
		fclose(log_fp);
	log_fp = fp;
	return 0;
}

void cmb_log_set_cid(const char *cid)
{
	snprintf(log_cid, sizeof(log_cid), "%s", cid ? cid : "");
}


void cmb_log(enum cmb_log_level level, const char *fmt, ...)
{
	static const char *tags[] = { "error", "warn", "info", "debug" };
	if (level > log_level)
		return;
	FILE *fp = log_fp ? log_fp : stderr;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_cid[0])
		fprintf(fp, "%s.%03ldZ %-5s [%s] %s\n", ts, (long)(tv.tv_usec / 1000), tags[level], log_cid, msg);
	else
		fprintf(fp, "%s.%03ldZ %-5s %s\n", ts, (long)(tv.tv_usec / 1000), tags[level], msg);
}
