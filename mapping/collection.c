/*
 * collection.c - configManagerCollection records. Never does I/O.
 */
#include "mapping/collection.h"
#include "mapping/device.h"
#include "mapping/utf8.h"
#include "connector/base/util.h"

#include <stdlib.h>
#include <string.h>

static void add_str(struct cmb_buf *b, const char *key, const char *val, int first)
{
	if (!first)
		cmb_buf_add(b, ",", 1);
	cmb_buf_add_json_string(b, key, strlen(key));
	cmb_buf_add(b, ":", 1);
	if (!val) {
		cmb_buf_addstr(b, "null");
		return;
	}
	unsigned repairs = 0;
	char *clean = cmb_utf8_repair(val, strlen(val), &repairs);
	cmb_buf_add_json_string(b, clean, strlen(clean));
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
	struct cmb_buf b = CMB_BUF_INIT((size_t)1 << 20);
	cmb_buf_add(&b, "{", 1);
	add_str(&b, "collectionIdentifier", in->collection_id, 1);
	add_str(&b, "displayName", in->name, 0);
	add_str(&b, "hierarchyName", in->hierarchy_name, 0);
	add_str(&b, "hierarchyIdentifier", in->hierarchy_id, 0);
	add_str(&b, "createdDateTime", created, 0);
	add_str(&b, "lastModifiedDateTime", modified, 0);
	cmb_buf_add(&b, "}", 1);
	cmb_sha256_hex(b.data, b.len, hash);
	*json = cmb_buf_detach(&b, len);
	return 0;
}
