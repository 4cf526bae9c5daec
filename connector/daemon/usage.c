/*
 * usage.c - help text, global options after the command, and "did you
 * mean" (see usage.h).
 */
#include "connector/daemon/usage.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <string.h>

#define SYNOPSIS_COLUMN 28       /* where the descriptions start, after two spaces of indent */
#define MAX_OPTIONS 32

/* Prints each line of text, the first after what is already on the line, the rest at indent. */
static void print_lines(FILE *fp, const char *text, int indent)
{
	const char *p = text;
	for (int first = 1; *p; first = 0) {
		size_t len = strcspn(p, "\n");
		fprintf(fp, "%*s%.*s\n", first ? 0 : indent, "", (int)len, p);
		p += len + (p[len] == '\n');
	}
}

void cmb_usage_print(FILE *fp, const struct cmb_cli_command *cmds, size_t n)
{
	fprintf(fp, "usage: cmbridge [-c FILE] [-v] COMMAND [ARGS]     (-c and -v may also follow COMMAND)\n"
		    "       cmbridge COMMAND --help\n"
		    "\n"
		    "Attaches a Configuration Manager site to a cloud tenant.\n"
		    "\n"
		    "commands:\n");
	for (size_t i = 0; i < n; i++) {
		if (strlen(cmds[i].synopsis) < SYNOPSIS_COLUMN)
			fprintf(fp, "  %-*s", SYNOPSIS_COLUMN, cmds[i].synopsis);
		else
			fprintf(fp, "  %s\n%*s", cmds[i].synopsis, SYNOPSIS_COLUMN + 2, "");
		print_lines(fp, cmds[i].help, SYNOPSIS_COLUMN + 2);
	}
	fprintf(fp, "\n"
		    "options:\n"
		    "  -c, --config FILE   configuration file (default /etc/cmbridge/cmbridge.conf)\n"
		    "  -v, --verbose       debug logging\n"
		    "  -h, --help          this help; after a command, that command's usage\n"
		    "  -V, --version       version\n"
		    "\n"
		    "exit status: 0 success, 1 failure (a held cycle included), 2 usage or configuration error;\n"
		    "status --check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (docs/operations.md)\n");
}

void cmb_usage_command(FILE *fp, const struct cmb_cli_command *c)
{
	fprintf(fp, "usage: cmbridge [-c FILE] [-v] %s\n\n", c->synopsis);
	print_lines(fp, c->help, 0);
}

const struct cmb_cli_command *cmb_usage_find(const struct cmb_cli_command *cmds, size_t n, const char *name)
{
	const char *names[64];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
		if (k < sizeof(names) / sizeof(names[0]))
			names[k++] = cmds[i].name;
	}
	const char *sug = cmb_suggest(name, names, k);
	if (sug)
		cmb_error_set(CMB_ECONFIG, "unknown command '%s' (did you mean '%s'? see cmbridge --help)", name, sug);
	else
		cmb_error_set(CMB_ECONFIG, "unknown command '%s' (see cmbridge --help)", name);
	return NULL;
}

/* 1 and *value when arg is the long option name, alone (value: the next word) or as name=value. */
static int long_option(const char *arg, const char *name, const char **value)
{
	size_t len = strlen(name);
	if (strncmp(arg, name, len) != 0)
		return 0;
	if (arg[len] == '=') {
		*value = arg + len + 1;
		return 1;
	}
	if (arg[len] == '\0') {
		*value = NULL;
		return 1;
	}
	return 0;
}

int cmb_usage_take_globals(int *argc, char **argv, struct cmb_cli_globals *g)
{
	int out = 1, i = 1;
	for (; i < *argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "-c") == 0 || long_option(a, "--config", &v)) {
			if (!v && (i + 1 >= *argc || !*(v = argv[++i])))
				return cmb_error_set(CMB_ECONFIG, "%s: %s takes the configuration file's path", argv[0], a);
			g->config_path = v;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			g->verbose = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			g->help = 1;
		} else {
			argv[out++] = argv[i];
		}
	}
	for (; i < *argc; i++)
		argv[out++] = argv[i];
	argv[out] = NULL;
	*argc = out;
	return 0;
}

/* The "--options" of a synopsis, each without its [ ] | . decoration. */
static size_t synopsis_options(const char *synopsis, char names[][40], const char **ptrs)
{
	size_t n = 0;
	for (const char *p = strstr(synopsis, "--"); p && n < MAX_OPTIONS; p = strstr(p, "--")) {
		size_t len = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
		if (len < 40 && (p == synopsis || strchr(" [|", p[-1]))) {
			memcpy(names[n], p, len);
			names[n][len] = '\0';
			ptrs[n] = names[n];
			n++;
		}
		p += len;
	}
	return n;
}

int cmb_usage_check_options(FILE *err, const struct cmb_cli_command *c, int argc, char **argv)
{
	char names[MAX_OPTIONS][40];
	const char *ptrs[MAX_OPTIONS];
	size_t n = synopsis_options(c->synopsis, names, ptrs);
	int wrong = 0;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strncmp(argv[i], "--", 2) != 0)
			continue;
		char opt[64];
		size_t len = strcspn(argv[i], "=");
		snprintf(opt, sizeof(opt), "%.*s", (int)(len < sizeof(opt) ? len : sizeof(opt) - 1), argv[i]);
		size_t k = 0;
		while (k < n && strcmp(ptrs[k], opt) != 0)
			k++;
		if (k < n)
			continue;
		const char *sug = cmb_suggest(opt, ptrs, n);
		fprintf(err, "cmbridge: %s: unknown option '%s'%s%s%s\n", c->name, opt, sug ? " (did you mean " : "",
			sug ? sug : "", sug ? "?)" : "");
		wrong++;
	}
	if (!wrong)
		return 0;
	return cmb_error_set(CMB_ECONFIG, "usage: cmbridge %s", c->synopsis);
}
