/*
 * lab.h - shared declarations of cmbridge-lab, the stand-in for a
 * ConfigMgr site (AdminService) and a cloud tenant (Entra ID token
 * endpoint, connector gateway, Graph admin surface).
 *
 * The lab must never include or link code from connector/, adapters/ or
 * mapping/: a lab that reuses the connector's code can only agree with it.
 */
#ifndef CMB_LAB_H
#define CMB_LAB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sqlite3.h>
#include <openssl/x509.h>
#include <yajl/yajl_tree.h>

#define LAB_NAME "cmbridge-lab"
/* The application roles the connector's registration was granted, as the token's roles claim carries them. */
#define LAB_TOKEN_ROLES "DeviceManagementManagedDevices.ReadWrite.All,DeviceManagementConfiguration.Read.All"

/* ---- util.c ---------------------------------------------------------- */

/* Allocation never fails: out of memory aborts (one place). */
void *lab_xmalloc(size_t n);
void *lab_xcalloc(size_t n, size_t m);
void *lab_xrealloc(void *p, size_t n);
char *lab_xstrdup(const char *s);
char *lab_xstrndup(const char *s, size_t n);
/* Returns a malloc'd string the caller frees. */
char *lab_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable byte buffer; p is always NUL-terminated. */
struct lab_buf {
	char *p;
	size_t len, cap;
};
void lab_buf_add(struct lab_buf *b, const void *data, size_t n);
void lab_buf_adds(struct lab_buf *b, const char *s);
void lab_buf_addc(struct lab_buf *b, char c);
void lab_buf_addf(struct lab_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal; bytes >= 0x80 are copied as they are (even when
 * they are not valid UTF-8: the site serves misencoded names verbatim). */
void lab_buf_json_str(struct lab_buf *b, const char *s, size_t n);
void lab_buf_json_cstr(struct lab_buf *b, const char *s);
/* Serialises a yajl tree value (numbers keep their original spelling). */
void lab_buf_json_val(struct lab_buf *b, yajl_val v);
void lab_buf_free(struct lab_buf *b);
/* Hands the bytes to the caller (who frees them) and resets b. */
char *lab_buf_steal(struct lab_buf *b, size_t *len);

/* Random bytes from OpenSSL; aborts when none are available. */
void lab_random(void *out, size_t n);
/* Random v4 GUID, lower case, 36 chars + NUL. */
void lab_guid(char out[37]);
/* Deterministic generator (splitmix64) for the inventory. */
struct lab_prng {
	uint64_t s;
};
uint64_t lab_prng_next(struct lab_prng *r);
uint32_t lab_prng_below(struct lab_prng *r, uint32_t n);
/* GUID from the deterministic generator. */
void lab_prng_guid(struct lab_prng *r, char out[37]);

/* Files. write creates or replaces atomically with the given mode. */
int lab_write_file(const char *path, const void *data, size_t n, int mode);
/* Returns a malloc'd NUL-terminated copy of the file, or NULL (errno set). */
char *lab_read_file(const char *path, size_t *len);
bool lab_utf8_valid(const char *s, size_t n);
char *lab_b64url(const unsigned char *data, size_t n);
/* Decodes base64url (or base64); returns malloc'd bytes or NULL. */
unsigned char *lab_b64url_decode(const char *s, size_t n, size_t *outlen);
unsigned char *lab_b64_decode(const char *s, size_t n, size_t *outlen);
void lab_iso8601(int64_t t, char out[32]);
/* Percent-encodes for a URL query value. */
void lab_buf_urlenc(struct lab_buf *b, const char *s);
/* Decodes application/x-www-form-urlencoded in place. */
void lab_urldecode(char *s);

/* Logging to the lab log (stderr until lab_log_open). */
void lab_log_open(const char *path);
void lab_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Free loopback port: binds 127.0.0.1:port (0 = any), returns the
 * listening socket and the port, or -1. */
int lab_listen(int port, int *bound_port);

/* ---- conf.c ---------------------------------------------------------- */

struct lab_conf {
	char *dir;               /* absolute */
	char tenant_id[37];
	char client_id[37];
	char site_code[8];
	char username[128];
	int site_port, tenant_port;
	int page_size;
	bool nextlink_relative;
	int token_lifetime;
	long clock_offset;                    /* [tenant] clock_offset: the tenant's clock runs this many seconds ahead */
	uint64_t seed;
	int devices;
	int64_t epoch;           /* inventory times are before this */
	/* site and tenant authentication (auth_*.c, docs/lab.md "Authentication") */
	char site_auth[16];      /* none, basic (default), ntlm, negotiate, bearer */
	char keytab[512];        /* [site] keytab: negotiate acceptor keytab ("" = KRB5_KTNAME) */
	char bearer_audience[256]; /* [site] bearer_audience */
	char client_ca[256];     /* [site] client_ca: mutual TLS when set (file in DIR) */
	char tenant_cert[256];   /* [tenant] certificate: the registered client certificate */
	char token_roles[512];   /* [tenant] roles: the application roles the connector's tokens carry, comma-separated */
	/* remote actions (actions.c, docs/lab.md "Remote actions") */
	char admin_client_id[37];  /* [tenant] admin_client_id: the admin app registration */
	double act_success_rate, act_offline_rate; /* [actions] success_rate, offline_rate */
	int act_delay_ms, act_ttl;               /* [actions] delay_ms, ttl (seconds) */
	bool act_list_targets;                   /* [actions] list_targets: TargetResourceIDs in listings */
	/* how strict and in which form the AdminService answers (odata.c, docs/lab.md) */
	bool site_old;               /* [site] version = old: an older site (fewer classes and properties) */
	bool client_paging;          /* [site] paging = client: no @odata.nextLink, $skip windows */
	bool values_alternate;       /* [site] values = alternate: DMTF dates, 0/1 booleans, string bitmasks */
	bool block_reply_empty;      /* [site] block_reply = empty: BlockClients answers without ReturnValue */
	int metadata_padding;        /* [site] metadata_padding: generated EntityTypes in $metadata */
	/* endpoint security policies (policies.c, policystore.c, docs/lab.md "Endpoint security policies") */
	double pol_compliant_rate, pol_error_rate, pol_conflict_rate, pol_not_applicable_rate; /* [policies] */
	int pol_report_delay_ms;     /* [policies] report_delay_ms: until a document's targets report */
	int pol_max_document;        /* [policies] max_document: bytes of one policy document */
};
int lab_conf_load(struct lab_conf *c, const char *dir);
int lab_conf_save(const struct lab_conf *c);
int lab_conf_write_cmbridge(const struct lab_conf *c);
void lab_conf_free(struct lab_conf *c);
/* Returns malloc'd DIR/name. */
char *lab_path(const struct lab_conf *c, const char *name);

/* ---- pki.c ----------------------------------------------------------- */

int lab_pki_create(const char *dir);
/* Adds one X.509v3 extension in OpenSSL's config syntax ("critical,CA:FALSE"); 0 or -1. */
int lab_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);
struct evp_pkey_st;
/* JWT RS256 with the lab key; returns malloc'd token. */
char *lab_jwt_sign(struct evp_pkey_st *key, const char *kid, const char *payload_json);
/* 0 when signature valid; *payload gets the parsed claims (caller frees). */
int lab_jwt_verify(struct evp_pkey_st *key, const char *tok, yajl_val *payload, const char **why);
struct evp_pkey_st *lab_pki_load_key(const char *path);
char *lab_pki_kid(struct evp_pkey_st *key);

