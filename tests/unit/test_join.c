/*
 * test_join.c - the merge join driven by scripted cursors (no HTTP): each
 * class is a list of canned OData pages, buffered one page at a time the
 * way the AdminService cursor buffers them. Asserts the exact device
 * sequence, every field, and each ordering error.
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

#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/join.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#define MAX_PAGES 8
#define MAX_ROWS 64

/* A cursor over canned pages; fail_page (1-based) makes that page fail with CMB_ENETWORK. */
struct script {
	const char *pages[MAX_PAGES];    /* NULL-terminated */
	int fail_page;
	int page;                        /* pages fetched */
	struct cmb_odata_record *rows[MAX_ROWS];
	size_t n, next;
	size_t most_buffered;
	int ends;                        /* times the end was reported */
};

static int keep_row(void *ctx, struct cmb_odata_record *rec)
{
	struct script *s = ctx;
	assert_true(s->n < MAX_ROWS);
	s->rows[s->n++] = rec;
	return 0;
}

static int script_next(struct cmb_join_cursor *cur, struct cmb_odata_record **out)
{
	struct script *s = cur->ctx;
	while (s->next == s->n) {
		/* the buffered page is used up: drop it and fetch the next one */
		s->n = s->next = 0;
		if (!s->pages[s->page]) {
			s->ends++;
			*out = NULL;
			return 0;
		}
		s->page++;
		if (s->page == s->fail_page)
			return cmb_error_set(CMB_ENETWORK, "page %d: connection reset", s->page);
		struct cmb_odata_parser *p = NULL;
		assert_int_equal(cmb_odata_new(&p, "scripted page", 0, keep_row, s), 0);
		const char *page = s->pages[s->page - 1];
		assert_int_equal(cmb_odata_feed(p, page, strlen(page)), 0);
		assert_int_equal(cmb_odata_finish(p), 0);
		cmb_odata_free(p);
		if (s->n > s->most_buffered)
			s->most_buffered = s->n;
	}
	*out = s->rows[s->next];
	s->rows[s->next++] = NULL;
	return 0;
}

static void script_clear(struct script *s)
{
	for (size_t i = 0; i < s->n; i++)
		cmb_odata_record_free(s->rows[i]);
	s->n = s->next = 0;
}

struct run {
	struct cmb_as_schema schema;     /* the documented names */
	struct script sc[CMB_AS_NDEVICE];
	struct cmb_join_cursor cur[CMB_AS_NDEVICE];
	struct cmb_join_cursor *curp[CMB_AS_NDEVICE];
	struct script members;           /* the collection filter, used when filter is set */
	struct cmb_join_cursor members_cur;
	int filter;
	struct cmb_buf out;              /* one line per device */
	long stop_after;                 /* callback returns CMB_ECANCELED after this many; 0 never */
	long seen;
	struct cmb_join_stats stats;
};

static void run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	cmb_buf_init(&r->out, 1 << 20);
	cmb_as_schema_documented(&r->schema);
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		r->cur[i].next = script_next;
		r->cur[i].ctx = &r->sc[i];
		r->curp[i] = &r->cur[i];
	}
	r->members_cur.next = script_next;
	r->members_cur.ctx = &r->members;
}

static void run_clear(struct run *r)
{
	for (int i = 0; i < CMB_AS_NDEVICE; i++)
		script_clear(&r->sc[i]);
	cmb_as_schema_clear(&r->schema);
	script_clear(&r->members);
	cmb_buf_free(&r->out);
}

#define S(x) ((x) ? (x) : "-")

