/*
 * main.c - cmbridge's entry point; everything else lives in cli.c.
 */
#include "connector/daemon/cli.h"

int main(int argc, char **argv)
{
	return cmb_cli_main(argc, argv);
}
