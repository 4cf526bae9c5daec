/*
 * inventory.c - the synthetic ConfigMgr site inventory: generated
 * deterministically from the seed and the epoch recorded at init, kept in
 * lab.db (table site_device) and in memory while the lab is up.
 * Distribution: see docs/lab.md. Nothing here reads the wall clock.
 */
#include "lab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *build, *ntname; int rev_lo, rev_hi; bool server; } os_tab[] = {
	{"10.0.19045", "Microsoft Windows NT Workstation 10.0", 3803, 5011, false},
	{"10.0.22631", "Microsoft Windows NT Workstation 10.0", 2861, 4460, false},
	{"10.0.26100", "Microsoft Windows NT Workstation 10.0", 1742, 2605, false},
	{"10.0.17763", "Microsoft Windows NT Server 10.0", 5329, 6659, true},
	{"10.0.20348", "Microsoft Windows NT Server 10.0", 2159, 3091, true},
};
#define N_OS 5

static const char *const client_versions[] = {"5.00.9128.1000", "5.00.9122.1000", "5.00.9106.1000"};

static const struct { const char *mfr, *model, *serial_prefix; int serial_len; bool server; } models[] = {
	{"Dell Inc.", "Latitude 5440", "", 7, false},
	{"Dell Inc.", "OptiPlex 7010", "", 7, false},
	{"HP", "HP EliteBook 840 G9", "5CG", 7, false},
	{"HP", "HP ProBook 450 G10", "5CD", 7, false},
	{"LENOVO", "ThinkPad T14 Gen 3", "PF", 6, false},
	{"Microsoft Corporation", "Surface Laptop 5", "0F", 10, false},
	{"VMware, Inc.", "VMware Virtual Platform", "VMware-42 ", 12, true},
	{"Microsoft Corporation", "Virtual Machine", "", 20, true},
	{"Dell Inc.", "PowerEdge R750", "", 7, true},
};
#define N_MODELS 9

const char *lab_os_build(int os) { return os_tab[os % N_OS].build; }
const char *lab_os_ntname(int os) { return os_tab[os % N_OS].ntname; }
const char *lab_os_device_os(int os) { return os_tab[os % N_OS].ntname; }
const char *lab_client_version(int i) { return client_versions[i % 3]; }
const char *lab_model_manufacturer(int i) { return models[i % N_MODELS].mfr; }
const char *lab_model_name(int i) { return models[i % N_MODELS].model; }

