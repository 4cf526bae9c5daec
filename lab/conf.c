/*
 * conf.c - DIR/lab.conf (the lab's own INI file) and DIR/cmbridge.conf
 * (a ready connector config pointing at this lab). lab.conf is the only
 * place the lab keeps its identity and ports.
 */
#include "lab.h"
#include "actions.h"
#include "policies.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *lab_path(const struct lab_conf *c, const char *name)
{
	return lab_xasprintf("%s/%s", c->dir, name);
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
}

static int on_entry(void *user, const char *sec, const char *name, const char *value)
{
	struct lab_conf *c = user;
#define IS(s, n) (strcmp(sec, s) == 0 && strcmp(name, n) == 0)
	if (IS("lab", "tenant_id")) copy(c->tenant_id, sizeof c->tenant_id, value);
	else if (IS("lab", "client_id")) copy(c->client_id, sizeof c->client_id, value);
	else if (IS("lab", "seed")) c->seed = strtoull(value, NULL, 10);
	else if (IS("lab", "devices")) c->devices = atoi(value);
	else if (IS("lab", "epoch")) c->epoch = strtoll(value, NULL, 10);
	else if (IS("site", "site_code")) copy(c->site_code, sizeof c->site_code, value);
	else if (IS("site", "port")) c->site_port = atoi(value);
	else if (IS("site", "page_size")) c->page_size = atoi(value);
	else if (IS("site", "username")) copy(c->username, sizeof c->username, value);
	else if (IS("site", "nextlink")) {
		if (strcmp(value, "relative") == 0) c->nextlink_relative = true;
		else if (strcmp(value, "absolute") == 0) c->nextlink_relative = false;
		else return 0;
	} else if (IS("site", "auth")) {
		if (strcmp(value, "none") && strcmp(value, "basic") && strcmp(value, "ntlm") &&
		    strcmp(value, "negotiate") && strcmp(value, "bearer"))
			return 0;
		copy(c->site_auth, sizeof c->site_auth, value);
	} else if (IS("site", "version")) {          /* odata.c, site.c */
		if (strcmp(value, "old") == 0) c->site_old = true;
		else if (strcmp(value, "current") == 0) c->site_old = false;
		else return 0;
	} else if (IS("site", "paging")) {
		if (strcmp(value, "client") == 0) c->client_paging = true;
		else if (strcmp(value, "server") == 0) c->client_paging = false;
		else return 0;
	} else if (IS("site", "values")) {
		if (strcmp(value, "alternate") == 0) c->values_alternate = true;
		else if (strcmp(value, "native") == 0) c->values_alternate = false;
		else return 0;
	} else if (IS("site", "block_reply")) {
		if (strcmp(value, "empty") == 0) c->block_reply_empty = true;
		else if (strcmp(value, "return_value") == 0) c->block_reply_empty = false;
		else return 0;
	} else if (IS("site", "metadata_padding")) {
		char *e;
		long v = strtol(value, &e, 10);
		if (!*value || *e || v < 0 || v > 9999)
			return 0;
		c->metadata_padding = (int)v;
	} else if (IS("site", "keytab")) copy(c->keytab, sizeof c->keytab, value);
	else if (IS("site", "bearer_audience")) copy(c->bearer_audience, sizeof c->bearer_audience, value);
	else if (IS("site", "client_ca")) copy(c->client_ca, sizeof c->client_ca, value);
	else if (IS("tenant", "certificate")) copy(c->tenant_cert, sizeof c->tenant_cert, value);
	else if (IS("tenant", "port")) c->tenant_port = atoi(value);
	else if (IS("tenant", "token_lifetime")) c->token_lifetime = atoi(value);
	else if (IS("tenant", "clock_offset")) {
		char *e;
		long v = strtol(value, &e, 10);
		if (!*value || *e || v < -86400 || v > 86400)
			return 0;
		c->clock_offset = v;
	} else if (IS("tenant", "roles")) {        /* tenant.c: the token's roles claim; "" for none */
		if (strlen(value) >= sizeof c->token_roles || strpbrk(value, "\"\\ "))
			return 0;
		copy(c->token_roles, sizeof c->token_roles, value);
	}
	else if (!strcmp(sec, "actions") || IS("tenant", "admin_client_id"))     /* actions.c */
		return lab_actions_conf_entry(c, sec, name, value);
	else if (!strcmp(sec, "policies"))     /* policies.c */
		return lab_policies_conf_entry(c, name, value);
	else return 0;
#undef IS
	return 1;
}

long lab_clock_offset;

int64_t lab_tenant_time(void)
{
	return (int64_t)time(NULL) + lab_clock_offset;
}

