/*
 * site.c - the ConfigMgr AdminService stand-in (docs/wire-format.md §1,
 * docs/lab.md "Site: AdminService"): GET /AdminService/wmi/{Class} for the
 * device, collection and site classes with the query options of odata.c
 * (whose table names every class and property), server-driven or client
 * paging, the service document and $metadata; method calls go to
 * actions.c. Basic auth, OData errors, gzip. Pages are built once and
 * cached (class + query + host + encoding) until a mutation clears the
 * cache, so measurements show the client's cost.
 *
 * It never answers for a property or class the table lacks: that is a 400
 * or a 404, as on a real site.
 */
#include "lab.h"
#include "auth.h"
#include "actions.h"
#include "policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Row kinds: a device (the five device classes), a (collection, device)
 * membership, a collection, a site. */
enum kind { K_DEV, K_MEMBER, K_COLL, K_SITE };

static enum kind kind_of(int cls)
{
	switch (cls) {
	case LAB_CLS_FCM: return K_MEMBER;
	case LAB_CLS_COLL: return K_COLL;
	case LAB_CLS_SITE: return K_SITE;
	default: return K_DEV;
	}
}

/* The hierarchy: a central administration site and the lab's primary.
 * Versions: 2403 (current) and 2002, the last release whose WMI route was
 * case-sensitive (AdminService release notes). */
static const char *const site_names[2] = {"Contoso Hierarchy", "Contoso Primary Site"};
#define SITE_VERSION "5.00.9128.1000"
#define SITE_VERSION_OLD "5.00.8968.1000"

struct row {
	const struct lab_device *d;  /* K_DEV, K_MEMBER */
	int sub;                     /* collection or site index */
};

static bool has_row(int cls, const struct lab_device *d)
{
	switch (cls) {
	case LAB_CLS_SYSTEM: case LAB_CLS_CDR: return true;
	case LAB_CLS_COMGMT: return d->client == 1;
	default: return d->has_hw && d->client == 1;
	}
}

static void vtmp(struct lab_odata_val *v)
{
	v->t = LAB_V_STR;
	v->s = v->tmp;
	v->n = strlen(v->tmp);
}

static void vbool(struct lab_odata_val *v, bool b)
{
	v->t = LAB_V_BOOL;
	v->i = b;
}

static void vdate(struct lab_odata_val *v, int64_t t)
{
	v->t = LAB_V_DATE;
	v->i = t;
}

/* "" stays "": WMI serves empty strings (LimitToCollectionID, ReportingSiteCode) as they are. */
static void vstr_e(struct lab_odata_val *v, const char *s)
{
	v->t = LAB_V_STR;
	v->s = s;
	v->n = strlen(s);
}

/* When hardware inventory last ran: fixed per device (a check-in or a new
 * OS revision does not move it). */
static int64_t hw_time(const struct lab *lab, const struct lab_device *d)
{
	int64_t r = d->resource_id;
	return lab->conf.epoch - 86400 - (r % 6) * 86400 - (r % 1440) * 60;
}

