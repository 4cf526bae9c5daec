/*
 * join.h - the merge join of the AdminService device classes on their keys
 * (ResourceId on SMS_R_System, ResourceID elsewhere: as the schema says).
 *
 * Each class arrives as a stream sorted by its key behind a cursor; the
 * join walks the cursors (one per class the site has) in lockstep and emits one device per
 * SMS_R_System row, filled from the matching rows of the other classes.
 * With a collection scope, a sixth stream (SMS_FullCollectionMembership)
 * acts as a filter: only SMS_R_System rows whose key it holds are emitted.
 * Memory is bounded by what the cursors buffer (one page each), never by
 * the size of the site. The cursor is an interface so tests can drive the
 * join from scripted rows with no HTTP (unbound's replay idea).
 */
#ifndef CMB_AS_JOIN_H
#define CMB_AS_JOIN_H

#include <stddef.h>

#include "adapters/site.h"
#include "adapters/adminservice/odata.h"
#include "adapters/adminservice/schema.h"

struct cmb_join_cursor {
	/*
	 * Yields the next row of the class in *out, which becomes the caller's
	 * (cmb_odata_record_free()), or sets *out = NULL at the end of the
	 * stream. Returns 0, or a negative CMB_E* code with the message set.
	 * After the end or an error, it is not called again.
	 */
	int (*next)(struct cmb_join_cursor *cur, struct cmb_odata_record **out);
	void *ctx;                 /* the implementation's state */
};

struct cmb_join_stats {
	long devices;              /* devices passed to the callback */
	long rows[CMB_AS_NDEVICE]; /* rows read per device class */
	long repeats;              /* further rows for a key already read in a secondary class (skipped) */
	long orphans;              /* secondary rows with no SMS_R_System row (skipped) */
	long member_rows;          /* rows read from the membership filter */
	long filtered;             /* SMS_R_System rows left out: not members */
	long members_unmatched;    /* membership rows with no SMS_R_System row (skipped) */
	long mismatches;           /* properties with an unexpected JSON type (left absent) */
};

/*
 * Runs the join over cursors[CMB_AS_NDEVICE] (indexed by enum
 * cmb_as_class_id; NULL for a class the site does not have) and calls cb
 * for each device, in ascending key order; the device is valid during the
 * call only. schema says how each class spells its key and properties.
 *
 * members (may be NULL: no filter) yields the SMS_FullCollectionMembership
 * rows of one collection, sorted by ResourceID: an SMS_R_System row without
 * a membership row is left out (counted in filtered), and the other classes'
 * rows for it are skipped without being counted as orphans. A key repeated
 * in members is harmless (it is a set) and read once.
 *
 * Returns 0 only when every cursor reached its end: a cursor error, a row
 * without a usable key, a row out of order, a repeated key in SMS_R_System
 * (CMB_EPROTO), or the callback's negative code stop the join. A repeated
 * key in another class is not an error: hardware inventory classes are
 * keyed by GroupID, so a device may have several rows; the first is used
 * and the rest are counted in repeats. stats (may be NULL) is zeroed first and filled as far as the join
 * got.
 */
int cmb_join_run(const struct cmb_as_schema *schema, struct cmb_join_cursor *const *cursors,
		 struct cmb_join_cursor *members, cmb_site_device_cb cb, void *ctx, struct cmb_join_stats *stats);

#endif
