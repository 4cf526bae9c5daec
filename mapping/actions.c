/*
 * actions.c - tenant remote action -> site operation, in one table.
 * Never does I/O. Sources for every row are in docs/actions.md.
 */
#include "mapping/actions.h"

#include <stdio.h>
#include <string.h>

static const struct cmb_action_map table[] = {
	/*
	 * Client notification types: "InitiateClientOperation Method in Class
	 * SMS_ClientOperation"; their names as the AdminService enum of
	 * AdamGrossTX/ConfigMgr.AdminService and Invoke-CMClientAction spell them
	 * (docs/actions.md).
	 */
	{ "refreshMachinePolicy", CMB_ACTION_NOTIFY, 8, "DownloadComputerPolicy", 0, NULL },
	{ "syncDevice", CMB_ACTION_NOTIFY, 8, "DownloadComputerPolicy", 0, NULL },
	{ "refreshUserPolicy", CMB_ACTION_NOTIFY, 9, "DownloadUserPolicy", 0, NULL },
	{ "appEvaluation", CMB_ACTION_NOTIFY, 13, "EvaluateApplicationDeployments", 0, NULL },
	{ "wakeUpClient", CMB_ACTION_NOTIFY, 150, "WakeUp", 0, NULL },
	{ "fullScan", CMB_ACTION_NOTIFY, 1, "EndpointProtectionFullScan", 0, NULL },
	{ "quickScan", CMB_ACTION_NOTIFY, 2, "EndpointProtectionQuickScan", 0, NULL },
	{ "windowsDefenderUpdateSignatures", CMB_ACTION_NOTIFY, 3, "EndpointProtectionDownloadDefinition", 0, NULL },
	/* "BlockClients Method in Class SMS_Collection". */
	{ "retire", CMB_ACTION_BLOCK, 0, "BlockClients", 1,
	  "retire blocks the ConfigMgr client (SMS_Collection.BlockClients), which needs [actions] "
	  "allow_destructive = true on the connector" },
	{ "wipe", CMB_ACTION_UNSUPPORTED, 0, NULL, 1,
	  "Configuration Manager cannot wipe its clients; wipe a co-managed device through Intune" },
};

const char *cmb_map_operation_name(int client_type)
{
	static _Thread_local char other[24];
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].kind == CMB_ACTION_NOTIFY && table[i].client_type == client_type)
			return table[i].operation;
	snprintf(other, sizeof(other), "Type %d", client_type);
	return other;
}

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