static void get(void *ctx, const void *row, const struct lab_odata_prop *p, struct lab_odata_val *v)
{
	static const struct lab_device none = {.client = -1};
	const struct lab *lab = ctx;
	const struct row *rw = row;
	const struct lab_device *d = rw->d ? rw->d : &none;
	const struct lab_coll_def *cd = &lab_colls[rw->sub % LAB_NCOLL];
	bool cl = d->client == 1;
	memset(v, 0, sizeof *v);
	switch (p->col) {
	case LAB_C_COLLID: lab_odata_vstr(v, cd->id); break;
	case LAB_C_COLLNAME: lab_odata_vstr(v, cd->name); break;
	case LAB_C_COMMENT: vstr_e(v, cd->comment); break;
	case LAB_C_COLLTYPE: lab_odata_vint(v, cd->type); break;
	case LAB_C_MEMBERCOUNT: lab_odata_vint(v, lab->coll_count[rw->sub % LAB_NCOLL]); break;
	case LAB_C_LIMITTO:
		vstr_e(v, !strcmp(cd->id, "SMS00001") || !strcmp(cd->id, "SMS00002") ? ""
			  : cd->type == 1 ? "SMS00002" : "SMS00001");
		break;
	case LAB_C_LASTCHANGE: vdate(v, lab_coll_last_change(rw->sub, lab->conf.epoch)); break;
	case LAB_C_LASTMCHANGE: vdate(v, lab->inv.coll_mchange[rw->sub % LAB_NCOLL]); break;
	case LAB_C_SITENAME: lab_odata_vstr(v, site_names[rw->sub & 1]); break;
	case LAB_C_REPORTING: vstr_e(v, rw->sub == 1 ? "CAS" : ""); break;
	case LAB_C_VERSION: lab_odata_vstr(v, lab->conf.site_old ? SITE_VERSION_OLD : SITE_VERSION); break;
	case LAB_C_RID: case LAB_C_MACHINEID: lab_odata_vint(v, d->resource_id); break;
	case LAB_C_NAME: case LAB_C_NETBIOS: v->t = LAB_V_STR; v->s = d->name; v->n = d->name_len; break;
	case LAB_C_RESTYPE: lab_odata_vint(v, 5); break;
	case LAB_C_SMSUID: case LAB_C_SMSID: lab_odata_vstr(v, d->sms_uid); break;
	case LAB_C_HWID: lab_odata_vstr(v, d->hardware_id); break;
	case LAB_C_SMBIOS: lab_odata_vstr(v, d->smbios_guid); break;
	case LAB_C_AADDEV: lab_odata_vstr(v, d->aad_device_id); break;
	case LAB_C_AADTEN: lab_odata_vstr(v, d->aad_device_id[0] ? lab->conf.tenant_id : NULL); break;
	case LAB_C_OSNAME: case LAB_C_DEVICEOS: lab_odata_vstr(v, lab_os_ntname(d->os)); break;
	case LAB_C_BUILD: lab_odata_vstr(v, lab_os_build(d->os)); break;
	case LAB_C_BUILDEXT: case LAB_C_DEVICEOSBUILD:
		snprintf(v->tmp, sizeof v->tmp, "%s.%d", lab_os_build(d->os), d->build_rev);
		vtmp(v);
		break;
	case LAB_C_DOMAIN: lab_odata_vstr(v, d->domain); break;
	case LAB_C_CLIENT: lab_odata_vint(v, d->client); break;
	case LAB_C_OBSOLETE: lab_odata_vint(v, d->obsolete); break;
	case LAB_C_DECOM: lab_odata_vint(v, d->decommissioned); break;
	case LAB_C_ACTIVE: lab_odata_vint(v, d->active); break;
	case LAB_C_SITECODE: lab_odata_vstr(v, rw->d || rw->sub == 1 ? lab->conf.site_code : "CAS"); break;
	case LAB_C_ISCLIENT: vbool(v, cl); break;
	case LAB_C_ISACTIVE: vbool(v, d->active == 1); break;
	case LAB_C_ISBLOCKED: vbool(v, d->blocked); break;
	case LAB_C_ISOBSOLETE: vbool(v, d->obsolete == 1); break;
	case LAB_C_CLIENTVER: lab_odata_vstr(v, cl ? lab_client_version(d->client_ver) : NULL); break;
	case LAB_C_ACTSTATUS: lab_odata_vint(v, cl ? d->active_status : -1); break;
	case LAB_C_CHECKPASS: lab_odata_vint(v, cl ? d->check_pass : -1); break;
	case LAB_C_LASTPOLICY: case LAB_C_LASTACTIVE:
		if (cl)
			vdate(v, p->col == LAB_C_LASTPOLICY ? d->last_policy : d->last_active);
		break;
	case LAB_C_MDM: vbool(v, d->mdm); break;
	case LAB_C_POLICY: vbool(v, d->comgmt_policy); break;
	case LAB_C_HYBRID: vbool(v, d->hybrid); break;
	case LAB_C_AADJ: vbool(v, d->aadj); break;
	case LAB_C_AUTHORITY: lab_odata_vstr(v, d->mdm ? "Intune" : NULL); break;
	case LAB_C_WORKLOADS: lab_odata_vint(v, d->workloads); break;
	case LAB_C_GROUPID: case LAB_C_REVISION: lab_odata_vint(v, 1); break;
	case LAB_C_HWTIME: vdate(v, hw_time(lab, d)); break;
	case LAB_C_MFR: lab_odata_vstr(v, lab_model_manufacturer(d->model)); break;
	case LAB_C_MODEL: lab_odata_vstr(v, lab_model_name(d->model)); break;
	case LAB_C_SERIAL: lab_odata_vstr(v, d->serial); break;
	default: break;       /* the operation classes' columns (actions.c) */
	}
}

static int64_t rid_of(const struct row *r)
{
	return r->d ? r->d->resource_id : 0;
}

/* The natural key order: ResourceID, then the collection (or site) index. */
static int cmp_key(const struct row *a, const struct row *b)
{
	int64_t x = rid_of(a), y = rid_of(b);
	if (x != y)
		return x < y ? -1 : 1;
	return a->sub < b->sub ? -1 : a->sub > b->sub;
}

struct sort_ctx {
	const struct lab *lab;
	const struct lab_odata_query *q;
};

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
	const struct sort_ctx *sc = arg;
	const struct row *a = pa, *b = pb;
	int c = 0;
	if (sc->q->order && sc->q->order->col != LAB_C_RID) {
		struct lab_odata_val va, vb;
		get((void *)sc->lab, a, sc->q->order, &va);
		get((void *)sc->lab, b, sc->q->order, &vb);
		c = lab_odata_cmp(&va, &vb);
	}
	if (!c)
		c = cmp_key(a, b);
	return sc->q->desc ? -c : c;
}

/* ---- page cache ------------------------------------------------------- */

struct centry {
	char *key;
	char *body; size_t len;
	int status;
	struct centry *next;
};

