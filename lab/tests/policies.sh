# Endpoint security policies (docs/wire-format.md §9, docs/lab.md "Endpoint
# security policies"): sourced by selftest.sh on its remote-actions lab D3
# (200 devices, seed 7, 50 tenant devices keyed PS1:<ResourceID>, [policies]
# report_delay_ms = 1500) with its helpers eq, fail, g3, site3, c3, C3, TEN3.

GP="$TEN3/beta/deviceManagement/configurationPolicies"
POLSITE="https://127.0.0.1:$(c3 site port)/AdminService/v1.0"
gj() { g3 -H 'Content-Type: application/json' "$@"; }
gst() { gj -o /dev/null -w '%{http_code}' "$@"; }
emsg() { jq -r .error.message; }

# ---- tenant: create, as Microsoft's settings catalog examples post a policy --------------------
# (learn.microsoft.com, "Create deviceManagementConfigurationPolicy" and the
# settings catalog examples: name, description, platforms, technologies,
# roleScopeTagIds, templateReference, settings of typed setting instances)
choice() { # choice DEFINITION VALUE -> one deviceManagementConfigurationSetting
	jq -nc --arg d "$1" --arg v "$2" '{"@odata.type":"#microsoft.graph.deviceManagementConfigurationSetting",
	  settingInstance:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
	    settingDefinitionId:$d, choiceSettingValue:{"@odata.type":"#microsoft.graph.deviceManagementConfigurationChoiceSettingValue",
	      value:$v, children:[]}}}'; }
RTM=device_vendor_msft_policy_config_defender_allowrealtimemonitoring
CLOUD=device_vendor_msft_policy_config_defender_allowcloudprotection
pbody() { # pbody NAME TECHNOLOGIES FAMILY -> a policy body with one setting
	jq -nc --arg n "$1" --arg t "$2" --arg f "$3" --argjson s "$(choice "$RTM" "${RTM}_1")" \
		'{name:$n, description:"cmbridge lab", platforms:"windows10", technologies:$t, roleScopeTagIds:["0"],
		  templateReference:{templateId:"804339ad-1553-4478-a742-138fb5807418_1", templateFamily:$f}, settings:[$s]}'; }
pbody "AV – pilot" configManager endpointSecurityAntivirus >"$D3/av.json"
PAV=$("$LAB" policy "$D3" create "$D3/av.json")
eq "policy create: a GUID" "$(grep -cE '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$PAV")" "1"
P=$(g3 "$GP/$PAV")
eq "policy get: annotations and tenant properties" "$(jq -c --arg t "$TEN3" '[."@odata.context" == "\($t)/beta/$metadata#deviceManagement/configurationPolicies/$entity",
	."@odata.type", .id == "'"$PAV"'", .name, .technologies, .settingCount, .isAssigned, (.createdDateTime == .lastModifiedDateTime),
	(.createdDateTime | test("^20[0-9-]{8}T[0-9:]{8}[.][0-9]{7}Z$")), .templateReference]' <<<"$P")" \
	'[true,"#microsoft.graph.deviceManagementConfigurationPolicy",true,"AV – pilot","configManager",1,false,true,true,{"templateId":"804339ad-1553-4478-a742-138fb5807418_1","templateFamily":"endpointSecurityAntivirus","templateDisplayName":null,"templateDisplayVersion":null}]'
printf '%s' "$P" | jq 'del(."@odata.context")' >"$D3/av-get.json"
eq "policy get: valid against the CSDL" "$("$LAB" schema-check --type deviceManagementConfigurationPolicy "$D3/av-get.json"; echo $?)" "0"
R=$(pbody "FW – servers" configManager endpointSecurityFirewall | gj -w '\n%{http_code}' --data-binary @- "$GP")
eq "policy create (POST, 201)" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .technologies)" "201 configManager"
PFW=$(head -n1 <<<"$R" | jq -r .id)
PMDM=$(pbody "AV – cloud" "mdm,microsoftSense" endpointSecurityAntivirus | gj --data-binary @- "$GP" | jq -r .id)

