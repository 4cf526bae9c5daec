/*
 * adminservice.c - the AdminService site adapter: learns which classes and
 * properties the site has (schema.h, from its $metadata), reads the device
 * classes of classes.h with one cursor each (cursor.h) and merge-joins them
 * (join.h); reads the collections marked for cloud sync and names their
 * hierarchy.
 *
 * What the site has: its $metadata, read once a day (the result is kept in
 * the state by the engine, learnt_load/learnt_save) or when the site
 * refuses a name; without a readable $metadata, the documented names. A
 * read the site refuses before any device was handed on is tried again
 * with what the refusal taught: a 400 naming an optional property drops
 * the property, a 404 for an optional class drops the class, each reported
 * by name; a required one fails the read with a message that says what is
 * missing. Optional properties and classes the site lacks are reported
 * once per cycle.
 *
 * Must never: log or put in a message the password or the Authorization
 * header; accept a read that was not complete; hand a device on twice.
 */
#include "adapters/site.h"
#include "adapters/adminservice/adminservice.h"
#include "adapters/adminservice/classes.h"
#include "adapters/adminservice/conn.h"
#include "adapters/adminservice/cursor.h"
#include "adapters/adminservice/join.h"
#include "adapters/adminservice/files.h"
#include "adapters/adminservice/metadata.h"
#include "adapters/adminservice/operations.h"
#include "adapters/adminservice/policies.h"
#include "adapters/adminservice/schema.h"
#include "connector/base/clock.h"
#include "connector/base/error.h"
#include "connector/base/log.h"
#include "connector/base/util.h"
#include "connector/config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RELEARN_S 86400          /* $metadata is read again after a day */
#define MAX_RELEARN_TRIES 16     /* reads started again within one read_devices (one per name dropped) */
#define MAX_SMALL_PAGES 100      /* SMS_Site and SMS_Collection are small */

struct as_state {
	struct cmb_as_conn *conn;   /* base URL, credentials, HTTP handle (conn.h) */
	struct cmb_as_client cl;    /* the reader's budget and counters over it */
	char *site_code;            /* [connector] site_code: the hierarchy fallback */
	char *collection;           /* [site] collection, or NULL: every device */
	long page_size;
	struct cmb_as_schema schema;
	int schema_changed;         /* learnt something the engine should keep */
	int learnt_this_cycle;      /* $metadata read (or tried) this cycle */
	char *site_version;         /* SMS_Site.Version of this site, when read */
	char *metadata_error;       /* why $metadata could not be read, for check */
};

/* ---- learning what the site has ------------------------------------------ */

struct meta_sink {
	struct cmb_as_meta_parser *parser;
	const char *const *wanted;
	size_t n_wanted;
	int rc;                      /* cmb_as_meta_parser_new's */
	struct cmb_as_meta *result;
};

static void meta_reset(void *ctx)
{
	struct meta_sink *ms = ctx;
	cmb_as_meta_parser_free(ms->parser);
	ms->parser = NULL;
	ms->rc = cmb_as_meta_parser_new(&ms->parser, "site $metadata", ms->wanted, ms->n_wanted, NULL);
}

static int meta_feed(void *ctx, long status, const char *content_type, const char *data, size_t len)
{
	struct meta_sink *ms = ctx;
	(void)status;
	(void)content_type;
	return ms->rc < 0 ? ms->rc : cmb_as_meta_feed(ms->parser, data, len);
}

static int meta_finish(void *ctx, const struct cmb_http_response *resp)
{
	struct meta_sink *ms = ctx;
	(void)resp;
	if (ms->rc < 0)
		return ms->rc;
	cmb_as_meta_free(ms->result);
	ms->result = NULL;
	return cmb_as_meta_finish(ms->parser, &ms->result);
}

