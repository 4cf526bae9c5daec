/*
 * test_metadata.c - the streaming $metadata (CSDL) reader: the exact result
 * for a realistic document and for every way its bytes can be split; sets
 * and base types before and after their references, with the second pass
 * that cmb_as_meta_missing() asks for; every refusal (DTDs, entities,
 * limits, encodings, truncation) with its code and message; and a ~50 MB
 * generated document read with libxml2's memory counted through
 * xmlMemSetup().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libxml/parser.h>
#include <libxml/xmlmemory.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/adminservice/metadata.h"
#include "connector/base/error.h"
#include "connector/base/util.h"
#include "connector/base/clock.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define WHERE "site CM1 $metadata"
#define BIG_PIECE ((size_t)64 << 10)     /* what the HTTP layer hands on at a time */

/* ---- libxml2's memory, counted -------------------------------------------- */

/*
 * Sizes come from malloc_usable_size(), not from a header, so a block
 * allocated before the hooks were installed can be freed through them (and
 * the other way round) without harm.
 */
static size_t mem_now, mem_peak;

static void count_add(void *ptr)
{
	if (!ptr)
		return;
	mem_now += malloc_usable_size(ptr);
	if (mem_now > mem_peak)
		mem_peak = mem_now;
}

static void count_sub(void *ptr)
{
	if (!ptr)
		return;
	size_t n = malloc_usable_size(ptr);
	mem_now = n > mem_now ? 0 : mem_now - n;
}

static void *count_malloc(size_t n)
{
	void *ptr = malloc(n);
	count_add(ptr);
	return ptr;
}

static void *count_realloc(void *old, size_t n)
{
	size_t before = old ? malloc_usable_size(old) : 0;
	void *ptr = realloc(old, n);
	if (!ptr)
		return NULL;
	mem_now = before > mem_now ? 0 : mem_now - before;
	count_add(ptr);
	return ptr;
}

static void count_free(void *ptr)
{
	count_sub(ptr);
	free(ptr);
}

static char *count_strdup(const char *s)
{
	char *d = strdup(s);
	count_add(d);
	return d;
}

static xmlFreeFunc old_free;
static xmlMallocFunc old_malloc;
static xmlReallocFunc old_realloc;
static xmlStrdupFunc old_strdup;

static void count_start(void)
{
	xmlInitParser();
	assert_int_equal(xmlMemGet(&old_free, &old_malloc, &old_realloc, &old_strdup), 0);
	mem_now = mem_peak = 0;
	assert_int_equal(xmlMemSetup(count_free, count_malloc, count_realloc, count_strdup), 0);
}

static void count_stop(void)
{
	assert_int_equal(xmlMemSetup(old_free, old_malloc, old_realloc, old_strdup), 0);
}

/* Records any attempt by libxml2 to open an external entity or DTD. */
static int loader_calls;
static xmlExternalEntityLoader old_loader;

static xmlParserInputPtr spy_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	loader_calls++;
	return NULL;
}

/* ---- parsing helpers ---------------------------------------------------------- */

/* A byte-exact text form of a result, for comparisons. */
static void serialize(struct cmb_buf *b, const struct cmb_as_meta *m)
{
	cmb_buf_printf(b, "ns=%s bytes=%zu types=%zu\n", m->ns ? m->ns : "(none)", m->bytes, m->n_types_seen);
	for (size_t i = 0; i < m->n_classes; i++) {
		const struct cmb_as_meta_class *c = &m->classes[i];
		cmb_buf_printf(b, "class %s base=%s keys=", c->name, c->base_type ? c->base_type : "-");
		for (size_t k = 0; k < c->n_keys; k++)
			cmb_buf_printf(b, "%s%s", k ? "," : "", c->keys[k]);
		cmb_buf_addstr(b, "\n");
		for (size_t k = 0; k < c->n_props; k++)
			cmb_buf_printf(b, "  %s %s%s\n", c->props[k].name, c->props[k].type,
				       c->props[k].nullable ? "" : " not-null");
	}
	for (size_t i = 0; i < m->n_sets; i++)
		cmb_buf_printf(b, "set %s -> %s\n", m->entity_sets[i], m->entity_set_types[i]);
	for (size_t i = 0; i < m->n_actions; i++)
		cmb_buf_printf(b, "action %s\n", m->actions[i]);
	const char *const *missing = cmb_as_meta_missing(m);
	for (size_t i = 0; missing && missing[i]; i++)
		cmb_buf_printf(b, "missing %s\n", missing[i]);
}

/*
 * Parses doc in `chunk`-byte pieces (0: all at once), or in two pieces cut
 * at `split` when split > 0. Returns the first error; on success *out gets
 * the result (when out is not NULL; freed otherwise).
 */
static int parse_ex(const char *doc, size_t len, size_t chunk, size_t split, const char *const *wanted,
		    size_t n_wanted, const struct cmb_as_meta_limits *lim, struct cmb_as_meta **out)
{
	struct cmb_as_meta_parser *p = NULL;
	struct cmb_as_meta *m = NULL;
	int rc = cmb_as_meta_parser_new(&p, WHERE, wanted, n_wanted, lim);
	assert_int_equal(rc, 0);
	if (split) {
		rc = cmb_as_meta_feed(p, doc, split);
		if (rc == 0)
			rc = cmb_as_meta_feed(p, doc + split, len - split);
	} else if (chunk) {
		for (size_t off = 0; off < len && rc == 0; off += chunk)
			rc = cmb_as_meta_feed(p, doc + off, len - off < chunk ? len - off : chunk);
	} else {
		rc = cmb_as_meta_feed(p, doc, len);
	}
	if (rc == 0)
		rc = cmb_as_meta_finish(p, &m);
	if (rc < 0) {
		/* sticky: the same code (and message) again */
		char *msg = xstrdup(cmb_error_last());
		assert_int_equal(cmb_as_meta_feed(p, "<x/>", 4), rc);
		assert_string_equal(cmb_error_last(), msg);
		struct cmb_as_meta *m2 = NULL;
		assert_int_equal(cmb_as_meta_finish(p, &m2), rc);
		assert_null(m2);
		assert_string_equal(cmb_error_last(), msg);
		free(msg);
		assert_null(m);
	}
	cmb_as_meta_parser_free(p);
	if (out)
		*out = m;
	else
		cmb_as_meta_free(m);
	return rc;
}

static int parse(const char *doc, const char *const *wanted, size_t n_wanted, struct cmb_as_meta **out)
{
	return parse_ex(doc, strlen(doc), 0, 0, wanted, n_wanted, NULL, out);
}

/* Parses and serializes; the caller frees the text. */
static char *parse_text(const char *doc, size_t len, size_t chunk, size_t split, const char *const *wanted,
			size_t n_wanted)
{
	struct cmb_as_meta *m = NULL;
	assert_int_equal(parse_ex(doc, len, chunk, split, wanted, n_wanted, NULL, &m), 0);
	struct cmb_buf b = CMB_BUF_INIT(1 << 24);
	serialize(&b, m);
	cmb_as_meta_free(m);
	return cmb_buf_detach(&b, NULL);
}

/* The code, and a message that names the document, a line and a column and contains `what`. */
static void assert_fails(const char *doc, size_t len, size_t chunk, const char *const *wanted, size_t n_wanted,
			 const struct cmb_as_meta_limits *lim, int code, const char *what)
{
	int rc = parse_ex(doc, len, chunk, 0, wanted, n_wanted, lim, NULL);
	if (rc != code || !strstr(cmb_error_last(), what))
		print_error("got %d '%s', wanted %d '...%s...'\n", rc, cmb_error_last(), code, what);
	assert_int_equal(rc, code);
	assert_non_null(strstr(cmb_error_last(), what));
	assert_true(strncmp(cmb_error_last(), WHERE, strlen(WHERE)) == 0);
}

static void assert_fails_at(const char *doc, size_t len, size_t chunk, const char *const *wanted,
			    size_t n_wanted, const struct cmb_as_meta_limits *lim, int code, const char *what)
{
	assert_fails(doc, len, chunk, wanted, n_wanted, lim, code, what);
	assert_non_null(strstr(cmb_error_last(), ", line "));
	assert_non_null(strstr(cmb_error_last(), ", column "));
}

/* ---- a realistic document ------------------------------------------------------ */

#define EDMX_HEAD                                                                              \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"                                             \
	"<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n"    \
	"<edmx:DataServices>\n"                                                                    \
	"<Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n"
#define EDMX_TAIL "</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n"

