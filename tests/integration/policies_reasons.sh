#!/usr/bin/env bash
# What the policy relay refuses, and why (docs/policies.md §3 and §4): an
# unknown setting, a value outside its range or options, a malformed
# instance and an untargetable collection reject a policy whole, with one
# reason per setting or target, and nothing of it reaches the site; a
# policy not for ConfigMgr is ignored and counted; two policies that set a
# setting differently on one collection, or on collections that share
# members, are both in conflict for it, and neither value reaches the site
# while the rest of each does; exclusions and ASR rules merge. Every
# reason is visible in `cmbridge policies --json`, and the tenant gets it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policies_lib.sh"

pol_setup --devices 200 --seed 7

mk() { # mk NAME FAMILY COLLECTIONS SETTING-JSON...: creates and assigns; prints the id
  local n=$1 f=$2 c=$3 id; shift 3
  pbody "$n" "$f" "$@" > "$TMP/body.json"
  id=$(pcreate "$TMP/body.json") || { echo "FAIL: create $n" >&2; return 1; }
  [ -z "$c" ] || passign "$id" ${c//,/ }
  echo "$id"
}
ASR=device_vendor_msft_policy_config_defender_attacksurfacereductionrules
asr_rules() { # asr_rules RULE-SUFFIX MODE: one ASR group with one rule
  jq -nc --arg d "$ASR" --arg r "${ASR}_$1" --arg v "${ASR}_$1_$2" '{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
    settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",
      settingDefinitionId:$d, groupSettingCollectionValue:[{children:[{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
        settingDefinitionId:$r, choiceSettingValue:{value:$v, children:[]}}]}]}}'
}
MALFORMED_INT=$(jq -nc --arg d "${AV}_avgcpuloadfactor" '{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
  settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance", settingDefinitionId:$d}}')

say "policies the connector must refuse whole"
UNK=$(mk "unknown settings" endpointSecurityAntivirus PS100012 "$(s_choice "$RTM" 1)" \
  "$(s_choice device_vendor_msft_defender_configuration_devicecontrolenabled 1)" "$(s_int device_vendor_msft_policy_config_defender_madeupsetting 3)")
RNG=$(mk "out of range" endpointSecurityAntivirus PS100012 "$(s_int "${AV}_daystoretaincleanedmalware" 91)" \
  "$(s_choice "${AV}_allowcloudprotection" 7)")
MAL=$(mk "malformed" endpointSecurityAntivirus PS100012 "$(s_choice "${AV}_allowemailscanning" 1)" "$MALFORMED_INT")
TGT=$(mk "untargetable" endpointSecurityAntivirus PS100012,PS100013 "$(s_choice "${AV}_allowarchivescanning" 1)")
pbody "cloud only" endpointSecurityAntivirus "$(s_choice "$RTM" 1)" | jq -c '.technologies = "mdm,microsoftSense"' > "$TMP/mdm.json"
MDM=$(pcreate "$TMP/mdm.json"); passign "$MDM" PS100012

say "conflicts (one collection; two collections that share members) and merges"
CA=$(mk "conflict A" endpointSecurityAntivirus PS100012 "$(s_int "${AV}_avgcpuloadfactor" 30)" "$(s_choice "${AV}_allowioavprotection" 1)")
CB=$(mk "conflict B" endpointSecurityAntivirus PS100014 "$(s_int "${AV}_avgcpuloadfactor" 60)" "$(s_choice "${AV}_allowscriptscanning" 1)")
XA=$(mk "exclusions A" endpointSecurityAntivirus PS100012 "$(s_strings "${AV}_excludedpaths" 'C:\Data' 'C:\Logs')")
XB=$(mk "exclusions B" endpointSecurityAntivirus PS100012 "$(s_strings "${AV}_excludedpaths" 'C:\Temp')")
RA=$(mk "ASR block" endpointSecurityAttackSurfaceReduction PS100012 "$(asr_rules blockexecutionofpotentiallyobfuscatedscripts block)")
RB=$(mk "ASR audit" endpointSecurityAttackSurfaceReduction PS100012 "$(asr_rules blockexecutionofpotentiallyobfuscatedscripts audit)")

poll; expect_eq "one poll" 0 $?
expect_match "the poll's counts" '11 listed \(10 read, 1 not for ConfigMgr\), 6 accepted \(2 in conflict\), 4 rejected, 0 unassigned; site: 6 written' \
  "$(cat "$TMP/poll.txt")"
"$CMBRIDGE" -c "$PCONF" policies --json > "$TMP/p.json"
r() { jq -c --arg id "$1" '.[] | select(.id == $id) | [.state, .reasons]' "$TMP/p.json"; }
expect_eq "unknown settings: one reason each" \
  '["rejected",["settings[1] (device_vendor_msft_defender_configuration_devicecontrolenabled): unknown setting: not in the connector'"'"'s settings catalog (mapping/policy_catalog.def)","settings[2] (device_vendor_msft_policy_config_defender_madeupsetting): unknown setting: not in the connector'"'"'s settings catalog (mapping/policy_catalog.def)"]]' \
  "$(r "$UNK")"
expect_eq "out of range: the integer and the option" \
  '["rejected",["settings[0] (device_vendor_msft_policy_config_defender_daystoretaincleanedmalware): integer 91 is outside 0..90","settings[1] (device_vendor_msft_policy_config_defender_allowcloudprotection): option \"device_vendor_msft_policy_config_defender_allowcloudprotection_7\" is not one of device_vendor_msft_policy_config_defender_allowcloudprotection_0, device_vendor_msft_policy_config_defender_allowcloudprotection_1"]]' \
  "$(r "$RNG")"
expect_eq "malformed instance" \
  '["rejected",["settings[1] (device_vendor_msft_policy_config_defender_avgcpuloadfactor): malformed instance: simpleSettingValue is missing"]]' \
  "$(r "$MAL")"
expect_eq "untargetable collection" \
  '["rejected",["target collection PS100013 is not attached to the tenant or not enabled for cloud sync"]]' "$(r "$TGT")"
expect_eq "not for ConfigMgr: ignored, no reason" '["ignored",[]]' "$(r "$MDM")"
for id in "$UNK" "$RNG" "$MAL" "$TGT" "$MDM"; do
  expect_eq "nothing of $id at the site" none "$(site_version "$id")"
done

CONFLICT="device_vendor_msft_policy_config_defender_avgcpuloadfactor (./Device/Vendor/MSFT/Policy/Config/Defender/AvgCPULoadFactor): in conflict in collection"
expect_eq "conflict A: in conflict on both collections (they share members)" \
  "[\"conflict\",[\"$CONFLICT PS100012 with policy $CB, which sets it differently; neither value is applied\",\"$CONFLICT PS100014 with policy $CB, which sets it differently; neither value is applied\"]]" \
  "$(r "$CA")"
expect_eq "conflict B: the same" \
  "[\"conflict\",[\"$CONFLICT PS100012 with policy $CA, which sets it differently; neither value is applied\",\"$CONFLICT PS100014 with policy $CA, which sets it differently; neither value is applied\"]]" \
  "$(r "$CB")"
docs_of() { site_get "CmbridgePolicy('$1')" | grep -o 'csp="[^"]*"' | sed 's/csp="\(.*\)"/\1/; s|.*/||' | tr '\n' ' '; }
expect_eq "conflict A at the site without the conflicting setting" "AllowIOAVProtection " "$(docs_of "$CA")"
expect_eq "conflict B at the site without the conflicting setting" "AllowScriptScanning " "$(docs_of "$CB")"
for id in "$XA" "$XB" "$RA" "$RB"; do
  expect_eq "merged, not in conflict: $id" '["applied",[]]' "$(r "$id")"
done
expect_match "each exclusion policy keeps its own list" 'ExcludedPaths" type="string">C:\\Data\|C:\\Logs<' "$(site_get "CmbridgePolicy('$XA')")"

say "the tenant gets the states and reasons"
poll
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF"); TOKEN=$(graph_token)
lab_stats
expect_match "status posted for the ten policies meant for ConfigMgr" '^[1-9]' "$(stat "['policies']['statusPoliciesAccepted']")"
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/configManagerCollections/getPolicySummary(policyId='$CA')" > "$TMP/sum.json"
expect_match "a conflicting policy's summary counts its targets" '^[1-9][0-9]* ' "$(jq -r '"\(.targetedDeviceCount) "' "$TMP/sum.json")"

say "fixing a rejected policy applies it"
passign "$TGT" PS100012
poll
expect_eq "assigned to an attached collection: applied" '["applied",[]]' \
  "$("$CMBRIDGE" -c "$PCONF" policies --json | jq -c --arg id "$TGT" '.[] | select(.id == $id) | [.state, .reasons]')"
expect_eq "at the site" 1 "$(site_version "$TGT")"
finish
