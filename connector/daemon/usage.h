/*
 * usage.h - the command line's table of commands and what it knows of each:
 * the top-level and per-command help, global options given after the
 * command, and "did you mean" for mistyped commands and options. The
 * synopsis is the one source: its "--words" are the options a command takes.
 */
#ifndef CMB_DAEMON_USAGE_H
#define CMB_DAEMON_USAGE_H

#include <stdio.h>

struct cmb_config;

struct cmb_cli_command {
	const char *name;
	const char *synopsis;    /* "sync [--now] [--full] ...": the command and its options */
	const char *help;        /* what it does, lines separated by '\n' */
	/* cfg is NULL when config_free says the command needs none for these arguments. */
	int (*run)(const struct cmb_config *cfg, int argc, char **argv);
	int (*config_free)(int argc, char **argv);
};

/* The global options, as cmb_usage_take_globals finds them anywhere after the command. */
struct cmb_cli_globals {
	const char *config_path; /* -c FILE, --config FILE, --config=FILE */
	int verbose;             /* -v, --verbose */
	int help;                /* -h, --help */
};

void cmb_usage_print(FILE *fp, const struct cmb_cli_command *cmds, size_t n);
void cmb_usage_command(FILE *fp, const struct cmb_cli_command *c);

/* The command named name, or NULL with an error that suggests the nearest one. */
const struct cmb_cli_command *cmb_usage_find(const struct cmb_cli_command *cmds, size_t n, const char *name);

/*
 * Removes the global options from a command's arguments (up to "--") into
 * g; *argc shrinks. CMB_ECONFIG when -c has no file.
 */
int cmb_usage_take_globals(int *argc, char **argv, struct cmb_cli_globals *g);

/*
 * 0, or CMB_ECONFIG (its message: the command's usage) after one line on err
 * for each "--option" the synopsis does not have, with the nearest it has.
 */
int cmb_usage_check_options(FILE *err, const struct cmb_cli_command *c, int argc, char **argv);

#endif
