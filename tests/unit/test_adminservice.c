/*
 * test_adminservice.c - the real AdminService adapter (cmb_site_adminservice:
 * open, check, read_devices, read_collections, close) against an in-process
 * HTTPS server (libmicrohttpd on 127.0.0.1, port 0, a certificate made for
 * the run) that serves scripted replies per class and records every request
 * URI as it arrived (curl's test servers).
 *
 * Asserts exact outcomes: device ids, error codes, message text, request
 * URIs, and what the retry budget spent (never wall-clock time).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapters/adminservice/adminservice.h"
#include "adapters/site.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "tests/unit/fixture.h"

/* ---- the scripted server (fixture.h): one route per class ----------------- */

static struct fx_server srv;
static struct fx_pki pki;
static char dir[FX_DIR_SIZE];      /* temporary files */
static char *ca_file;

static int server_start(void **state)
{
	if (fx_tmpdir(dir, "as") < 0)
		return -1;
	fx_pki_make(&pki, "cmbridge test site CA");
	ca_file = fx_path(dir, "ca.pem");
	fx_write_str(ca_file, pki.ca_pem, 0644);
	fx_server_start(&srv, &pki);
	srv.content_type = "application/json; odata.metadata=minimal";
	return 0;
}

static int server_stop(void **state)
{
	fx_server_stop(&srv);
	fx_pki_free(&pki);
	free(ca_file);
	fx_rmtree(dir);
	return 0;
}

/* The route of cls: the path after /AdminService/wmi/ (valid until the next call). */
static const char *wmi(const char *cls)
{
	static char path[160];
	snprintf(path, sizeof(path), "/AdminService/wmi/%s", cls);
	return path;
}

/* Adds a reply for cls (appended to its route). */
static void script(const char *cls, struct fx_reply r)
{
	fx_script(&srv, wmi(cls), r);
}

static void ok(const char *cls, const char *body)
{
	script(cls, (struct fx_reply){ .body = body });
}

/* r answers every request for cls, however many. */
static void always(const char *cls, struct fx_reply r)
{
	fx_always(&srv, wmi(cls), r);
}

/* A site without a readable $metadata: the adapter reads with the documented names. */
static void no_metadata(void)
{
	always("$metadata", (struct fx_reply){ .status = 404,
		.body = "{\"error\":{\"code\":\"404\",\"message\":\"No route\"}}" });
}

/* The request URIs a class received, one per line ("" when none). */
static const char *uris(const char *cls)
{
	return fx_uris(&srv, wmi(cls));
}

static void assert_all_served(void)
{
	fx_assert_all_served(&srv);
}

/* ---- the adapter under test -------------------------------------------- */

static const char *const classes[] = {
	"SMS_R_System", "SMS_CombinedDeviceResources", "SMS_Client_ComanagementState",
	"SMS_G_System_COMPUTER_SYSTEM", "SMS_G_System_PC_BIOS",
};

struct fixture {
	struct cmb_config cfg;
	char url[128];
	char *password_file;
	void *st;
	struct cmb_buf devices;     /* "id name serial\n" per device */
};

static struct fixture fx;

/* Fast backoff for tests; Retry-After is still honoured as given (cap 60 s). */
static const struct cmb_retry_policy test_policy = {
	.max_attempts = 6, .base_delay_s = 0.01, .max_delay_s = 60.0, .budget = 200,
};

static void open_with(const char *collection, int basic, const struct cmb_retry_policy *policy)
{
	memset(&fx.cfg, 0, sizeof(fx.cfg));
	snprintf(fx.url, sizeof(fx.url), "https://127.0.0.1:%d/AdminService/", srv.port);
	fx.cfg.site_code = "PS1";
	fx.cfg.site_url = fx.url;
	fx.cfg.site_auth = basic ? "basic" : "none";
	fx.cfg.site_ca_file = ca_file;
	fx.cfg.site_collection = (char *)collection;
	fx.cfg.site_page_size = 2;
	fx.cfg.site_timeout = 10;
	if (basic) {
		fx.password_file = fx_path(dir, "password");
		fx_write_str(fx.password_file, "pw\n", 0600);
		fx.cfg.site_username = "svc";
		fx.cfg.site_password_file = fx.password_file;
	}
	fx_server_reset(&srv);
	no_metadata();
	cmb_error_clear();
	cmb_log_set_level(CMB_LOG_ERROR);
	assert_int_equal(cmb_site_adminservice.open(&fx.st, &fx.cfg), 0);
	cmb_adminservice_set_retry_policy(fx.st, policy ? policy : &test_policy);
	cmb_buf_init(&fx.devices, 1 << 20);
}

static void close_fx(void)
{
	cmb_site_adminservice.close(fx.st);
	fx.st = NULL;
	cmb_buf_free(&fx.devices);
	free(fx.password_file);
	fx.password_file = NULL;
}

static const struct cmb_retry_budget *budget(void)
{
	return cmb_adminservice_retry_budget(fx.st);
}

#define S(x) ((x) ? (x) : "-")

static int on_device(void *ctx, const struct cmb_site_device *d)
{
	struct cmb_buf *b = ctx;
	cmb_buf_printf(b, "%" PRIu32 " %s %s %s %s\n", d->resource_id, S(d->name), S(d->site_code), S(d->model),
		       S(d->serial_number));
	return 0;
}

static int read_devices(struct cmb_site_read_stats *stats)
{
	cmb_error_clear();
	return cmb_site_adminservice.read_devices(fx.st, on_device, &fx.devices, stats);
}

static void assert_error(int rc, int code, const char *substring)
{
	if (rc != code || !strstr(cmb_error_last(), substring))
		fail_msg("got %d (%s) '%s', want %d (%s) with '%s'", rc, cmb_error_name(rc), cmb_error_last(), code,
			 cmb_error_name(code), substring);
}

#define EMPTY "{\"value\":[]}"
#define CHECK_URI "/AdminService/wmi/SMS_R_System?$select=ResourceId&$top=1\n"
#define ONE_ROW "{\"value\":[{\"ResourceId\":1}]}"

/* Every class but SMS_R_System answers one empty page. */
static void empty_secondaries(void)
{
	for (int i = 1; i < 5; i++)
		ok(classes[i], EMPTY);
}

/* ---- tests ------------------------------------------------------------- */

/* check reads one key and the site's version (SMS_Site); scripts what it needs besides SMS_R_System. */
static void check_site(void)
{
	always("SMS_Site", (struct fx_reply){ .body = "{\"value\":[{\"SiteCode\":\"PS1\",\"SiteName\":\"Primary\","
						 "\"ReportingSiteCode\":\"\",\"Version\":\"5.00.9128.1000\"}]}" });
}

static void test_check_retries_500(void **state)
{
	open_with(NULL, 0, NULL);
	check_site();
	script("SMS_R_System", (struct fx_reply){ .status = 500,
		.body = "{\"error\":{\"code\":\"ProviderFault\",\"message\":\"WMI provider failed\"}}" });
	ok("SMS_R_System", ONE_ROW);
	assert_int_equal(cmb_site_adminservice.check(fx.st), 0);
	assert_string_equal(uris("SMS_R_System"), CHECK_URI CHECK_URI);
	assert_int_equal(budget()->used, 1);
	assert_all_served();

	/* begin_cycle starts a fresh budget */
	cmb_site_adminservice.begin_cycle(fx.st);
	assert_int_equal(budget()->used, 0);
	assert_true(budget()->waited_s == 0);
	close_fx();
}

