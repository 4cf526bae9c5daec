/*
 * actions.c - tenant remote action -> site operation, in one table.
 * Never does I/O. Sources for every row are in docs/actions.md.
 */
#include "mapping/actions.h"

#include <string.h>

static const struct cmb_action_map table[] = {
	/* Client notification types: "InitiateClientOperation Method in Class SMS_ClientOperation". */
	{ "refreshMachinePolicy", CMB_ACTION_NOTIFY, 8, 0, NULL },
	{ "syncDevice", CMB_ACTION_NOTIFY, 8, 0, NULL },
	{ "refreshUserPolicy", CMB_ACTION_NOTIFY, 9, 0, NULL },
	{ "appEvaluation", CMB_ACTION_NOTIFY, 13, 0, NULL },
	{ "wakeUpClient", CMB_ACTION_NOTIFY, 150, 0, NULL },
	{ "fullScan", CMB_ACTION_NOTIFY, 1, 0, NULL },
	{ "quickScan", CMB_ACTION_NOTIFY, 2, 0, NULL },
	{ "windowsDefenderUpdateSignatures", CMB_ACTION_NOTIFY, 3, 0, NULL },
	/* "BlockClients Method in Class SMS_Collection". */
	{ "retire", CMB_ACTION_BLOCK, 0, 1,
	  "retire blocks the ConfigMgr client (SMS_Collection.BlockClients), which needs [actions] "
	  "allow_destructive = true on the connector" },
	{ "wipe", CMB_ACTION_UNSUPPORTED, 0, 1,
	  "Configuration Manager cannot wipe its clients; wipe a co-managed device through Intune" },
};

const struct cmb_action_map *cmb_map_action(const char *action)
{
	if (!action)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].action, action) == 0)
			return &table[i];
	return NULL;
}

const struct cmb_action_map *cmb_map_actions(size_t *n)
{
	*n = sizeof(table) / sizeof(table[0]);
	return table;
}

const char *cmb_map_action_unknown_reason(void)
{
	return "unknown action: the connector relays only the actions in its mapping table";
}
