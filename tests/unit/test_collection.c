/*
 * test_collection.c - cmb_map_collection: the exact configManagerCollection
 * JSON (docs/wire-format.md §5) and its hash for a full and a minimal
 * collection, createdDateTime kept from the first upload, dates normalised
 * to UTC, names repaired to UTF-8, and the collection it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mapping/collection.h"

#define UNSET "0001-01-01T00:00:00Z"

struct mapped {
	char *json;
	size_t len;
	char hash[65];
	char created[21];
};

static void map_ok(const struct cmb_map_collection_in *in, struct mapped *m)
{
	char *reason = NULL;
	memset(m, 0, sizeof(*m));
	assert_int_equal(cmb_map_collection(in, &m->json, &m->len, m->hash, m->created, &reason), 0);
	assert_null(reason);
	assert_int_equal(m->len, strlen(m->json));
}

static const struct cmb_map_collection_in full = {
	.collection_id = "PS100012", .name = "Finance laptops", .last_change = "2026-11-20T08:12:00Z",
	.hierarchy_id = "PS1", .hierarchy_name = "Contoso Primary Site", .created = "2026-01-04T10:00:00Z",
};

static void full_collection(void **state)
{
	(void)state;
	struct mapped m;
	map_ok(&full, &m);
	assert_string_equal(m.json, "{\"collectionIdentifier\":\"PS100012\",\"displayName\":\"Finance laptops\","
				    "\"hierarchyName\":\"Contoso Primary Site\",\"hierarchyIdentifier\":\"PS1\","
				    "\"createdDateTime\":\"2026-01-04T10:00:00Z\","
				    "\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}");
	/* SHA-256 of exactly that text (python3 hashlib). */
	assert_string_equal(m.hash, "90d8b1271c3f7321ee395bc5d377d945d7d9aa2660eb61ff271d1d24a9da9ce1");
	assert_string_equal(m.created, "2026-01-04T10:00:00Z");
	free(m.json);
}

/* Only the CollectionID: names are null, both dates Graph's "unset" (they are not nullable). */
static void minimal_collection(void **state)
{
	(void)state;
	const struct cmb_map_collection_in in = { .collection_id = "SMS00001" };
	struct mapped m;
	map_ok(&in, &m);
	assert_string_equal(m.json, "{\"collectionIdentifier\":\"SMS00001\",\"displayName\":null,"
				    "\"hierarchyName\":null,\"hierarchyIdentifier\":null,"
				    "\"createdDateTime\":\"" UNSET "\",\"lastModifiedDateTime\":\"" UNSET "\"}");
	assert_string_equal(m.hash, "e3d75fbf1959d7bd4036b4729df8c3880bff1c06c4a1ef6e20278a70f601fe53");
	assert_string_equal(m.created, UNSET);
	free(m.json);
}

/*
 * The first upload has no createdDateTime yet: it is the LastChangeTime of
 * that upload, handed back to be kept. A later upload passes it in: the
 * collection changed (a new LastChangeTime) but was created when first seen.
 */
static void created_kept(void **state)
{
	(void)state;
	struct cmb_map_collection_in in = full;
	in.created = NULL;
	in.last_change = "2026-03-01T07:00:00Z";
	struct mapped first;
	map_ok(&in, &first);
	assert_string_equal(first.created, "2026-03-01T07:00:00Z");
	assert_non_null(strstr(first.json, ",\"createdDateTime\":\"2026-03-01T07:00:00Z\","
					   "\"lastModifiedDateTime\":\"2026-03-01T07:00:00Z\"}"));

	in.created = first.created;
	in.last_change = "2026-11-20T08:12:00Z";
	struct mapped later;
	map_ok(&in, &later);
	assert_string_equal(later.created, "2026-03-01T07:00:00Z");
	assert_string_equal(later.json, "{\"collectionIdentifier\":\"PS100012\",\"displayName\":\"Finance laptops\","
					"\"hierarchyName\":\"Contoso Primary Site\",\"hierarchyIdentifier\":\"PS1\","
					"\"createdDateTime\":\"2026-03-01T07:00:00Z\","
					"\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}");
	assert_string_not_equal(later.hash, first.hash);

	/* The same collection again: the same text, the same hash (nothing to upload). */
	struct mapped again;
	map_ok(&in, &again);
	assert_string_equal(again.json, later.json);
	assert_string_equal(again.hash, later.hash);
	free(first.json);
	free(later.json);
	free(again.json);
}

