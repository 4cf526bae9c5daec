/*
 * collection.h - maps a ConfigMgr collection marked for cloud sync to a
 * Graph beta configManagerCollection object (docs/wire-format.md §5).
 * Pure transform: no I/O.
 */
#ifndef CMB_MAP_COLLECTION_H
#define CMB_MAP_COLLECTION_H

#include <stddef.h>

struct cmb_map_collection_in {
	const char *collection_id;   /* SMS_Collection.CollectionID */
	const char *name;            /* Name */
	const char *last_change;     /* LastChangeTime (ISO 8601) or NULL */
	const char *hierarchy_id;    /* top site's code */
	const char *hierarchy_name;  /* top site's name */
	const char *created;         /* createdDateTime to send (kept from the first upload) */
};

/*
 * Fills *json (allocated, caller frees; *len bytes) with the
 * configManagerCollection object, hash with its SHA-256 and created with the
 * createdDateTime it carries (to be kept for later uploads). Returns 0, or
 * -1 with *reason (allocated) when the collection cannot be mapped.
 */
int cmb_map_collection(const struct cmb_map_collection_in *in, char **json, size_t *len, char hash[65],
		       char created[21], char **reason);

#endif
