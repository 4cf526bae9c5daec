/*
 * cli.h - the command line: parses arguments, loads the config, runs one
 * command, and turns its outcome into an exit status (0 ok, 1 failure,
 * 2 usage or configuration error).
 */
#ifndef CMB_CLI_H
#define CMB_CLI_H

int cmb_cli_main(int argc, char **argv);

#endif
