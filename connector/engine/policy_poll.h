/*
 * policy_poll.h - one poll of the policy relay as policy.c (reading and
 * planning) and policy_site.c (the site writes, their journal, compliance
 * and the tenant's status) share it. Private to connector/engine.
 */
#ifndef CMB_ENGINE_POLICY_POLL_H
#define CMB_ENGINE_POLICY_POLL_H

#include "connector/engine/policy.h"
#include "mapping/policy.h"

/* One policy of the poll: what the state had, what the tenant and the site have, and what is wanted. */
struct pitem {
	struct cmb_policy_row row;   /* as stored (known) or new; the tenant side is updated in place */
	int known;                   /* a row was stored before this poll */
	int listed;                  /* in the tenant's listing */
	int for_connector;
	char listed_modified[48];    /* the listing's lastModifiedDateTime, as Graph wrote it */
	int unreadable;              /* Graph's body could not be taken: rejected with the reason, nothing planned */
	struct cmb_policy *model;    /* the whole policy (settings, assignments), NULL when not read */
	enum cmb_policy_verdict verdict;
	struct cmb_policy_reasons reasons;
	int64_t site_version;        /* what the site's listing holds (0: nothing) */
	char site_hash[65];
	/* the plan */
	enum cmb_policy_action action;
	char *doc;                   /* the wanted document (PUT, or unchanged), NULL when none */
	size_t doc_len;
	int64_t version;
	char hash[65];
	long settings;
};

struct ppoll {
	const struct cmb_policy_env *env;
	const struct cmb_policy_opts *opts;
	struct cmb_policy_stats *stats;
	struct pitem *items;
	size_t n, cap;
	int64_t now;
	int writes;                  /* neither staging nor a dry run */
	struct cmb_policy_merge *merge; /* the accepted policies merged (plan_all), for a document built again */
};

/* policy.c */
/* Builds it's document again after the site was found holding something else (409). */
int cmb_ppoll_replan(struct ppoll *pp, struct pitem *it);

/* The item of id (NULL when none). */
struct pitem *cmb_ppoll_find(struct ppoll *pp, const char *id);
/* The item of id, added (known 0) when there is none. */
struct pitem *cmb_ppoll_item(struct ppoll *pp, const char *id);

/* policy_site.c */
/* Reads what the site holds into every item (and adds items for documents the state does not know). */
int cmb_ppoll_read_site(struct ppoll *pp);
/* Closes the journal rows an interruption left open, from what the site holds. */
int cmb_ppoll_reconcile(struct ppoll *pp);
/* Sends the planned writes, each journaled before and recorded after. */
int cmb_ppoll_apply(struct ppoll *pp);
/* Reads the compliance of the documents the site holds and posts what changed to the tenant. */
int cmb_ppoll_report(struct ppoll *pp);

#endif
