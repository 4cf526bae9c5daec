/*
 * faults.c - fault injection (500, 429 with Retry-After, connection
 * resets, truncated bodies, lost replies of the tenant's uploads and the
 * site's method calls, latency), drawn from a seeded
 * generator per side so a run repeats; the request log DIR/requests.log;
 * request-rate observation (most requests in any one-second window) and
 * Retry-After violations. server.c calls these around every request.
 * Two faults are not drawn: a site device class that answers at most N
 * rows (--class-rows), which site.c applies to every page, and the K-th
 * faultable request of a side losing its reply (--lose-reply-at), which
 * the crash tests walk K = 1, 2, ... through.
 */
#include "lab.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t lab_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conf_default(struct lab_fault_conf *c, uint64_t seed)
{
	memset(c, 0, sizeof *c);
	c->retry_after = 2;
	c->seed = seed;
	c->short_class = -1;
}

static void reseed(struct lab_faults *f, int side)
{
	f->prng[side].s = f->conf[side].seed * 0x9e3779b97f4a7c15ULL + 0x5bd1e995ULL * (uint64_t)(side + 1);
}

int lab_faults_init(struct lab *lab, const char *log_path)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_init(&f->lock, NULL);
	for (int s = 0; s < 2; s++) {
		conf_default(&f->conf[s], 1);
		reseed(f, s);
	}
	f->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	return f->log_fd < 0 ? -1 : 0;
}

void lab_faults_free(struct lab *lab)
{
	if (lab->faults.log_fd > 0)
		close(lab->faults.log_fd);
	lab->faults.log_fd = -1;
}

int64_t lab_faults_arrive(struct lab *lab, int side)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	int64_t t = lab_now_ms();
	/* the window (t - 1000 ms, t] */
	while (f->count[side] && f->ring[side][f->head[side]] <= t - 1000) {
		f->head[side] = (f->head[side] + 1) % LAB_RATE_RING;
		f->count[side]--;
	}
	if (f->count[side] == LAB_RATE_RING) {
		f->head[side] = (f->head[side] + 1) % LAB_RATE_RING;
		f->count[side]--;
	}
	f->ring[side][(f->head[side] + f->count[side]) % LAB_RATE_RING] = t;
	f->count[side]++;
	if ((long)f->count[side] > f->max_rps[side])
		f->max_rps[side] = (long)f->count[side];
	bool early = f->wait_until_ms[side] && t < f->wait_until_ms[side] - 50;
	pthread_mutex_unlock(&f->lock);
	atomic_fetch_add(&lab->st.requests[side], 1);
	if (early)
		atomic_fetch_add(&lab->st.retry_after_violations, 1);
	return t;
}

enum lab_fault lab_faults_draw(struct lab *lab, int side, bool get, bool upload, int *latency_ms,
			       double *retry_after, bool *send_retry_after)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	const struct lab_fault_conf *c = &f->conf[side];
	*latency_ms = c->latency_ms;
	*retry_after = c->retry_after;
	*send_retry_after = !c->no_retry_after;
	enum lab_fault out = F_NONE;
	f->drawn[side]++;
	if (c->lose_reply_at > 0 && f->drawn[side] == c->lose_reply_at) {
		out = F_REPLY_LOST;   /* --lose-reply-at: this one, whatever it is */
	} else if (c->reset + c->r500 + c->r429 + c->truncate + c->reply_lost + c->r503 > 0) {
		double u = (double)(lab_prng_next(&f->prng[side]) >> 11) * (1.0 / 9007199254740992.0);
		double a = c->reset;
		if (u < a)
			out = F_RESET;
		else if (u < (a += c->r500))
			out = F_500;
		else if (u < (a += c->r429))
			out = F_429;
		else if (u < (a += c->truncate))
			out = get ? F_TRUNCATE : F_NONE;
		else if (u < (a += c->reply_lost))
			out = upload ? F_REPLY_LOST : F_NONE;
		else if (u < a + c->r503)   /* last: the sequences drawn before 503 existed stay the same */
			out = F_503;
	}
	pthread_mutex_unlock(&f->lock);
	return out;
}

void lab_faults_asked_wait(struct lab *lab, int side, double seconds)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	int64_t until = lab_now_ms() + (int64_t)(seconds * 1000 + 0.5);
	if (until > f->wait_until_ms[side])
		f->wait_until_ms[side] = until;
	pthread_mutex_unlock(&f->lock);
}