# invalid bodies: 400 naming the property path, as the schema validator words it
bad() { # bad NAME JQ-EDIT EXPECTED-MESSAGE
	local r; r=$(pbody x mdm endpointSecurityAntivirus | jq -c "$2" | gj -w '\n%{http_code}' --data-binary @- "$GP")
	eq "policy 400: $1" "$(tail -n1 <<<"$r") $(head -n1 <<<"$r" | emsg)" "400 $3"
}
bad "unknown property" '. + {colour:"red"}' "colour: not a property of graph.deviceManagementConfigurationPolicy"
bad "wrong type" '.name = 5' "name: expected a string (Edm.String), got number"
bad "wrong enum member" '.technologies = "mdm,bogus"' "technologies: 'bogus' is not a member of graph.deviceManagementConfigurationTechnologies"
bad "enum in a nested type" '.templateReference.templateFamily = "antivirus"' "templateReference.templateFamily: 'antivirus' is not a member of graph.deviceManagementConfigurationTemplateFamily"
bad "abstract setting instance" 'del(.settings[0].settingInstance."@odata.type")' \
	"settings[0].settingInstance: graph.deviceManagementConfigurationSettingInstance is abstract: @odata.type must name a type derived from it"
bad "setting value type" '.settings[0].settingInstance.choiceSettingValue.value = 1' \
	"settings[0].settingInstance.choiceSettingValue.value: expected a string (Edm.String), got number"
bad "required name" 'del(.name)' "name: required"
eq "policy 400: malformed JSON" "$(printf '{"name":' | gj --data-binary @- "$GP" | emsg)" \
	"Malformed JSON in the request body at byte offset 8: parse error: premature EOF"
eq "policy 401 without a token" "$("${C3[@]}" -o /dev/null -w '%{http_code}' "$GP")" "401"

# ---- tenant: list, $filter, $select, $expand, paging ----------------------------------------------
names() { g3 "$GP?\$filter=$1" | jq -c '[.value[].name] | sort'; }
eq "filter technologies has" "$(names "technologies%20has%20'configManager'")" '["AV – pilot","FW – servers"]'
eq "filter flags eq, any order" "$(names "technologies%20eq%20'microsoftSense,mdm'")" '["AV – cloud"]'
eq "filter templateFamily" "$(names "templateReference/templateFamily%20eq%20'endpointSecurityAntivirus'%20and%20technologies%20has%20'configManager'")" '["AV – pilot"]'
eq "filter name eq" "$(names "name%20eq%20'FW%20%E2%80%93%20servers'")" '["FW – servers"]'
ferr() { g3 "$GP?\$filter=$1" | emsg; }
eq "filter unknown property" "$(ferr "colour%20eq%20'x'")" "Invalid filter clause: Could not find a property named 'colour' on type 'microsoft.graph.deviceManagementConfigurationPolicy'."
eq "filter unknown member" "$(ferr "technologies%20has%20'bogus'")" "Invalid filter clause: 'bogus' is not a member of graph.deviceManagementConfigurationTechnologies"
eq "filter has on a string" "$(g3 -o /dev/null -w '%{http_code}' "$GP?\$filter=name%20has%20'x'")" "400"
eq "filter function (lab limit)" "$(g3 -o /dev/null -w '%{http_code}' "$GP?\$filter=startswith(name,'A')")" "400"
eq "unsupported option" "$(g3 "$GP?\$orderby=name" | emsg)" "Query option '\$orderby' is not supported by the lab on this route."
eq "\$select" "$(g3 "$GP?\$select=name&\$top=1" | jq -c '.value[0] | keys_unsorted')" '["@odata.type","id","name"]'
eq "\$select unknown" "$(g3 "$GP?\$select=colour" | emsg)" "Could not find a property named 'colour' on type 'microsoft.graph.deviceManagementConfigurationPolicy'."
eq "\$expand=settings,assignments" "$(g3 "$GP/$PAV?\$expand=settings,assignments" | jq -c '[.settings[0].id, .settings[0]."@odata.type", .settings[0].settingInstance.settingDefinitionId, .assignments]')" \
	"[\"0\",\"#microsoft.graph.deviceManagementConfigurationSetting\",\"$RTM\",[]]"
