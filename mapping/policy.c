/*
 * policy.c - a Graph deviceManagementConfigurationPolicy body -> the policy
 * model; validation against the settings catalog; the flattening into CSP
 * items that merge and the document share (docs/policies.md).
 *
 * Never does I/O and never logs: errors go back through cmb_error_set() or a
 * reasons list the caller owns.
 */
#include "mapping/policy.h"
#include "mapping/policy_internal.h"
#include "mapping/device.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

/* ---- small helpers ---- */

int cmb_policy_streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t cmb_policy_sort_unique(char **v, size_t n)
{
	if (n < 2)
		return n;
	qsort(v, n, sizeof(*v), cmp_str);
	size_t w = 1;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i], v[w - 1]) == 0)
			free(v[i]);
		else
			v[w++] = v[i];
	}
	return w;
}

static void reason_add(struct cmb_policy_reasons *r, char *msg)
{
	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n++] = msg;
}

void cmb_map_policy_reasons_free(struct cmb_policy_reasons *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* Text that can go into an XML document unchanged: no C0 control but tab, LF, CR. */
static int text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

/* ---- pre-scan: limits checked on the event stream, before any tree is built ---- */

struct scan {
	int depth;
	size_t instances, max_instances;
	char why[160];
};

static int scan_open(void *ctx)
{
	struct scan *s = ctx;
	if (++s->depth > CMB_POLICY_MAX_JSON_DEPTH) {
		snprintf(s->why, sizeof(s->why), "JSON nested deeper than CMB_POLICY_MAX_JSON_DEPTH (%d)",
			 CMB_POLICY_MAX_JSON_DEPTH);
		return 0;
	}
	return 1;
}

static int scan_close(void *ctx)
{
	((struct scan *)ctx)->depth--;
	return 1;
}

static int scan_string(void *ctx, const unsigned char *v, size_t len)
{
	struct scan *s = ctx;
	(void)v;
	if (len > CMB_POLICY_MAX_STRING) {
		snprintf(s->why, sizeof(s->why), "a string of %zu bytes (limit CMB_POLICY_MAX_STRING, %d)", len,
			 CMB_POLICY_MAX_STRING);
		return 0;
	}
	return 1;
}

static int scan_key(void *ctx, const unsigned char *k, size_t len)
{
	struct scan *s = ctx;
	if (!scan_string(ctx, k, len))
		return 0;
	if (len == 19 && memcmp(k, "settingDefinitionId", 19) == 0 && ++s->instances > s->max_instances) {
		snprintf(s->why, sizeof(s->why), "more than CMB_POLICY_MAX_INSTANCES (%d) setting instances",
			 CMB_POLICY_MAX_INSTANCES);
		return 0;
	}
	return 1;
}

static const yajl_callbacks scan_cb = {
	NULL, NULL, NULL, NULL, NULL, scan_string, scan_open, scan_key, scan_close, scan_open, scan_close,
};

/* Checks the limits and parses buf into a yajl tree (caller frees with yajl_tree_free). */
static int parse_tree(const char *buf, size_t len, size_t max_instances, yajl_val *out)
{
	if (len > CMB_POLICY_MAX_BODY)
		return cmb_error_set(CMB_ETOOBIG, "policy body is %zu bytes (limit CMB_POLICY_MAX_BODY, %u)", len,
				     CMB_POLICY_MAX_BODY);
	struct scan s = { 0, 0, max_instances, "" };
	yajl_handle h = yajl_alloc(&scan_cb, NULL, &s);
	yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	int rc = 0;
	if (st == yajl_status_client_canceled) {
		rc = cmb_error_set(CMB_ETOOBIG, "policy body refused: %s", s.why);
	} else if (st != yajl_status_ok) {
		unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)buf, len);
		rc = cmb_error_set(CMB_EPROTO, "policy body is not JSON: %s", (const char *)e);
		yajl_free_error(h, e);
	}
	yajl_free(h);
	if (rc < 0)
		return rc;
	char *copy = xstrndup(buf, len); /* yajl_tree_parse wants a C string */
	char err[256];
	yajl_val v = yajl_tree_parse(copy, err, sizeof(err));
	free(copy);
	if (!v)
		return cmb_error_set(CMB_EPROTO, "policy body is not JSON: %s", err);
	*out = v;
	return 0;
}

/* ---- tree access ---- */

static yajl_val obj_get(yajl_val o, const char *key)
{
	if (!YAJL_IS_OBJECT(o))
		return NULL;
	for (size_t i = 0; i < o->u.object.len; i++)
		if (strcmp(o->u.object.keys[i], key) == 0)
			return o->u.object.values[i];
	return NULL;
}

