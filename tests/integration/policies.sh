#!/usr/bin/env bash
# The policy relay's life cycle against the lab (docs/policies.md, "The
# engine"): a policy created in the tenant with a body shaped as Microsoft's
# settings catalog examples reaches the site in one poll, mapped to the
# documented Policy CSP paths; a second poll (a restart) changes nothing;
# an update bumps the document's version; unassigning and deleting remove
# it; compliance flows back to the tenant's Graph views and to `cmbridge
# policies`; staging and `diff --policies` write nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policies_lib.sh"

pol_setup --devices 200 --seed 7

say "a policy as Microsoft's examples post it, assigned to PS100012"
pbody "AV - pilot" endpointSecurityAntivirus "$(s_choice "$RTM" 1)" "$(s_int "${AV}_avgcpuloadfactor" 50)" \
  "$(s_strings "${AV}_excludedextensions" .log .tmp)" > "$TMP/av.json"
P=$(pcreate "$TMP/av.json")
expect_match "created" '^[0-9a-f-]{36}$' "$P"
passign "$P" PS100012
poll; expect_eq "one poll" 0 $?
expect_match "the poll's summary" '1 listed \(1 read, 0 not for ConfigMgr\), 1 accepted .* site: 1 written' "$(cat "$TMP/poll.txt")"
expect_eq "the site holds version 1" 1 "$(site_version "$P")"
site_get "CmbridgePolicy('$P')" > "$TMP/doc.xml"
python3 - "$TMP/doc.xml" > "$TMP/doc.txt" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"p": "urn:cmbridge:policy:1"}
r = ET.parse(sys.argv[1]).getroot()
print(r.get("version"), r.get("family"), r.get("name"))
print(",".join(c.get("id") for c in r.findall("p:targets/p:collection", ns)))
for s in r.findall("p:settings/p:setting", ns):
    print(s.get("csp"), s.get("type"), s.text)
PY
expect_eq "the document as §5 of docs/policies.md defines it" "1 endpointSecurityAntivirus AV - pilot
PS100012
./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring int 1
./Device/Vendor/MSFT/Policy/Config/Defender/AvgCPULoadFactor int 50
./Device/Vendor/MSFT/Policy/Config/Defender/ExcludedExtensions string .log|.tmp" "$(cat "$TMP/doc.txt")"
expect_eq "policies --json: applied, targets, versions" '["applied",["PS100012"],1,1,3,[]]' \
  "$(pol '[.state, .targets, .version, .siteVersion, .settings, .reasons]' "$P")"
expect_match "the apply is logged under its correlation id" "\[policy-$P-v1\] policy $P \(AV - pilot\): version 1 created at the site" \
  "$(cat "$TMP/poll.log")"

say "a restart in between changes nothing"
lab_stats; puts=$(stat "['policies']['sitePuts']")
poll
lab_stats
expect_eq "no PUT after a restart" "$puts" "$(stat "['policies']['sitePuts']")"
expect_match "nothing read again" '1 listed \(0 read' "$(cat "$TMP/poll.txt")"
expect_eq "still version 1" 1 "$(site_version "$P")"

say "compliance flows back"
sleep 1.6 # [policies] report_delay_ms of the lab: the devices report
poll
"$CMBRIDGE" -c "$PCONF" policies --json > "$TMP/pol.json"
targeted=$(jq --arg id "$P" '.[] | select(.id == $id) | .compliance.collections[0].targeted' "$TMP/pol.json")
compliant=$(jq --arg id "$P" '.[] | select(.id == $id) | .compliance.collections[0].compliant' "$TMP/pol.json")
expect_match "PS100012's members counted ($targeted)" '^[1-9][0-9]*$' "$targeted"
expect_eq "every member reported (no pending)" 0 "$(jq --arg id "$P" '.[] | select(.id == $id) | .compliance.devicesByState.pending' "$TMP/pol.json")"
expect_eq "reported to the tenant" true "$(jq --arg id "$P" '.[] | select(.id == $id) | .reported' "$TMP/pol.json")"
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF"); TOKEN=$(graph_token)
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/configManagerCollections/getPolicySummary(policyId='$P')" > "$TMP/summary.json"
expect_eq "the tenant's getPolicySummary shows what the site reported" "$targeted $compliant 0" \
  "$(jq -r '"\(.targetedDeviceCount) \(.compliantDeviceCount) \(.pendingDeviceCount)"' "$TMP/summary.json")"
expect_match "cmbridge policies shows the counts" "PS100012: $targeted targeted, $compliant compliant" \
  "$("$CMBRIDGE" -c "$PCONF" policies)"