static void test_throttled_retry_after(void **state)
{
	open_with(NULL, 0, NULL);
	check_site();
	script("SMS_R_System", (struct fx_reply){ .status = 429, .retry_after = "0.2",
		.body = "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow down\"}}" });
	ok("SMS_R_System", ONE_ROW);
	assert_int_equal(cmb_site_adminservice.check(fx.st), 0);
	assert_int_equal(budget()->used, 1);
	assert_true(budget()->waited_s >= 0.2 && budget()->waited_s <= 0.2); /* exactly what Retry-After said */
	assert_string_equal(uris("SMS_R_System"), CHECK_URI CHECK_URI);

	/* 503 with Retry-After 0 then 200 */
	script("SMS_R_System", (struct fx_reply){ .status = 503, .retry_after = "0", .body = "" });
	ok("SMS_R_System", ONE_ROW);
	assert_int_equal(cmb_site_adminservice.check(fx.st), 0);
	assert_int_equal(budget()->used, 2);
	assert_true(budget()->waited_s >= 0.2 && budget()->waited_s <= 0.2);
	assert_all_served();
	close_fx();
}

#define SYS_SELECT "$select=ResourceId,Name,Client,Obsolete,Decommissioned,Active,SMSUniqueIdentifier,HardwareID," \
	"SMBIOSGUID,AADDeviceID,AADTenantID,OperatingSystemNameandVersion,Build,BuildExt,ResourceDomainORWorkgroup"
#define SYS_URI "/AdminService/wmi/SMS_R_System?" SYS_SELECT "&$orderby=ResourceId&$top=2"

/*
 * A page cut mid-body is fetched again whole; its rows reach the join once.
 * The site sends no nextLink, so the reader pages with $skip windows, and
 * only an empty window ends a class (a short one might be a page cap).
 */
static void test_reset_mid_body(void **state)
{
	static const char sys[] =
		"{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"},{\"ResourceId\":2,\"Name\":\"B\"}]}";
	static const char sys2[] = "{\"value\":[{\"ResourceId\":3,\"Name\":\"C\"}]}";
	static const char cdr[] =
		"{\"value\":[{\"ResourceID\":1,\"SiteCode\":\"PS1\"},{\"ResourceID\":3,\"SiteCode\":\"PS1\"}]}";
	open_with(NULL, 0, NULL);
	/* chunked reply dropped after the first row; then the same page whole */
	script("SMS_R_System", (struct fx_reply){ .body = sys, .cut = FX_CUT_CHUNKED, .at = 45 });
	ok("SMS_R_System", sys);
	ok("SMS_R_System", sys2);
	ok("SMS_R_System", EMPTY);
	/* a reply shorter than its Content-Length (truncated transfer); then OK */
	script("SMS_CombinedDeviceResources", (struct fx_reply){ .body = cdr, .cut = FX_CUT_LENGTH, .at = 50 });
	ok("SMS_CombinedDeviceResources", cdr);
	ok("SMS_CombinedDeviceResources", EMPTY); /* its window was full: the $skip page */
	for (int i = 2; i < 5; i++)
		ok(classes[i], EMPTY);

	struct cmb_site_read_stats stats;
	assert_int_equal(read_devices(&stats), 0);
	assert_string_equal(fx.devices.data, "1 A PS1 - -\n2 B - - -\n3 C PS1 - -\n");
	assert_int_equal(stats.devices, 3);
	assert_int_equal(stats.filtered, 0);
	assert_int_equal(stats.pages, 8); /* pages, not attempts: 3 + 2 + 1 + 1 + 1 */
	assert_int_equal(budget()->used, 2);
	assert_string_equal(uris("SMS_R_System"), SYS_URI "\n" SYS_URI "\n" SYS_URI "&$skip=2\n" SYS_URI "&$skip=3\n");
	assert_all_served();
	close_fx();
}

/* A complete transfer whose JSON ends early is a malformed page: final, never retried. */
static void test_truncated_json_is_final(void **state)
{
	open_with(NULL, 0, NULL);
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1},");
	empty_secondaries();
	int rc = read_devices(NULL);
	assert_error(rc, CMB_EPROTO, "SMS_R_System page 1, byte ");
	assert_int_equal(budget()->used, 0);
	assert_string_equal(fx.devices.len ? fx.devices.data : "", "");
	close_fx();
}

static void test_unauthorized_is_final(void **state)
{
	open_with(NULL, 1, NULL);
	check_site();
	script("SMS_R_System", (struct fx_reply){ .status = 401,
		.body = "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"Access is denied.\"}}" });
	int rc = cmb_site_adminservice.check(fx.st);
	char want[512];
	snprintf(want, sizeof(want), "SMS_R_System page 1: site refused the credentials of svc (Basic) at "
		 "https://127.0.0.1:%d/AdminService/wmi/SMS_R_System?$select=ResourceId&$top=1 (HTTP 401: Unauthorized: "
		 "Access is denied.)", srv.port);
	assert_error(rc, CMB_EAUTH, want);
	assert_string_equal(fx_last_auth(&srv), "Basic c3ZjOnB3"); /* svc:pw */
	assert_int_equal(budget()->used, 0);
	assert_string_equal(uris("SMS_R_System"), CHECK_URI);

	/* 404 is final too; the AdminService's 404 "Access denied" is a refusal of the account */
	script("SMS_R_System", (struct fx_reply){ .status = 404, .body = "" });
	assert_error(cmb_site_adminservice.check(fx.st), CMB_ENOTFOUND, "class SMS_R_System not found at https://127.0.0.1:");
	script("SMS_R_System", (struct fx_reply){ .status = 404,
		.body = "{\"error\":{\"code\":\"404\",\"message\":\"Access denied  WMI QUERY: \"}}" });
	assert_error(cmb_site_adminservice.check(fx.st), CMB_EAUTH, ": site denied svc access to https://127.0.0.1:");
	assert_int_equal(budget()->used, 0);
	assert_all_served();
	close_fx();
}

