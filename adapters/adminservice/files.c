/*
 * files.c - file-backed class cursors for offline mapping (see files.h).
 *
 * Memory is bounded by one file per class, as a live read is by one page.
 */
#include "adapters/adminservice/files.h"
#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/join.h"
#include "adapters/adminservice/odata.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PAGE_FILE ((size_t)1 << 30)

struct file_cursor {
	struct cmb_join_cursor base;
	const char **paths;      /* files of this class, in order */
	size_t npaths, next_path;
	struct cmb_odata_record **recs;
	size_t nrecs, caprecs, pos;
};

struct collect {
	struct file_cursor *fc;  /* NULL: discard (class detection pass) */
};

static int collect_record(void *ctx, struct cmb_odata_record *rec)
{
	struct collect *c = ctx;
	if (!c->fc) {
		cmb_odata_record_free(rec);
		return 0;
	}
	struct file_cursor *fc = c->fc;
	if (fc->nrecs == fc->caprecs) {
		fc->caprecs = fc->caprecs ? fc->caprecs * 2 : 256;
		fc->recs = xrealloc(fc->recs, fc->caprecs * sizeof(*fc->recs));
	}
	fc->recs[fc->nrecs++] = rec;
	return 0;
}

/* Parses one file; with fc NULL only to learn its class. *cls_name is the caller's. */
static int parse_file(const char *path, struct file_cursor *fc, char **cls_name)
{
	char *data;
	size_t len;
	int rc = cmb_file_read(path, MAX_PAGE_FILE, &data, &len);
	if (rc < 0)
		return rc;
	struct collect c = { .fc = fc };
	struct cmb_odata_parser *p;
	if ((rc = cmb_odata_new(&p, path, CMB_ODATA_MAX_RECORD, collect_record, &c)) < 0) {
		free(data);
		return rc;
	}
	if ((rc = cmb_odata_feed(p, data, len)) == 0)
		rc = cmb_odata_finish(p);
	if (rc == 0 && cls_name) {
		const char *ctx = cmb_odata_context(p);
		const char *hash = ctx ? strchr(ctx, '#') : NULL;
		if (!hash) {
			rc = cmb_error_set(CMB_EINVAL,
					   "%s: no @odata.context naming the class (expected \"...$metadata#SMS_R_System\")",
					   path);
		} else {
			size_t n = strcspn(hash + 1, "(/");
			*cls_name = xstrndup(hash + 1, n);
		}
	}
	cmb_odata_free(p);
	free(data);
	return rc;
}

static void drop_records(struct file_cursor *fc)
{
	for (size_t i = fc->pos; i < fc->nrecs; i++)
		cmb_odata_record_free(fc->recs[i]);
	fc->nrecs = fc->pos = 0;
}

static int file_next(struct cmb_join_cursor *cur, struct cmb_odata_record **out)
{
	struct file_cursor *fc = cur->ctx;
	while (fc->pos == fc->nrecs) {
		drop_records(fc);
		if (fc->next_path == fc->npaths) {
			*out = NULL;
			return 0;
		}
		int rc = parse_file(fc->paths[fc->next_path++], fc, NULL);
		if (rc < 0)
			return rc;
	}
	*out = fc->recs[fc->pos++];
	return 0;
}

int cmb_adminservice_read_files(const char *const *paths, size_t n, cmb_site_device_cb cb, void *ctx)
{
	struct file_cursor fcs[CMB_AS_NDEVICE];
	struct cmb_join_cursor *curp[CMB_AS_NDEVICE];
	struct cmb_as_schema schema = { 0 };
	int rc = 0;
	memset(fcs, 0, sizeof(fcs));
	/* Saved pages carry no $metadata: the documented names, each matched in any casing. */
	cmb_as_schema_documented(&schema);
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		fcs[i].paths = xcalloc(n ? n : 1, sizeof(char *));
		fcs[i].base.next = file_next;
		fcs[i].base.ctx = &fcs[i];
		curp[i] = &fcs[i].base;
	}
	for (size_t f = 0; f < n && rc == 0; f++) {
		char *cls = NULL;
		if ((rc = parse_file(paths[f], NULL, &cls)) < 0)
			break;
		int i;
		for (i = 0; i < CMB_AS_NDEVICE && strcasecmp(cmb_as_classes[i].name, cls) != 0; i++)
			;
		if (i == CMB_AS_NDEVICE)
			rc = cmb_error_set(CMB_EINVAL, "%s: class %s is not one cmbridge reads", paths[f], cls);
		else
			fcs[i].paths[fcs[i].npaths++] = paths[f];
		free(cls);
	}
	if (rc == 0 && fcs[CMB_AS_SYSTEM].npaths == 0 && n > 0)
		rc = cmb_error_set(CMB_EINVAL, "no SMS_R_System page among the files: it drives the join");
	if (rc == 0) {
		struct cmb_join_stats js;
		rc = cmb_join_run(&schema, curp, NULL, cb, ctx, &js);
	}
	cmb_as_schema_clear(&schema);
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		drop_records(&fcs[i]);
		free(fcs[i].recs);
		free(fcs[i].paths);
	}
	return rc;
}