static const char *obj_str(yajl_val o, const char *key)
{
	yajl_val v = obj_get(o, key);
	return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

/* "#microsoft.graph.x" (with or without '#', any case of the prefix Graph uses) -> "x". */
static const char *graph_type(yajl_val o)
{
	const char *t = obj_str(o, "@odata.type");
	if (!t)
		return NULL;
	if (*t == '#')
		t++;
	if (strncmp(t, "microsoft.graph.", 16) == 0)
		t += 16;
	return t;
}

/* ---- the model ---- */

static void instance_clear(struct cmb_policy_instance *in);

static void instances_free(struct cmb_policy_instance *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		instance_clear(&v[i]);
	free(v);
}

static void instance_clear(struct cmb_policy_instance *in)
{
	free(in->definition_id);
	free(in->path);
	free(in->choice);
	free(in->sval);
	for (size_t i = 0; i < in->n_items; i++)
		free(in->items[i]);
	free(in->items);
	instances_free(in->children, in->n_children);
	for (size_t g = 0; g < in->n_groups; g++)
		instances_free(in->groups[g].children, in->groups[g].n_children);
	free(in->groups);
}

void cmb_map_policy_free(struct cmb_policy *p)
{
	if (!p)
		return;
	free(p->id);
	free(p->name);
	free(p->description);
	free(p->platforms);
	free(p->technologies);
	free(p->template_id);
	free(p->template_family);
	instances_free(p->settings, p->n_settings);
	for (size_t i = 0; i < p->n_collections; i++)
		free(p->collections[i]);
	free(p->collections);
	cmb_map_policy_reasons_free(&p->malformed);
	free(p);
}

void cmb_map_policy_list_free(struct cmb_policy **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cmb_map_policy_free(v[i]);
	free(v);
}

struct walk {
	struct cmb_policy *p;
	size_t instances;
};

static int parse_instances(struct walk *w, yajl_val arr, const char *path, const char *what, int depth,
			   struct cmb_policy_instance **out, size_t *n);

/* Records a malformed instance; returns 1 (the instance is dropped). */
static int malformed(struct walk *w, const char *path, const char *defid, const char *what)
{
	if (defid)
		reason_add(&w->p->malformed, xasprintf("%s (%s): malformed instance: %s", path, defid, what));
	else
		reason_add(&w->p->malformed, xasprintf("%s: malformed instance: %s", path, what));
	return 1;
}

/* A simple value (integer or string) as text; 0, or 1 when it is neither. */
static int simple_text(yajl_val sv, char **text, long long *ival, int *is_int)
{
	const char *t = graph_type(sv);
	yajl_val v = obj_get(sv, "value");
	int want_int = t && strcmp(t, "deviceManagementConfigurationIntegerSettingValue") == 0;
	int want_str = t && (strcmp(t, "deviceManagementConfigurationStringSettingValue") == 0 ||
			     strcmp(t, "deviceManagementConfigurationSecretSettingValue") == 0 ||
			     strcmp(t, "deviceManagementConfigurationReferenceSettingValue") == 0);
	if (YAJL_IS_INTEGER(v) && !want_str) {
		*ival = YAJL_GET_INTEGER(v);
		*is_int = 1;
		*text = xasprintf("%lld", *ival);
		return 0;
	}
	if (YAJL_IS_STRING(v) && !want_int) {
		if (!text_ok(v->u.string))
			return 1;
		*is_int = 0;
		*text = xstrdup(v->u.string);
		return 0;
	}
	return 1;
}

/*
 * The values of a choice or simple collection (the property `prop` of o)
 * into in->items; returns like parse_instance(), and sets definition_id
 * and path itself on success.
 */
static int parse_items(struct walk *w, yajl_val o, const char *prop, const char *path, const char *defid,
		       struct cmb_policy_instance *in)
{
	yajl_val arr = obj_get(o, prop);
	int choices = in->type == CMB_PI_CHOICE_COLL;
	if (!YAJL_IS_ARRAY(arr)) {
		char *what = xasprintf("%s is missing or not an array", prop);
		malformed(w, path, defid, what);
		free(what);
		return 1;
	}
	if (arr->u.array.len > CMB_POLICY_MAX_ITEMS)
		return cmb_error_set(CMB_ETOOBIG, "%s: more than CMB_POLICY_MAX_ITEMS (%d) values", path,
				     CMB_POLICY_MAX_ITEMS);
	in->items = xcalloc(arr->u.array.len ? arr->u.array.len : 1, sizeof(char *));
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val v = arr->u.array.values[i];
		const char *val = choices ? obj_str(v, "value") : NULL;
		char *text = NULL;
		long long iv;
		int is_int, bad;
		if (choices)
			bad = !val || !*val || !text_ok(val);
		else
			bad = !YAJL_IS_OBJECT(v) || simple_text(v, &text, &iv, &is_int);
		if (bad) {
			instance_clear(in);
			memset(in, 0, sizeof(*in));
			char *at = xasprintf("%s/%s[%zu]", path, prop, i);
			malformed(w, at, defid,
				  choices ? "value is missing or not a string"
					  : "value is missing, not a string or integer, or holds control characters");
			free(at);
			return 1;
		}
		in->items[in->n_items++] = choices ? xstrdup(val) : text;
	}
	in->definition_id = xstrdup(defid);
	in->path = xstrdup(path);
	return 0;
}

/* A choice instance: its value and the children under it. Returns like parse_instance(). */
static int parse_choice(struct walk *w, yajl_val o, const char *path, const char *defid, int depth,
			struct cmb_policy_instance *in)
{
	yajl_val cv = obj_get(o, "choiceSettingValue");
	const char *val = obj_str(cv, "value");
	if (!YAJL_IS_OBJECT(cv))
		return malformed(w, path, defid, "choiceSettingValue is missing");
	if (!val || !*val || !text_ok(val))
		return malformed(w, path, defid, "choiceSettingValue.value is missing or not a string");
	in->type = CMB_PI_CHOICE;
	in->choice = xstrdup(val);
	yajl_val ch = obj_get(cv, "children");
	if (!ch || YAJL_IS_NULL(ch))
		return 0;
	char *sub = xasprintf("%s/choiceSettingValue", path);
	int rc = parse_instances(w, ch, sub, "children", depth + 1, &in->children, &in->n_children);
	free(sub);
	return rc;
}