static void test_retries_exhausted(void **state)
{
	open_with(NULL, 0, NULL);
	check_site();
	for (int i = 0; i < 6; i++)
		script("SMS_R_System", (struct fx_reply){ .status = 502, .body = "<html>Bad Gateway</html>",
			.content_type = "text/html" });
	int rc = cmb_site_adminservice.check(fx.st);
	assert_error(rc, CMB_ENETWORK, "SMS_R_System page 1: site answered HTTP 502 for https://127.0.0.1:");
	assert_error(rc, CMB_ENETWORK, "'<html>Bad Gateway</html>' (gave up after 6 attempts; 5 of 200 retries of this "
		     "cycle spent)");
	assert_int_equal(budget()->used, 5);
	assert_all_served();
	close_fx();

	/* the cycle's budget runs out first: the last error comes back */
	struct cmb_retry_policy small = test_policy;
	small.budget = 2;
	open_with(NULL, 0, &small);
	check_site();
	for (int i = 0; i < 3; i++)
		script("SMS_R_System", (struct fx_reply){ .status = 504, .body = "" });
	rc = cmb_site_adminservice.check(fx.st);
	assert_error(rc, CMB_ENETWORK, "HTTP 504");
	assert_error(rc, CMB_ENETWORK, "(not retried: the cycle's retry budget of 2 is spent)");
	assert_int_equal(budget()->used, 2);
	/* and a new cycle has its budget back */
	cmb_site_adminservice.begin_cycle(fx.st);
	script("SMS_R_System", (struct fx_reply){ .status = 500, .body = "" });
	ok("SMS_R_System", ONE_ROW);
	assert_int_equal(cmb_site_adminservice.check(fx.st), 0);
	assert_int_equal(budget()->used, 1);
	assert_all_served();
	close_fx();

	/* retry_budget = 0: one try, towards the site as everywhere */
	small.budget = 0;
	open_with(NULL, 0, &small);
	check_site();
	script("SMS_R_System", (struct fx_reply){ .status = 500, .body = "" });
	assert_error(cmb_site_adminservice.check(fx.st), CMB_ENETWORK,
		     "(not retried: the cycle's retry budget of 0 is spent)");
	assert_string_equal(uris("SMS_R_System"), CHECK_URI);
	assert_all_served();
	close_fx();
}

/*
 * Six classes of three pages each (page_size 2: a nextLink page, a full
 * window, then a $skip page), members filtering: exact devices and requests.
 * A site that pages with nextLink is trusted to end a class with a short page.
 */
static void test_full_read_with_collection(void **state)
{
	/* devices 1..5; members 2, 3, 5 and 7 (7 has no discovery record) */
	open_with("PS100012", 0, NULL);
	static const char *const pages[6][3] = {
		{ "{\"value\":[{\"ResourceId\":1,\"Name\":\"PC1\"},{\"ResourceId\":2,\"Name\":\"PC2\"}],"
		  "\"@odata.nextLink\":\"SMS_R_System?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceId\":3,\"Name\":\"PC3\"},{\"ResourceId\":4,\"Name\":\"PC4\"}]}",
		  "{\"value\":[{\"ResourceId\":5,\"Name\":\"PC5\"}]}" },
		{ "{\"value\":[{\"ResourceID\":1,\"SiteCode\":\"s1\"},{\"ResourceID\":2,\"SiteCode\":\"s2\"}],"
		  "\"@odata.nextLink\":\"SMS_CombinedDeviceResources?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceID\":3,\"SiteCode\":\"s3\"},{\"ResourceID\":4,\"SiteCode\":\"s4\"}]}",
		  "{\"value\":[{\"ResourceID\":5,\"SiteCode\":\"s5\"}]}" },
		{ "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2}],"
		  "\"@odata.nextLink\":\"SMS_Client_ComanagementState?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceID\":3},{\"ResourceID\":4}]}",
		  "{\"value\":[{\"ResourceID\":5}]}" },
		{ "{\"value\":[{\"ResourceID\":1,\"Model\":\"m1\"},{\"ResourceID\":2,\"Model\":\"m2\"}],"
		  "\"@odata.nextLink\":\"SMS_G_System_COMPUTER_SYSTEM?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceID\":3,\"Model\":\"m3\"},{\"ResourceID\":4,\"Model\":\"m4\"}]}",
		  "{\"value\":[{\"ResourceID\":5,\"Model\":\"m5\"}]}" },
		{ "{\"value\":[{\"ResourceID\":1,\"SerialNumber\":\"n1\"},{\"ResourceID\":2,\"SerialNumber\":\"n2\"}],"
		  "\"@odata.nextLink\":\"SMS_G_System_PC_BIOS?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceID\":3,\"SerialNumber\":\"n3\"},{\"ResourceID\":4,\"SerialNumber\":\"n4\"}]}",
		  "{\"value\":[{\"ResourceID\":5,\"SerialNumber\":\"n5\"}]}" },
		{ "{\"value\":[{\"ResourceID\":2},{\"ResourceID\":3}],"
		  "\"@odata.nextLink\":\"SMS_FullCollectionMembership?$skiptoken=2\"}",
		  "{\"value\":[{\"ResourceID\":5},{\"ResourceID\":7}]}",
		  EMPTY },
	};
	static const char *const names[6] = {
		"SMS_R_System", "SMS_CombinedDeviceResources", "SMS_Client_ComanagementState",
		"SMS_G_System_COMPUTER_SYSTEM", "SMS_G_System_PC_BIOS", "SMS_FullCollectionMembership",
	};
	for (int c = 0; c < 6; c++)
		for (int p = 0; p < 3; p++)
			ok(names[c], pages[c][p]);

	struct cmb_site_read_stats stats;
	assert_int_equal(read_devices(&stats), 0);
	assert_string_equal(fx.devices.data, "2 PC2 s2 m2 n2\n3 PC3 s3 m3 n3\n5 PC5 s5 m5 n5\n");
	assert_int_equal(stats.devices, 3);
	assert_int_equal(stats.filtered, 2);
	assert_int_equal(stats.pages, 18);
	assert_int_equal(budget()->used, 0);
	assert_string_equal(uris("SMS_FullCollectionMembership"),
		"/AdminService/wmi/SMS_FullCollectionMembership?$filter=CollectionID%20eq%20%27PS100012%27"
		"&$select=ResourceID&$orderby=ResourceID&$top=2\n"
		"/AdminService/wmi/SMS_FullCollectionMembership?$skiptoken=2\n"
		"/AdminService/wmi/SMS_FullCollectionMembership?$filter=CollectionID%20eq%20%27PS100012%27"
		"&$select=ResourceID&$orderby=ResourceID&$top=2&$skip=4\n");
	assert_string_equal(uris("SMS_G_System_PC_BIOS"),
		"/AdminService/wmi/SMS_G_System_PC_BIOS?$select=ResourceID,SerialNumber&$orderby=ResourceID&$top=2\n"
		"/AdminService/wmi/SMS_G_System_PC_BIOS?$skiptoken=2\n"
		"/AdminService/wmi/SMS_G_System_PC_BIOS?$select=ResourceID,SerialNumber&$orderby=ResourceID&$top=2"
		"&$skip=4\n");
	assert_all_served();
	close_fx();
}

/* An empty collection reads every class and passes no device on. */
static void test_empty_collection(void **state)
{
	open_with("PS100012", 0, NULL);
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1},{\"ResourceId\":2}],\"@odata.nextLink\":\"SMS_R_System?p=2\"}");
	ok("SMS_R_System", EMPTY);
	empty_secondaries();
	ok("SMS_FullCollectionMembership", EMPTY);
	struct cmb_site_read_stats stats;
	assert_error(read_devices(&stats), 0, "");
	assert_int_equal(fx.devices.len, 0);
	assert_int_equal(stats.devices, 0);
	assert_int_equal(stats.filtered, 2);
	assert_all_served();
	close_fx();
}

/* Collections are looked up by key (one window); sites are listed until an empty window. */
#define COLL_URI(id) "/AdminService/wmi/SMS_Collection?$filter=CollectionID%20eq%20%27" id "%27&$top=2\n"
#define SITE_URI "/AdminService/wmi/SMS_Site?$top=2\n"
#define SITE_URI2 "/AdminService/wmi/SMS_Site?$top=2&$skip=2\n"
#define SITE_URI3 "/AdminService/wmi/SMS_Site?$top=2&$skip=3\n"