long lab_faults_class_rows(struct lab *lab, int cls)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	const struct lab_fault_conf *c = &f->conf[LAB_SITE];
	long n = c->short_class >= 0 && c->short_class == cls ? c->short_rows : -1;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void lab_reqlog(struct lab *lab, int64_t t_ms, const char *side, const char *method, const char *path,
		const char *status, const char *fault)
{
	if (lab->faults.log_fd < 0)
		return;
	struct lab_buf b = {0};
	lab_buf_addf(&b, "%lld.%03lld %s %s ", (long long)(t_ms / 1000), (long long)(t_ms % 1000), side, method);
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f)
			lab_buf_addf(&b, "%%%02X", *p);
		else
			lab_buf_addc(&b, (char)*p);
	}
	lab_buf_addf(&b, " %s %s\n", status, fault);
	if (write(lab->faults.log_fd, b.p, b.len) < 0) { /* the log is best effort */ }
	lab_buf_free(&b);
}

static void conf_json(struct lab_buf *b, const struct lab_fault_conf *c)
{
	lab_buf_addf(b, "{\"rate500\":%g,\"rate503\":%g,\"rate429\":%g,\"retryAfter\":%g,\"noRetryAfter\":%s,\"rateReset\":%g,"
		     "\"rateTruncate\":%g,\"rateReplyLost\":%g,\"latencyMs\":%d,\"seed\":%llu",
		     c->r500, c->r503, c->r429, c->retry_after, c->no_retry_after ? "true" : "false", c->reset, c->truncate,
		     c->reply_lost, c->latency_ms, (unsigned long long)c->seed);
	if (c->lose_reply_at > 0)
		lab_buf_addf(b, ",\"loseReplyAt\":%ld", c->lose_reply_at);
	if (c->short_class >= 0)
		lab_buf_addf(b, ",\"shortClass\":\"%s\",\"shortRows\":%ld", lab_odata_classes[c->short_class].name,
			     c->short_rows);
	lab_buf_addc(b, '}');
}

void lab_faults_json(struct lab *lab, struct lab_buf *out)
{
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	lab_buf_adds(out, "{\"site\":");
	conf_json(out, &f->conf[0]);
	lab_buf_adds(out, ",\"tenant\":");
	conf_json(out, &f->conf[1]);
	lab_buf_addc(out, '}');
	pthread_mutex_unlock(&f->lock);
}

static yajl_val member(yajl_val o, const char *k)
{
	for (size_t i = 0; i < o->u.object.len; i++)
		if (!strcmp(o->u.object.keys[i], k))
			return o->u.object.values[i];
	return NULL;
}

/* "shortClass" (a device class by name) with "shortRows" (N >= 0): that class answers its first N rows only. */
static int short_class(struct lab *lab, yajl_val v, bool tenant_only, struct lab_fault_conf *c, char *err,
		       size_t errlen)
{
	yajl_val name = member(v, "shortClass"), rows = member(v, "shortRows");
	if (!name && !rows)
		return 0;
	if (!name || !rows || !YAJL_IS_STRING(name) || !YAJL_IS_INTEGER(rows) || rows->u.number.i < 0) {
		snprintf(err, errlen, "shortClass (a device class) and shortRows (an integer >= 0) go together");
		return -1;
	}
	if (tenant_only) {
		snprintf(err, errlen, "shortClass: a fault of the site");
		return -1;
	}
	int cls = lab_odata_find_class(lab, name->u.string, strlen(name->u.string));
	if (cls < LAB_CLS_SYSTEM || cls > LAB_CLS_BIOS) {
		snprintf(err, errlen, "shortClass: '%s' is not a device class this site serves (SMS_R_System, "
			 "SMS_CombinedDeviceResources, SMS_Client_ComanagementState, SMS_G_System_COMPUTER_SYSTEM, "
			 "SMS_G_System_PC_BIOS)", name->u.string);
		return -1;
	}
	c->short_class = cls;
	c->short_rows = (long)rows->u.number.i;
	return 0;
}