eq "\$expand unknown" "$(g3 "$GP?\$expand=devices" | emsg)" "Could not find a property named 'devices' on type 'microsoft.graph.deviceManagementConfigurationPolicy'."
P1=$(g3 "$GP?\$top=2&\$select=name"); NL=$(jq -r '."@odata.nextLink"' <<<"$P1")
P2=$(g3 "$NL")
eq "paging: 2 + 1, the options kept" "$(jq '.value | length' <<<"$P1") $(jq '.value | length' <<<"$P2") $(jq 'has("@odata.nextLink")' <<<"$P2") $(jq -c '.value[0] | keys_unsorted' <<<"$P2")" \
	'2 1 false ["@odata.type","id","name"]'
eq "paging: every policy once" "$(jq -s -c '[.[].value[].id] | sort' <<<"$P1$P2")" "$(jq -nc --arg a "$PAV" --arg b "$PFW" --arg c "$PMDM" '[$a,$b,$c] | sort')"
eq "bad \$skiptoken" "$(g3 -o /dev/null -w '%{http_code}' "$GP?\$skiptoken=zz")" "400"

# ---- tenant: PATCH, settings, assign, delete --------------------------------------------------------
T0=$(jq -r .lastModifiedDateTime <<<"$P"); C0=$(jq -r .createdDateTime <<<"$P")
R=$(jq -nc '{name:"AV – pilot (v2)"}' | gj -X PATCH -w '\n%{http_code}' --data-binary @- "$GP/$PAV")
eq "patch name" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c --arg t "$T0" --arg c "$C0" '[.name, .lastModifiedDateTime > $t, .createdDateTime == $c, .settingCount]')" \
	'200 ["AV – pilot (v2)",true,true,1]'
T1=$(g3 "$GP/$PAV" | jq -r .lastModifiedDateTime)
jq -nc --argjson a "$(choice "$RTM" "${RTM}_1")" --argjson b "$(choice "$CLOUD" "${CLOUD}_1")" '{settings:[$a,$b]}' >"$D3/av-settings.json"
eq "patch settings (CLI update)" "$("$LAB" policy "$D3" update "$PAV" "$D3/av-settings.json")" "$PAV"
eq "settings replaced" "$(g3 "$GP/$PAV/settings" | jq -c --arg t "$TEN3" '[(."@odata.context" | endswith("/configurationPolicies('"'$PAV'"')/settings")), [.value[].id], [.value[].settingInstance.settingDefinitionId]]')" \
	"[true,[\"0\",\"1\"],[\"$RTM\",\"$CLOUD\"]]"
eq "settingCount and lastModified follow" "$(g3 "$GP/$PAV" | jq -c --arg t "$T1" '[.settingCount, .lastModifiedDateTime > $t]')" "[2,true]"
eq "patch: technologies stay" "$(jq -nc '{technologies:"mdm"}' | gj -X PATCH --data-binary @- "$GP/$PAV" | emsg)" \
	"technologies: cannot be changed on an existing policy (create a new policy)"
T2=$(g3 "$GP/$PAV" | jq -r .lastModifiedDateTime)
"$LAB" policy "$D3" assign "$PAV" PS100012 PS100014
eq "assign (CLI): assignments" "$(g3 "$GP/$PAV/assignments" | jq -c '[.value[] | [."@odata.type", .id, .target."@odata.type", .target.collectionId]]')" \
	"[[\"#microsoft.graph.deviceManagementConfigurationPolicyAssignment\",\"${PAV}_PS100012\",\"#microsoft.graph.configurationManagerCollectionAssignmentTarget\",\"PS100012\"],[\"#microsoft.graph.deviceManagementConfigurationPolicyAssignment\",\"${PAV}_PS100014\",\"#microsoft.graph.configurationManagerCollectionAssignmentTarget\",\"PS100014\"]]"
eq "assign: isAssigned, lastModified" "$(g3 "$GP/$PAV" | jq -c --arg t "$T2" '[.isAssigned, .lastModifiedDateTime > $t]')" "[true,true]"
R=$(jq -nc '{assignments:[{target:{"@odata.type":"#microsoft.graph.configurationManagerCollectionAssignmentTarget",collectionId:"PS100011"}}]}' \
	| gj -w '\n%{http_code}' --data-binary @- "$GP/$PFW/assign")
eq "assign (POST): the reply" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[(."@odata.context" | endswith("$metadata#Collection(microsoft.graph.deviceManagementConfigurationPolicyAssignment)")), [.value[].target.collectionId]]')" \
	'200 [true,["PS100011"]]'
