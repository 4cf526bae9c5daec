/*
 * ctl.c - the control socket (ctl.h): an accepting thread, one short
 * thread per connection (at most MAX_CONNS at once), one slot for the
 * request the main loop has not taken yet, and the client's call.
 */
#include "connector/daemon/ctl.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/log.h"
#include "connector/base/stop.h"
#include "connector/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 16
#define MAX_WORDS 16
#define READ_TIMEOUT_MS 5000
#define REPLY_MAX (1u << 20)
#define POLL_SLICE_MS 200

struct cmb_ctl_request {
	struct cmb_ctl *ctl;
	char line[CMB_CTL_LINE_MAX];
	char *words[MAX_WORDS];
	int n;
	char *reply;             /* set once answered */
};

struct cmb_ctl {
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* a request answered, a connection ended, stopping */
	int fd;                  /* listening socket */
	int wake_pipe[2];        /* ends the accepting thread's poll */
	char *path;
	volatile int *wake;
	pthread_t acceptor;
	int stopping;
	int conns;               /* connection threads alive */
	struct cmb_ctl_request *slot; /* waiting for the main loop */
	char *view;              /* what `status` gets */
	unsigned long served;
};

struct conn {
	struct cmb_ctl *ctl;
	int fd;
	unsigned long n;
};

/* ---- replies ---- */

static char *error_json(const char *message)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_bool(g, "ok", 0);
	cmb_json_kv_str(g, "error", message);
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

static void write_reply(int fd, const char *json)
{
	size_t len = strlen(json), off = 0;
	while (off < len) {
		ssize_t w = send(fd, json + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the client went away: nothing to tell it */
		off += (size_t)w;
	}
	(void)send(fd, "\n", 1, MSG_NOSIGNAL);
}

/* ---- one connection ---- */

/* Reads one line (without its newline) within READ_TIMEOUT_MS; -1 on timeout, EOF first, or overflow. */
static int read_line(int fd, char *out, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, READ_TIMEOUT_MS) <= 0)
			return -1;
		ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
		if (r <= 0)
			return -1;
		char *nl = memchr(out + n, '\n', (size_t)r);
		n += (size_t)r;
		if (nl) {
			*nl = 0;
			return 0;
		}
	}
	return -1;
}

static int peer_allowed(int fd, char *why, size_t cap)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		snprintf(why, cap, "cannot check the peer's credentials: %s", strerror(errno));
		return 0;
	}
	if (cr.uid == 0 || cr.uid == geteuid())
		return 1;
	snprintf(why, cap, "permission denied: uid %ld is neither root nor the daemon's user (uid %ld)",
		 (long)cr.uid, (long)geteuid());
	return 0;
}

static void split_words(struct cmb_ctl_request *r)
{
	char *save = NULL;
	for (char *w = strtok_r(r->line, " \t\r", &save); w && r->n < MAX_WORDS; w = strtok_r(NULL, " \t\r", &save))
		r->words[r->n++] = w;
}

/* Hands r to the main loop and waits for its answer; returns the reply (the caller's). */
static char *ask_main_loop(struct cmb_ctl *c, struct cmb_ctl_request *r)
{
	pthread_mutex_lock(&c->lock);
	if (c->stopping || c->slot) {
		pthread_mutex_unlock(&c->lock);
		return error_json(c->stopping ? "stopping: the daemon is shutting down"
					      : "busy: the daemon has another request waiting; try again when it is answered");
	}
	c->slot = r;
	*c->wake = 1;
	while (!r->reply && !c->stopping)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->slot == r)
		c->slot = NULL;
	char *reply = r->reply ? r->reply : error_json("stopping: the daemon is shutting down");
	r->reply = NULL;
	pthread_mutex_unlock(&c->lock);
	return reply;
}

static char *serve(struct cmb_ctl *c, struct cmb_ctl_request *r)
{
	if (r->n == 0)
		return error_json("empty request (see docs/operations.md for the requests)");
	if (strcmp(r->words[0], "status") == 0) {
		pthread_mutex_lock(&c->lock);
		char *v = c->view ? xstrdup(c->view) : error_json("starting: no view published yet");
		pthread_mutex_unlock(&c->lock);
		return v;
	}
	return ask_main_loop(c, r);
}

static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct cmb_ctl *c = k->ctl;
	char cid[32], why[160];
	snprintf(cid, sizeof(cid), "control-%lu", k->n);
	cmb_log_set_cid(cid);
	cmb_log_set_component("control");
	struct cmb_ctl_request *r = xcalloc(1, sizeof(*r));
	r->ctl = c;
	char *reply;
	if (!peer_allowed(k->fd, why, sizeof(why))) {
		cmb_warn("control socket: %s", why);
		reply = error_json(why);
	} else if (read_line(k->fd, r->line, sizeof(r->line)) < 0) {
		reply = error_json("no complete request line within 5 s (one line, at most 1023 bytes)");
	} else {
		split_words(r);
		cmb_debug("control socket: request \"%s\"", r->n ? r->words[0] : "");
		reply = serve(c, r);
	}
	write_reply(k->fd, reply);
	free(reply);
	close(k->fd);
	free(r);
	free(k);
	pthread_mutex_lock(&c->lock);
	c->conns--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- accepting ---- */

static void start_conn(struct cmb_ctl *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	int full = c->conns >= MAX_CONNS;
	if (!full)
		c->conns++;
	unsigned long n = ++c->served;
	pthread_mutex_unlock(&c->lock);
	if (full) {
		close(fd); /* a burst of clients: the next try gets through */
		return;
	}
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct conn *k = xcalloc(1, sizeof(*k));
	*k = (struct conn){ .ctl = c, .fd = fd, .n = n };
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, conn_main, k) != 0) {
		close(fd);
		free(k);
		pthread_mutex_lock(&c->lock);
		c->conns--;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_attr_destroy(&a);
}