static void test_read_collections(void **state)
{
	open_with(NULL, 0, NULL);
	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"PS100012\",\"Name\":\"Finance laptops\","
	   "\"Comment\":\"all of finance\",\"CollectionType\":2,\"MemberCount\":42,\"LimitToCollectionID\":\"SMS00001\","
	   "\"LastChangeTime\":\"2026-11-20T08:12:00.243Z\"}]}");
	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"PS100013\",\"Name\":\"Kiosks\",\"Comment\":null,"
	   "\"CollectionType\":\"2\",\"MemberCount\":0,\"LimitToCollectionID\":\"SMS00001\","
	   "\"LastChangeTime\":\"20260104100000.000000+000\"}]}");
	/* the top site is the one reporting to nobody; a retried page on the way */
	script("SMS_Site", (struct fx_reply){ .status = 503, .retry_after = "0", .body = "" });
	ok("SMS_Site", "{\"value\":[{\"SiteCode\":\"PS1\",\"SiteName\":\"Contoso Primary Site\",\"ReportingSiteCode\":\"CAS\"},"
	   "{\"SiteCode\":\"CAS\",\"SiteName\":\"Contoso Central\",\"ReportingSiteCode\":\"\"}]}");
	ok("SMS_Site", "{\"value\":[{\"SiteCode\":\"PS2\",\"SiteName\":\"Contoso Europe\",\"ReportingSiteCode\":\"CAS\"}]}");
	ok("SMS_Site", EMPTY);

	const char *ids[] = { "PS100012", "PS100013" };
	struct cmb_site_collection *colls = NULL;
	assert_int_equal(cmb_site_adminservice.read_collections(fx.st, ids, 2, &colls), 0);
	assert_non_null(colls);
	assert_string_equal(colls[0].collection_id, "PS100012");
	assert_string_equal(colls[0].name, "Finance laptops");
	assert_string_equal(colls[0].comment, "all of finance");
	assert_int_equal(colls[0].member_count, 42);
	assert_string_equal(colls[0].limit_to, "SMS00001");
	assert_string_equal(colls[0].last_change, "2026-11-20T08:12:00Z");
	assert_string_equal(colls[0].hierarchy_id, "CAS");
	assert_string_equal(colls[0].hierarchy_name, "Contoso Central");
	assert_string_equal(colls[1].collection_id, "PS100013");
	assert_string_equal(colls[1].name, "Kiosks");
	assert_null(colls[1].comment);
	assert_int_equal(colls[1].member_count, 0);
	/* a DMTF time and a CollectionType as a numeric string read as the others */
	assert_string_equal(colls[1].last_change, "2026-01-04T10:00:00Z");
	assert_string_equal(colls[1].hierarchy_id, "CAS");
	assert_string_equal(colls[1].hierarchy_name, "Contoso Central");
	assert_string_equal(uris("SMS_Collection"), COLL_URI("PS100012") COLL_URI("PS100013"));
	assert_string_equal(uris("SMS_Site"), SITE_URI SITE_URI SITE_URI2 SITE_URI3);
	assert_int_equal(budget()->used, 1);
	assert_all_served();
	for (int i = 0; i < 2; i++)
		cmb_site_collection_clear(&colls[i]);
	free(colls);

	/* two sites reporting to nobody: named after the connector's own site (PS1) */
	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"PS100012\",\"Name\":\"F\",\"CollectionType\":2}]}");
	ok("SMS_Site", "{\"value\":[{\"SiteCode\":\"PS1\",\"SiteName\":\"Contoso Primary Site\",\"ReportingSiteCode\":null},"
	   "{\"SiteCode\":\"PS9\",\"SiteName\":\"Other\"}]}");
	ok("SMS_Site", EMPTY);
	assert_int_equal(cmb_site_adminservice.read_collections(fx.st, ids, 1, &colls), 0);
	assert_string_equal(colls[0].hierarchy_id, "PS1");
	assert_string_equal(colls[0].hierarchy_name, "Contoso Primary Site");
	assert_int_equal(colls[0].member_count, -1);
	assert_null(colls[0].limit_to);
	cmb_site_collection_clear(&colls[0]);
	free(colls);

	/* no ids: no request */
	colls = (void *)&colls;
	assert_int_equal(cmb_site_adminservice.read_collections(fx.st, ids, 0, &colls), 0);
	assert_null(colls);
	assert_all_served();
	close_fx();
}

static void test_collection_errors(void **state)
{
	struct cmb_site_collection *colls = (void *)0x1;
	open_with(NULL, 0, NULL);

	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"PS100012\",\"Name\":\"F\",\"CollectionType\":2}]}");
	ok("SMS_Collection", EMPTY);
	const char *missing[] = { "PS100012", "PS100099" };
	int rc = cmb_site_adminservice.read_collections(fx.st, missing, 2, &colls);
	assert_error(rc, CMB_ENOTFOUND, "collection PS100099 is not on the site");
	assert_ptr_equal(colls, (void *)0x1);
	assert_string_equal(uris("SMS_Site"), "");

	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"PS100013\",\"Name\":\"Users\",\"CollectionType\":1}]}");
	const char *user[] = { "PS100013" };
	rc = cmb_site_adminservice.read_collections(fx.st, user, 1, &colls);
	assert_error(rc, CMB_EINVAL, "collection PS100013 is a user collection; tenant attach targets device collections");
	assert_ptr_equal(colls, (void *)0x1);

	/* a site that ignores $filter is caught, not trusted */
	ok("SMS_Collection", "{\"value\":[{\"CollectionID\":\"SMS00001\",\"CollectionType\":2}]}");
	rc = cmb_site_adminservice.read_collections(fx.st, user, 1, &colls);
	assert_error(rc, CMB_EPROTO, "SMS_Collection PS100013: site returned collection 'SMS00001'");
	assert_all_served();
	close_fx();
}

/* ---- what the site has: $metadata, refusals, value forms ------------- */

