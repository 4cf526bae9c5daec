/*
 * collection.c - configManagerCollection records. Never does I/O.
 */
#include "mapping/collection.h"
#include "mapping/device.h"
#include "mapping/utf8.h"
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <stdlib.h>
#include <string.h>

/* A string value as the tenant gets it: valid UTF-8 (repaired), or null. */
static void add_str(yajl_gen g, const char *key, const char *val)
{
	cmb_json_key(g, key);
	if (!val) {
		cmb_json_null(g);
		return;
	}
	unsigned repairs = 0;
	char *clean = cmb_utf8_repair(val, strlen(val), &repairs);
	cmb_json_str(g, clean);
	free(clean);
}

int cmb_map_collection(const struct cmb_map_collection_in *in, char **json, size_t *len, char hash[65],
		       char created[21], char **reason)
{
	char modified[21];
	if (!in->collection_id || !*in->collection_id) {
		*reason = xstrdup("collection without a CollectionID");
		return -1;
	}
	/* Both DateTimeOffset properties are non-nullable: 0001-01-01 marks "unknown", as Graph does. */
	if (!in->last_change || cmb_map_datetime(in->last_change, modified) < 0)
		strcpy(modified, "0001-01-01T00:00:00Z");
	if (!in->created || cmb_map_datetime(in->created, created) < 0)
		strcpy(created, modified);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	add_str(g, "collectionIdentifier", in->collection_id);
	add_str(g, "displayName", in->name);
	add_str(g, "hierarchyName", in->hierarchy_name);
	add_str(g, "hierarchyIdentifier", in->hierarchy_id);
	add_str(g, "createdDateTime", created);
	add_str(g, "lastModifiedDateTime", modified);
	yajl_gen_map_close(g);
	*json = cmb_json_take(g, len);
	cmb_sha256_hex(*json, *len, hash);
	return 0;
}