/* Every field of the device on one line, so a test can compare all of them at once. */
static int on_device(void *ctx, const struct cmb_site_device *d)
{
	struct run *r = ctx;
	if (r->stop_after && r->seen == r->stop_after)
		return cmb_error_set(CMB_ECANCELED, "stopped by the test");
	r->seen++;
	cmb_buf_printf(&r->out,
		       "%" PRIu32 " sys[%s %s %s %s %s %s %s %s %s %s %d %d %d %d]"
		       " cdr%d[%s %s %d %d %d %d %s %d %d %s %s %s %s]"
		       " co%d[%d %d %" PRId64 " %d %d] hw[%s %s %s]\n",
		       d->resource_id, S(d->name), S(d->sms_unique_id), S(d->hardware_id), S(d->smbios_guid),
		       S(d->aad_device_id), S(d->aad_tenant_id), S(d->os_name_version), S(d->build),
		       S(d->build_ext), S(d->domain), d->client, d->obsolete, d->decommissioned, d->active,
		       d->has_cdr, S(d->site_code), S(d->sms_id), d->is_client, d->is_active, d->is_blocked,
		       d->is_obsolete, S(d->client_version), d->client_active_status,
		       d->client_check_pass, S(d->last_policy_request), S(d->last_active_time),
		       S(d->device_os), S(d->device_os_build),
		       d->has_comgmt, d->mdm_enrolled, d->comgmt_policy_present, d->mdm_workloads,
		       d->hybrid_aad_joined, d->aad_joined,
		       S(d->manufacturer), S(d->model), S(d->serial_number));
	return 0;
}

static int run_join(struct run *r)
{
	cmb_error_clear();
	return cmb_join_run(&r->schema, r->curp, r->filter ? &r->members_cur : NULL, on_device, r, &r->stats);
}

#define EMPTY "{\"value\":[]}"
#define ABSENT_SYS "sys[- - - - - - - - - - -1 -1 -1 -1]"
#define ABSENT_REST "cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]"
#define ABSENT_REST_NO_HW "cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1]"

static void test_full_match(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceId\":16777220,\"Name\":\"PC-0001\",\"SMSUniqueIdentifier\":\"GUID:A1\","
		"\"HardwareID\":\"2:HW1\",\"SMBIOSGUID\":\"SB1\",\"AADDeviceID\":\"aad-1\",\"AADTenantID\":\"t-1\","
		"\"OperatingSystemNameandVersion\":\"Microsoft Windows NT Workstation 10.0\",\"Build\":\"10.0.22631\","
		"\"BuildExt\":\"10.0.22631.4460\",\"ResourceDomainORWorkgroup\":\"CONTOSO\",\"Client\":1,"
		"\"Obsolete\":0,\"Decommissioned\":0,\"Active\":1},"
		"{\"ResourceId\":16777221,\"Name\":\"PC-0002\",\"Client\":null,\"Obsolete\":1},"
		"{\"ResourceId\":4294967295,\"Name\":\"MAX\"}]}";
	r.sc[CMB_AS_CDR].pages[0] =
		"{\"value\":[{\"ResourceID\":16777220,\"SiteCode\":\"PS1\",\"SMSID\":\"GUID:A1\",\"IsClient\":true,"
		"\"IsActive\":true,\"IsBlocked\":false,\"IsObsolete\":false,\"IsDecommissioned\":false,"
		"\"ClientVersion\":\"5.00.9128.1000\",\"ClientActiveStatus\":1,\"ClientCheckPass\":2,"
		"\"LastPolicyRequest\":\"2026-11-28T09:15:02Z\",\"LastActiveTime\":\"2026-11-28T10:00:00Z\","
		"\"DeviceOS\":\"Microsoft Windows NT Workstation 10.0\",\"DeviceOSBuild\":\"10.0.22631.4460\"},"
		"{\"ResourceID\":16777221,\"SiteCode\":\"PS1\",\"IsClient\":false},"
		"{\"ResourceID\":4294967295,\"SiteCode\":\"PS1\"}]}";
	r.sc[CMB_AS_COMGMT].pages[0] =
		"{\"value\":[{\"ResourceID\":16777220,\"MDMEnrolled\":true,\"ComgmtPolicyPresent\":true,"
		"\"HybridAADJoined\":true,\"AADJoined\":false,\"MDMWorkloads\":8589934591},"
		"{\"ResourceID\":16777221,\"MDMEnrolled\":false},{\"ResourceID\":4294967295}]}";
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceID\":16777220,\"Manufacturer\":\"Contoso\",\"Model\":\"Surface 9\"},"
		"{\"ResourceID\":16777221,\"Manufacturer\":\"Fabrikam\",\"Model\":null},{\"ResourceID\":4294967295}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] =
		"{\"value\":[{\"ResourceID\":16777220,\"SerialNumber\":\"SN-1\"},"
		"{\"ResourceID\":16777221,\"SerialNumber\":\"SN-\xff\"},{\"ResourceID\":4294967295,\"SerialNumber\":\"SN-3\"}]}";

	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"16777220 sys[PC-0001 GUID:A1 2:HW1 SB1 aad-1 t-1 Microsoft Windows NT Workstation 10.0 10.0.22631 "
		"10.0.22631.4460 CONTOSO 1 0 0 1] cdr1[PS1 GUID:A1 1 1 0 0 5.00.9128.1000 1 2 2026-11-28T09:15:02Z "
		"2026-11-28T10:00:00Z Microsoft Windows NT Workstation 10.0 10.0.22631.4460] co1[1 1 8589934591 1 0] "
		"hw[Contoso Surface 9 SN-1]\n"
		"16777221 sys[PC-0002 - - - - - - - - - -1 1 -1 -1] cdr1[PS1 - 0 -1 -1 -1 - -1 -1 - - - -] "
		"co1[0 -1 -1 -1 -1] hw[Fabrikam - SN-\xff]\n"
		"4294967295 sys[MAX - - - - - - - - - -1 -1 -1 -1] cdr1[PS1 - -1 -1 -1 -1 - -1 -1 - - - -] "
		"co1[-1 -1 -1 -1 -1] hw[- - SN-3]\n");
	assert_int_equal(r.stats.devices, 3);
	assert_int_equal(r.stats.orphans, 0);
	assert_int_equal(r.stats.mismatches, 0);
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		assert_int_equal(r.stats.rows[i], 3);
		assert_int_equal(r.sc[i].ends, 1); /* every stream read to its end, once */
	}
	run_clear(&r);
}

