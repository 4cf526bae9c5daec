/*
 * test_config.c - the option table: exact values, exact error messages,
 * `cmbridge config` output, and docs/config.md kept in step with the table.
 *
 * Each test gets its own temporary directory holding the config file and
 * the secret and CA files it names (created here: git does not keep modes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connector/config/config.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "tests/unit/fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TENANT_SECRET "tenant-s3cr3t-do-not-print"
#define SITE_SECRET "site-pa55word-do-not-print"

struct fx {
	char dir[FX_DIR_SIZE];
	char *conf;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	if (fx_tmpdir(f->dir, "cfg") < 0)
		return -1;
	f->conf = xasprintf("%s/cmbridge.conf", f->dir);
	char *p = xasprintf("%s/tenant.secret", f->dir);
	fx_write_str(p, TENANT_SECRET "\n", 0600);
	free(p);
	p = xasprintf("%s/site.secret", f->dir);
	fx_write_str(p, SITE_SECRET "\n", 0400);
	free(p);
	p = xasprintf("%s/loose.secret", f->dir);
	fx_write_str(p, "x\n", 0644);
	free(p);
	p = xasprintf("%s/ca.pem", f->dir);
	fx_write_str(p, "-----BEGIN CERTIFICATE-----\n", 0644);
	free(p);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	fx_rmtree(f->dir);
	free(f->conf);
	free(f);
	return 0;
}

/* tmpl with {dir} and {conf} replaced; caller frees. */
static char *subst(const struct fx *f, const char *tmpl)
{
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	for (const char *p = tmpl; *p;) {
		if (strncmp(p, "{dir}", 5) == 0) {
			cmb_buf_addstr(&b, f->dir);
			p += 5;
		} else if (strncmp(p, "{conf}", 6) == 0) {
			cmb_buf_addstr(&b, f->conf);
			p += 6;
		} else {
			cmb_buf_add(&b, p++, 1);
		}
	}
	return cmb_buf_detach(&b, NULL);
}

static void write_conf(const struct fx *f, const char *tmpl)
{
	char *text = subst(f, tmpl);
	fx_write_str(f->conf, text, 0644);
	free(text);
}

/* The smallest valid file: required keys only (lines 1-9). */
#define MIN_CONF \
	"[connector]\n" \
	"site_code = PS1\n" \
	"[site]\n" \
	"url = https://cm01.corp.example/AdminService\n" \
	"[tenant]\n" \
	"authority = https://login.microsoftonline.com/contoso\n" \
	"gateway_url = https://gateway.example\n" \
	"client_id = 11111111-2222-3333-4444-555555555555\n" \
	"client_secret_file = {dir}/tenant.secret\n"

static void expect_error(void **state, const char *conf_tmpl, const char *msg_tmpl)
{
	struct fx *f = *state;
	write_conf(f, conf_tmpl);
	struct cmb_config *cfg = (struct cmb_config *)0x1;
	cmb_error_clear();
	assert_int_equal(cmb_config_load(&cfg, f->conf), CMB_ECONFIG);
	assert_ptr_equal(cfg, (struct cmb_config *)0x1); /* *out untouched on failure */
	char *want = subst(f, msg_tmpl);
	assert_string_equal(cmb_error_last(), want);
	free(want);
}

static void test_full(void **state)
{
	struct fx *f = *state;
	write_conf(f, "# cmbridge test configuration\n"
		      "[connector]\n"
		      "site_code = ps1\n"
		      "state_dir = {dir}/state\n"
		      "mode = staging\n"
		      "\n"
		      "[site]\n"
		      "adapter = adminservice\n"
		      "url = https://cm01.corp.example/AdminService/\n"
		      "auth = basic\n"
		      "username = CORP\\svc-cmbridge\n"
		      "password_file = site.secret\n"
		      "ca_file = {dir}/ca.pem ; inline comment\n"
		      "collection = sms00001\n"
		      "  page_size = 250\n"
		      "timeout = 30\n"
		      "\n"
		      "[tenant]\n"
		      "authority = https://login.microsoftonline.com/contoso/\n"
		      "token_url = https://login.example/contoso/token\n"
		      "gateway_url = https://gateway.example/\n"
		      "graph_url = https://graph.example/v1.0\n"
		      "client_id = 11111111-2222-3333-4444-555555555555\n"
		      "client_secret_file = {dir}/tenant.secret\n"
		      "ca_file = ca.pem\n"
		      "scope = api://cmbridge/.default\n"
		      "batch_size = 100\n"
		      "timeout = 45\n"
		      "\n"
		      "[sync]\n"
		      "interval = 600  # ten minutes\n"
		      "full_interval = 43200\n"
		      "max_response_mb = 64\n"
		      "\n"
		      "[log]\n"
		      "level = debug\n"
		      "file = {dir}/cmbridge.log\n");
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	char *s;
#define EXPECT_STR(field, tmpl) \
	s = subst(f, tmpl); \
	assert_string_equal(cfg->field, s); \
	free(s)
	EXPECT_STR(path, "{conf}");
	EXPECT_STR(site_code, "PS1");
	EXPECT_STR(state_dir, "{dir}/state");
	assert_int_equal(cfg->mode, CMB_MODE_STAGING);
	EXPECT_STR(site_adapter, "adminservice");
	EXPECT_STR(site_url, "https://cm01.corp.example/AdminService");
	EXPECT_STR(site_auth, "basic");
	EXPECT_STR(site_username, "CORP\\svc-cmbridge");
	EXPECT_STR(site_password_file, "{dir}/site.secret");
	EXPECT_STR(site_ca_file, "{dir}/ca.pem");
	EXPECT_STR(site_collection, "SMS00001");
	assert_int_equal(cfg->site_page_size, 250);
	assert_int_equal(cfg->site_timeout, 30);
	EXPECT_STR(tenant_authority, "https://login.microsoftonline.com/contoso");
	EXPECT_STR(tenant_token_url, "https://login.example/contoso/token");
	EXPECT_STR(tenant_gateway_url, "https://gateway.example");
	EXPECT_STR(tenant_graph_url, "https://graph.example/v1.0");
	EXPECT_STR(tenant_client_id, "11111111-2222-3333-4444-555555555555");
	EXPECT_STR(tenant_client_secret_file, "{dir}/tenant.secret");
	EXPECT_STR(tenant_ca_file, "{dir}/ca.pem");
	EXPECT_STR(tenant_scope, "api://cmbridge/.default");
	assert_int_equal(cfg->tenant_batch_size, 100);
	assert_int_equal(cfg->tenant_timeout, 45);
	assert_int_equal(cfg->sync_interval, 600);
	assert_int_equal(cfg->sync_full_interval, 43200);
	assert_int_equal(cfg->sync_max_response_mb, 64);
	EXPECT_STR(log_level, "debug");
	EXPECT_STR(log_file, "{dir}/cmbridge.log");

	/* Only paths of secret files are printed, never what they hold. */
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	cmb_config_print(cfg, mem);
	fclose(mem);
	assert_null(strstr(out, TENANT_SECRET));
	assert_null(strstr(out, SITE_SECRET));
	s = subst(f, "password_file = {dir}/site.secret\n");
	assert_non_null(strstr(out, s));
	free(s);
	free(out);
	cmb_config_free(cfg);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	write_conf(f, MIN_CONF);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_string_equal(cfg->site_code, "PS1");
	assert_string_equal(cfg->state_dir, "/var/lib/cmbridge");
	assert_int_equal(cfg->mode, CMB_MODE_NORMAL);
	assert_string_equal(cfg->site_adapter, "adminservice");
	assert_string_equal(cfg->site_auth, "none");
	assert_null(cfg->site_username);
	assert_null(cfg->site_password_file);
	assert_null(cfg->site_ca_file);
	assert_null(cfg->site_collection);
	assert_int_equal(cfg->site_page_size, 1000);
	assert_int_equal(cfg->site_timeout, 60);
	assert_string_equal(cfg->tenant_token_url, "https://login.microsoftonline.com/contoso/oauth2/v2.0/token");
	assert_string_equal(cfg->tenant_graph_url, "https://graph.microsoft.com/beta");
	assert_null(cfg->tenant_ca_file);
	assert_string_equal(cfg->tenant_scope, "https://graph.microsoft.com/.default");
	assert_int_equal(cfg->tenant_batch_size, 500);
	assert_int_equal(cfg->tenant_timeout, 60);
	assert_int_equal(cfg->sync_interval, 900);
	assert_int_equal(cfg->sync_full_interval, 86400);
	assert_int_equal(cfg->sync_max_response_mb, 256);
	assert_string_equal(cfg->log_level, "info");
	assert_null(cfg->log_file);
	cmb_config_free(cfg);
	cmb_config_free(NULL);
}

