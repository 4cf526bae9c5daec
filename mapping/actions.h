/*
 * actions.h - the one table that says what each tenant remote action
 * becomes at a ConfigMgr site (docs/actions.md has it with its sources).
 * Pure lookup: no I/O, no globals that change.
 */
#ifndef CMB_MAP_ACTIONS_H
#define CMB_MAP_ACTIONS_H

#include <stddef.h>

enum cmb_action_kind {
	CMB_ACTION_NOTIFY = 0,       /* SMS_ClientOperation.InitiateClientOperation with a client notification type */
	CMB_ACTION_BLOCK = 1,        /* SMS_Collection.BlockClients (retire) */
	CMB_ACTION_UNSUPPORTED = 2,  /* never relayed: ends notSupported with reason */
};

struct cmb_action_map {
	const char *action;          /* Graph name: configurationManagerActionType member, or syncDevice/retire/wipe */
	enum cmb_action_kind kind;
	int client_type;             /* CMB_ACTION_NOTIFY: the client notification Type; else 0 */
	const char *operation;       /* the site operation as ConfigMgr names it (DownloadComputerPolicy, BlockClients) */
	int destructive;             /* needs [actions] allow_destructive = true */
	const char *reason;          /* CMB_ACTION_UNSUPPORTED, and destructive when not allowed: why */
};

/* The entry for action (case-sensitive, as Graph spells it); NULL when unknown. Static storage. */
const struct cmb_action_map *cmb_map_action(const char *action);

/* The whole table (static storage) and its length, in documentation order. */
const struct cmb_action_map *cmb_map_actions(size_t *n);

/* The ConfigMgr name of a client notification Type ("DownloadComputerPolicy"), or "Type N" for others. */
const char *cmb_map_operation_name(int client_type);

/* Why an unknown action is refused (static string). */
const char *cmb_map_action_unknown_reason(void);

#endif
