/*
 * schema.c - the table of classes.h as one site has it (see schema.h).
 * Pure: no I/O, no logging.
 */
#include "adapters/adminservice/schema.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

static void build_select(struct cmb_as_rclass *rc)
{
	free(rc->select);
	rc->select = NULL;
	if (!rc->present)
		return;
	struct cmb_buf b = CMB_BUF_INIT(1 << 16);
	for (size_t i = 0; i < rc->def->nprops; i++) {
		if (!rc->wire[i])
			continue;
		if (b.len)
			cmb_buf_add(&b, ",", 1);
		cmb_buf_addstr(&b, rc->wire[i]);
	}
	rc->select = cmb_buf_detach(&b, NULL);
}

static void rclass_clear(struct cmb_as_rclass *rc)
{
	free(rc->entity);
	free(rc->select);
	for (size_t i = 0; i < CMB_AS_MAX_PROPS; i++)
		free(rc->wire[i]);
	memset(rc, 0, sizeof(*rc));
}

void cmb_as_schema_clear(struct cmb_as_schema *s)
{
	for (int c = 0; c < CMB_AS_NCLASSES; c++)
		rclass_clear(&s->cls[c]);
	memset(s, 0, sizeof(*s));
}

void cmb_as_schema_documented(struct cmb_as_schema *s)
{
	cmb_as_schema_clear(s);
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		struct cmb_as_rclass *rc = &s->cls[c];
		rc->def = &cmb_as_classes[c];
		rc->present = 1;
		rc->entity = xstrdup(rc->def->name);
		for (size_t i = 0; i < rc->def->nprops && i < CMB_AS_MAX_PROPS; i++)
			rc->wire[i] = xstrdup(rc->def->props[i].name);
		build_select(rc);
	}
}

const char *const *cmb_as_schema_wanted(void)
{
	static const char *names[CMB_AS_NCLASSES + CMB_AS_NMETHODS + 1];
	if (!names[0]) {
		size_t n = 0;
		for (int c = 0; c < CMB_AS_NCLASSES; c++)
			names[n++] = cmb_as_classes[c].name;
		for (int m = 0; m < CMB_AS_NMETHODS; m++)
			names[n++] = cmb_as_methods[m].name;
		names[n] = NULL;
	}
	return names;
}

/* The document's property for a table entry: its name, then its other spelling (each exact, then any case). */
static const struct cmb_as_meta_prop *find_prop(const struct cmb_as_meta_class *mc, const struct cmb_as_prop *p)
{
	const struct cmb_as_meta_prop *mp = cmb_as_meta_prop_find(mc, p->name);
	if (!mp && p->alt)
		mp = cmb_as_meta_prop_find(mc, p->alt);
	return mp;
}

void cmb_as_schema_from_metadata(struct cmb_as_schema *s, const struct cmb_as_meta *m, int64_t learnt)
{
	cmb_as_schema_clear(s);
	s->source = CMB_AS_SCHEMA_METADATA;
	s->learnt = learnt;
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		struct cmb_as_rclass *rc = &s->cls[c];
		rc->def = &cmb_as_classes[c];
		const struct cmb_as_meta_class *mc = cmb_as_meta_find(m, rc->def->name);
		if (!mc)
			continue;
		rc->present = 1;
		/* The URL names the entity set: the document's spelling of it, else of the type. */
		const char *entity = mc->name;
		for (size_t i = 0; i < m->n_sets; i++)
			if (strcasecmp(m->entity_sets[i], rc->def->name) == 0)
				entity = m->entity_sets[i];
		rc->entity = xstrdup(entity);
		for (size_t i = 0; i < rc->def->nprops && i < CMB_AS_MAX_PROPS; i++) {
			const struct cmb_as_meta_prop *mp = find_prop(mc, &rc->def->props[i]);
			/* A key the document names in <Key> but does not declare is still the key. */
			if (!mp && rc->def->props[i].type == CMB_AS_PROP_KEY)
				for (size_t k = 0; k < mc->n_keys; k++)
					if (strcasecmp(mc->keys[k], rc->def->props[i].name) == 0 ||
					    (rc->def->props[i].alt && strcasecmp(mc->keys[k], rc->def->props[i].alt) == 0))
						rc->wire[i] = xstrdup(mc->keys[k]);
			if (mp)
				rc->wire[i] = xstrdup(mp->name);
		}
		build_select(rc);
	}
}

