/*
 * parse_floor.c - the part of a site read no connector of this design can
 * skip beyond the transfer: inflating the pages and lexing their JSON, timed
 * with the connector's own OData page parser (adapters/adminservice/odata.c)
 * over the very pages the connector requested, so the benchmark can say how
 * far the parse alone is from the curl floor (docs/performance.md).
 *
 * usage: parse_floor FILE...     each FILE one page as the site sent it
 *                                (gzip, as curl saves it without --compressed;
 *                                a body sent without gzip is taken as it is)
 *
 * Each page is read into memory first (the file read is not timed), then
 * inflated into one buffer (timed as "inflate"), then fed to the page parser
 * in 16 KiB pieces, as libcurl hands a body over (timed as "parse"); every
 * record is freed as it arrives. Prints one JSON object: pages, records,
 * compressed and JSON bytes, and the CPU seconds (CLOCK_PROCESS_CPUTIME_ID)
 * of each part. Exits 1 with a message naming the file on any error: a page
 * the parser refuses is not a floor.
 */
#include "adapters/adminservice/odata.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define PIECE 16384
#define MAX_PAGE ((size_t)1 << 30)

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int drop_record(void *ctx, struct cmb_odata_record *rec)
{
	(void)ctx;
	cmb_odata_record_free(rec);
	return 0;
}

/* Inflates a gzip (or zlib) body into *out, grown as needed; 0, or -1 when it is not a whole stream. */
static int inflate_all(const unsigned char *in, size_t len, unsigned char **out, size_t *cap, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	int zr = Z_OK;
	*outlen = 0;
	while (zr == Z_OK) {
		if (*outlen == *cap) {
			*cap = *cap ? *cap * 2 : 1 << 20;
			*out = xrealloc(*out, *cap);
		}
		z.next_out = *out + *outlen;
		z.avail_out = (uInt)(*cap - *outlen);
		zr = inflate(&z, Z_NO_FLUSH);
		*outlen = *cap - z.avail_out;
	}
	inflateEnd(&z);
	return zr == Z_STREAM_END ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: parse_floor FILE...\n");
		return 2;
	}
	unsigned char *json = NULL;
	size_t json_cap = 0;
	double t_inflate = 0, t_parse = 0;
	unsigned long long gz_bytes = 0, json_bytes = 0, records = 0;
	for (int i = 1; i < argc; i++) {
		size_t len, jlen = 0;
		char *page;
		if (cmb_file_read(argv[i], MAX_PAGE, &page, &len) < 0) {
			fprintf(stderr, "parse_floor: %s\n", cmb_error_last());
			return 1;
		}
		/* a body the site sent without gzip (a small one) is parsed as it is */
		const unsigned char *body = (const unsigned char *)page;
		int gzip = len >= 2 && body[0] == 0x1f && body[1] == 0x8b;
		double t0 = cpu_now();
		if (gzip && inflate_all(body, len, &json, &json_cap, &jlen) < 0) {
			fprintf(stderr, "parse_floor: %s: not a whole gzip stream\n", argv[i]);
			return 1;
		}
		double t1 = cpu_now();
		size_t blen = gzip ? jlen : len;
		if (gzip)
			body = json;
		struct cmb_odata_parser *p;
		if (cmb_odata_new(&p, argv[i], 0, drop_record, NULL) < 0) {
			fprintf(stderr, "parse_floor: %s\n", cmb_error_last());
			return 1;
		}
		int rc = 0;
		for (size_t off = 0; rc == 0 && off < blen; off += PIECE)
			rc = cmb_odata_feed(p, body + off, blen - off < PIECE ? blen - off : PIECE);
		if (rc == 0)
			rc = cmb_odata_finish(p);
		double t2 = cpu_now();
		free(page);
		if (rc < 0) {
			fprintf(stderr, "parse_floor: %s\n", cmb_error_last());
			return 1;
		}
		records += cmb_odata_records(p);
		cmb_odata_free(p);
		t_inflate += t1 - t0;
		t_parse += t2 - t1;
		gz_bytes += len;
		json_bytes += blen;
	}
	free(json);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, "pages", argc - 1);
	cmb_json_kv_int(g, "records", (long long)records);
	cmb_json_kv_int(g, "gzip_bytes", (long long)gz_bytes);
	cmb_json_kv_int(g, "json_bytes", (long long)json_bytes);
	cmb_json_key(g, "inflate_cpu");
	yajl_gen_double(g, t_inflate);
	cmb_json_key(g, "parse_cpu");
	yajl_gen_double(g, t_parse);
	yajl_gen_map_close(g);
	cmb_json_flush(g, stdout);
	yajl_gen_free(g);
	putchar('\n');
	return 0;
}