static const char site_doc[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	"<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n"
	"  <edmx:Reference Uri=\"https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml\">\n"
	"    <edmx:Include Namespace=\"Org.OData.Core.V1\" Alias=\"Core\"/>\n"
	"  </edmx:Reference>\n"
	"  <edmx:DataServices>\n"
	"    <Schema Namespace=\"AdminService\" Alias=\"self\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n"
	"      <EntityType Name=\"SMS_R_System\">\n"
	"        <Key>\n"
	"          <PropertyRef Name=\"ResourceId\"/>\n"
	"        </Key>\n"
	"        <Property Name=\"ResourceId\" Type=\"Edm.Int64\" Nullable=\"false\"/>\n"
	"        <Property Name=\"Active\" Type=\"Edm.Int64\"/>\n"
	"        <Property Name=\"AgentName\" Type=\"Collection(Edm.String)\"/>\n"
	"        <Property Name=\"Name\" Type=\"Edm.String\">\n"
	"          <Annotation Term=\"Core.Description\" String=\"NetBIOS name &amp; more\"/>\n"
	"        </Property>\n"
	"        <Property Name=\"LastLogonTimestamp\" Type=\"Edm.DateTimeOffset\" Nullable=\"true\"/>\n"
	"        <NavigationProperty Name=\"Collections\" Type=\"Collection(AdminService.SMS_Collection)\"/>\n"
	"        <Annotation Term=\"Core.Description\"><String>A <!-- not a --> device <![CDATA[<Property Name=\"X\"/>]]></String></Annotation>\n"
	"      </EntityType>\n"
	"      <EntityType Name=\"SMS_Unwanted\">\n"
	"        <Key><PropertyRef Name=\"Id\"/></Key>\n"
	"        <Property Name=\"Id\" Type=\"Edm.Int32\" Nullable=\"false\"/>\n"
	"      </EntityType>\n"
	"      <ComplexType Name=\"SMS_ClientOperationResult\">\n"
	"        <Property Name=\"OperationID\" Type=\"Edm.Int64\"/>\n"
	"      </ComplexType>\n"
	"      <EnumType Name=\"Flags\"><Member Name=\"A\" Value=\"1\"/></EnumType>\n"
	"      <EntityType Name=\"SMS_G_System_PC_BIOS\">\n"
	"        <Key>\n"
	"          <PropertyRef Name=\"ResourceID\"/>\n"
	"          <PropertyRef Name=\"GroupID\"/>\n"
	"        </Key>\n"
	"        <Property Name=\"ResourceID\" Type=\"Edm.Int64\" Nullable=\"false\"/>\n"
	"        <Property Name=\"GroupID\" Type=\"Edm.Int64\" Nullable=\"0\"/>\n"
	"        <Property Name=\"SerialNumber\" Type=\"Edm.String\"/>\n"
	"        <Property Name=\"ReleaseDate\" Type=\"Edm.DateTimeOffset\"/>\n"
	"      </EntityType>\n"
	"      <EntityType Name=\"SMS_CombinedDeviceResources\" BaseType=\"self.SMS_Resource\">\n"
	"        <Property Name=\"SiteCode\" Type=\"Edm.String\"/>\n"
	"        <Property Name=\"CoManaged\" Type=\"Edm.Int32\"/>\n"
	"      </EntityType>\n"
	"      <Action Name=\"InitiateClientOperation\" IsBound=\"true\">\n"
	"        <Parameter Name=\"bindingParameter\" Type=\"Collection(AdminService.SMS_ClientOperation)\"/>\n"
	"        <Parameter Name=\"Type\" Type=\"Edm.Int32\"/>\n"
	"        <ReturnType Type=\"AdminService.SMS_ClientOperationResult\"/>\n"
	"      </Action>\n"
	"      <Action Name=\"InitiateClientOperation\" IsBound=\"true\">\n"
	"        <Parameter Name=\"bindingParameter\" Type=\"AdminService.SMS_ClientOperation\"/>\n"
	"      </Action>\n"
	"      <Action Name=\"UnwantedAction\" IsBound=\"true\"/>\n"
	"      <Function Name=\"GetScheduleStatus\" IsBound=\"true\"><ReturnType Type=\"Edm.Int32\"/></Function>\n"
	"      <EntityType Name=\"SMS_Resource\" Abstract=\"true\">\n"
	"        <Key><PropertyRef Name=\"ResourceID\"/></Key>\n"
	"        <Property Name=\"ResourceID\" Type=\"Edm.Int64\" Nullable=\"false\"/>\n"
	"        <Property Name=\"Name\" Type=\"Edm.String\"/>\n"
	"      </EntityType>\n"
	"      <EntityContainer Name=\"Container\">\n"
	"        <EntitySet Name=\"SMS_R_System\" EntityType=\"AdminService.SMS_R_System\">\n"
	"          <NavigationPropertyBinding Path=\"Collections\" Target=\"SMS_Collection\"/>\n"
	"        </EntitySet>\n"
	"        <EntitySet Name=\"SMS_Unwanted\" EntityType=\"AdminService.SMS_Unwanted\"/>\n"
	"        <EntitySet Name=\"SMS_G_System_PC_BIOS\" EntityType=\"AdminService.SMS_G_System_PC_BIOS\"/>\n"
	"        <EntitySet Name=\"SMS_CombinedDeviceResources\" EntityType=\"self.SMS_CombinedDeviceResources\"/>\n"
	"        <ActionImport Name=\"InitiateClientOperation\" Action=\"AdminService.InitiateClientOperation\"/>\n"
	"      </EntityContainer>\n"
	"    </Schema>\n"
	"  </edmx:DataServices>\n"
	"</edmx:Edmx>\n";

static const char *const site_wanted[] = {
	"SMS_R_System", "sms_g_system_pc_bios", "SMS_CombinedDeviceResources", "initiateclientoperation",
	"GetScheduleStatus",
};

static const char site_expected[] =
	"ns=AdminService bytes=%zu types=5\n"
	"class SMS_R_System base=- keys=ResourceId\n"
	"  ResourceId Edm.Int64 not-null\n"
	"  Active Edm.Int64\n"
	"  AgentName Collection(Edm.String)\n"
	"  Name Edm.String\n"
	"  LastLogonTimestamp Edm.DateTimeOffset\n"
	"class SMS_G_System_PC_BIOS base=- keys=ResourceID,GroupID\n"
	"  ResourceID Edm.Int64 not-null\n"
	"  GroupID Edm.Int64 not-null\n"
	"  SerialNumber Edm.String\n"
	"  ReleaseDate Edm.DateTimeOffset\n"
	"class SMS_CombinedDeviceResources base=SMS_Resource keys=ResourceID\n"
	"  ResourceID Edm.Int64 not-null\n"
	"  Name Edm.String\n"
	"  SiteCode Edm.String\n"
	"  CoManaged Edm.Int32\n"
	"class SMS_Resource base=- keys=ResourceID\n"
	"  ResourceID Edm.Int64 not-null\n"
	"  Name Edm.String\n"
	"set SMS_R_System -> SMS_R_System\n"
	"set SMS_Unwanted -> SMS_Unwanted\n"
	"set SMS_G_System_PC_BIOS -> SMS_G_System_PC_BIOS\n"
	"set SMS_CombinedDeviceResources -> SMS_CombinedDeviceResources\n"
	"action InitiateClientOperation\n"
	"action GetScheduleStatus\n";

static char *site_expected_text(void)
{
	return xasprintf(site_expected, sizeof(site_doc) - 1);
}

static void test_site_document(void **state)
{
	struct cmb_as_meta *m = NULL;
	assert_int_equal(parse(site_doc, site_wanted, COUNT(site_wanted), &m), 0);
	struct cmb_buf b = CMB_BUF_INIT(1 << 20);
	serialize(&b, m);
	char *want = site_expected_text();
	assert_string_equal(b.data, want);
	free(want);
	cmb_buf_free(&b);

	assert_null(cmb_as_meta_missing(m));
	assert_int_equal(m->n_classes, 4);
	assert_int_equal(m->n_sets, 4);
	assert_int_equal(m->n_actions, 2);

	/* case-insensitive find, through the set or the type */
	const struct cmb_as_meta_class *sys = cmb_as_meta_find(m, "sms_r_system");
	assert_non_null(sys);
	assert_string_equal(sys->name, "SMS_R_System");
	assert_ptr_equal(cmb_as_meta_find(m, "SMS_R_SYSTEM"), sys);
	assert_ptr_equal(cmb_as_meta_find(m, "SMS_Resource"), &m->classes[3]);  /* a type without a set */
	assert_null(cmb_as_meta_find(m, "SMS_Unwanted"));                       /* a set whose type was dropped */
	assert_null(cmb_as_meta_find(m, "SMS_ClientOperationResult"));          /* a ComplexType */
	assert_null(cmb_as_meta_find(m, "nothing"));
	assert_null(cmb_as_meta_find(m, NULL));
	assert_null(cmb_as_meta_find(NULL, "SMS_R_System"));

	/* the key keeps its casing: ResourceId here, ResourceID in the inventory classes */
	assert_string_equal(sys->keys[0], "ResourceId");
	const struct cmb_as_meta_class *bios = cmb_as_meta_find(m, "SMS_G_System_PC_BIOS");
	assert_string_equal(bios->keys[0], "ResourceID");

	/* exact first, then case-insensitive */
	const struct cmb_as_meta_prop *pr = cmb_as_meta_prop_find(sys, "ResourceId");
	assert_non_null(pr);
	assert_string_equal(pr->type, "Edm.Int64");
	assert_int_equal(pr->nullable, 0);
	assert_ptr_equal(cmb_as_meta_prop_find(sys, "RESOURCEID"), pr);
	assert_null(cmb_as_meta_prop_find(sys, "Collections"));                 /* a NavigationProperty */
	assert_null(cmb_as_meta_prop_find(sys, "X"));                           /* inside CDATA */
	assert_null(cmb_as_meta_prop_find(NULL, "X"));
	cmb_as_meta_free(m);
	cmb_as_meta_free(NULL);

	/* nothing wanted: every set, no class, no action */
	assert_int_equal(parse(site_doc, NULL, 0, &m), 0);
	assert_int_equal(m->n_classes, 0);
	assert_int_equal(m->n_sets, 4);
	assert_int_equal(m->n_actions, 0);
	assert_int_equal(m->n_types_seen, 5);
	assert_int_equal(m->bytes, sizeof(site_doc) - 1);
	assert_null(cmb_as_meta_missing(m));
	cmb_as_meta_free(m);
}

/* Every split into two pieces, and one byte at a time, give the same result. */
static void test_every_split(void **state)
{
	const size_t len = sizeof(site_doc) - 1;
	char *want = site_expected_text();
	for (size_t split = 1; split < len; split++) {
		char *got = parse_text(site_doc, len, 0, split, site_wanted, COUNT(site_wanted));
		if (strcmp(got, want) != 0)
			print_error("split at %zu\n", split);
		assert_string_equal(got, want);
		free(got);
	}
	static const size_t chunks[] = { 1, 2, 3, 7, 64, 1000 };
	for (size_t i = 0; i < COUNT(chunks); i++) {
		char *got = parse_text(site_doc, len, chunks[i], 0, site_wanted, COUNT(site_wanted));
		assert_string_equal(got, want);
		free(got);
	}
	free(want);
}

/* ---- optional parts -------------------------------------------------------------- */

static void test_optional_parts(void **state)
{
	static const char *const w[] = { "A", "B" };
	struct cmb_as_meta *m = NULL;

	/* no Key, no Nullable, no BaseType, no container, no action, no Schema Namespace */
	static const char bare_doc[] =
		"<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices>"
		"<Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
		"<EntityType Name=\"A\"><Property Name=\"x\" Type=\"Edm.String\"/></EntityType>"
		"<EntityType Name=\"B\"/>"
		"</Schema></edmx:DataServices></edmx:Edmx>";
	assert_int_equal(parse(bare_doc, w, 2, &m), 0);
	assert_null(m->ns);
	assert_int_equal(m->n_classes, 2);
	assert_int_equal(m->classes[0].n_keys, 0);
	assert_null(m->classes[0].keys);
	assert_null(m->classes[0].base_type);
	assert_int_equal(m->classes[0].n_props, 1);
	assert_int_equal(m->classes[0].props[0].nullable, 1);
	assert_int_equal(m->classes[1].n_props, 0);
	assert_int_equal(m->n_sets, 0);
	assert_int_equal(m->n_actions, 0);
	assert_null(cmb_as_meta_missing(m));
	assert_ptr_equal(cmb_as_meta_find(m, "b"), &m->classes[1]);
	cmb_as_meta_free(m);

	/* Nullable spellings; types in two schemas, the container in a third */
	static const char two_schemas[] =
		"<?xml version='1.0'?>"
		"<edmx:Edmx Version='4.01' xmlns:edmx='http://docs.oasis-open.org/odata/ns/edmx'><edmx:DataServices>"
		"<Schema Namespace='Other' xmlns='http://docs.oasis-open.org/odata/ns/edm'>"
		"<Term Name='T' Type='Edm.String'/></Schema>"
		"<Schema Namespace='AdminService' xmlns='http://docs.oasis-open.org/odata/ns/edm'>"
		"<EntityType Name='A'><Property Name='p1' Type='Edm.Boolean' Nullable='false'/>"
		"<Property Name='p2' Type='Edm.Boolean' Nullable='true'/><Property Name='p3' Type='Edm.Boolean' Nullable='0'/>"
		"<Property Name='p4' Type='Edm.Boolean' Nullable='1'/><Property Name='p5' Type='Edm.Boolean' Nullable=''/>"
		"</EntityType></Schema>"
		"<Schema Namespace='More' xmlns='http://docs.oasis-open.org/odata/ns/edm'>"
		"<EntityType Name='B' BaseType='AdminService.A'/></Schema>"
		"<Schema Namespace='C' xmlns='http://docs.oasis-open.org/odata/ns/edm'><EntityContainer Name='X'>"
		"<EntitySet Name='A' EntityType='AdminService.A'/><EntitySet Name='B' EntityType='More.B'/>"
		"<Singleton Name='S' Type='AdminService.A'/></EntityContainer></Schema>"
		"</edmx:DataServices></edmx:Edmx>";
	assert_int_equal(parse(two_schemas, w, 2, &m), 0);
	assert_string_equal(m->ns, "AdminService");
	assert_int_equal(m->n_classes, 2);
	const struct cmb_as_meta_class *a = cmb_as_meta_find(m, "A");
	assert_int_equal(a->n_props, 5);
	assert_int_equal(a->props[0].nullable, 0);
	assert_int_equal(a->props[1].nullable, 1);
	assert_int_equal(a->props[2].nullable, 0);
	assert_int_equal(a->props[3].nullable, 1);
	assert_int_equal(a->props[4].nullable, 1);
	const struct cmb_as_meta_class *b = cmb_as_meta_find(m, "B");
	assert_string_equal(b->base_type, "A");
	assert_int_equal(b->n_props, 5);
	assert_string_equal(b->props[4].name, "p5");
	assert_int_equal(m->n_sets, 2);
	assert_string_equal(m->entity_set_types[1], "B");
	cmb_as_meta_free(m);

	/* no EntityType at all */
	assert_int_equal(parse("<Edmx><DataServices/></Edmx>", w, 2, &m), 0);
	assert_int_equal(m->n_types_seen, 0);
	assert_int_equal(m->n_classes, 0);
	cmb_as_meta_free(m);

	/* a second type of a name already kept (another schema) is skipped */
	assert_int_equal(parse(EDMX_HEAD "<EntityType Name='A'><Property Name='one' Type='Edm.Int32'/></EntityType>"
			       "<EntityType Name='a'><Property Name='two' Type='Edm.Int32'/></EntityType>" EDMX_TAIL,
			       w, 2, &m), 0);
	assert_int_equal(m->n_classes, 1);
	assert_int_equal(m->n_types_seen, 2);
	assert_string_equal(m->classes[0].props[0].name, "one");
	cmb_as_meta_free(m);
}

/* ---- sets named unlike their types ------------------------------------------------ */

static const char types_then_container[] = EDMX_HEAD
	"<EntityType Name='SMS_R_System'><Key><PropertyRef Name='ResourceId'/></Key>"
	"<Property Name='ResourceId' Type='Edm.Int64' Nullable='false'/></EntityType>"
	"<EntityType Name='Other'/>"
	"<EntityContainer Name='C'><EntitySet Name='Devices' EntityType='AdminService.SMS_R_System'/>"
	"<EntitySet Name='Others' EntityType='AdminService.Other'/></EntityContainer>" EDMX_TAIL;

static const char container_then_types[] = EDMX_HEAD
	"<EntityContainer Name='C'><EntitySet Name='Devices' EntityType='AdminService.SMS_R_System'/>"
	"</EntityContainer>"
	"<EntityType Name='SMS_R_System'><Key><PropertyRef Name='ResourceId'/></Key>"
	"<Property Name='ResourceId' Type='Edm.Int64' Nullable='false'/></EntityType>" EDMX_TAIL;

static void test_set_named_unlike_type(void **state)
{
	struct cmb_as_meta *m = NULL;
	const char *wanted[3] = { "devices" };

	/* the type came before the container: dropped, so a second pass is asked for */
	assert_int_equal(parse(types_then_container, wanted, 1, &m), 0);
	assert_int_equal(m->n_classes, 0);
	assert_null(cmb_as_meta_find(m, "Devices"));
	const char *const *missing = cmb_as_meta_missing(m);
	assert_non_null(missing);
	assert_string_equal(missing[0], "SMS_R_System");
	assert_null(missing[1]);
	assert_int_equal(m->n_missing, 1);

	wanted[1] = xstrdup(missing[0]);
	cmb_as_meta_free(m);
	assert_int_equal(parse(types_then_container, wanted, 2, &m), 0);
	free((char *)wanted[1]);
	assert_null(cmb_as_meta_missing(m));
	const struct cmb_as_meta_class *c = cmb_as_meta_find(m, "DEVICES");
	assert_non_null(c);
	assert_string_equal(c->name, "SMS_R_System");
	assert_string_equal(c->keys[0], "ResourceId");
	assert_ptr_equal(cmb_as_meta_find(m, "sms_r_system"), c);
	assert_null(cmb_as_meta_find(m, "Others"));
	cmb_as_meta_free(m);

	/* the container came first: one pass is enough */
	assert_int_equal(parse(container_then_types, wanted, 1, &m), 0);
	assert_null(cmb_as_meta_missing(m));
	assert_int_equal(m->n_classes, 1);
	assert_string_equal(cmb_as_meta_find(m, "Devices")->name, "SMS_R_System");
	cmb_as_meta_free(m);

	/* a wanted set whose type the document does not define, once the type is wanted too */
	static const char no_type[] = EDMX_HEAD
		"<EntityContainer Name='C'><EntitySet Name='Devices' EntityType='AdminService.Gone'/>"
		"</EntityContainer>" EDMX_TAIL;
	wanted[1] = "Gone";
	assert_int_equal(parse(no_type, wanted, 1, &m), 0);
	assert_string_equal(cmb_as_meta_missing(m)[0], "Gone");
	cmb_as_meta_free(m);
	assert_fails(no_type, strlen(no_type), 0, wanted, 2, NULL, CMB_EPROTO,
		     ": EntitySet 'Devices' has EntityType 'Gone', which the document does not define");

	/* a wanted set that appears twice */
	static const char twice[] = EDMX_HEAD
		"<EntityContainer Name='C'><EntitySet Name='Devices' EntityType='AdminService.A'/>"
		"<EntitySet Name='Devices' EntityType='AdminService.B'/></EntityContainer>" EDMX_TAIL;
	assert_fails_at(twice, strlen(twice), 0, wanted, 1, NULL, CMB_EPROTO, "EntitySet 'Devices' appears twice");
}

/* ---- base types before and after ---------------------------------------------------- */

#define TYPE_A "<EntityType Name='A'><Key><PropertyRef Name='Id'/></Key><Property Name='Id' Type='Edm.Int64' Nullable='false'/></EntityType>"
#define TYPE_B "<EntityType Name='B' BaseType='AdminService.A'><Property Name='b1' Type='Edm.String'/></EntityType>"
#define TYPE_C "<EntityType Name='C' BaseType='self.B'><Property Name='c1' Type='Edm.Int32'/><Property Name='c2' Type='Edm.Int32'/></EntityType>"

static const char chain_expected[] =
	"class C base=B keys=Id\n"
	"  Id Edm.Int64 not-null\n"
	"  b1 Edm.String\n"
	"  c1 Edm.Int32\n"
	"  c2 Edm.Int32\n";

static void assert_chain(const struct cmb_as_meta *m)
{
	const struct cmb_as_meta_class *c = cmb_as_meta_find(m, "c");
	assert_non_null(c);
	struct cmb_buf b = CMB_BUF_INIT(1 << 16);
	cmb_buf_printf(&b, "class %s base=%s keys=", c->name, c->base_type);
	for (size_t k = 0; k < c->n_keys; k++)
		cmb_buf_printf(&b, "%s%s", k ? "," : "", c->keys[k]);
	cmb_buf_addstr(&b, "\n");
	for (size_t k = 0; k < c->n_props; k++)
		cmb_buf_printf(&b, "  %s %s%s\n", c->props[k].name, c->props[k].type,
			       c->props[k].nullable ? "" : " not-null");
	assert_string_equal(b.data, chain_expected);
	cmb_buf_free(&b);
	const struct cmb_as_meta_class *bc = cmb_as_meta_find(m, "B");
	assert_non_null(bc);
	assert_int_equal(bc->n_props, 2);
	assert_int_equal(bc->n_keys, 1);
	assert_int_equal(cmb_as_meta_find(m, "A")->n_props, 1);
}

static void test_base_types(void **state)
{
	struct cmb_as_meta *m = NULL;
	const char *wanted[4] = { "C" };

	/* bases after the class: kept in the same pass, transitively */
	static const char after[] = EDMX_HEAD TYPE_C "<EntityType Name='X'/>" TYPE_B TYPE_A EDMX_TAIL;
	assert_int_equal(parse(after, wanted, 1, &m), 0);
	assert_null(cmb_as_meta_missing(m));
	assert_int_equal(m->n_classes, 3);
	assert_string_equal(m->classes[0].name, "C");   /* document order */
	assert_string_equal(m->classes[2].name, "A");
	assert_chain(m);
	cmb_as_meta_free(m);

	/* bases before: one more pass per link */
	static const char before[] = EDMX_HEAD TYPE_A TYPE_B "<EntityType Name='X'/>" TYPE_C EDMX_TAIL;
	assert_int_equal(parse(before, wanted, 1, &m), 0);
	assert_int_equal(m->n_classes, 1);
	assert_int_equal(m->classes[0].n_props, 2);     /* its own only, until B is read */
	assert_string_equal(cmb_as_meta_missing(m)[0], "B");
	assert_null(cmb_as_meta_missing(m)[1]);
	cmb_as_meta_free(m);
	wanted[1] = "B";
	assert_int_equal(parse(before, wanted, 2, &m), 0);
	assert_string_equal(cmb_as_meta_missing(m)[0], "A");
	cmb_as_meta_free(m);
	wanted[2] = "A";
	assert_int_equal(parse(before, wanted, 3, &m), 0);
	assert_null(cmb_as_meta_missing(m));
	assert_chain(m);
	cmb_as_meta_free(m);

	/* a base already wanted is kept wherever it is */
	static const char mixed[] = EDMX_HEAD TYPE_A TYPE_C TYPE_B EDMX_TAIL;
	const char *w2[] = { "c", "a" };
	assert_int_equal(parse(mixed, w2, 2, &m), 0);
	assert_null(cmb_as_meta_missing(m));
	assert_chain(m);
	cmb_as_meta_free(m);

	/* one byte at a time, too */
	char *text = parse_text(after, strlen(after), 1, 0, wanted, 1);
	char *text2 = parse_text(after, strlen(after), 0, 0, wanted, 1);
	assert_string_equal(text, text2);
	free(text);
	free(text2);

	/* a base asked for by name and absent from the document */
	static const char absent[] = EDMX_HEAD TYPE_C EDMX_TAIL;
	assert_int_equal(parse(absent, wanted, 1, &m), 0);
	assert_string_equal(cmb_as_meta_missing(m)[0], "B");
	cmb_as_meta_free(m);
	assert_fails(absent, strlen(absent), 0, wanted, 2, NULL, CMB_EPROTO,
		     ": EntityType 'C' has BaseType 'B', which the document does not define");

	/* a cycle */
	static const char cycle[] = EDMX_HEAD
		"<EntityType Name='C' BaseType='AdminService.B'/><EntityType Name='B' BaseType='AdminService.C'/>" EDMX_TAIL;
	assert_fails(cycle, strlen(cycle), 0, wanted, 1, NULL, CMB_EPROTO, "comes back to itself");
	static const char self[] = EDMX_HEAD "<EntityType Name='C' BaseType='C'/>" EDMX_TAIL;
	assert_fails(self, strlen(self), 0, wanted, 1, NULL, CMB_EPROTO, "comes back to itself");
	static const char empty_base[] = EDMX_HEAD "<EntityType Name='C' BaseType='AdminService.'/>" EDMX_TAIL;
	assert_fails_at(empty_base, strlen(empty_base), 0, wanted, 1, NULL, CMB_EPROTO,
			"EntityType 'C' has an empty BaseType");
}

/* ---- refusals ------------------------------------------------------------------------- */

static const char billion_laughs[] =
	"<?xml version=\"1.0\"?>\n"
	"<!DOCTYPE lolz [\n"
	" <!ENTITY lol \"lol\">\n"
	" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
	" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
	" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
	" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
	" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
	" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
	" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
	" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
	" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
	"]>\n"
	"<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices>"
	"<Schema Namespace=\"&lol9;\"><EntityType Name=\"&lol9;\"/></Schema></edmx:DataServices></edmx:Edmx>\n";

static void test_dtd_refused(void **state)
{
	static const char *const w[] = { "SMS_R_System" };
	static const char *const docs[] = {
		billion_laughs,
		/* an external DTD pointing at a local file */
		"<?xml version=\"1.0\"?>\n<!DOCTYPE edmx:Edmx SYSTEM \"file:///etc/passwd\">\n"
		"<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"/>\n",
		/* an external entity through the network */
		"<?xml version=\"1.0\"?><!DOCTYPE Edmx [<!ENTITY xxe SYSTEM \"http://127.0.0.1:9/x\">]>"
		"<Edmx><DataServices><Schema Namespace=\"&xxe;\"/></DataServices></Edmx>",
		/* a parameter entity */
		"<!DOCTYPE Edmx [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]><Edmx/>",
		/* a public id, and an empty internal subset */
		"<!DOCTYPE Edmx PUBLIC \"-//X//DTD X//EN\" \"x.dtd\"><Edmx/>",
		"<!DOCTYPE Edmx []><Edmx/>",
		"<!DOCTYPE Edmx><Edmx/>",
	};
	old_loader = xmlGetExternalEntityLoader();
	xmlSetExternalEntityLoader(spy_loader);
	loader_calls = 0;
	for (size_t i = 0; i < COUNT(docs); i++) {
		static const size_t chunks[] = { 0, 1, 5 };
		for (size_t c = 0; c < COUNT(chunks); c++) {
			count_start();
			assert_fails_at(docs[i], strlen(docs[i]), chunks[c], w, 1, NULL, CMB_EPROTO,
					": DTDs and entities are not accepted in $metadata");
			count_stop();
			assert_true(mem_peak < ((size_t)256 << 10));   /* no expansion, not even a little */
		}
	}
	/* the message names where the DOCTYPE is */
	assert_int_equal(parse(docs[1], w, 1, NULL), CMB_EPROTO);
	assert_non_null(strstr(cmb_error_last(), WHERE ", line 2, column "));
	xmlSetExternalEntityLoader(old_loader);
	assert_int_equal(loader_calls, 0);

	/* entities that were never declared are not well-formed */
	static const char undeclared[] = EDMX_HEAD "<EntityType Name='&xxe;'/>" EDMX_TAIL;
	assert_fails_at(undeclared, strlen(undeclared), 0, w, 1, NULL, CMB_EPROTO, "Entity 'xxe' not defined");
	/* the predefined ones and character references are fine */
	static const char predefined[] = EDMX_HEAD "<EntityType Name='SMS_R_&#x53;ystem'>"
		"<Property Name='a&amp;b&lt;&gt;&quot;&apos;' Type='Edm.String'/>"
		"<Property Name='&#38;&amp;#38;&#x26;' Type='&amp;'/></EntityType>" EDMX_TAIL;
	struct cmb_as_meta *m = NULL;
	assert_int_equal(parse(predefined, w, 1, &m), 0);
	assert_int_equal(m->n_classes, 1);
	assert_string_equal(m->classes[0].props[0].name, "a&b<>\"'");
	assert_string_equal(m->classes[0].props[1].name, "&&#38;&");
	assert_string_equal(m->classes[0].props[1].type, "&");
	cmb_as_meta_free(m);
}

static void test_truncated(void **state)
{
	static const char *const w[] = { "SMS_R_System" };
	const size_t len = sizeof(site_doc) - 1;
	/* every cut but the one that only drops the final newline */
	for (size_t cut = 0; cut < len - 1; cut++) {
		int rc = parse_ex(site_doc, cut, 0, 0, w, 1, NULL, NULL);
		if (rc != CMB_EPROTO)
			print_error("cut at %zu: %d\n", cut, rc);
		assert_int_equal(rc, CMB_EPROTO);
		const char *msg = cmb_error_last();
		assert_true(strncmp(msg, WHERE ", line ", strlen(WHERE ", line ")) == 0);
		assert_non_null(strstr(msg, ", column "));
	}
	assert_int_equal(parse_ex(site_doc, len - 1, 0, 0, w, 1, NULL, NULL), 0);
	/* the exact message for one of them */
	assert_fails_at(site_doc, 600, 0, w, 1, NULL, CMB_EPROTO, WHERE ", line 12, column 60: ");
	assert_int_equal(parse_ex("", 0, 0, 0, w, 1, NULL, NULL), CMB_EPROTO);
	assert_int_equal(parse_ex("   \n", 4, 0, 0, w, 1, NULL, NULL), CMB_EPROTO);
}

static void test_not_csdl(void **state)
{
	static const char *const w[] = { "SMS_R_System" };
	static const char html[] = "<html><body>Service Unavailable</body></html>";
	assert_fails_at(html, strlen(html), 0, w, 1, NULL, CMB_EPROTO,
			"not a CSDL document: the root element is <html>, not <edmx:Edmx>");
	static const char json[] = "{\"error\":{\"code\":\"\",\"message\":\"An error has occurred.\"}}";
	assert_fails_at(json, strlen(json), 0, w, 1, NULL, CMB_EPROTO, "Document is empty");
	static const char two_roots[] = "<Edmx/><Edmx/>";
	assert_fails_at(two_roots, strlen(two_roots), 0, w, 1, NULL, CMB_EPROTO, "Extra content");
	static const char no_name[] = EDMX_HEAD "<EntityType/>" EDMX_TAIL;
	assert_fails_at(no_name, strlen(no_name), 0, w, 1, NULL, CMB_EPROTO, "<EntityType> has no Name");
	static const char no_type[] = EDMX_HEAD "<EntityType Name='SMS_R_System'><Property Name='x'/></EntityType>" EDMX_TAIL;
	assert_fails_at(no_type, strlen(no_type), 0, w, 1, NULL, CMB_EPROTO, "<Property> has no Type");
	/* a dropped class is not checked */
	assert_int_equal(parse(no_type, NULL, 0, NULL), 0);
	static const char no_ref[] = EDMX_HEAD "<EntityType Name='SMS_R_System'><Key><PropertyRef/></Key></EntityType>" EDMX_TAIL;
	assert_fails_at(no_ref, strlen(no_ref), 0, w, 1, NULL, CMB_EPROTO, "<PropertyRef> has no Name");
	static const char set_no_type[] = EDMX_HEAD "<EntityContainer><EntitySet Name='A'/></EntityContainer>" EDMX_TAIL;
	assert_fails_at(set_no_type, strlen(set_no_type), 0, w, 1, NULL, CMB_EPROTO, "<EntitySet> has no EntityType");
}

static void test_encodings(void **state)
{
	static const char *const w[] = { "Caf\xc3\xa9", "Euro" };
	struct cmb_as_meta *m = NULL;

	/* ISO-8859-1: the name comes back as UTF-8 */
	static const char latin1[] =
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
		"<Edmx><DataServices><Schema Namespace=\"AdminService\">"
		"<EntityType Name=\"Caf\xe9\"><Property Name=\"Gr\xfc\xdf\" Type=\"Edm.String\"/></EntityType>"
		"</Schema></DataServices></Edmx>";
	for (size_t chunk = 0; chunk < 3; chunk++) {
		assert_int_equal(parse_ex(latin1, strlen(latin1), chunk, 0, w, 2, NULL, &m), 0);
		assert_int_equal(m->n_classes, 1);
		assert_string_equal(m->classes[0].name, "Caf\xc3\xa9");
		assert_string_equal(m->classes[0].props[0].name, "Gr\xc3\xbc\xc3\x9f");
		cmb_as_meta_free(m);
	}

	/* windows-1252 (through iconv): 0x80 is the euro sign */
	static const char cp1252[] =
		"<?xml version=\"1.0\" encoding=\"windows-1252\"?>"
		"<Edmx><DataServices><Schema><EntityType Name=\"Euro\"><Property Name=\"\x80\" Type=\"Edm.String\"/>"
		"</EntityType></Schema></DataServices></Edmx>";
	assert_int_equal(parse(cp1252, w, 2, &m), 0);
	assert_string_equal(m->classes[0].props[0].name, "\xe2\x82\xac");
	cmb_as_meta_free(m);

	/* UTF-16LE with a byte order mark */
	static const char ascii[] =
		"<?xml version=\"1.0\" encoding=\"UTF-16\"?><Edmx><DataServices><Schema Namespace=\"N\">"
		"<EntityType Name=\"Euro\"><Property Name=\"p\" Type=\"Edm.String\"/></EntityType>"
		"</Schema></DataServices></Edmx>";
	size_t n = strlen(ascii);
	char *u16 = xmalloc(2 + 2 * n);
	u16[0] = (char)0xff;
	u16[1] = (char)0xfe;
	for (size_t i = 0; i < n; i++) {
		u16[2 + 2 * i] = ascii[i];
		u16[3 + 2 * i] = 0;
	}
	for (size_t chunk = 0; chunk < 4; chunk++) {
		assert_int_equal(parse_ex(u16, 2 + 2 * n, chunk, 0, w, 2, NULL, &m), 0);
		assert_string_equal(m->ns, "N");
		assert_int_equal(m->n_classes, 1);
		assert_string_equal(m->classes[0].props[0].name, "p");
		assert_int_equal(m->bytes, 2 + 2 * n);
		cmb_as_meta_free(m);
	}
	free(u16);

	/* garbage */
	static const char bad_utf8[] = EDMX_HEAD "<EntityType Name='Caf\xe9'/>" EDMX_TAIL;
	assert_fails_at(bad_utf8, strlen(bad_utf8), 0, w, 2, NULL, CMB_EPROTO, "not proper UTF-8");
	static const char unknown[] = "<?xml version='1.0' encoding='x-no-such-thing'?><Edmx/>";
	assert_fails_at(unknown, strlen(unknown), 0, w, 2, NULL, CMB_EPROTO, "Unsupported encoding x-no-such-thing");
	static const char binary[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe\x00\x01<";
	assert_fails_at(binary, sizeof(binary) - 1, 0, w, 2, NULL, CMB_EPROTO, "");
	static const char nul[] = "<Edmx>\0</Edmx>";
	assert_fails_at(nul, sizeof(nul) - 1, 0, w, 2, NULL, CMB_EPROTO, "");
	/* control characters in libxml2's message are not passed on */
	static const char ctl[] = "<Edmx><a\x01/></Edmx>";
	assert_fails_at(ctl, sizeof(ctl) - 1, 0, w, 2, NULL, CMB_EPROTO, "");
	for (const char *s = cmb_error_last(); *s; s++)
		assert_true((unsigned char)*s >= 0x20);
}

/* Shapes libxml2 would buffer whole or check pairwise are refused before it sees them. */
static void test_hostile_shapes(void **state)
{
	static const char *const w[] = { "SMS_R_System" };
	struct cmb_buf doc = CMB_BUF_INIT((size_t)64 << 20);
	struct cmb_as_meta *m = NULL;

	/* attributes: 64 are fine, 65 are not, 100000 are refused at once */
	static const unsigned counts[] = { 64, 65, 100000 };
	for (size_t c = 0; c < COUNT(counts); c++) {
		cmb_buf_reset(&doc);
		cmb_buf_addstr(&doc, EDMX_HEAD "<EntityType Name='SMS_R_System' ");
		for (unsigned i = 1; i < counts[c]; i++)
			cmb_buf_printf(&doc, " a%u='='", i);
		cmb_buf_addstr(&doc, "/>" EDMX_TAIL);
		double t0 = cmb_now_mono();
		int rc = parse_ex(doc.data, doc.len, BIG_PIECE, 0, w, 1, NULL, NULL);
		assert_true(cmb_now_mono() - t0 < 1.0);
		if (counts[c] == 64) {
			assert_int_equal(rc, 0);
			continue;
		}
		assert_int_equal(rc, CMB_EPROTO);
		char *want = xasprintf(WHERE ": byte %zu: an element has more than 64 attributes (max_attrs)",
				       strlen(EDMX_HEAD));
		assert_string_equal(cmb_error_last(), want);
		free(want);
	}
	/* namespace declarations count too */
	cmb_buf_reset(&doc);
	cmb_buf_addstr(&doc, "<Edmx");
	for (unsigned i = 0; i < 70; i++)
		cmb_buf_printf(&doc, " xmlns:n%u='urn:%u'", i, i);
	cmb_buf_addstr(&doc, "/>");
	assert_fails(doc.data, doc.len, 0, w, 1, NULL, CMB_EPROTO, "more than 64 attributes");

	/* one tag, comment, PI or declaration of a megabyte: refused, libxml2 never holds it */
	static const char *const open_close[][2] = {
		{ "<EntityType Name='SMS_R_System' x='", "'/>" },
		{ "<EntityType Name=\"SMS_R_System\" x=\"", "\"/>" },
		{ "<!--", "-->" },
		{ "<?pi ", "?>" },
		{ "<![CDATA[", "]]>" },
		{ "<!NOTATION x SYSTEM '", "'>" },
	};
	for (size_t k = 0; k < COUNT(open_close); k++) {
		cmb_buf_reset(&doc);
		cmb_buf_addstr(&doc, EDMX_HEAD);
		cmb_buf_addstr(&doc, open_close[k][0]);
		for (unsigned i = 0; i < (1u << 20) / 8; i++)
			cmb_buf_addstr(&doc, "]] - ? >");      /* never an end for any of them */
		cmb_buf_addstr(&doc, open_close[k][1]);
		cmb_buf_addstr(&doc, EDMX_TAIL);
		count_start();
		int rc = parse_ex(doc.data, doc.len, BIG_PIECE, 0, w, 1, NULL, NULL);
		count_stop();
		/* a declaration ends at its first '>' for the pre-scan, and libxml2 refuses it there */
		assert_int_equal(rc, k == 5 ? CMB_EPROTO : CMB_ETOOBIG);
		if (rc == CMB_ETOOBIG) {
			char *want = xasprintf(WHERE ": byte %zu: a tag, comment, CDATA section or processing "
					       "instruction runs past 65536 bytes (max_markup)", strlen(EDMX_HEAD));
			assert_string_equal(cmb_error_last(), want);
			free(want);
		}
		assert_true(mem_peak < ((size_t)1 << 20));
	}

	/* the same just under the limit is fine; quotes, '>' in comments, PIs and CDATA do not end them early */
	cmb_buf_reset(&doc);
	cmb_buf_addstr(&doc, EDMX_HEAD "<!-- a='b' <c d='e'> - > --><?pi x=\"'\" > ? > ?>"
		       "<EntityType Name='SMS_R_System' x='a\"b&gt;c' y=\"'>'\"><Annotation String='");
	for (unsigned i = 0; i < 60000 / 4; i++)
		cmb_buf_addstr(&doc, ">=\"x");
	cmb_buf_addstr(&doc, "'><String><![CDATA[ <a b='c' d=e f=g> ]] ] > ]]></String></Annotation>"
		       "<Property Name='p' Type='Edm.String'/></EntityType>" EDMX_TAIL);
	for (size_t chunk = 0; chunk < 8; chunk += 7) {
		assert_int_equal(parse_ex(doc.data, doc.len, chunk, 0, w, 1, NULL, &m), 0);
		assert_int_equal(m->n_classes, 1);
		assert_int_equal(m->classes[0].n_props, 1);
		cmb_as_meta_free(m);
	}
	struct cmb_as_meta_limits lim = { .max_markup = 1000 };
	assert_fails(doc.data, doc.len, 0, w, 1, &lim, CMB_ETOOBIG, "runs past 1000 bytes (max_markup)");

	/* long text is streamed: big, and libxml2 stays small */
	cmb_buf_reset(&doc);
	cmb_buf_addstr(&doc, EDMX_HEAD "<EntityType Name='SMS_R_System'><Annotation><String>");
	for (unsigned i = 0; i < (40u << 20) / 32; i++)
		cmb_buf_addstr(&doc, "text &amp; text &#x20; text > 1");
	cmb_buf_addstr(&doc, "</String></Annotation><Property Name='p' Type='Edm.String'/></EntityType>" EDMX_TAIL);
	count_start();
	int rc = parse_ex(doc.data, doc.len, BIG_PIECE, 0, w, 1, NULL, &m);
	count_stop();
	if (rc)
		print_error("%s\n", cmb_error_last());
	assert_int_equal(rc, 0);
	assert_int_equal(m->classes[0].n_props, 1);
	cmb_as_meta_free(m);
	print_message("40 MB of text in one element: libxml2 peak %zu bytes\n", mem_peak);
	assert_true(mem_peak < ((size_t)2 << 20));

	/*
	 * UTF-16 characters with a '<' or '"' byte in them are not markup to the
	 * pre-scan: read byte by byte, U+3C22 U+2241 in text would open a tag and
	 * a quoted value that runs to the end of the document.
	 */
	static const char ascii_le[] = "<?xml version='1.0' encoding='UTF-16'?>"
		"<Edmx><DataServices><Schema><EntityType Name='SMS_R_System'><Annotation><String>@</String>"
		"</Annotation><Property Name='@' Type='Edm.String'/><Property Name='more' Type='Edm.String'/>"
		"<Property Name='and more' Type='Edm.String'/></EntityType></Schema></DataServices></Edmx>";
	static const unsigned short odd[] = { 0x3C22, 0x2241, 0x043C };
	struct cmb_as_meta_limits small = { .max_markup = 200 };
	/* (little-endian with a declaration and no byte order mark, big-endian with a mark and none) */
	for (int be = 0; be < 2; be++) {
		const char *ascii = be ? ascii_le + 39 : ascii_le;
		size_t n = strlen(ascii);
		cmb_buf_reset(&doc);
		if (be)
			cmb_buf_add(&doc, "\xfe\xff", 2);
		for (size_t i = 0; i < n; i++) {
			for (size_t k = 0; k < (ascii[i] == '@' ? COUNT(odd) : 1); k++) {
				unsigned u = ascii[i] == '@' ? odd[k] : (unsigned char)ascii[i];
				unsigned char b[2] = { (unsigned char)(be ? u >> 8 : u), (unsigned char)(be ? u : u >> 8) };
				cmb_buf_add(&doc, b, 2);
			}
		}
		for (size_t chunk = 0; chunk < 2; chunk++) {
			rc = parse_ex(doc.data, doc.len, chunk, 0, w, 1, &small, &m);
			if (rc)
				print_error("%s\n", cmb_error_last());
			assert_int_equal(rc, 0);
			assert_int_equal(m->classes[0].n_props, 3);
			assert_string_equal(m->classes[0].props[0].name, "\xe3\xb0\xa2\xe2\x89\x81\xd0\xbc");
			cmb_as_meta_free(m);
		}
	}
	cmb_buf_free(&doc);
}

/* ---- limits --------------------------------------------------------------------------- */

static void test_limits(void **state)
{
	static const char *const w[] = { "SMS_R_System", "Devices" };
	const size_t len = sizeof(site_doc) - 1;
	struct cmb_as_meta_limits lim = { 0 };

	/* max_bytes: exactly the size is fine, one byte less is not */
	lim.max_bytes = len;
	assert_int_equal(parse_ex(site_doc, len, 100, 0, w, 1, &lim, NULL), 0);
	lim.max_bytes = len - 1;
	char *want = xasprintf(WHERE ": the document is larger than the limit of %zu bytes (max_bytes)", len - 1);
	for (size_t chunk = 0; chunk < 200; chunk += 100) {
		assert_int_equal(parse_ex(site_doc, len, chunk, 0, w, 1, &lim, NULL), CMB_ETOOBIG);
		assert_string_equal(cmb_error_last(), want);
	}
	free(want);

	/* max_depth: the default, and a smaller one */
	struct cmb_buf deep = CMB_BUF_INIT(1 << 20);
	cmb_buf_addstr(&deep, EDMX_HEAD "<EntityType Name='SMS_R_System'><Property Name='p' Type='Edm.String'>");
	for (int i = 0; i < 70; i++)
		cmb_buf_addstr(&deep, "<Annotation>");
	for (int i = 0; i < 70; i++)
		cmb_buf_addstr(&deep, "</Annotation>");
	cmb_buf_addstr(&deep, "</Property></EntityType>" EDMX_TAIL);
	assert_fails_at(deep.data, deep.len, 0, w, 1, NULL, CMB_EPROTO, "elements are nested deeper than 64 (max_depth)");
	assert_fails_at(deep.data, deep.len, 0, NULL, 0, NULL, CMB_EPROTO, "nested deeper than 64");  /* skipped too */
	lim = (struct cmb_as_meta_limits){ .max_depth = 6 };
	assert_int_equal(parse_ex(site_doc, len, 0, 0, w, 1, &lim, NULL), 0);   /* 6 deep at most */
	lim.max_depth = 5;
	assert_fails_at(site_doc, len, 0, w, 1, &lim, CMB_EPROTO,
			WHERE ", line 10, column 41: elements are nested deeper than 5 (max_depth)");
	/* deeper than libxml2's own limit when ours is lifted */
	cmb_buf_reset(&deep);
	cmb_buf_addstr(&deep, "<Edmx>");
	for (int i = 0; i < 300; i++)
		cmb_buf_addstr(&deep, "<a>");
	lim.max_depth = 100000;
	assert_fails_at(deep.data, deep.len, 0, w, 1, &lim, CMB_EPROTO, "");
	cmb_buf_free(&deep);

	/* max_name: names, types, set names, namespaces */
	lim = (struct cmb_as_meta_limits){ .max_name = 20 };
	assert_int_equal(parse_ex(site_doc, len, 0, 0, w, 1, &lim, NULL), CMB_ETOOBIG);
	assert_string_equal(cmb_error_last(), WHERE ", line 14, column 65: <Property> Type "
			    "'Collection(Edm.String)' is longer than 20 bytes (max_name)");
	lim.max_name = 64;
	assert_int_equal(parse_ex(site_doc, len, 0, 0, w, 1, &lim, NULL), 0);
	struct cmb_buf big = CMB_BUF_INIT(1 << 20);
	cmb_buf_addstr(&big, EDMX_HEAD "<EntityType Name='SMS_R_System'><Property Name='");
	for (int i = 0; i < 2000; i++)
		cmb_buf_addstr(&big, "n");
	cmb_buf_addstr(&big, "' Type='Edm.String'/></EntityType>" EDMX_TAIL);
	assert_fails_at(big.data, big.len, 0, w, 1, NULL, CMB_ETOOBIG,
			"<Property> Name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' "
			"is longer than 1024 bytes (max_name)");
	assert_int_equal(parse_ex(big.data, big.len, 0, 0, NULL, 0, NULL, NULL), 0);  /* in a dropped class */
	cmb_buf_reset(&big);
	cmb_buf_addstr(&big, "<Edmx><DataServices><Schema Namespace='");
	for (int i = 0; i < 1025; i++)
		cmb_buf_addstr(&big, "\xc3\xa9");
	cmb_buf_addstr(&big, "'/></DataServices></Edmx>");
	assert_fails_at(big.data, big.len, 0, NULL, 0, NULL, CMB_ETOOBIG, "<Schema> Namespace '");
	assert_non_null(strstr(cmb_error_last(), "\xc3\xa9...' is longer than 1024 bytes"));  /* cut whole */

	/* max_props: own, and with those inherited */
	static const char four[] = EDMX_HEAD
		"<EntityType Name='SMS_R_System' BaseType='B'><Property Name='a' Type='Edm.Int32'/>"
		"<Property Name='b' Type='Edm.Int32'/><Property Name='c' Type='Edm.Int32'/>"
		"<Property Name='d' Type='Edm.Int32'/></EntityType>"
		"<EntityType Name='B'><Property Name='e' Type='Edm.Int32'/></EntityType>" EDMX_TAIL;
	lim = (struct cmb_as_meta_limits){ .max_props = 3 };
	assert_fails_at(four, strlen(four), 0, w, 1, &lim, CMB_ETOOBIG,
			"EntityType 'SMS_R_System' has more than 3 properties (max_props)");
	lim.max_props = 4;
	assert_fails(four, strlen(four), 0, w, 1, &lim, CMB_ETOOBIG,
		     WHERE ": EntityType 'SMS_R_System' has more than 4 properties with those it inherits (max_props)");
	lim.max_props = 5;
	assert_int_equal(parse_ex(four, strlen(four), 0, 0, w, 1, &lim, NULL), 0);
	lim = (struct cmb_as_meta_limits){ .max_props = 1 };
	static const char keys[] = EDMX_HEAD "<EntityType Name='SMS_R_System'><Key><PropertyRef Name='a'/>"
		"<PropertyRef Name='b'/></Key></EntityType>" EDMX_TAIL;
	assert_fails_at(keys, strlen(keys), 0, w, 1, &lim, CMB_ETOOBIG, "has more than 1 key properties (max_props)");

	/* max_classes: the wanted ones and their bases */
	lim = (struct cmb_as_meta_limits){ .max_classes = 1 };
	assert_fails_at(four, strlen(four), 0, w, 1, &lim, CMB_ETOOBIG, "more than 1 classes to keep");

	/* max_kept: the whole result */
	lim = (struct cmb_as_meta_limits){ .max_kept = 300 };
	assert_fails_at(site_doc, len, 0, site_wanted, COUNT(site_wanted), &lim, CMB_ETOOBIG,
			"the classes and sets kept would take more than 300 bytes (max_kept)");
	struct cmb_as_meta *m = NULL;
	assert_int_equal(parse(site_doc, site_wanted, COUNT(site_wanted), &m), 0);
	lim.max_kept = m->kept_bytes;
	cmb_as_meta_free(m);
	assert_int_equal(parse_ex(site_doc, len, 0, 0, site_wanted, COUNT(site_wanted), &lim, NULL), 0);
	lim.max_kept--;
	assert_int_equal(parse_ex(site_doc, len, 0, 0, site_wanted, COUNT(site_wanted), &lim, NULL), CMB_ETOOBIG);

	/* many sets named alike cannot make the parser look for many types */
	cmb_buf_reset(&big);
	cmb_buf_addstr(&big, EDMX_HEAD "<EntityContainer>");
	for (int i = 0; i < 3; i++)
		cmb_buf_printf(&big, "<EntitySet Name='Devices' EntityType='T%d'/>", i);
	cmb_buf_addstr(&big, "</EntityContainer>" EDMX_TAIL);
	assert_fails_at(big.data, big.len, 0, w, 2, NULL, CMB_EPROTO, "EntitySet 'Devices' appears twice");
	cmb_buf_free(&big);
}

static void test_misuse(void **state)
{
	static const char *const w[] = { "A" };
	const char *bad[] = { "A", "" };
	struct cmb_as_meta_parser *p = NULL;
	struct cmb_as_meta *m = NULL;
	assert_int_equal(cmb_as_meta_parser_new(NULL, WHERE, w, 1, NULL), CMB_EINVAL);
	assert_int_equal(cmb_as_meta_parser_new(&p, WHERE, NULL, 1, NULL), CMB_EINVAL);
	assert_int_equal(cmb_as_meta_parser_new(&p, WHERE, bad, 2, NULL), CMB_EINVAL);
	bad[1] = NULL;
	assert_int_equal(cmb_as_meta_parser_new(&p, WHERE, bad, 2, NULL), CMB_EINVAL);
	assert_null(p);

	/* finish once; feeding or finishing after that is refused */
	assert_int_equal(cmb_as_meta_parser_new(&p, NULL, w, 1, NULL), 0);
	assert_int_equal(cmb_as_meta_feed(p, "<Edmx/>", 7), 0);
	assert_int_equal(cmb_as_meta_feed(p, NULL, 0), 0);
	assert_int_equal(cmb_as_meta_finish(p, &m), 0);
	assert_non_null(m);
	assert_int_equal(cmb_as_meta_feed(p, "x", 1), CMB_EINVAL);
	struct cmb_as_meta *m2 = NULL;
	assert_int_equal(cmb_as_meta_finish(p, &m2), CMB_EINVAL);
	assert_null(m2);
	cmb_as_meta_parser_free(p);
	cmb_as_meta_free(m);
	cmb_as_meta_parser_free(NULL);

	/* freed mid-document, with a class half read: no leak */
	assert_int_equal(cmb_as_meta_parser_new(&p, WHERE, w, 1, NULL), 0);
	assert_int_equal(cmb_as_meta_feed(p, EDMX_HEAD "<EntityType Name='A'><Key><PropertyRef Name='k'/>",
					  strlen(EDMX_HEAD) + 46), 0);
	cmb_as_meta_parser_free(p);

	/* sticky after an error, with its message */
	assert_int_equal(cmb_as_meta_parser_new(&p, WHERE, w, 1, NULL), 0);
	assert_int_equal(cmb_as_meta_feed(p, "<Edmx><</Edmx>", 14), CMB_EPROTO);
	char *msg = xstrdup(cmb_error_last());
	cmb_error_set(CMB_ERROR, "something else");
	assert_int_equal(cmb_as_meta_feed(p, "<Edmx/>", 7), CMB_EPROTO);
	assert_string_equal(cmb_error_last(), msg);
	assert_int_equal(cmb_as_meta_finish(p, &m), CMB_EPROTO);
	assert_string_equal(cmb_error_last(), msg);
	free(msg);
	cmb_as_meta_parser_free(p);
}

/* ---- a site-sized document -------------------------------------------------------------- */

#define BIG_TYPES 10000u
#define BIG_PROPS 85u

static const char *const big_edm[] = { "Edm.String", "Edm.Int64", "Edm.DateTimeOffset", "Collection(Edm.String)",
				       "Edm.Boolean" };

/* The BaseType of generated type i, or 0 for none (type 0 is never a base). */
static unsigned big_base(unsigned i)
{
	switch (i) {
	case 4000: return 6000;   /* after, and its own base after that */
	case 6000: return 9000;
	case 8000: return 3;      /* before: missing */
	default: return i % 97 == 1 ? i + 1 : 0;   /* dropped classes with bases */
	}
}

/* Buffers generated text and feeds it in BIG_PIECE pieces. */
struct sink {
	struct cmb_as_meta_parser *p;
	char buf[4 * BIG_PIECE];
	size_t len;
	size_t total;
};

static void sink_put(struct sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_put(struct sink *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->buf + s->len, sizeof(s->buf) - s->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(s->buf) - s->len);
	s->len += (size_t)n;
	if (s->len >= BIG_PIECE) {
		assert_int_equal(cmb_as_meta_feed(s->p, s->buf, BIG_PIECE), 0);
		s->total += BIG_PIECE;
		s->len -= BIG_PIECE;
		memmove(s->buf, s->buf + BIG_PIECE, s->len);
	}
}

static void big_document(struct sink *s)
{
	sink_put(s, "%s", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		 "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n"
		 "  <edmx:DataServices>\n"
		 "    <Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n");
	for (unsigned i = 0; i < BIG_TYPES; i++) {
		unsigned b = big_base(i);
		if (b)
			sink_put(s, "      <EntityType Name=\"SMS_G_Class%05u\" BaseType=\"AdminService.SMS_G_Class%05u\">\n", i, b);
		else
			sink_put(s, "      <EntityType Name=\"SMS_G_Class%05u\">\n"
				 "        <Key><PropertyRef Name=\"P00_%05u\"/></Key>\n", i, i);
		for (unsigned j = 0; j < BIG_PROPS; j++) {
			sink_put(s, "        <Property Name=\"P%02u_%05u\" Type=\"%s\"%s/>\n", j, i, big_edm[(i + j) % 5],
				 j == 0 ? " Nullable=\"false\"" : "");
			if (j == 40 && i % 10 == 0)
				sink_put(s, "        <NavigationProperty Name=\"Nav\" Type=\"AdminService.SMS_G_Class00000\">"
					 "<Annotation Term=\"Core.Description\" String=\"d\"/></NavigationProperty>\n");
		}
		sink_put(s, "      </EntityType>\n");
	}
	sink_put(s, "      <Action Name=\"InitiateClientOperation\" IsBound=\"true\"/>\n"
		 "      <EntityContainer Name=\"Container\">\n");
	for (unsigned i = 0; i < BIG_TYPES; i++)
		sink_put(s, "        <EntitySet Name=\"SMS_G_Class%05u\" EntityType=\"AdminService.SMS_G_Class%05u\"/>\n", i, i);
	sink_put(s, "        <EntitySet Name=\"Devices\" EntityType=\"AdminService.SMS_G_Class00123\"/>\n");
	sink_put(s, "      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
	if (s->len) {
		assert_int_equal(cmb_as_meta_feed(s->p, s->buf, s->len), 0);
		s->total += s->len;
		s->len = 0;
	}
}

/* Checks one kept class against what big_document() wrote for it and its bases. */
static void big_check_class(const struct cmb_as_meta *m, unsigned i)
{
	char name[32];
	snprintf(name, sizeof(name), "sms_g_class%05u", i);
	const struct cmb_as_meta_class *c = cmb_as_meta_find(m, name);
	assert_non_null(c);
	snprintf(name, sizeof(name), "SMS_G_Class%05u", i);
	assert_string_equal(c->name, name);
	unsigned chain[8], n = 0;
	for (unsigned k = i; ; k = big_base(k)) {
		chain[n++] = k;
		if (!big_base(k) || big_base(k) == 3)
			break;
	}
	unsigned root = chain[n - 1];
	if (big_base(root) == 3) {
		assert_int_equal(c->n_keys, 0);   /* its base is missing */
	} else {
		assert_int_equal(c->n_keys, 1);
		snprintf(name, sizeof(name), "P00_%05u", root);
		assert_string_equal(c->keys[0], name);
	}
	assert_int_equal(c->n_props, n * BIG_PROPS);
	size_t at = 0;
	while (n--) {
		unsigned k = chain[n];
		for (unsigned j = 0; j < BIG_PROPS; j++, at++) {
			snprintf(name, sizeof(name), "P%02u_%05u", j, k);
			assert_string_equal(c->props[at].name, name);
			assert_string_equal(c->props[at].type, big_edm[(k + j) % 5]);
			assert_int_equal(c->props[at].nullable, j != 0);
		}
	}
}

static void test_site_sized_document(void **state)
{
	static const char *const wanted[] = {
		"sms_g_class00017", "SMS_G_Class02500", "SMS_G_CLASS04000", "SMS_G_Class05003", "SMS_G_Class08000",
		"SMS_G_Class09999", "Devices", "InitiateClientOperation", "NotInTheDocument",
	};
	static const unsigned kept[] = { 17, 2500, 4000, 5003, 6000, 8000, 9000, 9999 };
	struct sink *s = xcalloc(1, sizeof(*s));
	struct cmb_as_meta *m = NULL;

	double t0 = cmb_now_mono();
	count_start();
	assert_int_equal(cmb_as_meta_parser_new(&s->p, WHERE, wanted, COUNT(wanted), NULL), 0);
	big_document(s);
	assert_int_equal(cmb_as_meta_finish(s->p, &m), 0);
	cmb_as_meta_parser_free(s->p);
	count_stop();
	double secs = cmb_now_mono() - t0;

	assert_true(s->total >= 50u * 1000 * 1000);
	assert_int_equal(m->bytes, s->total);
	assert_int_equal(m->n_types_seen, BIG_TYPES);
	assert_string_equal(m->ns, "AdminService");
	assert_int_equal(m->n_classes, COUNT(kept));
	for (size_t i = 0; i < COUNT(kept); i++) {
		char name[32];
		snprintf(name, sizeof(name), "SMS_G_Class%05u", kept[i]);
		assert_string_equal(m->classes[i].name, name);   /* document order */
		big_check_class(m, kept[i]);
	}
	assert_int_equal(m->n_sets, BIG_TYPES + 1);
	assert_string_equal(m->entity_sets[BIG_TYPES], "Devices");
	assert_int_equal(m->n_actions, 1);
	const char *const *missing = cmb_as_meta_missing(m);
	assert_non_null(missing);
	assert_string_equal(missing[0], "SMS_G_Class00003");
	assert_string_equal(missing[1], "SMS_G_Class00123");
	assert_null(missing[2]);

	/* what the result holds: the sets, and the kept classes only */
	size_t set_bytes = 0, class_bytes = 0;
	for (size_t i = 0; i < m->n_sets; i++)
		set_bytes += strlen(m->entity_sets[i]) + strlen(m->entity_set_types[i]) + 2 + 2 * sizeof(char *);
	for (size_t i = 0; i < m->n_classes; i++)
		for (size_t k = 0; k < m->classes[i].n_props; k++)
			class_bytes += strlen(m->classes[i].props[k].name) + strlen(m->classes[i].props[k].type) + 2 +
				       sizeof(struct cmb_as_meta_prop);
	assert_true(m->kept_bytes >= set_bytes + class_bytes);
	assert_true(m->kept_bytes - set_bytes < ((size_t)96 << 10));

	print_message("site-sized $metadata: %zu bytes, %u types, in %.2f s (%.0f MB/s); libxml2 peak %zu bytes; "
		      "result %zu bytes (%zu in sets)\n", s->total, BIG_TYPES, secs, s->total / secs / 1e6, mem_peak,
		      m->kept_bytes, set_bytes);
	assert_true(mem_peak < ((size_t)2 << 20));
	cmb_as_meta_free(m);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_document),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_optional_parts),
		cmocka_unit_test(test_set_named_unlike_type),
		cmocka_unit_test(test_base_types),
		cmocka_unit_test(test_dtd_refused),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_not_csdl),
		cmocka_unit_test(test_encodings),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_hostile_shapes),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_site_sized_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