/* Every quoted token of message ('x' or "x"), compared with the present properties. */
int cmb_as_schema_drop_named(struct cmb_as_schema *s, enum cmb_as_class_id cls, const char *message)
{
	struct cmb_as_rclass *rc = &s->cls[cls];
	if (!message || !rc->present)
		return -1;
	for (const char *p = message; *p; p++) {
		if (*p != '\'' && *p != '"')
			continue;
		const char *end = strchr(p + 1, *p);
		if (!end)
			break;
		size_t len = (size_t)(end - p - 1);
		for (size_t i = 0; i < rc->def->nprops; i++) {
			if (rc->wire[i] && strlen(rc->wire[i]) == len && strncasecmp(rc->wire[i], p + 1, len) == 0) {
				free(rc->wire[i]);
				rc->wire[i] = NULL;
				build_select(rc);
				return (int)i;
			}
		}
		p = end;
	}
	return -1;
}

void cmb_as_schema_drop_class(struct cmb_as_schema *s, enum cmb_as_class_id cls)
{
	struct cmb_as_rclass *rc = &s->cls[cls];
	const struct cmb_as_class *def = rc->def;
	rclass_clear(rc);
	rc->def = def ? def : &cmb_as_classes[cls];
}

static int check_class(const struct cmb_as_schema *s, enum cmb_as_class_id c)
{
	const struct cmb_as_rclass *rc = &s->cls[c];
	const struct cmb_as_class *def = &cmb_as_classes[c];
	const char *how = s->source == CMB_AS_SCHEMA_METADATA ? "its $metadata has no" : "it answered that it has no";
	if (!rc->present)
		return def->required ? cmb_error_set(CMB_EPROTO, "the site cannot be read: %s class %s (every "
						     "Configuration Manager site has it: is [site] url the "
						     "AdminService of an SMS Provider?)", how, def->name)
				     : 0;
	for (size_t i = 0; i < def->nprops; i++)
		if (def->props[i].required && !rc->wire[i])
			return cmb_error_set(CMB_EPROTO, "the site cannot be read: %s %s.%s%s%s%s, which cmbridge "
					     "needs (%s)", how, def->name, def->props[i].name, def->props[i].alt ? " (or " : "",
					     def->props[i].alt ? def->props[i].alt : "", def->props[i].alt ? ")" : "",
					     def->props[i].since ? def->props[i].since
								 : "every Configuration Manager current branch "
								   "release documents it");
	return 0;
}

int cmb_as_schema_check(const struct cmb_as_schema *s, int with_membership)
{
	int rc;
	for (int c = 0; c < CMB_AS_NDEVICE; c++)
		if ((rc = check_class(s, (enum cmb_as_class_id)c)) < 0)
			return rc;
	return with_membership ? check_class(s, CMB_AS_MEMBERSHIP) : 0;
}

/* ---- records ----------------------------------------------------------- */

const struct cmb_odata_field *cmb_as_record_get(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
						size_t i)
{
	if (!rc->present || i >= rc->def->nprops || !rc->wire[i])
		return NULL;
	const struct cmb_odata_field *f = cmb_odata_record_find(rec, rc->wire[i]);
	/* The other documented spelling: a site whose rows disagree with its own $metadata. */
	if (!f && rc->def->props[i].alt)
		f = cmb_odata_record_find(rec, rc->def->props[i].alt);
	if (!f && strcasecmp(rc->wire[i], rc->def->props[i].name) != 0)
		f = cmb_odata_record_find(rec, rc->def->props[i].name);
	return f;
}

int cmb_as_record_key(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec, uint32_t *out)
{
	const struct cmb_odata_field *f = cmb_as_record_get(rc, rec, 0);
	const char *key = rc->wire[0] ? rc->wire[0] : rc->def->props[0].name;
	long long v;
	if (!f)
		return cmb_error_set(CMB_EPROTO, "record has no %s", key);
	if (cmb_as_value_integer(f, &v) < 0 || v < 0 || v > (long long)UINT32_MAX)
		return cmb_error_set(CMB_EPROTO, "record has a %s that is not an integer in 0..4294967295", key);
	*out = (uint32_t)v;
	return 0;
}

