/*
 * operations.c - site operations over the AdminService WMI route
 * (docs/wire-format.md §8): client notifications, finding them again after
 * an interruption, their status, the clients' online state, and blocking
 * a client (retire).
 *
 * Works over the device reader's connection (one HTTP handle and one
 * credential for the site) with its own retry budget. Reads and
 * BlockClients are idempotent and retried by the core's request loop;
 * InitiateClientOperation is not: it is sent again only after 429/503 (the
 * site did not take it), and any other failure is returned for the relay
 * to reconcile through find_operations. Names come from classes.c; rows
 * are read with any casing and any value form (classes.h).
 *
 * Must never: send InitiateClientOperation twice on its own after a
 * network error; log the password or the Authorization header.
 */
#include "adapters/adminservice/operations.h"
#include "adapters/adminservice/adminservice.h"
#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/cursor.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/error.h"
#include "connector/base/json.h"
#include "connector/base/log.h"
#include "connector/base/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

#define LIST_PAGE 1000
#define MAX_LIST_PAGES 100

struct as_ops {
	struct cmb_as_client cl;      /* over the reader's connection */
	struct cmb_as_schema names;   /* the documented names of the operation classes */
	/* The offline list being read a page a call (cmb_as_ops_offline_clients). */
	int off_reading;
	struct cmb_as_cursor off;
	struct cmb_as_ids off_ids;
};

static void offline_drop(struct as_ops *o)
{
	if (o->off_reading)
		cmb_as_cursor_clear(&o->off);
	free(o->off_ids.v);
	o->off_reading = 0;
	o->off_ids = (struct cmb_as_ids){ 0 };
}

static void op_clear(struct cmb_site_operation *op)
{
	free(op->targets);
	free(op->collection_id);
	free(op->created_by);
	memset(op, 0, sizeof(*op));
}

void cmb_site_operations_free(struct cmb_site_operation *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++)
		op_clear(&ops[i]);
	free(ops);
}

void cmb_as_ops_close(void *p)
{
	struct as_ops *o = p;
	if (!o)
		return;
	offline_drop(o);
	cmb_as_client_clear(&o->cl);
	cmb_as_schema_clear(&o->names);
	free(o);
}

int cmb_as_ops_open(void **out, void *st)
{
	struct as_ops *o = xcalloc(1, sizeof(*o));
	cmb_as_client_init(&o->cl, cmb_adminservice_conn(st));
	cmb_as_schema_documented(&o->names);
	*out = o;
	return 0;
}

/* The relay has no cycles: a spent budget starts afresh with its next call. */
static void fresh_budget(struct as_ops *o)
{
	cmb_as_client_fresh_budget(&o->cl, 1);
}

/* ---- reading rows and replies ------------------------------------------ */

static const struct cmb_odata_field *get(const struct as_ops *o, enum cmb_as_class_id c,
					 const struct cmb_odata_record *rec, size_t i)
{
	return cmb_as_record_get(&o->names.cls[c], rec, i);
}

static long long get_int(const struct as_ops *o, enum cmb_as_class_id c, const struct cmb_odata_record *rec,
			 size_t i, long long absent)
{
	long long v;
	int b;
	const struct cmb_odata_field *f = get(o, c, rec, i);
	if (cmb_as_value_integer(f, &v) == 0)
		return v;
	if (cmb_as_value_bool(f, &b) == 0)
		return b;
	return absent;
}

static char *get_str(const struct as_ops *o, enum cmb_as_class_id c, const struct cmb_odata_record *rec, size_t i)
{
	const struct cmb_odata_field *f = get(o, c, rec, i);
	return f && f->type == CMB_ODATA_STRING && f->len && !memchr(f->text, '\0', f->len) ? xstrndup(f->text, f->len)
											      : NULL;
}

/* A member of a method's reply, any casing, at the top or in value[0] (a reply shaped like a read). */
static yajl_val reply_member(yajl_val root, const char *name)
{
	if (!root || !YAJL_IS_OBJECT(root))
		return NULL;
	for (size_t i = 0; i < root->u.object.len; i++)
		if (strcasecmp(root->u.object.keys[i], name) == 0)
			return root->u.object.values[i];
	for (size_t i = 0; i < root->u.object.len; i++) {
		yajl_val v = root->u.object.values[i];
		if (strcmp(root->u.object.keys[i], "value") == 0 && YAJL_IS_ARRAY(v) && v->u.array.len == 1)
			return reply_member(v->u.array.values[0], name);
	}
	return NULL;
}