#define CACHE_BUCKETS 1024
#define CACHE_MAX 16384

struct lab_page_cache {
	pthread_mutex_t lock;
	struct centry *b[CACHE_BUCKETS];
	size_t n;
	/* per device class, the $skip of the last unfiltered window and the
	 * inventory index of its first row: the next window starts there */
	long long hint_skip[LAB_NCLS];
	size_t hint_idx[LAB_NCLS];
};

void lab_site_cache_init(struct lab *lab)
{
	lab->cache = lab_xcalloc(1, sizeof *lab->cache);
	pthread_mutex_init(&lab->cache->lock, NULL);
}

static void cache_clear_locked(struct lab_page_cache *c)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct centry *e = c->b[i];
		while (e) {
			struct centry *n = e->next;
			free(e->key);
			free(e->body);
			free(e);
			e = n;
		}
		c->b[i] = NULL;
	}
	c->n = 0;
	memset(c->hint_skip, 0, sizeof c->hint_skip);
	memset(c->hint_idx, 0, sizeof c->hint_idx);
}

void lab_site_cache_clear(struct lab *lab)
{
	pthread_mutex_lock(&lab->cache->lock);
	cache_clear_locked(lab->cache);
	pthread_mutex_unlock(&lab->cache->lock);
}

void lab_site_cache_free(struct lab *lab)
{
	if (!lab->cache)
		return;
	cache_clear_locked(lab->cache);
	pthread_mutex_destroy(&lab->cache->lock);
	free(lab->cache);
	lab->cache = NULL;
}

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Returns a malloc'd copy of the cached body, or NULL. */
static char *cache_get(struct lab *lab, const char *key, size_t *len, int *status)
{
	struct lab_page_cache *c = lab->cache;
	char *out = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct centry *e = c->b[hash(key) % CACHE_BUCKETS]; e; e = e->next)
		if (!strcmp(e->key, key)) {
			out = lab_xstrndup(e->body, e->len);
			*len = e->len;
			*status = e->status;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return out;
}

static void cache_put(struct lab *lab, const char *key, const char *body, size_t len, int status)
{
	struct lab_page_cache *c = lab->cache;
	pthread_mutex_lock(&c->lock);
	if (c->n >= CACHE_MAX)
		cache_clear_locked(c);
	struct centry *e = lab_xcalloc(1, sizeof *e);
	e->key = lab_xstrdup(key);
	e->body = lab_xstrndup(body, len);
	e->len = len;
	e->status = status;
	size_t h = hash(key) % CACHE_BUCKETS;
	e->next = c->b[h];
	c->b[h] = e;
	c->n++;
	pthread_mutex_unlock(&c->lock);
}

int lab_gzip(const char *in, size_t n, char **out, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	size_t cap = deflateBound(&z, n) + 64;
	char *buf = lab_xmalloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)buf;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = z.total_out;
	return 0;
}

/* ---- handler ---------------------------------------------------------- */

static bool basic_ok(struct lab *lab, const struct lab_req *q)
{
	const char *a = q->header(q->hctx, "Authorization");
	if (!a || strncasecmp(a, "Basic ", 6))
		return false;
	a += 6;
	while (*a == ' ')
		a++;
	size_t n;
	unsigned char *dec = lab_b64_decode(a, strlen(a), &n);
	if (!dec)
		return false;
	char *expect = lab_xasprintf("%s:%s", lab->conf.username, lab->site_password);
	bool ok = strlen(expect) == n && !memcmp(expect, dec, n);
	free(expect);
	free(dec);
	return ok;
}

static void host_of(struct lab *lab, const struct lab_req *q, char *out, size_t n)
{
	if (q->host && *q->host && !strpbrk(q->host, "/\"\\ "))
		snprintf(out, n, "%s", q->host);
	else
		snprintf(out, n, "127.0.0.1:%d", lab->conf.site_port);
}

static void next_token(enum kind kind, bool by_rid, const struct row *last, size_t end, char *tmp, size_t n)
{
	if (by_rid && kind == K_MEMBER)
		snprintf(tmp, n, "R%lld.%d", (long long)rid_of(last), last->sub);
	else if (by_rid)
		snprintf(tmp, n, "R%lld", (long long)rid_of(last));
	else
		snprintf(tmp, n, "O%zu", end);
}

/* A page in ResourceID order read as an index seek: from the token's key
 * (a binary search of the inventory, which is kept in ResourceID order),
 * or past the first $skip rows (counted, not collected), as far as the
 * page's rows and one more: not the whole class collected and filtered
 * per page. The same rows, nextLink and errors as the scan in build_page,
 * which still answers everything else: $count (the total needs the scan),
 * other orders, descending order, the class-rows fault, and tokens it
 * rejects. Returns whether it answered. */
