/*
 * schema.c - reads Microsoft's Graph CSDL extract (libxml2) and validates
 * JSON objects against its entity and complex types. The same code serves
 * `cmbridge-lab schema-check`, the tenant's per-record upload checks and
 * the policy authoring routes (policies.c), so what the check accepts is
 * exactly what the tenant accepts.
 */
#include "lab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

enum kind { K_ENTITY, K_COMPLEX, K_ENUM };

struct prop {
	char *name, *type;
	bool nullable;
};

struct stype {
	char *name;
	enum kind kind;
	char *base;
	bool is_flags, abstract;
	char **members;
	size_t nmembers;
	struct prop *props;
	size_t nprops;
};

struct lab_schema {
	struct stype *t;
	size_t n;
};

/* Enum members newer than the June 2021 extract, from Microsoft's current
 * Graph beta documentation (see shared/reference/README.md). */
static const struct { const char *type, *member; } extra_members[] = {
	{"configurationManagerActionType", "quickScan"},
	{"configurationManagerActionType", "fullScan"},
	{"configurationManagerActionType", "windowsDefenderUpdateSignatures"},
	{"managementAgentType", "msSense"},
	{"managementAgentType", "google"},
	{"managementAgentType", "unknownFutureValue"},
};

static const char *short_name(const char *n)
{
	if (strncmp(n, "microsoft.graph.", 16) == 0)
		return n + 16;
	if (strncmp(n, "graph.", 6) == 0)
		return n + 6;
	return n;
}

static char *xattr(xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	if (!v)
		return NULL;
	char *s = lab_xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

static void add_member(struct stype *t, const char *m)
{
	t->members = lab_xrealloc(t->members, (t->nmembers + 1) * sizeof *t->members);
	t->members[t->nmembers++] = lab_xstrdup(m);
}

struct lab_schema *lab_schema_load(const char *path, char *err, size_t errlen)
{
	xmlDoc *doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS);
	if (!doc) {
		snprintf(err, errlen, "%s: cannot read or parse the CSDL", path);
		return NULL;
	}
	struct lab_schema *s = lab_xcalloc(1, sizeof *s);
	xmlNode *root = xmlDocGetRootElement(doc);
	/* edmx:Edmx / edmx:DataServices / Schema / types */
	for (xmlNode *ds = root ? root->children : NULL; ds; ds = ds->next) {
		if (ds->type != XML_ELEMENT_NODE || strcmp((const char *)ds->name, "DataServices"))
			continue;
		for (xmlNode *sc = ds->children; sc; sc = sc->next) {
			if (sc->type != XML_ELEMENT_NODE || strcmp((const char *)sc->name, "Schema"))
				continue;
			for (xmlNode *tn = sc->children; tn; tn = tn->next) {
				if (tn->type != XML_ELEMENT_NODE)
					continue;
				const char *en = (const char *)tn->name;
				enum kind k;
				if (!strcmp(en, "EntityType")) k = K_ENTITY;
				else if (!strcmp(en, "ComplexType")) k = K_COMPLEX;
				else if (!strcmp(en, "EnumType")) k = K_ENUM;
				else continue;
				s->t = lab_xrealloc(s->t, (s->n + 1) * sizeof *s->t);
				struct stype *t = &s->t[s->n++];
				memset(t, 0, sizeof *t);
				t->kind = k;
				t->name = xattr(tn, "Name");
				char *base = xattr(tn, "BaseType");
				if (base) {
					t->base = lab_xstrdup(short_name(base));
					free(base);
				}
				char *fl = xattr(tn, "IsFlags");
				t->is_flags = fl && !strcmp(fl, "true");
				free(fl);
				char *ab = xattr(tn, "Abstract");
				t->abstract = ab && !strcmp(ab, "true");
				free(ab);
				for (xmlNode *pn = tn->children; pn; pn = pn->next) {
					if (pn->type != XML_ELEMENT_NODE)
						continue;
					if (k == K_ENUM && !strcmp((const char *)pn->name, "Member")) {
						char *m = xattr(pn, "Name");
						if (m)
							add_member(t, m);
						free(m);
					} else if (k != K_ENUM && !strcmp((const char *)pn->name, "Property")) {
						t->props = lab_xrealloc(t->props, (t->nprops + 1) * sizeof *t->props);
						struct prop *p = &t->props[t->nprops++];
						p->name = xattr(pn, "Name");
						p->type = xattr(pn, "Type");
						char *nl = xattr(pn, "Nullable");
						p->nullable = !(nl && !strcmp(nl, "false"));
						free(nl);
						if (!p->name || !p->type) {
							snprintf(err, errlen, "%s:%ld: Property without Name or Type",
								 path, (long)xmlGetLineNo(pn));
							xmlFreeDoc(doc);
							lab_schema_free(s);
							return NULL;
						}
					}
				}
				if (!t->name) {
					snprintf(err, errlen, "%s:%ld: type without Name", path,
						 (long)xmlGetLineNo(tn));
					xmlFreeDoc(doc);
					lab_schema_free(s);
					return NULL;
				}
			}
		}
	}
	xmlFreeDoc(doc);
	for (size_t i = 0; i < sizeof extra_members / sizeof *extra_members; i++)
		for (size_t j = 0; j < s->n; j++)
			if (s->t[j].kind == K_ENUM && !strcmp(s->t[j].name, extra_members[i].type))
				add_member(&s->t[j], extra_members[i].member);
	if (!s->n) {
		snprintf(err, errlen, "%s: no types found", path);
		lab_schema_free(s);
		return NULL;
	}
	return s;
}