static void test_missing_secondary(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"},{\"ResourceId\":2,\"Name\":\"B\"},{\"ResourceId\":3,\"Name\":\"C\"}]}";
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"ResourceID\":2,\"SiteCode\":\"PS1\"}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = EMPTY;
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = "{\"value\":[{\"ResourceID\":1,\"Model\":\"M1\"},{\"ResourceID\":3,\"Model\":\"M3\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":3,\"SerialNumber\":\"S3\"}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"1 sys[A - - - - - - - - - -1 -1 -1 -1] cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- M1 -]\n"
		"2 sys[B - - - - - - - - - -1 -1 -1 -1] cdr1[PS1 - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n"
		"3 sys[C - - - - - - - - - -1 -1 -1 -1] cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- M3 S3]\n");
	assert_int_equal(r.stats.orphans, 0);
	run_clear(&r);
}

static void test_orphans(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":10},{\"ResourceId\":20}]}";
	/* before the first, between, and after the last system row */
	r.sc[CMB_AS_CDR].pages[0] =
		"{\"value\":[{\"ResourceID\":5,\"SiteCode\":\"X\"},{\"ResourceID\":10,\"SiteCode\":\"A\"},"
		"{\"ResourceID\":15,\"SiteCode\":\"X\"},{\"ResourceID\":16,\"SiteCode\":\"X\"},"
		"{\"ResourceID\":21,\"SiteCode\":\"X\"}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = "{\"value\":[{\"ResourceID\":11},{\"ResourceID\":12}]}";
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = "{\"value\":[{\"ResourceID\":20,\"Model\":\"B\"},{\"ResourceID\":30},{\"ResourceID\":40}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":1}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"10 " ABSENT_SYS " cdr1[A - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n"
		"20 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- B -]\n");
	assert_int_equal(r.stats.devices, 2);
	assert_int_equal(r.stats.orphans, 3 + 1 + 2 + 2 + 1); /* 5,15,16 | 21 | 11,12 | 30,40 | 1 */
	run_clear(&r);
}

static void test_orphan_model(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":20}]}";
	r.sc[CMB_AS_CDR].pages[0] = EMPTY;
	r.sc[CMB_AS_COMGMT].pages[0] = EMPTY;
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = "{\"value\":[{\"ResourceID\":19,\"Model\":\"A\"},{\"ResourceID\":20,\"Model\":\"B\"},{\"ResourceID\":21,\"Model\":\"C\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = EMPTY;
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"20 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- B -]\n");
	assert_int_equal(r.stats.orphans, 2);
	run_clear(&r);
}

