/*
 * schema.h - the AdminService classes and properties as one site has them:
 * the table of classes.h resolved against the site's own $metadata, or
 * against what the site answered (a 400 naming a property, a 404 for a
 * class), or, with neither, the documented names.
 *
 * For every class of the table: whether the site has it, its entity set
 * and key as the site spells them, and for every property its spelling at
 * the site or NULL when the site lacks it. $select lists are built from
 * it, records are read through it, and `cmbridge check` reports it. It is
 * kept in the state between runs (cmb_as_schema_save/_load) and learnt
 * again once a day or when the site refuses a name.
 *
 * Pure: no I/O, no logging.
 */
#ifndef CMB_AS_SCHEMA_H
#define CMB_AS_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/metadata.h"
#include "adapters/adminservice/odata.h"

#define CMB_AS_MAX_PROPS 32

struct cmb_as_rclass {
	const struct cmb_as_class *def;
	int present;                     /* the site has the class (or it is assumed to) */
	char *entity;                    /* entity set, the site's spelling */
	char *wire[CMB_AS_MAX_PROPS];    /* per def->props[i]: the site's spelling, NULL when it lacks it */
	char *select;                    /* "$select" list of the present properties (device classes) */
};

enum cmb_as_schema_source {
	CMB_AS_SCHEMA_DOCUMENTED = 0,    /* the table's names: no $metadata was read */
	CMB_AS_SCHEMA_METADATA,          /* the site's $metadata */
};

struct cmb_as_schema {
	enum cmb_as_schema_source source;
	int64_t learnt;                  /* when $metadata was read (epoch seconds), 0 for documented */
	struct cmb_as_rclass cls[CMB_AS_NCLASSES];
};

/*
 * The documented names for every class (each assumed present). Like every
 * function here that fills s, it frees what s held: s is zeroed memory or a
 * schema filled before.
 */
void cmb_as_schema_documented(struct cmb_as_schema *s);
void cmb_as_schema_clear(struct cmb_as_schema *s);
/* Entity set and type names to keep from $metadata (NULL-terminated, static). */
const char *const *cmb_as_schema_wanted(void);

/*
 * Resolves the table against a parsed $metadata document: a class the
 * document lacks is absent; a property is the document's spelling of the
 * table's name or of its alternative (exact first, then any case). learnt
 * is stored. s is cleared first.
 */
void cmb_as_schema_from_metadata(struct cmb_as_schema *s, const struct cmb_as_meta *m, int64_t learnt);

/*
 * After the site refused a read with a message: the property of cls it
 * names (quoted with ' or ", compared with every present property, any
 * case) is dropped. Returns the index of the property dropped, or -1 when
 * the message names none of them.
 */
int cmb_as_schema_drop_named(struct cmb_as_schema *s, enum cmb_as_class_id cls, const char *message);
/* The site answered 404 for the class: it is absent. */
void cmb_as_schema_drop_class(struct cmb_as_schema *s, enum cmb_as_class_id cls);

/*
 * Checks that a read of the device classes can go ahead: 0, or CMB_EPROTO
 * naming the first required class or property the site lacks (and the
 * release that has it). with_membership: the [site] collection scope.
 */
int cmb_as_schema_check(const struct cmb_as_schema *s, int with_membership);

/* The site's spelling of property i of cls (NULL when absent). */
static inline const char *cmb_as_wire(const struct cmb_as_schema *s, enum cmb_as_class_id cls, size_t i)
{
	return s->cls[cls].present ? s->cls[cls].wire[i] : NULL;
}

/*
 * The key of a device-class row: the key property as the site spells it
 * (any case as a second safety net), an integer in 0..4294967295 (number
 * or numeric string). 0, or CMB_EPROTO (message set, no location).
 */
int cmb_as_record_key(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec, uint32_t *out);

/*
 * Copies the present properties of rc found in rec into dev (strings
 * copied; dev owns them) and sets the class's has_* flag. A value of a form
 * none of the readings accepts is left absent and counted: returns the
 * number of such mismatches. A string holding a NUL byte is such a value.
 */
unsigned cmb_as_record_fill(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
			    struct cmb_site_device *dev);

/* Property i of rc in rec (the site's spelling, then any case); NULL when absent or the site lacks it. */
const struct cmb_odata_field *cmb_as_record_get(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
						size_t i);

/*
 * The schema as text for the state, and back (cmb_as_schema_load replaces
 * s; CMB_EINVAL for text it cannot read, s then untouched). Caller frees
 * the text.
 */
char *cmb_as_schema_save(const struct cmb_as_schema *s);
int cmb_as_schema_load(struct cmb_as_schema *s, const char *text);

#endif
