/*
 * site.c - the ConfigMgr AdminService stand-in (docs/wire-format.md §1):
 * GET /AdminService/wmi/{Class} with $select, $filter, $orderby, $top,
 * $skip, $count and server-driven paging, Basic auth, OData errors, gzip.
 * Pages are built once and cached (class + query + host + encoding) until
 * a mutation clears the cache, so measurements show the client's cost.
 */
#include "lab.h"
#include "auth.h"
#include "actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

enum jt { J_NUM, J_STR, J_BOOL, J_DATE };

enum col {
	C_RID, C_NAME, C_SMSUID, C_HWID, C_SMBIOS, C_AADDEV, C_AADTEN, C_OSNAME, C_BUILD, C_BUILDEXT,
	C_DOMAIN, C_CLIENT, C_OBSOLETE, C_DECOM, C_ACTIVE, C_NETBIOS, C_RESTYPE,
	C_SITECODE, C_SMSID, C_ISCLIENT, C_ISACTIVE, C_ISBLOCKED, C_ISOBSOLETE, C_ISDECOM,
	C_CLIENTVER, C_ACTSTATUS, C_CHECKPASS, C_LASTPOLICY, C_LASTACTIVE, C_DEVICEOS, C_DEVICEOSBUILD,
	C_DOMAIN2,
	C_MDM, C_POLICY, C_HYBRID, C_AADJ, C_WORKLOADS,
	C_MFR, C_MODEL, C_SERIAL,
	C_COLLID, C_COLLNAME, C_COMMENT, C_COLLTYPE, C_MEMBERCOUNT, C_LIMITTO, C_LASTCHANGE, C_LASTMCHANGE,
	C_SITENAME, C_REPORTING, C_VERSION,
};

struct coldef {
	const char *name;
	enum col id;
	enum jt t;
};

static const struct coldef cols_sys[] = {
	{"ResourceID", C_RID, J_NUM}, {"Name", C_NAME, J_STR}, {"NetbiosName", C_NETBIOS, J_STR},
	{"ResourceType", C_RESTYPE, J_NUM}, {"SMSUniqueIdentifier", C_SMSUID, J_STR},
	{"HardwareID", C_HWID, J_STR}, {"SMBIOSGUID", C_SMBIOS, J_STR}, {"AADDeviceID", C_AADDEV, J_STR},
	{"AADTenantID", C_AADTEN, J_STR}, {"OperatingSystemNameandVersion", C_OSNAME, J_STR},
	{"Build", C_BUILD, J_STR}, {"BuildExt", C_BUILDEXT, J_STR},
	{"ResourceDomainORWorkgroup", C_DOMAIN, J_STR}, {"Client", C_CLIENT, J_NUM},
	{"Obsolete", C_OBSOLETE, J_NUM}, {"Decommissioned", C_DECOM, J_NUM}, {"Active", C_ACTIVE, J_NUM},
	{NULL, 0, 0}};
static const struct coldef cols_cdr[] = {
	{"ResourceID", C_RID, J_NUM}, {"Name", C_NAME, J_STR}, {"SiteCode", C_SITECODE, J_STR},
	{"SMSID", C_SMSID, J_STR}, {"Domain", C_DOMAIN2, J_STR}, {"IsClient", C_ISCLIENT, J_BOOL},
	{"IsActive", C_ISACTIVE, J_BOOL}, {"IsBlocked", C_ISBLOCKED, J_BOOL},
	{"IsObsolete", C_ISOBSOLETE, J_BOOL}, {"IsDecommissioned", C_ISDECOM, J_BOOL},
	{"ClientVersion", C_CLIENTVER, J_STR}, {"ClientActiveStatus", C_ACTSTATUS, J_NUM},
	{"ClientCheckPass", C_CHECKPASS, J_NUM}, {"LastPolicyRequest", C_LASTPOLICY, J_DATE},
	{"LastActiveTime", C_LASTACTIVE, J_DATE}, {"DeviceOS", C_DEVICEOS, J_STR},
	{"DeviceOSBuild", C_DEVICEOSBUILD, J_STR}, {NULL, 0, 0}};
static const struct coldef cols_cms[] = {
	{"ResourceID", C_RID, J_NUM}, {"MDMEnrolled", C_MDM, J_BOOL},
	{"ComgmtPolicyPresent", C_POLICY, J_BOOL}, {"HybridAADJoined", C_HYBRID, J_BOOL},
	{"AADJoined", C_AADJ, J_BOOL}, {"ComgmtWorkloads", C_WORKLOADS, J_NUM}, {NULL, 0, 0}};