/* A simple instance: an integer or a string, as its @odata.type says. */
static int parse_simple(struct walk *w, yajl_val o, const char *path, const char *defid,
			struct cmb_policy_instance *in)
{
	yajl_val sv = obj_get(o, "simpleSettingValue");
	if (!YAJL_IS_OBJECT(sv))
		return malformed(w, path, defid, "simpleSettingValue is missing");
	char *text = NULL;
	long long iv = 0;
	int is_int = 0;
	if (simple_text(sv, &text, &iv, &is_int))
		return malformed(w, path, defid,
				 "simpleSettingValue.value is missing, not of its @odata.type, or holds control "
				 "characters");
	in->type = is_int ? CMB_PI_INT : CMB_PI_STRING;
	in->ival = iv;
	if (is_int)
		free(text);
	else
		in->sval = text;
	return 0;
}

/* A group (single) or a group collection: each group's children. */
static int parse_group(struct walk *w, yajl_val o, const char *path, const char *defid, int depth, int single,
		       struct cmb_policy_instance *in)
{
	yajl_val arr = obj_get(o, single ? "groupSettingValue" : "groupSettingCollectionValue");
	if (single ? !YAJL_IS_OBJECT(arr) : !YAJL_IS_ARRAY(arr))
		return malformed(w, path, defid,
				 single ? "groupSettingValue is missing"
					: "groupSettingCollectionValue is missing or not an array");
	size_t ng = single ? 1 : arr->u.array.len;
	if (ng > CMB_POLICY_MAX_ITEMS)
		return cmb_error_set(CMB_ETOOBIG, "%s: more than CMB_POLICY_MAX_ITEMS (%d) groups", path,
				     CMB_POLICY_MAX_ITEMS);
	in->type = CMB_PI_GROUP_COLL;
	in->groups = xcalloc(ng ? ng : 1, sizeof(*in->groups));
	int rc = 0;
	for (size_t g = 0; g < ng && rc >= 0; g++) {
		yajl_val gv = single ? arr : arr->u.array.values[g];
		char *sub = single ? xasprintf("%s/groupSettingValue", path)
				   : xasprintf("%s/groupSettingCollectionValue[%zu]", path, g);
		in->n_groups++;
		yajl_val ch = obj_get(gv, "children");
		if (!YAJL_IS_OBJECT(gv) || !YAJL_IS_ARRAY(ch))
			malformed(w, sub, defid, "children is missing or not an array");
		else
			rc = parse_instances(w, ch, sub, "children", depth + 1, &in->groups[g].children,
					     &in->groups[g].n_children);
		free(sub);
	}
	return rc;
}

/*
 * Parses one setting instance object. Returns 0 (kept), 1 (malformed:
 * recorded, dropped) or a negative code (a limit: the whole body is refused).
 */
static int parse_instance(struct walk *w, yajl_val o, const char *path, int depth, struct cmb_policy_instance *in)
{
	static const char prefix[] = "deviceManagementConfiguration";
	memset(in, 0, sizeof(*in));
	if (depth > CMB_POLICY_MAX_NESTING)
		return cmb_error_set(CMB_ETOOBIG, "%s: setting instances nested deeper than CMB_POLICY_MAX_NESTING (%d)",
				     path, CMB_POLICY_MAX_NESTING);
	if (++w->instances > CMB_POLICY_MAX_INSTANCES)
		return cmb_error_set(CMB_ETOOBIG, "more setting instances than CMB_POLICY_MAX_INSTANCES (%d)",
				     CMB_POLICY_MAX_INSTANCES);
	if (!YAJL_IS_OBJECT(o))
		return malformed(w, path, NULL, "not an object");
	const char *defid = obj_str(o, "settingDefinitionId");
	if (!defid || !*defid || !text_ok(defid))
		return malformed(w, path, NULL, "settingDefinitionId is missing or empty");
	const char *t = graph_type(o);
	if (!t)
		return malformed(w, path, defid, "@odata.type is missing");
	const char *kind = strncmp(t, prefix, sizeof(prefix) - 1) == 0 ? t + sizeof(prefix) - 1 : "";
	int rc;
	if (strcmp(kind, "ChoiceSettingCollectionInstance") == 0) {
		in->type = CMB_PI_CHOICE_COLL;
		return parse_items(w, o, "choiceSettingCollectionValue", path, defid, in);
	} else if (strcmp(kind, "SimpleSettingCollectionInstance") == 0) {
		in->type = CMB_PI_COLL;
		return parse_items(w, o, "simpleSettingCollectionValue", path, defid, in);
	} else if (strcmp(kind, "ChoiceSettingInstance") == 0) {
		rc = parse_choice(w, o, path, defid, depth, in);
	} else if (strcmp(kind, "SimpleSettingInstance") == 0) {
		rc = parse_simple(w, o, path, defid, in);
	} else if (strcmp(kind, "GroupSettingCollectionInstance") == 0 || strcmp(kind, "GroupSettingInstance") == 0) {
		rc = parse_group(w, o, path, defid, depth, strcmp(kind, "GroupSettingInstance") == 0, in);
	} else {
		char *what = xasprintf("unknown instance type %s", t);
		malformed(w, path, defid, what);
		free(what);
		return 1;
	}
	if (rc != 0) {
		instance_clear(in);
		memset(in, 0, sizeof(*in));
		return rc;
	}
	in->definition_id = xstrdup(defid);
	in->path = xstrdup(path);
	return 0;
}