eq "assign: a target must say its type" "$(jq -nc '{assignments:[{target:{collectionId:"PS100011"}}]}' | gj --data-binary @- "$GP/$PFW/assign" | emsg)" \
	"assignments[0].target: graph.deviceAndAppManagementAssignmentTarget is abstract: @odata.type must name a type derived from it"
eq "assign: collectionId required" "$(jq -nc '{assignments:[{target:{"@odata.type":"#microsoft.graph.configurationManagerCollectionAssignmentTarget"}}]}' | gj --data-binary @- "$GP/$PFW/assign" | emsg)" \
	"assignments[0].target.collectionId: required for a configurationManagerCollectionAssignmentTarget"
eq "filter isAssigned" "$(names "isAssigned%20eq%20true")" '["AV – pilot (v2)","FW – servers"]'
eq "policy list (CLI)" "$("$LAB" policy "$D3" list | awk -v id="$PAV" '$1 == id {print $2, $3, $4, $6}')" "configManager endpointSecurityAntivirus 2 PS100012,PS100014"
eq "delete" "$(gst -X DELETE "$GP/$PMDM") $(gst "$GP/$PMDM") $(gst -X DELETE "$GP/$PMDM")" "204 404 404"
set +e; MSG=$("$LAB" policy "$D3" delete "$PMDM" 2>&1); RC=$?; set -e
eq "policy delete (CLI) unknown" "$RC ${MSG##*: 404 }" "1 Resource not found: no deviceManagementConfigurationPolicy with id '$PMDM'."
eq "policy: usage" "$("$LAB" policy "$D3" frob >/dev/null 2>&1; echo $?)" "2"

# ---- site: the policy document store (AdminService v1.0, cmbridge's own) ------------------------------
H1=$(printf 'policy-1' | sha256sum | cut -c1-64); H2=$(printf 'policy-2' | sha256sum | cut -c1-64)
doc() { # doc ID VERSION HASH [FAMILY] [COLLECTION...]
	local id=$1 v=$2 h=$3 fam=${4:-endpointSecurityAntivirus} t=''; shift 4 || shift $#
	for c in "${@:-PS100012}"; do t="$t<collection id=\"$c\"/>"; done
	cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<cmbridgePolicy xmlns="urn:cmbridge:policy:1" tenantPolicyId="$id" version="$v"
                contentHash="$h" family="$fam" name="AV – pilot (v2)" lastModified="2026-01-01T10:00:00Z">
  <targets>$t</targets>
  <settings>
    <setting definitionId="$RTM" csp="./Device/Vendor/MSFT/Policy/Config/Defender/AllowRealtimeMonitoring" type="int">1</setting>
    <setting definitionId="$CLOUD" csp="./Device/Vendor/MSFT/Policy/Config/Defender/AllowCloudProtection" type="int">1</setting>
    <group definitionId="vendor_msft_firewall_mdmstore_firewallrules_{0}" csp="./Vendor/MSFT/Firewall/MdmStore/FirewallRules/cmbridge-1">
      <setting definitionId="vendor_msft_firewall_mdmstore_firewallrules_{0}_name" csp="./Vendor/MSFT/Firewall/MdmStore/FirewallRules/cmbridge-1/Name" type="string">Block Telnet</setting>
    </group>
  </settings>
</cmbridgePolicy>
EOF
}
sput() { # sput FILE ID -> body\nstatus
	site3 -X PUT -H 'Content-Type: application/xml' --data-binary @"$1" -w '\n%{http_code}' "$POLSITE/CmbridgePolicy('$2')"; }