static const struct coldef cols_cs[] = {
	{"ResourceID", C_RID, J_NUM}, {"Name", C_NAME, J_STR}, {"Manufacturer", C_MFR, J_STR},
	{"Model", C_MODEL, J_STR}, {NULL, 0, 0}};
static const struct coldef cols_bios[] = {
	{"ResourceID", C_RID, J_NUM}, {"SerialNumber", C_SERIAL, J_STR}, {NULL, 0, 0}};

static const struct coldef cols_fcm[] = {
	{"CollectionID", C_COLLID, J_STR}, {"ResourceID", C_RID, J_NUM}, {"Name", C_NAME, J_STR},
	{"IsClient", C_ISCLIENT, J_BOOL}, {"SiteCode", C_SITECODE, J_STR}, {NULL, 0, 0}};
static const struct coldef cols_coll[] = {
	{"CollectionID", C_COLLID, J_STR}, {"Name", C_COLLNAME, J_STR}, {"Comment", C_COMMENT, J_STR},
	{"CollectionType", C_COLLTYPE, J_NUM}, {"MemberCount", C_MEMBERCOUNT, J_NUM},
	{"LimitToCollectionID", C_LIMITTO, J_STR}, {"LastChangeTime", C_LASTCHANGE, J_DATE},
	{"LastMemberChangeTime", C_LASTMCHANGE, J_DATE}, {NULL, 0, 0}};
static const struct coldef cols_site[] = {
	{"SiteCode", C_SITECODE, J_STR}, {"SiteName", C_SITENAME, J_STR},
	{"ReportingSiteCode", C_REPORTING, J_STR}, {"Version", C_VERSION, J_STR}, {NULL, 0, 0}};

/* Row kinds: a device (the five device classes), a (collection, device)
 * membership, a collection, a site. */
enum kind { K_DEV, K_MEMBER, K_COLL, K_SITE };

static const struct {
	const char *name;
	const struct coldef *cols;
	enum kind kind;
	const char *key1, *key2;     /* $metadata keys */
} classes[LAB_NCLASS] = {
	{"SMS_R_System", cols_sys, K_DEV, "ResourceID", NULL},
	{"SMS_CombinedDeviceResources", cols_cdr, K_DEV, "ResourceID", NULL},
	{"SMS_Client_ComanagementState", cols_cms, K_DEV, "ResourceID", NULL},
	{"SMS_G_System_COMPUTER_SYSTEM", cols_cs, K_DEV, "ResourceID", NULL},
	{"SMS_G_System_PC_BIOS", cols_bios, K_DEV, "ResourceID", NULL},
	{"SMS_FullCollectionMembership", cols_fcm, K_MEMBER, "CollectionID", "ResourceID"},
	{"SMS_Collection", cols_coll, K_COLL, "CollectionID", NULL},
	{"SMS_Site", cols_site, K_SITE, "SiteCode", NULL},
};

/* The hierarchy: a central administration site and the lab's primary. */
static const char *const site_names[2] = {"Contoso Hierarchy", "Contoso Primary Site"};
#define SITE_VERSION "5.00.9128.1000"

struct row {
	const struct lab_device *d;  /* K_DEV, K_MEMBER */
	int sub;                     /* collection or site index */
};

static bool has_row(int cls, const struct lab_device *d)
{
	switch (cls) {
	case 0: case 1: return true;
	case 2: return d->client == 1;
	default: return d->has_hw && d->client == 1;
	}
}

struct val {
	enum { V_NULL, V_NUM, V_BOOL, V_STR } t;
	int64_t i;
	const char *s;
	size_t n;
	char tmp[64];
};

static void vstr(struct val *v, const char *s)
{
	if (!s || !*s) {
		v->t = V_NULL;
		return;
	}
	v->t = V_STR;
	v->s = s;
	v->n = strlen(s);
}

static void vtmp(struct val *v)
{
	v->t = V_STR;
	v->s = v->tmp;
	v->n = strlen(v->tmp);
}

static void vnum(struct val *v, int64_t i)
{
	v->t = i < 0 ? V_NULL : V_NUM;
	v->i = i;
}

