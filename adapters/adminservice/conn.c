/*
 * conn.c - the AdminService adapter's connection to the site (see conn.h).
 */
#include "adapters/adminservice/conn.h"
#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/util.h"
#include "connector/config/config.h"
#include "connector/transport/http.h"

#include <stdlib.h>
#include <string.h>

static int conn_authorize(void *ctx, const char **header, const char **bearer)
{
	(void)bearer;
	return cmb_site_auth_header(ctx, header);
}

static int conn_refused(void *ctx)
{
	return cmb_site_auth_refused(ctx);
}

int cmb_as_conn_open(struct cmb_as_conn **out, const struct cmb_config *cfg)
{
	struct cmb_as_conn *c = xcalloc(1, sizeof(*c));
	int rc;

	c->refs = 1;
	cmb_retry_policy_from_config(&c->policy, cfg);
	if (!cfg->site_url || !*cfg->site_url) {
		rc = cmb_error_set(CMB_ECONFIG, "[site] url is not set");
		goto fail;
	}
	c->base = xstrdup(cfg->site_url);
	for (size_t n = strlen(c->base); n && c->base[n - 1] == '/'; n--)
		c->base[n - 1] = '\0';
	struct cmb_http_opts opts = {
		.name = "site",
		.ca_file = cfg->site_ca_file,
		.connect_timeout_s = cfg->site_connect_timeout,
		.low_speed_time_s = cfg->site_timeout,
		.min_speed = cfg->site_min_speed,
		.deadline_s = cfg->site_page_timeout,
		.deadline_option = "page_timeout",
		.max_response = cfg->sync_max_response_mb > 0 ? (size_t)cfg->sync_max_response_mb << 20 : 0,
		.rate_limit = (double)cfg->site_rate_limit,
		.rate_burst = (double)(cfg->site_rate_burst > 0 ? cfg->site_rate_burst : 1),
	};
	/* [site] auth, TLS pin and client certificate, [network] proxy: transport/auth.c, docs/credentials.md. */
	if ((rc = cmb_site_auth_open(&c->sauth, &c->http, &opts, cfg)) < 0)
		goto fail;
	if (cmb_site_auth_user(c->sauth))
		c->user = xstrdup(cmb_site_auth_user(c->sauth));
	/* Basic and NTLM name the account; the SMS Provider records it as CreatedBy. */
	if (cfg->site_username && cfg->site_auth &&
	    (strcmp(cfg->site_auth, "basic") == 0 || strcmp(cfg->site_auth, "ntlm") == 0))
		c->account = xstrdup(cfg->site_username);
	if (cmb_site_auth_scheme(c->sauth))
		c->scheme = xstrdup(cmb_site_auth_scheme(c->sauth));
	*out = c;
	return 0;
fail:
	cmb_as_conn_release(c);
	return rc;
}

struct cmb_as_conn *cmb_as_conn_ref(struct cmb_as_conn *c)
{
	c->refs++;
	return c;
}

void cmb_as_conn_release(struct cmb_as_conn *c)
{
	if (!c || --c->refs > 0)
		return;
	cmb_site_auth_free(c->sauth);
	cmb_http_free(c->http);
	free(c->base);
	free(c->user);
	free(c->account);
	free(c->scheme);
	free(c);
}

void cmb_as_client_init(struct cmb_as_client *cl, struct cmb_as_conn *conn)
{
	memset(cl, 0, sizeof(*cl));
	cl->conn = cmb_as_conn_ref(conn);
	cmb_retry_budget_init(&cl->budget, &conn->policy);
	cl->ep = (struct cmb_endpoint){
		.side = "site", .http = conn->http, .budget = &cl->budget, .authorize = conn_authorize,
		.refused = conn_refused, .auth_ctx = conn->sauth, .principal = conn->user, .scheme = conn->scheme,
		.no_credentials = "[site] auth = none",
	};
}

void cmb_as_client_clear(struct cmb_as_client *cl)
{
	if (!cl)
		return;
	cmb_as_conn_release(cl->conn);
	memset(cl, 0, sizeof(*cl));
}

void cmb_as_client_fresh_budget(struct cmb_as_client *cl, int only_when_spent)
{
	if (!only_when_spent || cl->budget.used >= cl->budget.policy.budget)
		cmb_retry_budget_init(&cl->budget, &cl->conn->policy);
}

struct json_reply {
	const char *what;
	int method_call;
	yajl_val root;
};

static int json_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct json_reply *jr = ctx;
	char eb[128] = "";
	const char *data = resp->body.data ? resp->body.data : "";
	size_t i = 0;
	while (i < resp->body.len && (data[i] == ' ' || data[i] == '\r' || data[i] == '\n' || data[i] == '\t'))
		i++;
	if (i == resp->body.len && jr->method_call) {
		/* A method that answers 2xx with no body (BlockClients may): it ran; nothing more to read. */
		jr->root = yajl_tree_parse("{}", NULL, 0);
		return 0;
	}
	yajl_val root = NULL;
	if (cmb_limit_json_tree(data, resp->body.len, jr->what, &root, eb, sizeof(eb)) == CMB_ETOOBIG)
		return CMB_ETOOBIG;
	if (root && YAJL_IS_OBJECT(root)) {
		jr->root = root;
		return 0;
	}
	yajl_tree_free(root);
	if (resp->body.len > 0 && data[i] == '{')
		/* Cut off inside the object: the request may have been applied. */
		return cmb_error_set(CMB_ENETWORK, "%s: the site's reply is incomplete JSON: %s", jr->what, eb);
	char *first = cmb_request_sanitise(data, resp->body.len, 80, 1);
	int rc = cmb_error_set(CMB_EPROTO, "%s: the site answered HTTP %ld with Content-Type '%s', not a JSON object: "
			       "'%s'", jr->what, resp->status, resp->content_type ? resp->content_type : "none", first);
	free(first);
	return rc;
}

int cmb_as_client_json(struct cmb_as_client *cl, const char *method, const char *url, const char *body,
		       enum cmb_request_retry retry, const char *what, const char *resource, yajl_val *out)
{
	static const char *const get_headers[] = { "Accept: application/json", NULL };
	static const char *const post_headers[] = { "Accept: application/json", "Content-Type: application/json", NULL };
	struct json_reply jr = { .what = what, .method_call = body != NULL };
	const struct cmb_request rq = {
		.method = method, .url = url, .what = what, .resource = resource,
		.headers = body ? post_headers : get_headers, .body = body, .body_len = body ? strlen(body) : 0,
		.retry = retry, .finish = json_finish, .finish_ctx = &jr,
	};
	struct cmb_http_response resp;
	int rc = cmb_request(&cl->ep, &rq, &resp, &cl->counters);
	cmb_http_response_clear(&resp);
	if (rc < 0) {
		yajl_tree_free(jr.root);
		return rc;
	}
	*out = jr.root;
	return 0;
}
