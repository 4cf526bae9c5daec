/*
 * test_schema.c - the class table resolved against a site's $metadata
 * (adapters/adminservice/schema.c): for every property of every device
 * class, a document without it; spellings other than the table's; what a
 * refusal names; the text kept in the state. Pure: no I/O but the parser's
 * in-memory feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/metadata.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

/*
 * A document with every class of the table and every property, spelt as
 * the table spells it, except: skip_class (-1: none) is left out, and
 * property skip_prop of class skip_in (-1: none) is left out.
 * upper: every property name in upper case (a site that spells them so).
 */
static char *document(int skip_class, int skip_in, int skip_prop, int upper)
{
	struct cmb_buf b = CMB_BUF_INIT(1 << 22);
	cmb_buf_addstr(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" "
		       "xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices>"
		       "<Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">");
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		const struct cmb_as_class *cls = &cmb_as_classes[c];
		if (c == skip_class)
			continue;
		/* Leaving out the key property leaves out its PropertyRef too (a key named only there still counts). */
		if (c == skip_in && skip_prop == 0)
			cmb_buf_printf(&b, "<EntityType Name=\"%s\">", cls->name);
		else
			cmb_buf_printf(&b, "<EntityType Name=\"%s\"><Key><PropertyRef Name=\"%s\"/></Key>", cls->name,
				       cls->props[0].name);
		for (size_t i = 0; i < cls->nprops; i++) {
			if (c == skip_in && (int)i == skip_prop)
				continue;
			char name[128];
			snprintf(name, sizeof(name), "%s", cls->props[i].name);
			if (upper)
				for (char *p = name; *p; p++)
					*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
			cmb_buf_printf(&b, "<Property Name=\"%s\" Type=\"Edm.String\"/>", name);
		}
		cmb_buf_addstr(&b, "</EntityType>");
	}
	cmb_buf_addstr(&b, "<EntityContainer Name=\"AdminService\">");
	for (int c = 0; c < CMB_AS_NCLASSES; c++)
		if (c != skip_class)
			cmb_buf_printf(&b, "<EntitySet Name=\"%s\" EntityType=\"AdminService.%s\"/>", cmb_as_classes[c].name,
				       cmb_as_classes[c].name);
	cmb_buf_addstr(&b, "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
	return cmb_buf_detach(&b, NULL);
}

static void resolve(struct cmb_as_schema *s, const char *doc)
{
	const char *const *wanted = cmb_as_schema_wanted();
	size_t n = 0;
	while (wanted[n])
		n++;
	struct cmb_as_meta_parser *p = NULL;
	struct cmb_as_meta *m = NULL;
	assert_int_equal(cmb_as_meta_parser_new(&p, "test $metadata", wanted, n, NULL), 0);
	assert_int_equal(cmb_as_meta_feed(p, doc, strlen(doc)), 0);
	assert_int_equal(cmb_as_meta_finish(p, &m), 0);
	assert_null(cmb_as_meta_missing(m));
	cmb_as_schema_from_metadata(s, m, 1764547200);
	cmb_as_meta_free(m);
	cmb_as_meta_parser_free(p);
}

/* Every property of every device class, left out in turn: the schema lacks exactly it. */
static void test_each_property_missing(void **state)
{
	for (int c = 0; c < CMB_AS_NDEVICE; c++) {
		const struct cmb_as_class *cls = &cmb_as_classes[c];
		for (size_t skip = 0; skip < cls->nprops; skip++) {
			char *doc = document(-1, c, (int)skip, 0);
			struct cmb_as_schema s = { 0 };
			resolve(&s, doc);
			assert_int_equal(s.source, CMB_AS_SCHEMA_METADATA);
			for (size_t i = 0; i < cls->nprops; i++) {
				if (i == skip)
					assert_null(s.cls[c].wire[i]);
				else
					assert_string_equal(s.cls[c].wire[i], cls->props[i].name);
			}
			/* $select lists exactly the others, in the table's order */
			struct cmb_buf want = CMB_BUF_INIT(1 << 16);
			for (size_t i = 0; i < cls->nprops; i++)
				if (i != skip)
					cmb_buf_printf(&want, "%s%s", want.len ? "," : "", cls->props[i].name);
			assert_string_equal(s.cls[c].select, want.data ? want.data : "");
			cmb_buf_free(&want);
			cmb_error_clear();
			int rc = cmb_as_schema_check(&s, 1);
			if (cls->props[skip].required) {
				assert_int_equal(rc, CMB_EPROTO);
				char named[256];
				snprintf(named, sizeof(named), "%s.%s", cls->name, cls->props[skip].name);
				if (!strstr(cmb_error_last(), named))
					fail_msg("'%s' does not name %s", cmb_error_last(), named);
			} else {
				assert_int_equal(rc, 0);
			}
			cmb_as_schema_clear(&s);
			free(doc);
		}
	}
}

/* Each class left out: optional ones are absent and the read can go on; required ones stop it. */
static void test_each_class_missing(void **state)
{
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		char *doc = document(c, -1, -1, 0);
		struct cmb_as_schema s = { 0 };
		resolve(&s, doc);
		assert_false(s.cls[c].present);
		for (int o = 0; o < CMB_AS_NCLASSES; o++)
			if (o != c)
				assert_true(s.cls[o].present);
		int rc = cmb_as_schema_check(&s, 1);
		int needed = cmb_as_classes[c].required && (c < CMB_AS_NDEVICE || c == CMB_AS_MEMBERSHIP);
		assert_int_equal(rc, needed ? CMB_EPROTO : 0);
		if (needed)
			assert_non_null(strstr(cmb_error_last(), cmb_as_classes[c].name));
		cmb_as_schema_clear(&s);
		free(doc);
	}
}