static void test_multi_page(void **state)
{
	struct run r;
	run_init(&r);
	/* pages of 2, 0 and 1 rows; the secondaries break at other places */
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1},{\"ResourceId\":2}],\"@odata.nextLink\":\"x\"}";
	r.sc[CMB_AS_SYSTEM].pages[1] = EMPTY;
	r.sc[CMB_AS_SYSTEM].pages[2] = "{\"value\":[{\"ResourceId\":3},{\"ResourceId\":4}]}";
	r.sc[CMB_AS_SYSTEM].pages[3] = "{\"value\":[{\"ResourceId\":5}]}";
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"ResourceID\":1,\"SiteCode\":\"a\"}]}";
	r.sc[CMB_AS_CDR].pages[1] = "{\"value\":[{\"ResourceID\":2,\"SiteCode\":\"b\"}]}";
	r.sc[CMB_AS_CDR].pages[2] = "{\"value\":[{\"ResourceID\":3,\"SiteCode\":\"c\"}]}";
	r.sc[CMB_AS_CDR].pages[3] = "{\"value\":[{\"ResourceID\":5,\"SiteCode\":\"e\"},{\"ResourceID\":6,\"SiteCode\":\"f\"}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = "{\"value\":[{\"ResourceID\":2,\"MDMWorkloads\":1},{\"ResourceID\":3,\"MDMWorkloads\":255}]}";
	r.sc[CMB_AS_COMGMT].pages[1] = "{\"value\":[{\"ResourceID\":4,\"MDMWorkloads\":0}]}";
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = EMPTY;
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[1] = EMPTY;
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":5,\"SerialNumber\":\"five\"}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"1 " ABSENT_SYS " cdr1[a - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n"
		"2 " ABSENT_SYS " cdr1[b - -1 -1 -1 -1 - -1 -1 - - - -] co1[-1 -1 1 -1 -1] hw[- - -]\n"
		"3 " ABSENT_SYS " cdr1[c - -1 -1 -1 -1 - -1 -1 - - - -] co1[-1 -1 255 -1 -1] hw[- - -]\n"
		"4 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co1[-1 -1 0 -1 -1] hw[- - -]\n"
		"5 " ABSENT_SYS " cdr1[e - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - five]\n");
	assert_int_equal(r.stats.orphans, 1);
	assert_int_equal(r.sc[CMB_AS_SYSTEM].page, 4);
	assert_int_equal(r.sc[CMB_AS_CDR].page, 4);
	assert_int_equal(r.sc[CMB_AS_COMPUTER_SYSTEM].page, 2);
	/* the cursors never held more than one page */
	assert_int_equal(r.sc[CMB_AS_SYSTEM].most_buffered, 2);
	run_clear(&r);
}

static void test_empty_site(void **state)
{
	struct run r;
	run_init(&r);
	for (int i = 0; i < CMB_AS_NDEVICE; i++)
		r.sc[i].pages[0] = EMPTY;
	assert_int_equal(run_join(&r), 0);
	assert_int_equal(r.out.len, 0);
	assert_int_equal(r.stats.devices, 0);
	run_clear(&r);

	/* no pages at all, and secondaries with rows but no system rows */
	run_init(&r);
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2}]}";
	assert_int_equal(run_join(&r), 0);
	assert_int_equal(r.out.len, 0);
	assert_int_equal(r.stats.orphans, 2);
	assert_int_equal(r.sc[CMB_AS_CDR].ends, 1);
	run_clear(&r);
}

/* Runs a join expected to fail; returns the devices delivered before the failure. */
static void check_fail(struct run *r, int code, const char *msg, const char *devices)
{
	int rc = run_join(r);
	if (rc != code || strcmp(cmb_error_last(), msg) != 0)
		fail_msg("got %d '%s', want %d '%s'", rc, cmb_error_last(), code, msg);
	assert_string_equal(r->out.len ? r->out.data : "", devices);
	run_clear(r);
}

