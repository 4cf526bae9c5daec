/*
 * cli_policies.h - the policy relay's commands (docs/operations.md,
 * "Policies"): `cmbridge policies [--json]`, `policies show ID [--json]`,
 * `policies --once`, and `cmbridge diff --policies [--json]`.
 */
#ifndef CMB_CLI_POLICIES_H
#define CMB_CLI_POLICIES_H

struct cmb_config;

/* The policies command with its arguments (argv[0] is "policies"). */
int cmb_cli_policies(const struct cmb_config *cfg, int argc, char **argv);
/* What the next policy poll would write to and remove from the site (writes nothing). */
int cmb_cli_diff_policies(const struct cmb_config *cfg, int json);

#endif