/* ---- schema.c -------------------------------------------------------- */

struct lab_schema;
struct lab_schema *lab_schema_load(const char *path, char *err, size_t errlen);
void lab_schema_free(struct lab_schema *s);
bool lab_schema_has_type(const struct lab_schema *s, const char *name);
/* Called once per error: path is the property path ("hardwareInformation.model"). */
typedef void (*lab_schema_err_fn)(void *ctx, const char *path, const char *msg);
/* Validates a JSON object against an entity or complex type; returns the
 * number of errors reported through fn. allow_id: accept "id". */
int lab_schema_validate(const struct lab_schema *s, const char *type, yajl_val v,
			lab_schema_err_fn fn, void *ctx);

/* ---- inventory.c ----------------------------------------------------- */

struct lab_device {
	int64_t resource_id;
	char *name; size_t name_len;          /* may hold invalid UTF-8 */
	char sms_uid[48];                     /* GUID:... */
	char hardware_id[64];
	char smbios_guid[40];
	char aad_device_id[37];               /* "" = null */
	char domain[32];
	int os;                               /* index in the OS table */
	int build_rev;
	int client;                           /* 1, 0, or -1 = null */
	int obsolete, decommissioned, active;
	bool blocked;
	int client_ver;                       /* index */
	int active_status, check_pass;
	int64_t last_policy, last_active;
	bool mdm, comgmt_policy, hybrid, aadj;
	int workloads;
	bool has_hw;
	int model;
	char serial[64];
	bool dup;                             /* one of a duplicate-hardware pair */
};

