/*
 * sdnotify.c - READY, RELOADING, STOPPING, STATUS and WATCHDOG datagrams
 * to systemd (sdnotify.h).
 */
#include "connector/daemon/sdnotify.h"
#include "connector/base/clock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_un sd_addr;
static socklen_t sd_addr_len;
static int sd_fd = -1;
static double watchdog_s;           /* WATCHDOG_USEC in seconds; 0: none */
static double last_ping;
static pthread_t main_thread;

void cmb_sd_init(void)
{
	main_thread = pthread_self();
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n = path ? strlen(path) : 0;
	if (n == 0 || n >= sizeof(sd_addr.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memset(&sd_addr, 0, sizeof(sd_addr));
	sd_addr.sun_family = AF_UNIX;
	memcpy(sd_addr.sun_path, path, n);
	if (path[0] == '@')
		sd_addr.sun_path[0] = 0; /* an abstract socket */
	sd_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	sd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* The watchdog is for this process only when WATCHDOG_PID says so (or is unset). */
	const char *us = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
	if (us && (!wp || strtol(wp, NULL, 10) == (long)getpid())) {
		double v = strtod(us, NULL) / 1e6;
		watchdog_s = v > 0 ? v : 0;
	}
}

int cmb_sd_active(void)
{
	return sd_fd >= 0;
}

double cmb_sd_watchdog_interval(void)
{
	return sd_fd >= 0 ? watchdog_s : 0;
}

static void send_text(const char *text)
{
	if (sd_fd < 0)
		return;
	/* Dropped when systemd is gone or busy: a notification is never worth blocking the loop. */
	(void)sendto(sd_fd, text, strlen(text), MSG_NOSIGNAL, (const struct sockaddr *)&sd_addr, sd_addr_len);
}

void cmb_sd_notify(const char *fmt, ...)
{
	if (sd_fd < 0)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	send_text(buf);
}

void cmb_sd_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	cmb_sd_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
		      (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void cmb_sd_watchdog(void)
{
	if (sd_fd < 0 || watchdog_s <= 0 || !pthread_equal(pthread_self(), main_thread))
		return;
	double now = cmb_now_mono();
	if (last_ping && now - last_ping < watchdog_s / 3)
		return;
	last_ping = now;
	send_text("WATCHDOG=1");
}
