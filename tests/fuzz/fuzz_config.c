/*
 * fuzz_config.c - libFuzzer target for the configuration file parser
 * (connector/config/config.c, libinih underneath).
 *
 * Each input is a cmbridge.conf, loaded through the parser's one entry
 * point from a file: an in-memory file (memfd) named through /proc/self/fd,
 * so nothing touches the disk. The files a configuration names are only
 * stat()ed; the seeds name the ones LLVMFuzzerInitialize creates in
 * /tmp/cmbridge-fuzz-config (secrets mode 600). A file that loads is printed as the
 * effective configuration (`cmbridge config`), and the printed text is
 * loaded again.
 *
 * Beyond not crashing, leaking or hanging: a refusal has a message that
 * says where; a configuration may always be reloaded as itself; what
 * `config` prints loads again, and prints the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connector/base/error.h"
#include "connector/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FILES_DIR "/tmp/cmbridge-fuzz-config"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const files[] = { "site-password", "client-secret", "client.pem", "client.key",
					     "passphrase", "proxy-password", "ca.pem" };
	if (mkdir(FILES_DIR, 0700) < 0 && errno != EEXIST)
		abort();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[128];
		snprintf(path, sizeof(path), FILES_DIR "/%s", files[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0)
			abort();
		close(fd);
	}
	return 0;
}

/* Loads len bytes as a configuration file; 0 with *out, or the parser's code. */
static int load(const void *text, size_t len, struct cmb_config **out)
{
	int fd = memfd_create("cmbridge.conf", MFD_CLOEXEC);
	if (fd < 0 || (len && write(fd, text, len) != (ssize_t)len))
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int rc = cmb_config_load(out, path);
	close(fd);
	return rc;
}

/* What `cmbridge config` prints; caller frees. */
static char *print(const struct cmb_config *cfg, size_t *len)
{
	char *text = NULL;
	FILE *fp = open_memstream(&text, len);
	if (!fp)
		abort();
	cmb_config_print(cfg, fp);
	fclose(fp);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmb_config *cfg = NULL, *again = NULL;
	if (load(data, size, &cfg) < 0) {
		const char *msg = cmb_error_last();
		if (cfg || !msg || strncmp(msg, "/proc/self/fd/", 14) != 0)
			abort();   /* every refusal names the file */
		return 0;
	}
	if (cmb_config_check_reload(cfg, cfg) != 0)
		abort();
	size_t len1 = 0, len2 = 0;
	char *text1 = print(cfg, &len1);
	if (load(text1, len1, &again) < 0) {
		fprintf(stderr, "what `config` printed does not load: %s\n%s\n", cmb_error_last(), text1);
		abort();
	}
	char *text2 = print(again, &len2);
	if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
		fprintf(stderr, "printed once:\n%s\nprinted after loading that:\n%s\n", text1, text2);
		abort();
	}
	free(text1);
	free(text2);
	cmb_config_free(again);
	cmb_config_free(cfg);
	return 0;
}
