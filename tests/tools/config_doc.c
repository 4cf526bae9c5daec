/*
 * config_doc.c - prints what is generated from the option table:
 *   config_doc              the option reference docs/config.md embeds
 *                           between its markers (test_config checks)
 *   config_doc --man        the OPTIONS of deploy/man/cmbridge.conf.5
 *   config_doc --template   deploy/cmbridge.conf, the sample configuration
 * The generated_files test checks the two deploy/ files.
 * Regenerate all three with: tests/tools/update-config-doc.sh
 */
#include <stdio.h>
#include <string.h>
#include "connector/config/config.h"

int main(int argc, char **argv)
{
	if (argc == 1) {
		cmb_config_write_doc(stdout);
	} else if (argc == 2 && strcmp(argv[1], "--man") == 0) {
		cmb_config_write_man(stdout);
	} else if (argc == 2 && strcmp(argv[1], "--template") == 0) {
		cmb_config_write_template(stdout);
	} else {
		fprintf(stderr, "usage: config_doc [--man | --template]\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