pst() { sput "$@" | jq -rs 'if length == 2 then "\(.[1]) \(.[0].state // .[0].error.message)" else "?" end'; }
doc "$PAV" 1 "$H1" endpointSecurityAntivirus PS100012 PS100014 >"$D3/p1.xml"
doc "$PAV" 2 "$H2" endpointSecurityAntivirus PS100012 PS100014 >"$D3/p2.xml"
R=$(sput "$D3/p1.xml" "$PAV")
eq "site PUT created" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c .)" "201 {\"tenantPolicyId\":\"$PAV\",\"version\":1,\"contentHash\":\"$H1\",\"state\":\"created\"}"
CP="$POLSITE/CmbridgePolicy('$PAV')/Compliance"
eq "compliance before the clients report" "$(site3 "$CP" | jq -c '[.reported, .version, ([.devices[].state] | unique), [.collections[] | .compliant + .nonCompliant + .error + .conflict + .notApplicable]]')" \
	'[false,1,["pending"],[0,0]]'
eq "site PUT again: unchanged" "$(pst "$D3/p1.xml" "$PAV")" "200 unchanged"
eq "site PUT v2: updated" "$(pst "$D3/p2.xml" "$PAV")" "200 updated"
eq "site PUT v1 after v2: 409" "$(pst "$D3/p1.xml" "$PAV")" "409 Policy '$PAV' is stored at version 2; version 1 is older."
doc "$PAV" 2 "$H1" >"$D3/p2b.xml"
eq "site PUT v2, other hash: 409" "$(pst "$D3/p2b.xml" "$PAV")" "409 Policy '$PAV' version 2 is stored with another contentHash; a change needs a higher version."
V="The policy document is not valid:"
eq "site PUT: id differs from the URL" "$(pst "$D3/p2.xml" "$PFW")" "400 $V tenantPolicyId '$PAV' differs from the key in the URL '$PFW'."
doc "$PAV" 3 "$H1" endpointSecurityFoo >"$D3/px.xml"
eq "site PUT: unknown family" "$(pst "$D3/px.xml" "$PAV")" "400 $V cmbridgePolicy: family 'endpointSecurityFoo' is not an endpoint security template family (endpointSecurityAntivirus, endpointSecurityDiskEncryption, endpointSecurityFirewall, endpointSecurityEndpointDetectionAndResponse, endpointSecurityAttackSurfaceReduction, endpointSecurityAccountProtection, endpointSecurityApplicationControl)."
doc "$PAV" 3 "$H1" endpointSecurityAntivirus PS100012 PS109999 >"$D3/px.xml"
eq "site PUT: unknown collection" "$(pst "$D3/px.xml" "$PAV")" "400 $V targets/collection[2]: collection 'PS109999' does not exist at this site."
doc "$PAV" 3 "$H1" endpointSecurityAntivirus PS100016 >"$D3/px.xml"
eq "site PUT: user collection" "$(pst "$D3/px.xml" "$PAV")" "400 $V targets/collection[1]: collection 'PS100016' is a user collection (endpoint security policies target devices)."
sed 's/type="int">1</type="int">yes</' "$D3/p2.xml" >"$D3/px.xml"
eq "site PUT: a value of the wrong type" "$(pst "$D3/px.xml" "$PAV")" "400 $V settings/setting[1] (line 6): 'yes' is not a value of type int."
sed 's/ csp="\.\/Device[^"]*AllowCloudProtection"//' "$D3/p2.xml" >"$D3/px.xml"
eq "site PUT: a missing attribute" "$(pst "$D3/px.xml" "$PAV")" "400 $V settings/setting[2] (line 7): attribute 'csp' is required."
sed 's/<targets>/<targets colour="red">/' "$D3/p2.xml" >"$D3/px.xml"
eq "site PUT: an unknown attribute" "$(pst "$D3/px.xml" "$PAV")" "400 $V targets (line 4): unknown attribute 'colour'."
printf '<?xml version="1.0"?>\n<!DOCTYPE cmbridgePolicy [<!ENTITY big "aaaa">]>\n<cmbridgePolicy xmlns="urn:cmbridge:policy:1">&big;</cmbridgePolicy>' >"$D3/px.xml"
eq "site PUT: a DTD" "$(pst "$D3/px.xml" "$PAV")" "400 $V a document type declaration (DTD) is not allowed."
printf '<cmbridgePolicy xmlns="urn:cmbridge:policy:1"><targets>' >"$D3/px.xml"
eq "site PUT: malformed" "$(pst "$D3/px.xml" "$PAV" | sed "s/ at line 1: .*//")" "400 $V malformed XML"
sed 's/urn:cmbridge:policy:1/urn:other/' "$D3/p2.xml" >"$D3/px.xml"
eq "site PUT: another namespace" "$(pst "$D3/px.xml" "$PAV")" "400 $V the root element must be cmbridgePolicy in namespace urn:cmbridge:policy:1 (got 'cmbridgePolicy')."
eq "site PUT: not XML" "$(site3 -X PUT -H 'Content-Type: application/json' -d '{}' -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('$PAV')")" "415"
eq "site PUT: needs the site's credentials" "$("${C3[@]}" -X PUT -H 'Content-Type: application/xml' --data-binary @"$D3/p2.xml" -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('$PAV')")" "401"
eq "site GET: the document as stored" "$(site3 "$POLSITE/CmbridgePolicy('$PAV')" -o "$D3/got.xml" -w '%{content_type}'; cmp -s "$D3/got.xml" "$D3/p2.xml" && echo ' same')" "application/xml same"
doc "$PFW" 1 "$H1" endpointSecurityFirewall PS100011 >"$D3/f1.xml"
eq "site PUT firewall" "$(pst "$D3/f1.xml" "$PFW")" "201 created"
eq "site list" "$(site3 "$POLSITE/CmbridgePolicy" | jq -c '[.value[] | [.tenantPolicyId, .version, .contentHash, .family, .targets, (.updated | test("^20.*Z$"))]]')" \
	"$(jq -nc --arg a "$PAV" --arg b "$PFW" --arg h1 "$H1" --arg h2 "$H2" '[[$a,2,$h2,"endpointSecurityAntivirus",["PS100012","PS100014"],true],[$b,1,$h1,"endpointSecurityFirewall",["PS100011"],true]] | sort')"