static void test_out_of_order(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5},{\"ResourceId\":7}]}";
	r.sc[CMB_AS_SYSTEM].pages[1] = "{\"value\":[{\"ResourceId\":6}]}";
	check_fail(&r, CMB_EPROTO,
		   "SMS_R_System row 3: ResourceId 6 comes after 7: the rows are not in ascending "
		   "ResourceId order, which the join needs (does the site ignore $orderby?)",
		   "5 " ABSENT_SYS " " ABSENT_REST "\n7 " ABSENT_SYS " " ABSENT_REST "\n");

	/* in a secondary class, found while skipping towards a system key */
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5},{\"ResourceId\":9}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":2},{\"ResourceID\":1}]}";
	check_fail(&r, CMB_EPROTO,
		   "SMS_G_System_PC_BIOS row 2: ResourceID 1 comes after 2: the rows are not in ascending "
		   "ResourceID order, which the join needs (does the site ignore $orderby?)", "");

	/* in a secondary class, found while draining it after the last device */
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = "{\"value\":[{\"ResourceID\":8}]}";
	r.sc[CMB_AS_COMGMT].pages[1] = "{\"value\":[{\"ResourceID\":7}]}";
	check_fail(&r, CMB_EPROTO,
		   "SMS_Client_ComanagementState row 2: ResourceID 7 comes after 8: the rows are not in "
		   "ascending ResourceID order, which the join needs (does the site ignore $orderby?)",
		   "5 " ABSENT_SYS " " ABSENT_REST "\n");
}

static void test_duplicate(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5},{\"ResourceId\":5}]}";
	check_fail(&r, CMB_EPROTO, "SMS_R_System row 2: ResourceId 5 appears twice",
		   "5 " ABSENT_SYS " " ABSENT_REST "\n");

	/*
	 * A secondary class may repeat a key: hardware inventory rows are keyed
	 * by GroupID, so a device can have several. The first row fills the
	 * device, the others are counted and skipped, across pages too.
	 */
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5},{\"ResourceId\":6}]}";
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"ResourceID\":5,\"SiteCode\":\"first\"}]}";
	r.sc[CMB_AS_CDR].pages[1] = "{\"value\":[{\"ResourceID\":5,\"SiteCode\":\"second\"}]}";
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceID\":6,\"Model\":\"M1\"},{\"ResourceID\":6,\"Model\":\"M2\"},"
		"{\"ResourceID\":6,\"Model\":\"M3\"}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"5 " ABSENT_SYS " cdr1[first - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n"
		"6 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- M1 -]\n");
	assert_int_equal(r.stats.repeats, 3);
	assert_int_equal(r.stats.orphans, 0);
	run_clear(&r);
}

/* A class the site does not have (no cursor): its fields stay absent, the rest joins as usual. */
static void test_absent_class(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":1,\"SerialNumber\":\"S1\"}]}";
	r.curp[CMB_AS_COMGMT] = NULL;
	cmb_as_schema_drop_class(&r.schema, CMB_AS_COMGMT);
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data, "1 sys[A - - - - - - - - - -1 -1 -1 -1] " ABSENT_REST_NO_HW " hw[- - S1]\n");
	assert_int_equal(r.sc[CMB_AS_COMGMT].page, 0); /* never asked */
	run_clear(&r);
}

/*
 * Keys and properties in another casing than the schema's (a site whose
 * rows disagree with its $metadata): matched anyway, exact spelling first.
 */
static void test_other_casing(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] =
		"{\"value\":[{\"RESOURCEID\":7,\"name\":\"lower\",\"Name\":\"Exact\",\"CLIENT\":1}]}";
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"resourceid\":7,\"sitecode\":\"PS1\"}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = "{\"value\":[{\"MachineId\":7,\"mdmworkloads\":\"8193\"}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"7 sys[Exact - - - - - - - - - 1 -1 -1 -1] cdr1[PS1 - -1 -1 -1 -1 - -1 -1 - - - -] "
		"co1[-1 -1 8193 -1 -1] hw[- - -]\n");
	run_clear(&r);
}

static void test_bad_keys(void **state)
{
	static const char *const bad[] = {
		"{\"value\":[{\"Name\":\"no key\"}]}",
		"{\"value\":[{\"ResourceID\":null}]}",
		"{\"value\":[{\"ResourceID\":\"5x\"}]}",
		"{\"value\":[{\"ResourceID\":\"\"}]}",
		"{\"value\":[{\"ResourceID\":-1}]}",
		"{\"value\":[{\"ResourceID\":4294967296}]}",
		"{\"value\":[{\"ResourceID\":1.5}]}",
		"{\"value\":[{\"ResourceID\":1e3}]}",
	};
	static const char *const want[] = {
		"SMS_G_System_COMPUTER_SYSTEM row 1: record has no ResourceID",
		"SMS_G_System_COMPUTER_SYSTEM row 1: record has a ResourceID that is not an integer in 0..4294967295",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;
		run_init(&r);
		r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1}]}";
		r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = bad[i];
		check_fail(&r, CMB_EPROTO, want[i ? 1 : 0], "");
	}

	/* A key may come as a numeric string (64-bit values often do): read as the number. */
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":\"16777220\",\"Name\":\"Q\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":16777220,\"SerialNumber\":\"S\"}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data, "16777220 sys[Q - - - - - - - - - -1 -1 -1 -1] " ABSENT_REST_NO_HW " hw[- - S]\n");
	run_clear(&r);
}