/* Collections of the site (SMS_Collection), sorted by CollectionID. */
#define LAB_NCOLL 10
struct lab_coll_def {
	const char *id, *name, *comment;
	int type;                             /* 2 device, 1 user */
	int age_days;                         /* LastChangeTime = epoch - age (+ fixed hour) */
};
extern const struct lab_coll_def lab_colls[LAB_NCOLL];
bool lab_coll_member(int ci, const struct lab_device *d, uint64_t seed);
int64_t lab_coll_last_change(int ci, int64_t epoch);

struct lab_inventory {
	struct lab_device *dev;
	size_t n, cap;
	uint64_t mutations;
	int64_t coll_mchange[LAB_NCOLL];      /* LastMemberChangeTime; kept in meta */
};
void lab_inv_generate(struct lab_inventory *inv, const struct lab_conf *c);
int lab_inv_save(struct lab_inventory *inv, sqlite3 *db);
int lab_inv_load(struct lab_inventory *inv, sqlite3 *db);
void lab_inv_free(struct lab_inventory *inv);
bool lab_dev_plain(const struct lab_device *d);
void lab_dev_new_plain(struct lab_device *d, struct lab_prng *r, int64_t rid, int64_t epoch);
/* A reimaged twin of old: same name, HardwareID, SMBIOSGUID and hardware,
 * a new SMSUniqueIdentifier, active, times 10 minutes after old's. */
void lab_dev_twin(struct lab_device *twin, const struct lab_device *old, struct lab_prng *r, int64_t rid,
		  int64_t epoch);
/* Member counts and a digest of each collection's member set. */
void lab_coll_count(const struct lab_inventory *inv, uint64_t seed, long counts[LAB_NCOLL],
		    uint64_t digest[LAB_NCOLL]);
void lab_coll_init_times(struct lab_inventory *inv, int64_t epoch);
int lab_db_schema(sqlite3 *db);
/* OS table: build string pieces. */
const char *lab_os_build(int os);           /* "10.0.19045" */
const char *lab_os_ntname(int os);          /* OperatingSystemNameandVersion */
const char *lab_os_device_os(int os);       /* DeviceOS */
const char *lab_client_version(int i);
const char *lab_model_manufacturer(int i);
const char *lab_model_name(int i);

/* ---- odata.c: the AdminService's classes and its OData query options -- */

struct lab;
struct lab_req;
struct lab_reply;

/* Every class the lab's AdminService serves. The first LAB_NCLASS are read
 * by site.c (their order is that of the R_SITE_CLASS0 routes), the rest by
 * actions.c. */
enum lab_cls {
	LAB_CLS_SYSTEM, LAB_CLS_CDR, LAB_CLS_COMGMT, LAB_CLS_CS, LAB_CLS_BIOS, LAB_CLS_FCM, LAB_CLS_COLL,
	LAB_CLS_SITE, LAB_CLS_OP, LAB_CLS_OPSTATUS, LAB_CLS_CNSTATUS, LAB_NCLS
};