void lab_schema_free(struct lab_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct stype *t = &s->t[i];
		free(t->name);
		free(t->base);
		for (size_t j = 0; j < t->nmembers; j++)
			free(t->members[j]);
		free(t->members);
		for (size_t j = 0; j < t->nprops; j++) {
			free(t->props[j].name);
			free(t->props[j].type);
		}
		free(t->props);
	}
	free(s->t);
	free(s);
}

static const struct stype *find_type(const struct lab_schema *s, const char *name)
{
	name = short_name(name);
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->t[i].name, name))
			return &s->t[i];
	return NULL;
}

bool lab_schema_has_type(const struct lab_schema *s, const char *name)
{
	const struct stype *t = find_type(s, name);
	return t && t->kind != K_ENUM;
}

static const struct prop *find_prop(const struct lab_schema *s, const struct stype *t, const char *name)
{
	for (int depth = 0; t && depth < 16; depth++) {
		for (size_t i = 0; i < t->nprops; i++)
			if (!strcmp(t->props[i].name, name))
				return &t->props[i];
		t = t->base ? find_type(s, t->base) : NULL;
	}
	return NULL;
}

static bool derives_from(const struct lab_schema *s, const struct stype *t, const struct stype *base)
{
	for (int depth = 0; t && depth < 16; depth++) {
		if (t == base)
			return true;
		t = t->base ? find_type(s, t->base) : NULL;
	}
	return false;
}

struct vctx {
	const struct lab_schema *s;
	lab_schema_err_fn fn;
	void *ctx;
	int errors;
};

static void verr(struct vctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verr(struct vctx *c, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->errors++;
	c->fn(c->ctx, path, msg);
}

static const char *json_kind(yajl_val v)
{
	if (YAJL_IS_NULL(v)) return "null";
	if (YAJL_IS_STRING(v)) return "string";
	if (YAJL_IS_NUMBER(v)) return "number";
	if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) return "boolean";
	if (YAJL_IS_ARRAY(v)) return "array";
	return "object";
}