static void test_cursor_error(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1}]}";
	r.sc[CMB_AS_SYSTEM].pages[1] = "{\"value\":[{\"ResourceId\":2}]}";
	r.sc[CMB_AS_SYSTEM].fail_page = 2;
	check_fail(&r, CMB_ENETWORK, "page 2: connection reset", "1 " ABSENT_SYS " " ABSENT_REST "\n");

	/* an error while draining a secondary after the last device still fails the read */
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2}]}";
	r.sc[CMB_AS_PC_BIOS].pages[1] = "{\"value\":[{\"ResourceID\":3}]}";
	r.sc[CMB_AS_PC_BIOS].fail_page = 2;
	check_fail(&r, CMB_ENETWORK, "page 2: connection reset",
		   "1 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n");
}

static void test_callback_stops(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1},{\"ResourceId\":2},{\"ResourceId\":3}]}";
	r.stop_after = 1;
	check_fail(&r, CMB_ECANCELED, "stopped by the test", "1 " ABSENT_SYS " " ABSENT_REST "\n");
}

static void test_type_mismatch(void **state)
{
	struct run r;
	run_init(&r);
	r.sc[CMB_AS_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceId\":1,\"Name\":5,\"Client\":\"yes\",\"Active\":true,\"Obsolete\":2.5,"
		"\"Decommissioned\":9999999999}]}";
	r.sc[CMB_AS_CDR].pages[0] =
		"{\"value\":[{\"ResourceID\":1,\"IsClient\":1,\"IsActive\":2,\"IsBlocked\":\"false\",\"SiteCode\":true}]}";
	r.sc[CMB_AS_COMGMT].pages[0] = "{\"value\":[{\"ResourceID\":1,\"MDMWorkloads\":-5,\"AADJoined\":0}]}";
	assert_int_equal(run_join(&r), 0);
	/*
	 * Active accepts a boolean, IsClient and AADJoined 0/1, IsBlocked the
	 * string "false"; a string Name, "yes", 2.5, a number out of int range,
	 * IsActive 2, a boolean SiteCode and a negative bitmask stay absent.
	 */
	assert_string_equal(r.out.data,
		"1 sys[- - - - - - - - - - -1 -1 -1 1] cdr1[- - 1 -1 0 -1 - -1 -1 - - - -] co1[-1 -1 -1 -1 0] hw[- - -]\n");
	assert_int_equal(r.stats.mismatches, 7);
	run_clear(&r);
}

static void test_class_table(void **state)
{
	struct cmb_as_schema sc = { 0 };
	cmb_as_schema_documented(&sc);
	/* SMS_R_System's key as live sites spell it; every other class's as its reference page */
	assert_string_equal(sc.cls[CMB_AS_SYSTEM].select,
			    "ResourceId,Name,Client,Obsolete,Decommissioned,Active,SMSUniqueIdentifier,HardwareID,"
			    "SMBIOSGUID,AADDeviceID,AADTenantID,OperatingSystemNameandVersion,Build,BuildExt,"
			    "ResourceDomainORWorkgroup");
	assert_string_equal(sc.cls[CMB_AS_CDR].select,
			    "ResourceID,SiteCode,SMSID,IsClient,IsActive,IsBlocked,IsObsolete,ClientVersion,"
			    "ClientActiveStatus,ClientCheckPass,LastPolicyRequest,LastActiveTime,DeviceOS,DeviceOSBuild");
	assert_string_equal(sc.cls[CMB_AS_COMGMT].select,
			    "ResourceID,MDMEnrolled,ComgmtPolicyPresent,MDMWorkloads,HybridAADJoined,AADJoined");
	assert_string_equal(sc.cls[CMB_AS_PC_BIOS].select, "ResourceID,SerialNumber");
	assert_string_equal(cmb_as_classes[CMB_AS_CDR].name, "SMS_CombinedDeviceResources");
	assert_string_equal(cmb_as_classes[CMB_AS_COMGMT].name, "SMS_Client_ComanagementState");
	assert_string_equal(cmb_as_classes[CMB_AS_COMPUTER_SYSTEM].name, "SMS_G_System_COMPUTER_SYSTEM");
	for (int i = 1; i < CMB_AS_NDEVICE; i++)
		assert_string_equal(cmb_as_classes[i].props[0].name, "ResourceID");
	/* no SMS_ClientOperation Type or TargetCollectionID: those belong to the status class and the method */
	for (size_t i = 0; i < cmb_as_classes[CMB_AS_OPERATION].nprops; i++) {
		assert_string_not_equal(cmb_as_classes[CMB_AS_OPERATION].props[i].name, "Type");
		assert_string_not_equal(cmb_as_classes[CMB_AS_OPERATION].props[i].name, "TargetCollectionID");
	}
	cmb_as_schema_clear(&sc);

	/* the table and mapping's init agree on what "absent" is for every property */
	struct cmb_site_device d;
	cmb_site_device_init(&d);
	size_t strings = 0;
	for (int c = 0; c < CMB_AS_NDEVICE; c++) {
		const struct cmb_as_class *cls = &cmb_as_classes[c];
		if (cls->has_offset >= 0)
			assert_int_equal(*(int *)((char *)&d + cls->has_offset), 0);
		for (size_t i = 0; i < cls->nprops; i++) {
			const char *f = (const char *)&d + cls->props[i].offset;
			switch (cls->props[i].type) {
			case CMB_AS_PROP_KEY: assert_int_equal(*(const uint32_t *)f, 0); break;
			case CMB_AS_PROP_STRING:
			case CMB_AS_PROP_DATETIME: assert_null(*(char *const *)f); strings++; break;
			case CMB_AS_PROP_INT:
			case CMB_AS_PROP_BOOL: assert_int_equal(*(const int *)f, -1); break;
			case CMB_AS_PROP_FLAGS: assert_int_equal(*(const int64_t *)f, -1); break;
			case CMB_AS_PROP_ANY: fail_msg("%s.%s fills no device field", cls->name, cls->props[i].name);
			}
		}
	}
	/* every string field of the struct is in the table exactly once */
	assert_int_equal(strings, 20);
}

/* Collection scope: only SMS_R_System rows with a membership row are emitted. */
static void test_filter_members_only(void **state)
{
	struct run r;
	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] =
		"{\"value\":[{\"ResourceId\":1,\"Name\":\"A\"},{\"ResourceId\":2,\"Name\":\"B\"}],\"@odata.nextLink\":\"x\"}";
	r.sc[CMB_AS_SYSTEM].pages[1] =
		"{\"value\":[{\"ResourceId\":3,\"Name\":\"C\"},{\"ResourceId\":4,\"Name\":\"D\"},{\"ResourceId\":5,\"Name\":\"E\"}]}";
	/* secondaries have rows for members and non-members, and one true orphan (9) */
	r.sc[CMB_AS_CDR].pages[0] =
		"{\"value\":[{\"ResourceID\":1,\"SiteCode\":\"s1\"},{\"ResourceID\":2,\"SiteCode\":\"s2\"},"
		"{\"ResourceID\":4,\"SiteCode\":\"s4\"},{\"ResourceID\":9,\"SiteCode\":\"s9\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[0] = "{\"value\":[{\"ResourceID\":3,\"SerialNumber\":\"n3\"}]}";
	r.sc[CMB_AS_PC_BIOS].pages[1] = "{\"value\":[{\"ResourceID\":4,\"SerialNumber\":\"n4\"}]}";
	/* members 2 and 4 over two pages; a repeated membership row is harmless */
	r.members.pages[0] = "{\"value\":[{\"ResourceID\":2},{\"ResourceID\":2}]}";
	r.members.pages[1] = "{\"value\":[{\"ResourceID\":4}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"2 sys[B - - - - - - - - - -1 -1 -1 -1] cdr1[s2 - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - -]\n"
		"4 sys[D - - - - - - - - - -1 -1 -1 -1] cdr1[s4 - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- - n4]\n");
	assert_int_equal(r.stats.devices, 2);
	assert_int_equal(r.stats.filtered, 3);
	assert_int_equal(r.stats.orphans, 1);          /* 9 only: non-members' rows are not orphans */
	assert_int_equal(r.stats.member_rows, 3);
	assert_int_equal(r.stats.members_unmatched, 0);
	assert_int_equal(r.members.ends, 1);
	for (int i = 0; i < CMB_AS_NDEVICE; i++)
		assert_int_equal(r.sc[i].ends, 1);
	run_clear(&r);
}