eq "site: unknown segment" "$(site3 -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicies")" "404"
eq "site: no query options" "$(site3 "$POLSITE/CmbridgePolicy?\$top=1" | emsg)" "The query parameter '\$top' is not supported."

# compliance for seed 7 once the clients reported (report_delay_ms = 1500)
sleep 1.6
CMP=$(site3 "$CP")
eq "compliance (seed 7): per collection" "$(jq -c '[.reported, .version, [.collections[] | [.collectionId, .targeted, .compliant, .nonCompliant, .error, .conflict, .notApplicable]]]' <<<"$CMP")" \
	'[true,2,[["PS100012",15,14,0,0,1,0],["PS100014",104,84,2,3,3,4]]]'
members() { local u="$SITE3/SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20'$1'&\$select=ResourceID" r
	while [ -n "$u" ]; do r=$(site3 "$u"); jq -r '.value[].ResourceID' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
eq "compliance: targeted = members" "$(jq -c '[.collections[].targeted]' <<<"$CMP")" "[$(members PS100012 | wc -l),$(members PS100014 | wc -l)]"
eq "compliance: one row per member device" "$(jq -c '[.devices[].ResourceID]' <<<"$CMP")" "$( (members PS100012; members PS100014) | sort -nu | jq -sc .)"
eq "compliance: failing settings from the document" "$(jq -c --arg a "$RTM" --arg b "$CLOUD" '([.devices[] | select(.state == "compliant" or .state == "notApplicable" or .state == "pending") | .failingSettings | length] | add), ([.devices[] | select(.state == "error" or .state == "nonCompliant" or .state == "conflict") | (.failingSettings | length > 0 and all(. == $a or . == $b or . == "vendor_msft_firewall_mdmstore_firewallrules_{0}_name"))] | all)' <<<"$CMP" | tr '\n' ' ')" "0 true "
eq "compliance: the same again" "$(site3 "$CP" | md5sum)" "$(printf "%s" "$CMP" | md5sum)"
eq "compliance: unknown policy" "$(site3 -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('nope')/Compliance")" "404"