/* A $metadata document like the AdminService's; old: a site without BuildExt, AADDeviceID, co-management. */
static char *csdl(int old)
{
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	cmb_buf_addstr(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
		       "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
		       "<edmx:DataServices><Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
		       "<EntityType Name=\"SMS_R_System\"><Key><PropertyRef Name=\"ResourceId\"/></Key>"
		       "<Property Name=\"ResourceId\" Type=\"Edm.Int64\" Nullable=\"false\"/>"
		       "<Property Name=\"Name\" Type=\"Edm.String\"/><Property Name=\"Client\" Type=\"Edm.Int64\"/>"
		       "<Property Name=\"Obsolete\" Type=\"Edm.Int64\"/><Property Name=\"Decommissioned\" Type=\"Edm.Int64\"/>"
		       "<Property Name=\"Active\" Type=\"Edm.Int64\"/><Property Name=\"SMSUniqueIdentifier\" Type=\"Edm.String\"/>"
		       "<Property Name=\"HardwareID\" Type=\"Edm.String\"/><Property Name=\"SMBIOSGUID\" Type=\"Edm.String\"/>"
		       "<Property Name=\"AADTenantID\" Type=\"Edm.String\"/>"
		       "<Property Name=\"OperatingSystemNameandVersion\" Type=\"Edm.String\"/>"
		       "<Property Name=\"Build\" Type=\"Edm.String\"/>"
		       "<Property Name=\"ResourceDomainORWorkgroup\" Type=\"Edm.String\"/>");
	if (!old)
		cmb_buf_addstr(&b, "<Property Name=\"AADDeviceID\" Type=\"Edm.String\"/>"
			       "<Property Name=\"BuildExt\" Type=\"Edm.String\"/>");
	cmb_buf_addstr(&b, "</EntityType>"
		       "<EntityType Name=\"SMS_CombinedDeviceResources\"><Key><PropertyRef Name=\"ResourceID\"/></Key>"
		       "<Property Name=\"ResourceID\" Type=\"Edm.Int64\"/><Property Name=\"SiteCode\" Type=\"Edm.String\"/>"
		       "<Property Name=\"LastPolicyRequest\" Type=\"Edm.DateTimeOffset\"/></EntityType>"
		       "<EntityType Name=\"SMS_G_System_COMPUTER_SYSTEM\"><Key><PropertyRef Name=\"GroupID\"/>"
		       "<PropertyRef Name=\"ResourceID\"/></Key><Property Name=\"GroupID\" Type=\"Edm.Int64\"/>"
		       "<Property Name=\"ResourceID\" Type=\"Edm.Int64\"/><Property Name=\"Model\" Type=\"Edm.String\"/>"
		       "<Property Name=\"Manufacturer\" Type=\"Edm.String\"/></EntityType>"
		       "<EntityType Name=\"SMS_G_System_PC_BIOS\"><Key><PropertyRef Name=\"ResourceID\"/></Key>"
		       "<Property Name=\"ResourceID\" Type=\"Edm.Int64\"/><Property Name=\"SerialNumber\" Type=\"Edm.String\"/>"
		       "</EntityType>");
	if (!old)
		cmb_buf_addstr(&b, "<EntityType Name=\"SMS_Client_ComanagementState\"><Key><PropertyRef Name=\"ResourceID\"/>"
			       "</Key><Property Name=\"ResourceID\" Type=\"Edm.Int64\"/>"
			       "<Property Name=\"MDMEnrolled\" Type=\"Edm.Boolean\"/>"
			       "<Property Name=\"MDMWorkloads\" Type=\"Edm.Int64\"/></EntityType>");
	cmb_buf_addstr(&b, "<EntityContainer Name=\"AdminService\">"
		       "<EntitySet Name=\"SMS_R_System\" EntityType=\"AdminService.SMS_R_System\"/>"
		       "<EntitySet Name=\"SMS_CombinedDeviceResources\" EntityType=\"AdminService.SMS_CombinedDeviceResources\"/>"
		       "<EntitySet Name=\"SMS_G_System_COMPUTER_SYSTEM\" EntityType=\"AdminService.SMS_G_System_COMPUTER_SYSTEM\"/>"
		       "<EntitySet Name=\"SMS_G_System_PC_BIOS\" EntityType=\"AdminService.SMS_G_System_PC_BIOS\"/>");
	if (!old)
		cmb_buf_addstr(&b, "<EntitySet Name=\"SMS_Client_ComanagementState\" "
			       "EntityType=\"AdminService.SMS_Client_ComanagementState\"/>");
	cmb_buf_addstr(&b, "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
	return cmb_buf_detach(&b, NULL);
}

#define OLD_SYS_URI "/AdminService/wmi/SMS_R_System?$select=ResourceId,Name,Client,Obsolete,Decommissioned,Active," \
	"SMSUniqueIdentifier,HardwareID,SMBIOSGUID,AADTenantID,OperatingSystemNameandVersion,Build," \
	"ResourceDomainORWorkgroup&$orderby=ResourceId&$top=2\n"

/*
 * The site's $metadata decides what is asked for: an older site without
 * BuildExt, AADDeviceID and the co-management class is read without them,
 * each reported once per cycle by name; what was learnt is kept and used
 * again without reading $metadata for a day.
 */
static void test_metadata_old_site(void **state)
{
	char *doc = csdl(1);
	open_with(NULL, 0, NULL);
	fx_server_reset(&srv);
	always("$metadata", (struct fx_reply){ .body = doc, .content_type = "application/xml" });
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"}]}");
	ok("SMS_R_System", EMPTY);
	ok("SMS_CombinedDeviceResources", EMPTY);
	ok("SMS_G_System_COMPUTER_SYSTEM", EMPTY);
	ok("SMS_G_System_PC_BIOS", EMPTY);
	fx_log_capture(dir, CMB_LOG_WARN);
	assert_int_equal(read_devices(NULL), 0);
	char *log = fx_log_take();
	assert_string_equal(fx.devices.data, "1 A - - -\n");
	assert_string_equal(uris("SMS_R_System"), OLD_SYS_URI
			    "/AdminService/wmi/SMS_R_System?$select=ResourceId,Name,Client,Obsolete,Decommissioned,Active,"
			    "SMSUniqueIdentifier,HardwareID,SMBIOSGUID,AADTenantID,OperatingSystemNameandVersion,Build,"
			    "ResourceDomainORWorkgroup&$orderby=ResourceId&$top=2&$skip=1\n");
	assert_string_equal(uris("SMS_Client_ComanagementState"), "");
	assert_int_equal(fx_count(log, "has no property AADDeviceID"), 1);
	assert_int_equal(fx_count(log, "has no property BuildExt"), 1);
	assert_int_equal(fx_count(log, "has no class SMS_Client_ComanagementState"), 1);
	/* the CDR in this document has only SiteCode and LastPolicyRequest: every other property is reported */
	assert_int_equal(fx_count(log, "SMS_CombinedDeviceResources has no property IsBlocked"), 1);
	free(log);
	assert_string_equal(uris("$metadata"), "/AdminService/wmi/$metadata\n");

	/* kept in the state: a new run reads with it and asks for no $metadata within the day */
	char *kept = cmb_site_adminservice.learnt_save(fx.st);
	assert_non_null(kept);
	assert_null(cmb_site_adminservice.learnt_save(fx.st)); /* nothing new since */
	close_fx();
	open_with(NULL, 0, NULL);
	fx_server_reset(&srv);
	assert_int_equal(cmb_site_adminservice.learnt_load(fx.st, kept), 0);
	ok("SMS_R_System", EMPTY);
	ok("SMS_CombinedDeviceResources", EMPTY);
	ok("SMS_G_System_COMPUTER_SYSTEM", EMPTY);
	ok("SMS_G_System_PC_BIOS", EMPTY);
	assert_int_equal(read_devices(NULL), 0);
	assert_string_equal(uris("SMS_R_System"), OLD_SYS_URI);
	assert_string_equal(uris("$metadata"), "");
	assert_all_served();
	free(kept);
	free(doc);
	close_fx();
}

