/*
 * metadata.h - a streaming reader for the AdminService's CSDL document
 * (GET /AdminService/wmi/$metadata, OData v4 XML).
 *
 * On a real site the document describes every WMI class (thousands of
 * EntityTypes) and runs to tens of megabytes, while the connector reads a
 * handful of classes. So the document is fed in whatever pieces the network
 * delivers, exactly like odata.h's pages, and only the classes the caller
 * names are kept: memory is bounded by the wanted classes and a window of
 * input, never by the document. The XML is read with libxml2's push parser
 * (xmlCreatePushParserCtxt + xmlParseChunk with SAX2 callbacks) because the
 * HTTP layer pushes bytes; a pull reader (xmlReader) would want to read
 * them itself, and a tree (xmlReadMemory) would hold the whole document.
 *
 * The document comes from a server, so it is read as hostile input: no DTD,
 * no entity declaration and no network or file access of any kind (a
 * DOCTYPE is refused before its subset is read), and every size has a limit.
 * libxml2 holds a whole tag (or comment, CDATA section or PI) in memory
 * until its end arrives, and checks an element's attributes against each
 * other, so the bytes are scanned before libxml2 sees them and markup over
 * max_markup bytes or a tag with more than max_attrs attributes is refused
 * there. Character data is streamed and may be of any length.
 * This file must never do I/O: it only sees the bytes it is given, and it
 * never logs (errors go back through cmb_error_set()).
 */
#ifndef CMB_AS_METADATA_H
#define CMB_AS_METADATA_H

#include <stddef.h>

#include "connector/base/limits.h"

struct cmb_as_meta_prop {
	char *name;
	char *type;         /* as written: "Edm.Int64", "Collection(Edm.String)", "AdminService.X" */
	int nullable;       /* 1 unless Nullable="false" (or "0") */
};

struct cmb_as_meta_class {
	char *name;         /* EntityType Name, exact casing */
	char *base_type;    /* BaseType without namespace or alias, or NULL */
	char **keys;        /* Key/PropertyRef Name, exact casing, inherited first */
	size_t n_keys;
	struct cmb_as_meta_prop *props; /* own and inherited (base properties first), document order */
	size_t n_props;
};

struct cmb_as_meta {
	char *ns;           /* Namespace of the first Schema that declares an EntityType; NULL if none */
	struct cmb_as_meta_class *classes;  /* the wanted ones found and their base types, document order */
	size_t n_classes;
	/* Every EntitySet of the container(s): Name -> EntityType without namespace. */
	char **entity_sets;
	char **entity_set_types;
	size_t n_sets;
	/* Names of Action/Function elements whose name is wanted, document casing, each once. */
	char **actions;
	size_t n_actions;
	size_t bytes;       /* document size */
	size_t n_types_seen;/* all EntityTypes in the document, kept or not */
	size_t kept_bytes;  /* what this result holds (strings and arrays), counted against max_kept */
	char **missing;     /* see cmb_as_meta_missing(); NULL-terminated, or NULL */
	size_t n_missing;
};

/* Each member 0 means its default. */
struct cmb_as_meta_limits {
	size_t max_bytes;   /* the document; default 256 MiB: CMB_ETOOBIG */
	unsigned max_depth; /* element nesting; default 64: CMB_EPROTO */
	size_t max_name;    /* any name, type or namespace read; default 1024 bytes: CMB_ETOOBIG */
	size_t max_props;   /* per class, own and inherited (keys too); default 4096: CMB_ETOOBIG */
	size_t max_classes; /* classes kept, wanted and base types together; default 1024: CMB_ETOOBIG */
	size_t max_kept;    /* kept_bytes; default 16 MiB: CMB_ETOOBIG */
	size_t max_markup;  /* one tag, comment, CDATA section, PI or declaration; default 64 KiB: CMB_ETOOBIG */
	unsigned max_attrs; /* attributes (and xmlns) of one element; default 64: CMB_EPROTO */
};