/* An integer member of a reply (a number, or a numeric string); 0 or -1 when absent or not one. */
static int reply_int(yajl_val root, const char *name, long long *out)
{
	yajl_val v = reply_member(root, name);
	char *end;
	if (v && YAJL_IS_INTEGER(v)) {
		*out = YAJL_GET_INTEGER(v);
		return 0;
	}
	if (v && YAJL_IS_STRING(v) && *v->u.string) {
		long long n = strtoll(v->u.string, &end, 10);
		if (!*end) {
			*out = n;
			return 0;
		}
	}
	return -1;
}

static void gen_ids(yajl_gen g, const uint32_t *ids, size_t n)
{
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++)
		cmb_json_int(g, ids[i]);
	yajl_gen_array_close(g);
}

static char *method_url(const struct as_ops *o, int m)
{
	return xasprintf("%s/wmi/%s.%s", o->cl.conn->base, cmb_as_methods[m].cls, cmb_as_methods[m].name);
}

/* ---- InitiateClientOperation -------------------------------------------- */

int cmb_as_ops_initiate(void *p, int type, const char *collection_id, const uint32_t *ids, size_t n,
			int64_t *operation_id)
{
	struct as_ops *o = p;
	const struct cmb_as_method *m = &cmb_as_methods[CMB_AS_INITIATE];
	fresh_budget(o);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_kv_int(g, m->params[CMB_AS_INITIATE_TYPE], type);
	cmb_json_kv_str(g, m->params[CMB_AS_INITIATE_COLLECTION], collection_id);
	cmb_json_kv_int(g, m->params[CMB_AS_INITIATE_WINDOW], 0);
	cmb_json_key(g, m->params[CMB_AS_INITIATE_TARGETS]);
	gen_ids(g, ids, n);
	yajl_gen_map_close(g);
	char *body = cmb_json_take(g, NULL);
	char *url = method_url(o, CMB_AS_INITIATE);
	char what[96];
	snprintf(what, sizeof(what), "%s (Type %d, %zu targets)", m->name, type, n);
	yajl_val root = NULL;
	long long ret = 0, id = -1;
	int rc = cmb_as_client_json(&o->cl, "POST", url, body, CMB_REQUEST_ONCE, what, m->name, &root);
	if (rc == CMB_ENOTFOUND) {
		/* The method or its parameters were not understood: nothing was created. */
		rc = CMB_EHTTP;
	} else if (rc == 0) {
		if (reply_int(root, "ReturnValue", &ret) == 0 && ret != 0)
			rc = cmb_error_set(CMB_EHTTP, "%s: the site refused it (ReturnValue %lld)", what, ret);
		else if (reply_int(root, "OperationID", &id) < 0 || id < 0)
			/* It may have been created: the caller finds it through find_operations. */
			rc = cmb_error_set(CMB_ENETWORK, "%s: the site's reply has no OperationID; the operation may "
					   "exist", what);
		else
			*operation_id = id;
	}
	yajl_tree_free(root);
	free(url);
	free(body);
	return rc;
}

/* ---- finding operations again -------------------------------------------- */

/* The account part of "DOMAIN\user" or "user@domain", for comparing creators. */
static void account_part(const char *s, const char **start, size_t *len)
{
	const char *bs = strrchr(s, '\\');
	const char *p = bs ? bs + 1 : s;
	const char *at = strchr(p, '@');
	*start = p;
	*len = at ? (size_t)(at - p) : strlen(p);
}

/* 1 when created_by names this connector's account, 0 when another one, -1 when it cannot tell. */
static int created_by_us(const struct as_ops *o, const char *created_by)
{
	if (!created_by || !*created_by || !o->cl.conn->account)
		return -1;
	const char *a, *b;
	size_t na, nb;
	account_part(created_by, &a, &na);
	account_part(o->cl.conn->account, &b, &nb);
	return na == nb && strncasecmp(a, b, na) == 0;
}

static void list_cursor(struct as_ops *o, struct cmb_as_cursor *c, enum cmb_as_class_id cls, const char *filter,
			int by_key)
{
	const struct cmb_as_cursor_opts opts = {
		.entity = o->names.cls[cls].entity, .filter = filter, .page_size = LIST_PAGE, .max_pages = MAX_LIST_PAGES,
		.by_key = by_key,
	};
	cmb_as_cursor_init(c, &o->cl, &opts);
}