static void *accept_main(void *arg)
{
	struct cmb_ctl *c = arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->wake_pipe[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			start_conn(c, fd);
	}
	return NULL;
}

static int bind_socket(struct cmb_ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(c->path) >= sizeof(sa.sun_path))
		return cmb_error_set(CMB_ECONFIG, "control socket %s: the path is longer than %zu bytes; use a shorter "
				     "[connector] state_dir", c->path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return cmb_error_set(CMB_EIO, "control socket %s: %s", c->path, strerror(errno));
	unlink(c->path); /* a stale one from a crash: the state lock says no daemon owns it */
	mode_t old = umask(0177);
	int rc = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(c->path, 0600) < 0 || listen(c->fd, MAX_CONNS) < 0)
		return cmb_error_set(CMB_EIO, "control socket %s: %s", c->path, strerror(errno));
	return 0;
}

static void ctl_free(struct cmb_ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	for (int i = 0; i < 2; i++)
		if (c->wake_pipe[i] >= 0)
			close(c->wake_pipe[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->view);
	free(c->path);
	free(c);
}

int cmb_ctl_start(struct cmb_ctl **out, const char *state_dir, volatile int *wake)
{
	struct cmb_ctl *c = xcalloc(1, sizeof(*c));
	c->fd = -1;
	c->wake_pipe[0] = c->wake_pipe[1] = -1;
	c->wake = wake;
	c->path = xasprintf("%s/%s", state_dir, CMB_CTL_SOCKET);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	int rc = bind_socket(c);
	if (rc == 0 && pipe2(c->wake_pipe, O_CLOEXEC) < 0)
		rc = cmb_error_set(CMB_EIO, "control socket: %s", strerror(errno));
	if (rc == 0) {
		/* Signals stay with the main thread: its handlers set the flags the loop reads. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&c->acceptor, NULL, accept_main, c) != 0)
			rc = cmb_error_set(CMB_EIO, "control socket: cannot start its thread");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc < 0) {
		if (c->fd >= 0)
			unlink(c->path);
		ctl_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void cmb_ctl_stop(struct cmb_ctl *c)
{
	if (!c)
		return;
	(void)!write(c->wake_pipe[1], "x", 1);
	pthread_join(c->acceptor, NULL);
	unlink(c->path);
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cond);
	while (c->conns > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	ctl_free(c);
}

void cmb_ctl_publish(struct cmb_ctl *c, char *view_json)
{
	if (!c) {
		free(view_json);
		return;
	}
	pthread_mutex_lock(&c->lock);
	free(c->view);
	c->view = view_json;
	pthread_mutex_unlock(&c->lock);
}

struct cmb_ctl_request *cmb_ctl_take(struct cmb_ctl *c)
{
	if (!c)
		return NULL;
	pthread_mutex_lock(&c->lock);
	struct cmb_ctl_request *r = c->slot;
	c->slot = NULL;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int cmb_ctl_request_argc(const struct cmb_ctl_request *r)
{
	return r->n;
}

const char *cmb_ctl_request_arg(const struct cmb_ctl_request *r, int i)
{
	return i >= 0 && i < r->n ? r->words[i] : NULL;
}

void cmb_ctl_answer(struct cmb_ctl_request *r, char *reply_json)
{
	struct cmb_ctl *c = r->ctl;
	pthread_mutex_lock(&c->lock);
	r->reply = reply_json;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void cmb_ctl_answer_error(struct cmb_ctl_request *r, const char *message)
{
	cmb_ctl_answer(r, error_json(message));
}

/* ---- the client ---- */

static int client_connect(const char *state_dir, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *path = xasprintf("%s/%s", state_dir, CMB_CTL_SOCKET);
	int rc = 0;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		rc = cmb_error_set(CMB_ENOTFOUND, "control socket %s: path too long", path);
		goto done;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = cmb_error_set(CMB_EIO, "control socket %s: %s", path, strerror(errno));
		goto done;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		rc = cmb_error_set(e == ENOENT || e == ECONNREFUSED ? CMB_ENOTFOUND : CMB_EIO,
				   "no cmbridge run answers on %s: %s", path, strerror(e));
		goto done;
	}
	*out = fd;
done:
	free(path);
	return rc;
}

/* Reads until the daemon closes, in slices so a stop request (Ctrl-C) ends the wait. */
static int read_reply(int fd, char **out)
{
	size_t n = 0, cap = 4096;
	char *buf = xmalloc(cap);
	for (;;) {
		if (cmb_stop_requested()) {
			free(buf);
			return cmb_error_set(CMB_ECANCELED, "stopped waiting for the daemon's answer (it goes on)");
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, POLL_SLICE_MS) <= 0)
			continue;
		if (n + 1 == cap && (cap *= 2) > REPLY_MAX) {
			free(buf);
			return cmb_error_set(CMB_EPROTO, "the daemon's answer is longer than 1 MiB");
		}
		buf = xrealloc(buf, cap);
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*out = buf;
	return 0;
}

int cmb_ctl_call(const char *state_dir, const char *line, yajl_val *reply)
{
	int fd = -1, rc = client_connect(state_dir, &fd);
	if (rc < 0)
		return rc;
	char *text = NULL;
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		rc = cmb_error_set(CMB_EIO, "control socket: cannot send the request: %s", strerror(errno));
	else
		rc = read_reply(fd, &text);
	close(fd);
	if (rc < 0)
		return rc;
	char eb[128];
	yajl_val v = yajl_tree_parse(text, eb, sizeof(eb));
	free(text);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		return cmb_error_set(CMB_EPROTO, "the daemon's answer is not a JSON object");
	}
	*reply = v;
	return 0;
}