/* WMI's "never": times before 1980-01-02 (sites write 1970-01-01 and 1980-01-01 for unset times). */
#define NEVER_BEFORE 315705600LL

/* Fills one property; returns 1 on a value no reading accepts (the field stays absent). */
static unsigned fill_prop(const struct cmb_as_prop *prop, const struct cmb_odata_field *f, struct cmb_site_device *dev)
{
	char *base = (char *)dev;
	long long v;
	uint64_t u;
	int b;
	int64_t t;
	if (f->type == CMB_ODATA_NULL || prop->offset == CMB_AS_NO_FIELD)
		return 0;
	switch (prop->type) {
	case CMB_AS_PROP_KEY:
	case CMB_AS_PROP_ANY:
		return 0; /* the key is set by the join, which has already checked it */
	case CMB_AS_PROP_STRING: {
		/* A NUL inside a string would silently cut it: the record is judged as a bad value. */
		if (f->type != CMB_ODATA_STRING || memchr(f->text, '\0', f->len))
			return 1;
		char **dst = (char **)(base + prop->offset);
		free(*dst);
		*dst = xstrndup(f->text, f->len);
		return 0;
	}
	case CMB_AS_PROP_INT:
		if (cmb_as_value_bool(f, &b) == 0 && f->type == CMB_ODATA_BOOL) {
			*(int *)(base + prop->offset) = b;
			return 0;
		}
		if (cmb_as_value_integer(f, &v) < 0 || v < INT_MIN || v > INT_MAX)
			return 1;
		*(int *)(base + prop->offset) = (int)v;
		return 0;
	case CMB_AS_PROP_BOOL:
		if (cmb_as_value_bool(f, &b) < 0)
			return 1;
		*(int *)(base + prop->offset) = b;
		return 0;
	case CMB_AS_PROP_FLAGS:
		if (cmb_as_value_unsigned(f, &u) < 0)
			return 1;
		/* Bit 63 carries no workload; keeping the value non-negative keeps -1 meaning absent. */
		*(int64_t *)(base + prop->offset) = (int64_t)(u & (uint64_t)INT64_MAX);
		return 0;
	case CMB_AS_PROP_DATETIME: {
		if (cmb_as_value_time(f, &t) < 0)
			return 1;
		char **dst = (char **)(base + prop->offset);
		free(*dst);
		*dst = NULL;
		if (t >= NEVER_BEFORE) {
			char iso[32];
			cmb_time_iso8601(t, iso);
			*dst = xstrdup(iso);
		}
		return 0;
	}
	}
	return 1;
}

/*
 * Property i's field: rows come in the order of their $select, so the next
 * field or the one after (the key, an annotation) usually has the site's
 * exact spelling, and *at moves past it; any other row takes the look-up.
 * Names within a record are unique (odata.c), so both find the same field.
 */
static const struct cmb_odata_field *field_next(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
						size_t i, size_t *at)
{
	if (rc->present && i < rc->def->nprops && rc->wire[i]) {
		for (size_t j = *at; j < rec->n && j < *at + 2; j++) {
			if (strcmp(rec->fields[j].name, rc->wire[i]) == 0) {
				*at = j + 1;
				return &rec->fields[j];
			}
		}
	}
	return cmb_as_record_get(rc, rec, i);
}

unsigned cmb_as_record_fill(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
			    struct cmb_site_device *dev)
{
	unsigned mismatches = 0;
	size_t at = 0;
	for (size_t i = 1; i < rc->def->nprops; i++) {
		const struct cmb_odata_field *f = field_next(rc, rec, i, &at);
		if (f)
			mismatches += fill_prop(&rc->def->props[i], f, dev);
	}
	if (rc->def->has_offset >= 0)
		*(int *)((char *)dev + rc->def->has_offset) = 1;
	return mismatches;
}

/* ---- kept in the state ------------------------------------------------- */

/*
 * {"version":1,"source":"metadata","learnt":T,"classes":{"SMS_R_System":
 *   {"entity":"SMS_R_System","properties":{"ResourceId":"ResourceId",...}},
 *   "SMS_Client_ComanagementState":null, ...}}
 * keyed by the table's names, so a later release of the table still reads it.
 */
