#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a lab (a ConfigMgr site
# and a cloud tenant on loopback, over HTTPS), runs the connector's main job
# against it and prints what happened. Leaves nothing running.
#   DEVICES=20000 ./deploy/demo.sh     a bigger site (default 6,000)
#   KEEP=1 ./deploy/demo.sh            keep the lab directory afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target cmbridge cmbridge-lab >/dev/null

CMB=build/connector/cmbridge
LABBIN=build/lab/cmbridge-lab
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cmbridge-demo.XXXXXX")
LAB=$WORK/lab
CONF=$LAB/cmbridge.conf
cleanup() {
  "$LABBIN" down "$LAB" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "lab kept in $LAB"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The lab's counters in a few lines: what the tenant and the site saw.
lab_summary() {
  "$LABBIN" stats "$LAB" --json | jq -r '
    "tenant: \(.tenant.devices) devices; \(.tenant.recordsReceived) records received in \(.tenant.uploadRequests) upload requests (\(.tenant.recordsCreated) created, \(.tenant.recordsUpdated) updated, \(.tenant.recordsRejected) rejected), \(.tenant.removalsApplied) removed",
    "site:   \(.site.devices) devices; \(.site.pageRequests) page requests; \(.site.operations) client operations to \(.site.operationTargets) devices (\(.site.duplicateTargets) duplicate targets)",
    "remote actions: \(.actions.triggered) triggered, \(.actions.done) done, \(.actions.failed) failed, \(.actions.notSupported) not supported, \(.actions.pending) pending",
    "policies: \(.policies.tenantPolicies) in the tenant, \(.policies.siteDocuments) documents at the site (\(.policies.siteCreated) created, \(.policies.siteUpdated) updated), \(.policies.statusPoliciesAccepted) statuses received"'
}

step "Create a lab with ${DEVICES:-6000} devices in $LAB"
"$LABBIN" init "$LAB" --devices "${DEVICES:-6000}"
"$LABBIN" up "$LAB" --detach
echo "connector config written by the lab: $CONF"

step "cmbridge check: config, site, tenant, token"
"$CMB" -c "$CONF" check

step "First sync: every device in scope goes to the tenant"
"$CMB" -c "$CONF" sync --full

step "What the lab's tenant and site saw"
lab_summary

step "The site changes: 50 devices change, 10 arrive, 5 leave"
"$LABBIN" mutate "$LAB" --change 50 --add 10 --delete 5

step "Delta sync: only the difference is uploaded"
"$CMB" -c "$CONF" sync

step "A second delta finds nothing to do"
"$CMB" -c "$CONF" sync

step "One device as the tenant's Graph API (beta) returns it"
AUTHORITY=$(sed -n 's/^authority *= *//p' "$CONF")
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
CLIENT_ID=$(sed -n 's/^client_id *= *//p' "$CONF")
TOKEN=$(curl -sS --cacert "$LAB/ca.pem" -d grant_type=client_credentials \
  --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "client_secret@$LAB/client-secret" \
  --data-urlencode "scope=https://graph.microsoft.com/.default" "$AUTHORITY/oauth2/v2.0/token" | jq -r .access_token)
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/managedDevices?\$top=1&\$count=true&\$filter=managementAgent%20eq%20'configurationManagerClientMdm'" | jq .

step "An admin triggers remote actions in the cloud console; the connector relays them to the site"
DEVICE=$(curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/managedDevices?\$top=1" | jq -r '.value[0].id')
"$LABBIN" trigger "$LAB" "$DEVICE" refreshMachinePolicy
"$LABBIN" trigger "$LAB" "$DEVICE" quickScan
"$LABBIN" trigger "$LAB" "$DEVICE" wipe
"$CMB" -c "$CONF" relay --once
"$CMB" -c "$CONF" actions
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/managedDevices/$DEVICE?\$select=deviceActionResults" | jq .

step "A security team targets an antivirus policy at a collection; the connector writes it to the site"
# The collection must be uploaded for cloud sync first ([site] cloud_sync_collections, then a cycle).
sed -i 's/^\[site\]$/[site]\ncloud_sync_collections = PS100012/' "$CONF"
"$CMB" -c "$CONF" sync >/dev/null
RTM=device_vendor_msft_policy_config_defender_allowrealtimemonitoring
jq -n --arg d "$RTM" '{name:"Defender AV - pilot", description:"demo", platforms:"windows10", technologies:"configManager",
  roleScopeTagIds:["0"], templateReference:{templateId:"804339ad-1553-4478-a742-138fb5807418_1", templateFamily:"endpointSecurityAntivirus"},
  settings:[{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
    settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance", settingDefinitionId:$d,
      choiceSettingValue:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingValue", value:($d + "_1"), children:[]}}}]}' \
  > "$WORK/policy.json"
POLICY=$("$LABBIN" policy "$LAB" create "$WORK/policy.json")
"$LABBIN" policy "$LAB" assign "$POLICY" PS100012
"$CMB" -c "$CONF" diff --policies
"$CMB" -c "$CONF" policies --once
sleep 1 # the lab's devices report after [policies] report_delay_ms
"$CMB" -c "$CONF" policies --once >/dev/null
"$CMB" -c "$CONF" policies
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/configManagerCollections/getPolicySummary(policyId='$POLICY')" | jq -c .

step "cmbridge status"
"$CMB" -c "$CONF" status

step "What the lab's tenant and site saw, in the end"
lab_summary