/* A current site's document: every property, the co-management class read. */
static void test_metadata_current_site(void **state)
{
	char *doc = csdl(0);
	open_with(NULL, 0, NULL);
	fx_server_reset(&srv);
	always("$metadata", (struct fx_reply){ .body = doc, .content_type = "application/xml" });
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\",\"BuildExt\":\"10.0.22631.4460\"}]}");
	ok("SMS_R_System", EMPTY);
	ok("SMS_CombinedDeviceResources", EMPTY);
	ok("SMS_Client_ComanagementState", "{\"value\":[{\"ResourceID\":1,\"MDMWorkloads\":\"4294967297\"}]}");
	ok("SMS_Client_ComanagementState", EMPTY);
	ok("SMS_G_System_COMPUTER_SYSTEM", EMPTY);
	ok("SMS_G_System_PC_BIOS", EMPTY);
	assert_int_equal(read_devices(NULL), 0);
	assert_string_equal(uris("SMS_Client_ComanagementState"),
			    "/AdminService/wmi/SMS_Client_ComanagementState?$select=ResourceID,MDMEnrolled,MDMWorkloads"
			    "&$orderby=ResourceID&$top=2\n"
			    "/AdminService/wmi/SMS_Client_ComanagementState?$select=ResourceID,MDMEnrolled,MDMWorkloads"
			    "&$orderby=ResourceID&$top=2&$skip=1\n");
	assert_all_served();
	free(doc);
	close_fx();
}

#define BUILDEXT_400 "{\"error\":{\"code\":\"\",\"message\":\"The query specified in the URI is not valid. " \
	"Could not find a property named 'BuildExt' on type 'AdminService.SMS_R_System'.\"}}"

/*
 * No $metadata, and the site refuses a property: an optional one is dropped
 * and the read starts again without it (nothing was handed on yet); a
 * required one fails the read, naming the class and the property.
 */
static void test_refused_property(void **state)
{
	open_with(NULL, 0, NULL);
	script("SMS_R_System", (struct fx_reply){ .status = 400, .body = BUILDEXT_400 });
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":4,\"Name\":\"D\"}]}");
	ok("SMS_R_System", EMPTY);
	/* the first attempt's other classes may have been asked already: they answer again */
	for (int i = 1; i < 5; i++) {
		ok(classes[i], EMPTY);
		ok(classes[i], EMPTY);
	}
	fx_log_capture(dir, CMB_LOG_WARN);
	assert_int_equal(read_devices(NULL), 0);
	char *log = fx_log_take();
	assert_string_equal(fx.devices.data, "4 D - - -\n");
	const char *u = uris("SMS_R_System");
	assert_non_null(strstr(u, ",Build,BuildExt,"));
	assert_int_equal(fx_count(u, "BuildExt"), 1);             /* asked once, then never again */
	assert_int_equal(fx_count(log, "refused BuildExt"), 1);
	free(log);
	char *kept = cmb_site_adminservice.learnt_save(fx.st);
	assert_non_null(strstr(kept, "\"BuildExt\":null"));
	free(kept);
	close_fx();

	open_with(NULL, 0, NULL);
	script("SMS_R_System", (struct fx_reply){ .status = 400, .body = "{\"error\":{\"code\":\"\",\"message\":\"Could "
		"not find a property named 'Name' on type 'AdminService.SMS_R_System'.\"}}" });
	for (int i = 1; i < 5; i++)
		always(classes[i], (struct fx_reply){ .body = EMPTY });
	assert_error(read_devices(NULL), CMB_EPROTO, "SMS_R_System: the site refuses SMS_R_System.Name (HTTP 400: ");
	assert_string_equal(fx.devices.len ? fx.devices.data : "", "");
	close_fx();
}

/* An optional class the site does not have (404): dropped, the read goes on without it. */
static void test_missing_optional_class(void **state)
{
	open_with(NULL, 0, NULL);
	/* the first attempt's first page, then the second attempt's pages */
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"}]}");
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"}]}");
	ok("SMS_R_System", EMPTY);
	always("SMS_CombinedDeviceResources", (struct fx_reply){ .body = EMPTY });
	always("SMS_G_System_COMPUTER_SYSTEM", (struct fx_reply){ .body = EMPTY });
	always("SMS_G_System_PC_BIOS", (struct fx_reply){ .body = EMPTY });
	script("SMS_Client_ComanagementState", (struct fx_reply){ .status = 404,
		.body = "{\"error\":{\"code\":\"404\",\"message\":\"Resource not found for the segment "
			"'SMS_Client_ComanagementState'.\"}}" });
	assert_int_equal(read_devices(NULL), 0);
	assert_string_equal(fx.devices.data, "1 A - - -\n");
	assert_int_equal(fx_count(uris("SMS_Client_ComanagementState"), "\n"), 1);
	assert_all_served();
	close_fx();
}

/* A nextLink to another origin is never followed: the read fails, nothing is taken as complete. */
static void test_foreign_next_link(void **state)
{
	char links[4][160];
	snprintf(links[0], sizeof(links[0]), "https://evil.example/AdminService/wmi/SMS_R_System?$skiptoken=1");
	snprintf(links[1], sizeof(links[1]), "//127.0.0.2:%d/AdminService/wmi/SMS_R_System", srv.port);
	snprintf(links[2], sizeof(links[2]), "http://127.0.0.1:%d/AdminService/wmi/SMS_R_System", srv.port);
	snprintf(links[3], sizeof(links[3]), "https://127.0.0.1:1/AdminService/wmi/SMS_R_System");
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char page[800];
		const char *link = links[i];
		snprintf(page, sizeof(page), "{\"value\":[{\"ResourceId\":1}],\"@odata.nextLink\":\"%s\"}", link);
		open_with(NULL, 0, NULL);
		ok("SMS_R_System", page);
		for (int c = 1; c < 5; c++)
			always(classes[c], (struct fx_reply){ .body = EMPTY });
		assert_error(read_devices(NULL), CMB_EPROTO, "outside the site's origin");
		assert_string_equal(fx.devices.len ? fx.devices.data : "", "");
		close_fx();
	}
}

/*
 * A site that caps its pages below $top and sends no nextLink: a short
 * window does not end the class, only an empty one does.
 */
static void test_short_windows(void **state)
{
	open_with(NULL, 0, NULL);
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"}]}");
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":2,\"Name\":\"B\"}]}");
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":3,\"Name\":\"C\"}]}");
	ok("SMS_R_System", EMPTY);
	empty_secondaries();
	assert_int_equal(read_devices(NULL), 0);
	assert_string_equal(fx.devices.data, "1 A - - -\n2 B - - -\n3 C - - -\n");
	assert_string_equal(uris("SMS_R_System"), SYS_URI "\n" SYS_URI "&$skip=1\n" SYS_URI "&$skip=2\n"
			    SYS_URI "&$skip=3\n");
	assert_all_served();
	close_fx();
}

static int on_values(void *ctx, const struct cmb_site_device *d)
{
	struct cmb_buf *b = ctx;
	cmb_buf_printf(b, "%" PRIu32 " client=%d obsolete=%d active=%d isclient=%d blocked=%d policy=%s active_time=%s "
		       "workloads=%" PRId64 " mdm=%d\n", d->resource_id, d->client, d->obsolete, d->active, d->is_client,
		       d->is_blocked, S(d->last_policy_request), S(d->last_active_time), d->mdm_workloads,
		       d->mdm_enrolled);
	return 0;
}

