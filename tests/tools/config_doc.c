/*
 * config_doc.c - prints the option reference generated from the option
 * table; docs/config.md embeds it between its markers (test_config checks).
 * Regenerate with: tests/tools/update-config-doc.sh
 */
#include <stdio.h>
#include "connector/config/config.h"

int main(void)
{
	cmb_config_write_doc(stdout);
	return 0;
}
