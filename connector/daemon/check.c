/*
 * check.c - `cmbridge check` (see check.h): the site and the tenant probed
 * at once, each over its own adapter in its own thread, their lines kept
 * apart and printed site first.
 *
 * Must never: write to either side, open the state, show a token (only
 * its roles, which are public claims), or wait longer on a dead end than
 * its short budget allows.
 */
#include "connector/daemon/check.h"
#include "connector/daemon/daemon.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/engine/relay.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The application permissions (Microsoft Graph, "Application"; the token's
 * roles claim) a cycle needs, and what needs each (docs/wire-format.md §2,
 * docs/credentials.md). A broader permission that includes one counts.
 */
static const struct {
	const char *role;
	const char *also;        /* a broader role that includes it, or NULL */
	const char *needed_for;
} needed_roles[] = {
	{ "DeviceManagementManagedDevices.ReadWrite.All", NULL,
	  "device uploads, the warm standby's listing and remote actions" },
	{ "DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All",
	  "endpoint security policies" },
};
#define N_NEEDED (sizeof(needed_roles) / sizeof(needed_roles[0]))

/* Roles are compared without case: a tenant spelling one otherwise is not worth a false failure. */
static int holds(const char *const *roles, size_t n, const char *role)
{
	for (size_t i = 0; role && i < n; i++)
		if (strcasecmp(roles[i], role) == 0)
			return 1;
	return 0;
}

char *cmb_check_missing_roles(const char *const *roles, size_t n)
{
	struct cmb_buf b = CMB_BUF_INIT(4096);
	for (size_t i = 0; i < N_NEEDED; i++) {
		if (holds(roles, n, needed_roles[i].role) || holds(roles, n, needed_roles[i].also))
			continue;
		cmb_buf_printf(&b, "%s%s (%s)", b.len ? ", " : "", needed_roles[i].role, needed_roles[i].needed_for);
	}
	return b.len ? cmb_buf_detach(&b, NULL) : NULL;
}

/* ---- one side's probe ---- */

struct side {
	const struct cmb_config *cfg;          /* the budget copy */
	struct cmb_daemon_session *s;
	struct cmb_buf out;                    /* its report lines */
	int failed;                            /* the first failure's code, or 0 */
};

__attribute__((format(printf, 3, 4))) static void line(struct side *sd, const char *step, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = xvasprintf(fmt, ap);
	va_end(ap);
	cmb_buf_printf(&sd->out, "%-8s %s\n", step, text);
	free(text);
}

/* "step: FAILED: <the last error>", remembering the first failure. */
static void failed(struct side *sd, const char *step, int rc)
{
	line(sd, step, "FAILED: %s", cmb_error_last());
	if (!sd->failed)
		sd->failed = rc;
}

