/*
 * fuzz_pages.c - libFuzzer target for AdminService pages through mapping.
 *
 * An input is up to six pages separated by a 0x1e byte (ASCII record
 * separator), one per device class in the order of enum cmb_as_class_id
 * (SMS_R_System, SMS_CombinedDeviceResources, SMS_Client_ComanagementState,
 * SMS_G_System_COMPUTER_SYSTEM, SMS_G_System_PC_BIOS) and last the
 * collection membership filter; a class without a page, or with an empty
 * one after the first, is one the site lacks. Each page goes through the streaming page parser (odata.c) in
 * pieces whose size the input's length picks, its rows through the merge
 * join and the schema's readings (join.c, schema.c), and every device the
 * join emits through mapping (mapping/device.c, site_device.c, utf8.c).
 *
 * A page's @odata.nextLink is resolved against the page's URL and checked
 * against the site's origin as the cursor does (cursor.c, next_url).
 *
 * Beyond not crashing, leaking or hanging: a link the origin check lets
 * through leads to https://127.0.0.1:40711/ (the site's credentials go
 * nowhere else); a mapped record must be one JSON
 * object of valid UTF-8 (yajl parses it with UTF-8 checks on), its key
 * must be "PS1:<ResourceID>", and its hash must be 64 hex digits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "adapters/adminservice/join.h"
#include "adapters/adminservice/odata.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/transport/http.h"
#include "mapping/device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NSTREAMS (CMB_AS_NDEVICE + 1)
#define PAGE_ROWS 64 /* the $top of this harness: more rows in one page is the cursor's error */

/* One class's page, parsed, handed out row by row by a join cursor. */
struct page {
	struct cmb_join_cursor cur;
	struct cmb_odata_record *rows[PAGE_ROWS];
	size_t n, next;
	int rc;                 /* the page's parse result, given after its rows */
};

static int keep_row(void *ctx, struct cmb_odata_record *rec)
{
	struct page *pg = ctx;
	if (pg->n >= PAGE_ROWS) {
		cmb_odata_record_free(rec);
		return cmb_error_set(CMB_ETOOBIG, "more than %d rows in one page", PAGE_ROWS);
	}
	pg->rows[pg->n++] = rec;
	return 0;
}

static int page_next(struct cmb_join_cursor *cur, struct cmb_odata_record **out)
{
	struct page *pg = cur->ctx;
	if (pg->next < pg->n) {
		*out = pg->rows[pg->next];
		pg->rows[pg->next++] = NULL;
		return 0;
	}
	*out = NULL;
	return pg->rc;
}

#define SITE "https://127.0.0.1:40711/AdminService"

static void check_link(const char *link)
{
	char *next = cmb_http_resolve(SITE "/wmi/SMS_R_System?$top=3", link);
	if (next && cmb_http_same_origin(next, SITE) && strncmp(next, "https://127.0.0.1:40711/", 24) != 0) {
		fprintf(stderr, "nextLink '%s' resolves to %s, taken as the site's origin\n", link, next);
		abort();
	}
	free(next);
}

static void page_read(struct page *pg, const uint8_t *doc, size_t len, size_t chunk)
{
	struct cmb_odata_parser *p = NULL;
	memset(pg, 0, sizeof(*pg));
	pg->cur.next = page_next;
	pg->cur.ctx = pg;
	if (cmb_odata_new(&p, "fuzz page", 4096, keep_row, pg) < 0)
		abort();
	int rc = 0;
	for (size_t off = 0; off < len && rc == 0; off += chunk)
		rc = cmb_odata_feed(p, doc + off, len - off < chunk ? len - off : chunk);
	if (rc == 0)
		rc = cmb_odata_finish(p);
	else if (cmb_odata_feed(p, "{", 1) != rc)
		abort(); /* an error is sticky */
	/* what the page said beside its rows is read too */
	const char *link = cmb_odata_next_link(p), *context = cmb_odata_context(p);
	if ((link && strlen(link) > CMB_ODATA_MAX_RECORD) || (context && strlen(context) > CMB_ODATA_MAX_RECORD))
		abort();
	if (cmb_odata_records(p) < pg->n)
		abort();
	if (link)
		check_link(link);
	cmb_odata_free(p);
	pg->rc = rc;
}

static void page_clear(struct page *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		cmb_odata_record_free(pg->rows[i]);
}

static void check_record(const struct cmb_site_device *dev, const struct cmb_tenant_record *rec)
{
	char key[32], err[128];
	snprintf(key, sizeof(key), "PS1:%u", dev->resource_id);
	if (!rec->key || strcmp(rec->key, key) != 0 || strlen(rec->json) != rec->json_len ||
	    strlen(rec->hash) != 64 || strspn(rec->hash, "0123456789abcdef") != 64)
		abort();
	yajl_val v = yajl_tree_parse(rec->json, err, sizeof(err));
	if (!v || !YAJL_IS_OBJECT(v)) {
		fprintf(stderr, "mapped record is not a JSON object (%s):\n%s\n", err, rec->json);
		abort();
	}
	yajl_tree_free(v);
}

static int map_one(void *ctx, const struct cmb_site_device *dev)
{
	static const char *const colls[] = { "PS100014", "SMS00001" };
	const struct cmb_map_ctx mc = { .site_code = "PS1", .collection_ids = colls, .n_collection_ids = 2 };
	struct cmb_map_tally *tally = ctx;
	struct cmb_tenant_record rec = { 0 };
	char *reason = NULL;
	int out = cmb_map_device(&mc, dev, &rec, &reason);
	if (out == CMB_MAP_OK) {
		if (reason)
			abort();
		check_record(dev, &rec);
		cmb_map_tally_add(tally, &rec);
		cmb_tenant_record_clear(&rec);
	} else if ((out != CMB_MAP_SKIP && out != CMB_MAP_QUARANTINE) || !reason || rec.json) {
		abort();
	}
	free(reason);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* What hostile input makes the code log is formatted too, into nothing. */
	if (cmb_log_open("/dev/null") < 0)
		abort();
	cmb_log_set_level(CMB_LOG_DEBUG);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { 1, 3, 7, 64, 4096 };
	static struct page pages[NSTREAMS];
	struct cmb_join_cursor *cursors[CMB_AS_NDEVICE] = { 0 }, *members = NULL;
	size_t chunk = chunks[size % (sizeof(chunks) / sizeof(chunks[0]))];
	const uint8_t *p = data, *end = data + size;
	size_t n = 0;
	while (n < NSTREAMS && (n == 0 || p < end)) {
		const uint8_t *sep = memchr(p, 0x1e, (size_t)(end - p));
		const uint8_t *stop = sep ? sep : end;
		page_read(&pages[n], p, (size_t)(stop - p), chunk);
		if (n > 0 && stop == p)
			;       /* a class the site lacks */
		else if (n < CMB_AS_NDEVICE)
			cursors[n] = &pages[n].cur;
		else
			members = &pages[n].cur;
		n++;
		p = sep ? sep + 1 : end;
	}
	struct cmb_as_schema schema = { 0 };
	cmb_as_schema_documented(&schema);
	struct cmb_map_tally tally = { 0 };
	struct cmb_join_stats st;
	cmb_join_run(&schema, cursors, members, map_one, &tally, &st);
	for (size_t i = 0; i < n; i++)
		page_clear(&pages[i]);
	cmb_as_schema_clear(&schema);
	return 0;
}
