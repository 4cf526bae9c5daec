/*
 * metadata.c - the AdminService $metadata (CSDL) reader on libxml2's push
 * parser with SAX2 callbacks.
 *
 * A small state machine follows Edmx > DataServices > Schema > EntityType >
 * Key/Property and Schema > EntityContainer > EntitySet; everything else
 * (and every EntityType nobody asked for) is skipped with a depth counter,
 * as odata.c skips nested JSON. Names the parser looks for (wanted by the
 * caller, or needed because a kept class or a wanted set refers to them)
 * sit in one small list; base types are filled in at the end. libxml2 is
 * given no way to reach a DTD, an entity, a file or the network.
 * Never does I/O; never logs (errors go back through cmb_error_set()).
 */
#include "adapters/adminservice/metadata.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The most libxml2 is handed at once: it buffers what it is given before it
 * parses, so this (not the caller's piece size) bounds its input window.
 */
#define PIECE ((size_t)64 << 10)

/* A name from the document as shown in a message: at most 64 bytes, "..." when cut. */
#define SHOWN 72

/* Attributes read from one element at most (Property: Name, Type, Nullable). */
#define SLOTS 3

#if LIBXML_VERSION >= 21200
typedef const xmlError *xml_error_ptr;
#else
typedef xmlError *xml_error_ptr;
#endif

enum where_in_doc {
	AT_DOC = 0,       /* before the root element */
	AT_EDMX,          /* inside edmx:Edmx */
	AT_DATA,          /* inside edmx:DataServices */
	AT_SCHEMA,        /* inside a Schema */
	AT_TYPE,          /* inside an EntityType being kept */
	AT_KEY,           /* inside its Key */
	AT_CONTAINER,     /* inside an EntityContainer */
	AT_END,           /* root element closed */
};

/* Where the pre-scan is: only what libxml2 would buffer whole, or check pairwise, matters. */
enum scan_state {
	SC_TEXT = 0,      /* character data, streamed by libxml2 */
	SC_LT,            /* just after '<' */
	SC_TAG,           /* a start or end tag, outside quotes */
	SC_TAG_DQ,        /* inside "..." in a tag */
	SC_TAG_SQ,        /* inside '...' in a tag */
	SC_BANG,          /* "<!" */
	SC_BANG_DASH,     /* "<!-" */
	SC_BANG_BRACKET,  /* "<![", matching "CDATA[" */
	SC_COMMENT,       /* "<!--" up to "-->" */
	SC_CDATA,         /* "<![CDATA[" up to "]]>": libxml2 2.9 reads 300 bytes of it per chunk */
	SC_PI,            /* "<?" up to "?>" */
	SC_DECL,          /* "<!DOCTYPE" and the like, up to '>' (refused later anyway) */
};

/*
 * The pre-scan reads ASCII code units: bytes, or UTF-16 units when the
 * document starts with a UTF-16 byte order mark or "<" (both byte orders),
 * so that no byte of a non-ASCII UTF-16 character is taken for '<' or a
 * quote. Bytes are right for UTF-8, the ISO-8859 family, EUC, GBK, Big5 and
 * Shift_JIS, whose multi-byte characters have no byte below 0x40. Stateful
 * ISO-2022 and EBCDIC (which no AdminService sends) would be misread: the
 * limits would count the wrong things, so they do not protect those.
 */
struct scan {
	int width;        /* 0 not known yet, 1 bytes, 2 UTF-16LE, -2 UTF-16BE */
	unsigned char held[2];
	unsigned n_held;
	enum scan_state st;
	size_t markup;    /* units since the '<' of the current markup */
	size_t start;     /* byte offset of that '<' */
	unsigned attrs;   /* '=' seen in the current tag, outside quotes */
	unsigned run;     /* dashes, brackets, '?', or letters of "CDATA[" matched */
};

/* A name the parser looks for: wanted by the caller, needed by the document, or both. */
struct cand {
	char *name;
	size_t len;
	uint32_t hash;
	unsigned wanted : 1, needed : 1, set_seen : 1, action_seen : 1;
	long kept;          /* index in m->classes, or -1 */
	const char *by;     /* what needed it first: a class or set name owned by m */
	int by_set;         /* by names an EntitySet (1) or a derived EntityType (0) */
};

struct cmb_as_meta_parser {
	xmlParserCtxtPtr ctxt;
	char *where;
	struct cmb_as_meta_limits lim;

	struct cand *cands;
	size_t n_cands, cap_cands;

	struct cmb_as_meta *m;      /* the result; classes hold their own keys and properties until finish */
	size_t cap_classes, cap_sets, cap_actions;
	size_t cap_keys, cap_props; /* of the class being read, the last in m->classes */

	enum where_in_doc at;
	unsigned depth;             /* elements open */
	unsigned skip;              /* depth of a subtree being skipped; 0 = none */
	char *schema_ns;            /* Namespace of the Schema being read */
	char *scratch[SLOTS];       /* attribute values with '&' restored, one per attribute of an element */
	size_t scratch_cap[SLOTS];

	struct scan scan;           /* the pre-scan, one piece ahead of libxml2 */
	int in_parse;               /* inside xmlParseChunk: messages can name line and column */
	int finished;
	int error;                  /* sticky error code */
	char *errmsg;               /* and its message */
};

/* ---- small helpers ---------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 16777619u;
	}
	return h;
}

static const char *shown(char buf[SHOWN], const char *s, size_t n)
{
	size_t cut = n;
	if (cut > 64) {
		cut = 64;
		while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut--;      /* never half a UTF-8 sequence */
	}
	size_t o = 0;
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (cut < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static const char *shown_str(char buf[SHOWN], const char *s)
{
	return shown(buf, s, strlen(s));
}

/* Keeps the message of a new error so later calls can set it again. */
static int keep_error(struct cmb_as_meta_parser *p, int code)
{
	p->error = code;
	free(p->errmsg);
	p->errmsg = xstrdup(cmb_error_last());
	return code;
}

static int sticky(const struct cmb_as_meta_parser *p)
{
	return cmb_error_set(p->error, "%s", p->errmsg);
}

/*
 * Records an error; inside a callback it names the line and column and
 * stops libxml2, so no further callback runs.
 */
static int fail(struct cmb_as_meta_parser *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct cmb_as_meta_parser *p, int code, const char *fmt, ...)
{
	if (p->error)
		return p->error;
	va_list ap;
	va_start(ap, fmt);
	char *what = xvasprintf(fmt, ap);
	va_end(ap);
	if (p->in_parse) {
		cmb_error_set(code, "%s, line %d, column %d: %s", p->where, xmlSAX2GetLineNumber(p->ctxt),
			      xmlSAX2GetColumnNumber(p->ctxt), what);
		xmlStopParser(p->ctxt);
	} else {
		cmb_error_set(code, "%s: %s", p->where, what);
	}
	free(what);
	return keep_error(p, code);
}

/* Counts n more bytes against max_kept. */
static int charge(struct cmb_as_meta_parser *p, size_t n)
{
	if (n > p->lim.max_kept - p->m->kept_bytes)
		return fail(p, CMB_ETOOBIG, "the classes and sets kept would take more than %zu bytes (max_kept)",
			    p->lim.max_kept);
	p->m->kept_bytes += n;
	return 0;
}

static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 8;
	return xrealloc(v, *cap * size);
}