static bool digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* ISO 8601 / RFC 3339 date-time with offset, as OData JSON requires. */
static bool is_datetimeoffset(const char *s)
{
	if (strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2) || s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
	    !digits(s + 14, 2))
		return false;
	int mo = num(s + 5, 2), d = num(s + 8, 2), h = num(s + 11, 2), mi = num(s + 14, 2);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59)
		return false;
	const char *p = s + 16;
	if (*p == ':') {
		if (!digits(p + 1, 2) || num(p + 1, 2) > 59)
			return false;
		p += 3;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return false;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == 'Z' && p[1] == 0)
		return true;
	if ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && p[6] == 0)
		return num(p + 1, 2) <= 23 && num(p + 4, 2) <= 59;
	return false;
}

static bool enum_has(const struct stype *t, const char *m, size_t n)
{
	for (size_t i = 0; i < t->nmembers; i++)
		if (strlen(t->members[i]) == n && !strncmp(t->members[i], m, n))
			return true;
	return false;
}

static void validate_object(struct vctx *c, const struct stype *t, yajl_val v, const char *path);

static void validate_value(struct vctx *c, const char *type, bool nullable, yajl_val v, const char *path)
{
	size_t tl = strlen(type);
	if (!strncmp(type, "Collection(", 11) && type[tl - 1] == ')') {
		if (YAJL_IS_NULL(v)) {
			if (!nullable)
				verr(c, path, "null is not allowed (Nullable=false)");
			return;
		}
		if (!YAJL_IS_ARRAY(v)) {
			verr(c, path, "expected an array (%s), got %s", type, json_kind(v));
			return;
		}
		char *elem = lab_xstrndup(type + 11, tl - 12);
		for (size_t i = 0; i < v->u.array.len; i++) {
			char *sub = lab_xasprintf("%s[%zu]", path, i);
			validate_value(c, elem, nullable, v->u.array.values[i], sub);
			free(sub);
		}
		free(elem);
		return;
	}
	if (YAJL_IS_NULL(v)) {
		if (!nullable)
			verr(c, path, "null is not allowed (Nullable=false)");
		return;
	}
	if (!strncmp(type, "Edm.", 4)) {
		const char *e = type + 4;
		if (!strcmp(e, "String") || !strcmp(e, "Guid") || !strcmp(e, "Binary") ||
		    !strcmp(e, "Duration") || !strcmp(e, "TimeOfDay") || !strcmp(e, "Date")) {
			if (!YAJL_IS_STRING(v))
				verr(c, path, "expected a string (%s), got %s", type, json_kind(v));
		} else if (!strcmp(e, "Boolean")) {
			if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
				verr(c, path, "expected true or false (%s), got %s", type, json_kind(v));
		} else if (!strcmp(e, "Int32") || !strcmp(e, "Int64") || !strcmp(e, "Int16") ||
			   !strcmp(e, "Byte") || !strcmp(e, "SByte")) {
			if (!YAJL_IS_INTEGER(v)) {
				verr(c, path, "expected an integer (%s), got %s%s%s", type, json_kind(v),
				     YAJL_IS_NUMBER(v) ? " " : "", YAJL_IS_NUMBER(v) ? v->u.number.r : "");
				return;
			}
			long long x = v->u.number.i, lo = INT64_MIN, hi = INT64_MAX;
			if (!strcmp(e, "Int32")) { lo = INT32_MIN; hi = INT32_MAX; }
			else if (!strcmp(e, "Int16")) { lo = INT16_MIN; hi = INT16_MAX; }
			else if (!strcmp(e, "Byte")) { lo = 0; hi = 255; }
			else if (!strcmp(e, "SByte")) { lo = -128; hi = 127; }
			if (x < lo || x > hi)
				verr(c, path, "%lld is out of range for %s", x, type);
		} else if (!strcmp(e, "Double") || !strcmp(e, "Single") || !strcmp(e, "Decimal")) {
			if (!YAJL_IS_NUMBER(v))
				verr(c, path, "expected a number (%s), got %s", type, json_kind(v));
		} else if (!strcmp(e, "DateTimeOffset")) {
			if (!YAJL_IS_STRING(v))
				verr(c, path, "expected an ISO 8601 string (%s), got %s", type, json_kind(v));
			else if (!is_datetimeoffset(v->u.string))
				verr(c, path, "'%s' is not an ISO 8601 date-time with offset (%s)",
				     v->u.string, type);
		} else {
			verr(c, path, "unsupported type %s in the schema", type);
		}
		return;
	}
	const struct stype *t = find_type(c->s, type);
	if (!t) {
		verr(c, path, "type %s is not in the schema", type);
		return;
	}
	if (t->kind == K_ENUM) {
		if (!YAJL_IS_STRING(v)) {
			verr(c, path, "expected a member name of graph.%s (string), got %s", t->name,
			     json_kind(v));
			return;
		}
		const char *sv = v->u.string;
		if (t->is_flags) {
			const char *p = sv;
			for (;;) {
				const char *comma = strchr(p, ',');
				size_t n = comma ? (size_t)(comma - p) : strlen(p);
				const char *q = p;
				while (n && *q == ' ') { q++; n--; }
				if (!n || !enum_has(t, q, n)) {
					verr(c, path, "'%.*s' is not a member of graph.%s", (int)n, q, t->name);
					return;
				}
				if (!comma)
					break;
				p = comma + 1;
			}
		} else if (!enum_has(t, sv, strlen(sv))) {
			verr(c, path, "'%s' is not a member of graph.%s", sv, t->name);
		}
		return;
	}
	if (!YAJL_IS_OBJECT(v)) {
		verr(c, path, "expected an object (graph.%s), got %s", t->name, json_kind(v));
		return;
	}
	validate_object(c, t, v, path);
}