/* A site that spells every property in upper case: the site's spelling is what is asked for. */
static void test_other_spelling(void **state)
{
	char *doc = document(-1, -1, -1, 1);
	struct cmb_as_schema s = { 0 };
	resolve(&s, doc);
	assert_string_equal(s.cls[CMB_AS_SYSTEM].wire[0], "RESOURCEID");
	assert_string_equal(s.cls[CMB_AS_COMGMT].wire[3], "MDMWORKLOADS");
	assert_string_equal(s.cls[CMB_AS_PC_BIOS].select, "RESOURCEID,SERIALNUMBER");
	cmb_as_schema_clear(&s);
	free(doc);

	/* The co-management key under its other documented name, MachineId */
	doc = document(-1, -1, -1, 0);
	char *at = strstr(doc, "<EntityType Name=\"SMS_Client_ComanagementState\">");
	assert_non_null(at);
	char *fixed = NULL;
	{
		struct cmb_buf b = CMB_BUF_INIT(1 << 22);
		cmb_buf_add(&b, doc, (size_t)(at - doc));
		cmb_buf_addstr(&b, "<EntityType Name=\"SMS_Client_ComanagementState\"><Key><PropertyRef Name=\"MachineId\"/>"
			       "</Key><Property Name=\"MachineId\" Type=\"Edm.Int64\"/>"
			       "<Property Name=\"MDMEnrolled\" Type=\"Edm.Boolean\"/></EntityType>");
		char *end = strstr(at, "</EntityType>") + strlen("</EntityType>");
		cmb_buf_addstr(&b, end);
		fixed = cmb_buf_detach(&b, NULL);
	}
	resolve(&s, fixed);
	assert_string_equal(s.cls[CMB_AS_COMGMT].wire[0], "MachineId");
	assert_string_equal(s.cls[CMB_AS_COMGMT].select, "MachineId,MDMEnrolled");
	assert_int_equal(cmb_as_schema_check(&s, 0), 0);
	cmb_as_schema_clear(&s);
	free(fixed);
	free(doc);
}

/* What a refusal names: ASP.NET OData's message, and others that quote the property. */
static void test_drop_named(void **state)
{
	static const struct {
		const char *message;
		int dropped;             /* index in SMS_R_System, -1 none */
	} cases[] = {
		{ "The query specified in the URI is not valid. Could not find a property named 'BuildExt' on type "
		  "'AdminService.SMS_R_System'.", 13 },
		{ "Property \"AADDeviceID\" does not exist in \"wmi.SMS_R_System\"", 9 },
		{ "Could not find a property named 'buildext' on type 'AdminService.SMS_R_System'.", 13 },
		{ "Invalid query: 'Nonsense' is not a property", -1 },
		{ "no quotes at all", -1 },
		{ "an unterminated 'quote", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cmb_as_schema s = { 0 };
		cmb_as_schema_documented(&s);
		assert_int_equal(cmb_as_schema_drop_named(&s, CMB_AS_SYSTEM, cases[i].message), cases[i].dropped);
		if (cases[i].dropped >= 0) {
			assert_null(s.cls[CMB_AS_SYSTEM].wire[cases[i].dropped]);
			assert_null(strstr(s.cls[CMB_AS_SYSTEM].select,
					   cmb_as_classes[CMB_AS_SYSTEM].props[cases[i].dropped].name));
		}
		cmb_as_schema_clear(&s);
	}
}

/* The text kept in the state reads back to the same schema; text it cannot read is refused whole. */
static void test_save_load(void **state)
{
	char *doc = document(CMB_AS_COMGMT, CMB_AS_SYSTEM, 13, 0);
	struct cmb_as_schema s = { 0 }, back = { 0 };
	resolve(&s, doc);
	char *text = cmb_as_schema_save(&s);
	assert_int_equal(cmb_as_schema_load(&back, text), 0);
	assert_int_equal(back.source, CMB_AS_SCHEMA_METADATA);
	assert_int_equal(back.learnt, 1764547200);
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		assert_int_equal(back.cls[c].present, s.cls[c].present);
		if (!s.cls[c].present)
			continue;
		assert_string_equal(back.cls[c].entity, s.cls[c].entity);
		assert_string_equal(back.cls[c].select, s.cls[c].select);
		for (size_t i = 0; i < cmb_as_classes[c].nprops; i++) {
			if (s.cls[c].wire[i])
				assert_string_equal(back.cls[c].wire[i], s.cls[c].wire[i]);
			else
				assert_null(back.cls[c].wire[i]);
		}
	}
	char *again = cmb_as_schema_save(&back);
	assert_string_equal(again, text);
	static const char *const bad[] = { "", "{}", "[]", "{\"version\":2,\"source\":\"metadata\",\"learnt\":1,\"classes\":{}}",
					   "{\"version\":1,\"source\":\"metadata\",\"learnt\":\"x\",\"classes\":{}}", "not json" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cmb_as_schema_load(&back, bad[i]), CMB_EINVAL);
		assert_string_equal(back.cls[CMB_AS_SYSTEM].select, s.cls[CMB_AS_SYSTEM].select); /* untouched */
	}
	free(again);
	free(text);
	cmb_as_schema_clear(&s);
	cmb_as_schema_clear(&back);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_property_missing),
		cmocka_unit_test(test_each_class_missing),
		cmocka_unit_test(test_other_spelling),
		cmocka_unit_test(test_drop_named),
		cmocka_unit_test(test_save_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