# a lost reply on PUT and DELETE: applied, the client hears nothing
doc "$PAV" 3 "$H1" endpointSecurityAntivirus PS100012 >"$D3/p3.xml"
"$LAB" faults "$D3" --site --rate-reply-lost 1 >/dev/null
set +e; R=$(sput "$D3/p3.xml" "$PAV"); RC=$?; set -e
"$LAB" faults "$D3" --clear >/dev/null
eq "site PUT reply lost: no reply" "$([ "$RC" -ne 0 ] && tail -n1 <<<"$R")" "000"
eq "site PUT reply lost: applied" "$(site3 "$POLSITE/CmbridgePolicy" | jq -c --arg a "$PAV" '[.value[] | select(.tenantPolicyId == $a) | .version]')" "[3]"
eq "site PUT reply lost: the retry repeats" "$(pst "$D3/p3.xml" "$PAV")" "200 unchanged"
"$LAB" faults "$D3" --site --rate-reply-lost 1 >/dev/null
set +e; site3 -X DELETE -o /dev/null "$POLSITE/CmbridgePolicy('$PFW')"; RC=$?; set -e
"$LAB" faults "$D3" --clear >/dev/null
eq "site DELETE reply lost: applied" "$([ "$RC" -ne 0 ] && site3 -X DELETE -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('$PFW')")" "404"
doc "$PFW" 1 "$H1" endpointSecurityFirewall PS100011 >"$D3/f1.xml"
pst "$D3/f1.xml" "$PFW" >/dev/null
eq "site DELETE" "$(site3 -X DELETE -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('$PFW')") $(site3 -o /dev/null -w '%{http_code}' "$POLSITE/CmbridgePolicy('$PFW')")" "204 404"
eq "site policy stats" "$("$LAB" stats "$D3" --json | jq -c '.policies | [.siteDocuments, .siteCreated, .siteUpdated, .siteRepeats, .siteConflicts, .siteDeletes, .siteDeletesUnknown, .duplicateDocuments]')" \
	"[1,3,2,2,2,2,1,0]"

# ---- tenant: compliance back (PolicyStatusPost) and the Graph view of it -------------------------------
K1=$(head -n1 <<<"$ARIDS"); K2=$(sed -n 2p <<<"$ARIDS")
SB=$(jq -nc --arg p "$PAV" --arg k1 "PS1:$K1" --arg k2 "PS1:$K2" '{batchId:"ps-1", siteCode:"PS1", policies:[
	{policyId:$p, state:"applied", reasons:[], collections:[{collectionId:"PS100012",targeted:13,compliant:11,nonCompliant:1,error:1,conflict:0,notApplicable:0}],
	 devices:[{key:$k1,state:"compliant",failingSettings:[]},{key:$k2,state:"error",failingSettings:["'"$RTM"'"]},{key:"PS1:99999999",state:"compliant"}]},
	{policyId:"00000000-0000-0000-0000-000000000000", state:"pending"}]}')