"$CMBRIDGE" -c "$PCONF" policies show "$P" --json > "$TMP/show.json"
expect_eq "policies show: one device entry per member, the journal's PUT done" "$targeted done put" \
  "$(jq -r '"\(.devices | length) \(.journal[0].outcome) \(.journal[0].op)"' "$TMP/show.json")"

say "an update bumps the site document's version"
pbody "AV - pilot" endpointSecurityAntivirus "$(s_choice "$RTM" 0)" "$(s_int "${AV}_avgcpuloadfactor" 50)" \
  "$(s_strings "${AV}_excludedextensions" .log .tmp)" | jq -c 'del(.templateReference)' > "$TMP/av2.json"
"$CMBRIDGE_LAB" policy "$LAB" update "$P" "$TMP/av2.json" > /dev/null || echo "FAIL: policy update"
poll
expect_match "read again" '1 listed \(1 read' "$(cat "$TMP/poll.txt")"
expect_eq "the site holds version 2" 2 "$(site_version "$P")"
expect_match "with the new value" 'AllowRealtimeMonitoring" type="int">0<' "$(site_get "CmbridgePolicy('$P')")"
lab_stats
expect_eq "one document, updated once" "1 1 0" \
  "$(stat "['policies']['siteDocuments']") $(stat "['policies']['siteUpdated']") $(stat "['policies']['duplicateDocuments']")"

say "staging writes nothing; diff --policies shows what would be written"
pbody "AV - staged" endpointSecurityAntivirus "$(s_choice "${AV}_allowcloudprotection" 1)" > "$TMP/st.json"
S=$(pcreate "$TMP/st.json"); passign "$S" PS100014
SCONF=$(conf_with staging connector.mode=staging site.cloud_sync_collections=PS100012,PS100014)
"$CMBRIDGE" -c "$PCONF" diff --policies --json > "$TMP/diff.json"
expect_eq "diff: the new policy would be put at version 1, the other kept" '["put",1,0] {"none":1,"put":1,"delete":0}' \
  "$(jq -c --arg id "$S" '.policies[] | select(.id == $id) | [.action, .version, .siteVersion]' "$TMP/diff.json") $(jq -c .counts "$TMP/diff.json")"
"$CMBRIDGE" -c "$PCONF" diff --policies > "$TMP/diff.txt"
expect_match "diff in text" "^put +$S version 1 \(site holds 0\), 1 settings, targets PS100014: AV - staged" "$(cat "$TMP/diff.txt")"
lab_stats; puts=$(stat "['policies']['sitePuts']"); posts=$(stat "['policies']['statusPosts']")
poll "$SCONF"
lab_stats
expect_eq "staging: no PUT, no status post" "$puts $posts" "$(stat "['policies']['sitePuts']") $(stat "['policies']['statusPosts']")"
expect_eq "staging: the staged policy is pending" '"pending"' "$(pol .state "$S")"
expect_match "staging says so" 'staging: nothing written' "$(cat "$TMP/poll.txt")"
poll
expect_eq "out of staging: written" 1 "$(site_version "$S")"

say "unassigning removes the document; assigning again brings it back"
passign "$P"
poll
expect_eq "unassigned: gone from the site" none "$(site_version "$P")"
expect_eq "unassigned: pending, saying why" '["pending",["no collection targets: nothing is written to the site until the policy is assigned to a collection"]]' \
  "$(pol '[.state, .reasons]' "$P")"
passign "$P" PS100012
poll
expect_eq "assigned again: at the site" 2 "$(site_version "$P")"

say "deleting removes it"
"$CMBRIDGE_LAB" policy "$LAB" delete "$P" > /dev/null || echo "FAIL: policy delete"
poll
expect_eq "deleted: gone from the site" none "$(site_version "$P")"
expect_eq "deleted: forgotten by the connector" "" "$(pol .state "$P")"
expect_match "logged" "policy $P \(AV - pilot\): version 2 removed from the site" "$(cat "$TMP/poll.log")"
poll
lab_stats
expect_eq "nothing removed twice" 0 "$(stat "['policies']['siteDeletesUnknown']")"

say "the status of the daemon's report"
"$CMBRIDGE" -c "$PCONF" status --json > "$TMP/status.json"
expect_eq "status --json counts policies by state" '{"pending":0,"applied":1,"rejected":0,"conflict":0,"removing":0,"ignored":0}' \
  "$(jq -c .policiesByState "$TMP/status.json")"
finish