static void add_targets(struct cmb_site_operation *op, const struct cmb_odata_field *f)
{
	if (!f || f->type != CMB_ODATA_LIST)
		return;
	op->has_targets = 1;
	op->targets = xcalloc(f->items ? f->items : 1, sizeof(uint32_t));
	const char *item = f->text;
	for (size_t j = 0; j < f->items; j++) {
		char *end;
		unsigned long long v = strtoull(item, &end, 10);
		if (!*end && end != item && v <= UINT32_MAX)
			op->targets[op->n_targets++] = (uint32_t)v;
		item += strlen(item) + 1;
	}
}

/* Completes one candidate from its SMS_ClientOperation row. 0, 1 (not on q's collection: drop), or < 0. */
static int read_operation(struct as_ops *o, const struct cmb_site_operation_query *q, struct cmb_site_operation *op)
{
	char *filter = xasprintf("%s eq %" PRId64, CMB_AS_NAME(CMB_AS_OPERATION, CMB_AS_OP_ID), op->id);
	struct cmb_as_cursor c;
	struct cmb_odata_record *rec = NULL;
	int rc, drop = 0;
	list_cursor(o, &c, CMB_AS_OPERATION, filter, 1);
	while ((rc = cmb_as_cursor_next(&c, &rec)) == 0 && rec) {
		if (get_int(o, CMB_AS_OPERATION, rec, CMB_AS_OP_ID, -1) == op->id) {
			free(op->collection_id);
			op->collection_id = get_str(o, CMB_AS_OPERATION, rec, CMB_AS_OP_COLLECTION);
			if (!op->created_by)
				op->created_by = get_str(o, CMB_AS_OPERATION, rec, CMB_AS_OP_CREATED_BY);
			if (!op->requested)
				cmb_as_value_time(get(o, CMB_AS_OPERATION, rec, CMB_AS_OP_REQUESTED), &op->requested);
			add_targets(op, get(o, CMB_AS_OPERATION, rec, CMB_AS_OP_TARGETS));
			if (op->collection_id && q->collection_id && strcasecmp(op->collection_id, q->collection_id) != 0)
				drop = 1;
		}
		cmb_odata_record_free(rec);
	}
	cmb_as_cursor_clear(&c);
	free(filter);
	return rc < 0 ? rc : drop;
}

/*
 * SMS_ClientOperationStatus has the notification Type, the time and the
 * creator; SMS_ClientOperation (which has no Type) the collection and the
 * targets. The status list is read by Type, and each candidate in the
 * window is completed from its operation row.
 */
int cmb_as_ops_find(void *p, const struct cmb_site_operation_query *q, struct cmb_site_operation **out, size_t *n_out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	char *filter = xasprintf("%s eq %d", CMB_AS_NAME(CMB_AS_OPSTATUS, CMB_AS_OPS_TYPE), q->type);
	struct cmb_as_cursor c;
	struct cmb_odata_record *rec = NULL;
	struct cmb_site_operation *ops = NULL;
	size_t n = 0, cap = 0;
	int rc;

	list_cursor(o, &c, CMB_AS_OPSTATUS, filter, 0);
	while ((rc = cmb_as_cursor_next(&c, &rec)) == 0 && rec) {
		long long id = get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_ID, -1);
		long long type = get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_TYPE, q->type);
		int64_t when = 0;
		if (cmb_as_value_time(get(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_REQUESTED), &when) < 0)
			when = 0;
		char *by = get_str(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_CREATED_BY);
		int keep = id >= 0 && type == q->type && (!when || (when >= q->since && when <= q->until)) &&
			   created_by_us(o, by) != 0;
		if (keep) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				ops = xrealloc(ops, cap * sizeof(*ops));
			}
			ops[n++] = (struct cmb_site_operation){ .id = id, .type = (int)type, .requested = when,
								.created_by = by };
			by = NULL;
		}
		free(by);
		cmb_odata_record_free(rec);
	}
	cmb_as_cursor_clear(&c);
	free(filter);
	/* Each candidate's collection and targets; operations on other collections or by others drop out. */
	size_t kept = 0, i = 0;
	for (; i < n && rc == 0; i++) {
		int r = read_operation(o, q, &ops[i]);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0 && created_by_us(o, ops[i].created_by) != 0 &&
		    (!ops[i].requested || (ops[i].requested >= q->since && ops[i].requested <= q->until)))
			ops[kept++] = ops[i];
		else
			op_clear(&ops[i]);
	}
	if (rc < 0) {
		for (size_t j = i; j < n; j++)
			op_clear(&ops[j]);
		cmb_site_operations_free(ops, kept);
		return cmb_error_wrap(rc, "finding operations of Type %d", q->type);
	}
	*out = ops;
	*n_out = kept;
	return 0;
}