static void vbool(struct val *v, bool b)
{
	v->t = V_BOOL;
	v->i = b;
}

static void vstr_e(struct val *v, const char *s)
{
	v->t = V_STR;
	v->s = s;
	v->n = strlen(s);
}

static void get(const struct lab *lab, const struct row *rw, enum col c, struct val *v)
{
	static const struct lab_device none = {.client = -1};
	const struct lab_device *d = rw->d ? rw->d : &none;
	const struct lab_coll_def *cd = &lab_colls[rw->sub % LAB_NCOLL];
	bool cl = d->client == 1;
	memset(v, 0, sizeof *v);
	switch (c) {
	case C_COLLID: vstr(v, cd->id); break;
	case C_COLLNAME: vstr(v, cd->name); break;
	case C_COMMENT: vstr_e(v, cd->comment); break;
	case C_COLLTYPE: vnum(v, cd->type); break;
	case C_MEMBERCOUNT: vnum(v, lab->coll_count[rw->sub % LAB_NCOLL]); break;
	case C_LIMITTO:
		vstr_e(v, !strcmp(cd->id, "SMS00001") || !strcmp(cd->id, "SMS00002") ? ""
			  : cd->type == 1 ? "SMS00002" : "SMS00001");
		break;
	case C_LASTCHANGE: case C_LASTMCHANGE:
		lab_iso8601(c == C_LASTCHANGE ? lab_coll_last_change(rw->sub, lab->conf.epoch)
					      : lab->inv.coll_mchange[rw->sub % LAB_NCOLL], v->tmp);
		vtmp(v);
		break;
	case C_SITENAME: vstr(v, site_names[rw->sub & 1]); break;
	case C_REPORTING: vstr_e(v, rw->sub == 1 ? "CAS" : ""); break;
	case C_VERSION: vstr(v, SITE_VERSION); break;
	case C_RID: vnum(v, d->resource_id); break;
	case C_NAME: case C_NETBIOS: v->t = V_STR; v->s = d->name; v->n = d->name_len; break;
	case C_RESTYPE: vnum(v, 5); break;
	case C_SMSUID: case C_SMSID: vstr(v, d->sms_uid); break;
	case C_HWID: vstr(v, d->hardware_id); break;
	case C_SMBIOS: vstr(v, d->smbios_guid); break;
	case C_AADDEV: vstr(v, d->aad_device_id); break;
	case C_AADTEN: vstr(v, d->aad_device_id[0] ? lab->conf.tenant_id : NULL); break;
	case C_OSNAME: case C_DEVICEOS: vstr(v, lab_os_ntname(d->os)); break;
	case C_BUILD: vstr(v, lab_os_build(d->os)); break;
	case C_BUILDEXT: case C_DEVICEOSBUILD:
		snprintf(v->tmp, sizeof v->tmp, "%s.%d", lab_os_build(d->os), d->build_rev);
		vtmp(v);
		break;
	case C_DOMAIN: case C_DOMAIN2: vstr(v, d->domain); break;
	case C_CLIENT: vnum(v, d->client); break;
	case C_OBSOLETE: vnum(v, d->obsolete); break;
	case C_DECOM: vnum(v, d->decommissioned); break;
	case C_ACTIVE: vnum(v, d->active); break;
	case C_SITECODE: vstr(v, rw->d || rw->sub == 1 ? lab->conf.site_code : "CAS"); break;
	case C_ISCLIENT: vbool(v, cl); break;
	case C_ISACTIVE: vbool(v, d->active == 1); break;
	case C_ISBLOCKED: vbool(v, d->blocked); break;
	case C_ISOBSOLETE: vbool(v, d->obsolete == 1); break;
	case C_ISDECOM: vbool(v, d->decommissioned == 1); break;
	case C_CLIENTVER: vstr(v, cl ? lab_client_version(d->client_ver) : NULL); break;
	case C_ACTSTATUS: vnum(v, cl ? d->active_status : -1); break;
	case C_CHECKPASS: vnum(v, cl ? d->check_pass : -1); break;
	case C_LASTPOLICY: case C_LASTACTIVE:
		if (!cl)
			break;
		lab_iso8601(c == C_LASTPOLICY ? d->last_policy : d->last_active, v->tmp);
		vtmp(v);
		break;
	case C_MDM: vbool(v, d->mdm); break;
	case C_POLICY: vbool(v, d->comgmt_policy); break;
	case C_HYBRID: vbool(v, d->hybrid); break;
	case C_AADJ: vbool(v, d->aadj); break;
	case C_WORKLOADS: vnum(v, d->workloads); break;
	case C_MFR: vstr(v, lab_model_manufacturer(d->model)); break;
	case C_MODEL: vstr(v, lab_model_name(d->model)); break;
	case C_SERIAL: vstr(v, d->serial); break;
	}
}