static void test_print(void **state)
{
	struct fx *f = *state;
	write_conf(f, MIN_CONF);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	cmb_config_print(cfg, mem);
	fclose(mem);
	char *want = subst(f,
			   "# cmbridge configuration from {conf}, defaults included\n"
			   "\n"
			   "[connector]\n"
			   "# ConfigMgr site code: 3 letters or digits, stored upper-case (e.g. PS1)\n"
			   "site_code = PS1\n"
			   "# Directory of the state database and lock file (created 0700)\n"
			   "state_dir = /var/lib/cmbridge\n"
			   "# normal uploads to the tenant; staging reads and maps but never writes to the tenant\n"
			   "mode = normal\n"
			   "# Seconds an upload batch in flight may take to finish after SIGTERM before it is cut off (and "
			   "rolled back)\n"
			   "stop_timeout = 20\n"
			   "\n"
			   "[site]\n"
			   "# How the site is read\n"
			   "adapter = adminservice\n"
			   "# AdminService base URL, e.g. https://cm01.corp.example/AdminService\n"
			   "url = https://cm01.corp.example/AdminService\n"
			   "# none (client certificate or network trust), basic or ntlm (username and password_file), "
			   "negotiate (Kerberos ticket or client keytab) or bearer (tenant token for scope)\n"
			   "auth = none\n"
			   "# Account for auth = basic or ntlm, e.g. CORP\\svc-cmbridge\n"
			   "#username =\n"
			   "# File holding the password for auth = basic or ntlm (mode 600)\n"
			   "#password_file =\n"
			   "# Scope of the tenant token sent to the site with auth = bearer, e.g. "
			   "https://cm.corp.example/.default\n"
			   "#scope =\n"
			   "# PEM CA bundle to verify the site server (instead of the system CAs)\n"
			   "#ca_file =\n"
			   "# Only accept a site server with this public key: sha256//BASE64[;sha256//...] or an absolute "
			   "PEM/DER path\n"
			   "#pinned_public_key =\n"
			   "# PEM client certificate presented to the site (mutual TLS)\n"
			   "#client_certificate_file =\n"
			   "# PEM private key of client_certificate_file (mode 600)\n"
			   "#client_key_file =\n"
			   "# Only devices of this collection id, e.g. SMS00001\n"
			   "#collection =\n"
			   "# Collections uploaded to the tenant for policy targeting, comma-separated ids\n"
			   "#cloud_sync_collections =\n"
			   "# Records per page request ($top)\n"
			   "page_size = 1000\n"
			   "# Seconds a stalled site transfer may wait\n"
			   "timeout = 60\n"
			   "# Bytes per second below which a site transfer counts as stalled (a server dripping bytes)\n"
			   "min_speed = 1024\n"
			   "# Seconds one site request (a page, $metadata, an operation) may take, its retries included\n"
			   "page_timeout = 600\n"
			   "# Requests per second sent to the site at most (0: no limit)\n"
			   "rate_limit = 100\n"
			   "# Requests that may go to the site at once before rate_limit applies\n"
			   "rate_burst = 20\n"
			   "# Seconds to establish a connection (TCP and TLS) to the site\n"
			   "connect_timeout = 15\n"
			   "\n"
			   "[tenant]\n"
			   "# Token authority, e.g. https://login.microsoftonline.com/<tenant-id>\n"
			   "authority = https://login.microsoftonline.com/contoso\n"
			   "# OAuth 2.0 token endpoint\n"
			   "token_url = https://login.microsoftonline.com/contoso/oauth2/v2.0/token\n"
			   "# Base URL of the tenant's /api/gateway endpoints\n"
			   "gateway_url = https://gateway.example\n"
			   "# Microsoft Graph base URL\n"
			   "graph_url = https://graph.microsoft.com/beta\n"
			   "# Application (client) id of the app registration\n"
			   "client_id = 11111111-2222-3333-4444-555555555555\n"
			   "# File holding the client secret (mode 600); set this or client_certificate_file\n"
			   "client_secret_file = {dir}/tenant.secret\n"
			   "# PEM certificate uploaded to the app registration: signs client assertions instead of a "
			   "secret\n"
			   "#client_certificate_file =\n"
			   "# PEM RSA private key of client_certificate_file (mode 600)\n"
			   "#client_key_file =\n"
			   "# File holding the passphrase of an encrypted client_key_file (mode 600)\n"
			   "#client_key_passphrase_file =\n"
			   "# Client assertion signature: PS256 (RSA-PSS, x5t#S256 header) or RS256 (PKCS#1 v1.5, x5t "
			   "header)\n"
			   "assertion_alg = PS256\n"
			   "# PEM CA bundle to verify the tenant endpoints (instead of the system CAs)\n"
			   "#ca_file =\n"
			   "# Only accept tenant endpoints with this public key: sha256//BASE64[;sha256//...] or an "
			   "absolute PEM/DER path\n"
			   "#pinned_public_key =\n"
			   "# Scope requested with the client credentials grant\n"
			   "scope = https://graph.microsoft.com/.default\n"
			   "# Records per upload request\n"
			   "batch_size = 500\n"
			   "# Seconds a stalled tenant transfer may wait\n"
			   "timeout = 60\n"
			   "# Bytes per second below which a tenant transfer counts as stalled (a server dripping bytes)\n"
			   "min_speed = 1024\n"
			   "# Seconds one tenant request (an upload, a token, a result report) may take, its retries "
			   "included; a long poll gets poll_wait more\n"
			   "request_timeout = 300\n"
			   "# Token and upload requests per second sent to the tenant at most (0: no limit)\n"
			   "rate_limit = 5\n"
			   "# Requests that may go to the tenant at once before rate_limit applies\n"
			   "rate_burst = 5\n"
			   "# Seconds to establish a connection (TCP and TLS) to the tenant\n"
			   "connect_timeout = 15\n"
			   "\n"
			   "[network]\n"
			   "# HTTP proxy for the site and the tenant, http://host:port or https://host:port; none: "
			   "connect directly\n"
			   "#proxy =\n"
			   "# none, basic or ntlm (needs proxy_username and proxy_password_file)\n"
			   "proxy_auth = none\n"
			   "# Proxy account, e.g. CORP\\svc-cmbridge\n"
			   "#proxy_username =\n"
			   "# File holding the proxy password (mode 600)\n"
			   "#proxy_password_file =\n"
			   "# Hosts reached without the proxy, comma-separated (e.g. cm01.corp.example,.corp.example); * "
			   "for all\n"
			   "#no_proxy =\n"
			   "\n"
			   "[sync]\n"
			   "# Seconds between delta cycles in `cmbridge run`\n"
			   "interval = 900\n"
			   "# Seconds between full cycles (not less than interval)\n"
			   "full_interval = 86400\n"
			   "# Largest response accepted, in MiB\n"
			   "max_response_mb = 256\n"
			   "# Seconds between refreshes of check-in times (volatile client details)\n"
			   "details_interval = 3600\n"
			   "# More removals than this in one cycle stop the removals until approved\n"
			   "delete_threshold = 500\n"
			   "# More removals than this percentage of attached devices stop the removals until approved\n"
			   "delete_threshold_percent = 10\n"
			   "# More rows lost by one site class, or records losing fields, than this in one cycle hold its "
			   "changes until approved\n"
			   "change_threshold = 500\n"
			   "# The same as a percentage: of the class's rows at the last good cycle, of attached devices\n"
			   "change_threshold_percent = 10\n"
			   "# Retries one cycle may spend per endpoint (site, tenant) before it gives up\n"
			   "retry_budget = 200\n"
			   "# Longest single wait before a retry, in seconds, a server's Retry-After included\n"
			   "max_retry_wait = 60\n"
			   "# Tries per request, the first included\n"
			   "max_attempts = 6\n"
			   "# `cmbridge status --check` fails when the last cycle ended longer ago than this many seconds "
			   "(0: 3 × interval)\n"
			   "max_age = 0\n"
			   "\n"
			   "[log]\n"
			   "# Messages at this level and above are written\n"
			   "level = info\n"
			   "# Append log lines to this file instead of stderr\n"
			   "#file =\n"
			   "# text (time, level, id, message; on stderr under systemd as journal), journal (<N> priority "
			   "prefix, no time), json (one object a line) or cmtrace (the CMTrace/OneTrace format)\n"
			   "format = text\n"
			   "# Bytes [log] file may grow to (0: no limit); then it is renamed to .lo_ (replacing the last one) "
			   "and started afresh, as ConfigMgr's logs are\n"
			   "max_size = 0\n"
			   "\n"
			   "[actions]\n"
			   "# Remote actions the connector relays to the site, comma-separated (retire also needs "
			   "allow_destructive)\n"
			   "allowed = refreshMachinePolicy,refreshUserPolicy,appEvaluation,wakeUpClient,fullScan,quickScan,"
			   "windowsDefenderUpdateSignatures,syncDevice\n"
			   "# Relay retire (blocks the ConfigMgr client) when it is also in allowed\n"
			   "allow_destructive = no\n"
			   "# Seconds after its request an action may still be delivered; older ones fail, never late\n"
			   "ttl = 86400\n"
			   "# Seconds same-type actions are gathered into one site operation\n"
			   "batch_window = 2\n"
			   "# Seconds the tenant may hold the notification long poll when nothing is pending\n"
			   "poll_wait = 30\n"
			   "# Seconds between reads of a site operation's status\n"
			   "status_poll_interval = 10\n"
			   "# TargetCollectionID of the client operations the relay creates (the devices are named by "
			   "TargetResourceIDs; the collection must contain them)\n"
			   "target_collection = SMS00001\n"
			   "# Seconds a site operation's outcome is awaited before its actions are reported failed\n"
			   "status_timeout = 900\n"
			   "\n"
			   "[policies]\n"
			   "# Seconds between two policy polls of `cmbridge run` (tenant policies to site documents, "
			   "compliance back)\n"
			   "interval = 300\n"
			   "\n"
			   "[metrics]\n"
			   "# address:port where `cmbridge run` serves /metrics (Prometheus), /healthz and a status page, "
			   "e.g. 127.0.0.1:9478 or [::1]:9478; loopback only unless allow_remote\n"
			   "#listen =\n"
			   "# Let listen be an address other hosts reach: the page and the metrics show device keys, "
			   "counts, errors and who asked for which action to anyone who can connect\n"
			   "allow_remote = no\n");
	assert_string_equal(out, want);
	assert_null(strstr(out, TENANT_SECRET));

	/* What `cmbridge config` prints loads back to the same configuration. */
	fx_write_str(f->conf, out, 0644);
	struct cmb_config *again = NULL;
	assert_int_equal(cmb_config_load(&again, f->conf), 0);
	char *out2 = NULL;
	mem = open_memstream(&out2, &len);
	cmb_config_print(again, mem);
	fclose(mem);
	assert_string_equal(out2, want);
	free(out2);
	cmb_config_free(again);

	free(want);
	free(out);
	cmb_config_free(cfg);
}

