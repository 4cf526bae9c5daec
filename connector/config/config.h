/*
 * config.h - cmbridge's configuration: one typed option table, parsed from
 * one INI file with libinih.
 *
 * Every error names the file, the line and the key. Secrets are never in
 * the file itself: only paths to secret files, read (and permission-checked)
 * when used. `cmbridge config` prints the effective values from the table.
 */
#ifndef CMB_CONFIG_H
#define CMB_CONFIG_H

#include <stdio.h>

#define CMB_CONFIG_DEFAULT_PATH "/etc/cmbridge/cmbridge.conf"

enum cmb_mode { CMB_MODE_NORMAL = 0, CMB_MODE_STAGING = 1 };

struct cmb_config {
	char *path;                 /* the file this came from */

	/* [connector] */
	char *site_code;            /* required, 3 alphanumerics, e.g. "PS1" */
	char *state_dir;            /* default /var/lib/cmbridge */
	enum cmb_mode mode;         /* normal | staging; default normal */
	long stop_timeout;          /* seconds a batch in flight may finish after SIGTERM; default 20 */

	/* [site] */
	char *site_adapter;         /* default "adminservice" */
	char *site_url;             /* required: https://host/AdminService */
	char *site_auth;            /* none | basic | ntlm | negotiate | bearer; default none */
	char *site_username;        /* basic, ntlm ("DOMAIN\\user") */
	char *site_password_file;   /* secret file; basic, ntlm */
	char *site_scope;           /* bearer: scope of the Entra token, e.g. https://host/.default */
	char *site_ca_file;
	char *site_pinned_public_key; /* "sha256//..." or a path to a PEM/DER public key */
	char *site_client_certificate_file; /* mutual TLS towards the site */
	char *site_client_key_file; /* secret file; default: the certificate file */
	char *site_collection;      /* optional collection id, e.g. "SMS00001" */
	char *site_cloud_sync_collections; /* "ID1,ID2" normalised, or NULL */
	long site_page_size;        /* $top per page request; default 1000, 1..100000 */
	long site_timeout;          /* seconds a stalled transfer may wait; default 60 */
	long site_min_speed;        /* bytes/s below which a transfer counts as stalled; default 1024 */
	long site_page_timeout;     /* seconds one page (one request, its retries included) may take; default 600 */
	long site_rate_limit;       /* requests per second to the site, 0 = no limit; default 100 */
	long site_rate_burst;       /* requests allowed at once above the rate; default 20 */
	long site_connect_timeout;  /* seconds to establish a connection; default 15 */

	/* [tenant] */
	char *tenant_authority;     /* required: https://login.microsoftonline.com/<tenant> */
	char *tenant_token_url;     /* default <authority>/oauth2/v2.0/token */
	char *tenant_gateway_url;   /* required: base of /api/gateway/... */
	char *tenant_graph_url;     /* default https://graph.microsoft.com/beta */
	char *tenant_client_id;     /* required */
	char *tenant_client_secret_file; /* secret file; exactly one of this and client_certificate_file */
	char *tenant_client_certificate_file; /* PEM certificate registered with the app (client assertion) */
	char *tenant_client_key_file;         /* secret file; default: the certificate file */
	char *tenant_client_key_passphrase_file; /* secret file, when the key is encrypted */
	char *tenant_assertion_alg;  /* PS256 | RS256; default PS256 */
	char *tenant_ca_file;
	char *tenant_pinned_public_key; /* as site_pinned_public_key */
	char *tenant_scope;         /* default https://graph.microsoft.com/.default */
	long tenant_batch_size;     /* records per upload request; default 500, 1..1000 */
	long tenant_timeout;        /* seconds; default 60 */
	long tenant_min_speed;      /* bytes/s below which a transfer counts as stalled; default 1024 */
	long tenant_request_timeout;/* seconds one request (its retries included) may take; default 300 */
	long tenant_rate_limit;     /* token + upload requests per second, 0 = no limit; default 5 */
	long tenant_rate_burst;     /* requests allowed at once above the rate; default 5 */
	long tenant_connect_timeout;/* seconds to establish a connection; default 15 */

	/* [network] */
	char *network_proxy;        /* http(s)://host:port, "none", or NULL: HTTPS_PROXY from the environment */
	char *network_proxy_auth;   /* none | basic | ntlm; default none */
	char *network_proxy_username;
	char *network_proxy_password_file; /* secret file */
	char *network_no_proxy;     /* hosts that bypass the proxy; NULL: NO_PROXY from the environment */