char *cmb_as_schema_save(const struct cmb_as_schema *s)
{
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "version", 1);
	cmb_json_kv_str(g, "source", s->source == CMB_AS_SCHEMA_METADATA ? "metadata" : "documented");
	cmb_json_kv_int(g, "learnt", s->learnt);
	cmb_json_key(g, "classes");
	yajl_gen_map_open(g);
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		const struct cmb_as_rclass *rc = &s->cls[c];
		cmb_json_key(g, cmb_as_classes[c].name);
		if (!rc->present) {
			cmb_json_null(g);
			continue;
		}
		yajl_gen_map_open(g);
		cmb_json_kv_str(g, "entity", rc->entity);
		cmb_json_key(g, "properties");
		yajl_gen_map_open(g);
		for (size_t i = 0; i < cmb_as_classes[c].nprops; i++)
			cmb_json_kv_str(g, cmb_as_classes[c].props[i].name, rc->wire[i]);
		yajl_gen_map_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	return cmb_json_take(g, NULL);
}

int cmb_as_schema_load(struct cmb_as_schema *s, const char *text)
{
	char eb[128];
	yajl_val root = text ? yajl_tree_parse(text, eb, sizeof(eb)) : NULL;
	static const char *const pv[] = { "version", NULL }, *const ps[] = { "source", NULL },
			  *const pl[] = { "learnt", NULL }, *const pc[] = { "classes", NULL };
	yajl_val ver = root ? yajl_tree_get(root, (const char **)pv, yajl_t_number) : NULL;
	yajl_val src = root ? yajl_tree_get(root, (const char **)ps, yajl_t_string) : NULL;
	const char *src_text = src ? YAJL_GET_STRING(src) : NULL;
	yajl_val learnt = root ? yajl_tree_get(root, (const char **)pl, yajl_t_number) : NULL;
	yajl_val classes = root ? yajl_tree_get(root, (const char **)pc, yajl_t_object) : NULL;
	if (!ver || !YAJL_IS_INTEGER(ver) || YAJL_GET_INTEGER(ver) != 1 || !src_text || !classes || !learnt ||
	    !YAJL_IS_INTEGER(learnt)) {
		yajl_tree_free(root);
		return cmb_error_set(CMB_EINVAL, "the site schema kept in the state is not one this cmbridge reads");
	}
	struct cmb_as_schema n;
	memset(&n, 0, sizeof(n));
	n.source = strcmp(src_text, "metadata") == 0 ? CMB_AS_SCHEMA_METADATA : CMB_AS_SCHEMA_DOCUMENTED;
	n.learnt = YAJL_GET_INTEGER(learnt);
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		struct cmb_as_rclass *rc = &n.cls[c];
		rc->def = &cmb_as_classes[c];
		const char *pk[] = { cmb_as_classes[c].name, NULL };
		yajl_val cv = yajl_tree_get(classes, pk, yajl_t_any);
		if (!cv) {
			/* A class this table has and the kept schema does not: documented names. */
			rc->present = 1;
			rc->entity = xstrdup(rc->def->name);
			for (size_t i = 0; i < rc->def->nprops; i++)
				rc->wire[i] = xstrdup(rc->def->props[i].name);
			build_select(rc);
			continue;
		}
		if (!YAJL_IS_OBJECT(cv))
			continue;
		const char *pe[] = { "entity", NULL }, *pp[] = { "properties", NULL };
		yajl_val ent = yajl_tree_get(cv, pe, yajl_t_string);
		yajl_val props = yajl_tree_get(cv, pp, yajl_t_object);
		if (!ent || !props)
			continue;
		rc->present = 1;
		rc->entity = xstrdup(YAJL_GET_STRING(ent));
		for (size_t i = 0; i < rc->def->nprops; i++) {
			const char *pn[] = { rc->def->props[i].name, NULL };
			yajl_val w = yajl_tree_get(props, pn, yajl_t_any);
			if (!w)
				rc->wire[i] = xstrdup(rc->def->props[i].name); /* newer than the kept schema */
			else if (YAJL_IS_STRING(w))
				rc->wire[i] = xstrdup(YAJL_GET_STRING(w));
		}
		build_select(rc);
	}
	yajl_tree_free(root);
	cmb_as_schema_clear(s);
	*s = n;
	return 0;
}