/* GETs $metadata and parses it keeping the names in wanted; *out is the caller's. */
static int fetch_metadata_once(struct as_state *st, const char *const *wanted, size_t n, struct cmb_as_meta **out)
{
	static const char *const headers[] = { "Accept: application/xml", NULL };
	struct meta_sink ms = { .wanted = wanted, .n_wanted = n };
	char *url = xasprintf("%s/wmi/$metadata", st->conn->base);
	const struct cmb_request rq = {
		.url = url, .what = "reading the site's $metadata", .resource = "$metadata", .headers = headers,
		.sink = meta_feed, .sink_ctx = &ms, .reset = meta_reset, .finish = meta_finish, .finish_ctx = &ms,
	};
	struct cmb_http_response resp;
	int rc = cmb_request(&st->cl.ep, &rq, &resp, &st->cl.counters);
	cmb_http_response_clear(&resp);
	cmb_as_meta_parser_free(ms.parser);
	free(url);
	if (rc < 0) {
		cmb_as_meta_free(ms.result);
		return rc;
	}
	*out = ms.result;
	return 0;
}

/*
 * Reads $metadata, a second time when the first pass could not keep
 * everything (an entity set typed by another name, a base type that came
 * first), and resolves the table against it.
 */
static int learn_schema(struct as_state *st)
{
	const char *const *base = cmb_as_schema_wanted();
	size_t n = 0;
	while (base[n])
		n++;
	struct cmb_as_meta *m = NULL;
	int rc = fetch_metadata_once(st, base, n, &m);
	for (int pass = 0; rc == 0 && cmb_as_meta_missing(m) && pass < 4; pass++) {
		const char *const *miss = cmb_as_meta_missing(m);
		size_t nm = 0;
		while (miss[nm])
			nm++;
		const char **more = xcalloc(n + nm + 1, sizeof(*more));
		memcpy(more, base, n * sizeof(*more));
		memcpy(more + n, miss, nm * sizeof(*more));
		struct cmb_as_meta *m2 = NULL;
		rc = fetch_metadata_once(st, more, n + nm, &m2);
		free(more);
		cmb_as_meta_free(m);
		m = m2;
	}
	if (rc == 0) {
		cmb_as_schema_from_metadata(&st->schema, m, cmb_now());
		st->schema_changed = 1;
		cmb_debug("site: $metadata read (%zu bytes, %zu entity types)", m->bytes, m->n_types_seen);
	}
	cmb_as_meta_free(m);
	return rc;
}

/* Once a cycle at most: learns the schema when it is unknown, a day old, or in doubt. */
static void ensure_schema(struct as_state *st, int force)
{
	if (st->learnt_this_cycle)
		return;
	int stale = st->schema.source != CMB_AS_SCHEMA_METADATA || cmb_now() - st->schema.learnt >= RELEARN_S;
	if (!force && !stale)
		return;
	st->learnt_this_cycle = 1;
	if (learn_schema(st) == 0) {
		free(st->metadata_error);
		st->metadata_error = NULL;
		return;
	}
	free(st->metadata_error);
	st->metadata_error = xstrdup(cmb_error_last());
	if (st->schema.source == CMB_AS_SCHEMA_METADATA)
		cmb_warn("site: %s; keeping what the site's $metadata said earlier", st->metadata_error);
	else
		cmb_warn("site: %s; reading with the documented class and property names", st->metadata_error);
}

/* One warning per optional property or class the site lacks (once a cycle). */
static void report_missing(const struct as_state *st)
{
	for (int c = 0; c < CMB_AS_NDEVICE; c++) {
		const struct cmb_as_rclass *rc = &st->schema.cls[c];
		const struct cmb_as_class *def = &cmb_as_classes[c];
		if (!rc->present) {
			cmb_warn("site: the site has no class %s%s%s%s: %s", def->name, def->since ? " (" : "",
				 def->since ? def->since : "", def->since ? ")" : "", def->loses);
			continue;
		}
		for (size_t i = 0; i < def->nprops; i++)
			if (!rc->wire[i] && !def->props[i].required)
				cmb_warn("site: %s has no property %s%s%s%s: %s", def->name, def->props[i].name,
					 def->props[i].since ? " (" : "", def->props[i].since ? def->props[i].since : "",
					 def->props[i].since ? ")" : "", def->props[i].loses);
	}
}