static void test_filter_empty_collection(void **state)
{
	struct run r;
	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1},{\"ResourceId\":2}]}";
	r.sc[CMB_AS_CDR].pages[0] = "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":2}]}";
	r.members.pages[0] = EMPTY;
	assert_int_equal(run_join(&r), 0);
	assert_int_equal(r.out.len, 0);
	assert_int_equal(r.stats.devices, 0);
	assert_int_equal(r.stats.filtered, 2);
	assert_int_equal(r.stats.orphans, 0);
	assert_int_equal(r.sc[CMB_AS_CDR].ends, 1);
	run_clear(&r);

	/* no membership page at all reads as an empty collection too */
	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1}]}";
	assert_int_equal(run_join(&r), 0);
	assert_int_equal(r.out.len, 0);
	assert_int_equal(r.stats.filtered, 1);
	run_clear(&r);
}

static void test_filter_member_without_system(void **state)
{
	struct run r;
	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":5},{\"ResourceId\":7}]}";
	r.sc[CMB_AS_COMPUTER_SYSTEM].pages[0] = "{\"value\":[{\"ResourceID\":6,\"Model\":\"M6\"},{\"ResourceID\":7,\"Model\":\"M7\"}]}";
	/* 3 and 6 before and between system rows, 8 and 9 after the last */
	r.members.pages[0] = "{\"value\":[{\"ResourceID\":3},{\"ResourceID\":6},{\"ResourceID\":7}]}";
	r.members.pages[1] = "{\"value\":[{\"ResourceID\":8},{\"ResourceID\":9}]}";
	assert_int_equal(run_join(&r), 0);
	assert_string_equal(r.out.data,
		"7 " ABSENT_SYS " cdr0[- - -1 -1 -1 -1 - -1 -1 - - - -] co0[-1 -1 -1 -1 -1] hw[- M7 -]\n");
	assert_int_equal(r.stats.devices, 1);
	assert_int_equal(r.stats.filtered, 1);
	assert_int_equal(r.stats.members_unmatched, 4);
	assert_int_equal(r.stats.orphans, 1);          /* COMPUTER_SYSTEM 6 has no discovery record */
	assert_int_equal(r.members.ends, 1);
	run_clear(&r);
}