static int parse_instances(struct walk *w, yajl_val arr, const char *path, const char *what, int depth,
			   struct cmb_policy_instance **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!YAJL_IS_ARRAY(arr)) {
		malformed(w, path, NULL, strcmp(what, "children") == 0 ? "children is not an array" : "not an array");
		return 0;
	}
	struct cmb_policy_instance *v = xcalloc(arr->u.array.len ? arr->u.array.len : 1, sizeof(*v));
	size_t k = 0;
	int rc = 0;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		char *at = xasprintf("%s/%s[%zu]", path, what, i);
		rc = parse_instance(w, arr->u.array.values[i], at, depth, &v[k]);
		free(at);
		if (rc < 0)
			break;
		if (rc == 0)
			k++;
		rc = 0;
	}
	if (rc < 0) {
		instances_free(v, k);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

static char *dup_text(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* Builds the model from one policy object; 0 with *out, or a negative code. */
static int policy_from_tree(yajl_val o, const char *where, struct cmb_policy **out)
{
	if (!YAJL_IS_OBJECT(o))
		return cmb_error_set(CMB_EPROTO, "%s is not a JSON object", where);
	const char *id = obj_str(o, "id");
	if (!id || !*id || !text_ok(id))
		return cmb_error_set(CMB_EPROTO, "%s has no id", where);
	struct cmb_policy *p = xcalloc(1, sizeof(*p));
	struct walk w = { p, 0 };
	p->id = xstrdup(id);
	static const char *const text_props[] = { "name", "description", "platforms", "technologies" };
	char **dst[] = { &p->name, &p->description, &p->platforms, &p->technologies };
	for (size_t i = 0; i < 4; i++) {
		const char *s = obj_str(o, text_props[i]);
		if (s && !text_ok(s))
			reason_add(&p->malformed, xasprintf("%s holds control characters", text_props[i]));
		else
			*dst[i] = dup_text(s);
	}
	yajl_val tr = obj_get(o, "templateReference");
	p->template_id = dup_text(obj_str(tr, "templateId"));
	p->template_family = dup_text(obj_str(tr, "templateFamily"));
	if (p->template_family && !text_ok(p->template_family)) {
		free(p->template_family);
		p->template_family = NULL;
	}
	cmb_map_datetime(obj_str(o, "lastModifiedDateTime"), p->last_modified);
	/* technologies is a flags enum serialised as a comma list. */
	if (p->technologies) {
		const char *s = p->technologies;
		while (*s) {
			while (*s == ',' || *s == ' ')
				s++;
			const char *e = s;
			while (*e && *e != ',' && *e != ' ')
				e++;
			if (e - s == 13 && strncmp(s, "configManager", 13) == 0)
				p->for_connector = 1;
			s = e;
		}
	}
	/*
	 * A navigation Graph paged inside the expansion (settings@odata.nextLink)
	 * arrived in part: applying the part would enforce a policy nobody wrote,
	 * so the policy is rejected whole, saying why.
	 */
	static const char *const paged[] = { "settings@odata.nextLink", "assignments@odata.nextLink" };
	for (size_t i = 0; i < 2; i++) {
		yajl_val nl = obj_get(o, paged[i]);
		if (nl && !YAJL_IS_NULL(nl))
			reason_add(&p->malformed, xasprintf("%s: Graph sent this navigation in pages; the connector applies a "
							    "policy whole or not at all",
							    paged[i]));
	}
	int rc = 0;
	yajl_val settings = obj_get(o, "settings");
	if (settings && !YAJL_IS_NULL(settings)) {
		if (!YAJL_IS_ARRAY(settings)) {
			reason_add(&p->malformed, xstrdup("settings is not an array"));
		} else {
			p->settings = xcalloc(settings->u.array.len ? settings->u.array.len : 1, sizeof(*p->settings));
			for (size_t i = 0; i < settings->u.array.len && rc >= 0; i++) {
				char *at = xasprintf("settings[%zu]", i);
				yajl_val si = obj_get(settings->u.array.values[i], "settingInstance");
				if (!YAJL_IS_OBJECT(si)) {
					malformed(&w, at, NULL, "settingInstance is missing");
					rc = 1;
				} else {
					rc = parse_instance(&w, si, at, 1, &p->settings[p->n_settings]);
				}
				free(at);
				if (rc == 0)
					p->n_settings++;
			}
		}
	}
	yajl_val as = obj_get(o, "assignments");
	if (rc >= 0 && YAJL_IS_ARRAY(as)) {
		if (as->u.array.len > CMB_POLICY_MAX_ASSIGNMENTS) {
			rc = cmb_error_set(CMB_ETOOBIG, "%s has more than CMB_POLICY_MAX_ASSIGNMENTS (%d) assignments", where,
					   CMB_POLICY_MAX_ASSIGNMENTS);
		} else {
			p->collections = xcalloc(as->u.array.len ? as->u.array.len : 1, sizeof(char *));
			for (size_t i = 0; i < as->u.array.len; i++) {
				yajl_val target = obj_get(as->u.array.values[i], "target");
				const char *tt = graph_type(target);
				const char *cid = obj_str(target, "collectionId");
				if (tt && strcmp(tt, "configurationManagerCollectionAssignmentTarget") == 0 && cid && *cid &&
				    text_ok(cid)) {
					p->collections[p->n_collections++] = xstrdup(cid);
				} else if (tt && strcmp(tt, "configurationManagerCollectionAssignmentTarget") == 0) {
					reason_add(&p->malformed,
						   xasprintf("assignments[%zu]: collectionId is missing or empty", i));
				} else {
					reason_add(&p->malformed,
						   xasprintf("assignments[%zu]: target %s cannot be delivered through a ConfigMgr "
							     "site (only configurationManagerCollectionAssignmentTarget)",
							     i, tt ? tt : "(no @odata.type)"));
				}
			}
			p->n_collections = cmb_policy_sort_unique(p->collections, p->n_collections);
		}
	}
	if (rc < 0) {
		cmb_error_wrap(rc, "%s", where);
		cmb_map_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int cmb_map_policy_parse(const char *buf, size_t len, struct cmb_policy **out)
{
	yajl_val root = NULL;
	int rc = parse_tree(buf, len, CMB_POLICY_MAX_INSTANCES, &root);
	if (rc < 0)
		return rc;
	rc = policy_from_tree(root, "policy", out);
	yajl_tree_free(root);
	return rc;
}

int cmb_map_policy_parse_page(const char *buf, size_t len, struct cmb_policy ***out, size_t *n, char **next_link)
{
	yajl_val root = NULL;
	/* A page holds many policies: each is held to the instance limit as it is modelled. */
	int rc = parse_tree(buf, len, (size_t)-1, &root);
	if (rc < 0)
		return rc;
	yajl_val arr = obj_get(root, "value");
	if (!YAJL_IS_ARRAY(arr)) {
		yajl_tree_free(root);
		return cmb_error_set(CMB_EPROTO, "policy page has no \"value\" array");
	}
	if (arr->u.array.len > CMB_POLICY_MAX_LIST) {
		yajl_tree_free(root);
		return cmb_error_set(CMB_ETOOBIG, "policy page has more than CMB_POLICY_MAX_LIST (%d) policies",
				     CMB_POLICY_MAX_LIST);
	}
	struct cmb_policy **v = xcalloc(arr->u.array.len ? arr->u.array.len : 1, sizeof(*v));
	size_t k = 0;
	for (; k < arr->u.array.len; k++) {
		char where[48];
		snprintf(where, sizeof(where), "value[%zu]", k);
		if ((rc = policy_from_tree(arr->u.array.values[k], where, &v[k])) < 0)
			break;
	}
	if (rc < 0) {
		cmb_map_policy_list_free(v, k);
		yajl_tree_free(root);
		return rc;
	}
	const char *nl = obj_str(root, "@odata.nextLink");
	*next_link = nl ? xstrdup(nl) : NULL;
	*out = v;
	*n = k;
	yajl_tree_free(root);
	return 0;
}

/* ---- validation ---- */

static const char *itype_name(enum cmb_policy_itype t)
{
	switch (t) {
	case CMB_PI_CHOICE: return "choice";
	case CMB_PI_CHOICE_COLL: return "choice collection";
	case CMB_PI_INT: return "integer";
	case CMB_PI_STRING: return "string";
	case CMB_PI_COLL: return "simple collection";
	case CMB_PI_GROUP_COLL: return "group collection";
	}
	return "?";
}

static enum cmb_policy_itype expected_itype(enum cmb_policy_deftype t)
{
	switch (t) {
	case CMB_PDEF_CHOICE:
	case CMB_PDEF_SELECTOR: return CMB_PI_CHOICE;
	case CMB_PDEF_INT: return CMB_PI_INT;
	case CMB_PDEF_STRING: return CMB_PI_STRING;
	case CMB_PDEF_STRINGS: return CMB_PI_COLL;
	case CMB_PDEF_CHOICES_FLAGS:
	case CMB_PDEF_CHOICES_LIST: return CMB_PI_CHOICE_COLL;
	case CMB_PDEF_GROUP:
	case CMB_PDEF_GROUP_KV: return CMB_PI_GROUP_COLL;
	}
	return CMB_PI_CHOICE;
}

struct seen {
	const char **ids;
	const char **paths;
	size_t n;
};

struct vctx {
	const struct cmb_policy *p;
	struct cmb_policy_reasons *r;
	struct seen top;       /* definition ids outside groups: each at most once per policy */
	struct seen rule_ids;  /* firewall rule ids in this policy */
	int bad;
};

static void vreason(struct vctx *c, const struct cmb_policy_instance *in, char *what)
{
	reason_add(c->r, xasprintf("%s (%s): %s", in->path, in->definition_id, what));
	free(what);
	c->bad = 1;
}

static const char *seen_find(const struct seen *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return s->paths[i];
	return NULL;
}

static void seen_add(struct seen *s, const char *id, const char *path)
{
	s->ids = xrealloc(s->ids, (s->n + 1) * sizeof(*s->ids));
	s->paths = xrealloc(s->paths, (s->n + 1) * sizeof(*s->paths));
	s->ids[s->n] = id;
	s->paths[s->n++] = path;
}

static void seen_free(struct seen *s)
{
	free(s->ids);
	free(s->paths);
}

/* The firewall rule id a group gives: FirewallRuleName when set, else derived from the name. Caller frees. */
static char *rule_id(const struct cmb_policy *p, const struct cmb_policy_group *g, const struct cmb_policy_def *gdef,
		     const char **name_out)
{
	size_t plen = strlen(gdef->id);
	const char *explicit_id = NULL, *name = NULL;
	for (size_t i = 0; i < g->n_children; i++) {
		const struct cmb_policy_instance *ch = &g->children[i];
		if (ch->type != CMB_PI_STRING || strncmp(ch->definition_id, gdef->id, plen) != 0)
			continue;
		if (strcmp(ch->definition_id + plen, "_firewallrulename") == 0)
			explicit_id = ch->sval;
		else if (strcmp(ch->definition_id + plen, "_name") == 0)
			name = ch->sval;
	}
	*name_out = name;
	if (explicit_id && *explicit_id)
		return xstrdup(explicit_id);
	if (!name || !*name)
		return NULL;
	/* Stable across edits of the rule's other properties, unique per policy and name. */
	char *seed = xasprintf("%s\n%s", p->id, name);
	char hex[65];
	cmb_sha256_hex(seed, strlen(seed), hex);
	free(seed);
	hex[32] = '\0';
	return xstrdup(hex);
}

static void validate_instances(struct vctx *c, const struct cmb_policy_instance *v, size_t n,
			       const struct cmb_policy_def *group);

/* The children of one group value: each valid, none twice. */
static void validate_group(struct vctx *c, const struct cmb_policy_group *gr, const struct cmb_policy_def *def)
{
	validate_instances(c, gr->children, gr->n_children, def);
	for (size_t i = 0; i < gr->n_children; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(gr->children[i].definition_id, gr->children[j].definition_id) == 0)
				vreason(c, &gr->children[i],
					xasprintf("set twice in one group (also at %s)", gr->children[j].path));
}

/* The catalog's definition of in, when it is known, in its place and set once; else NULL with a reason. */
static const struct cmb_policy_def *validate_place(struct vctx *c, const struct cmb_policy_instance *in,
						    const struct cmb_policy_def *group)
{
	const struct cmb_policy_def *def = cmb_map_policy_def(in->definition_id);
	if (!def) {
		vreason(c, in, xstrdup("unknown setting: not in the connector's settings catalog "
				       "(mapping/policy_catalog.def)"));
		return NULL;
	}
	if (def->parent && (!group || strcmp(group->id, def->parent) != 0)) {
		vreason(c, in, xasprintf("belongs inside %s", def->parent));
		return NULL;
	}
	if (!def->parent && group) {
		vreason(c, in, xasprintf("is not a setting of %s", group->id));
		return NULL;
	}
	if (!group) {
		const char *prev = seen_find(&c->top, def->id);
		if (prev) {
			vreason(c, in, xasprintf("set twice in one policy (also at %s)", prev));
			return NULL;
		}
		seen_add(&c->top, def->id, in->path);
	}
	enum cmb_policy_itype want = expected_itype(def->type);
	if (in->type != want) {
		vreason(c, in, xasprintf("is a %s instance; the catalog has a %s setting", itype_name(in->type),
					 itype_name(want)));
		return NULL;
	}
	return def;
}

/* A choice among def's options, by option id. */
static void validate_option(struct vctx *c, const struct cmb_policy_instance *in, const struct cmb_policy_def *def,
			    const char *option)
{
	char val[64];
	if (cmb_map_policy_option(def, option, val, sizeof(val)) < 0) {
		char *opts = cmb_map_policy_options_list(def);
		vreason(c, in, xasprintf("option \"%s\" is not one of %s", option, opts));
		free(opts);
	}
}

/* Key-value groups: each group's settings, and no key in two groups. */
static void validate_group_kv(struct vctx *c, const struct cmb_policy_instance *in, const struct cmb_policy_def *def)
{
	for (size_t g = 0; g < in->n_groups; g++)
		validate_group(c, &in->groups[g], def);
	for (size_t g = 1; g < in->n_groups; g++)
		for (size_t h = 0; h < g; h++)
			for (size_t i = 0; i < in->groups[g].n_children; i++)
				for (size_t j = 0; j < in->groups[h].n_children; j++)
					if (strcmp(in->groups[g].children[i].definition_id,
						   in->groups[h].children[j].definition_id) == 0)
						vreason(c, &in->groups[g].children[i],
							xasprintf("set twice in one policy (also at %s)",
								  in->groups[h].children[j].path));
}

/* Rule groups (firewall rules): each rule's settings, and a name that identifies it once. */
static void validate_rules(struct vctx *c, const struct cmb_policy_instance *in, const struct cmb_policy_def *def)
{
	for (size_t g = 0; g < in->n_groups; g++) {
		const struct cmb_policy_group *gr = &in->groups[g];
		validate_group(c, gr, def);
		const char *name = NULL;
		char *rid = rule_id(c->p, gr, def, &name);
		char *where = xasprintf("%s/groupSettingCollectionValue[%zu]", in->path, g);
		const char *prev = rid ? seen_find(&c->rule_ids, rid) : NULL;
		if (!rid)
			reason_add(c->r, xasprintf("%s (%s): has no %s_name (Graph requires one)", where, def->id, def->id));
		else if (strchr(rid, '/'))
			reason_add(c->r, xasprintf("%s (%s): the rule id holds a \"/\"", where, def->id));
		else if (prev)
			reason_add(c->r, xasprintf("%s (%s): a second rule named \"%s\" (also at %s)", where, def->id,
						   name ? name : rid, prev));
		if (!rid || strchr(rid, '/') || prev) {
			c->bad = 1;
			free(where);
		} else {
			seen_add(&c->rule_ids, xstrdup(rid), where);
		}
		free(rid);
	}
}

static void validate_instance(struct vctx *c, const struct cmb_policy_instance *in, const struct cmb_policy_def *group)
{
	const struct cmb_policy_def *def = validate_place(c, in, group);
	if (!def)
		return;
	switch (def->type) {
	case CMB_PDEF_CHOICE:
	case CMB_PDEF_SELECTOR:
		validate_option(c, in, def, in->choice);
		validate_instances(c, in->children, in->n_children, NULL);
		break;
	case CMB_PDEF_CHOICES_FLAGS:
	case CMB_PDEF_CHOICES_LIST:
		for (size_t i = 0; i < in->n_items; i++)
			validate_option(c, in, def, in->items[i]);
		break;
	case CMB_PDEF_INT:
		if (in->ival < def->min || in->ival > def->max)
			vreason(c, in, xasprintf("integer %lld is outside %lld..%lld", in->ival, def->min, def->max));
		break;
	case CMB_PDEF_STRING:
		break;
	case CMB_PDEF_STRINGS:
		for (size_t i = 0; i < in->n_items; i++) {
			if (strstr(in->items[i], def->extra)) {
				vreason(c, in, xasprintf("value %zu holds the list separator \"%s\"", i, def->extra));
				break;
			}
		}
		break;
	case CMB_PDEF_GROUP_KV:
		validate_group_kv(c, in, def);
		break;
	case CMB_PDEF_GROUP:
		validate_rules(c, in, def);
		break;
	}
}

static void validate_instances(struct vctx *c, const struct cmb_policy_instance *v, size_t n,
			       const struct cmb_policy_def *group)
{
	for (size_t i = 0; i < n; i++)
		validate_instance(c, &v[i], group);
}

enum cmb_policy_verdict cmb_map_policy_validate(const struct cmb_policy *p, const char *const *attached,
					       size_t n_attached, struct cmb_policy_reasons *reasons)
{
	if (!p->for_connector)
		return CMB_POLICY_NOT_FOR_CONNECTOR;
	struct vctx c = { p, reasons, { 0 }, { 0 }, 0 };
	for (size_t i = 0; i < p->malformed.n; i++)
		reason_add(reasons, xstrdup(p->malformed.v[i]));
	if (p->malformed.n)
		c.bad = 1;
	if (!p->platforms || !strstr(p->platforms, "windows10")) {
		reason_add(reasons, xasprintf("platforms is \"%s\": the connector relays windows10 policies only",
					      p->platforms ? p->platforms : ""));
		c.bad = 1;
	}
	validate_instances(&c, p->settings, p->n_settings, NULL);
	for (size_t i = 0; i < p->n_collections; i++) {
		size_t j = 0;
		while (j < n_attached && !cmb_policy_streq(attached[j], p->collections[i]))
			j++;
		if (j == n_attached) {
			reason_add(reasons, xasprintf("target collection %s is not attached to the tenant or not enabled "
						      "for cloud sync",
						      p->collections[i]));
			c.bad = 1;
		}
	}
	seen_free(&c.top);
	for (size_t i = 0; i < c.rule_ids.n; i++) {
		free((char *)c.rule_ids.ids[i]);
		free((char *)c.rule_ids.paths[i]);
	}
	seen_free(&c.rule_ids);
	return c.bad ? CMB_POLICY_REJECTED : CMB_POLICY_ACCEPTED;
}

/* ---- flattening into items ---- */

struct items {
	struct cmb_policy_item *v;
	size_t n;
};

static struct cmb_policy_item *item_new(struct items *it, const struct cmb_policy_def *def, const char *csp)
{
	it->v = xrealloc(it->v, (it->n + 1) * sizeof(*it->v));
	struct cmb_policy_item *x = &it->v[it->n++];
	memset(x, 0, sizeof(*x));
	x->def = def;
	x->csp = xstrdup(csp);
	return x;
}

/* def->csp with "{0}" replaced by id. Caller frees. */
static char *csp_with_id(const char *tmpl, const char *id)
{
	const char *at = strstr(tmpl, "{0}");
	if (!at)
		return xstrdup(tmpl);
	return xasprintf("%.*s%s%s", (int)(at - tmpl), tmpl, id, at + 3);
}

static void flatten(const struct cmb_policy *p, const struct cmb_policy_instance *v, size_t n, struct items *it,
		    const struct cmb_policy_def *gdef, const char *gcsp, const char *rid);

static void flatten_one(const struct cmb_policy *p, const struct cmb_policy_instance *in, struct items *it,
			const struct cmb_policy_def *gdef, const char *gcsp, const char *rid)
{
	const struct cmb_policy_def *def = cmb_map_policy_def(in->definition_id);
	char val[64];
	char *csp = rid ? csp_with_id(def->csp, rid) : xstrdup(def->csp);
	struct cmb_policy_item *x = NULL;
	switch (def->type) {
	case CMB_PDEF_SELECTOR:
		break;
	case CMB_PDEF_CHOICE:
		cmb_map_policy_option(def, in->choice, val, sizeof(val));
		x = item_new(it, def, csp);
		x->value = xstrdup(val);
		if (gdef && gdef->type == CMB_PDEF_GROUP_KV)
			x->key = xstrdup(def->extra);
		break;
	case CMB_PDEF_INT:
		x = item_new(it, def, csp);
		x->value = xasprintf("%lld", in->ival);
		break;
	case CMB_PDEF_STRING:
		/* A rule's FirewallRuleName is its id (in the node path), not a node of its own. */
		if (gdef && gdef->type == CMB_PDEF_GROUP && strstr(def->id, "_firewallrulename") &&
		    strcmp(def->id + strlen(gdef->id), "_firewallrulename") == 0)
			break;
		x = item_new(it, def, csp);
		x->value = xstrdup(in->sval);
		break;
	case CMB_PDEF_STRINGS: {
		x = item_new(it, def, csp);
		x->set = xcalloc(in->n_items ? in->n_items : 1, sizeof(char *));
		for (size_t i = 0; i < in->n_items; i++)
			x->set[i] = xstrdup(in->items[i]);
		x->n_set = in->n_items;
		/* A union-merged list is a set: its order and repeats carry no meaning. */
		if (def->merge == CMB_PMERGE_UNION)
			x->n_set = cmb_policy_sort_unique(x->set, x->n_set);
		struct cmb_buf b = CMB_BUF_INIT((size_t)CMB_POLICY_MAX_BODY);
		for (size_t i = 0; i < x->n_set; i++) {
			if (i)
				cmb_buf_addstr(&b, def->extra);
			cmb_buf_addstr(&b, x->set[i]);
		}
		x->value = cmb_buf_detach(&b, NULL);
		break;
	}
	case CMB_PDEF_CHOICES_FLAGS: {
		long long bits = 0;
		for (size_t i = 0; i < in->n_items; i++) {
			cmb_map_policy_option(def, in->items[i], val, sizeof(val));
			bits |= strtoll(val, NULL, 10);
		}
		x = item_new(it, def, csp);
		x->value = xasprintf("%lld", bits);
		break;
	}
	case CMB_PDEF_CHOICES_LIST: {
		char **vals = xcalloc(in->n_items ? in->n_items : 1, sizeof(char *));
		for (size_t i = 0; i < in->n_items; i++) {
			cmb_map_policy_option(def, in->items[i], val, sizeof(val));
			vals[i] = xstrdup(val);
		}
		size_t nv = cmb_policy_sort_unique(vals, in->n_items);
		struct cmb_buf b = CMB_BUF_INIT(64 * 1024);
		for (size_t i = 0; i < nv; i++) {
			cmb_buf_printf(&b, "%s%s", i ? "," : "", vals[i]);
			free(vals[i]);
		}
		free(vals);
		x = item_new(it, def, csp);
		x->value = cmb_buf_detach(&b, NULL);
		break;
	}
	case CMB_PDEF_GROUP_KV:
		for (size_t g = 0; g < in->n_groups; g++)
			flatten(p, in->groups[g].children, in->groups[g].n_children, it, def, NULL, NULL);
		break;
	case CMB_PDEF_GROUP:
		for (size_t g = 0; g < in->n_groups; g++) {
			const char *name;
			char *id = rule_id(p, &in->groups[g], def, &name);
			char *node = csp_with_id(def->csp, id);
			flatten(p, in->groups[g].children, in->groups[g].n_children, it, def, node, id);
			free(node);
			free(id);
		}
		break;
	}
	if (x) {
		x->type = cmb_map_policy_value_type(def, x->value);
		if (gdef && gdef->type == CMB_PDEF_GROUP) {
			x->group_def = gdef;
			x->group_csp = xstrdup(gcsp);
		}
	}
	free(csp);
	if (in->type == CMB_PI_CHOICE)
		flatten(p, in->children, in->n_children, it, NULL, NULL, NULL);
}

static void flatten(const struct cmb_policy *p, const struct cmb_policy_instance *v, size_t n, struct items *it,
		    const struct cmb_policy_def *gdef, const char *gcsp, const char *rid)
{
	for (size_t i = 0; i < n; i++)
		flatten_one(p, &v[i], it, gdef, gcsp, rid);
}

static int item_cmp(const void *a, const void *b)
{
	const struct cmb_policy_item *x = a, *y = b;
	int c = strcmp(x->csp, y->csp);
	if (c)
		return c;
	c = strcmp(x->key ? x->key : "", y->key ? y->key : "");
	if (c)
		return c;
	return strcmp(x->def->id, y->def->id);
}

int cmb_policy_items(const struct cmb_policy *p, struct cmb_policy_item **out, size_t *n)
{
	struct cmb_policy_reasons r = { 0 };
	static const char *const none[] = { NULL };
	/* Targets are not the items' business: validate the settings only. */
	struct cmb_policy tmp = *p;
	tmp.n_collections = 0;
	enum cmb_policy_verdict v = cmb_map_policy_validate(&tmp, none, 0, &r);
	if (v != CMB_POLICY_ACCEPTED) {
		int rc = cmb_error_set(CMB_EINVAL, "policy %s is not accepted: %s", p->id,
				       r.n ? r.v[0] : "not for the connector (technologies lack configManager)");
		cmb_map_policy_reasons_free(&r);
		return rc;
	}
	struct items it = { NULL, 0 };
	flatten(p, p->settings, p->n_settings, &it, NULL, NULL, NULL);
	if (it.n)
		qsort(it.v, it.n, sizeof(*it.v), item_cmp);
	*out = it.v;
	*n = it.n;
	return 0;
}

void cmb_policy_items_free(struct cmb_policy_item *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].csp);
		free(v[i].key);
		free(v[i].value);
		for (size_t j = 0; j < v[i].n_set; j++)
			free(v[i].set[j]);
		free(v[i].set);
		free(v[i].group_csp);
	}
	free(v);
}
