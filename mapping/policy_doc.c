/*
 * policy_doc.c - the site policy document: one XML document per accepted
 * policy, built with libxml2's tree API (never by pasting strings), and
 * read back with libxml2 (no network, no DTD). Schema: docs/policies.md.
 * Never does I/O: documents are built in and parsed from memory.
 */
#include "mapping/policy.h"
#include "mapping/policy_internal.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#define X(s) ((const xmlChar *)(s))

/* Left out because this policy is in conflict for it (in any collection). */
static int excluded(const struct cmb_policy_merge *m, const char *policy, const struct cmb_policy_item *it)
{
	if (!m)
		return 0;
	for (size_t k = 0; k < m->n_collections; k++) {
		const struct cmb_policy_collection_result *r = &m->collections[k];
		for (size_t i = 0; i < r->n_conflicts; i++) {
			const struct cmb_policy_conflict *c = &r->conflicts[i];
			if (strcmp(c->csp, it->csp) != 0 || strcmp(c->definition_id, it->def->id) != 0)
				continue;
			for (size_t j = 0; j < c->n; j++)
				if (strcmp(c->policies[j], policy) == 0)
					return 1;
		}
	}
	return 0;
}

/* Length-prefixed fields: the canonical form hashed into contentHash. */
static void canon(struct cmb_buf *b, const char *tag, const char *const *f, size_t n)
{
	cmb_buf_addstr(b, tag);
	for (size_t i = 0; i < n; i++)
		cmb_buf_printf(b, " %zu:%s", strlen(f[i]), f[i]);
	cmb_buf_addstr(b, "\n");
}

static xmlNodePtr add_setting(xmlNodePtr parent, xmlNsPtr ns, struct cmb_buf *cb, const char *defid, const char *csp,
			      const char *type, const char *value)
{
	xmlNodePtr s = xmlNewTextChild(parent, ns, X("setting"), X(value));
	xmlNewProp(s, X("definitionId"), X(defid));
	xmlNewProp(s, X("csp"), X(csp));
	xmlNewProp(s, X("type"), X(type));
	const char *f[] = { csp, defid, type, value };
	canon(cb, "S", f, 4);
	return s;
}

int cmb_map_policy_doc(const struct cmb_policy *p, unsigned long long version, const struct cmb_policy_merge *merge,
		       char **xml, size_t *len, char hash[65])
{
	struct cmb_policy_item *items = NULL;
	size_t n = 0;
	int rc = cmb_policy_items(p, &items, &n);
	if (rc < 0)
		return rc;
	struct cmb_buf cb = CMB_BUF_INIT((size_t)-1);
	xmlDocPtr doc = xmlNewDoc(X("1.0"));
	xmlNodePtr root = xmlNewNode(NULL, X("cmbridgePolicy"));
	xmlNsPtr ns = xmlNewNs(root, X(CMB_POLICY_DOC_NS), NULL);
	xmlSetNs(root, ns);
	xmlDocSetRootElement(doc, root);
	xmlNodePtr targets = xmlNewChild(root, ns, X("targets"), NULL);
	for (size_t i = 0; i < p->n_collections; i++) {
		xmlNodePtr c = xmlNewChild(targets, ns, X("collection"), NULL);
		xmlNewProp(c, X("id"), X(p->collections[i]));
		const char *f[] = { p->collections[i] };
		canon(&cb, "T", f, 1);
	}
	xmlNodePtr settings = xmlNewChild(root, ns, X("settings"), NULL);
	const char *gcsp = NULL;
	xmlNodePtr group = NULL;
	for (size_t i = 0; i < n;) {
		const struct cmb_policy_item *it = &items[i];
		if (excluded(merge, p->id, it)) {
			i++;
			continue;
		}
		if (it->group_def) {
			if (!gcsp || strcmp(gcsp, it->group_csp) != 0) {
				group = xmlNewChild(settings, ns, X("group"), NULL);
				xmlNewProp(group, X("definitionId"), X(it->group_def->id));
				xmlNewProp(group, X("csp"), X(it->group_csp));
				gcsp = it->group_csp;
				const char *f[] = { it->group_csp, it->group_def->id };
				canon(&cb, "G", f, 2);
			}
			add_setting(group, ns, &cb, it->def->id, it->csp, it->type, it->value);
			i++;
			continue;
		}
		gcsp = NULL;
		if (!it->key) {
			add_setting(settings, ns, &cb, it->def->id, it->csp, it->type, it->value);
			i++;
			continue;
		}
		/* Keyed children of one node (ASR rules, threat actions): one value "key=value|...". */
		struct cmb_buf v = CMB_BUF_INIT((size_t)CMB_POLICY_MAX_BODY);
		size_t j = i;
		for (; j < n && items[j].key && strcmp(items[j].csp, it->csp) == 0; j++) {
			if (excluded(merge, p->id, &items[j]))
				continue;
			cmb_buf_printf(&v, "%s%s=%s", v.len ? "|" : "", items[j].key, items[j].value);
		}
		char *value = cmb_buf_detach(&v, NULL);
		if (*value) /* every key in conflict: the node is left out */
			add_setting(settings, ns, &cb, it->def->parent, it->csp, "string", value);
		free(value);
		i = j;
	}
	char hex[65];
	cmb_sha256_hex(cb.data ? cb.data : "", cb.len, hex);
	cmb_buf_free(&cb);
	/* Attributes in the order of the schema; set last so the hash is in them. */
	char ver[24];
	snprintf(ver, sizeof(ver), "%llu", version);
	xmlNewProp(root, X("tenantPolicyId"), X(p->id));
	xmlNewProp(root, X("version"), X(ver));
	xmlNewProp(root, X("contentHash"), X(hex));
	xmlNewProp(root, X("family"), X(p->template_family ? p->template_family : "none"));
	xmlNewProp(root, X("name"), X(p->name ? p->name : ""));
	xmlNewProp(root, X("lastModified"), X(p->last_modified));
	xmlChar *mem = NULL;
	int size = 0;
	xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
	xmlFreeDoc(doc);
	cmb_policy_items_free(items, n);
	if (!mem)
		return cmb_error_set(CMB_ERROR, "policy %s: libxml2 could not serialise the document", p->id);
	*xml = xstrndup((const char *)mem, (size_t)size);
	*len = (size_t)size;
	xmlFree(mem);
	memcpy(hash, hex, 65);
	return 0;
}