/*
 * A read refused by the site: learns what it can. Returns 1 when the read
 * may start again (something was dropped), 0 when not, or CMB_EPROTO (the
 * message rewritten) when what the site refuses is a name the connector
 * needs.
 */
static int learn_from_refusal(struct as_state *st, enum cmb_as_class_id c, long status, const char *why)
{
	const struct cmb_as_class *def = &cmb_as_classes[c];
	if (status == 404 && why && strncasecmp(why, "404: Access denied", 18) != 0 &&
	    strncasecmp(why, "Access denied", 13) != 0) {
		if (def->required)
			return 0;
		cmb_warn("site: %s answered 404: the site has no class %s; %s", def->name, def->name, def->loses);
		cmb_as_schema_drop_class(&st->schema, c);
		st->schema_changed = 1;
		return 1;
	}
	if (status != 400)
		return 0;
	/* A name the site refuses: read $metadata again first (it may know the right spelling). */
	if (!st->learnt_this_cycle) {
		ensure_schema(st, 1);
		if (st->schema.source == CMB_AS_SCHEMA_METADATA && st->metadata_error == NULL)
			return 1;
	}
	int i = cmb_as_schema_drop_named(&st->schema, c, why);
	if (i < 0)
		return 0;
	st->schema_changed = 1;
	const struct cmb_as_prop *p = &def->props[i];
	if (p->required) {
		return cmb_error_set(CMB_EPROTO, "%s: the site refuses %s.%s (HTTP 400: %s), which cmbridge needs (%s)",
				     def->name, def->name, p->name, why,
				     p->since ? p->since : "every Configuration Manager current branch release documents it");
	}
	cmb_warn("site: %s refused %s (HTTP 400: %s): reading without it; %s", def->name, p->name, why, p->loses);
	return 1;
}

/* ---- the device read ------------------------------------------------------ */

struct emit {
	cmb_site_device_cb cb;
	void *ctx;
	long n;
};

static int emit_device(void *ctx, const struct cmb_site_device *dev)
{
	struct emit *e = ctx;
	int rc = e->cb(e->ctx, dev);
	if (rc >= 0)
		e->n++;
	return rc;
}

struct device_read {
	struct cmb_as_cursor cursors[CMB_AS_NDEVICE];
	struct cmb_as_cursor members;
	int have_members;
	struct cmb_join_stats js;
};

static void read_clear(struct device_read *r)
{
	for (int i = 0; i < CMB_AS_NDEVICE; i++)
		cmb_as_cursor_clear(&r->cursors[i]);
	if (r->have_members)
		cmb_as_cursor_clear(&r->members);
}

/* One attempt at the whole read with the current schema. */
static int read_once(struct as_state *st, struct device_read *r, struct emit *e)
{
	struct cmb_join_cursor *curp[CMB_AS_NDEVICE];
	char *filter = NULL;
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		const struct cmb_as_rclass *rc = &st->schema.cls[i];
		curp[i] = NULL;
		if (!rc->present)
			continue;
		const struct cmb_as_cursor_opts o = {
			.entity = rc->entity, .select = rc->select, .orderby = rc->wire[0], .page_size = st->page_size,
		};
		cmb_as_cursor_init(&r->cursors[i], &st->cl, &o);
		curp[i] = &r->cursors[i].join;
	}
	if (st->collection) {
		const struct cmb_as_rclass *rc = &st->schema.cls[CMB_AS_MEMBERSHIP];
		filter = cmb_as_filter_eq(rc->wire[CMB_AS_MEMBERSHIP_COLLECTION], st->collection);
		const struct cmb_as_cursor_opts o = {
			.entity = rc->entity, .filter = filter, .select = rc->wire[CMB_AS_MEMBERSHIP_RESOURCE],
			.orderby = rc->wire[CMB_AS_MEMBERSHIP_RESOURCE], .page_size = st->page_size,
		};
		cmb_as_cursor_init(&r->members, &st->cl, &o);
		r->have_members = 1;
	}
	int error = cmb_join_run(&st->schema, curp, r->have_members ? &r->members.join : NULL, emit_device, e, &r->js);
	free(filter);
	return error;
}

