#!/usr/bin/env bash
# Exported baselines go through whole (docs/policies.md §2): the settings
# catalog bodies of tests/unit/data/policies/ (antivirus, Windows Security
# experience, firewall with its profiles and rules, EDR, ASR: dozens of
# settings, nested group collections, annotations), created in the lab
# tenant as an admin would re-import an export (read-only and unknown
# properties dropped, which Graph refuses on create), reach the site in
# one poll with every setting mapped: the same number of nodes the unit
# test pins per body, each at the CSP path the catalog gives it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policies_lib.sh"

DATA="$(dirname "$0")/../unit/data/policies"
pol_setup --devices 200 --seed 7

# An export as a create body: what Graph computes or a newer Graph added goes, the rest stays as exported.
to_create() {
  jq -c 'del(.["@odata.context"], .id, .createdDateTime, .lastModifiedDateTime, .settingCount, .isAssigned,
             .creationSource, .priorityMetaData, .assignments, .["assignments@odata.context"], .["settings@odata.context"])
         | .settings |= map(del(.id))
         | walk(if type == "object" then del(.futureGraphProperty, .unknownNewInstanceProperty) else . end)' "$1"
}

declare -A ID
for f in antivirus windows_security firewall edr asr; do
  to_create "$DATA/$f.json" > "$TMP/$f.json"
  ID[$f]=$(pcreate "$TMP/$f.json")
  expect_match "created $f" '^[0-9a-f-]{36}$' "${ID[$f]}"
  passign "${ID[$f]}" PS100012 PS100014
done

say "one poll takes every baseline to the site"
poll; expect_eq "one poll" 0 $?
expect_match "five accepted, five written" '5 listed \(5 read, 0 not for ConfigMgr\), 5 accepted \(0 in conflict\), 0 rejected, 0 unassigned; site: 5 written' \
  "$(cat "$TMP/poll.txt")"

# doc_summary ID: "<settings> <groups> <distinct csp roots>" of the site's document, and every csp on its own line.
doc_nodes() {
  site_get "CmbridgePolicy('$1')" > "$TMP/doc.xml"
  python3 - "$TMP/doc.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"p": "urn:cmbridge:policy:1"}
r = ET.parse(sys.argv[1]).getroot()
s = r.findall(".//p:setting", ns)
print(len(s), len(r.findall("p:settings/p:group", ns)), r.get("family"))
for x in s:
    print(x.get("csp"))
PY
}

# check FAMILY SETTINGS GROUPS TEMPLATE-FAMILY CSP-THAT-MUST-BE-THERE...
check() {
  local f=$1 n=$2 g=$3 fam=$4; shift 4
  doc_nodes "${ID[$f]}" > "$TMP/$f.nodes"
  expect_eq "$f: every setting mapped ($n nodes, $g groups)" "$n $g $fam" "$(head -n1 "$TMP/$f.nodes")"
  expect_eq "$f: applied, no reason, $n settings" "[\"applied\",[],$n]" "$(pol '[.state, .reasons, .settings]' "${ID[$f]}")"
  for csp in "$@"; do
    expect_eq "$f: $csp" 1 "$(grep -cxF -- "$csp" "$TMP/$f.nodes")"
  done
}
check antivirus 40 0 endpointSecurityAntivirus \
  ./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring \
  ./Device/Vendor/MSFT/Policy/Config/Defender/ExcludedPaths \
  ./Device/Vendor/MSFT/Policy/Config/Defender/ThreatSeverityDefaultAction \
  ./Device/Defender/DisablePrivacyMode
check windows_security 23 0 endpointSecurityAntivirus \
  ./Vendor/MSFT/Defender/Configuration/TamperProtection \
  ./Device/Vendor/MSFT/Policy/Config/WindowsDefenderSecurityCenter/CompanyName
check firewall 104 4 endpointSecurityFirewall \
  ./Vendor/MSFT/Firewall/MdmStore/Global/CRLcheck \
  ./Vendor/MSFT/Firewall/MdmStore/DomainProfile/EnableFirewall \
  ./Vendor/MSFT/Firewall/MdmStore/PublicProfile/LogMaxFileSize
check edr 3 0 endpointSecurityEndpointDetectionAndResponse \
  ./Device/Vendor/MSFT/WindowsAdvancedThreatProtection/Configuration/SampleSharing
check asr 5 0 endpointSecurityAttackSurfaceReduction \
  ./Device/Vendor/MSFT/Policy/Config/Defender/AttackSurfaceReductionRules \
  ./Device/Vendor/MSFT/Policy/Config/Defender/EnableControlledFolderAccess

say "firewall rules: one group per rule, each with its properties"
expect_match "a rule node" '^\./Vendor/MSFT/Firewall/MdmStore/FirewallRules/[^/]+/Direction$' \
  "$(grep -m1 'FirewallRules/.*/Direction$' "$TMP/firewall.nodes")"

say "a second poll writes nothing"
lab_stats; puts=$(stat "['policies']['sitePuts']")
poll
lab_stats
expect_eq "no PUT" "$puts" "$(stat "['policies']['sitePuts']")"
expect_eq "five documents, each once" "5 0" "$(stat "['policies']['siteDocuments']") $(stat "['policies']['duplicateDocuments']")"
finish