static long cand_find(const struct cmb_as_meta_parser *p, const char *s, size_t n)
{
	uint32_t h = name_hash(s, n);
	for (size_t i = 0; i < p->n_cands; i++) {
		const struct cand *c = &p->cands[i];
		if (c->hash == h && c->len == n && strncasecmp(c->name, s, n) == 0)
			return (long)i;
	}
	return -1;
}

static long cand_add(struct cmb_as_meta_parser *p, const char *s, size_t n)
{
	long i = cand_find(p, s, n);
	if (i >= 0)
		return i;
	p->cands = grow(p->cands, &p->cap_cands, p->n_cands, sizeof(*p->cands));
	struct cand *c = &p->cands[p->n_cands];
	memset(c, 0, sizeof(*c));
	c->name = xstrndup(s, n);
	c->len = n;
	c->hash = name_hash(s, n);
	c->kept = -1;
	return (long)p->n_cands++;
}

/* Marks a name the document needs kept; by (owned by m) is named if it turns out to be absent. */
static void need(struct cmb_as_meta_parser *p, const char *s, size_t n, const char *by, int by_set)
{
	long i = cand_add(p, s, n);     /* may move p->cands */
	struct cand *c = &p->cands[i];
	if (!c->needed) {
		c->needed = 1;
		c->by = by;
		c->by_set = by_set;
	}
}

/* ---- attributes --------------------------------------------------------- */

struct val {
	const char *s;      /* not NUL-terminated; NULL when absent */
	size_t n;
};

/* An unqualified attribute of a SAX2 start tag (5 pointers per attribute). */
static struct val attr(int nb, const xmlChar **attrs, const char *name)
{
	for (int i = 0; i < nb; i++) {
		const xmlChar **a = attrs + 5 * i;
		if (a[2] == NULL && strcmp((const char *)a[0], name) == 0)
			return (struct val){ (const char *)a[3], (size_t)(a[4] - a[3]) };
	}
	return (struct val){ NULL, 0 };
}

/*
 * Without entity substitution (XML_PARSE_NOENT, deliberately off) libxml2
 * 2.9 hands a '&' in an attribute value on as "&#38;", whether it was
 * written &amp; or &#38;, and never a bare '&': so every "&#38;" is exactly
 * one '&' (test_metadata pins this down, should a later libxml2 change it).
 */
static struct val unescape_amp(struct cmb_as_meta_parser *p, unsigned slot, struct val v)
{
	if (!v.s || !memchr(v.s, '&', v.n))
		return v;
	if (v.n + 1 > p->scratch_cap[slot]) {
		p->scratch_cap[slot] = v.n + 1;
		p->scratch[slot] = xrealloc(p->scratch[slot], v.n + 1);
	}
	char *d = p->scratch[slot];
	size_t o = 0;
	for (size_t i = 0; i < v.n; i++) {
		d[o++] = v.s[i];
		if (v.s[i] == '&' && v.n - i >= 5 && memcmp(v.s + i, "&#38;", 5) == 0)
			i += 4;
	}
	d[o] = '\0';
	return (struct val){ d, o };
}

/*
 * An attribute within max_name; required ones must be present and not
 * empty. slot (< SLOTS) keeps the values of one element apart.
 */
static int get(struct cmb_as_meta_parser *p, struct val *out, unsigned slot, int nb, const xmlChar **attrs,
	       const char *elem, const char *name, int required)
{
	char b[SHOWN];
	*out = attr(nb, attrs, name);
	if (out->n / 5 <= p->lim.max_name)     /* past that it is too long even if all "&#38;" */
		*out = unescape_amp(p, slot, *out);
	if (out->n > p->lim.max_name)
		return fail(p, CMB_ETOOBIG, "<%s> %s '%s' is longer than %zu bytes (max_name)", elem, name,
			    shown(b, out->s, out->n), p->lim.max_name);
	if (required && out->n == 0)
		return fail(p, CMB_EPROTO, "<%s> has no %s", elem, name);
	return 0;
}

/* "AdminService.SMS_R_System", "self.X", "X" -> "X": a qualified name without its namespace or alias. */
static struct val bare(struct val v)
{
	for (size_t i = v.n; i > 0; i--)
		if (v.s[i - 1] == '.')
			return (struct val){ v.s + i, v.n - i };
	return v;
}

/* ---- elements ----------------------------------------------------------- */

static struct cmb_as_meta_class *current(struct cmb_as_meta_parser *p)
{
	return &p->m->classes[p->m->n_classes - 1];
}