int lab_faults_set(struct lab *lab, yajl_val v, struct lab_buf *out, char *err, size_t errlen)
{
	static const char *const known[] = {"side", "clear", "rate500", "rate503", "rate429", "retryAfter", "noRetryAfter",
					     "rateReset", "rateTruncate", "rateReplyLost", "latencyMs", "seed",
					     "shortClass", "shortRows", "loseReplyAt", NULL};
	for (size_t i = 0; i < v->u.object.len; i++) {
		size_t k = 0;
		while (known[k] && strcmp(known[k], v->u.object.keys[i]))
			k++;
		if (!known[k]) {
			snprintf(err, errlen, "unknown field '%s'", v->u.object.keys[i]);
			return -1;
		}
	}
	yajl_val sv = member(v, "side");
	const char *side = sv && YAJL_IS_STRING(sv) ? sv->u.string : "both";
	bool do_site = !strcmp(side, "site") || !strcmp(side, "both");
	bool do_tenant = !strcmp(side, "tenant") || !strcmp(side, "both");
	if (!do_site && !do_tenant) {
		snprintf(err, errlen, "side: 'site', 'tenant' or 'both'");
		return -1;
	}
	struct lab_fault_conf c;
	yajl_val sd = member(v, "seed");
	if (sd && (!YAJL_IS_INTEGER(sd) || sd->u.number.i < 0)) {
		snprintf(err, errlen, "seed: a non-negative integer");
		return -1;
	}
	conf_default(&c, sd ? (uint64_t)sd->u.number.i : 1);
	static const char *const rn[] = {"rate500", "rate429", "rateReset", "rateTruncate", "rateReplyLost", "rate503"};
	double *rd[] = {&c.r500, &c.r429, &c.reset, &c.truncate, &c.reply_lost, &c.r503};
	for (int i = 0; i < 6; i++) {
		yajl_val x = member(v, rn[i]);
		if (!x)
			continue;
		if (!YAJL_IS_DOUBLE(x) || x->u.number.d < 0 || x->u.number.d > 1) {
			snprintf(err, errlen, "%s: a number from 0 to 1", rn[i]);
			return -1;
		}
		*rd[i] = x->u.number.d;
	}
	if (c.r500 + c.r429 + c.reset + c.truncate + c.reply_lost + c.r503 > 1 + 1e-9) {
		snprintf(err, errlen, "the rates add up to more than 1");
		return -1;
	}
	yajl_val x = member(v, "retryAfter");
	if (x) {
		if (!YAJL_IS_DOUBLE(x) || x->u.number.d < 0 || x->u.number.d > 3600) {
			snprintf(err, errlen, "retryAfter: seconds from 0 to 3600");
			return -1;
		}
		c.retry_after = x->u.number.d;
	}
	x = member(v, "loseReplyAt");
	if (x) {
		if (!YAJL_IS_INTEGER(x) || x->u.number.i < 1 || x->u.number.i > INT32_MAX) {
			snprintf(err, errlen, "loseReplyAt: an integer from 1 (the first faultable request) up");
			return -1;
		}
		c.lose_reply_at = (long)x->u.number.i;
	}
	x = member(v, "noRetryAfter");
	c.no_retry_after = x && YAJL_IS_TRUE(x);
	x = member(v, "latencyMs");
	if (x) {
		if (!YAJL_IS_INTEGER(x) || x->u.number.i < 0 || x->u.number.i > 60000) {
			snprintf(err, errlen, "latencyMs: an integer from 0 to 60000");
			return -1;
		}
		c.latency_ms = (int)x->u.number.i;
	}
	if (short_class(lab, v, do_tenant && !do_site, &c, err, errlen) < 0)
		return -1;
	x = member(v, "clear");
	if (x && YAJL_IS_TRUE(x))
		conf_default(&c, c.seed);
	struct lab_faults *f = &lab->faults;
	pthread_mutex_lock(&f->lock);
	for (int s = 0; s < 2; s++) {
		if (!(s == 0 ? do_site : do_tenant))
			continue;
		f->conf[s] = c;
		reseed(f, s);
		f->wait_until_ms[s] = 0;
		f->drawn[s] = 0;
	}
	pthread_mutex_unlock(&f->lock);
	/* Pages served before are cached whole: a class answering fewer rows, or again all, starts afresh. */
	if (do_site)
		lab_site_cache_clear(lab);
	lab_log("faults (%s): 500 %g, 503 %g, 429 %g (Retry-After %s%g), reset %g, truncate %g, reply-lost %g, latency %d ms, "
		"seed %llu", side, c.r500, c.r503, c.r429, c.no_retry_after ? "none, " : "", c.retry_after, c.reset, c.truncate, c.reply_lost,
		c.latency_ms, (unsigned long long)c.seed);
	if (c.lose_reply_at > 0)
		lab_log("faults (%s): request %ld from now is applied and its reply lost", side, c.lose_reply_at);
	if (c.short_class >= 0)
		lab_log("faults (%s): %s answers its first %ld rows only", side, lab_odata_classes[c.short_class].name,
			c.short_rows);
	lab_faults_json(lab, out);
	return 0;
}