/* Which class's cursor was refused with a status, if any. */
static int refused_class(const struct device_read *r, long *status, const char **why)
{
	for (int i = 0; i < CMB_AS_NDEVICE; i++)
		if (r->cursors[i].failed_status) {
			*status = r->cursors[i].failed_status;
			*why = r->cursors[i].failed_message;
			return i;
		}
	if (r->have_members && r->members.failed_status) {
		*status = r->members.failed_status;
		*why = r->members.failed_message;
		return CMB_AS_MEMBERSHIP;
	}
	return -1;
}

static int as_read_devices(void *p, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats)
{
	struct as_state *st = p;
	struct emit e = { .cb = cb, .ctx = ctx };
	struct device_read r;
	int error;

	if (stats)
		memset(stats, 0, sizeof(*stats));
	ensure_schema(st, 0);
	for (int attempt = 0;; attempt++) {
		if ((error = cmb_as_schema_check(&st->schema, st->collection != NULL)) < 0)
			return error;
		if (attempt == 0)
			report_missing(st);
		error = read_once(st, &r, &e);
		if (stats) {
			for (int i = 0; i < CMB_AS_NDEVICE; i++) {
				stats->pages += r.cursors[i].pages;
				stats->bytes_in += r.cursors[i].bytes_in;
			}
			if (r.have_members) {
				stats->pages += r.members.pages;
				stats->bytes_in += r.members.bytes_in;
			}
		}
		long status = 0;
		const char *why = NULL;
		int c = error < 0 ? refused_class(&r, &status, &why) : -1;
		/* Only a read that handed nothing on yet may start again. */
		int learnt = error < 0 && c >= 0 && e.n == 0 && attempt < MAX_RELEARN_TRIES
				     ? learn_from_refusal(st, (enum cmb_as_class_id)c, status, why) : 0;
		if (learnt > 0) {
			read_clear(&r);
			continue;
		}
		if (learnt < 0)
			error = learnt;
		break;
	}
	if (stats) {
		stats->devices = r.js.devices;
		stats->filtered = r.js.filtered;
		/* The join counts every row of each class; SMS_R_System (CMB_AS_SYSTEM = 0) first. */
		_Static_assert(CMB_AS_SYSTEM == 0 && CMB_AS_NDEVICE <= CMB_SITE_MAX_CLASSES, "classes[0] drives the read");
		for (int i = 0; error == 0 && i < CMB_AS_NDEVICE; i++)
			stats->classes[stats->n_classes++] = (struct cmb_site_class_rows){
				.name = cmb_as_classes[i].name, .rows = r.js.rows[i],
			};
	}
	if (error == 0) {
		if (r.js.mismatches)
			cmb_warn("site: %ld property values had a form cmbridge cannot read (a NUL inside a string, a "
				 "number out of range...) and were read as absent", r.js.mismatches);
		cmb_debug("site: %ld devices; rows %ld/%ld/%ld/%ld/%ld; %ld rows without a discovery record; %ld "
			  "further inventory rows of a device skipped", r.js.devices, r.js.rows[0], r.js.rows[1],
			  r.js.rows[2], r.js.rows[3], r.js.rows[4], r.js.orphans, r.js.repeats);
		if (st->collection)
			cmb_debug("site: collection %s: %ld members, %ld devices left out as non-members, "
				  "%ld members without a discovery record", st->collection, r.js.member_rows,
				  r.js.filtered, r.js.members_unmatched);
	}
	if (st->cl.budget.used)
		cmb_debug("site: %ld retries so far this cycle, %.2f s spent waiting", st->cl.budget.used,
			  st->cl.budget.waited_s);
	read_clear(&r);
	return error;
}

/* ---- small reads: sites and collections ---------------------------------- */

static char *field_string(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec, size_t i)
{
	const struct cmb_odata_field *f = cmb_as_record_get(rc, rec, i);
	return f && f->type == CMB_ODATA_STRING && f->len && !memchr(f->text, '\0', f->len)
		       ? xstrndup(f->text, f->len) : NULL;
}