/* ---- reading a document back ---- */

static char *prop(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(n, X(name));
	if (!v)
		return NULL;
	char *s = xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

static int is_el(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns && xmlStrEqual(n->ns->href, X(CMB_POLICY_DOC_NS)) &&
	       xmlStrEqual(n->name, X(name));
}

static int read_setting(struct cmb_policy_doc *d, xmlNodePtr s, xmlNodePtr group)
{
	struct cmb_policy_doc_setting st = { 0 };
	st.definition_id = prop(s, "definitionId");
	st.csp = prop(s, "csp");
	st.type = prop(s, "type");
	xmlChar *c = xmlNodeGetContent(s);
	st.value = xstrdup(c ? (const char *)c : "");
	xmlFree(c);
	if (group) {
		st.group_definition_id = prop(group, "definitionId");
		st.group_csp = prop(group, "csp");
	}
	d->settings = xrealloc(d->settings, (d->n_settings + 1) * sizeof(*d->settings));
	d->settings[d->n_settings++] = st;
	if (!st.definition_id || !st.csp || !st.type || (group && (!st.group_definition_id || !st.group_csp)))
		return cmb_error_set(CMB_EPROTO, "policy document: setting %zu lacks definitionId, csp or type",
				     d->n_settings - 1);
	return 0;
}

int cmb_map_policy_doc_parse(const char *buf, size_t len, struct cmb_policy_doc **out)
{
	if (len > (size_t)CMB_POLICY_MAX_BODY * 4 || len > 0x7fffffff)
		return cmb_error_set(CMB_ETOOBIG, "policy document is %zu bytes", len);
	xmlDocPtr doc = xmlReadMemory(buf, (int)len, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return cmb_error_set(CMB_EPROTO, "policy document is not well-formed XML");
	int rc = 0;
	struct cmb_policy_doc *d = xcalloc(1, sizeof(*d));
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset) {
		rc = cmb_error_set(CMB_EPROTO, "policy document carries a DTD (refused: no DTDs, no entities)");
		goto done;
	}
	if (!root || !is_el(root, "cmbridgePolicy")) {
		rc = cmb_error_set(CMB_EPROTO, "policy document root is not {%s}cmbridgePolicy", CMB_POLICY_DOC_NS);
		goto done;
	}
	d->tenant_policy_id = prop(root, "tenantPolicyId");
	d->content_hash = prop(root, "contentHash");
	d->family = prop(root, "family");
	d->name = prop(root, "name");
	d->last_modified = prop(root, "lastModified");
	char *ver = prop(root, "version");
	char *end = NULL;
	d->version = ver ? strtoull(ver, &end, 10) : 0;
	int ver_ok = ver && *ver && end && !*end;
	free(ver);
	if (!d->tenant_policy_id || !d->content_hash || !ver_ok) {
		rc = cmb_error_set(CMB_EPROTO, "policy document lacks tenantPolicyId, contentHash or a decimal version");
		goto done;
	}
	for (xmlNodePtr sec = root->children; sec && rc == 0; sec = sec->next) {
		if (is_el(sec, "targets")) {
			for (xmlNodePtr c = sec->children; c; c = c->next) {
				if (!is_el(c, "collection"))
					continue;
				char *id = prop(c, "id");
				if (!id) {
					rc = cmb_error_set(CMB_EPROTO, "policy document: a collection has no id");
					break;
				}
				d->collections = xrealloc(d->collections, (d->n_collections + 1) * sizeof(char *));
				d->collections[d->n_collections++] = id;
			}
		} else if (is_el(sec, "settings")) {
			for (xmlNodePtr s = sec->children; s && rc == 0; s = s->next) {
				if (is_el(s, "setting")) {
					rc = read_setting(d, s, NULL);
				} else if (is_el(s, "group")) {
					for (xmlNodePtr c = s->children; c && rc == 0; c = c->next)
						if (is_el(c, "setting"))
							rc = read_setting(d, c, s);
				}
			}
		}
	}
done:
	xmlFreeDoc(doc);
	if (rc < 0) {
		cmb_map_policy_doc_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void cmb_map_policy_doc_free(struct cmb_policy_doc *d)
{
	if (!d)
		return;
	free(d->tenant_policy_id);
	free(d->content_hash);
	free(d->family);
	free(d->name);
	free(d->last_modified);
	for (size_t i = 0; i < d->n_collections; i++)
		free(d->collections[i]);
	free(d->collections);
	for (size_t i = 0; i < d->n_settings; i++) {
		free(d->settings[i].definition_id);
		free(d->settings[i].csp);
		free(d->settings[i].type);
		free(d->settings[i].value);
		free(d->settings[i].group_definition_id);
		free(d->settings[i].group_csp);
	}
	free(d->settings);
	free(d);
}