static void test_err_unknown_key(void **state)
{
	expect_error(state, "[site]\npage_sise = 5\n" MIN_CONF,
		     "{conf}:2: [site] page_sise: unknown key (did you mean page_size?)");
	expect_error(state, MIN_CONF "frobnicate = 1\n", "{conf}:10: [tenant] frobnicate: unknown key");
	expect_error(state, "site_code = PS1\n" MIN_CONF,
		     "{conf}:1: site_code: key outside any section (expected a [section] line before it)");
}

static void test_err_unknown_section(void **state)
{
	expect_error(state, MIN_CONF "\n[sites] ; typo\nurl = https://x\n",
		     "{conf}:11: [sites]: unknown section (did you mean [site]?)");
	/* Caught even when the section is empty. */
	expect_error(state, MIN_CONF "[database]\n",
		     "{conf}:10: [database]: unknown section (expected [connector], [site], [tenant], [network], [sync], "
		     "[log] or [actions])");
}

static void test_err_numbers(void **state)
{
	/* Found by fuzz_config: "=;x" loaded as ";x", and `config` printed "= ;x", which reads as empty. */
	expect_error(state, "[tenant]\nclient_id =;7089\n" MIN_CONF,
		     "{conf}:2: [tenant] client_id: the value begins with ';', which after a blank starts a comment "
		     "(expected text)");
	expect_error(state, "[site]\npage_size =#5\n" MIN_CONF,
		     "{conf}:2: [site] page_size: the value begins with '#', which after a blank starts a comment "
		     "(expected an integer from 1 to 100000)");
	expect_error(state, "[site]\npage_size = 12x\n" MIN_CONF,
		     "{conf}:2: [site] page_size: \"12x\" is not a number (expected an integer from 1 to 100000)");
	expect_error(state, "[site]\npage_size =\n" MIN_CONF,
		     "{conf}:2: [site] page_size: empty value (expected an integer from 1 to 100000; remove the "
		     "line to use the default)");
	expect_error(state, "[tenant]\nbatch_size = 1001\n" MIN_CONF,
		     "{conf}:2: [tenant] batch_size: 1001 is out of range (expected an integer from 1 to 1000)");
	expect_error(state, "[tenant]\nbatch_size = 0\n" MIN_CONF,
		     "{conf}:2: [tenant] batch_size: 0 is out of range (expected an integer from 1 to 1000)");
	expect_error(state, "[site]\npage_size = 99999999999999999999999\n" MIN_CONF,
		     "{conf}:2: [site] page_size: 99999999999999999999999 is out of range (expected an integer "
		     "from 1 to 100000)");
	expect_error(state, MIN_CONF "[sync]\ninterval = 7200\nfull_interval = 3600\n",
		     "{conf}:12: [sync] full_interval: 3600 is less than interval 7200 (expected at least 7200)");
}