/* The defaults, from the one place every limit is named (connector/base/limits.h). */
#define CMB_AS_META_MAX_BYTES CMB_LIMIT_XML_BYTES
#define CMB_AS_META_MAX_DEPTH CMB_LIMIT_XML_DEPTH_LEVELS
#define CMB_AS_META_MAX_NAME CMB_LIMIT_XML_NAME_BYTES
#define CMB_AS_META_MAX_PROPS CMB_LIMIT_XML_PROPS
#define CMB_AS_META_MAX_CLASSES CMB_LIMIT_XML_CLASSES
#define CMB_AS_META_MAX_KEPT CMB_LIMIT_XML_KEPT_BYTES
#define CMB_AS_META_MAX_MARKUP CMB_LIMIT_XML_MARKUP_BYTES
#define CMB_AS_META_MAX_ATTRS CMB_LIMIT_XML_ATTRS

struct cmb_as_meta_parser;

/*
 * Creates a parser for one document. wanted holds the entity type, entity
 * set and action names to keep, matched case-insensitively (class names in
 * the AdminService are case-insensitive from release 2006); they are
 * copied. where names the document in messages ("site cm01 $metadata";
 * copied). lim may be NULL (all defaults). *out is the caller's; free with
 * cmb_as_meta_parser_free(). CMB_EINVAL for a NULL or empty wanted name.
 */
int cmb_as_meta_parser_new(struct cmb_as_meta_parser **out, const char *where,
			   const char *const *wanted, size_t n_wanted,
			   const struct cmb_as_meta_limits *lim);

/*
 * Feeds the next piece of the document (any size; libxml2 is handed at most
 * 64 KiB at a time). Returns 0, or CMB_EPROTO (malformed XML, a DOCTYPE or
 * entity declaration, nesting deeper than max_depth, a tag with more than
 * max_attrs attributes, not a CSDL document), CMB_ETOOBIG (over max_bytes,
 * markup over max_markup, or a name, class or result over its limit), with
 * a message naming `where` and the line and column (the byte offset, for
 * the two limits checked before libxml2 sees the bytes). After an error
 * every further call returns the same code and sets the same message again.
 */
int cmb_as_meta_feed(struct cmb_as_meta_parser *p, const void *data, size_t len);

/*
 * Ends the document; *out (the caller's, free with cmb_as_meta_free) gets
 * what was kept, with inherited keys and properties filled in. A truncated
 * or malformed document is CMB_EPROTO with a message naming `where`, line
 * and column; so is a BaseType cycle, and a set's EntityType or a BaseType
 * that was asked for by name (in wanted) and is not in the document at all.
 * *out is untouched on failure.
 */
int cmb_as_meta_finish(struct cmb_as_meta_parser *p, struct cmb_as_meta **out);

/* Both accept NULL. Freeing a parser does not free a result it handed out. */
void cmb_as_meta_parser_free(struct cmb_as_meta_parser *p);
void cmb_as_meta_free(struct cmb_as_meta *m);

/*
 * The kept class for an entity set or type name (case-insensitive): an
 * entity set of that name leads to its EntityType first (the AdminService
 * URL names sets), then a class of that name. NULL when not kept. Valid
 * until cmb_as_meta_free().
 */
const struct cmb_as_meta_class *cmb_as_meta_find(const struct cmb_as_meta *m, const char *name);

/* The property of cls called name, matched exactly first, then case-insensitively; NULL when absent. */
const struct cmb_as_meta_prop *cmb_as_meta_prop_find(const struct cmb_as_meta_class *cls, const char *name);

/*
 * Names the document needs kept that this pass could not keep: the
 * EntityType of a wanted EntitySet whose type has another name and appeared
 * before the container, or a BaseType of a kept class that appeared before
 * the class (both were already dropped when the reference was read). The
 * caller parses the document again with these added to wanted; a chain of
 * base types that all appear before their derived types may take one pass
 * per link. Classes whose bases are missing lack the inherited keys and
 * properties. NULL-terminated list valid until cmb_as_meta_free(), or NULL
 * when the result is complete.
 */
const char *const *cmb_as_meta_missing(const struct cmb_as_meta *m);

#endif