static void test_filter_errors(void **state)
{
	struct run r;
	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1},{\"ResourceId\":5}]}";
	r.members.pages[0] = "{\"value\":[{\"ResourceID\":1},{\"ResourceID\":4},{\"ResourceID\":2}]}";
	check_fail(&r, CMB_EPROTO,
		   "SMS_FullCollectionMembership row 3: ResourceID 2 comes after 4: the rows are not in ascending "
		   "ResourceID order, which the join needs (does the site ignore $orderby?)",
		   "1 " ABSENT_SYS " " ABSENT_REST "\n");

	run_init(&r);
	r.filter = 1;
	r.sc[CMB_AS_SYSTEM].pages[0] = "{\"value\":[{\"ResourceId\":1}]}";
	r.members.pages[0] = "{\"value\":[{\"ResourceID\":1}]}";
	r.members.pages[1] = "{\"value\":[{\"ResourceID\":2}]}";
	r.members.fail_page = 2;
	check_fail(&r, CMB_ENETWORK, "page 2: connection reset", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_match),
		cmocka_unit_test(test_missing_secondary),
		cmocka_unit_test(test_orphans),
		cmocka_unit_test(test_orphan_model),
		cmocka_unit_test(test_multi_page),
		cmocka_unit_test(test_empty_site),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_absent_class),
		cmocka_unit_test(test_other_casing),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_cursor_error),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_type_mismatch),
		cmocka_unit_test(test_class_table),
		cmocka_unit_test(test_filter_members_only),
		cmocka_unit_test(test_filter_empty_collection),
		cmocka_unit_test(test_filter_member_without_system),
		cmocka_unit_test(test_filter_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