static bool seek_page(struct lab *lab, struct lab_odata_query *q, enum kind kind, long short_rows, const char *host,
		      struct lab_reply *r)
{
	if ((kind != K_DEV && kind != K_MEMBER) || (q->order && q->order->col != LAB_C_RID) || q->desc ||
	    q->count || short_rows >= 0)
		return false;
	long long v = -1, sub = 0;
	if (q->token) {
		const char *t = q->token;
		char *e = NULL;
		if (t[0] != 'R')
			return false;
		v = strtoll(t + 1, &e, 10);
		sub = kind == K_MEMBER ? LAB_NCOLL : 0;
		if (v >= 0 && e && *e == '.' && kind == K_MEMBER)
			sub = strtoll(e + 1, &e, 10);
		if (v < 0 || !e || *e)
			return false;
	}
	/* a pinned ResourceID (the conditions are and-ed) is one device's rows */
	int64_t pin = 0;
	bool one = lab_odata_pinned(q, LAB_C_RID, &pin);
	long long from_rid = one && pin > v ? pin : v;
	size_t lo = 0, hi = lab->inv.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (lab->inv.dev[mid].resource_id < from_rid)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t limit = lab_odata_limit(lab, q);
	struct row *rows = lab_xmalloc((limit + 1) * sizeof *rows);
	size_t n = 0;
	struct lab_device kd = {.resource_id = v};
	struct row key = {&kd, (int)sub};
	long long skip = !q->token && q->skip > 0 ? q->skip : 0;
	/* An unfiltered window of a device class: its rows before the last
	 * window's first row need no counting again (client paging reads
	 * the windows in turn). */
	bool hinted = kind == K_DEV && q->ncond == 0 && skip > 0;
	if (hinted) {
		pthread_mutex_lock(&lab->cache->lock);
		if (lab->cache->hint_skip[q->cls] > 0 && lab->cache->hint_skip[q->cls] <= skip) {
			lo = lab->cache->hint_idx[q->cls];
			skip -= lab->cache->hint_skip[q->cls];
		}
		pthread_mutex_unlock(&lab->cache->lock);
	}
	for (size_t i = lo; i < lab->inv.n && n <= limit; i++) {
		const struct lab_device *d = &lab->inv.dev[i];
		if (one && d->resource_id > pin)
			break;
		for (int ci = 0; ci < (kind == K_MEMBER ? LAB_NCOLL : 1) && n <= limit; ci++) {
			struct row rw = {d, ci};
			if (kind == K_DEV ? !has_row(q->cls, d) : !lab_coll_member(ci, d, lab->conf.seed))
				continue;
			if (q->token && cmp_key(&rw, &key) <= 0)
				continue;
			if (!lab_odata_match(q, get, lab, &rw))
				continue;
			if (skip > 0) {
				skip--;
				continue;
			}
			if (n == 0 && hinted) {
				pthread_mutex_lock(&lab->cache->lock);
				lab->cache->hint_skip[q->cls] = q->skip;
				lab->cache->hint_idx[q->cls] = i;
				pthread_mutex_unlock(&lab->cache->lock);
			}
			rows[n++] = rw;
		}
	}
	size_t end = n < limit ? n : limit;
	/* client paging ([site] paging = client): never a nextLink */
	bool more = !lab->conf.client_paging && n > limit && (q->top < 0 || (long long)end < q->top);
	char tmp[64];
	if (more)
		next_token(kind, true, &rows[end - 1], end, tmp, sizeof tmp);
	lab_odata_page(lab, r, q, host, get, lab, rows, sizeof *rows, 0, end, 0, more ? tmp : NULL);
	free(rows);
	return true;
}