spost_t() { printf '%s' "$1" | gzip -c | gj -H 'Content-Encoding: gzip' --data-binary @- -w '\n%{http_code}' "$TEN3/api/gateway/PolicyStatusPost"; }
R=$(spost_t "$SB")
eq "PolicyStatusPost" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c .)" \
	"200 {\"batchId\":\"ps-1\",\"replayed\":false,\"results\":[{\"policyId\":\"$PAV\",\"status\":\"accepted\",\"devices\":3,\"unknownDevices\":1},{\"policyId\":\"00000000-0000-0000-0000-000000000000\",\"status\":\"unknown\"}]}"
eq "PolicyStatusPost again: replayed" "$(spost_t "$SB" | head -n1 | jq -c '[.replayed, .results[0].status]')" '[true,"accepted"]'
eq "PolicyStatusPost: 400 naming what" "$(spost_t "$(jq -c '.batchId = "ps-x" | .policies[0].devices[1].state = "broken"' <<<"$SB")" | head -n1 | emsg)" \
	"policies[0].devices[1].state: missing or not one of compliant, nonCompliant, error, conflict, notApplicable."
eq "PolicyStatusPost: counts above targeted" "$(spost_t "$(jq -c '.batchId = "ps-y" | .policies[0].collections[0].compliant = 20' <<<"$SB")" | head -n1 | emsg)" \
	"policies[0].collections[0]: the states add up to 22, more than targeted (13)."
eq "PolicyStatusPost: needs a token" "$("${C3[@]}" -o /dev/null -w '%{http_code}' -X POST -d "$SB" "$TEN3/api/gateway/PolicyStatusPost")" "401"
eq "getPolicySummary" "$(g3 "$TEN3/beta/deviceManagement/configManagerCollections/getPolicySummary(policyId='$PAV')" | jq -c 'del(."@odata.context")')" \
	'{"@odata.type":"#microsoft.graph.configManagerPolicySummary","targetedDeviceCount":13,"compliantDeviceCount":11,"nonCompliantDeviceCount":1,"failedDeviceCount":1,"pendingDeviceCount":0,"enforcedDeviceCount":0}'
EJ="$TEN3/beta/deviceManagement/reports/exportJobs"
R=$(jq -nc --arg p "$PAV" '{reportName:"DeviceStatusesByConfigurationProfile", filter:"(PolicyId eq '"'"'\($p)'"'"')",
	select:["IntuneDeviceId","DeviceName","PolicyId","PolicyStatus","ReportStatus"], format:"csv"}' | gj --data-binary @- -w '\n%{http_code}' "$EJ")
JOB=$(head -n1 <<<"$R" | jq -r .id)
eq "export job requested" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[.status, .url, .format, (.id | startswith("DeviceStatusesByConfigurationProfile_"))]')" '201 ["notStarted",null,"csv",true]'
J=$(g3 "$EJ('$JOB')"); URL=$(jq -r .url <<<"$J")
eq "export job completed" "$(jq -c '[.status, (.url | test("/reportexports/.*[.]zip[?].*sig=")), .expirationDateTime > .requestDateTime]' <<<"$J")" '["completed",true,true]'
if command -v unzip >/dev/null; then
	"${C3[@]}" -o "$D3/report.zip" "$URL"
	ID1=$(g3 "$TEN3/beta/deviceManagement/managedDevices?\$top=1000" | jq -r --arg k "$K1" '.value[] | select(.deviceName == "PC-\($k)") | .id')
	ID2=$(g3 "$TEN3/beta/deviceManagement/managedDevices?\$top=1000" | jq -r --arg k "$K2" '.value[] | select(.deviceName == "PC-\($k)") | .id')
	eq "export: the posted devices with their managedDevice ids" "$(unzip -p "$D3/report.zip" | tr -d '\r')" "$(printf '%s\n' '"IntuneDeviceId","DeviceName","PolicyId","PolicyStatus","PolicyStatus_loc","ReportStatus"' \
		"\"$ID1\",\"PC-$K1\",\"$PAV\",\"2\",\"Succeeded\",\"Succeeded\"" "\"$ID2\",\"PC-$K2\",\"$PAV\",\"5\",\"Error\",\"Error\"")"
else
	echo "SKIP: export zip contents (unzip is not installed)"
fi
eq "export: the signature is the credential" "$("${C3[@]}" -o /dev/null -w '%{http_code}' "${URL%sig=*}sig=0")" "403"
eq "export: other reports (lab limit)" "$(jq -nc '{reportName:"Devices"}' | gj --data-binary @- "$EJ" | emsg)" "reportName: the lab exports only 'DeviceStatusesByConfigurationProfile' (got 'Devices')."
eq "export: unknown column" "$(jq -nc --arg p "$PAV" '{reportName:"DeviceStatusesByConfigurationProfile", filter:"(PolicyId eq '"'"'\($p)'"'"')", select:["Colour"]}' | gj --data-binary @- "$EJ" | emsg)" \
	"select: 'Colour' is not a column of DeviceStatusesByConfigurationProfile."
# a lost reply on PolicyStatusPost: stored, the retry gets the stored reply
"$LAB" faults "$D3" --tenant --rate-reply-lost 1 >/dev/null
set +e; spost_t "$(jq -c '.batchId = "ps-2"' <<<"$SB")" >/dev/null; RC=$?; set -e
"$LAB" faults "$D3" --clear >/dev/null
eq "PolicyStatusPost reply lost: the retry replays" "$([ "$RC" -ne 0 ] && spost_t "$(jq -c '.batchId = "ps-2"' <<<"$SB")" | head -n1 | jq -c '[.replayed, .results[0].status]')" '[true,"accepted"]'
eq "tenant policy stats" "$("$LAB" stats "$D3" --json | jq -c '.policies | [.tenantPolicies, .statusPosts, .statusReplayed, .statusPoliciesAccepted, .statusDevicesStored]')" "[2,6,2,2,3]"
eq "policy routes counted" "$("$LAB" stats "$D3" --json | jq -c '[.routes["POST /api/gateway/PolicyStatusPost"], .routes["PUT /AdminService/v1.0/CmbridgePolicy('"'"'{id}'"'"')"] > 10]')" "[7,true]"