static void emit(struct lab_buf *b, const struct val *v)
{
	switch (v->t) {
	case V_NULL: lab_buf_adds(b, "null"); break;
	case V_NUM: lab_buf_addf(b, "%lld", (long long)v->i); break;
	case V_BOOL: lab_buf_adds(b, v->i ? "true" : "false"); break;
	case V_STR: lab_buf_json_str(b, v->s, v->n); break;
	}
}

static int cmpval(const struct val *a, const struct val *b)
{
	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	if (a->t == V_STR) {
		size_t n = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->s, b->s, n);
		return c ? c : a->n < b->n ? -1 : a->n > b->n;
	}
	if (a->t == V_NULL)
		return 0;
	return a->i < b->i ? -1 : a->i > b->i;
}

static const struct coldef *find_col(int cls, const char *name, size_t n)
{
	for (const struct coldef *c = classes[cls].cols; c->name; c++)
		if (strlen(c->name) == n && !memcmp(c->name, name, n))
			return c;
	return NULL;
}

/* ---- query ------------------------------------------------------------ */

enum op { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE };

struct cond {
	const struct coldef *col;
	enum op op;
	struct val lit;
	char *str;
};

struct query {
	int cls;
	const struct coldef *sel[64];
	int nsel;
	struct cond cond[16];
	int ncond;
	const struct coldef *order;
	bool desc;
	long long top, skip;   /* -1 = absent */
	bool count;
	const char *token;
	const char *sel_raw, *filter_raw, *order_raw;
};

static void query_free(struct query *q)
{
	for (int i = 0; i < q->ncond; i++)
		free(q->cond[i].str);
}

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

static int parse_filter(struct query *q, const char *f, char *err, size_t en)
{
	const char *p = skip_ws(f);
	for (;;) {
		const char *s = p;
		while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
			p++;
		if (p == s)
			return bad(err, en, "Syntax error in $filter at position %d: expected a property name",
				   (int)(s - f));
		if (q->ncond == 16)
			return bad(err, en, "$filter has too many conditions");
		struct cond *c = &q->cond[q->ncond];
		memset(c, 0, sizeof *c);
		c->col = find_col(q->cls, s, (size_t)(p - s));
		if (!c->col)
			return bad(err, en, "Could not find a property named '%.*s' on type '%s' ($filter).",
				   (int)(p - s), s, classes[q->cls].name);
		p = skip_ws(p);
		static const char *const ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
		int op = -1;
		for (int i = 0; i < 6; i++)
			if (!strncmp(p, ops[i], 2) && p[2] == ' ')
				op = i;
		if (op < 0)
			return bad(err, en, "Syntax error in $filter at position %d: expected eq, ne, gt, ge, lt or le",
				   (int)(p - f));
		c->op = (enum op)op;
		p = skip_ws(p + 2);
		if (*p == '\'') {
			struct lab_buf b = {0};
			p++;
			for (;;) {
				if (!*p) {
					lab_buf_free(&b);
					return bad(err, en, "Syntax error in $filter: unterminated string literal");
				}
				if (*p == '\'' && p[1] == '\'') { lab_buf_addc(&b, '\''); p += 2; continue; }
				if (*p == '\'') { p++; break; }
				lab_buf_addc(&b, *p++);
			}
			c->str = lab_buf_steal(&b, &c->lit.n);
			c->lit.t = V_STR;
			c->lit.s = c->str;
			if (c->col->t != J_STR && c->col->t != J_DATE)
				return bad(err, en, "$filter: a string literal is not comparable with '%s'", c->col->name);
		} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
			vbool(&c->lit, *p == 't');
			p += *p == 't' ? 4 : 5;
			if (c->col->t != J_BOOL)
				return bad(err, en, "$filter: a boolean literal is not comparable with '%s'", c->col->name);
		} else if (!strncmp(p, "null", 4)) {
			c->lit.t = V_NULL;
			p += 4;
		} else if ((*p >= '0' && *p <= '9') || *p == '-') {
			char *e;
			c->lit.t = V_NUM;
			c->lit.i = strtoll(p, &e, 10);
			p = e;
			if (c->col->t != J_NUM)
				return bad(err, en, "$filter: a number literal is not comparable with '%s'", c->col->name);
		} else {
			return bad(err, en, "Syntax error in $filter at position %d: expected a literal", (int)(p - f));
		}
		q->ncond++;
		p = skip_ws(p);
		if (!*p)
			return 0;
		if (strncmp(p, "and ", 4))
			return bad(err, en, "Syntax error in $filter at position %d: expected 'and' or the end",
				   (int)(p - f));
		p = skip_ws(p + 4);
	}
}