static void schema_start(struct cmb_as_meta_parser *p, int nb, const xmlChar **attrs)
{
	struct val ns;
	if (get(p, &ns, 0, nb, attrs, "Schema", "Namespace", 0) < 0)
		return;
	free(p->schema_ns);
	p->schema_ns = ns.s ? xstrndup(ns.s, ns.n) : NULL;
	p->at = AT_SCHEMA;
}

static void type_start(struct cmb_as_meta_parser *p, int nb, const xmlChar **attrs)
{
	struct cmb_as_meta *m = p->m;
	struct val name, base;
	char b1[SHOWN];
	m->n_types_seen++;
	if (get(p, &name, 0, nb, attrs, "EntityType", "Name", 1) < 0)
		return;
	if (!m->ns && p->schema_ns) {
		if (charge(p, strlen(p->schema_ns) + 1) < 0)
			return;
		m->ns = xstrdup(p->schema_ns);
	}
	long c = cand_find(p, name.s, name.n);
	if (c < 0 || p->cands[c].kept >= 0) {
		p->skip = 1;        /* not asked for, or a second type of a name already kept */
		return;
	}
	if (get(p, &base, 1, nb, attrs, "EntityType", "BaseType", 0) < 0)
		return;
	if (base.s) {
		base = bare(base);
		if (base.n == 0) {
			fail(p, CMB_EPROTO, "EntityType '%s' has an empty BaseType", shown(b1, name.s, name.n));
			return;
		}
	}
	if (m->n_classes >= p->lim.max_classes) {
		fail(p, CMB_ETOOBIG, "more than %zu classes to keep, the wanted ones and their base types (max_classes)",
		     p->lim.max_classes);
		return;
	}
	if (charge(p, sizeof(*m->classes) + name.n + 1 + (base.s ? base.n + 1 : 0)) < 0)
		return;
	m->classes = grow(m->classes, &p->cap_classes, m->n_classes, sizeof(*m->classes));
	struct cmb_as_meta_class *cls = &m->classes[m->n_classes];
	memset(cls, 0, sizeof(*cls));
	cls->name = xstrndup(name.s, name.n);
	cls->base_type = base.s ? xstrndup(base.s, base.n) : NULL;
	p->cands[c].kept = (long)m->n_classes++;
	p->cap_keys = p->cap_props = 0;
	p->at = AT_TYPE;
}

static void type_end(struct cmb_as_meta_parser *p)
{
	struct cmb_as_meta_class *cls = current(p);
	if (!cls->base_type)
		return;
	long c = cand_find(p, cls->base_type, strlen(cls->base_type));
	if (c >= 0 && p->cands[c].kept >= 0)
		return;             /* came before and was kept */
	need(p, cls->base_type, strlen(cls->base_type), cls->name, 0);
}

static void property(struct cmb_as_meta_parser *p, int nb, const xmlChar **attrs)
{
	struct cmb_as_meta_class *cls = current(p);
	struct val name, type, nullable;
	char b1[SHOWN];
	if (get(p, &name, 0, nb, attrs, "Property", "Name", 1) < 0 ||
	    get(p, &type, 1, nb, attrs, "Property", "Type", 1) < 0 ||
	    get(p, &nullable, 2, nb, attrs, "Property", "Nullable", 0) < 0)
		return;
	if (cls->n_props >= p->lim.max_props) {
		fail(p, CMB_ETOOBIG, "EntityType '%s' has more than %zu properties (max_props)",
		     shown_str(b1, cls->name), p->lim.max_props);
		return;
	}
	if (charge(p, sizeof(*cls->props) + name.n + 1 + type.n + 1) < 0)
		return;
	cls->props = grow(cls->props, &p->cap_props, cls->n_props, sizeof(*cls->props));
	struct cmb_as_meta_prop *pr = &cls->props[cls->n_props++];
	pr->name = xstrndup(name.s, name.n);
	pr->type = xstrndup(type.s, type.n);
	/* xs:boolean: "false" and "0" are false; anything else keeps the default. */
	pr->nullable = !((nullable.n == 5 && memcmp(nullable.s, "false", 5) == 0) ||
			 (nullable.n == 1 && nullable.s[0] == '0'));
}

static void property_ref(struct cmb_as_meta_parser *p, int nb, const xmlChar **attrs)
{
	struct cmb_as_meta_class *cls = current(p);
	struct val name;
	char b1[SHOWN];
	if (get(p, &name, 0, nb, attrs, "PropertyRef", "Name", 1) < 0)
		return;
	if (cls->n_keys >= p->lim.max_props) {
		fail(p, CMB_ETOOBIG, "EntityType '%s' has more than %zu key properties (max_props)",
		     shown_str(b1, cls->name), p->lim.max_props);
		return;
	}
	if (charge(p, sizeof(*cls->keys) + name.n + 1) < 0)
		return;
	cls->keys = grow(cls->keys, &p->cap_keys, cls->n_keys, sizeof(*cls->keys));
	cls->keys[cls->n_keys++] = xstrndup(name.s, name.n);
}