/* Column ids: what a property shows, whatever it is called on its class. */
enum lab_col {
	LAB_C_RID, LAB_C_NAME, LAB_C_NETBIOS, LAB_C_RESTYPE, LAB_C_SMSUID, LAB_C_HWID, LAB_C_SMBIOS,
	LAB_C_AADDEV, LAB_C_AADTEN, LAB_C_OSNAME, LAB_C_BUILD, LAB_C_BUILDEXT, LAB_C_DOMAIN, LAB_C_CLIENT,
	LAB_C_OBSOLETE, LAB_C_DECOM, LAB_C_ACTIVE,
	LAB_C_SITECODE, LAB_C_SMSID, LAB_C_ISCLIENT, LAB_C_ISACTIVE, LAB_C_ISBLOCKED, LAB_C_ISOBSOLETE,
	LAB_C_CLIENTVER, LAB_C_ACTSTATUS, LAB_C_CHECKPASS, LAB_C_LASTPOLICY, LAB_C_LASTACTIVE, LAB_C_DEVICEOS,
	LAB_C_DEVICEOSBUILD,
	LAB_C_MACHINEID, LAB_C_MDM, LAB_C_POLICY, LAB_C_HYBRID, LAB_C_AADJ, LAB_C_AUTHORITY, LAB_C_WORKLOADS,
	LAB_C_GROUPID, LAB_C_REVISION, LAB_C_HWTIME, LAB_C_MFR, LAB_C_MODEL, LAB_C_SERIAL,
	LAB_C_COLLID, LAB_C_COLLNAME, LAB_C_COMMENT, LAB_C_COLLTYPE, LAB_C_MEMBERCOUNT, LAB_C_LIMITTO,
	LAB_C_LASTCHANGE, LAB_C_LASTMCHANGE,
	LAB_C_SITENAME, LAB_C_REPORTING, LAB_C_VERSION,
	LAB_C_OPID, LAB_C_OPTYPE, LAB_C_OPCOLL, LAB_C_OPCOLLNAME, LAB_C_CREATEDBY, LAB_C_PRIMARYACTION,
	LAB_C_REQUESTED, LAB_C_SOURCESITE, LAB_C_OPSTATE, LAB_C_TARGETS, LAB_C_TARGETTYPE,
	LAB_C_TOTAL, LAB_C_COMPLETED, LAB_C_FAILED, LAB_C_OFFLINE, LAB_C_UNKNOWN, LAB_C_EXPIRED,
	LAB_C_CHANNEL, LAB_C_LASTSTATUS, LAB_C_ONLINE, LAB_C_SERVERID
};

/* EDM types; a WMI UInt32 is an Edm.Int64 (ASP.NET OData maps uint so). */
enum lab_edm { LAB_EDM_STRING, LAB_EDM_INT32, LAB_EDM_INT64, LAB_EDM_BOOL, LAB_EDM_DATE };

#define LAB_P_KEY 0x1      /* a key property (Nullable="false") */
#define LAB_P_ARRAY 0x2    /* Collection(type) */
#define LAB_P_NEW 0x4      /* not on an old site ([site] version = old) */
#define LAB_P_MASK64 0x8   /* a 64-bit bitmask: a numeric string with values = alternate */
#define LAB_P_FLAGS 0x10   /* a flags enumeration (a comma list of members): 'has' applies (Graph sets) */

struct lab_odata_prop {
	const char *name;        /* exactly as the JSON spells it; URLs compare it case-sensitively */
	enum lab_col col;
	enum lab_edm edm;
	unsigned flags;
	const char *source;      /* where the name comes from (docs/lab.md lists them) */
};

struct lab_odata_class {
	const char *name;
	const struct lab_odata_prop *props;   /* ends with name NULL */
	bool is_new;                          /* not on an old site */
	const char *source;
};
extern const struct lab_odata_class lab_odata_classes[LAB_NCLS];

/* A value of a row. V_ABSENT: the property is left out of the row. Dates are
 * Unix seconds. s points into the row or tmp (never owned). */
struct lab_odata_val {
	enum { LAB_V_NULL, LAB_V_INT, LAB_V_BOOL, LAB_V_STR, LAB_V_DATE, LAB_V_JSON, LAB_V_ABSENT } t;
	int64_t i;
	const char *s;
	size_t n;
	char tmp[64];
};
void lab_odata_vstr(struct lab_odata_val *v, const char *s);   /* "" and NULL are null */
void lab_odata_vint(struct lab_odata_val *v, int64_t i);       /* < 0 is null */

enum lab_odata_op { LAB_OP_EQ, LAB_OP_NE, LAB_OP_GT, LAB_OP_GE, LAB_OP_LT, LAB_OP_LE, LAB_OP_HAS };
struct lab_odata_cond {
	const struct lab_odata_prop *p;
	enum lab_odata_op op;
	struct lab_odata_val lit;
	char *str;               /* malloc'd text of a string literal */
};