static void validate_object(struct vctx *c, const struct stype *t, yajl_val v, const char *path)
{
	/* A derived type may be named by @odata.type. */
	for (size_t i = 0; i < v->u.object.len; i++) {
		if (strcmp(v->u.object.keys[i], "@odata.type"))
			continue;
		yajl_val tv = v->u.object.values[i];
		const char *tn = YAJL_IS_STRING(tv) ? tv->u.string : "";
		if (*tn == '#')
			tn++;
		const struct stype *dt = find_type(c->s, tn);
		if (!dt || dt->kind == K_ENUM || !derives_from(c->s, dt, t)) {
			verr(c, path[0] ? path : "@odata.type", "'%s' is not graph.%s or a type derived from it",
			     YAJL_IS_STRING(tv) ? tv->u.string : json_kind(tv), t->name);
			return;
		}
		t = dt;
	}
	if (t->abstract) {
		/* OData cannot create an instance of an abstract type: the client
		 * names the derived type it means (settingInstance, a target) */
		verr(c, path[0] ? path : "@odata.type", "graph.%s is abstract: @odata.type must name a type derived from it",
		     t->name);
		return;
	}
	for (size_t i = 0; i < v->u.object.len; i++) {
		const char *k = v->u.object.keys[i];
		char *sub = path[0] ? lab_xasprintf("%s.%s", path, k) : lab_xstrdup(k);
		if (strchr(k, '@')) {
			/* instance and property annotations (@odata.etag, x@odata.type) */
		} else {
			const struct prop *p = find_prop(c->s, t, k);
			if (!p)
				verr(c, sub, "not a property of graph.%s", t->name);
			else
				validate_value(c, p->type, p->nullable, v->u.object.values[i], sub);
		}
		free(sub);
	}
}

int lab_schema_validate(const struct lab_schema *s, const char *type, yajl_val v,
			lab_schema_err_fn fn, void *ctx)
{
	struct vctx c = {.s = s, .fn = fn, .ctx = ctx};
	const struct stype *t = find_type(s, type);
	if (!t || t->kind == K_ENUM) {
		verr(&c, "", "type %s is not an entity or complex type of the schema", type);
		return c.errors;
	}
	if (!v || !YAJL_IS_OBJECT(v)) {
		verr(&c, "", "expected an object (graph.%s), got %s", t->name, v ? json_kind(v) : "nothing");
		return c.errors;
	}
	validate_object(&c, t, v, "");
	return c.errors;
}