static void entity_set(struct cmb_as_meta_parser *p, int nb, const xmlChar **attrs)
{
	struct cmb_as_meta *m = p->m;
	struct val name, type;
	char b1[SHOWN];
	if (get(p, &name, 0, nb, attrs, "EntitySet", "Name", 1) < 0 ||
	    get(p, &type, 1, nb, attrs, "EntitySet", "EntityType", 1) < 0)
		return;
	type = bare(type);
	if (type.n == 0) {
		fail(p, CMB_EPROTO, "EntitySet '%s' has an empty EntityType", shown(b1, name.s, name.n));
		return;
	}
	if (charge(p, 2 * sizeof(char *) + name.n + 1 + type.n + 1) < 0)
		return;
	if (m->n_sets == p->cap_sets) {
		p->cap_sets = p->cap_sets ? p->cap_sets * 2 : 8;
		m->entity_sets = xrealloc(m->entity_sets, p->cap_sets * sizeof(char *));
		m->entity_set_types = xrealloc(m->entity_set_types, p->cap_sets * sizeof(char *));
	}
	char *set = m->entity_sets[m->n_sets] = xstrndup(name.s, name.n);
	m->entity_set_types[m->n_sets++] = xstrndup(type.s, type.n);

	long c = cand_find(p, name.s, name.n);
	if (c < 0 || !p->cands[c].wanted)
		return;
	if (p->cands[c].set_seen) {
		fail(p, CMB_EPROTO, "EntitySet '%s' appears twice", shown(b1, name.s, name.n));
		return;
	}
	p->cands[c].set_seen = 1;
	long t = cand_find(p, type.s, type.n);
	if (t >= 0 && p->cands[t].kept >= 0)
		return;             /* its type came before and was kept */
	need(p, type.s, type.n, set, 1);
}

static void action(struct cmb_as_meta_parser *p, const char *elem, int nb, const xmlChar **attrs)
{
	struct cmb_as_meta *m = p->m;
	struct val name;
	if (get(p, &name, 0, nb, attrs, elem, "Name", 1) < 0)
		return;
	long c = cand_find(p, name.s, name.n);
	if (c < 0 || !p->cands[c].wanted || p->cands[c].action_seen)
		return;             /* not asked for, or an overload of one already listed */
	if (charge(p, sizeof(char *) + name.n + 1) < 0)
		return;
	p->cands[c].action_seen = 1;
	m->actions = grow(m->actions, &p->cap_actions, m->n_actions, sizeof(char *));
	m->actions[m->n_actions++] = xstrndup(name.s, name.n);
}

/* ---- SAX2 callbacks ----------------------------------------------------- */

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
		     int nb_namespaces, const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
		     const xmlChar **attrs)
{
	struct cmb_as_meta_parser *p = ctx;
	const char *el = (const char *)localname;
	char b1[SHOWN];
	if (p->error)
		return;
	if (++p->depth > p->lim.max_depth) {
		fail(p, CMB_EPROTO, "elements are nested deeper than %u (max_depth)", p->lim.max_depth);
		return;
	}
	if (p->skip) {
		p->skip++;
		return;
	}
	/* Elements are known by local name and place; namespace URIs are not checked. */
	switch (p->at) {
	case AT_DOC:
		if (strcmp(el, "Edmx") != 0) {
			fail(p, CMB_EPROTO, "not a CSDL document: the root element is <%s>, not <edmx:Edmx>",
			     shown_str(b1, el));
			return;
		}
		p->at = AT_EDMX;
		return;
	case AT_EDMX:
		if (strcmp(el, "DataServices") == 0)
			p->at = AT_DATA;
		else
			p->skip = 1;    /* edmx:Reference and the like */
		return;
	case AT_DATA:
		if (strcmp(el, "Schema") == 0)
			schema_start(p, nb_attributes, attrs);
		else
			p->skip = 1;
		return;
	case AT_SCHEMA:
		if (strcmp(el, "EntityType") == 0) {
			type_start(p, nb_attributes, attrs);
			return;
		}
		if (strcmp(el, "EntityContainer") == 0) {
			p->at = AT_CONTAINER;
			return;
		}
		if (strcmp(el, "Action") == 0 || strcmp(el, "Function") == 0)
			action(p, el, nb_attributes, attrs);
		p->skip = 1;        /* ComplexType, EnumType, Term, Annotations, an action's parameters */
		return;
	case AT_TYPE:
		if (strcmp(el, "Key") == 0) {
			p->at = AT_KEY;
			return;
		}
		if (strcmp(el, "Property") == 0)
			property(p, nb_attributes, attrs);
		p->skip = 1;        /* a property's annotations; NavigationProperty, Annotation */
		return;
	case AT_KEY:
		if (strcmp(el, "PropertyRef") == 0)
			property_ref(p, nb_attributes, attrs);
		p->skip = 1;
		return;
	case AT_CONTAINER:
		if (strcmp(el, "EntitySet") == 0)
			entity_set(p, nb_attributes, attrs);
		p->skip = 1;        /* and Singleton, ActionImport, FunctionImport, NavigationPropertyBinding */
		return;
	case AT_END:
		break;
	}
	fail(p, CMB_EPROTO, "element <%s> after the root element", shown_str(b1, el));
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	struct cmb_as_meta_parser *p = ctx;
	if (p->error)
		return;
	p->depth--;
	if (p->skip) {
		p->skip--;
		return;
	}
	switch (p->at) {
	case AT_KEY:
		p->at = AT_TYPE;
		break;
	case AT_TYPE:
		type_end(p);
		p->at = AT_SCHEMA;
		break;
	case AT_CONTAINER:
		p->at = AT_SCHEMA;
		break;
	case AT_SCHEMA:
		p->at = AT_DATA;
		break;
	case AT_DATA:
		p->at = AT_EDMX;
		break;
	case AT_EDMX:
		p->at = AT_END;
		break;
	case AT_DOC:
	case AT_END:
		break;
	}
}

/*
 * A DOCTYPE reaches internalSubset as soon as its name and external id are
 * read, before an internal subset or an external one is looked at: stopping
 * there means no entity is ever declared, expanded or fetched. The other
 * declaration callbacks cannot run after that; they refuse too, in case.
 */
static void refuse(void *ctx)
{
	fail(ctx, CMB_EPROTO, "DTDs and entities are not accepted in $metadata");
}

static void on_subset(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
	refuse(ctx);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
			   const xmlChar *system_id, xmlChar *content)
{
	refuse(ctx);
}

static void on_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
				    const xmlChar *system_id, const xmlChar *notation)
{
	refuse(ctx);
}

static void on_notation_decl(void *ctx, const xmlChar *name, const xmlChar *public_id, const xmlChar *system_id)
{
	refuse(ctx);
}