static long long parse_nonneg(const char *s)
{
	if (!s || !*s)
		return -2;
	long long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1000000000LL)
			return -2;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static int parse_query(const struct lab_req *rq, struct query *q, char *err, size_t en)
{
	q->top = q->skip = -1;
	for (int i = 0; i < rq->nargs; i++) {
		const char *k = rq->args[i].k;
		if (k[0] != '$')
			continue;
		if (strcmp(k, "$select") && strcmp(k, "$filter") && strcmp(k, "$orderby") && strcmp(k, "$top") &&
		    strcmp(k, "$skip") && strcmp(k, "$count") && strcmp(k, "$skiptoken"))
			return bad(err, en, "The query parameter '%s' is not supported.", k);
	}
	const char *s = lab_req_arg(rq, "$select");
	q->sel_raw = s;
	if (s && strcmp(s, "*")) {
		const char *p = s;
		for (;;) {
			p = skip_ws(p);
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			while (n && p[n - 1] == ' ')
				n--;
			const struct coldef *c = find_col(q->cls, p, n);
			if (!c)
				return bad(err, en, "Could not find a property named '%.*s' on type '%s' ($select).",
					   (int)n, p, classes[q->cls].name);
			if (q->nsel < 64)
				q->sel[q->nsel++] = c;
			if (!e)
				break;
			p = e + 1;
		}
	} else {
		for (const struct coldef *c = classes[q->cls].cols; c->name; c++)
			q->sel[q->nsel++] = c;
	}
	const char *f = lab_req_arg(rq, "$filter");
	q->filter_raw = f;
	if (f && parse_filter(q, f, err, en) < 0)
		return -1;
	const char *o = lab_req_arg(rq, "$orderby");
	q->order_raw = o;
	if (o) {
		const char *p = skip_ws(o);
		const char *e = p;
		while (*e && *e != ' ')
			e++;
		q->order = find_col(q->cls, p, (size_t)(e - p));
		if (!q->order)
			return bad(err, en, "Could not find a property named '%.*s' on type '%s' ($orderby).",
				   (int)(e - p), p, classes[q->cls].name);
		e = skip_ws(e);
		if (!strcmp(e, "desc"))
			q->desc = true;
		else if (*e && strcmp(e, "asc"))
			return bad(err, en, "Syntax error in $orderby: '%s' (one property, asc or desc)", o);
	}
	const char *t = lab_req_arg(rq, "$top");
	if (t && (q->top = parse_nonneg(t)) < 0)
		return bad(err, en, "Invalid value '%s' for $top: a non-negative integer is required.", t);
	t = lab_req_arg(rq, "$skip");
	if (t && (q->skip = parse_nonneg(t)) < 0)
		return bad(err, en, "Invalid value '%s' for $skip: a non-negative integer is required.", t);
	t = lab_req_arg(rq, "$count");
	if (t) {
		if (!strcmp(t, "true")) q->count = true;
		else if (strcmp(t, "false"))
			return bad(err, en, "Invalid value '%s' for $count: true or false.", t);
	}
	q->token = lab_req_arg(rq, "$skiptoken");
	return 0;
}

