/*
 * canned_fixture.h - a unit test's HTTPS server: tests/tools/canned_server
 * started on loopback with a certificate made for the run (openssl req),
 * answering from files the test writes (curl's test servers). Header-only,
 * for the tests that drive the real transport against hostile replies.
 *
 * Needs CANNED_SERVER (the tool's path) defined at compile time. When the
 * openssl command is missing the fixture's setup fails, naming it.
 */
#ifndef CMB_TEST_CANNED_FIXTURE_H
#define CMB_TEST_CANNED_FIXTURE_H

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connector/base/util.h"

struct canned_fx {
	char dir[64];
	char *cert, *key;            /* the server's certificate (also the CA to trust) and key */
	char *secret;                /* a client secret file (mode 600) for token requests */
	pid_t pid;
	int port;
};

/* Writes len bytes of data to DIR/name with mode; returns the path (caller frees). */
static inline char *canned_file(const struct canned_fx *f, const char *name, const void *data, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", f->dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) < 0)
		cmb_fatal("canned_fixture: cannot write a file");
	close(fd);
	return path;
}

/* Makes the directory and the certificate. 0, or -1 with the reason on stderr. */
static inline int canned_init(struct canned_fx *f)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/cmbcanned.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	f->cert = xasprintf("%s/server.pem", f->dir);
	f->key = xasprintf("%s/server.key", f->dir);
	char *cmd = xasprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
			      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
			      ">/dev/null 2>&1", f->key, f->cert);
	int rc = system(cmd);
	free(cmd);
	if (rc != 0) {
		fprintf(stderr, "canned_fixture: cannot make a certificate (is the openssl command installed?)\n");
		return -1;
	}
	f->secret = canned_file(f, "secret", "s3cret\n", 7, 0600);
	return 0;
}

/* Starts canned_server with args (NULL-terminated, after its certificate and port options). */
static inline int canned_start(struct canned_fx *f, const char *const *args)
{
	char *port_file = xasprintf("%s/port", f->dir);
	unlink(port_file);
	const char *argv[64] = { CANNED_SERVER, "--cert", f->cert, "--key", f->key, "--port-file", port_file };
	size_t n = 7;
	for (size_t i = 0; args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	f->pid = fork();
	if (f->pid == 0) {
		/* Quiet, and gone with the test even when it aborts (a sanitizer report): ctest waits for its pipes. */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(CANNED_SERVER, (char *const *)argv);
		_exit(127);
	}
	f->port = 0;
	for (int i = 0; i < 200 && !f->port; i++) {
		FILE *fp = fopen(port_file, "r");
		if (fp) {
			if (fscanf(fp, "%d", &f->port) != 1)
				f->port = 0;
			fclose(fp);
		}
		if (!f->port)
			usleep(20000);
	}
	free(port_file);
	return f->port ? 0 : -1;
}

static inline int canned_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void canned_fini(struct canned_fx *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, NULL, 0);
		f->pid = 0;
	}
	nftw(f->dir, canned_rm, 8, FTW_DEPTH | FTW_PHYS);
	free(f->cert);
	free(f->key);
	free(f->secret);
}

#endif