int lab_conf_load(struct lab_conf *c, const char *dir)
{
	memset(c, 0, sizeof *c);
	char *abs = realpath(dir, NULL);
	if (!abs) {
		fprintf(stderr, LAB_NAME ": %s: %s\n", dir, strerror(errno));
		return -1;
	}
	c->dir = abs;
	c->page_size = 1000;
	c->token_lifetime = 3599;
	copy(c->site_code, sizeof c->site_code, "PS1");
	copy(c->site_auth, sizeof c->site_auth, "basic");
	copy(c->bearer_audience, sizeof c->bearer_audience, "https://cmbridge-lab-site");
	copy(c->tenant_cert, sizeof c->tenant_cert, "client.pem");
	copy(c->token_roles, sizeof c->token_roles, LAB_TOKEN_ROLES);
	lab_actions_conf_defaults(c);
	lab_policies_conf_defaults(c);
	char *p = lab_path(c, "lab.conf");
	int rc = ini_parse(p, on_entry, c);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, LAB_NAME ": %s: cannot read (is this a lab directory? run init)\n", p);
		else
			fprintf(stderr, LAB_NAME ": %s:%d: unknown or invalid setting\n", p, rc);
		free(p);
		return -1;
	}
	free(p);
	if (c->page_size < 1 || c->token_lifetime < 1 || !c->tenant_id[0] || !c->client_id[0]) {
		fprintf(stderr, LAB_NAME ": %s/lab.conf: incomplete or invalid\n", c->dir);
		return -1;
	}
	if (lab_actions_conf_check(c) < 0 || lab_policies_conf_check(c) < 0)
		return -1;
	lab_clock_offset = c->clock_offset;
	return 0;
}

int lab_conf_save(const struct lab_conf *c)
{
	struct lab_buf b = {0};
	lab_buf_addf(&b,
		     "# cmbridge-lab configuration (written by init; up rewrites ports)\n"
		     "[lab]\n"
		     "tenant_id = %s\n"
		     "client_id = %s\n"
		     "seed = %llu\n"
		     "devices = %d\n"
		     "epoch = %lld\n"
		     "[site]\n"
		     "site_code = %s\n"
		     "port = %d\n"
		     "page_size = %d\n"
		     "nextlink = %s\n"
		     "username = %s\n"
		     "version = %s\n"
		     "paging = %s\n"
		     "values = %s\n"
		     "block_reply = %s\n"
		     "metadata_padding = %d\n"
		     "[tenant]\n"
		     "port = %d\n"
		     "token_lifetime = %d\n",
		     c->tenant_id, c->client_id, (unsigned long long)c->seed, c->devices,
		     (long long)c->epoch, c->site_code, c->site_port, c->page_size,
		     c->nextlink_relative ? "relative" : "absolute", c->username, c->site_old ? "old" : "current",
		     c->client_paging ? "client" : "server", c->values_alternate ? "alternate" : "native",
		     c->block_reply_empty ? "empty" : "return_value", c->metadata_padding, c->tenant_port,
		     c->token_lifetime);
	/* authentication keys (auth_*.c); optional ones only when set */
	lab_buf_addf(&b, "[site]\nauth = %s\nbearer_audience = %s\n", c->site_auth, c->bearer_audience);
	if (c->keytab[0])
		lab_buf_addf(&b, "keytab = %s\n", c->keytab);
	if (c->client_ca[0])
		lab_buf_addf(&b, "client_ca = %s\n", c->client_ca);
	lab_buf_addf(&b, "[tenant]\ncertificate = %s\nroles = %s\n", c->tenant_cert, c->token_roles);
	if (c->clock_offset)
		lab_buf_addf(&b, "clock_offset = %ld\n", c->clock_offset);
	lab_actions_conf_save(c, &b);     /* [tenant] admin_client_id, [actions] (actions.c) */
	lab_policies_conf_save(c, &b);    /* [policies] (policies.c) */
	char *p = lab_path(c, "lab.conf");
	int rc = lab_write_file(p, b.p, b.len, 0600);
	if (rc < 0)
		fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
	free(p);
	lab_buf_free(&b);
	return rc;
}

int lab_conf_write_cmbridge(const struct lab_conf *c)
{
	struct lab_buf b = {0};
	const char *d = c->dir;
	lab_buf_addf(&b,
		     "[connector]\n"
		     "site_code = %s\n"
		     "state_dir = %s/state\n"
		     "[site]\n"
		     "adapter = adminservice\n"
		     "url = https://127.0.0.1:%d/AdminService\n"
		     "auth = basic\n"
		     "username = %s\n"
		     "password_file = %s/site-password\n"
		     "ca_file = %s/ca.pem\n"
		     "page_size = %d\n"
		     "[tenant]\n"
		     "authority = https://127.0.0.1:%d/%s\n"
		     "gateway_url = https://127.0.0.1:%d\n"
		     "graph_url = https://127.0.0.1:%d/beta\n"
		     "client_id = %s\n"
		     "client_secret_file = %s/client-secret\n"
		     "ca_file = %s/ca.pem\n"
		     "scope = https://graph.microsoft.com/.default\n"
		     "[log]\n"
		     "level = info\n",
		     c->site_code, d, c->site_port, c->username, d, d, c->page_size, c->tenant_port,
		     c->tenant_id, c->tenant_port, c->tenant_port, c->client_id, d, d);
	char *p = lab_path(c, "cmbridge.conf");
	int rc = lab_write_file(p, b.p, b.len, 0600);
	if (rc < 0)
		fprintf(stderr, LAB_NAME ": %s: %s\n", p, strerror(errno));
	free(p);
	lab_buf_free(&b);
	return rc;
}

void lab_conf_free(struct lab_conf *c)
{
	free(c->dir);
	c->dir = NULL;
}
