/*
 * join.c - merge join of the five AdminService class streams on their key,
 * optionally filtered by a sixth: the membership of one collection.
 *
 * Each stream holds one row ahead (its head). SMS_R_System drives: for each
 * of its rows, every other stream is moved past smaller keys (rows for
 * resources with no discovery record: counted and skipped) and, when its
 * head has the same key, that row fills the device. The membership stream,
 * when there is one, decides whether the device is emitted at all. Every
 * stream is checked for ascending keys as it is read, because a merge join
 * over unsorted input silently pairs the wrong rows. Never does I/O itself:
 * the cursors do.
 */
#include "adapters/adminservice/join.h"
#include "connector/base/error.h"

#include <string.h>

struct stream {
	const struct cmb_as_rclass *cls;
	struct cmb_join_cursor *cur;
	struct cmb_odata_record *head;   /* the row not yet consumed; NULL at the end */
	uint32_t key;                    /* head's key */
	uint32_t last;                   /* previous row's key, for the order check */
	int have_last;
	int ended;
	int set;                         /* a repeated key is skipped, not an error */
	long rows;
	long *rows_stat;                 /* where stats count this stream's rows */
	long *repeats;                   /* where repeated keys are counted (set streams) */
};

/* Replaces the head with the next row of the stream, checking its key. */
static int advance(struct stream *s)
{
	struct cmb_odata_record *r = NULL;
	uint32_t k;
	int error;

	cmb_odata_record_free(s->head);
	s->head = NULL;
	for (;;) {
		if (s->ended)
			return 0;
		if ((error = s->cur->next(s->cur, &r)) < 0)
			return error;
		if (!r) {
			s->ended = 1;
			return 0;
		}
		s->rows++;
		(*s->rows_stat)++;
		if ((error = cmb_as_record_key(s->cls, r, &k)) < 0) {
			cmb_odata_record_free(r);
			return cmb_error_wrap(error, "%s row %ld", s->cls->entity, s->rows);
		}
		if (s->have_last && k == s->last && s->set) {
			cmb_odata_record_free(r);
			if (s->repeats)
				(*s->repeats)++;
			continue;
		}
		break;
	}
	if (s->have_last && k == s->last) {
		cmb_odata_record_free(r);
		return cmb_error_set(CMB_EPROTO, "%s row %ld: %s %lu appears twice",
				     s->cls->entity, s->rows, s->cls->wire[0], (unsigned long)k);
	}
	if (s->have_last && k < s->last) {
		cmb_odata_record_free(r);
		return cmb_error_set(CMB_EPROTO,
				     "%s row %ld: %s %lu comes after %lu: the rows are not in "
				     "ascending %s order, which the join needs (does the site ignore $orderby?)",
				     s->cls->entity, s->rows, s->cls->wire[0], (unsigned long)k, (unsigned long)s->last,
				     s->cls->wire[0]);
	}
	s->head = r;
	s->key = k;
	s->last = k;
	s->have_last = 1;
	return 0;
}

/* Moves s past keys below k, adding each skipped row to *skipped. */
static int skip_below(struct stream *s, uint32_t k, long *skipped)
{
	int error = 0;
	while (!s->ended && s->key < k) {
		(*skipped)++;
		if ((error = advance(s)) < 0)
			break;
	}
	return error;
}

int cmb_join_run(const struct cmb_as_schema *schema, struct cmb_join_cursor *const *cursors,
		 struct cmb_join_cursor *members, cmb_site_device_cb cb, void *ctx, struct cmb_join_stats *stats)
{
	struct cmb_join_stats local;
	struct stream st[CMB_AS_NDEVICE + 1];
	struct stream *sys = &st[CMB_AS_SYSTEM];
	struct stream *mem = NULL;
	int nstreams = CMB_AS_NDEVICE;
	struct cmb_site_device dev;
	int error = 0;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	memset(st, 0, sizeof(st));
	for (int i = 0; i < CMB_AS_NDEVICE; i++) {
		st[i].cls = &schema->cls[i];
		st[i].cur = cursors[i];
		st[i].ended = cursors[i] == NULL; /* a class the site does not have */
		st[i].rows_stat = &stats->rows[i];
		st[i].set = i != CMB_AS_SYSTEM;
		st[i].repeats = &stats->repeats;
	}
	if (members) {
		mem = &st[nstreams++];
		mem->cls = &schema->cls[CMB_AS_MEMBERSHIP];
		mem->cur = members;
		mem->set = 1;
		mem->rows_stat = &stats->member_rows;
	}
	for (int i = 0; i < nstreams; i++)
		if ((error = advance(&st[i])) < 0)
			goto done;

	while (!sys->ended) {
		uint32_t k = sys->key;
		int member = 1;

		if (mem) {
			if ((error = skip_below(mem, k, &stats->members_unmatched)) < 0)
				goto done;
			member = !mem->ended && mem->key == k;
			if (member && (error = advance(mem)) < 0)
				goto done;
		}
		cmb_site_device_init(&dev);
		dev.resource_id = k;
		if (member)
			stats->mismatches += cmb_as_record_fill(sys->cls, sys->head, &dev);
		for (int i = 0; i < CMB_AS_NDEVICE; i++) {
			struct stream *s = &st[i];
			if (s == sys)
				continue;
			if ((error = skip_below(s, k, &stats->orphans)) < 0)
				break;
			if (!s->ended && s->key == k) {
				/* A non-member's rows are skipped silently: they are not orphans. */
				if (member)
					stats->mismatches += cmb_as_record_fill(s->cls, s->head, &dev);
				if ((error = advance(s)) < 0)
					break;
			}
		}
		if (error >= 0 && member) {
			error = cb(ctx, &dev);
			if (error >= 0)
				stats->devices++;
		} else if (error >= 0) {
			stats->filtered++;
		}
		cmb_site_device_clear(&dev);
		if (error < 0)
			goto done;
		if ((error = advance(sys)) < 0)
			goto done;
	}

	/* Read the other streams to their ends: only a complete read is a success. */
	for (int i = 0; i < nstreams; i++) {
		long *skipped = &st[i] == mem ? &stats->members_unmatched : &stats->orphans;
		while (!st[i].ended) {
			(*skipped)++;
			if ((error = advance(&st[i])) < 0)
				goto done;
		}
	}
	error = 0;

done:
	for (int i = 0; i < nstreams; i++)
		cmb_odata_record_free(st[i].head);
	return error;
}