static int string_empty(const struct cmb_odata_field *f)
{
	if (!f || f->type == CMB_ODATA_NULL)
		return 1;
	if (f->type != CMB_ODATA_STRING)
		return 0;
	for (size_t i = 0; i < f->len; i++)
		if (f->text[i] != ' ')
			return 0;
	return 1;
}

/*
 * A cursor over a small class: every property (nothing to refuse in a
 * $select), at most MAX_SMALL_PAGES pages; by_key for a lookup by its key.
 */
static void small_cursor(struct as_state *st, struct cmb_as_cursor *c, enum cmb_as_class_id cls, const char *filter,
			 int by_key)
{
	const struct cmb_as_rclass *rc = &st->schema.cls[cls];
	const struct cmb_as_cursor_opts o = {
		.entity = rc->entity ? rc->entity : cmb_as_classes[cls].name, .filter = filter,
		.page_size = st->page_size, .max_pages = MAX_SMALL_PAGES, .by_key = by_key,
	};
	cmb_as_cursor_init(c, &st->cl, &o);
}

/*
 * Reads SMS_Site and works out the hierarchy's top site: the one row with
 * an empty ReportingSiteCode; with several or none, this connector's own
 * site. *id and *name are the caller's. Also keeps this site's Version.
 */
static int read_hierarchy(struct as_state *st, char **id, char **name)
{
	const struct cmb_as_rclass *rc = &st->schema.cls[CMB_AS_SITE];
	struct cmb_as_cursor c;
	struct cmb_odata_record *rec = NULL;
	char *top_id = NULL, *top_name = NULL, *own_name = NULL;
	long tops = 0, rows = 0, own = 0;
	int error;

	small_cursor(st, &c, CMB_AS_SITE, NULL, 0);
	while ((error = cmb_as_cursor_next(&c, &rec)) == 0 && rec) {
		char *code = field_string(rc, rec, CMB_AS_SITE_CODE);
		rows++;
		if (code) {
			if (string_empty(cmb_as_record_get(rc, rec, CMB_AS_SITE_REPORTING)) && tops++ == 0) {
				top_id = xstrdup(code);
				top_name = field_string(rc, rec, CMB_AS_SITE_NAME);
			}
			if (st->site_code && strcasecmp(code, st->site_code) == 0 && !own++) {
				own_name = field_string(rc, rec, CMB_AS_SITE_NAME);
				free(st->site_version);
				st->site_version = field_string(rc, rec, CMB_AS_SITE_VERSION);
			}
		}
		free(code);
		cmb_odata_record_free(rec);
	}
	cmb_as_cursor_clear(&c);
	if (error < 0)
		goto done;
	if (tops == 1) {
		*id = top_id;
		*name = top_name ? top_name : xstrdup(top_id);
		top_id = top_name = NULL;
		goto done;
	}
	if (!st->site_code) {
		error = cmb_error_set(CMB_EPROTO, "%s: %ld of %ld sites report to no other site, and [connector] "
				      "site_code is not set to fall back on", rc->entity, tops, rows);
		goto done;
	}
	cmb_debug("site: %ld of %ld %s rows have an empty %s, so the top site is unclear; naming the hierarchy "
		  "after this connector's site %s%s", tops, rows, rc->entity, CMB_AS_NAME(CMB_AS_SITE, CMB_AS_SITE_REPORTING),
		  st->site_code, own ? "" : " (which SMS_Site does not list)");
	*id = xstrdup(st->site_code);
	*name = own_name ? own_name : xstrdup(st->site_code);
	own_name = NULL;
done:
	free(top_id);
	free(top_name);
	free(own_name);
	return error;
}

