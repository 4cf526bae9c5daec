# Helpers of the policy relay's tests (policies*.sh), sourced after lib.sh:
# a lab with two collections attached for cloud sync, policy bodies shaped
# as Microsoft's settings catalog examples post them, and what the site's
# policy store holds (docs/wire-format.md §9).
require jq

# pol_setup [init args...]: the lab up, PS100012 and PS100014 attached ($PCONF), one full sync.
pol_setup() {
  lab_init_up "$@"
  PCONF=$(conf_with policies site.cloud_sync_collections=PS100012,PS100014)
  "$CMBRIDGE" -c "$PCONF" sync --full > "$TMP/sync.log" 2>&1 || { echo "FAIL: first sync"; cat "$TMP/sync.log"; exit 1; }
  SITE_URL=$(sed -n 's/^url *= *//p' "$CONF")
  SITE_USER=$(sed -n 's/^username *= *//p' "$CONF")
}

# site GET PATH: the site's policy store, as the connector's site account.
site_get() {
  curl -sS --cacert "$LAB/ca.pem" -u "$SITE_USER:$(cat "$LAB/site-password")" "$SITE_URL/v1.0/$1"
}
site_docs() { site_get CmbridgePolicy; }
# site_version ID: the version the site holds ("none" when it holds nothing).
site_version() {
  site_docs | jq -r --arg id "$1" '(.value[] | select(.tenantPolicyId == $id) | .version) // "none"'
}

# Setting instances, as the settings catalog examples on Microsoft Learn write them.
s_choice() { # DEFINITION OPTION-SUFFIX
  jq -nc --arg d "$1" --arg v "$1_$2" '{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
    settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
      settingDefinitionId:$d, choiceSettingValue:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingValue",
        value:$v, children:[]}}}'
}
s_int() { # DEFINITION VALUE
  jq -nc --arg d "$1" --argjson v "$2" '{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
    settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance",
      settingDefinitionId:$d, simpleSettingValue:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationIntegerSettingValue",
        value:$v}}}'
}
s_strings() { # DEFINITION VALUE...
  local d=$1; shift
  jq -nc --arg d "$d" '$ARGS.positional as $v | {"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
    settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSimpleSettingCollectionInstance",
      settingDefinitionId:$d, simpleSettingCollectionValue:[$v[] | {"@odata.type":"#microsoft.graph.deviceManagementConfigurationStringSettingValue", value:.}]}}' \
    --args "$@"
}
# pbody NAME FAMILY SETTING-JSON...: a policy body (technologies configManager, windows10).
pbody() {
  local n=$1 f=$2; shift 2
  printf '%s\n' "$@" | jq -sc --arg n "$n" --arg f "$f" '{name:$n, description:"cmbridge integration test",
    platforms:"windows10", technologies:"configManager", roleScopeTagIds:["0"],
    templateReference:{templateId:"804339ad-1553-4478-a742-138fb5807418_1", templateFamily:$f}, settings:.}'
}
# pcreate FILE: the new policy's id.
pcreate() { "$CMBRIDGE_LAB" policy "$LAB" create "$1"; }
passign() { "$CMBRIDGE_LAB" policy "$LAB" assign "$@" > /dev/null || echo "FAIL: policy assign $*"; }
# poll [CONF]: one poll (`cmbridge policies --once`), its output in $TMP/poll.txt, its log in $TMP/poll.log.
poll() {
  "$CMBRIDGE" -c "${1:-$PCONF}" policies --once > "$TMP/poll.txt" 2> "$TMP/poll.log"
  local rc=$?
  [ "$rc" -eq 0 ] || { echo "poll failed ($rc):"; cat "$TMP/poll.log"; }
  return "$rc"
}
# pol FIELD ID: a field of a policy in `cmbridge policies --json` (jq path after the object).
pol() {
  "$CMBRIDGE" -c "$PCONF" policies --json | jq -c --arg id "$2" ".[] | select(.id == \$id) | $1"
}

AV=device_vendor_msft_policy_config_defender
RTM=${AV}_allowrealtimemonitoring