static void test_err_enum(void **state)
{
	expect_error(state, "[connector]\nmode = fast\n" MIN_CONF,
		     "{conf}:2: [connector] mode: \"fast\" is not a valid value (expected normal or staging)");
	expect_error(state, "[log]\nlevel = verbose\n" MIN_CONF,
		     "{conf}:2: [log] level: \"verbose\" is not a valid value (expected one of error, warn, info, "
		     "debug)");
}

/* [metrics] listen: an address and a port, loopback unless allow_remote; off by default. */
static void test_metrics_listen(void **state)
{
	struct fx *f = *state;
	static const char *const good[][2] = {
		{ "127.0.0.1:9478", "127.0.0.1:9478" }, { "[::1]:0", "[::1]:0" }, { "localhost:9478", "localhost:9478" },
		{ "127.8.9.10:65535", "127.8.9.10:65535" },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *text = xasprintf(MIN_CONF "[metrics]\nlisten = %s\n", good[i][0]);
		write_conf(f, text);
		free(text);
		struct cmb_config *cfg = NULL;
		assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
		assert_string_equal(cfg->metrics_listen, good[i][1]);
		assert_int_equal(cfg->metrics_allow_remote, 0);
		cmb_config_free(cfg);
	}
	write_conf(f, MIN_CONF);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_null(cfg->metrics_listen);
	cmb_config_free(cfg);
	write_conf(f, MIN_CONF "[metrics]\nlisten = 0.0.0.0:9478\nallow_remote = yes\n");
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_int_equal(cfg->metrics_allow_remote, 1);
	cmb_config_free(cfg);

	expect_error(state, MIN_CONF "[metrics]\nlisten = 0.0.0.0:9478\n",
		     "{conf}:11: [metrics] listen: 0.0.0.0:9478 is not a loopback address, and the status page and the "
		     "metrics show device keys, counts, errors and action history (expected 127.0.0.1:PORT or [::1]:PORT, or "
		     "set [metrics] allow_remote = yes to serve them to other hosts)");
	expect_error(state, MIN_CONF "[metrics]\nlisten = [::]:9478\n",
		     "{conf}:11: [metrics] listen: [::]:9478 is not a loopback address, and the status page and the "
		     "metrics show device keys, counts, errors and action history (expected 127.0.0.1:PORT or [::1]:PORT, or "
		     "set [metrics] allow_remote = yes to serve them to other hosts)");
	static const char *const bad[] = { "9478", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:9478",
					   "[::1]9478", "metrics.example:9478", "127.0.0.1:94x", "[127.0.0.1]:9478" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = xasprintf(MIN_CONF "[metrics]\nlisten = %s\n", bad[i]);
		char *msg = xasprintf("{conf}:11: [metrics] listen: \"%s\" is not valid (expected an address and a port, "
				      "e.g. 127.0.0.1:9478 or [::1]:9478)", bad[i]);
		expect_error(state, text, msg);
		free(text);
		free(msg);
	}
}

static void test_err_url(void **state)
{
	expect_error(state, "[site]\nurl = http://cm01.corp.example/AdminService\n" MIN_CONF,
		     "{conf}:2: [site] url: \"http://cm01.corp.example/AdminService\": plain http is refused, TLS "
		     "is never optional: credentials and device data must not travel unencrypted (expected an "
		     "https:// URL)");
	expect_error(state, "[tenant]\ngateway_url = gateway.example\n" MIN_CONF,
		     "{conf}:2: [tenant] gateway_url: \"gateway.example\" is not a valid URL (expected an https:// "
		     "URL)");
}

/* Bases the connector appends its own paths to: a URL that already has one would be requested doubled. */
#define REQ_SITE "[connector]\nsite_code = PS1\n[site]\nurl = %s\n"
#define REQ_TENANT \
	"[tenant]\nauthority = %s\ngateway_url = %s\nclient_id = c\nclient_secret_file = {dir}/tenant.secret\n"
static void expect_url_error(void **state, const char *site, const char *authority, const char *gateway,
			     const char *extra, const char *msg)
{
	char *conf = xasprintf(REQ_SITE REQ_TENANT "%s", site, authority, gateway, extra);
	expect_error(state, conf, msg);
	free(conf);
}