/* Copies an SMS_Collection row into c and its CollectionType into *type (-1 when absent). */
static void collection_fill(const struct cmb_as_rclass *rc, const struct cmb_odata_record *rec,
			    struct cmb_site_collection *c, int *type)
{
	long long n;
	c->collection_id = field_string(rc, rec, CMB_AS_COLL_ID);
	c->name = field_string(rc, rec, CMB_AS_COLL_NAME);
	c->comment = field_string(rc, rec, CMB_AS_COLL_COMMENT);
	c->member_count = cmb_as_value_integer(cmb_as_record_get(rc, rec, CMB_AS_COLL_MEMBERS), &n) == 0 && n >= 0
				  ? (long)n : -1;
	c->limit_to = field_string(rc, rec, CMB_AS_COLL_LIMIT_TO);
	int64_t t;
	if (cmb_as_value_time(cmb_as_record_get(rc, rec, CMB_AS_COLL_LAST_CHANGE), &t) == 0) {
		char iso[32];
		cmb_time_iso8601(t, iso);
		c->last_change = xstrdup(iso);
	}
	*type = cmb_as_value_integer(cmb_as_record_get(rc, rec, CMB_AS_COLL_TYPE), &n) == 0 && n >= 0 && n < 100
			? (int)n : -1;
}

/* Reads one collection by id into *c (the caller clears it, even on failure). */
static int read_collection(struct as_state *st, const char *id, struct cmb_site_collection *c)
{
	const struct cmb_as_rclass *rc = &st->schema.cls[CMB_AS_COLLECTION];
	char *filter = cmb_as_filter_eq(rc->wire[CMB_AS_COLL_ID] ? rc->wire[CMB_AS_COLL_ID] : CMB_AS_NAME(CMB_AS_COLLECTION,
			       CMB_AS_COLL_ID), id);
	struct cmb_as_cursor cur;
	struct cmb_odata_record *rec = NULL, *first = NULL;
	long rows = 0;
	char where[128];
	int type, error;

	snprintf(where, sizeof(where), "%s %s", rc->entity, id);
	small_cursor(st, &cur, CMB_AS_COLLECTION, filter, 1);
	while ((error = cmb_as_cursor_next(&cur, &rec)) == 0 && rec) {
		if (rows++ == 0)
			first = rec;
		else
			cmb_odata_record_free(rec);
	}
	cmb_as_cursor_clear(&cur);
	if (error < 0)
		goto done;
	if (rows == 0) {
		error = cmb_error_set(CMB_ENOTFOUND, "collection %s is not on the site (no %s row at %s)", id, rc->entity,
				      st->conn->base);
		goto done;
	}
	if (rows > 1) {
		error = cmb_error_set(CMB_EPROTO, "%s: site returned %ld rows for %s eq '%s' (was $filter ignored?)", where,
				      rows, CMB_AS_NAME(CMB_AS_COLLECTION, CMB_AS_COLL_ID), id);
		goto done;
	}
	collection_fill(rc, first, c, &type);
	if (!c->collection_id || strcasecmp(c->collection_id, id) != 0) {
		char *got = c->collection_id ? cmb_request_sanitise(c->collection_id, strlen(c->collection_id), 40, 1)
					     : NULL;
		error = cmb_error_set(CMB_EPROTO, "%s: site returned collection '%s' (was $filter ignored?)", where,
				      got ? got : "(none)");
		free(got);
		goto done;
	}
	if (type == CMB_AS_COLLECTION_TYPE_USER) {
		error = cmb_error_set(CMB_EINVAL, "collection %s is a user collection; tenant attach targets device "
				      "collections", id);
		goto done;
	}
	if (type != CMB_AS_COLLECTION_TYPE_DEVICE) {
		error = type < 0 ? cmb_error_set(CMB_EPROTO, "%s: no CollectionType (2, device, expected)", where)
				 : cmb_error_set(CMB_EPROTO, "collection %s has CollectionType %d, not 2 (device)", id, type);
		goto done;
	}
	error = 0;
done:
	cmb_odata_record_free(first);
	free(filter);
	return error;
}