/* Values in every form a site may send: DMTF or ISO times (the 1970/1980 "never" as none), 0/1 or booleans, numeric strings. */
static void test_value_forms(void **state)
{
	open_with(NULL, 0, NULL);
	ok("SMS_R_System", "{\"value\":[{\"ResourceId\":1,\"Client\":\"1\",\"Obsolete\":false,\"Active\":1},"
	   "{\"ResourceId\":2,\"Client\":1,\"Obsolete\":0,\"Active\":true}]}");
	ok("SMS_R_System", EMPTY);
	ok("SMS_CombinedDeviceResources", "{\"value\":[{\"ResourceID\":1,\"IsClient\":1,\"IsBlocked\":\"false\","
	   "\"LastPolicyRequest\":\"20261128101502.000000+060\",\"LastActiveTime\":\"1980-01-01T06:00:00Z\"},"
	   "{\"ResourceID\":2,\"IsClient\":true,\"IsBlocked\":0,\"LastPolicyRequest\":\"2026-11-28T09:15:02.5930000Z\","
	   "\"LastActiveTime\":\"19700101000000.000000+000\"}]}");
	ok("SMS_CombinedDeviceResources", EMPTY);
	ok("SMS_Client_ComanagementState", "{\"value\":[{\"ResourceID\":1,\"MDMEnrolled\":\"True\","
	   "\"MDMWorkloads\":\"8193\"},{\"ResourceID\":2,\"MDMEnrolled\":1,\"MDMWorkloads\":12543}]}");
	ok("SMS_Client_ComanagementState", EMPTY);
	ok("SMS_G_System_COMPUTER_SYSTEM", EMPTY);
	ok("SMS_G_System_PC_BIOS", EMPTY);
	cmb_error_clear();
	assert_int_equal(cmb_site_adminservice.read_devices(fx.st, on_values, &fx.devices, NULL), 0);
	assert_string_equal(fx.devices.data,
		"1 client=1 obsolete=0 active=1 isclient=1 blocked=0 policy=2026-11-28T09:15:02Z active_time=- "
		"workloads=8193 mdm=1\n"
		"2 client=1 obsolete=0 active=1 isclient=1 blocked=0 policy=2026-11-28T09:15:02Z active_time=- "
		"workloads=12543 mdm=1\n");
	assert_all_served();
	close_fx();
}


/* ---- operations (operations.c) ------------------------------------------ */

static void *ops_open(void)
{
	void *ost = NULL;
	assert_int_equal(cmb_site_adminservice.ops_open(&ost, fx.st), 0);
	return ost;
}

/* Methods answer 201 (or 200); out-parameters in any casing; a refusal is CMB_EHTTP; an unknown outcome is not. */
static void test_initiate_replies(void **state)
{
	static const uint32_t ids[] = { 16777220, 16777221 };
	int64_t opid = -1;
	open_with(NULL, 1, NULL);
	void *ost = ops_open();
	const char *route_name = "SMS_ClientOperation.InitiateClientOperation";
	script(route_name, (struct fx_reply){ .status = 201,
		.body = "{\"@odata.context\":\"x\",\"ReturnValue\":0,\"OperationID\":16777301}" });
	assert_int_equal(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), 0);
	assert_int_equal(opid, 16777301);
	script(route_name, (struct fx_reply){ .status = 200, .body = "{\"returnvalue\":0,\"operationid\":\"16777302\"}" });
	assert_int_equal(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), 0);
	assert_int_equal(opid, 16777302);
	script(route_name, (struct fx_reply){ .status = 201, .body = "{\"value\":[{\"ReturnValue\":0,\"OperationID\":7}]}" });
	assert_int_equal(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), 0);
	assert_int_equal(opid, 7);
	/* refused: nothing was created */
	script(route_name, (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":2147749890}" });
	assert_error(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), CMB_EHTTP,
		     "the site refused it (ReturnValue 2147749890)");
	script(route_name, (struct fx_reply){ .status = 400, .body = "{\"error\":{\"code\":\"400\",\"message\":\"bad\"}}" });
	assert_error(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), CMB_EHTTP, "HTTP 400");
	script(route_name, (struct fx_reply){ .status = 404, .body = "{\"error\":{\"code\":\"404\",\"message\":\"ODataParameterReader\"}}" });
	assert_int_equal(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), CMB_EHTTP);
	/* 2xx without an OperationID, or a 500: it may exist; never sent again by the adapter */
	script(route_name, (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":0}" });
	assert_error(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), CMB_ENETWORK,
		     "no OperationID; the operation may exist");
	script(route_name, (struct fx_reply){ .status = 500, .body = "" });
	assert_error(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), CMB_ENETWORK,
		     "(not retried: the request is not safe to send twice)");
	/* throttled: the site did not take it, so it is sent again */
	script(route_name, (struct fx_reply){ .status = 503, .retry_after = "0", .body = "" });
	script(route_name, (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":0,\"OperationID\":9}" });
	assert_int_equal(cmb_site_adminservice.initiate_operation(ost, 8, "SMS00001", ids, 2, &opid), 0);
	assert_int_equal(opid, 9);
	assert_all_served();
	assert_int_equal(fx_count(uris(route_name), "\n"), 10);
	cmb_site_adminservice.ops_close(ost);
	close_fx();
}

/* BlockClients: any 2xx is success, with or without a ReturnValue (one other than 0 is a refusal). */
static void test_block_replies(void **state)
{
	static const uint32_t ids[] = { 16777220 };
	open_with(NULL, 0, NULL);
	void *ost = ops_open();
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":0}" });
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 201, .body = "{\"@odata.context\":\"x\"}" });
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 204, .body = "" });
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 200, .body = "" });
	for (int i = 0; i < 4; i++)
		assert_int_equal(cmb_site_adminservice.block_clients(ost, ids, 1), 0);
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":5}" });
	assert_error(cmb_site_adminservice.block_clients(ost, ids, 1), CMB_EHTTP, "ReturnValue 5");
	/* idempotent: a 500 is retried */
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 500, .body = "" });
	script("SMS_Collection.BlockClients", (struct fx_reply){ .status = 201, .body = "{\"ReturnValue\":0}" });
	assert_int_equal(cmb_site_adminservice.block_clients(ost, ids, 1), 0);
	assert_all_served();
	cmb_site_adminservice.ops_close(ost);
	close_fx();
}

/*
 * Finding operations again: the status class by Type, kept when in the
 * window and by this account, each completed from its SMS_ClientOperation
 * row (collection, targets when listed).
 */