static void test_err_url_appended(void **state)
{
	const char *site = "https://cm01/AdminService", *auth = "https://login.microsoftonline.com/contoso";
	expect_url_error(state, site, auth, "https://gw.example/api/gateway/", "",
			 "{conf}:7: [tenant] gateway_url: \"https://gw.example/api/gateway\" ends with a path the "
			 "connector appends itself (/api/gateway/DevicePost and the other /api/gateway routes), so it "
			 "would be requested twice (expected the base URL: write https://gw.example)");
	expect_url_error(state, site, auth, "https://gw.example/tenant1/API/gateway/DevicePost", "",
			 "{conf}:7: [tenant] gateway_url: \"https://gw.example/tenant1/API/gateway/DevicePost\" ends "
			 "with a path the connector appends itself (/api/gateway/DevicePost and the other /api/gateway "
			 "routes), so it would be requested twice (expected the base URL: write https://gw.example/tenant1)");
	expect_url_error(state, site, auth, "https://gw.example/?x=1", "",
			 "{conf}:7: [tenant] gateway_url: \"https://gw.example/?x=1\" has a query or fragment, and the "
			 "connector appends /api/gateway/DevicePost and the other /api/gateway routes to it (expected a "
			 "base URL: write https://gw.example/)");
	expect_url_error(state, site, auth, "https://gw.example",
			 "graph_url = https://graph.microsoft.com/beta/deviceManagement/managedDevices\n",
			 "{conf}:10: [tenant] graph_url: \"https://graph.microsoft.com/beta/deviceManagement/managedDevices\" "
			 "ends with a path the connector appends itself (/deviceManagement/managedDevices), so it would be "
			 "requested twice (expected the base URL: write https://graph.microsoft.com/beta)");
	expect_url_error(state, site, auth, "https://gw.example", "graph_url = https://graph.microsoft.com/\n",
			 "{conf}:10: [tenant] graph_url: \"https://graph.microsoft.com\" has no API version, and Graph "
			 "paths start with one (expected the Graph beta endpoint the connector's shapes are from: write "
			 "https://graph.microsoft.com/beta)");
	expect_url_error(state, site, "https://login.microsoftonline.com/contoso/oauth2/v2.0/token", "https://gw", "",
			 "{conf}:6: [tenant] authority: \"https://login.microsoftonline.com/contoso/oauth2/v2.0/token\" "
			 "ends with a path the connector appends itself (/oauth2/v2.0/token), so it would be requested "
			 "twice (expected the base URL: write https://login.microsoftonline.com/contoso)");
	expect_url_error(state, "https://cm01/AdminService/wmi/", auth, "https://gw", "",
			 "{conf}:4: [site] url: \"https://cm01/AdminService/wmi\" ends with a path the connector "
			 "appends itself (/wmi/SMS_R_System and the other /wmi classes), so it would be requested twice "
			 "(expected the base URL: write https://cm01/AdminService)");

	/* Not a segment of its own, or token_url set (used as written): accepted. */
	struct fx *f = *state;
	char *conf = xasprintf(REQ_SITE REQ_TENANT "token_url = https://login.example/t/oauth2/v2.0/token\n",
			       "https://cm01/AdminServiceWmi", "https://login.example/t/oauth2", "https://gw.example/apis");
	write_conf(f, conf);
	free(conf);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_string_equal(cfg->tenant_gateway_url, "https://gw.example/apis");
	cmb_config_free(cfg);
}

static void test_err_required(void **state)
{
	expect_error(state,
		     "[connector]\nsite_code = PS1\n[site]\nurl = https://cm01/AdminService\n[tenant]\n"
		     "authority = https://login.microsoftonline.com/contoso\ngateway_url = https://gw\n"
		     "client_secret_file = {dir}/tenant.secret\n",
		     "{conf}: [tenant] client_id is required");
	expect_error(state, "", "{conf}: [connector] site_code is required");
	expect_error(state, MIN_CONF "[site]\nauth = basic\nusername = u\n",
		     "{conf}: [site] password_file is required when auth = basic");
	expect_error(state, MIN_CONF "[site]\nauth = basic\npassword_file = {dir}/site.secret\n",
		     "{conf}: [site] username is required when auth = basic");
	expect_error(state, MIN_CONF "[site]\nusername = u\n",
		     "{conf}:11: [site] username: set but auth = none (expected auth = basic or ntlm, or remove the line)");
}

static void test_err_site_code(void **state)
{
	expect_error(state, "[connector]\nsite_code = PS12\n",
		     "{conf}:2: [connector] site_code: \"PS12\" is not valid (expected 3 letters or digits, e.g. PS1)");
	expect_error(state, "[connector]\nsite_code = P-1\n",
		     "{conf}:2: [connector] site_code: \"P-1\" is not valid (expected 3 letters or digits, e.g. PS1)");
	expect_error(state, "[site]\ncollection =\n",
		     "{conf}:2: [site] collection: empty value (expected a collection id of 8 letters or digits, "
		     "e.g. SMS00001; remove the line to use the default)");
}

static void test_err_secret_value(void **state)
{
	expect_error(state, MIN_CONF "client_secret = hunter2-secret\n",
		     "{conf}:10: [tenant] client_secret: secrets are read from files: use client_secret_file");
	assert_null(strstr(cmb_error_last(), "hunter2"));
	expect_error(state, "[site]\nPassword = hunter2\n",
		     "{conf}:2: [site] Password: secrets are read from files: use password_file");
	expect_error(state, "[sync]\napi_secret = hunter2\n",
		     "{conf}:2: [sync] api_secret: secrets are read from files, never written in the "
		     "configuration (and [sync] takes none)");
}

static void test_err_secret_file(void **state)
{
	expect_error(state, "[tenant]\nclient_secret_file = {dir}/nope.secret\n",
		     "{conf}:2: [tenant] client_secret_file: {dir}/nope.secret: No such file or directory");
	/* Not a path but maybe the secret itself: not repeated in the message. */
	expect_error(state, "[tenant]\nclient_secret_file = hunter2\n",
		     "{conf}:2: [tenant] client_secret_file: the file named here: No such file or directory");
	expect_error(state, "[tenant]\nclient_secret_file = {dir}/loose.secret\n",
		     "{conf}:2: [tenant] client_secret_file: {dir}/loose.secret is accessible by group or others "
		     "(mode 644; expected 600 or stricter): run chmod 600 {dir}/loose.secret");
	expect_error(state, "[tenant]\nclient_secret_file = {dir}\n",
		     "{conf}:2: [tenant] client_secret_file: {dir} is not a regular file");
	expect_error(state, "[site]\nca_file = missing.pem\n",
		     "{conf}:2: [site] ca_file: {dir}/missing.pem: No such file or directory");
}