static bool match(const struct lab *lab, const struct query *q, const struct row *d)
{
	for (int i = 0; i < q->ncond; i++) {
		struct val v;
		get(lab, d, q->cond[i].col->id, &v);
		const struct val *l = &q->cond[i].lit;
		int c;
		if (v.t == V_NULL || l->t == V_NULL) {
			bool eq = v.t == l->t;
			if (q->cond[i].op == OP_EQ ? !eq : q->cond[i].op == OP_NE ? eq : true)
				return false;
			continue;
		}
		c = cmpval(&v, l);
		bool ok;
		switch (q->cond[i].op) {
		case OP_EQ: ok = c == 0; break;
		case OP_NE: ok = c != 0; break;
		case OP_GT: ok = c > 0; break;
		case OP_GE: ok = c >= 0; break;
		case OP_LT: ok = c < 0; break;
		default: ok = c <= 0; break;
		}
		if (!ok)
			return false;
	}
	return true;
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

/* qsort has no context argument: the sort runs under the cache lock. */
static const struct lab *sort_lab;
static const struct query *sort_q;

static int cmp_rows(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	int c = 0;
	if (sort_q->order && sort_q->order->id != C_RID) {
		struct val va, vb;
		get(sort_lab, a, sort_q->order->id, &va);
		get(sort_lab, b, sort_q->order->id, &vb);
		c = cmpval(&va, &vb);
	}
	if (!c)
		c = cmp_key(a, b);
	return sort_q->desc ? -c : c;
}

/* ---- page cache ------------------------------------------------------- */

struct centry {
	char *key;
	char *body; size_t len;
	int status;
	struct centry *next;
};

#define CACHE_BUCKETS 1024
#define CACHE_MAX 4096

struct lab_page_cache {
	pthread_mutex_t lock;
	struct centry *b[CACHE_BUCKETS];
	size_t n;
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

static void odata_error(struct lab_reply *r, int status, const char *code, const char *msg)
{
	struct lab_buf b = {0};
	lab_buf_adds(&b, "{\"error\":{\"code\":");
	lab_buf_json_cstr(&b, code);
	lab_buf_adds(&b, ",\"message\":");
	lab_buf_json_cstr(&b, msg);
	lab_buf_adds(&b, "}}");
	lab_reply_json(r, status, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

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

static void add_param(struct lab_buf *b, bool *first, const char *k, const char *v)
{
	lab_buf_addc(b, *first ? '?' : '&');
	*first = false;
	lab_buf_adds(b, k);
	lab_buf_addc(b, '=');
	lab_buf_urlenc(b, v);
}

static void build_page(struct lab *lab, const struct lab_req *rq, struct query *q, const char *host,
		       struct lab_reply *r)
{
	char err[512];
	const char *cname = classes[q->cls].name;
	/* rows, in key order */
	enum kind kind = classes[q->cls].kind;
	size_t cap = kind == K_MEMBER ? lab->inv.n * LAB_NCOLL + 1 : kind == K_DEV ? lab->inv.n + 1 : LAB_NCOLL;
	struct row *rows = lab_xmalloc(cap * sizeof *rows);
	size_t n = 0;
	if (kind == K_DEV || kind == K_MEMBER) {
		for (size_t i = 0; i < lab->inv.n; i++) {
			const struct lab_device *d = &lab->inv.dev[i];
			for (int ci = 0; ci < (kind == K_MEMBER ? LAB_NCOLL : 1); ci++) {
				struct row rw = {d, ci};
				if (kind == K_DEV ? !has_row(q->cls, d) : !lab_coll_member(ci, d, lab->conf.seed))
					continue;
				if (match(lab, q, &rw))
					rows[n++] = rw;
			}
		}
	} else {
		for (int i = 0; i < (kind == K_COLL ? LAB_NCOLL : 2); i++) {
			struct row rw = {NULL, i};
			if (match(lab, q, &rw))
				rows[n++] = rw;
		}
	}
	if (q->order && (q->order->id != C_RID || q->desc)) {
		sort_lab = lab;
		sort_q = q;
		qsort(rows, n, sizeof *rows, cmp_rows);
	}
	/* Key continuation when ordered by ResourceID (device and membership
	 * classes); offset tokens otherwise. */
	bool by_rid = (kind == K_DEV || kind == K_MEMBER) && (!q->order || q->order->id == C_RID);
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
			odata_error(r, 400, "BadRequest", err);
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
	size_t limit = (size_t)lab->conf.page_size;
	if (q->top >= 0 && (size_t)q->top < limit)
		limit = (size_t)q->top;
	size_t end = start + limit < n ? start + limit : n;

	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata#%s\"", host, cname);
	if (q->count)
		lab_buf_addf(&b, ",\"@odata.count\":%zu", n);
	lab_buf_adds(&b, ",\"value\":[");
	for (size_t i = start; i < end; i++) {
		if (i > start)
			lab_buf_addc(&b, ',');
		lab_buf_addc(&b, '{');
		for (int c = 0; c < q->nsel; c++) {
			struct val v;
			get(lab, &rows[i], q->sel[c]->id, &v);
			if (c)
				lab_buf_addc(&b, ',');
			lab_buf_addc(&b, '"');
			lab_buf_adds(&b, q->sel[c]->name);
			lab_buf_adds(&b, "\":");
			emit(&b, &v);
		}
		lab_buf_addc(&b, '}');
	}
	lab_buf_addc(&b, ']');
	bool more = end < n && (q->top < 0 || (long long)(end - start) < q->top);
	if (more) {
		lab_buf_adds(&b, ",\"@odata.nextLink\":");
		struct lab_buf l = {0};
		if (!lab->conf.nextlink_relative)
			lab_buf_addf(&l, "https://%s/AdminService/wmi/", host);
		lab_buf_adds(&l, cname);
		bool first = true;
		if (q->sel_raw)
			add_param(&l, &first, "$select", q->sel_raw);
		if (q->filter_raw)
			add_param(&l, &first, "$filter", q->filter_raw);
		if (q->order_raw)
			add_param(&l, &first, "$orderby", q->order_raw);
		if (q->count)
			add_param(&l, &first, "$count", "true");
		char tmp[64];
		if (q->top >= 0) {
			snprintf(tmp, sizeof tmp, "%lld", q->top - (long long)(end - start));
			add_param(&l, &first, "$top", tmp);
		}
		if (by_rid && kind == K_MEMBER)
			snprintf(tmp, sizeof tmp, "R%lld.%d", (long long)rid_of(&rows[end - 1]), rows[end - 1].sub);
		else if (by_rid)
			snprintf(tmp, sizeof tmp, "R%lld", (long long)rid_of(&rows[end - 1]));
		else
			snprintf(tmp, sizeof tmp, "O%zu", end);
		add_param(&l, &first, "$skiptoken", tmp);
		lab_buf_json_str(&b, l.p, l.len);
		lab_buf_free(&l);
	}
	lab_buf_addc(&b, '}');
	free(rows);
	(void)rq;
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
}

static void service_doc(struct lab *lab, const char *host, struct lab_reply *r)
{
	struct lab_buf b = {0};
	lab_buf_addf(&b, "{\"@odata.context\":\"https://%s/AdminService/wmi/$metadata\",\"value\":[", host);
	for (int i = 0; i < LAB_NCLASS; i++)
		lab_buf_addf(&b, "%s{\"name\":\"%s\",\"kind\":\"EntitySet\",\"url\":\"%s\"}", i ? "," : "",
			     classes[i].name, classes[i].name);
	lab_buf_adds(&b, "]}");
	lab_reply_json(r, 200, &b);
	r->ctype = "application/json; odata.metadata=minimal";
	(void)lab;
}

static void metadata_doc(struct lab_reply *r)
{
	static const char *const edm[] = {"Edm.Int64", "Edm.String", "Edm.Boolean", "Edm.DateTimeOffset"};
	struct lab_buf b = {0};
	lab_buf_adds(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			 "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
			 "<edmx:DataServices><Schema Namespace=\"AdminService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">");
	for (int i = 0; i < LAB_NCLASS; i++) {
		lab_buf_addf(&b, "<EntityType Name=\"%s\"><Key><PropertyRef Name=\"%s\"/>", classes[i].name,
			     classes[i].key1);
		if (classes[i].key2)
			lab_buf_addf(&b, "<PropertyRef Name=\"%s\"/>", classes[i].key2);
		lab_buf_adds(&b, "</Key>");
		for (const struct coldef *c = classes[i].cols; c->name; c++) {
			bool key = !strcmp(c->name, classes[i].key1) || (classes[i].key2 && !strcmp(c->name, classes[i].key2));
			lab_buf_addf(&b, "<Property Name=\"%s\" Type=\"%s\"%s/>", c->name, edm[c->t],
				     key ? " Nullable=\"false\"" : "");
		}
		lab_buf_adds(&b, "</EntityType>");
	}
	lab_buf_adds(&b, "<EntityContainer Name=\"Container\">");
	for (int i = 0; i < LAB_NCLASS; i++)
		lab_buf_addf(&b, "<EntitySet Name=\"%s\" EntityType=\"AdminService.%s\"/>", classes[i].name,
			     classes[i].name);
	lab_buf_adds(&b, "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
	lab_reply_json(r, 200, &b);
	r->ctype = "application/xml";
}

static int cmp_arg(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	return strcmp(*x, *y);
}

int lab_site_handle(struct lab *lab, const struct lab_req *q, struct lab_reply *r)
{
	char host[256], err[512];
	host_of(lab, q, host, sizeof host);
	const char *path = q->path;
	if (strncmp(path, "/AdminService", 13) || (path[13] && path[13] != '/')) {
		atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
		odata_error(r, 404, "NotFound", "No HTTP resource was found that matches the request URI.");
		return 0;
	}
	if (lab_site_auth(lab, q, r) < 0)      /* [site] auth other than basic, mutual TLS (auth_site.c) */
		return 0;
	if (!strcmp(lab->conf.site_auth, "basic") && !basic_ok(lab, q)) {
		odata_error(r, 401, "Unauthorized", "Authorization has been denied for this request.");
		lab_reply_hdr(r, "WWW-Authenticate", "Basic realm=\"AdminService\"");
		return 0;
	}
	if (lab_actions_site(lab, q, host, r))     /* client operations, BlockClients (actions.c) */
		return 0;
	if (strcmp(q->method, "GET")) {
		odata_error(r, 405, "MethodNotAllowed", "The lab's AdminService is read-only: use GET.");
		lab_reply_hdr(r, "Allow", "GET");
		return 0;
	}
	const char *rest = path + 13;
	if (!strcmp(rest, "/wmi") || !strcmp(rest, "/wmi/")) {
		atomic_fetch_add(&lab->routes[R_SITE_SERVICE], 1);
		service_doc(lab, host, r);
		return 0;
	}
	if (!strcmp(rest, "/wmi/$metadata")) {
		atomic_fetch_add(&lab->routes[R_SITE_METADATA], 1);
		metadata_doc(r);
		return 0;
	}
	int cls = -1;
	if (!strncmp(rest, "/wmi/", 5))
		for (int i = 0; i < LAB_NCLASS; i++)
			if (!strcmp(rest + 5, classes[i].name))
				cls = i;
	if (cls < 0) {
		atomic_fetch_add(&lab->routes[R_OTHER_SITE], 1);
		snprintf(err, sizeof err, "Resource not found for the segment '%s'.",
			 strncmp(rest, "/wmi/", 5) ? rest : rest + 5);
		odata_error(r, 404, "NotFound", err);
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

	const char *ae = q->header(q->hctx, "Accept-Encoding");
	bool gz = ae && strstr(ae, "gzip");
	if (gz)
		lab_buf_adds(&key, "\x02gzip");

	/* The cached status carries 0x10000 when the body is gzip-encoded. */
	pthread_rwlock_rdlock(&lab->inv_lock);
	size_t len;
	int status;
	char *body = cache_get(lab, key.p, &len, &status);
	if (!body) {
		struct query qq;
		memset(&qq, 0, sizeof qq);
		qq.cls = cls;
		struct lab_reply tmp = {0};
		if (parse_query(q, &qq, err, sizeof err) < 0) {
			odata_error(&tmp, 400, "BadRequest", err);
		} else {
			static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
			pthread_mutex_lock(&sort_lock);  /* sort_lab and sort_q are shared */
			build_page(lab, q, &qq, host, &tmp);
			pthread_mutex_unlock(&sort_lock);
		}
		query_free(&qq);
		for (int i = 0; i < tmp.nhdr; i++) {
			free(tmp.hdr_name[i]);
			free(tmp.hdr_val[i]);
		}
		body = tmp.body;
		len = tmp.len;
		status = tmp.status;
		char *z;
		size_t zl;
		if (gz && len > 256 && lab_gzip(body, len, &z, &zl) == 0) {
			free(body);
			body = z;
			len = zl;
			status |= 0x10000;
		}
		cache_put(lab, key.p, body, len, status);
	}
	pthread_rwlock_unlock(&lab->inv_lock);
	lab_buf_free(&key);

	r->status = status & 0xffff;
	r->gzip = (status & 0x10000) != 0;
	r->body = body;
	r->len = len;
	r->ctype = "application/json; odata.metadata=minimal";
	lab_reply_hdr(r, "OData-Version", "4.0");
	atomic_fetch_add(&lab->st.site_bytes_sent, (long long)r->len);
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