static void build_page(struct lab *lab, struct lab_odata_query *q, const char *host, struct lab_reply *r)
{
	char err[512];
	int cls = q->cls;
	/* rows, in key order */
	enum kind kind = kind_of(cls);
	long short_rows = kind == K_DEV ? lab_faults_class_rows(lab, cls) : -1;
	if (seek_page(lab, q, kind, short_rows, host, r))
		return;
	size_t cap = kind == K_MEMBER ? lab->inv.n * LAB_NCOLL + 1 : kind == K_DEV ? lab->inv.n + 1 : LAB_NCOLL;
	struct row *rows = lab_xmalloc(cap * sizeof *rows);
	size_t n = 0;
	if (kind == K_DEV || kind == K_MEMBER) {
		for (size_t i = 0; i < lab->inv.n; i++) {
			const struct lab_device *d = &lab->inv.dev[i];
			for (int ci = 0; ci < (kind == K_MEMBER ? LAB_NCOLL : 1); ci++) {
				struct row rw = {d, ci};
				if (kind == K_DEV ? !has_row(cls, d) : !lab_coll_member(ci, d, lab->conf.seed))
					continue;
				if (lab_odata_match(q, get, lab, &rw))
					rows[n++] = rw;
			}
		}
	} else {
		for (int i = 0; i < (kind == K_COLL ? LAB_NCOLL : 2); i++) {
			struct row rw = {NULL, i};
			if (lab_odata_match(q, get, lab, &rw))
				rows[n++] = rw;
		}
	}
	if (q->order && (q->order->col != LAB_C_RID || q->desc)) {
		struct sort_ctx sc = {lab, q};
		qsort_r(rows, n, sizeof *rows, cmp_rows, &sc);
	}
	/* fault --class-rows: the class answers its first rows only, every page and every query alike */
	if (short_rows >= 0 && (size_t)short_rows < n)
		n = (size_t)short_rows;
	/* Key continuation when ordered by ResourceID (device and membership
	 * classes); offset tokens otherwise. */
	bool by_rid = (kind == K_DEV || kind == K_MEMBER) && (!q->order || q->order->col == LAB_C_RID);
	size_t start = 0;
	if (q->token) {
		const char *t = q->token;
		char *e = NULL;
		long long v = (t[0] == 'R' || t[0] == 'O') ? strtoll(t + 1, &e, 10) : -1;
		long long sub = kind == K_MEMBER ? LAB_NCOLL : 0;
		if (v >= 0 && e && *e == '.' && t[0] == 'R' && kind == K_MEMBER)
			sub = strtoll(e + 1, &e, 10);
		if (v < 0 || !e || *e || (t[0] == 'R' && !by_rid)) {
			snprintf(err, sizeof err, "The $skiptoken '%s' is not valid for this query.", t);
			lab_odata_error(r, 400, "", err);
			free(rows);
			return;
		}
		if (t[0] == 'R') {
			struct lab_device kd = {.resource_id = v};
			struct row k = {&kd, (int)sub};
			while (start < n && (q->desc ? cmp_key(&rows[start], &k) >= 0 : cmp_key(&rows[start], &k) <= 0))
				start++;
		} else {
			start = (size_t)v < n ? (size_t)v : n;
		}
	} else if (q->skip > 0) {
		start = (size_t)q->skip < n ? (size_t)q->skip : n;
	}
	size_t limit = lab_odata_limit(lab, q);
	size_t end = start + limit < n ? start + limit : n;

	/* client paging ([site] paging = client): never a nextLink */
	bool more = !lab->conf.client_paging && end < n && (q->top < 0 || (long long)(end - start) < q->top);
	char tmp[64];
	if (more)
		next_token(kind, by_rid, &rows[end - 1], end, tmp, sizeof tmp);
	lab_odata_page(lab, r, q, host, get, lab, rows, sizeof *rows, start, end, n, more ? tmp : NULL);
	free(rows);
}