#define LAB_ODATA_MAXSEL 64
#define LAB_ODATA_MAXCOND 16
/* The query options of one request, checked against the class. */
struct lab_odata_query {
	int cls;
	const struct lab_odata_prop *sel[LAB_ODATA_MAXSEL];
	int nsel;
	struct lab_odata_cond cond[LAB_ODATA_MAXCOND];
	int ncond;
	const struct lab_odata_prop *order;   /* NULL: the class's natural order */
	bool desc;
	long long top, skip;                   /* -1 = absent */
	bool count;
	const char *token;                     /* $skiptoken as sent, or NULL */
	const char *sel_raw, *filter_raw, *order_raw;
};

/* The class named by a URL segment (case-insensitive from release 2006, so
 * not on an old site), or -1 when the lab has none by that name or the
 * configured site version lacks it. */
int lab_odata_find_class(const struct lab *lab, const char *name, size_t n);
/* A property of a class by its exact (case-sensitive) name, or NULL when
 * the class lacks it on the configured site version. */
const struct lab_odata_prop *lab_odata_find_prop(const struct lab *lab, int cls, const char *name, size_t n);
/* Parses $select, $filter, $orderby, $top, $skip, $count and $skiptoken.
 * 0, or -1 with err holding the message of ASP.NET OData's 400 reply.
 * lab_odata_query_free frees the literals (also after a failure). */
int lab_odata_parse(const struct lab *lab, const struct lab_req *rq, int cls, struct lab_odata_query *q,
		    char *err, size_t errlen);
void lab_odata_query_free(struct lab_odata_query *q);
/* The same $filter grammar over another service's entity (the tenant's
 * Graph sets): properties from props (ends with name NULL; names may be
 * paths such as templateReference/templateFamily), messages prefixed with
 * prefix and naming type; adds 'has' for LAB_P_FLAGS properties. q gets
 * the conditions (cls -1); 0, or -1 with err. lab_odata_query_free after. */
int lab_odata_parse_filter(const struct lab *lab, const struct lab_odata_prop *props, const char *type,
			   const char *prefix, const char *f, struct lab_odata_query *q, char *err, size_t errlen);
/* The value of property p of row (callback of the class's owner). */
typedef void (*lab_odata_get_fn)(void *ctx, const void *row, const struct lab_odata_prop *p,
				 struct lab_odata_val *v);
bool lab_odata_match(const struct lab_odata_query *q, lab_odata_get_fn get, void *ctx, const void *row);
int lab_odata_cmp(const struct lab_odata_val *a, const struct lab_odata_val *b);
/* The integer a "Column eq N" condition pins (conditions are and-ed, so a
 * read of that column's value alone: one operation, one device). */
bool lab_odata_pinned(const struct lab_odata_query *q, enum lab_col col, int64_t *v);
/* Rows a page may hold: the page size, or $top when smaller. */
size_t lab_odata_limit(const struct lab *lab, const struct lab_odata_query *q);
/* Appends one row object in the configured value forms ([site] values). */
void lab_odata_row(const struct lab *lab, struct lab_buf *b, const struct lab_odata_query *q,
		   lab_odata_get_fn get, void *ctx, const void *row);
/* Appends ,"@odata.nextLink":"..." repeating the query with $skiptoken token
 * and the rest of $top after `served` rows. */
void lab_odata_next_link(const struct lab *lab, struct lab_buf *b, const struct lab_odata_query *q,
			 const char *host, size_t served, const char *token);
/* One page of an entity set: @odata.context, @odata.count (count) when
 * asked, rows [start, end) of the array rows (size bytes each, read through
 * get), and a nextLink carrying token unless it is NULL. */
void lab_odata_page(const struct lab *lab, struct lab_reply *r, const struct lab_odata_query *q, const char *host,
		    lab_odata_get_fn get, void *ctx, const void *rows, size_t size, size_t start, size_t end,
		    size_t count, const char *token);
/* {"error":{"code":code,"message":msg}} with the OData content type. */
void lab_odata_error(struct lab_reply *r, int status, const char *code, const char *msg);
/* The CSDL of every class served (and [site] metadata_padding generated
 * ones); the service document. */
void lab_odata_metadata(const struct lab *lab, struct lab_buf *b);
void lab_odata_service(const struct lab *lab, const char *host, struct lab_buf *b);
/* The class table as a Markdown table (`cmbridge-lab classes`, docs/lab.md). */
void lab_odata_markdown(struct lab_buf *b);
/* A generated padding class ("SMS_G_System_X0001"...): its number, or 0. */
int lab_odata_padding_class(const struct lab *lab, const char *name, size_t n);