static void *probe_site(void *arg)
{
	struct side *sd = arg;
	int rc = sd->s->site->check(sd->s->site_st);
	if (rc < 0) {
		failed(sd, "site:", rc);
		return NULL;
	}
	line(sd, "site:", "%s reachable, a device key read", sd->cfg->site_url);
	/* What the site has and what the connector will do without, per class. */
	char *report = sd->s->site->describe ? sd->s->site->describe(sd->s->site_st) : NULL;
	if (report)
		cmb_buf_addstr(&sd->out, report);
	free(report);
	return NULL;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The token's roles against those a cycle needs; an opaque token is said, not failed. */
static void probe_roles(struct side *sd)
{
	const struct cmb_tenant_adapter *t = sd->s->tenant;
	char **roles = NULL;
	size_t n = 0;
	int rc = t->token_roles ? t->token_roles(sd->s->tenant_st, &roles, &n) : 1;
	if (rc < 0) {
		failed(sd, "roles:", rc);
		return;
	}
	if (rc == 1) {
		line(sd, "roles:", "the token is not a JWT: its application roles cannot be read here (a cycle needs "
				   "%s and %s)", needed_roles[0].role, needed_roles[1].role);
		return;
	}
	char *missing = cmb_check_missing_roles((const char *const *)roles, n);
	struct cmb_buf has = CMB_BUF_INIT(16384);
	for (size_t i = 0; i < n; i++)
		cmb_buf_printf(&has, "%s%s", i ? ", " : "", roles[i]);
	if (missing) {
		cmb_error_set(CMB_EAUTH, "the token of client %s lacks %s; it carries %s (add them as Microsoft Graph "
			      "application permissions of the app registration and grant admin consent: "
			      "docs/credentials.md)", sd->cfg->tenant_client_id, missing, n ? has.data : "no roles");
		failed(sd, "roles:", CMB_EAUTH);
	} else {
		line(sd, "roles:", "%s", has.data);
	}
	free(missing);
	cmb_buf_free(&has);
	free_strv(roles, n);
}

static int count_notification(void *ctx, const struct cmb_tenant_notification *nt)
{
	(void)nt;
	(*(long *)ctx)++;
	return 0;
}

/* One read of the notification channel (consumes nothing): the gateway answers at gateway_url. */
static void probe_gateway(struct side *sd)
{
	const struct cmb_tenant_adapter *t = sd->s->tenant;
	void *nst = NULL;
	char *next = NULL;
	long seen = 0;
	int rc = t->notify_open && t->poll_notifications ? t->notify_open(&nst, sd->s->tenant_st, sd->cfg) : 1;
	if (rc == 1)
		return; /* an adapter without a gateway channel: nothing to read */
	if (rc == 0)
		rc = t->poll_notifications(nst, "", 0, count_notification, &seen, &next);
	if (rc < 0) {
		cmb_error_wrap(rc, "[tenant] gateway_url %s (the base the gateway serves /api/gateway/ under)",
			       sd->cfg->tenant_gateway_url);
		failed(sd, "gateway:", rc);
	} else {
		line(sd, "gateway:", "%s/api/gateway answers (notification channel read)", sd->cfg->tenant_gateway_url);
	}
	free(next);
	if (nst)
		t->notify_close(nst);
}

static void probe_graph(struct side *sd)
{
	const struct cmb_tenant_adapter *t = sd->s->tenant;
	if (!t->probe_graph)
		return;
	int rc = t->probe_graph(sd->s->tenant_st);
	if (rc < 0) {
		cmb_error_wrap(rc, "[tenant] graph_url %s", sd->cfg->tenant_graph_url);
		failed(sd, "graph:", rc);
	} else {
		line(sd, "graph:", "%s answers (a managedDevice read)", sd->cfg->tenant_graph_url);
	}
}

static void *probe_tenant(void *arg)
{
	struct side *sd = arg;
	long expires = 0;
	int rc = sd->s->tenant->check(sd->s->tenant_st, &expires);
	if (rc < 0) {
		failed(sd, "tenant:", rc);
		return NULL; /* without a token nothing further can be asked */
	}
	line(sd, "tenant:", "token obtained from %s for client %s (valid %ld s)", sd->cfg->tenant_token_url,
	     sd->cfg->tenant_client_id, expires);
	probe_roles(sd);
	probe_gateway(sd);
	probe_graph(sd);
	return NULL;
}

/* ---- the whole check ---- */

static void shorten(long *v, long max)
{
	if (*v <= 0 || *v > max)
		*v = max;
}

/* A copy of cfg with check's budget: a dead end costs seconds, not a cycle's patience. Strings stay cfg's. */
static struct cmb_config budget_copy(const struct cmb_config *cfg)
{
	struct cmb_config c = *cfg;
	shorten(&c.sync_max_attempts, CMB_CHECK_ATTEMPTS);
	shorten(&c.sync_max_retry_wait, CMB_CHECK_RETRY_WAIT_S);
	shorten(&c.sync_retry_budget, 2 * CMB_CHECK_ATTEMPTS);
	shorten(&c.site_connect_timeout, CMB_CHECK_CONNECT_S);
	shorten(&c.tenant_connect_timeout, CMB_CHECK_CONNECT_S);
	shorten(&c.site_timeout, CMB_CHECK_STALL_S);
	shorten(&c.tenant_timeout, CMB_CHECK_STALL_S);
	shorten(&c.site_page_timeout, CMB_CHECK_REQUEST_S);
	shorten(&c.tenant_request_timeout, CMB_CHECK_REQUEST_S);
	c.actions_poll_wait = 0;
	return c;
}

static void print_warnings(const char *warnings)
{
	for (const char *p = warnings; p && *p;) {
		const char *nl = strchr(p, '\n');
		printf("%-8s warning: %.*s\n", "actions:", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : p + strlen(p);
	}
}

int cmb_check_run(const struct cmb_config *cfg)
{
	char *warnings = NULL;
	int rc = cmb_relay_check_config(cfg, &warnings);
	if (rc < 0)
		return rc;
	printf("%-8s %s is valid\n", "config:", cfg->path);
	print_warnings(warnings);
	free(warnings);
	fflush(stdout);

	struct cmb_config budget = budget_copy(cfg);
	struct cmb_daemon_session s;
	if ((rc = cmb_daemon_session_open(&s, &budget, CMB_DAEMON_SITE | CMB_DAEMON_TENANT)) < 0)
		return rc;
	struct side site = { .cfg = &budget, .s = &s, .out = CMB_BUF_INIT(1 << 20) };
	struct side tenant = { .cfg = &budget, .s = &s, .out = CMB_BUF_INIT(1 << 20) };
	pthread_t t;
	int threaded = pthread_create(&t, NULL, probe_site, &site) == 0;
	if (!threaded)
		probe_site(&site); /* no thread to be had: one after the other */
	probe_tenant(&tenant);
	if (threaded)
		pthread_join(t, NULL);
	cmb_daemon_session_close(&s);

	fputs(site.out.data ? site.out.data : "", stdout);
	fputs(tenant.out.data ? tenant.out.data : "", stdout);
	cmb_buf_free(&site.out);
	cmb_buf_free(&tenant.out);
	rc = site.failed ? site.failed : tenant.failed;
	return rc ? cmb_error_set(rc, "check failed") : 0;
}
