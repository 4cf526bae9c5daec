/*
 * fuzz_metadata.c - libFuzzer target for the $metadata reader.
 *
 * Each input is read twice, in one piece and in pieces of a size the last
 * byte picks (down to one byte at a time), with the default limits or with
 * small ones. Neither may crash, leak, hang or grow without bound, and when
 * both readings succeed they must agree byte for byte: how the network cuts
 * the document must never change what is kept.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adminservice/metadata.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const wanted[] = {
	"SMS_R_System", "sms_g_system_pc_bios", "A", "B", "C", "Devices", "InitiateClientOperation",
};

static void serialize(struct cmb_buf *b, const struct cmb_as_meta *m)
{
	cmb_buf_printf(b, "ns=%s bytes=%zu types=%zu kept=%zu\n", m->ns ? m->ns : "-", m->bytes,
		       m->n_types_seen, m->kept_bytes);
	for (size_t i = 0; i < m->n_classes; i++) {
		const struct cmb_as_meta_class *c = &m->classes[i];
		cmb_buf_printf(b, "class %s base=%s\n", c->name, c->base_type ? c->base_type : "-");
		for (size_t k = 0; k < c->n_keys; k++)
			cmb_buf_printf(b, " key %s\n", c->keys[k]);
		for (size_t k = 0; k < c->n_props; k++)
			cmb_buf_printf(b, " prop %s %s %d\n", c->props[k].name, c->props[k].type, c->props[k].nullable);
	}
	for (size_t i = 0; i < m->n_sets; i++)
		cmb_buf_printf(b, "set %s %s\n", m->entity_sets[i], m->entity_set_types[i]);
	for (size_t i = 0; i < m->n_actions; i++)
		cmb_buf_printf(b, "action %s\n", m->actions[i]);
	const char *const *missing = cmb_as_meta_missing(m);
	for (size_t i = 0; missing && missing[i]; i++)
		cmb_buf_printf(b, "missing %s\n", missing[i]);
	/* the lookups walk everything they may touch */
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		const struct cmb_as_meta_class *c = cmb_as_meta_find(m, wanted[i]);
		const struct cmb_as_meta_prop *p = cmb_as_meta_prop_find(c, "resourceid");
		cmb_buf_printf(b, "find %s %s %s\n", wanted[i], c ? c->name : "-", p ? p->name : "-");
	}
}

/* Returns the code; *text gets the serialized result on success (caller frees). */
static int read_doc(const uint8_t *doc, size_t len, size_t chunk, const struct cmb_as_meta_limits *lim, char **text)
{
	struct cmb_as_meta_parser *p = NULL;
	struct cmb_as_meta *m = NULL;
	*text = NULL;
	int rc = cmb_as_meta_parser_new(&p, "fuzz", wanted, sizeof(wanted) / sizeof(wanted[0]), lim);
	if (rc < 0)
		abort();
	for (size_t off = 0; off < len && rc == 0; off += chunk)
		rc = cmb_as_meta_feed(p, doc + off, len - off < chunk ? len - off : chunk);
	if (rc == 0)
		rc = cmb_as_meta_finish(p, &m);
	if (rc < 0) {
		if (m || cmb_as_meta_feed(p, "<", 1) != rc || rc >= 0)
			abort();       /* sticky, and nothing handed out */
	} else {
		struct cmb_buf b = CMB_BUF_INIT((size_t)1 << 30);
		serialize(&b, m);
		*text = cmb_buf_detach(&b, NULL);
	}
	cmb_as_meta_parser_free(p);
	cmb_as_meta_free(m);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 16, 97, 4096, 65536 };
	if (size == 0)
		return 0;
	uint8_t cfg = data[size - 1];
	size--;
	struct cmb_as_meta_limits small = {
		.max_bytes = 1 << 16, .max_depth = 12, .max_name = 40, .max_props = 12,
		.max_classes = 4, .max_kept = 2048, .max_markup = 300, .max_attrs = 6,
	};
	const struct cmb_as_meta_limits *lim = (cfg & 0x80) ? &small : NULL;
	size_t chunk = chunks[cfg % (sizeof(chunks) / sizeof(chunks[0]))];

	char *whole = NULL, *pieces = NULL;
	int rc1 = read_doc(data, size, size ? size : 1, lim, &whole);
	int rc2 = read_doc(data, size, chunk, lim, &pieces);
	if (rc1 == 0 && rc2 == 0 && strcmp(whole, pieces) != 0) {
		fprintf(stderr, "whole:\n%s\nin pieces of %zu:\n%s\n", whole, chunk, pieces);
		abort();
	}
	free(whole);
	free(pieces);
	return 0;
}