/* ---- server state (server.c) ---------------------------------------- */

struct lab_stats {
	atomic_llong tenant_upload_requests, records_received, records_created,
		records_updated, records_rejected, removals_received, removals_applied,
		batches_replayed, tokens_issued, token_errors, auth_failures, bytes_received;
	atomic_llong site_page_requests, site_bytes_sent;
	atomic_llong writes, collection_upload_requests, collection_records_received;
	atomic_llong injected500, injected503, injected429, resets, truncated, replies_lost, retry_after_violations;
	atomic_llong requests[2];             /* per side, faultable requests received */
	atomic_llong assertions_accepted, assertions_rejected; /* auth_assertion.c */
};

/* Fault injection (per side: 0 site, 1 tenant) and the request log. */
enum lab_side { LAB_SITE, LAB_TENANT };
enum lab_fault { F_NONE, F_RESET, F_500, F_429, F_TRUNCATE, F_REPLY_LOST, F_503 };
struct lab_fault_conf {
	double r500, r429, reset, truncate, reply_lost, r503;
	double retry_after;                   /* seconds */
	bool no_retry_after;
	int latency_ms;
	uint64_t seed;
	int short_class;                      /* site: a device class that answers at most short_rows rows (-1: none) */
	long short_rows;
	long lose_reply_at;                   /* the K-th faultable request of the side loses its reply (0: none) */
};
#define LAB_RATE_RING 65536
struct lab_faults {
	pthread_mutex_t lock;
	struct lab_fault_conf conf[2];
	struct lab_prng prng[2];
	int64_t wait_until_ms[2];             /* from the last 429 with Retry-After */
	int64_t ring[2][LAB_RATE_RING];       /* arrival times (ms) within the last second */
	size_t head[2], count[2];
	long max_rps[2];
	long drawn[2];                        /* faultable requests since the side's settings were set */
	int log_fd;                           /* DIR/requests.log */
};
int64_t lab_now_ms(void);
/* The tenant's clock: now plus [tenant] clock_offset of the lab that is up (its tokens, actions, errors). */
int64_t lab_tenant_time(void);
extern long lab_clock_offset;

#define LAB_NCLASS 8
enum lab_route {
	R_SITE_SERVICE, R_SITE_METADATA, R_SITE_CLASS0, /* + class index */
	R_TOKEN = R_SITE_CLASS0 + LAB_NCLASS, R_GATEWAY, R_GRAPH_LIST, R_GRAPH_ONE,
	R_LAB_STATS, R_LAB_MUTATE, R_OTHER_SITE, R_OTHER_TENANT,
	R_COLL_POST, R_GRAPH_COLL_LIST, R_GRAPH_COLL_ONE, R_LAB_FAULTS,
	R_ACT_FIRST, R_ACT_LAST = R_ACT_FIRST + 11,   /* actions.c: twelve routes */
	R_POL_FIRST, R_POL_LAST = R_POL_FIRST + 17,   /* policies.c, policystore.c: eighteen routes */
	R_COUNT
};
extern const char *const lab_route_names[R_COUNT];

struct lab_page_cache;

struct lab {
	struct lab_conf conf;
	char lab_key[65];
	char site_password[129];
	char client_secret[129];
	struct evp_pkey_st *jwt_key;
	char *jwt_kid;
	struct lab_schema *schema;
	sqlite3 *db;
	pthread_mutex_t db_lock;           /* the db connection */
	pthread_rwlock_t inv_lock;         /* inventory and page cache */
	struct lab_inventory inv;
	struct lab_page_cache *cache;
	struct lab_stats st;
	atomic_llong routes[R_COUNT];
	long coll_count[LAB_NCOLL];          /* MemberCount; under inv_lock */
	struct lab_faults faults;
	struct lab_auth *auth;             /* auth_*.c state (registered cert, jtis, GSS) */
	char admin_secret[129];            /* actions.c: DIR/admin-secret */
	struct lab_actions *actions;       /* actions.c state (long polls, counters) */
	struct lab_policies *policies;     /* policies.c, policystore.c counters */
};