static void test_err_duplicate(void **state)
{
	expect_error(state, "[connector]\nsite_code = PS2\n" MIN_CONF,
		     "{conf}:4: [connector] site_code: duplicate key (first set on line 2)");
}

static void test_err_syntax(void **state)
{
	expect_error(state, "[site]\njust some words\n", "{conf}:2: syntax error (expected [section], key = value or a comment)");
	char *conf = xasprintf("[site]\ncollection = %0250d\n", 0);
	expect_error(state, conf, "{conf}:2: the line is longer than 197 characters");
	free(conf);
	struct fx *f = *state;
	struct cmb_config *cfg = NULL;
	char *absent = xasprintf("%s/absent.conf", f->dir);
	assert_int_equal(cmb_config_load(&cfg, absent), CMB_ECONFIG);
	char *want = xasprintf("%s: cannot open: No such file or directory", absent);
	assert_string_equal(cmb_error_last(), want);
	free(want);
	free(absent);
}

/*
 * A last line of blanks with no newline after it (found by fuzz_config:
 * the inline-comment scan read past its end; the ASan build of this test
 * saw it) is an empty line like any other.
 */
static void test_blank_last_line(void **state)
{
	struct fx *f = *state;
	static const char *const tails[] = { "  ", "\t", " \t ", "\n  " };
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char *tmpl = xasprintf("%s%s", MIN_CONF, tails[i]);
		write_conf(f, tmpl);
		struct cmb_config *cfg = NULL;
		assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
		assert_string_equal(cfg->site_code, "PS1");
		cmb_config_free(cfg);
		free(tmpl);
	}
}

/*
 * A value whose effective form is longer than a line (found by fuzz_config:
 * `config` printed a derived token_url no file may hold) is refused, and
 * what `config` prints loads again and prints the same.
 */
static void test_effective_line_length(void **state)
{
	struct fx *f = *state;
	char *authority = xasprintf("https://login.microsoftonline.com/%0146d", 0);
	char *conf = xasprintf("[connector]\nsite_code = PS1\n[site]\nurl = https://cm01.corp.example/AdminService\n"
			       "[tenant]\nauthority = %s\ngateway_url = https://gateway.example\n"
			       "client_id = 11111111-2222-3333-4444-555555555555\nclient_secret_file = {dir}/tenant.secret\n",
			       authority);
	expect_error(state, conf, "{conf}:6: [tenant] authority: the token URL derived from it is 198 characters, "
				  "more than a line holds (197): set [tenant] token_url");
	free(conf);
	free(authority);

	char *rel = xasprintf(MIN_CONF "[log]\nfile = %0180d\n", 0);
	write_conf(f, rel);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), CMB_ECONFIG);
	assert_non_null(strstr(cmb_error_last(), ":11: [log] file: the path resolves to "));
	free(rel);

	write_conf(f, MIN_CONF);
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	char *out1 = NULL, *out2 = NULL;
	size_t len1 = 0, len2 = 0;
	FILE *mem = open_memstream(&out1, &len1);
	cmb_config_print(cfg, mem);
	fclose(mem);
	cmb_config_free(cfg);
	fx_write_str(f->conf, out1, 0644);
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	mem = open_memstream(&out2, &len2);
	cmb_config_print(cfg, mem);
	fclose(mem);
	assert_string_equal(out2, out1);
	cmb_config_free(cfg);
	free(out1);
	free(out2);
}

static void test_reload(void **state)
{
	struct fx *f = *state;
	struct cmb_config *a = NULL, *b = NULL, *c = NULL;
	write_conf(f, MIN_CONF);
	assert_int_equal(cmb_config_load(&a, f->conf), 0);
	write_conf(f, MIN_CONF "[site]\npage_size = 10\n[log]\nlevel = debug\n");
	assert_int_equal(cmb_config_load(&b, f->conf), 0);
	assert_int_equal(cmb_config_check_reload(a, b), 0);
	write_conf(f, MIN_CONF "[connector]\nmode = staging\n");
	assert_int_equal(cmb_config_load(&c, f->conf), 0);
	assert_int_equal(cmb_config_check_reload(a, c), CMB_ECONFIG);
	char *want = subst(f, "{conf}: [connector] mode changed: it takes effect only when cmbridge is restarted");
	assert_string_equal(cmb_error_last(), want);
	free(want);
	cmb_config_free(a);
	cmb_config_free(b);
	cmb_config_free(c);
}

/* docs/config.md must embed the reference generated from the table, verbatim. */
static void test_docs(void **state)
{
	char *path = xasprintf("%s/docs/config.md", CMB_SOURCE_DIR);
	char *doc = NULL;
	size_t doc_len = 0;
	assert_int_equal(cmb_file_read(path, 1 << 20, &doc, &doc_len), 0);
	char *gen = NULL;
	size_t gen_len = 0;
	FILE *mem = open_memstream(&gen, &gen_len);
	cmb_config_write_doc(mem);
	fclose(mem);
	if (!strstr(doc, gen)) {
		print_error("docs/config.md is out of date; the option tables must read:\n%s\n", gen);
		fail();
	}
	free(gen);
	free(doc);
	free(path);
}

/* Rate limits, connection timeouts and the retry policy: defaults, values, ranges. */
static void test_retry_rate_options(void **state)
{
	struct fx *f = *state;
	write_conf(f, MIN_CONF);
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_int_equal(cfg->site_rate_limit, 100);
	assert_int_equal(cfg->site_rate_burst, 20);
	assert_int_equal(cfg->site_connect_timeout, 15);
	assert_int_equal(cfg->tenant_rate_limit, 5);
	assert_int_equal(cfg->tenant_rate_burst, 5);
	assert_int_equal(cfg->tenant_connect_timeout, 15);
	assert_int_equal(cfg->sync_retry_budget, 200);
	assert_int_equal(cfg->sync_max_retry_wait, 60);
	assert_int_equal(cfg->sync_max_attempts, 6);
	cmb_config_free(cfg);

	write_conf(f, MIN_CONF "rate_limit = 0\nrate_burst = 1\nconnect_timeout = 5\n"
			       "[site]\nrate_limit = 250\nrate_burst = 40\nconnect_timeout = 30\n"
			       "[sync]\nretry_budget = 0\nmax_retry_wait = 120\nmax_attempts = 1\n");
	cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_int_equal(cfg->tenant_rate_limit, 0);
	assert_int_equal(cfg->tenant_rate_burst, 1);
	assert_int_equal(cfg->tenant_connect_timeout, 5);
	assert_int_equal(cfg->site_rate_limit, 250);
	assert_int_equal(cfg->site_rate_burst, 40);
	assert_int_equal(cfg->site_connect_timeout, 30);
	assert_int_equal(cfg->sync_retry_budget, 0);
	assert_int_equal(cfg->sync_max_retry_wait, 120);
	assert_int_equal(cfg->sync_max_attempts, 1);
	cmb_config_free(cfg);

	expect_error(state, MIN_CONF "rate_limit = -1\n",
		     "{conf}:10: [tenant] rate_limit: -1 is out of range (expected an integer from 0 to 1000)");
	expect_error(state, MIN_CONF "rate_burst = 0\n",
		     "{conf}:10: [tenant] rate_burst: 0 is out of range (expected an integer from 1 to 1000)");
	expect_error(state, "[site]\nconnect_timeout = 0\n" MIN_CONF,
		     "{conf}:2: [site] connect_timeout: 0 is out of range (expected an integer from 1 to 300)");
	expect_error(state, "[sync]\nmax_attempts = 0\n" MIN_CONF,
		     "{conf}:2: [sync] max_attempts: 0 is out of range (expected an integer from 1 to 100)");
	expect_error(state, "[sync]\nmax_retry_wait = 1.5\n" MIN_CONF,
		     "{conf}:2: [sync] max_retry_wait: \"1.5\" is not a number (expected an integer from 1 to 3600)");
}

