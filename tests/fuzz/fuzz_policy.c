/*
 * fuzz_policy.c - libFuzzer target for endpoint security policies through
 * the settings catalog (mapping/policy.c, policy_catalog.c, policy_merge.c,
 * policy_doc.c; docs/wire-format.md §9).
 *
 * Each input is read three ways: as one Graph configurationPolicy body
 * (parsed, validated against the catalog for the collections the site has,
 * and when accepted merged and written as the site's policy document), as
 * a configurationPolicies listing page, and as a policy document a site
 * hands back.
 *
 * Beyond not crashing, leaking or hanging: a rejected policy gives at least
 * one reason; an accepted one gives a document that the document reader
 * takes back with the same id, version, hash and targets, and the same
 * bytes with and without the merge when nothing is in conflict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/base/error.h"
#include "mapping/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const attached[] = { "PS100012", "PS100014", "SMS00001" };

static void check_doc(const struct cmb_policy *p, const char *xml, size_t len, const char *hash)
{
	struct cmb_policy_doc *d = NULL;
	if (strlen(xml) != len)
		abort();
	if (cmb_map_policy_doc_parse(xml, len, &d) != 0) {
		fprintf(stderr, "the document written for policy %s is refused: %s\n%s\n", p->id, cmb_error_last(), xml);
		abort();
	}
	if (strcmp(d->tenant_policy_id, p->id) != 0 || d->version != 7 || strcmp(d->content_hash, hash) != 0 ||
	    d->n_collections != p->n_collections)
		abort();
	cmb_map_policy_doc_free(d);
}

static void write_doc(const struct cmb_policy *p)
{
	const struct cmb_policy *const list[] = { p };
	struct cmb_policy_merge *m = NULL;
	if (cmb_map_policy_merge(list, 1, NULL, 0, &m) != 0) {
		fprintf(stderr, "an accepted policy does not merge: %s\n", cmb_error_last());
		abort();
	}
	char *x1 = NULL, *x2 = NULL, h1[65], h2[65];
	size_t l1 = 0, l2 = 0;
	int r1 = cmb_map_policy_doc(p, 7, m, &x1, &l1, h1);
	int r2 = cmb_map_policy_doc(p, 7, NULL, &x2, &l2, h2);
	size_t conflicts = 0;
	for (size_t i = 0; i < m->n_collections; i++)
		conflicts += m->collections[i].n_conflicts;
	/* with nothing in conflict, nothing is left out: both are the same document */
	if (r1 != r2 || (r1 == 0 && !conflicts && (l1 != l2 || memcmp(x1, x2, l1) != 0 || strcmp(h1, h2) != 0)))
		abort();
	if (r1 == 0)
		check_doc(p, x1, l1, h1);
	free(x1);
	free(x2);
	cmb_map_policy_merge_free(m);
}

static void read_policy(const uint8_t *data, size_t size)
{
	struct cmb_policy *p = NULL;
	if (cmb_map_policy_parse((const char *)data, size, &p) != 0) {
		if (p)
			abort();
		return;
	}
	struct cmb_policy_reasons why = { 0 };
	enum cmb_policy_verdict v =
		cmb_map_policy_validate(p, attached, sizeof(attached) / sizeof(attached[0]), &why);
	if (v == CMB_POLICY_REJECTED && why.n == 0)
		abort();
	if (v == CMB_POLICY_ACCEPTED) {
		if (why.n != 0)
			abort();
		write_doc(p);
	}
	cmb_map_policy_reasons_free(&why);
	cmb_map_policy_free(p);
}

static void read_page(const uint8_t *data, size_t size)
{
	struct cmb_policy **v = NULL;
	size_t n = 0;
	char *next = NULL;
	if (cmb_map_policy_parse_page((const char *)data, size, &v, &n, &next) == 0 && n > CMB_POLICY_MAX_LIST)
		abort();
	cmb_map_policy_list_free(v, n);
	free(next);
}

static void read_site_doc(const uint8_t *data, size_t size)
{
	struct cmb_policy_doc *d = NULL;
	if (cmb_map_policy_doc_parse((const char *)data, size, &d) == 0 && (!d || !d->tenant_policy_id))
		abort();
	cmb_map_policy_doc_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_policy(data, size);
	read_page(data, size);
	read_site_doc(data, size);
	return 0;
}