/* A complete response built by a handler. */
struct lab_reply {
	int status;
	char *body; size_t len;            /* malloc'd */
	const char *ctype;
	char *hdr_name[4], *hdr_val[4];   /* malloc'd */
	int nhdr;
	bool gzip;                          /* body is gzip-encoded */
	int64_t park_until_ms;              /* actions.c: hold the request (long poll) */
	uint64_t park_gen;
};
void lab_reply_json(struct lab_reply *r, int status, struct lab_buf *b);
void lab_reply_hdr(struct lab_reply *r, const char *name, const char *val);
void lab_reply_graph_error(struct lab_reply *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A request as the handlers see it. */
struct lab_req {
	const char *method;
	const char *path;                  /* decoded, without query */
	struct { char *k, *v; } *args;     /* decoded query arguments */
	int nargs;
	const char *(*header)(void *ctx, const char *name);
	void *hctx;
	const char *body; size_t body_len;
	const char *host;                  /* Host header */
	void *conn;                        /* the MHD_Connection, for auth_*.c only */
	int64_t parked_until_ms;           /* actions.c: a held long poll, run again */
};
const char *lab_req_arg(const struct lab_req *q, const char *k);

int lab_site_handle(struct lab *lab, const struct lab_req *q, struct lab_reply *r);

/* tenant.c: the Graph and gateway mechanisms other tenant modules reuse
 * (policies.c): the Host to build absolute links from; $select names
 * checked against a schema type; a gateway POST body (gzip or identity,
 * parsed; -1 with r holding the 400/413); the gateway's batch memory
 * (replay: caller holds db_lock, 1 with r holding the stored reply marked
 * "replayed":true; remember: inside the caller's transaction). */
#define LAB_GRAPH_MAXSEL 128
struct lab_graph_sel {
	char *names[LAB_GRAPH_MAXSEL];
	int n;
};
void lab_graph_host(const struct lab *lab, const struct lab_req *q, char *out, size_t n);
int lab_graph_select(struct lab *lab, const char *type, const char *s, struct lab_graph_sel *sel, struct lab_reply *r);
void lab_graph_select_free(struct lab_graph_sel *sel);
int lab_gateway_body(struct lab *lab, const struct lab_req *q, yajl_val *root, struct lab_reply *r);
int lab_gateway_replay(struct lab *lab, const char *bkey, const char *bid, struct lab_reply *r);
int lab_gateway_remember(struct lab *lab, const char *bkey, const char *members);
int lab_tenant_handle(struct lab *lab, const struct lab_req *q, struct lab_reply *r);
void lab_site_cache_init(struct lab *lab);
void lab_site_cache_clear(struct lab *lab);
void lab_site_cache_free(struct lab *lab);
/* Mutation: builds the reply JSON into out. Caller holds no locks. */
struct lab_mutation {
	int change, add, del, checkin, health, unjoin, duplicate;
};
int lab_site_mutate(struct lab *lab, const struct lab_mutation *m, struct lab_buf *out, char *err, size_t errlen);
/* Recounts MemberCount (caller holds inv_lock for writing, or is alone). */
void lab_site_recount(struct lab *lab);
/* Admin: sets the fault configuration from a JSON body; reply in out. */
int lab_faults_set(struct lab *lab, yajl_val v, struct lab_buf *out, char *err, size_t errlen);
void lab_faults_json(struct lab *lab, struct lab_buf *out);
int lab_faults_init(struct lab *lab, const char *log_path);
void lab_faults_free(struct lab *lab);
/* Records an arrival on a side (rate window, Retry-After check); returns its time in ms. */
int64_t lab_faults_arrive(struct lab *lab, int side);
enum lab_fault lab_faults_draw(struct lab *lab, int side, bool get, bool upload, int *latency_ms,
			       double *retry_after, bool *send_retry_after);
/* A 429 asked the client to wait this long. */
void lab_faults_asked_wait(struct lab *lab, int side, double seconds);
/* The most rows the site class cls may answer (--class-rows), or -1 for no limit. */
long lab_faults_class_rows(struct lab *lab, int cls);
/* One line of DIR/requests.log. */
void lab_reqlog(struct lab *lab, int64_t t_ms, const char *side, const char *method, const char *path,
		const char *status, const char *fault);
int lab_gzip(const char *in, size_t n, char **out, size_t *outlen);

int lab_up(const char *dir, bool detach);

#endif