/* MIN_CONF without its credential (lines 1-8), for the certificate options. */
#define MIN_CONF_NO_CRED \
	"[connector]\n" \
	"site_code = PS1\n" \
	"[site]\n" \
	"url = https://cm01.corp.example/AdminService\n" \
	"[tenant]\n" \
	"authority = https://login.microsoftonline.com/contoso\n" \
	"gateway_url = https://gateway.example\n" \
	"client_id = 11111111-2222-3333-4444-555555555555\n"

#define PIN "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE="

static void test_credential_options(void **state)
{
	struct fx *f = *state;
	/* A certificate instead of a secret; the files only need to exist here (auth.c reads them). */
	write_conf(f, MIN_CONF_NO_CRED "client_certificate_file = ca.pem\n"
				       "client_key_file = {dir}/tenant.secret\n"
				       "client_key_passphrase_file = {dir}/site.secret\n"
				       "assertion_alg = RS256\n"
				       "pinned_public_key = " PIN "\n"
				       "[site]\nauth = ntlm\nusername = CORP\\svc\npassword_file = {dir}/site.secret\n"
				       "pinned_public_key = /etc/ssl/site-key.pem\n"
				       "client_certificate_file = {dir}/ca.pem\n"
				       "[network]\nproxy = http://proxy.corp.example:3128\nproxy_auth = basic\n"
				       "proxy_username = svc-proxy\nproxy_password_file = {dir}/site.secret\n"
				       "no_proxy = cm01.corp.example,.corp.example\n");
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	char *s1;
#undef EXPECT_STR
#define EXPECT_STR(field, tmpl) \
	s1 = subst(f, tmpl); \
	assert_string_equal(cfg->field, s1); \
	free(s1)
	assert_null(cfg->tenant_client_secret_file);
	EXPECT_STR(tenant_client_certificate_file, "{dir}/ca.pem");
	EXPECT_STR(tenant_client_key_file, "{dir}/tenant.secret");
	EXPECT_STR(tenant_client_key_passphrase_file, "{dir}/site.secret");
	EXPECT_STR(tenant_assertion_alg, "RS256");
	EXPECT_STR(tenant_pinned_public_key, PIN);
	EXPECT_STR(site_auth, "ntlm");
	EXPECT_STR(site_username, "CORP\\svc");
	EXPECT_STR(site_pinned_public_key, "/etc/ssl/site-key.pem");
	EXPECT_STR(site_client_certificate_file, "{dir}/ca.pem");
	assert_null(cfg->site_client_key_file);
	EXPECT_STR(network_proxy, "http://proxy.corp.example:3128");
	EXPECT_STR(network_proxy_auth, "basic");
	EXPECT_STR(network_proxy_username, "svc-proxy");
	EXPECT_STR(network_proxy_password_file, "{dir}/site.secret");
	EXPECT_STR(network_no_proxy, "cm01.corp.example,.corp.example");
	cmb_config_free(cfg);

	/* Defaults: PS256, no proxy of our own (libcurl's environment), bearer with its scope. */
	write_conf(f, MIN_CONF "[site]\nauth = bearer\nscope = https://cmbridge-lab-site/.default\n");
	cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	EXPECT_STR(tenant_assertion_alg, "PS256");
	EXPECT_STR(site_scope, "https://cmbridge-lab-site/.default");
	assert_null(cfg->network_proxy);
	assert_null(cfg->network_no_proxy);
	EXPECT_STR(network_proxy_auth, "none");
	cmb_config_free(cfg);
#undef EXPECT_STR

	expect_error(state, MIN_CONF_NO_CRED, "{conf}: [tenant] client_secret_file or client_certificate_file is required");
	expect_error(state, MIN_CONF "client_certificate_file = ca.pem\n",
		     "{conf}:10: [tenant] client_certificate_file: set together with client_secret_file (expected "
		     "exactly one credential: remove one of the two lines)");
	expect_error(state, MIN_CONF "client_key_file = {dir}/tenant.secret\n",
		     "{conf}:10: [tenant] client_key_file: set but client_certificate_file is not (expected "
		     "client_certificate_file, or remove the line)");
	expect_error(state, MIN_CONF "assertion_alg = ES256\n",
		     "{conf}:10: [tenant] assertion_alg: \"ES256\" is not a valid value (expected PS256 or RS256)");
	expect_error(state, MIN_CONF "client_key_file = {dir}/loose.secret\n",
		     "{conf}:10: [tenant] client_key_file: {dir}/loose.secret is accessible by group or others "
		     "(mode 644; expected 600 or stricter): run chmod 600 {dir}/loose.secret");
	expect_error(state, MIN_CONF "pinned_public_key = sha256//short\n",
		     "{conf}:10: [tenant] pinned_public_key: \"sha256//short\" is not valid (expected sha256//BASE64 "
		     "hashes separated by ';', or the absolute path of a PEM or DER public key)");
	expect_error(state, MIN_CONF "[site]\nauth = ntlm\nusername = CORP\\svc\n",
		     "{conf}: [site] password_file is required when auth = ntlm");
	expect_error(state, MIN_CONF "[site]\nauth = bearer\n", "{conf}: [site] scope is required when auth = bearer");
	expect_error(state, MIN_CONF "[site]\nauth = bearer\nscope = https://cm01.corp.example\n",
		     "{conf}:12: [site] scope: \"https://cm01.corp.example\" is not valid (expected a scope ending in "
		     "/.default, e.g. https://cm.corp.example/.default)");
	expect_error(state, MIN_CONF "[site]\nscope = https://cm01.corp.example/.default\n",
		     "{conf}:11: [site] scope: set but auth = none (expected auth = bearer, or remove the line)");
	expect_error(state, MIN_CONF "[site]\nauth = negotiate\nusername = CORP\\svc\n",
		     "{conf}:12: [site] username: set but auth = negotiate (expected auth = basic or ntlm, or remove "
		     "the line)");
	expect_error(state, MIN_CONF "[site]\nauth = kerberos\n",
		     "{conf}:11: [site] auth: \"kerberos\" is not a valid value (expected one of none, basic, ntlm, "
		     "negotiate, bearer)");
	expect_error(state, MIN_CONF "[network]\nproxy = http://user:pw@proxy:3128\n",
		     "{conf}:11: [network] proxy: \"http://(credentials removed)@proxy:3128\" is not valid (expected "
		     "http://host:port or https://host:port without credentials: set proxy_auth, proxy_username and "
		     "proxy_password_file)");
	expect_error(state, MIN_CONF "[network]\nproxy = http://proxy:3128\nproxy_auth = ntlm\n",
		     "{conf}: [network] proxy_username is required when proxy_auth = ntlm");
	expect_error(state, MIN_CONF "[network]\nproxy_auth = basic\nproxy_username = u\n",
		     "{conf}: [network] proxy is required when proxy_auth = basic");
	expect_error(state, MIN_CONF "[network]\nproxy = none\nproxy_username = u\n",
		     "{conf}:12: [network] proxy_username: set but proxy_auth = none (expected proxy_auth = basic or "
		     "ntlm, or remove the line)");
	expect_error(state, MIN_CONF "[network]\nproxy_password = x\n",
		     "{conf}:11: [network] proxy_password: secrets are read from files: use proxy_password_file");
}