/* libxml2's own errors (not well-formed, bad encoding, its limits): the first one ends the document. */
static void on_xml_error(void *ctx, xml_error_ptr e)
{
	struct cmb_as_meta_parser *p = ctx;
	if (p->error || !e || e->level < XML_ERR_ERROR)
		return;
	char msg[256];
	const char *s = e->message ? e->message : "malformed XML";
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	if (n > sizeof(msg) - 4)
		n = sizeof(msg) - 4;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		msg[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	msg[o] = '\0';
	cmb_error_set(CMB_EPROTO, "%s, line %d, column %d: %s", p->where, e->line, e->int2, msg);
	keep_error(p, CMB_EPROTO);
	xmlStopParser(p->ctxt);
}

/* After xmlParseChunk: our error, libxml2's, or 0. */
static int check_xml(struct cmb_as_meta_parser *p, int rc)
{
	if (p->error)
		return p->error;
	if (rc == 0 && p->ctxt->wellFormed)
		return 0;
	xml_error_ptr e = xmlCtxtGetLastError(p->ctxt);
	if (e && e->level >= XML_ERR_ERROR) {
		on_xml_error(p, e);
		return p->error;
	}
	cmb_error_set(CMB_EPROTO, "%s, line %d, column %d: malformed XML (libxml2 error %d)", p->where,
		      xmlSAX2GetLineNumber(p->ctxt), xmlSAX2GetColumnNumber(p->ctxt), rc);
	return keep_error(p, CMB_EPROTO);
}

/* ---- the pre-scan -------------------------------------------------------- */

static int scan_too_long(struct cmb_as_meta_parser *p)
{
	return fail(p, CMB_ETOOBIG, "byte %zu: a tag, comment, CDATA section or processing instruction runs "
		    "past %zu bytes (max_markup)", p->scan.start, p->lim.max_markup);
}

/* A comment or CDATA section ends at two of ch followed by '>'. */
static void ends_with_run(struct scan *sc, unsigned c, unsigned ch)
{
	if (c == ch)
		sc->run++;
	else if (c == '>' && sc->run >= 2)
		sc->st = SC_TEXT;
	else
		sc->run = 0;
}

/* One ASCII code unit (anything >= 0x80 is "other") at byte offset `at`. */
static int scan_unit(struct cmb_as_meta_parser *p, unsigned c, size_t at)
{
	struct scan *sc = &p->scan;
	static const char cdata[] = "CDATA[";
	switch (sc->st) {
	case SC_TEXT:
		if (c == '<') {
			sc->st = SC_LT;
			sc->markup = 1;
			sc->start = at;
			sc->attrs = 0;
		}
		return 0;
	default:
		break;
	}
	if (++sc->markup > p->lim.max_markup)
		return scan_too_long(p);
	switch (sc->st) {
	case SC_LT:
		if (c == '!') {
			sc->st = SC_BANG;
			return 0;
		}
		if (c == '?') {
			sc->st = SC_PI;
			sc->run = 0;
			return 0;
		}
		/* c is the tag's first character */
		sc->st = SC_TAG;
		/* fall through */
	case SC_TAG:
		if (c == '"')
			sc->st = SC_TAG_DQ;
		else if (c == '\'')
			sc->st = SC_TAG_SQ;
		else if (c == '>')
			sc->st = SC_TEXT;
		else if (c == '=' && ++sc->attrs > p->lim.max_attrs)
			return fail(p, CMB_EPROTO, "byte %zu: an element has more than %u attributes (max_attrs)",
				    sc->start, p->lim.max_attrs);
		return 0;
	case SC_TAG_DQ:
		if (c == '"')
			sc->st = SC_TAG;
		return 0;
	case SC_TAG_SQ:
		if (c == '\'')
			sc->st = SC_TAG;
		return 0;
	case SC_BANG:
		sc->st = c == '-' ? SC_BANG_DASH : c == '[' ? SC_BANG_BRACKET : c == '>' ? SC_TEXT : SC_DECL;
		sc->run = 0;
		return 0;
	case SC_BANG_DASH:
		sc->st = c == '-' ? SC_COMMENT : c == '>' ? SC_TEXT : SC_DECL;
		sc->run = 0;
		return 0;
	case SC_BANG_BRACKET:
		if (c == (unsigned char)cdata[sc->run]) {
			if (++sc->run == sizeof(cdata) - 1) {
				sc->st = SC_CDATA;
				sc->run = 0;
			}
		} else {
			sc->st = c == '>' ? SC_TEXT : SC_DECL;
		}
		return 0;
	case SC_COMMENT:
		ends_with_run(sc, c, '-');    /* "-->" */
		return 0;
	case SC_CDATA:
		ends_with_run(sc, c, ']');    /* "]]>" */
		return 0;
	case SC_PI:
		if (c == '>' && sc->run)
			sc->st = SC_TEXT;
		else
			sc->run = c == '?';
		return 0;
	case SC_DECL:
		if (c == '>')
			sc->st = SC_TEXT;
		return 0;
	case SC_TEXT:
		break;
	}
	return 0;
}

/* Scans the next n bytes, which start at byte offset `at` of the document. */
static int scan(struct cmb_as_meta_parser *p, const unsigned char *s, size_t n, size_t at)
{
	struct scan *sc = &p->scan;
	for (size_t i = 0; i < n; i++) {
		if (sc->width == 1) {
			if (sc->st == SC_TEXT) {    /* the common case: skip to the next '<' */
				const unsigned char *lt = memchr(s + i, '<', n - i);
				if (!lt)
					return 0;
				i = (size_t)(lt - s);
			}
			if (scan_unit(p, s[i], at + i) < 0)
				return p->error;
			continue;
		}
		sc->held[sc->n_held++] = s[i];
		if (sc->n_held < 2)
			continue;
		unsigned char a = sc->held[0], b = sc->held[1];
		sc->n_held = 0;
		if (sc->width == 0) {
			if ((a == 0xFF && b == 0xFE) || (a == '<' && b == 0))
				sc->width = 2;
			else if ((a == 0xFE && b == 0xFF) || (a == 0 && b == '<'))
				sc->width = -2;
			else
				sc->width = 1;
			if (sc->width == 1) {
				if (scan_unit(p, a, at + i - 1) < 0 || scan_unit(p, b, at + i) < 0)
					return p->error;
				continue;
			}
		}
		unsigned c = sc->width == 2 ? (unsigned)a | (unsigned)b << 8 : (unsigned)a << 8 | b;
		if (scan_unit(p, c < 0x80 ? c : 0x80, at + i - 1) < 0)
			return p->error;
	}
	return 0;
}

/* ---- the parser --------------------------------------------------------- */

static void class_clear(struct cmb_as_meta_class *c)
{
	free(c->name);
	free(c->base_type);
	for (size_t i = 0; i < c->n_keys; i++)
		free(c->keys[i]);
	free(c->keys);
	for (size_t i = 0; i < c->n_props; i++) {
		free(c->props[i].name);
		free(c->props[i].type);
	}
	free(c->props);
}

void cmb_as_meta_free(struct cmb_as_meta *m)
{
	if (!m)
		return;
	free(m->ns);
	for (size_t i = 0; i < m->n_classes; i++)
		class_clear(&m->classes[i]);
	free(m->classes);
	for (size_t i = 0; i < m->n_sets; i++) {
		free(m->entity_sets[i]);
		free(m->entity_set_types[i]);
	}
	free(m->entity_sets);
	free(m->entity_set_types);
	for (size_t i = 0; i < m->n_actions; i++)
		free(m->actions[i]);
	free(m->actions);
	for (size_t i = 0; i < m->n_missing; i++)
		free(m->missing[i]);
	free(m->missing);
	free(m);
}

void cmb_as_meta_parser_free(struct cmb_as_meta_parser *p)
{
	if (!p)
		return;
	if (p->ctxt) {
		if (p->ctxt->myDoc)
			xmlFreeDoc(p->ctxt->myDoc);
		xmlFreeParserCtxt(p->ctxt);
	}
	for (size_t i = 0; i < p->n_cands; i++)
		free(p->cands[i].name);
	free(p->cands);
	cmb_as_meta_free(p->m);
	free(p->schema_ns);
	for (unsigned i = 0; i < SLOTS; i++)
		free(p->scratch[i]);
	free(p->where);
	free(p->errmsg);
	free(p);
}

int cmb_as_meta_parser_new(struct cmb_as_meta_parser **out, const char *where, const char *const *wanted,
			   size_t n_wanted, const struct cmb_as_meta_limits *lim)
{
	if (!out)
		return cmb_error_set(CMB_EINVAL, "cmb_as_meta_parser_new: no place for the parser");
	if (n_wanted && !wanted)
		return cmb_error_set(CMB_EINVAL, "cmb_as_meta_parser_new: %zu wanted names but no list", n_wanted);
	for (size_t i = 0; i < n_wanted; i++)
		if (!wanted[i] || !wanted[i][0])
			return cmb_error_set(CMB_EINVAL, "cmb_as_meta_parser_new: wanted[%zu] is %s", i,
					     wanted[i] ? "empty" : "NULL");

	struct cmb_as_meta_parser *p = xcalloc(1, sizeof(*p));
	p->where = xstrdup(where ? where : "$metadata");
	if (lim)
		p->lim = *lim;
	if (!p->lim.max_bytes)
		p->lim.max_bytes = CMB_AS_META_MAX_BYTES;
	if (!p->lim.max_depth)
		p->lim.max_depth = CMB_AS_META_MAX_DEPTH;
	if (!p->lim.max_name)
		p->lim.max_name = CMB_AS_META_MAX_NAME;
	if (!p->lim.max_props)
		p->lim.max_props = CMB_AS_META_MAX_PROPS;
	if (!p->lim.max_classes)
		p->lim.max_classes = CMB_AS_META_MAX_CLASSES;
	if (!p->lim.max_kept)
		p->lim.max_kept = CMB_AS_META_MAX_KEPT;
	if (!p->lim.max_markup)
		p->lim.max_markup = CMB_AS_META_MAX_MARKUP;
	if (!p->lim.max_attrs)
		p->lim.max_attrs = CMB_AS_META_MAX_ATTRS;
	for (size_t i = 0; i < n_wanted; i++) {
		long c = cand_add(p, wanted[i], strlen(wanted[i]));
		p->cands[c].wanted = 1;
	}
	p->m = xcalloc(1, sizeof(*p->m));

	/*
	 * Only these callbacks: no startDocument (so no tree is built), no
	 * getEntity or resolveEntity (so only the five predefined entities and
	 * character references exist), no characters (text is never needed).
	 */
	xmlSAXHandler sax;
	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = on_start;
	sax.endElementNs = on_end;
	sax.internalSubset = on_subset;
	sax.externalSubset = on_subset;
	sax.entityDecl = on_entity_decl;
	sax.unparsedEntityDecl = on_unparsed_entity_decl;
	sax.notationDecl = on_notation_decl;
	sax.serror = on_xml_error;

	xmlInitParser();
	p->ctxt = xmlCreatePushParserCtxt(&sax, p, NULL, 0, NULL);
	if (!p->ctxt) {
		cmb_as_meta_parser_free(p);
		return cmb_error_set(CMB_ERROR, "cannot allocate an XML parser");
	}
	/*
	 * NONET: nothing is ever fetched. Deliberately not NOENT (substitute
	 * entities), DTDLOAD/DTDATTR/DTDVALID (read a DTD) or HUGE (lift
	 * libxml2's own limits on names, text and depth).
	 */
	xmlCtxtUseOptions(p->ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	*out = p;
	return 0;
}

int cmb_as_meta_feed(struct cmb_as_meta_parser *p, const void *data, size_t len)
{
	if (!p)
		return cmb_error_set(CMB_EINVAL, "cmb_as_meta_feed: no parser");
	if (p->error)
		return sticky(p);
	if (p->finished)
		return cmb_error_set(CMB_EINVAL, "%s: fed after the end of the document", p->where);
	if (len == 0)
		return 0;
	if (!data)
		return cmb_error_set(CMB_EINVAL, "%s: fed %zu bytes from NULL", p->where, len);
	if (len > p->lim.max_bytes - p->m->bytes)
		return fail(p, CMB_ETOOBIG, "the document is larger than the limit of %zu bytes (max_bytes)",
			    p->lim.max_bytes);
	const char *s = data;
	while (len) {
		size_t n = len < PIECE ? len : PIECE;
		int error = scan(p, (const unsigned char *)s, n, p->m->bytes);
		if (error < 0)
			return error;
		p->in_parse = 1;
		int rc = xmlParseChunk(p->ctxt, s, (int)n, 0);
		p->in_parse = 0;
		p->m->bytes += n;
		error = check_xml(p, rc);
		if (error < 0)
			return error;
		s += n;
		len -= n;
	}
	return 0;
}

/*
 * Fills in inherited keys and properties: bases first (a topological order
 * over the kept classes), each derived class copying its base's complete
 * lists and moving its own after them. Everything is counted and checked
 * before anything is built, so a failure leaves the classes as they were.
 */
/* The working lists of inherit(): one entry per kept class. */
struct inheritance {
	size_t n;
	long *base;                 /* index of the kept base class, -1 for none */
	size_t *order;              /* bases before the classes that derive from them */
	size_t *nk, *np;            /* keys and properties, inherited ones included */
	size_t *bytes;              /* strings of the complete lists */
};

/* Orders the classes so that each base comes before what derives from it; a cycle is an error. */
static int order_by_base(struct cmb_as_meta_parser *p, struct inheritance *in)
{
	struct cmb_as_meta *m = p->m;
	unsigned char *state = xcalloc(in->n, 1); /* 0 not yet, 1 on the chain being walked, 2 ordered */
	size_t *chain = xmalloc(in->n * sizeof(*chain));
	size_t n_order = 0;
	char b1[SHOWN];
	int error = 0;
	for (size_t i = 0; i < in->n; i++) {
		in->base[i] = -1;
		const char *b = m->classes[i].base_type;
		long c = b ? cand_find(p, b, strlen(b)) : -1;
		if (c >= 0)
			in->base[i] = p->cands[c].kept;   /* -1 when missing */
	}
	for (size_t i = 0; i < in->n && !error; i++) {
		size_t len = 0;
		long j = (long)i;
		while (j >= 0 && state[j] == 0) {
			state[j] = 1;
			chain[len++] = (size_t)j;
			j = in->base[j];
		}
		if (j >= 0 && state[j] == 1) {
			error = fail(p, CMB_EPROTO, "the BaseType chain of EntityType '%s' comes back to itself",
				     shown_str(b1, m->classes[j].name));
			break;
		}
		while (len) {
			size_t k = chain[--len];
			state[k] = 2;
			in->order[n_order++] = k;
		}
	}
	free(state);
	free(chain);
	return error;
}

/* How big each complete list will be, charged against the limits before anything is copied. */
static int count_inherited(struct cmb_as_meta_parser *p, struct inheritance *in)
{
	struct cmb_as_meta *m = p->m;
	size_t cost = 0;
	char b1[SHOWN];
	for (size_t o = 0; o < in->n; o++) {
		size_t k = in->order[o];
		const struct cmb_as_meta_class *c = &m->classes[k];
		size_t own = 0;
		for (size_t i = 0; i < c->n_keys; i++)
			own += strlen(c->keys[i]) + 1;
		for (size_t i = 0; i < c->n_props; i++)
			own += strlen(c->props[i].name) + 1 + strlen(c->props[i].type) + 1;
		in->nk[k] = c->n_keys;
		in->np[k] = c->n_props;
		in->bytes[k] = own;
		if (in->base[k] >= 0) {
			size_t b = (size_t)in->base[k];
			in->nk[k] += in->nk[b];
			in->np[k] += in->np[b];
			in->bytes[k] += in->bytes[b];
			cost += in->bytes[b] + in->nk[b] * sizeof(char *) + in->np[b] * sizeof(struct cmb_as_meta_prop);
			if (cost > p->lim.max_kept)
				return charge(p, cost);
		}
		if (in->np[k] > p->lim.max_props || in->nk[k] > p->lim.max_props)
			return fail(p, CMB_ETOOBIG, "EntityType '%s' has more than %zu %sproperties with those it "
				    "inherits (max_props)", shown_str(b1, c->name), p->lim.max_props,
				    in->nk[k] > p->lim.max_props ? "key " : "");
	}
	return charge(p, cost);
}

/* Builds each derived class's complete lists, base keys and properties first, then swaps them in. */
static void flatten(struct cmb_as_meta_parser *p, const struct inheritance *in)
{
	struct cmb_as_meta *m = p->m;
	struct { char **keys; struct cmb_as_meta_prop *props; } *flat = xcalloc(in->n, sizeof(*flat));
	for (size_t o = 0; o < in->n; o++) {
		size_t k = in->order[o];
		struct cmb_as_meta_class *c = &m->classes[k];
		if (in->base[k] < 0)
			continue;       /* nothing inherited: its own lists stay */
		size_t b = (size_t)in->base[k];
		const struct cmb_as_meta_class *bc = &m->classes[b];
		char **bkeys = flat[b].keys ? flat[b].keys : bc->keys;
		struct cmb_as_meta_prop *bprops = flat[b].props ? flat[b].props : bc->props;
		char **keys = xmalloc((in->nk[k] ? in->nk[k] : 1) * sizeof(*keys));
		struct cmb_as_meta_prop *props = xmalloc((in->np[k] ? in->np[k] : 1) * sizeof(*props));
		for (size_t i = 0; i < in->nk[b]; i++)
			keys[i] = xstrdup(bkeys[i]);
		if (c->n_keys)
			memcpy(keys + in->nk[b], c->keys, c->n_keys * sizeof(*keys));
		for (size_t i = 0; i < in->np[b]; i++) {
			props[i].name = xstrdup(bprops[i].name);
			props[i].type = xstrdup(bprops[i].type);
			props[i].nullable = bprops[i].nullable;
		}
		if (c->n_props)
			memcpy(props + in->np[b], c->props, c->n_props * sizeof(*props));
		flat[k].keys = keys;
		flat[k].props = props;
	}
	for (size_t k = 0; k < in->n; k++) {
		struct cmb_as_meta_class *c = &m->classes[k];
		if (!flat[k].keys)
			continue;
		free(c->keys);
		free(c->props);
		c->keys = flat[k].keys;
		c->n_keys = in->nk[k];
		c->props = flat[k].props;
		c->n_props = in->np[k];
	}
	free(flat);
}

/* Keys and properties of each kept class, its bases' included. */
static int inherit(struct cmb_as_meta_parser *p)
{
	size_t n = p->m->n_classes;
	if (n == 0)
		return 0;
	struct inheritance in = {
		.n = n, .base = xmalloc(n * sizeof(long)), .order = xmalloc(n * sizeof(size_t)),
		.nk = xmalloc(n * sizeof(size_t)), .np = xmalloc(n * sizeof(size_t)), .bytes = xmalloc(n * sizeof(size_t)),
	};
	int error = order_by_base(p, &in);
	if (error == 0)
		error = count_inherited(p, &in);
	if (error == 0)
		flatten(p, &in);
	free(in.base);
	free(in.order);
	free(in.nk);
	free(in.np);
	free(in.bytes);
	return error;
}

/* Needed names not kept: missing (a second pass keeps them), or absent when they were asked for. */
static int resolve(struct cmb_as_meta_parser *p)
{
	struct cmb_as_meta *m = p->m;
	char b1[SHOWN], b2[SHOWN];
	size_t n = 0;
	for (size_t i = 0; i < p->n_cands; i++) {
		const struct cand *c = &p->cands[i];
		if (!c->needed || c->kept >= 0)
			continue;
		if (c->wanted) {
			/* Anything wanted is kept wherever it appears: this one is not in the document. */
			if (c->by_set)
				return fail(p, CMB_EPROTO, "EntitySet '%s' has EntityType '%s', which the document "
					    "does not define", shown_str(b1, c->by), shown_str(b2, c->name));
			return fail(p, CMB_EPROTO, "EntityType '%s' has BaseType '%s', which the document does "
				    "not define", shown_str(b1, c->by), shown_str(b2, c->name));
		}
		n++;
	}
	if (n == 0)
		return 0;
	int error = charge(p, (n + 1) * sizeof(char *));
	if (error < 0)
		return error;
	m->missing = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < p->n_cands; i++) {
		const struct cand *c = &p->cands[i];
		if (c->needed && c->kept < 0 && !c->wanted) {
			if ((error = charge(p, c->len + 1)) < 0)
				return error;   /* m->missing is freed with m */
			m->missing[m->n_missing++] = xstrdup(c->name);
		}
	}
	return 0;
}

int cmb_as_meta_finish(struct cmb_as_meta_parser *p, struct cmb_as_meta **out)
{
	int error = 0;
	if (!p || !out)
		return cmb_error_set(CMB_EINVAL, "cmb_as_meta_finish: no parser or no place for the result");
	if (p->error)
		return sticky(p);
	if (p->finished)
		return cmb_error_set(CMB_EINVAL, "%s: the document was already finished", p->where);
	p->finished = 1;

	p->in_parse = 1;
	int rc = xmlParseChunk(p->ctxt, NULL, 0, 1);
	p->in_parse = 0;
	if ((error = check_xml(p, rc)) < 0)
		goto done;
	if (p->at != AT_END) {
		error = fail(p, CMB_EPROTO, "the document ended before </edmx:Edmx> (%zu bytes)", p->m->bytes);
		goto done;
	}
	if ((error = resolve(p)) < 0 || (error = inherit(p)) < 0)
		goto done;
	*out = p->m;
	p->m = NULL;
done:
	return error;
}

static const struct cmb_as_meta_class *class_named(const struct cmb_as_meta *m, const char *name)
{
	for (size_t i = 0; i < m->n_classes; i++)
		if (strcasecmp(m->classes[i].name, name) == 0)
			return &m->classes[i];
	return NULL;
}

const struct cmb_as_meta_class *cmb_as_meta_find(const struct cmb_as_meta *m, const char *name)
{
	if (!m || !name)
		return NULL;
	for (size_t i = 0; i < m->n_sets; i++) {
		if (strcasecmp(m->entity_sets[i], name) == 0) {
			const struct cmb_as_meta_class *c = class_named(m, m->entity_set_types[i]);
			if (c)
				return c;
			break;
		}
	}
	return class_named(m, name);
}

const struct cmb_as_meta_prop *cmb_as_meta_prop_find(const struct cmb_as_meta_class *cls, const char *name)
{
	if (!cls || !name)
		return NULL;
	for (size_t i = 0; i < cls->n_props; i++)
		if (strcmp(cls->props[i].name, name) == 0)
			return &cls->props[i];
	for (size_t i = 0; i < cls->n_props; i++)
		if (strcasecmp(cls->props[i].name, name) == 0)
			return &cls->props[i];
	return NULL;
}

const char *const *cmb_as_meta_missing(const struct cmb_as_meta *m)
{
	return m && m->n_missing ? (const char *const *)m->missing : NULL;
}