	/* [sync] */
	long sync_interval;         /* seconds between delta cycles in `run`; default 900 */
	long sync_full_interval;    /* seconds between full cycles; default 86400 */
	long sync_max_response_mb;  /* largest response accepted; default 256 */
	long sync_details_interval; /* seconds between volatile-detail refreshes; default 3600 */
	long sync_delete_threshold; /* removals per cycle before the guard trips; default 500 */
	long sync_delete_threshold_percent; /* same, as % of attached devices; default 10 */
	long sync_change_threshold; /* rows or records losing site data per cycle before the change guard trips; 500 */
	long sync_change_threshold_percent; /* same, as % of a class's rows or of attached devices; default 10 */
	long sync_retry_budget;     /* retries per cycle per endpoint; default 200 */
	long sync_max_retry_wait;   /* seconds, cap of any single wait (Retry-After included); default 60 */
	long sync_max_attempts;     /* tries per request, the first included; default 6 */
	long sync_max_age;          /* status --check: oldest acceptable last cycle, seconds; 0 = 3 x interval */

	/* [log] */
	char *log_level;            /* error | warn | info | debug; default info */
	char *log_file;             /* default: stderr */
	char *log_format;           /* text | journal | json | cmtrace; default text */
	long log_max_size;          /* bytes before [log] file is renamed to .lo_; 0 = no limit */

	/* [actions] (remote action relay, docs/actions.md) */
	char *actions_allowed;      /* comma-separated action names, normalised; default: every non-destructive one */
	int actions_allow_destructive; /* retire may be relayed; default no */
	long actions_ttl;           /* seconds an action stays deliverable after it was requested; default 86400 */
	long actions_batch_window;  /* seconds same-type actions are gathered into one operation; default 2 */
	long actions_poll_wait;     /* seconds the notification long poll may be held; default 30 */
	long actions_status_poll_interval; /* seconds between SMS_ClientOperationStatus reads; default 10 */
	long actions_status_timeout;/* seconds an operation's outcome is awaited; default 900 */
	char *actions_target_collection; /* TargetCollectionID of the operations; default SMS00001 */

	/* [policies] (docs/policies.md, "The engine") */
	long policies_interval;     /* seconds between policy polls of `run`; default 300 */

	/* [metrics] (docs/operations.md, "Metrics and status page") */
	char *metrics_listen;       /* address:port of /metrics, /healthz and the status page; NULL: off */
	int metrics_allow_remote;   /* listen may be a non-loopback address; default no */

	int *option_lines;          /* the line each option was set on, in table order (cmb_config_line) */
};

/*
 * Parses path into a newly allocated config (caller frees with
 * cmb_config_free). Unknown sections or keys, bad values, missing required
 * keys: CMB_ECONFIG with "FILE:LINE: [section] key: what is wrong" (for a
 * missing key: "FILE: [section] key is required") in cmb_error_last().
 */
int cmb_config_load(struct cmb_config **out, const char *path);
void cmb_config_free(struct cmb_config *cfg);

/*
 * The line of cfg->path where [section] key was set, for messages about
 * its value found after loading; 0 when the option took its default (or
 * is unknown, or cfg was not loaded from a file).
 */
int cmb_config_line(const struct cmb_config *cfg, const char *section, const char *key);

/* How many options the table holds: the length of cfg->option_lines. */
size_t cmb_config_option_count(void);

/* Writes the effective configuration as INI, every option, defaults included. */
void cmb_config_print(const struct cmb_config *cfg, FILE *fp);

/*
 * Writes the option reference (Markdown tables, one per section) generated
 * from the option table; docs/config.md embeds it and test_config checks it.
 */
void cmb_config_write_doc(FILE *fp);

/*
 * Writes the sample configuration: every option commented out with its
 * default, its description and the value it takes, grouped by section.
 * deploy/cmbridge.conf (the packaged /etc/cmbridge/cmbridge.conf) is this
 * text, and it is what `cmbridge config --template` is to print.
 */
void cmb_config_write_template(FILE *fp);

/*
 * Writes the OPTIONS of cmbridge.conf(5) in man(7) roff: one .SS per
 * section, one .TP per option; deploy/man/cmbridge.conf.5 embeds it.
 */
void cmb_config_write_man(FILE *fp);

/*
 * For a reload (SIGHUP): 0 when every option that differs between old and
 * new may change without a restart; otherwise CMB_ECONFIG naming the first
 * option that needs a restart (the caller keeps old).
 */
int cmb_config_check_reload(const struct cmb_config *old, const struct cmb_config *new);

#endif