static void upper_guid(struct lab_prng *r, char out[37])
{
	lab_prng_guid(r, out);
	for (char *p = out; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
}

static void set_name(struct lab_device *d, const char *s, size_t n)
{
	free(d->name);
	d->name = lab_xstrndup(s, n);
	d->name_len = n;
}

static void serial(struct lab_prng *r, struct lab_device *d)
{
	static const char alnum[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
	int m = d->model % N_MODELS;
	int n = snprintf(d->serial, sizeof d->serial, "%s", models[m].serial_prefix);
	for (int i = 0; i < models[m].serial_len && n < (int)sizeof d->serial - 1; i++)
		d->serial[n++] = m == 5 || m == 7 ? (char)('0' + lab_prng_below(r, 10)) : alnum[lab_prng_below(r, 34)];
	d->serial[n] = 0;
}

/* Identity and hardware of a fresh, healthy client. */
static void base_device(struct lab_device *d, struct lab_prng *r, int64_t rid, int64_t epoch,
			int os, size_t index)
{
	memset(d, 0, sizeof *d);
	d->resource_id = rid;
	d->os = os;
	d->build_rev = os_tab[os].rev_lo + (int)lab_prng_below(r, (uint32_t)(os_tab[os].rev_hi - os_tab[os].rev_lo));
	char g[37];
	upper_guid(r, g);
	snprintf(d->sms_uid, sizeof d->sms_uid, "GUID:%s", g);
	uint64_t h1 = lab_prng_next(r), h2 = lab_prng_next(r), h3 = lab_prng_next(r);
	snprintf(d->hardware_id, sizeof d->hardware_id, "2:%016llX%016llX%08llX",
		 (unsigned long long)h1, (unsigned long long)h2, (unsigned long long)(h3 >> 32));
	upper_guid(r, d->smbios_guid);
	snprintf(d->domain, sizeof d->domain, "CONTOSO");
	d->client = 1;
	d->active = 1;
	d->active_status = 1;
	d->check_pass = 1;
	uint32_t cv = lab_prng_below(r, 100);
	d->client_ver = cv < 70 ? 0 : cv < 90 ? 1 : 2;
	d->last_policy = epoch - (int64_t)lab_prng_below(r, 3 * 86400);
	d->last_active = d->last_policy - (int64_t)lab_prng_below(r, 4 * 3600);
	bool server = os_tab[os].server;
	uint32_t j = lab_prng_below(r, 100);
	if (server) {
		d->hybrid = j < 30;
	} else {
		d->hybrid = j < 60;
		d->aadj = j >= 60 && j < 75;
	}
	if (d->aadj)
		snprintf(d->domain, sizeof d->domain, "WORKGROUP");
	if (d->hybrid || d->aadj)
		lab_prng_guid(r, d->aad_device_id);
	if (!server && lab_prng_below(r, 100) < 45) {
		static const int bits[] = {1, 2, 4, 8, 16, 32, 64, 128};
		d->mdm = d->comgmt_policy = true;
		d->workloads = 1;
		for (int b = 1; b < 8; b++)
			if (lab_prng_below(r, 2))
				d->workloads |= bits[b];
		uint32_t x = lab_prng_below(r, 10);
		if (x == 0) d->workloads |= 4096;
		else if (x == 1) d->workloads |= 8192;
	} else {
		d->comgmt_policy = lab_prng_below(r, 10) == 0;
	}
	/* Co-management requires an Entra-joined or hybrid-joined device: a
	 * co-managed device drawn as not joined becomes hybrid-joined. Its
	 * AADDeviceID comes from its hardware id, so the main stream (and every
	 * other device) stays as it was. */
	if (d->mdm && !d->hybrid && !d->aadj) {
		struct lab_prng x = {h1 ^ h3};
		d->hybrid = true;
		lab_prng_guid(&x, d->aad_device_id);
	}
	d->has_hw = true;
	d->model = server ? 6 + (int)lab_prng_below(r, 3) : (int)lab_prng_below(r, 6);
	serial(r, d);
	(void)index;
}

static void plain_name(struct lab_device *d, struct lab_prng *r, size_t index)
{
	static const char *const depts[] = {"FIN", "HR", "ENG", "OPS", "SAL", "IT"};
	static const char *const roles[] = {"SQL", "FS", "APP", "WEB", "DC", "PRN"};
	char nm[64];
	if (os_tab[d->os].server)
		snprintf(nm, sizeof nm, "SRV-%s-%02zu", roles[lab_prng_below(r, 6)], index);
	else if (d->model == 0 || d->model == 2 || d->model == 4 || d->model == 5)
		snprintf(nm, sizeof nm, "LT-%s-%04zu", depts[lab_prng_below(r, 6)], index);
	else
		snprintf(nm, sizeof nm, "PC-%05zu", index);
	set_name(d, nm, strlen(nm));
}

void lab_dev_new_plain(struct lab_device *d, struct lab_prng *r, int64_t rid, int64_t epoch)
{
	base_device(d, r, rid, epoch, (int)lab_prng_below(r, 3), 0);
	plain_name(d, r, (size_t)(rid - 16777220));
}

void lab_dev_twin(struct lab_device *n2, const struct lab_device *old, struct lab_prng *r, int64_t rid,
		  int64_t epoch)
{
	base_device(n2, r, rid, epoch, old->os, 0);
	n2->name = lab_xstrndup(old->name, old->name_len);
	n2->name_len = old->name_len;
	memcpy(n2->hardware_id, old->hardware_id, sizeof n2->hardware_id);
	memcpy(n2->smbios_guid, old->smbios_guid, sizeof n2->smbios_guid);
	n2->model = old->model;
	memcpy(n2->serial, old->serial, sizeof n2->serial);
	n2->last_policy = old->last_policy + 600;
	n2->last_active = old->last_active + 600;
	n2->dup = true;
}

/* ---- collections -------------------------------------------------------- */

const struct lab_coll_def lab_colls[LAB_NCOLL] = {
	{"PS100010", "Finance laptops", "Laptops of the finance department (LT-FIN-*)", 2, 412},
	{"PS100011", "Servers \xe2\x80\x93 Production", "Production servers (patched in the Saturday window)", 2, 380},
	{"PS100012", "Pilot \xe2\x80\x93 Co-management", "Co-management pilot: workloads switched to Intune", 2, 95},
	{"PS100013", "Kiosk devices", "Single-app kiosks (none deployed yet)", 2, 40},
	{"PS100014", "Windows 11 workstations", "Workstations running Windows 11 23H2 or 24H2", 2, 210},
	{"PS100015", "Patch ring 1 \xe2\x80\x93 Early", "Early software update ring (about 10% of clients)", 2, 150},
	{"PS100016", "Finance users", "Users of the finance department", 1, 412},
	{"SMS00001", "All Systems", "All Systems", 2, 900},
	{"SMS00002", "All Users", "All Users", 1, 900},
	{"SMSDM003", "All Desktop and Server Clients", "All Desktop and Server Clients", 2, 900},
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

bool lab_coll_member(int ci, const struct lab_device *d, uint64_t seed)
{
	uint64_t h = mix((uint64_t)d->resource_id ^ (seed * 0x9e3779b97f4a7c15ULL));
	bool cl = d->client == 1;
	switch (ci) {
	case 0: return d->name_len > 7 && !memcmp(d->name, "LT-FIN-", 7);
	case 1: return cl && os_tab[d->os % N_OS].server && h % 4 != 0;
	case 2: return cl && d->mdm && d->comgmt_policy && h % 5 == 0;
	case 4: return cl && (d->os == 1 || d->os == 2);
	case 5: return cl && h % 10 == 3;
	case 7: return true;
	case 9: return cl;
	default: return false;   /* Kiosk devices (empty) and the user collections */
	}
}

int64_t lab_coll_last_change(int ci, int64_t epoch)
{
	return epoch - (int64_t)lab_colls[ci].age_days * 86400 + 10 * 3600 + 60 * ci;
}

void lab_coll_count(const struct lab_inventory *inv, uint64_t seed, long counts[LAB_NCOLL],
		    uint64_t digest[LAB_NCOLL])
{
	for (int ci = 0; ci < LAB_NCOLL; ci++) {
		counts[ci] = 0;
		if (digest)
			digest[ci] = 0;
	}
	for (size_t i = 0; i < inv->n; i++)
		for (int ci = 0; ci < LAB_NCOLL; ci++)
			if (lab_coll_member(ci, &inv->dev[i], seed)) {
				counts[ci]++;
				if (digest)
					digest[ci] += mix((uint64_t)inv->dev[i].resource_id + 0x51ed27ULL);
			}
}

void lab_coll_init_times(struct lab_inventory *inv, int64_t epoch)
{
	for (int ci = 0; ci < LAB_NCOLL; ci++)
		inv->coll_mchange[ci] = epoch - 3600 * (int64_t)(ci + 2);
}

bool lab_dev_plain(const struct lab_device *d)
{
	return d->client == 1 && d->active == 1 && d->active_status == 1 && !d->obsolete &&
	       !d->decommissioned && !d->dup && lab_utf8_valid(d->name, d->name_len);
}

static void push(struct lab_inventory *inv, struct lab_device *d)
{
	if (inv->n == inv->cap) {
		inv->cap = inv->cap ? inv->cap * 2 : 1024;
		inv->dev = lab_xrealloc(inv->dev, inv->cap * sizeof *inv->dev);
	}
	inv->dev[inv->n++] = *d;
}

void lab_inv_generate(struct lab_inventory *inv, const struct lab_conf *c)
{
	struct lab_prng r = {c->seed * 0x2545f4914f6cdd1dULL + 0x1234567};
	int64_t rid = 16777220;
	lab_coll_init_times(inv, c->epoch);
	for (size_t i = 0; i < (size_t)c->devices; i++) {
		struct lab_device d;
		uint32_t o = lab_prng_below(&r, 100);
		int os = o < 40 ? 0 : o < 75 ? 1 : o < 90 ? 2 : o < 94 ? 3 : 4;
		base_device(&d, &r, rid++, c->epoch, os, i);
		plain_name(&d, &r, i + 1);
		/* Names in other scripts, and about 1 in 1000 misencoded. */
		uint32_t nm = lab_prng_below(&r, 100);
		char buf[64];
		if (i % 1000 == 137) {
			int n = snprintf(buf, sizeof buf, "B\xfc" "ro-PC%zu", i + 1);
			set_name(&d, buf, (size_t)n);
		} else if (nm < 4 && !os_tab[os].server) {
			static const char *const intl[] = {"B\xc3\xbcr\xc3\xb6-\xc3\x9c", "\xe5\x96\xb6\xe6\xa5\xad-PC",
							   "\xd0\x9f\xd1\x80\xd0\xbe\xd0\xb8\xd0\xb7\xd0\xb2\xd0\xbe\xd0\xb4\xd1\x81\xd1\x82\xd0\xb2\xd0\xbe-",
							   "\xce\x93\xcf\x81\xce\xb1\xcf\x86\xce\xb5\xce\xaf\xce\xbf-"};
			int n = snprintf(buf, sizeof buf, "%s%zu", intl[nm], i + 1);
			set_name(&d, buf, (size_t)n);
		}
		/* Health and life cycle. */
		uint32_t k = lab_prng_below(&r, 1000);
		if (k < 40) {                       /* 4%: discovered, no client */
			d.client = lab_prng_below(&r, 2) ? 0 : -1;
			d.active = -1;
			d.active_status = -1;
			d.check_pass = -1;
			d.sms_uid[0] = 0;
			d.mdm = d.comgmt_policy = d.hybrid = d.aadj = false;
			d.workloads = 0;
			d.aad_device_id[0] = 0;
			d.has_hw = false;
		} else if (k < 70) {                /* 3% obsolete */
			d.obsolete = 1;
			d.active = 0;
			d.active_status = 0;
		} else if (k < 90) {                /* 2% decommissioned */
			d.decommissioned = 1;
			d.active = 0;
			d.active_status = 0;
		} else if (k < 140) {               /* 5% inactive */
			d.active = 0;
			d.active_status = 0;
			d.last_policy -= (int64_t)(30 + lab_prng_below(&r, 60)) * 86400;
			d.last_active = d.last_policy - 3600;
		} else if (k < 190) {               /* 5% failed or no health check */
			d.check_pass = k < 160 ? 2 : 3;
		} else if (k < 195) {               /* 0.5% blocked */
			d.blocked = true;
		} else if (k < 225) {               /* 3% no hardware inventory yet */
			d.has_hw = false;
		}
		push(inv, &d);
		/* 0.5% reimaged: a new record with the same hardware (a pair). */
		if (k >= 225 && k < 230 && i + 1 < (size_t)c->devices) {
			struct lab_device *old = &inv->dev[inv->n - 1];
			struct lab_device n2;
			base_device(&n2, &r, rid++, c->epoch, old->os, i);
			n2.name = lab_xstrndup(old->name, old->name_len);
			n2.name_len = old->name_len;
			memcpy(n2.hardware_id, old->hardware_id, sizeof n2.hardware_id);
			memcpy(n2.smbios_guid, old->smbios_guid, sizeof n2.smbios_guid);
			n2.model = old->model;
			memcpy(n2.serial, old->serial, sizeof n2.serial);
			old->dup = n2.dup = true;
			/* Half the pairs: the older record is obsolete. Otherwise both
			 * are active clients, sharing HardwareID and SMBIOSGUID (3 in
			 * 10) or only SMBIOSGUID (2 in 10: the new record's HardwareID
			 * differs). The newer record is always the one with the later
			 * LastActiveTime (and the higher ResourceID). */
			uint32_t x = lab_prng_below(&r, 10);
			if (x < 5) {
				old->obsolete = 1;
				old->active = 0;
				old->active_status = 0;
			}
			if (x >= 8) {
				struct lab_prng hx = {mix((uint64_t)n2.resource_id)};
				snprintf(n2.hardware_id, sizeof n2.hardware_id, "2:%016llX%016llX%08llX",
					 (unsigned long long)lab_prng_next(&hx), (unsigned long long)lab_prng_next(&hx),
					 (unsigned long long)(lab_prng_next(&hx) >> 32));
			}
			if (n2.last_active <= old->last_active) {
				int64_t lp = n2.last_policy, la = n2.last_active;
				n2.last_policy = old->last_policy;
				n2.last_active = old->last_active;
				old->last_policy = lp;
				old->last_active = la;
				if (n2.last_active == old->last_active)
					old->last_active -= 60;
			}
			push(inv, &n2);
			i++;
		}
	}
}

void lab_inv_free(struct lab_inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++)
		free(inv->dev[i].name);
	free(inv->dev);
	memset(inv, 0, sizeof *inv);
}

int lab_db_schema(sqlite3 *db)
{
	const char *sql =
		"PRAGMA journal_mode=WAL;"
		"PRAGMA synchronous=NORMAL;"
		"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
		"CREATE TABLE IF NOT EXISTS site_device(resource_id INTEGER PRIMARY KEY, name BLOB,"
		" sms_uid TEXT, hardware_id TEXT, smbios_guid TEXT, aad_device_id TEXT, domain TEXT,"
		" os INTEGER, build_rev INTEGER, client INTEGER, obsolete INTEGER, decommissioned INTEGER,"
		" active INTEGER, blocked INTEGER, client_ver INTEGER, active_status INTEGER,"
		" check_pass INTEGER, last_policy INTEGER, last_active INTEGER, mdm INTEGER,"
		" comgmt_policy INTEGER, hybrid INTEGER, aadj INTEGER, workloads INTEGER, has_hw INTEGER,"
		" model INTEGER, serial TEXT, dup INTEGER);"
		"CREATE TABLE IF NOT EXISTS tenant_device(key TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
		" agent TEXT, managed_device TEXT NOT NULL, configuration_manager TEXT, updated INTEGER);"
		"CREATE TABLE IF NOT EXISTS tenant_batch(batch_id TEXT PRIMARY KEY, reply TEXT NOT NULL);"
		"CREATE TABLE IF NOT EXISTS tenant_collection(key TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
		" object TEXT NOT NULL, updated INTEGER);";
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int lab_inv_save(struct lab_inventory *inv, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_exec(db, "BEGIN; DELETE FROM site_device;", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(db, "INSERT INTO site_device VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	for (size_t i = 0; i < inv->n; i++) {
		const struct lab_device *d = &inv->dev[i];
		int c = 1;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, c++, d->resource_id);
		sqlite3_bind_blob(st, c++, d->name, (int)d->name_len, SQLITE_STATIC);
		sqlite3_bind_text(st, c++, d->sms_uid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, c++, d->hardware_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, c++, d->smbios_guid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, c++, d->aad_device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, c++, d->domain, -1, SQLITE_STATIC);
		int iv[] = {d->os, d->build_rev, d->client, d->obsolete, d->decommissioned, d->active,
			    d->blocked, d->client_ver, d->active_status, d->check_pass};
		for (size_t j = 0; j < sizeof iv / sizeof *iv; j++)
			sqlite3_bind_int(st, c++, iv[j]);
		sqlite3_bind_int64(st, c++, d->last_policy);
		sqlite3_bind_int64(st, c++, d->last_active);
		int iv2[] = {d->mdm, d->comgmt_policy, d->hybrid, d->aadj, d->workloads, d->has_hw, d->model};
		for (size_t j = 0; j < sizeof iv2 / sizeof *iv2; j++)
			sqlite3_bind_int(st, c++, iv2[j]);
		sqlite3_bind_text(st, c++, d->serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, c++, d->dup);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto done;
	}
	struct lab_buf t = {0};
	for (int ci = 0; ci < LAB_NCOLL; ci++)
		lab_buf_addf(&t, "%s%lld", ci ? "," : "", (long long)inv->coll_mchange[ci]);
	char *m = lab_xasprintf("INSERT OR REPLACE INTO meta VALUES('mutations','%llu');"
				"INSERT OR REPLACE INTO meta VALUES('coll_member_change','%s')",
				(unsigned long long)inv->mutations, t.p);
	lab_buf_free(&t);
	int mrc = sqlite3_exec(db, m, NULL, NULL, NULL);
	free(m);
	if (mrc != SQLITE_OK)
		goto done;
	rc = 0;
done:
	sqlite3_finalize(st);
	sqlite3_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void col_text(sqlite3_stmt *st, int c, char *dst, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, c);
	snprintf(dst, n, "%s", t ? (const char *)t : "");
}

int lab_inv_load(struct lab_inventory *inv, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	memset(inv, 0, sizeof *inv);
	if (sqlite3_prepare_v2(db, "SELECT * FROM site_device ORDER BY resource_id", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct lab_device d;
		memset(&d, 0, sizeof d);
		int c = 0;
		d.resource_id = sqlite3_column_int64(st, c++);
		const void *nb = sqlite3_column_blob(st, c);
		d.name_len = (size_t)sqlite3_column_bytes(st, c++);
		d.name = lab_xstrndup(nb ? nb : "", d.name_len);
		col_text(st, c++, d.sms_uid, sizeof d.sms_uid);
		col_text(st, c++, d.hardware_id, sizeof d.hardware_id);
		col_text(st, c++, d.smbios_guid, sizeof d.smbios_guid);
		col_text(st, c++, d.aad_device_id, sizeof d.aad_device_id);
		col_text(st, c++, d.domain, sizeof d.domain);
		int *iv[] = {&d.os, &d.build_rev, &d.client, &d.obsolete, &d.decommissioned, &d.active};
		for (size_t j = 0; j < sizeof iv / sizeof *iv; j++)
			*iv[j] = sqlite3_column_int(st, c++);
		d.blocked = sqlite3_column_int(st, c++);
		d.client_ver = sqlite3_column_int(st, c++);
		d.active_status = sqlite3_column_int(st, c++);
		d.check_pass = sqlite3_column_int(st, c++);
		d.last_policy = sqlite3_column_int64(st, c++);
		d.last_active = sqlite3_column_int64(st, c++);
		d.mdm = sqlite3_column_int(st, c++);
		d.comgmt_policy = sqlite3_column_int(st, c++);
		d.hybrid = sqlite3_column_int(st, c++);
		d.aadj = sqlite3_column_int(st, c++);
		d.workloads = sqlite3_column_int(st, c++);
		d.has_hw = sqlite3_column_int(st, c++);
		d.model = sqlite3_column_int(st, c++);
		col_text(st, c++, d.serial, sizeof d.serial);
		d.dup = sqlite3_column_int(st, c++);
		push(inv, &d);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k='mutations'", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			inv->mutations = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k='coll_member_change'", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(st, 0);
			for (int ci = 0; p && ci < LAB_NCOLL; ci++) {
				char *e;
				inv->coll_mchange[ci] = strtoll(p, &e, 10);
				p = *e == ',' ? e + 1 : NULL;
			}
		}
		sqlite3_finalize(st);
	}
	return 0;
}