static int as_read_collections(void *p, const char *const *ids, size_t n, struct cmb_site_collection **out)
{
	struct as_state *st = p;
	struct cmb_site_collection *colls = NULL;
	char *hid = NULL, *hname = NULL;
	int error = 0;

	if (n == 0) {
		*out = NULL;
		return 0;
	}
	colls = xcalloc(n, sizeof(*colls));
	for (size_t i = 0; i < n; i++)
		if ((error = read_collection(st, ids[i], &colls[i])) < 0)
			goto done;
	if ((error = read_hierarchy(st, &hid, &hname)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		colls[i].hierarchy_id = xstrdup(hid);
		colls[i].hierarchy_name = xstrdup(hname);
	}
	*out = colls;
	colls = NULL;
done:
	if (colls) {
		for (size_t i = 0; i < n; i++)
			cmb_site_collection_clear(&colls[i]);
		free(colls);
	}
	free(hid);
	free(hname);
	return error;
}

/* ---- check and its report --------------------------------------------------- */

/*
 * One row of SMS_R_System with its key: the site answers, the credentials
 * work, and the key is spelt as the schema says (a read that cannot find
 * the key fails here, not in the first cycle).
 */
static int check_key(struct as_state *st)
{
	const struct cmb_as_rclass *rc = &st->schema.cls[CMB_AS_SYSTEM];
	const struct cmb_as_cursor_opts o = { .entity = rc->entity, .select = rc->wire[0], .page_size = 1, .max_pages = 1 };
	struct cmb_as_cursor c;
	struct cmb_odata_record *rec = NULL;
	uint32_t k;
	cmb_as_cursor_init(&c, &st->cl, &o);
	int error = cmb_as_cursor_next(&c, &rec);
	long status = c.failed_status;
	char *why = c.failed_message ? xstrdup(c.failed_message) : NULL;
	cmb_as_cursor_clear(&c);
	if (error < 0 && status == 400 && learn_from_refusal(st, CMB_AS_SYSTEM, status, why) > 0)
		error = cmb_error_set(CMB_EPROTO, "%s check: the site refuses the key %s (HTTP 400: %s)", rc->entity,
				      rc->wire[0] ? rc->wire[0] : "?", why ? why : "");
	if (error == 0 && rec && cmb_as_record_key(rc, rec, &k) < 0)
		error = cmb_error_wrap(CMB_EPROTO, "%s check: the first row", rc->entity);
	cmb_odata_record_free(rec);
	free(why);
	return error;
}

static int as_check(void *p)
{
	struct as_state *st = p;
	char *hid = NULL, *hname = NULL;
	st->learnt_this_cycle = 0;
	ensure_schema(st, 1);
	int error = check_key(st);
	if (error == 0 && st->site_code && read_hierarchy(st, &hid, &hname) < 0)
		cmb_debug("site: SMS_Site not read: %s", cmb_error_last());
	free(hid);
	free(hname);
	if (error == 0)
		error = cmb_as_schema_check(&st->schema, st->collection != NULL);
	return error;
}

static char *as_describe(void *p)
{
	struct as_state *st = p;
	struct cmb_buf b = CMB_BUF_INIT((size_t)1 << 20);
	if (st->schema.source == CMB_AS_SCHEMA_METADATA)
		cmb_buf_printf(&b, "site schema: from the site's $metadata%s%s\n", st->site_version ? ", site version " : "",
			       st->site_version ? st->site_version : "");
	else
		cmb_buf_printf(&b, "site schema: the documented names ($metadata not read: %s)\n",
			       st->metadata_error ? st->metadata_error : "not tried");
	for (int c = 0; c < CMB_AS_NCLASSES; c++) {
		const struct cmb_as_rclass *rc = &st->schema.cls[c];
		const struct cmb_as_class *def = &cmb_as_classes[c];
		if (!rc->present) {
			cmb_buf_printf(&b, "  %-30s absent%s: %s\n", def->name, def->required ? " (required)" : "",
				       def->loses ? def->loses : "cmbridge cannot do without it");
			continue;
		}
		size_t have = 0;
		for (size_t i = 0; i < def->nprops; i++)
			have += rc->wire[i] != NULL;
		cmb_buf_printf(&b, "  %-30s %zu of %zu properties", def->name, have, def->nprops);
		if (def->props[0].type == CMB_AS_PROP_KEY)
			cmb_buf_printf(&b, ", key %s", rc->wire[0] ? rc->wire[0] : "(none)");
		cmb_buf_addstr(&b, "\n");
		for (size_t i = 0; i < def->nprops; i++)
			if (!rc->wire[i])
				cmb_buf_printf(&b, "    without %s%s: %s\n", def->props[i].name,
					       def->props[i].required ? " (required)" : "",
					       def->props[i].loses ? def->props[i].loses : "cmbridge cannot do without it");
	}
	return cmb_buf_detach(&b, NULL);
}

/* ---- the adapter table ------------------------------------------------- */

static void as_close(void *p)
{
	struct as_state *st = p;
	if (!st)
		return;
	cmb_as_schema_clear(&st->schema);
	cmb_as_client_clear(&st->cl);
	cmb_as_conn_release(st->conn);
	free(st->site_code);
	free(st->collection);
	free(st->site_version);
	free(st->metadata_error);
	free(st);
}

static int as_open(void **out, const struct cmb_config *cfg)
{
	struct as_state *st = xcalloc(1, sizeof(*st));
	int error;

	if ((error = cmb_as_conn_open(&st->conn, cfg)) < 0)
		goto done;
	cmb_as_client_init(&st->cl, st->conn);
	cmb_as_schema_documented(&st->schema);
	st->page_size = cfg->site_page_size > 0 ? cfg->site_page_size : 1000;
	st->site_code = cfg->site_code ? xstrdup(cfg->site_code) : NULL;
	st->collection = cfg->site_collection && *cfg->site_collection ? xstrdup(cfg->site_collection) : NULL;
	*out = st;
	st = NULL;
	error = 0;
done:
	as_close(st);
	return error;
}

static void as_begin_cycle(void *p)
{
	struct as_state *st = p;
	cmb_as_client_fresh_budget(&st->cl, 0);
	st->learnt_this_cycle = 0;
}

static int as_learnt_load(void *p, const char *text)
{
	struct as_state *st = p;
	if (!text)
		return 0;
	if (cmb_as_schema_load(&st->schema, text) < 0) {
		cmb_warn("site: %s; it will be learnt again", cmb_error_last());
		cmb_as_schema_documented(&st->schema);
	}
	return 0;
}

static char *as_learnt_save(void *p)
{
	struct as_state *st = p;
	if (!st->schema_changed)
		return NULL;
	st->schema_changed = 0;
	return cmb_as_schema_save(&st->schema);
}

/* ---- beyond the table (adminservice.h) --------------------------------- */

void cmb_adminservice_set_retry_policy(void *p, const struct cmb_retry_policy *policy)
{
	struct as_state *st = p;
	if (policy)
		st->conn->policy = *policy;
	cmb_as_client_fresh_budget(&st->cl, 0);
}

const struct cmb_retry_budget *cmb_adminservice_retry_budget(const void *p)
{
	const struct as_state *st = p;
	return &st->cl.budget;
}

const struct cmb_as_schema *cmb_adminservice_schema(const void *p)
{
	const struct as_state *st = p;
	return &st->schema;
}

struct cmb_as_conn *cmb_adminservice_conn(void *p)
{
	struct as_state *st = p;
	return st->conn;
}

const struct cmb_site_adapter cmb_site_adminservice = {
	.version = CMB_SITE_ADAPTER_VERSION,
	.name = "adminservice",
	.open = as_open,
	.check = as_check,
	.describe = as_describe,
	.begin_cycle = as_begin_cycle,
	.learnt_load = as_learnt_load,
	.learnt_save = as_learnt_save,
	.read_devices = as_read_devices,
	.read_collections = as_read_collections,
	.close = as_close,
	.ops_open = cmb_as_ops_open, .ops_close = cmb_as_ops_close, .initiate_operation = cmb_as_ops_initiate,
	.find_operations = cmb_as_ops_find, .operation_status = cmb_as_ops_status,
	.offline_clients = cmb_as_ops_offline_clients, .block_clients = cmb_as_ops_block,
	.policy_open = cmb_as_policies_open, .policy_close = cmb_as_policies_close, .policy_put = cmb_as_policy_put,
	.policy_delete = cmb_as_policy_delete, .policy_list = cmb_as_policy_list,
	.policy_compliance = cmb_as_policy_compliance, .collection_members = cmb_as_collection_members,
	.read_files = cmb_adminservice_read_files,
};