/* ---- status and clients -------------------------------------------------- */

int cmb_as_ops_status(void *p, int64_t operation_id, struct cmb_site_operation_status *out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	char *filter = xasprintf("%s eq %" PRId64, CMB_AS_NAME(CMB_AS_OPSTATUS, CMB_AS_OPS_ID), operation_id);
	struct cmb_as_cursor c;
	struct cmb_odata_record *rec = NULL;
	int rc, found = 0;
	list_cursor(o, &c, CMB_AS_OPSTATUS, filter, 1);
	while ((rc = cmb_as_cursor_next(&c, &rec)) == 0 && rec) {
		if (!found && get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_ID, -1) == operation_id) {
			found = 1;
			*out = (struct cmb_site_operation_status){
				.id = operation_id,
				.type = (int)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_TYPE, 0),
				.state = (int)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_STATE, 0),
				.total = (long)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_TOTAL, 0),
				.completed = (long)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_COMPLETED, 0),
				.failed = (long)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_FAILED, 0),
				.offline = (long)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_OFFLINE, 0),
				.unknown = (long)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_UNKNOWN, 0),
				.expired = (int)get_int(o, CMB_AS_OPSTATUS, rec, CMB_AS_OPS_EXPIRED, 0),
			};
		}
		cmb_odata_record_free(rec);
	}
	cmb_as_cursor_clear(&c);
	free(filter);
	if (rc < 0)
		return cmb_error_wrap(rc, "reading the status of OperationID %" PRId64, operation_id);
	return found ? 0 : CMB_ENOTFOUND;
}

int cmb_as_ops_offline_clients(void *p, uint32_t **ids_out, size_t *n_out)
{
	struct as_ops *o = p;
	fresh_budget(o);
	if (!o->off_reading) {
		char *filter = xasprintf("%s eq 0", CMB_AS_NAME(CMB_AS_CNSTATUS, CMB_AS_CN_ONLINE));
		const struct cmb_as_cursor_opts opts = {
			.entity = o->names.cls[CMB_AS_CNSTATUS].entity, .filter = filter,
			.select = CMB_AS_NAME(CMB_AS_CNSTATUS, CMB_AS_CN_RESOURCE), .page_size = LIST_PAGE,
		};
		cmb_as_cursor_init(&o->off, &o->cl, &opts); /* the query is built here: filter is not kept */
		free(filter);
		o->off_reading = 1;
	}
	int rc = cmb_as_cursor_ids_more(&o->off, &o->names.cls[CMB_AS_CNSTATUS], CMB_AS_CN_RESOURCE, 1, &o->off_ids);
	if (rc < 0) {
		long pages = o->off.pages;
		offline_drop(o);
		return cmb_error_wrap(rc, "reading the offline clients (page %ld)", pages);
	}
	if (rc == 0)
		return 0;
	*ids_out = o->off_ids.v;
	*n_out = o->off_ids.n;
	o->off_ids.v = NULL;
	offline_drop(o);
	return 1;
}

int cmb_as_ops_block(void *p, const uint32_t *ids, size_t n)
{
	struct as_ops *o = p;
	const struct cmb_as_method *m = &cmb_as_methods[CMB_AS_BLOCK];
	fresh_budget(o);
	yajl_gen g = cmb_json_new(0);
	yajl_gen_map_open(g);
	cmb_json_key(g, m->params[CMB_AS_BLOCK_IDS]);
	gen_ids(g, ids, n);
	cmb_json_kv_bool(g, m->params[CMB_AS_BLOCK_BLOCKED], 1);
	yajl_gen_map_close(g);
	char *body = cmb_json_take(g, NULL);
	char *url = method_url(o, CMB_AS_BLOCK);
	char what[96];
	snprintf(what, sizeof(what), "%s.%s (%zu clients)", m->cls, m->name, n);
	yajl_val root = NULL;
	long long ret = 0;
	int rc = cmb_as_client_json(&o->cl, "POST", url, body, CMB_REQUEST_IDEMPOTENT, what, m->name, &root);
	/* Any 2xx is success; a ReturnValue, when the site sends one, must be 0. */
	if (rc == 0 && reply_int(root, "ReturnValue", &ret) == 0 && ret != 0)
		rc = cmb_error_set(CMB_EHTTP, "%s: the site refused it (ReturnValue %lld)", what, ret);
	yajl_tree_free(root);
	free(url);
	free(body);
	return rc;
}