/* Credentials pasted into a URL are refused and never echoed; nor is a proxy password. */
static void test_err_url_credentials(void **state)
{
	expect_error(state, "[site]\nurl = https://svc:Pa55-URL-secret@cm01.corp.example/AdminService\n" MIN_CONF,
		     "{conf}:2: [site] url: \"https://(credentials removed)@cm01.corp.example/AdminService\": "
		     "credentials are never written in a URL of the configuration (expected an https:// URL without "
		     "user:password@; credentials are read from the *_file options)");
	assert_null(strstr(cmb_error_last(), "Pa55-URL-secret"));
	expect_error(state, "[tenant]\ngateway_url = http://u:Pa55-URL-secret@gw.example/x?a=b@c\n" MIN_CONF,
		     "{conf}:2: [tenant] gateway_url: \"http://(credentials removed)@gw.example/x?a=b@c\": plain http "
		     "is refused, TLS is never optional: credentials and device data must not travel unencrypted "
		     "(expected an https:// URL)");
	expect_error(state, MIN_CONF "[network]\nproxy = https://Pa55-URL-secret@proxy:3128\n",
		     "{conf}:11: [network] proxy: \"https://(credentials removed)@proxy:3128\" is not valid (expected "
		     "http://host:port or https://host:port without credentials: set proxy_auth, proxy_username and "
		     "proxy_password_file)");
	/* An '@' after the host (a query) is not user information: nothing to remove, nothing refused. */
	struct fx *f = *state;
	write_conf(f, MIN_CONF "[tenant]\ntoken_url = https://login.example/t/token?who=a@b\n");
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	assert_string_equal(cfg->tenant_token_url, "https://login.example/t/token?who=a@b");
	cmb_config_free(cfg);
}

/* The documented 197 characters are of the line as written, an inline comment included. */
static void test_err_long_line_comment(void **state)
{
	struct fx *f = *state;
	const char *head = "[connector]\nsite_code = PS1 ; ";
	for (int len = 196; len <= 198; len++) {
		/* line 2 is "site_code = PS1 ; " and a comment, len characters in all */
		char *conf = xasprintf("%s%.*s\n%s", head, len - 18, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
						       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
						       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
						       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
				       MIN_CONF + strlen("[connector]\nsite_code = PS1\n"));
		if (len <= 197) {
			write_conf(f, conf);
			struct cmb_config *cfg = NULL;
			assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
			assert_string_equal(cfg->site_code, "PS1");
			cmb_config_free(cfg);
		} else {
			expect_error(state, conf, "{conf}:2: the line is longer than 197 characters");
		}
		free(conf);
	}
	/* Indentation counts too, and so does a CRLF line's length without its terminator. */
	char *conf = xasprintf("[site]\n%*scollection = SMS00001\r\n%s", 180, "", MIN_CONF);
	expect_error(state, conf, "{conf}:2: the line is longer than 197 characters");
	free(conf);
}

/* A state directory group or others may write is refused; a missing one is created 0700 later. */
static void test_err_state_dir_writable(void **state)
{
	struct fx *f = *state;
	char *dir = xasprintf("%s/state", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	static const mode_t loose[] = { 0770, 0707, 01777 };
	for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		assert_int_equal(chmod(dir, loose[i]), 0);
		char *want = xasprintf("{conf}:11: [connector] state_dir: {dir}/state is writable by group or others "
				       "(mode %03o; expected 700): run chmod 700 {dir}/state",
				       (unsigned)(loose[i] & 0777));
		expect_error(state, MIN_CONF "[connector]\nstate_dir = state\n", want);
		free(want);
	}
	assert_int_equal(chmod(dir, 0750), 0);
	write_conf(f, MIN_CONF "[connector]\nstate_dir = state\n");
	struct cmb_config *cfg = NULL;
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	cmb_config_free(cfg);
	write_conf(f, MIN_CONF "[connector]\nstate_dir = absent\n");
	assert_int_equal(cmb_config_load(&cfg, f->conf), 0);
	cmb_config_free(cfg);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_full),
		T(test_defaults),
		T(test_print),
		T(test_err_unknown_key),
		T(test_err_unknown_section),
		T(test_err_numbers),
		T(test_err_enum),
		T(test_err_url),
		T(test_err_url_appended),
		T(test_metrics_listen),
		T(test_err_required),
		T(test_err_site_code),
		T(test_err_secret_value),
		T(test_err_secret_file),
		T(test_err_duplicate),
		T(test_err_syntax),
		T(test_blank_last_line),
		T(test_effective_line_length),
		T(test_reload),
		T(test_retry_rate_options),
		T(test_docs),
		T(test_credential_options),
		T(test_err_url_credentials),
		T(test_err_long_line_comment),
		T(test_err_state_dir_writable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