/* A generated padding class: its rows are none. */
static void empty_page(struct lab *lab, const struct lab_req *rq, const char *host, const char *name, size_t n,
		       struct lab_reply *r)
{
	struct lab_buf b = {0};
	(void)lab;
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata#%.*s\"", host, (int)n, name);
	if (lab_req_arg(rq, "$count") && !strcmp(lab_req_arg(rq, "$count"), "true"))
		lab_buf_adds(&b, ",\"@odata.count\":0");
	lab_buf_adds(&b, ",\"value\":[]}");
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

static int cmp_arg(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	return strcmp(*x, *y);
}

/* Serves a body built by fill (once per key: the cache) with gzip when asked. */
static void cached(struct lab *lab, const struct lab_req *q, struct lab_buf *key, struct lab_reply *r,
		   void (*fill)(struct lab *lab, const struct lab_req *q, const void *arg, struct lab_reply *tmp),
		   const void *arg)
{
	const char *ae = q->header(q->hctx, "Accept-Encoding");
	bool gz = ae && strstr(ae, "gzip");
	if (gz)
		lab_buf_adds(key, "\x02gzip");
	/* The cached status carries 0x10000 when the body is gzip-encoded. */
	pthread_rwlock_rdlock(&lab->inv_lock);
	size_t len;
	int status;
	const char *ctype = "application/json; odata.metadata=minimal";
	char *body = cache_get(lab, key->p, &len, &status);
	if (!body) {
		struct lab_reply tmp = {0};
		fill(lab, q, arg, &tmp);
		for (int i = 0; i < tmp.nhdr; i++) {
			free(tmp.hdr_name[i]);
			free(tmp.hdr_val[i]);
		}
		body = tmp.body;
		len = tmp.len;
		status = tmp.status;
		if (tmp.ctype && !strcmp(tmp.ctype, "application/xml"))
			status |= 0x20000;
		char *z;
		size_t zl;
		if (gz && len > 256 && lab_gzip(body, len, &z, &zl) == 0) {
			free(body);
			body = z;
			len = zl;
			status |= 0x10000;
		}
		cache_put(lab, key->p, body, len, status);
	}
	pthread_rwlock_unlock(&lab->inv_lock);
	if (status & 0x20000)
		ctype = "application/xml";
	r->status = status & 0xffff;
	r->gzip = (status & 0x10000) != 0;
	r->body = body;
	r->len = len;
	r->ctype = ctype;
	lab_reply_hdr(r, "OData-Version", "4.0");
	atomic_fetch_add(&lab->st.site_bytes_sent, (long long)r->len);
}

struct page_arg {
	int cls;
	const char *host;
};

static void fill_page(struct lab *lab, const struct lab_req *q, const void *arg, struct lab_reply *tmp)
{
	const struct page_arg *pa = arg;
	char err[512];
	struct lab_odata_query qq;
	if (lab_odata_parse(lab, q, pa->cls, &qq, err, sizeof err) < 0)
		lab_odata_error(tmp, 400, "", err);
	else
		build_page(lab, &qq, pa->host, tmp);
	lab_odata_query_free(&qq);
}

static void fill_metadata(struct lab *lab, const struct lab_req *q, const void *arg, struct lab_reply *tmp)
{
	struct lab_buf b = {0};
	(void)q;
	(void)arg;
	lab_odata_metadata(lab, &b);
	lab_reply_json(tmp, 200, &b);
	tmp->ctype = "application/xml";
}

int lab_site_handle(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	char host[256], err[512];
	host_of(lab, q, host, sizeof host);
	const char *path = q->path;
	if (strncmp(path, "/AdminService", 13) || (path[13] && path[13] != '/')) {
		atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
		lab_odata_error(r, 404, "NotFound", "No HTTP resource was found that matches the request URI.");
		return 0;
	}
	if (lab_site_auth(lab, q, r) < 0)      /* [site] auth other than basic, mutual TLS (auth_site.c) */
		return 0;
	if (!strcmp(lab->conf.site_auth, "basic") && !basic_ok(lab, q)) {
		lab_odata_error(r, 401, "Unauthorized", "Authorization has been denied for this request.");
		lab_reply_hdr(r, "WWW-Authenticate", "Basic realm=\"AdminService\"");
		return 0;
	}
	const char *rest = path + 13;
	bool is_get = !strcmp(q->method, "GET");
	if (lab_policies_site(lab, q, host, rest, r))     /* the v1.0 route: CmbridgePolicy (policystore.c) */
		return 0;
	if (!strcmp(rest, "/wmi") || !strcmp(rest, "/wmi/") || !strcmp(rest, "/wmi/$metadata")) {
		if (!is_get) {
			lab_odata_error(r, 405, "MethodNotAllowed", "The service document and $metadata are read with GET.");
			lab_reply_hdr(r, "Allow", "GET");
			return 0;
		}
		if (rest[5] == '$') {
			atomic_fetch_add(&lab->routes[R_SITE_METADATA], 1);
			struct lab_buf key = {0};
			lab_buf_adds(&key, "$metadata");
			cached(lab, q, &key, r, fill_metadata, NULL);
			lab_buf_free(&key);
		} else {
			atomic_fetch_add(&lab->routes[R_SITE_SERVICE], 1);
			struct lab_buf b = {0};
			lab_odata_service(lab, host, &b);
			lab_reply_json(r, 200, &b);
			r->ctype = "application/json; odata.metadata=minimal";
		}
		return 0;
	}
	/* /wmi/{Class} or /wmi/{Class}.{Method} */
	const char *seg = strncmp(rest, "/wmi/", 5) ? NULL : rest + 5;
	const char *dot = seg ? strchr(seg, '.') : NULL;
	size_t cn = seg ? (dot ? (size_t)(dot - seg) : strlen(seg)) : 0;
	int cls = seg && !strchr(seg, '/') ? lab_odata_find_class(lab, seg, cn) : -1;
	if (cls >= 0 && lab_actions_site(lab, q, host, cls, dot ? dot + 1 : NULL, r))
		return 0;   /* the operation classes and the methods (actions.c) */
	if (cls < 0 || dot || cls >= LAB_NCLASS) {
		int pad = seg && !dot ? lab_odata_padding_class(lab, seg, cn) : 0;
		if (pad && is_get) {
			atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
			empty_page(lab, q, host, seg, cn, r);
			return 0;
		}
		atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
		snprintf(err, sizeof err, "Resource not found for the segment '%s'.", seg ? seg : rest);
		lab_odata_error(r, 404, "NotFound", err);
		return 0;
	}
	if (!is_get) {
		lab_odata_error(r, 405, "MethodNotAllowed", "The lab's AdminService is read-only: use GET.");
		lab_reply_hdr(r, "Allow", "GET");
		return 0;
	}
	atomic_fetch_add(&lab->routes[R_SITE_CLASS0 + cls], 1);
	atomic_fetch_add(&lab->st.site_page_requests, 1);

	/* cache key: class, host, sorted query arguments */
	const char **kv = lab_xmalloc(((size_t)q->nargs + 1) * sizeof *kv);
	for (int i = 0; i < q->nargs; i++)
		kv[i] = lab_xasprintf("%s=%s", q->args[i].k, q->args[i].v ? q->args[i].v : "");
	qsort(kv, (size_t)q->nargs, sizeof *kv, cmp_arg);
	struct lab_buf key = {0};
	lab_buf_addf(&key, "%d|%s", cls, host);
	for (int i = 0; i < q->nargs; i++) {
		lab_buf_addc(&key, '\x01');
		lab_buf_adds(&key, kv[i]);
		free((char *)kv[i]);
	}
	free(kv);
	struct page_arg pa = {cls, host};
	cached(lab, q, &key, r, fill_page, &pa);
	lab_buf_free(&key);
	return 0;
}

/* ---- mutation --------------------------------------------------------- */

static void add_ids(struct lab_buf *b, const char *name, const int64_t *ids, size_t n)
{
	lab_buf_addf(b, ",\"%s\":[", name);
	for (size_t i = 0; i < n; i++)
		lab_buf_addf(b, "%s%lld", i ? "," : "", (long long)ids[i]);
	lab_buf_addc(b, ']');
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

void lab_site_recount(struct lab *lab)
{
	lab_coll_count(&lab->inv, lab->conf.seed, lab->coll_count, NULL);
}

/* A device that --unjoin can act on: joined, and not co-managed (which
 * requires a join). */
static bool unjoinable(const struct lab_device *d)
{
	return d->aad_device_id[0] && !d->mdm;
}

enum { M_CHANGE, M_DELETE, M_CHECKIN, M_HEALTH, M_DUP, M_UNJOIN, M_N };

int lab_site_mutate(struct lab *lab, const struct lab_mutation *m, struct lab_buf *out, char *err, size_t errlen)
{
	int rc = -1;
	int want[M_N] = {m->change, m->del, m->checkin, m->health, m->duplicate, m->unjoin};
	static const char *const opt[M_N] = {"--change", "--delete", "--checkin", "--health", "--duplicate", "--unjoin"};
	for (int k = 0; k < M_N; k++)
		if (want[k] < 0 || want[k] > 1000000) {
			snprintf(err, errlen, "%s: counts must be between 0 and 1000000", opt[k]);
			return -1;
		}
	if (m->add < 0 || m->add > 1000000) {
		snprintf(err, errlen, "--add: counts must be between 0 and 1000000");
		return -1;
	}
	pthread_rwlock_wrlock(&lab->inv_lock);
	struct lab_inventory *inv = &lab->inv;
	size_t *plain = lab_xmalloc((inv->n + 1) * sizeof *plain);
	size_t np = 0;
	for (size_t i = 0; i < inv->n; i++)
		if (lab_dev_plain(&inv->dev[i]))
			plain[np++] = i;
	size_t *pick[M_N];
	int64_t *ids[M_N];
	for (int k = 0; k < M_N; k++) {
		pick[k] = lab_xmalloc(((size_t)want[k] + 1) * sizeof **pick);
		ids[k] = lab_xmalloc(((size_t)want[k] + 1) * sizeof **ids);
	}
	int64_t *added = lab_xmalloc(((size_t)m->add + 1) * sizeof *added);
	int64_t *twins = lab_xmalloc(((size_t)m->duplicate + 1) * sizeof *twins);
	struct lab_device *tw = lab_xcalloc((size_t)m->duplicate + 1, sizeof *tw);
	long long need = 0;
	for (int k = 0; k < M_UNJOIN; k++)
		need += want[k];
	if ((size_t)need > np) {
		snprintf(err, errlen, "not enough plain devices: --change, --delete, --checkin, --health and --duplicate "
			 "need %lld distinct ones, the site has %zu", need, np);
		goto done;
	}
	uint64_t mno = inv->mutations + 1;
	struct lab_prng r = {lab->conf.seed * 0x9e3779b97f4a7c15ULL ^ (mno * 0xd1b54a32d192ed03ULL)};
	/* A lazily extended Fisher-Yates shuffle of the plain devices: each
	 * option takes the next ones in turn (--unjoin skips devices it cannot
	 * act on), so with only --change and --delete the choice is the one
	 * earlier versions of the lab made. */
	size_t shuffled = 0, pos = 0;
	for (int k = 0; k < M_N; k++)
		for (int j = 0; j < want[k]; j++) {
			bool found = false;
			while (pos < np) {
				if (pos == shuffled) {
					size_t x = pos + lab_prng_below(&r, (uint32_t)(np - pos)), t = plain[pos];
					plain[pos] = plain[x];
					plain[x] = t;
					shuffled++;
				}
				size_t cand = plain[pos++];
				if (k == M_UNJOIN && !unjoinable(&inv->dev[cand]))
					continue;
				pick[k][j] = cand;
				found = true;
				break;
			}
			if (!found) {
				snprintf(err, errlen, "not enough plain devices that are joined and not co-managed for --unjoin %d "
					 "(found %d)", want[M_UNJOIN], j);
				goto done;
			}
		}
	long before[LAB_NCOLL], after[LAB_NCOLL];
	uint64_t dig0[LAB_NCOLL], dig1[LAB_NCOLL];
	lab_coll_count(inv, lab->conf.seed, before, dig0);
	for (int k = 0; k < M_N; k++)
		for (int j = 0; j < want[k]; j++) {
			struct lab_device *d = &inv->dev[pick[k][j]];
			ids[k][j] = d->resource_id;
			switch (k) {
			case M_CHANGE:
				d->build_rev++;
				d->client_ver = 0;
				break;
			case M_CHECKIN:
				d->last_policy += 300;
				d->last_active += 300;
				break;
			case M_HEALTH:
				d->active = 0;
				d->active_status = 0;
				d->last_active += 300;
				break;
			case M_UNJOIN:
				d->aad_device_id[0] = 0;
				d->hybrid = d->aadj = false;
				break;
			default:
				break;
			}
		}
	/* twins in ResourceID order of their originals */
	qsort(pick[M_DUP], (size_t)want[M_DUP], sizeof *pick[M_DUP], cmp_size);
	for (int j = 0; j < want[M_DUP]; j++) {
		struct lab_device *d = &inv->dev[pick[M_DUP][j]];
		ids[M_DUP][j] = d->resource_id;
		d->dup = true;
		lab_dev_twin(&tw[j], d, &r, 0, lab->conf.epoch);
	}
	bool *gone = lab_xcalloc(inv->n + 1, sizeof *gone);
	for (int j = 0; j < want[M_DELETE]; j++)
		gone[pick[M_DELETE][j]] = true;
	size_t w = 0;
	for (size_t i = 0; i < inv->n; i++) {
		if (gone[i]) {
			free(inv->dev[i].name);
			continue;
		}
		inv->dev[w++] = inv->dev[i];
	}
	inv->n = w;
	free(gone);
	int64_t next = 16777220;
	for (size_t i = 0; i < inv->n; i++)
		if (inv->dev[i].resource_id >= next)
			next = inv->dev[i].resource_id + 1;
	/* deleted ids are never reused either */
	for (int j = 0; j < want[M_DELETE]; j++)
		if (ids[M_DELETE][j] >= next)
			next = ids[M_DELETE][j] + 1;
	size_t grow = (size_t)m->add + (size_t)m->duplicate;
	if (inv->n + grow > inv->cap) {
		inv->cap = inv->n + grow + 1024;
		inv->dev = lab_xrealloc(inv->dev, inv->cap * sizeof *inv->dev);
	}
	for (int i = 0; i < m->add; i++) {
		lab_dev_new_plain(&inv->dev[inv->n], &r, next, lab->conf.epoch);
		added[i] = next++;
		inv->n++;
	}
	for (int j = 0; j < m->duplicate; j++) {
		tw[j].resource_id = next;
		twins[j] = next++;
		inv->dev[inv->n++] = tw[j];
	}
	free(tw);
	tw = NULL;
	lab_coll_count(inv, lab->conf.seed, after, dig1);
	for (int ci = 0; ci < LAB_NCOLL; ci++)
		if (dig0[ci] != dig1[ci] || before[ci] != after[ci])
			inv->coll_mchange[ci] = lab->conf.epoch + 60 * (int64_t)mno;
	memcpy(lab->coll_count, after, sizeof after);
	inv->mutations = mno;
	pthread_mutex_lock(&lab->db_lock);
	int src = lab_inv_save(inv, lab->db);
	pthread_mutex_unlock(&lab->db_lock);
	lab_site_cache_clear(lab);
	if (src < 0) {
		snprintf(err, errlen, "lab.db: cannot save the inventory: %s", sqlite3_errmsg(lab->db));
		goto done;
	}
	for (int k = 0; k < M_N; k++)
		if (k != M_DUP)
			qsort(ids[k], (size_t)want[k], sizeof *ids[k], cmp_i64);
	lab_buf_addf(out, "{\"mutation\":%llu,\"siteDevices\":%zu", (unsigned long long)mno, inv->n);
	add_ids(out, "changed", ids[M_CHANGE], (size_t)want[M_CHANGE]);
	add_ids(out, "added", added, (size_t)m->add);
	add_ids(out, "deleted", ids[M_DELETE], (size_t)want[M_DELETE]);
	add_ids(out, "checkedIn", ids[M_CHECKIN], (size_t)want[M_CHECKIN]);
	add_ids(out, "health", ids[M_HEALTH], (size_t)want[M_HEALTH]);
	add_ids(out, "unjoined", ids[M_UNJOIN], (size_t)want[M_UNJOIN]);
	add_ids(out, "duplicated", ids[M_DUP], (size_t)want[M_DUP]);
	add_ids(out, "twins", twins, (size_t)m->duplicate);
	lab_buf_addc(out, '}');
	lab_log("mutate %llu: changed %d, added %d, deleted %d, checked in %d, health %d, unjoined %d, duplicated %d; "
		"site has %zu devices", (unsigned long long)mno, m->change, m->add, m->del, m->checkin, m->health,
		m->unjoin, m->duplicate, inv->n);
	rc = 0;
done:
	pthread_rwlock_unlock(&lab->inv_lock);
	if (tw) {
		for (int j = 0; j < m->duplicate; j++)
			free(tw[j].name);
		free(tw);
	}
	free(plain);
	for (int k = 0; k < M_N; k++) {
		free(pick[k]);
		free(ids[k]);
	}
	free(added);
	free(twins);
	return rc;
}