/* Offsets become UTC, fractions are cut; an unreadable created falls back to LastChangeTime. */
static void dates_normalised(void **state)
{
	(void)state;
	struct cmb_map_collection_in in = full;
	in.last_change = "2026-11-20T09:12:00.987+01:00";
	in.created = "not a date";
	struct mapped m;
	map_ok(&in, &m);
	assert_string_equal(m.created, "2026-11-20T08:12:00Z");
	assert_non_null(strstr(m.json, ",\"createdDateTime\":\"2026-11-20T08:12:00Z\","
				       "\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}"));
	free(m.json);

	in.last_change = "yesterday";
	in.created = NULL;
	map_ok(&in, &m);
	assert_string_equal(m.created, UNSET);
	assert_non_null(strstr(m.json, ",\"createdDateTime\":\"" UNSET "\",\"lastModifiedDateTime\":\"" UNSET "\"}"));
	free(m.json);
}

/* Names from the site that are not UTF-8 reach the tenant repaired (U+FFFD per bad subpart), never raw. */
static void utf8_repaired(void **state)
{
	(void)state;
	struct cmb_map_collection_in in = full;
	in.name = "Caf\xe9 \xff\xfe laptops";
	in.hierarchy_name = "M\xc3\xbcnchen \xc3";
	in.collection_id = "PS1\x80" "0012";
	struct mapped m;
	map_ok(&in, &m);
	assert_string_equal(m.json, "{\"collectionIdentifier\":\"PS1\xef\xbf\xbd" "0012\","
				    "\"displayName\":\"Caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd laptops\","
				    "\"hierarchyName\":\"M\xc3\xbcnchen \xef\xbf\xbd\",\"hierarchyIdentifier\":\"PS1\","
				    "\"createdDateTime\":\"2026-01-04T10:00:00Z\","
				    "\"lastModifiedDateTime\":\"2026-11-20T08:12:00Z\"}");
	free(m.json);
}

/* JSON specials in a name are escaped by the generator, not by hand. */
static void name_escaped(void **state)
{
	(void)state;
	struct cmb_map_collection_in in = { .collection_id = "PS100013", .name = "\"Servers\" \\ new\n" };
	struct mapped m;
	map_ok(&in, &m);
	assert_string_equal(m.json, "{\"collectionIdentifier\":\"PS100013\",\"displayName\":\"\\\"Servers\\\" \\\\ new\\n\","
				    "\"hierarchyName\":null,\"hierarchyIdentifier\":null,"
				    "\"createdDateTime\":\"" UNSET "\",\"lastModifiedDateTime\":\"" UNSET "\"}");
	free(m.json);
}

/* Without a CollectionID there is no key: refused with a reason, nothing returned. */
static void no_collection_id(void **state)
{
	(void)state;
	const char *ids[] = { NULL, "" };
	for (size_t i = 0; i < 2; i++) {
		struct cmb_map_collection_in in = full;
		in.collection_id = ids[i];
		char *json = NULL, *reason = NULL, hash[65] = "", created[21] = "";
		size_t len = 7;
		assert_int_equal(cmb_map_collection(&in, &json, &len, hash, created, &reason), -1);
		assert_string_equal(reason, "collection without a CollectionID");
		assert_null(json);
		assert_int_equal(len, 7);
		assert_string_equal(hash, "");
		free(reason);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_collection),   cmocka_unit_test(minimal_collection),
		cmocka_unit_test(created_kept),      cmocka_unit_test(dates_normalised),
		cmocka_unit_test(utf8_repaired),     cmocka_unit_test(name_escaped),
		cmocka_unit_test(no_collection_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