static void test_find_operations(void **state)
{
	open_with(NULL, 1, NULL);        /* basic: the account is "svc" */
	void *ost = ops_open();
	ok("SMS_ClientOperationStatus",
	   "{\"value\":[{\"ID\":11,\"Type\":8,\"RequestedTime\":\"2026-12-01T10:00:00Z\",\"CreatedBy\":\"CONTOSO\\\\svc\"},"
	   "{\"ID\":12,\"Type\":8,\"RequestedTime\":\"2026-12-01T10:01:00.5Z\",\"CreatedBy\":\"CONTOSO\\\\someone\"},"
	   "{\"ID\":13,\"Type\":8,\"RequestedTime\":\"2026-12-01T09:00:00Z\",\"CreatedBy\":\"svc@contoso.com\"},"
	   "{\"ID\":14,\"Type\":8,\"RequestedTime\":\"20261201100200.000000+000\"},"
	   "{\"ID\":15,\"Type\":8,\"RequestedTime\":\"2026-12-01T10:03:00Z\",\"CreatedBy\":\"SVC\"},"
	   "{\"ID\":16,\"Type\":8,\"RequestedTime\":\"2026-12-01T10:04:00Z\",\"CreatedBy\":\"CONTOSO\\\\svc\"}]}");
	ok("SMS_ClientOperationStatus", EMPTY);
	ok("SMS_ClientOperation", "{\"value\":[{\"ID\":11,\"CollectionID\":\"SMS00001\",\"TargetResourceIDs\":[16777221,16777220]}]}");
	ok("SMS_ClientOperation", "{\"value\":[{\"ID\":14,\"CollectionID\":\"sms00001\"}]}");
	ok("SMS_ClientOperation", "{\"value\":[{\"ID\":15,\"CollectionID\":\"PS100012\",\"TargetResourceIDs\":[1]}]}");
	ok("SMS_ClientOperation", "{\"value\":[{\"ID\":16,\"CollectionID\":\"SMS00001\",\"TargetResourceIDs\":[]}]}");
	int64_t since, until;
	cmb_time_parse("2026-12-01T09:55:00Z", &since);
	cmb_time_parse("2026-12-01T10:05:00Z", &until);
	const struct cmb_site_operation_query q = { .type = 8, .collection_id = "SMS00001", .since = since, .until = until };
	struct cmb_site_operation *ops = NULL;
	size_t n = 0;
	assert_int_equal(cmb_site_adminservice.find_operations(ost, &q, &ops, &n), 0);
	/* 12: another account; 13: before the window; 15: another collection */
	assert_int_equal(n, 3);
	assert_int_equal(ops[0].id, 11);
	assert_int_equal(ops[0].has_targets, 1);
	assert_int_equal(ops[0].n_targets, 2);
	assert_int_equal(ops[0].targets[0], 16777221);
	assert_int_equal(ops[1].id, 14);           /* no CreatedBy: kept; a DMTF time */
	assert_int_equal(ops[1].has_targets, 0);   /* not listed */
	assert_int_equal(ops[1].requested, since + 420);
	assert_int_equal(ops[2].id, 16);
	assert_int_equal(ops[2].has_targets, 1);   /* listed, and empty */
	assert_int_equal(ops[2].n_targets, 0);
	cmb_site_operations_free(ops, n);
	assert_string_equal(uris("SMS_ClientOperationStatus"),
			    "/AdminService/wmi/SMS_ClientOperationStatus?$filter=Type%20eq%208&$top=1000\n"
			    "/AdminService/wmi/SMS_ClientOperationStatus?$filter=Type%20eq%208&$top=1000&$skip=6\n");
	assert_non_null(strstr(uris("SMS_ClientOperation"), "/AdminService/wmi/SMS_ClientOperation?$filter=ID%20eq%2011&$top=1000\n"));
	assert_all_served();

	/* the status class refuses the Type filter for good: a final error for the relay to judge */
	script("SMS_ClientOperationStatus", (struct fx_reply){ .status = 400, .body = "{\"error\":{\"code\":\"\",\"message\":"
		"\"Could not find a property named 'Type'\"}}" });
	assert_error(cmb_site_adminservice.find_operations(ost, &q, &ops, &n), CMB_EHTTP, "finding operations of Type 8: ");
	cmb_site_adminservice.ops_close(ost);
	close_fx();
}

/* An operation's status read by ID; none yet is CMB_ENOTFOUND; counts in any value form. */
static void test_operation_status(void **state)
{
	open_with(NULL, 0, NULL);
	void *ost = ops_open();
	struct cmb_site_operation_status os;
	ok("SMS_ClientOperationStatus", "{\"value\":[{\"ID\":7,\"Type\":8,\"State\":1,\"TotalClients\":\"3\","
	   "\"CompletedClients\":2,\"FailedClients\":0,\"OfflineClients\":1,\"UnknownClients\":0,\"IsExpired\":false}]}");
	assert_int_equal(cmb_site_adminservice.operation_status(ost, 7, &os), 0);
	assert_int_equal(os.type, 8);
	assert_int_equal(os.total, 3);
	assert_int_equal(os.completed, 2);
	assert_int_equal(os.offline, 1);
	assert_int_equal(os.expired, 0);
	ok("SMS_ClientOperationStatus", EMPTY);
	assert_int_equal(cmb_site_adminservice.operation_status(ost, 8, &os), CMB_ENOTFOUND);
	ok("SMS_CN_ClientStatus", "{\"value\":[{\"ResourceID\":5},{\"ResourceID\":\"3\"}]}");
	ok("SMS_CN_ClientStatus", EMPTY);
	uint32_t *ids = NULL;
	size_t n = 0;
	/* a page a call: the first page leaves the read open, the empty window ends it */
	assert_int_equal(cmb_site_adminservice.offline_clients(ost, &ids, &n), 0);
	assert_null(ids);
	assert_int_equal(n, 0);
	assert_int_equal(cmb_site_adminservice.offline_clients(ost, &ids, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 5);
	free(ids);
	assert_all_served();
	/* the next call begins a new read; a failed page drops it, naming the page */
	ok("SMS_CN_ClientStatus", "{\"value\":[{\"ResourceID\":9}]}");
	script("SMS_CN_ClientStatus", (struct fx_reply){ .status = 400, .body = "{\"error\":{\"code\":\"\",\"message\":"
		"\"bad\"}}" });
	ids = NULL;
	n = 0;
	assert_int_equal(cmb_site_adminservice.offline_clients(ost, &ids, &n), 0);
	assert_error(cmb_site_adminservice.offline_clients(ost, &ids, &n), CMB_EHTTP, "reading the offline clients (page 2): ");
	assert_null(ids);
	assert_all_served();
	/* and the call after the failure starts over from the first page */
	ok("SMS_CN_ClientStatus", EMPTY);
	assert_int_equal(cmb_site_adminservice.offline_clients(ost, &ids, &n), 1);
	assert_null(ids);
	assert_int_equal(n, 0);
	assert_all_served();
	cmb_site_adminservice.ops_close(ost);
	close_fx();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_retries_500),
		cmocka_unit_test(test_throttled_retry_after),
		cmocka_unit_test(test_reset_mid_body),
		cmocka_unit_test(test_truncated_json_is_final),
		cmocka_unit_test(test_unauthorized_is_final),
		cmocka_unit_test(test_retries_exhausted),
		cmocka_unit_test(test_full_read_with_collection),
		cmocka_unit_test(test_empty_collection),
		cmocka_unit_test(test_read_collections),
		cmocka_unit_test(test_collection_errors),
		cmocka_unit_test(test_metadata_old_site),
		cmocka_unit_test(test_metadata_current_site),
		cmocka_unit_test(test_refused_property),
		cmocka_unit_test(test_missing_optional_class),
		cmocka_unit_test(test_foreign_next_link),
		cmocka_unit_test(test_short_windows),
		cmocka_unit_test(test_value_forms),
		cmocka_unit_test(test_initiate_replies),
		cmocka_unit_test(test_block_replies),
		cmocka_unit_test(test_find_operations),
		cmocka_unit_test(test_operation_status),
	};
	return cmocka_run_group_tests(tests, server_start, server_stop);
}
