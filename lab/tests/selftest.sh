#!/usr/bin/env bash
# Self-test of cmbridge-lab: starts a fresh lab in a temporary directory and
# checks every surface with curl against the lab's CA, with exact assertions.
# Usage: selftest.sh PATH/TO/cmbridge-lab
set -euo pipefail

LAB=${1:?usage: selftest.sh PATH/TO/cmbridge-lab}
# Every tool a check needs, or none is run: 77 is "skipped" to ctest, never "passed".
for tool in curl jq gzip openssl xmllint:libxml2-utils krb5kdc:krb5-kdc kdb5_util:krb5-kdc \
	kadmin.local:krb5-admin-server kinit:krb5-user; do
	PATH=$PATH:/usr/sbin:/sbin command -v "${tool%%:*}" >/dev/null ||
		{ echo "SKIP: ${tool%%:*} is not installed (Debian: ${tool#*:}; deploy/install-deps.sh installs it)"; exit 77; }
done

D=$(mktemp -d /tmp/cmbridge-lab-selftest.XXXXXX)
cleanup() {
	local rc=$?
	"$LAB" down "$D" >/dev/null 2>&1 || true
	if [ -f "$D/kdc/kdc.pid" ]; then "$(dirname "$0")/kdc.sh" stop "$D/kdc" >/dev/null 2>&1 || true; fi
	if [ -n "${D3:-}" ]; then "$LAB" down "$D3" >/dev/null 2>&1 || true; fi
	if [ -n "${D4:-}" ]; then "$LAB" down "$D4" >/dev/null 2>&1 || true; fi
	if [ -n "${D2:-}" ] && [ -d "$D2" ]; then "$LAB" down "$D2/lab" >/dev/null 2>&1 || true; rm -rf "$D2"; fi
	if [ $rc -ne 0 ] && [ -f "$D/lab.log" ]; then echo "--- lab.log"; tail -n 20 "$D/lab.log"; fi
	rm -rf "$D"
	exit $rc
}
trap cleanup EXIT

CHECKS=0
fail() { echo "FAIL: $*" >&2; exit 1; }
eq() { # eq WHAT ACTUAL EXPECTED
	CHECKS=$((CHECKS + 1))
	[ "$2" == "$3" ] || fail "$1: got '$2', expected '$3'"
}

conf() { awk -v s="[$1]" -v k="$2" '$0==s{f=1;next} /^\[/{f=0} f && $1==k{print $3}' "$D/lab.conf"; }

# ---- the class table and docs/lab.md agree ---------------------------------------
DOC="$(dirname "$0")/../../docs/lab.md"
if [ -f "$DOC" ]; then
	eq "docs/lab.md class table = cmbridge-lab classes" \
		"$(awk '/^\| class \| property \| JSON \(native\) \| EDM \| source \|$/{f=1} f && !/^\|/{exit} f' "$DOC" | md5sum)" "$("$LAB" classes | md5sum)"
fi
eq "classes: one row per property" "$("$LAB" classes | grep -c '^| `SMS_')" "99"

# ---- init and up -------------------------------------------------------------
"$LAB" init "$D" --devices 300 --page-size 50 --seed 7 --epoch 1767225600 >/dev/null
eq "lab dir mode" "$(stat -c %a "$D")" "700"
eq "client-secret mode" "$(stat -c %a "$D/client-secret")" "600"
eq "site-password mode" "$(stat -c %a "$D/site-password")" "600"
eq "lab.key mode" "$(stat -c %a "$D/lab.key")" "600"
"$LAB" up "$D" --detach >/dev/null
eq "lab.pid written" "$(test -s "$D/lab.pid" && echo yes)" "yes"

SP=$(conf site port); TP=$(conf tenant port)
TENANT=$(conf lab tenant_id); CLIENT=$(conf lab client_id)
SECRET=$(cat "$D/client-secret"); PW=$(cat "$D/site-password")
eq "cmbridge.conf site url" "$(grep '^url = ' "$D/cmbridge.conf")" "url = https://127.0.0.1:$SP/AdminService"
eq "cmbridge.conf authority" "$(grep '^authority = ' "$D/cmbridge.conf")" "authority = https://127.0.0.1:$TP/$TENANT"

SITE="https://127.0.0.1:$SP/AdminService/wmi"
TEN="https://127.0.0.1:$TP"
C=(curl -s --cacert "$D/ca.pem")
site() { "${C[@]}" -u "CONTOSO\\svc-cmbridge:$PW" "$@"; }
code() { "${C[@]}" -o /dev/null -w '%{http_code}' "$@"; }

# ---- token endpoint ----------------------------------------------------------
TOKURL="$TEN/$TENANT/oauth2/v2.0/token"
tok() { "${C[@]}" -w '\n%{http_code}' -X POST "$@"; }
GOOD=(--data-urlencode grant_type=client_credentials --data-urlencode "client_id=$CLIENT"
      --data-urlencode "client_secret=$SECRET" --data-urlencode scope=https://graph.microsoft.com/.default)
R=$(tok "$TOKURL" "${GOOD[@]}")
eq "token status" "$(tail -n1 <<<"$R")" "200"
BODY=$(head -n1 <<<"$R")
eq "token_type" "$(jq -r .token_type <<<"$BODY")" "Bearer"
eq "expires_in" "$(jq -r .expires_in <<<"$BODY")" "3599"
TOKEN=$(jq -r .access_token <<<"$BODY")
b64d() { local s=${1//-/+}; s=${s//_//}; while [ $(( ${#s} % 4 )) -ne 0 ]; do s="$s="; done; base64 -d <<<"$s"; }
HDR=$(b64d "$(cut -d. -f1 <<<"$TOKEN")"); CLAIMS=$(b64d "$(cut -d. -f2 <<<"$TOKEN")")
eq "jwt alg" "$(jq -r .alg <<<"$HDR")" "RS256"
eq "jwt typ" "$(jq -r .typ <<<"$HDR")" "JWT"
eq "jwt aud" "$(jq -r .aud <<<"$CLAIMS")" "https://graph.microsoft.com"
eq "jwt iss" "$(jq -r .iss <<<"$CLAIMS")" "https://sts.windows.net/$TENANT/"
eq "jwt tid" "$(jq -r .tid <<<"$CLAIMS")" "$TENANT"
eq "jwt appid" "$(jq -r .appid <<<"$CLAIMS")" "$CLIENT"
eq "jwt lifetime" "$(jq -r '.exp - .iat' <<<"$CLAIMS")" "3599"

tokerr() { # tokerr NAME URL EXPECTED_STATUS EXPECTED_ERROR EXPECTED_CODE args...
	local name=$1 url=$2 st=$3 err=$4 ec=$5; shift 5
	local r; r=$(tok "$url" "$@")
	eq "$name status" "$(tail -n1 <<<"$r")" "$st"
	eq "$name error" "$(head -n1 <<<"$r" | jq -r .error)" "$err"
	eq "$name error_codes" "$(head -n1 <<<"$r" | jq -c .error_codes)" "[$ec]"
	eq "$name description prefix" "$(head -n1 <<<"$r" | jq -r '.error_description | split(":")[0]')" "AADSTS$ec"
}
tokerr "wrong secret" "$TOKURL" 401 invalid_client 7000215 --data-urlencode grant_type=client_credentials \
	--data-urlencode "client_id=$CLIENT" --data-urlencode client_secret=nope --data-urlencode scope=https://graph.microsoft.com/.default
tokerr "unknown client" "$TOKURL" 400 unauthorized_client 700016 --data-urlencode grant_type=client_credentials \
	--data-urlencode client_id=11111111-2222-3333-4444-555555555555 --data-urlencode "client_secret=$SECRET" --data-urlencode scope=https://graph.microsoft.com/.default
tokerr "bad scope" "$TOKURL" 400 invalid_scope 1002012 --data-urlencode grant_type=client_credentials \
	--data-urlencode "client_id=$CLIENT" --data-urlencode "client_secret=$SECRET" --data-urlencode scope=https://graph.microsoft.com/User.Read
tokerr "bad grant" "$TOKURL" 400 unsupported_grant_type 70003 --data-urlencode grant_type=password \
	--data-urlencode "client_id=$CLIENT" --data-urlencode "client_secret=$SECRET" --data-urlencode scope=https://graph.microsoft.com/.default
tokerr "missing secret" "$TOKURL" 400 invalid_request 900144 --data-urlencode grant_type=client_credentials \
	--data-urlencode "client_id=$CLIENT" --data-urlencode scope=https://graph.microsoft.com/.default
tokerr "unknown tenant" "$TEN/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token" 400 invalid_tenant 90002 "${GOOD[@]}"

# ---- site: paging, options, errors --------------------------------------------
walk() { # walk FIRST_URL -> prints one ResourceId/ResourceID per line; checks nextLink form
	local url=$1 base=$2 r n
	while [ -n "$url" ]; do
		r=$(site "$url")
		jq -r '.value[] | if has("ResourceId") then .ResourceId else .ResourceID end' <<<"$r"
		n=$(jq -r '."@odata.nextLink" // empty' <<<"$r")
		if [ -n "$n" ]; then
			case "$base" in
			abs) [[ $n == "$SITE/"* ]] || fail "nextLink not absolute: $n" ;;
			rel) [[ $n == SMS_* ]] || fail "nextLink not relative: $n"; n="$SITE/$n" ;;
			esac
		fi
		url=$n
	done
}
allpages() { local u=$1 r; while [ -n "$u" ]; do r=$(site "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
IDS=$(walk "$SITE/SMS_R_System?\$select=ResourceId,Name&\$orderby=ResourceId" abs)
eq "walk count" "$(wc -l <<<"$IDS")" "300"
eq "walk unique" "$(sort -u <<<"$IDS" | wc -l)" "300"
eq "walk ascending" "$(sort -n <<<"$IDS" | tr '\n' ,)" "$(tr '\n' , <<<"$IDS")"
eq "first ResourceID" "$(head -n1 <<<"$IDS")" "16777220"
for cls in SMS_CombinedDeviceResources SMS_Client_ComanagementState SMS_G_System_COMPUTER_SYSTEM SMS_G_System_PC_BIOS; do
	W=$(walk "$SITE/$cls?\$select=ResourceID&\$orderby=ResourceID" abs)
	CNT=$(site "$SITE/$cls?\$count=true&\$top=0" | jq '."@odata.count"')
	eq "$cls walk = count" "$(wc -l <<<"$W")" "$CNT"
	eq "$cls unique" "$(sort -u <<<"$W" | wc -l)" "$CNT"
done
# pages in ResourceID order are seeks from the token's key (site.c seek_page); with $count the same
# query is a scan of the whole class: both give the same rows, filtered or not, devices and members
for q in "SMS_R_System?\$select=ResourceId,Client&\$filter=Client%20eq%201" "SMS_G_System_PC_BIOS?\$select=ResourceID,SerialNumber" \
	"SMS_FullCollectionMembership?\$select=ResourceID,CollectionID" "SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20'SMS00001'&\$select=ResourceID" \
	"SMS_G_System_PC_BIOS?\$select=ResourceID&\$top=1000&\$skip=37" "SMS_FullCollectionMembership?\$select=ResourceID,CollectionID&\$skip=101" \
	"SMS_R_System?\$select=ResourceId,Client&\$filter=Client%20eq%201&\$orderby=ResourceId&\$skip=3"; do
	SEEK=$(allpages "$SITE/$q"); SCAN=$(allpages "$SITE/$q&\$count=true")
	eq "seek = scan: $q" "$(md5sum <<<"$SEEK") $(wc -l <<<"$SEEK")" "$(md5sum <<<"$SCAN") $(wc -l <<<"$SCAN")"
	[ "$(wc -l <<<"$SEEK")" -gt 100 ] || fail "seek = scan: $q: only $(wc -l <<<"$SEEK") rows"
done
eq "seek: pinned ResourceID = scan" "$(allpages "$SITE/SMS_FullCollectionMembership?\$filter=ResourceID%20eq%2016777230&\$select=ResourceID,CollectionID" | md5sum)" \
	"$(allpages "$SITE/SMS_FullCollectionMembership?\$filter=ResourceID%20eq%2016777230&\$select=ResourceID,CollectionID&\$count=true" | md5sum)"
eq "seek: pinned ResourceID past a token" "$(site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%2016777221&\$select=ResourceId&\$skiptoken=R16777221" | jq -c .value)" "[]"
# unfiltered $skip windows start from the last window's position (site.c hint): in any order, the scan's rows
WIN=$(for k in 100 50 150 0 250 200; do site "$SITE/SMS_G_System_PC_BIOS?\$select=ResourceID&\$top=50&\$skip=$k" | jq -c '.value[]'; done)
SCN=$(for k in 100 50 150 0 250 200; do site "$SITE/SMS_G_System_PC_BIOS?\$select=ResourceID&\$top=50&\$skip=$k&\$count=true" | jq -c '.value[]'; done)
eq "seek: \$skip windows out of order = scan" "$(md5sum <<<"$WIN") $(wc -l <<<"$WIN")" "$(md5sum <<<"$SCN") $(wc -l <<<"$SCN")"
eq "seek: \$top across pages" "$(allpages "$SITE/SMS_R_System?\$select=ResourceId&\$top=150" | wc -l)" "150"
P=$(site "$SITE/SMS_R_System?\$select=ResourceId,Name&\$top=3")
eq "\$select keys" "$(jq -c '[.value[0] | keys_unsorted[]]' <<<"$P")" '["ResourceId","Name"]'
eq "\$top 3" "$(jq '.value | length' <<<"$P")" "3"
eq "\$top no nextLink" "$(jq 'has("@odata.nextLink")' <<<"$P")" "false"
eq "content type" "$(site -o /dev/null -w '%{content_type}' "$SITE/SMS_R_System?\$top=1")" "application/json; odata.metadata=minimal"
eq "\$skip" "$(site "$SITE/SMS_R_System?\$select=ResourceId&\$skip=295" | jq -c '[.value[].ResourceId]')" "$(tail -n5 <<<"$IDS" | jq -sc .)"
eq "\$orderby desc" "$(site "$SITE/SMS_R_System?\$select=ResourceId&\$orderby=ResourceId%20desc&\$top=3" | jq -c '[.value[].ResourceId]')" \
	"$(tail -n3 <<<"$IDS" | tac | jq -sc .)"
TOP120=$(walk "$SITE/SMS_R_System?\$select=ResourceId&\$top=120" abs)
eq "\$top above page size" "$(wc -l <<<"$TOP120")" "120"
ALL=$(u="$SITE/SMS_R_System?\$select=ResourceId,Client,BuildExt"; while [ -n "$u" ]; do r=$(site "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done)
CLIENTS=$(jq -s '[.[] | select(.Client == 1)] | length' <<<"$ALL")
eq "\$filter Client eq 1 count" "$(site "$SITE/SMS_R_System?\$filter=Client%20eq%201&\$count=true&\$top=0" | jq '."@odata.count"')" "$CLIENTS"
eq "\$filter string and bool" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true%20and%20SiteCode%20eq%20'PS1'&\$count=true&\$top=0" | jq '."@odata.count"')" "$CLIENTS"
eq "\$filter key" "$(site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%2016777221&\$select=ResourceId" | jq -c .value)" '[{"ResourceId":16777221}]'
R=$(site -w '\n%{http_code}' "$SITE/SMS_R_System?\$select=ResourceId,Nope")
eq "unknown \$select status" "$(tail -n1 <<<"$R")" "400"
eq "unknown \$select body" "$(head -n1 <<<"$R")" \
	'{"error":{"code":"","message":"The query specified in the URI is not valid. Could not find a property named '"'"'Nope'"'"' on type '"'"'AdminService.SMS_R_System'"'"'."}}'
eq "unknown \$filter property" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$filter=Nope%20eq%201")" "400"
eq "unknown \$orderby property" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$orderby=Nope")" "400"
R=$(site -w '\n%{http_code}' "$SITE/SMS_NoSuchClass")
eq "unknown class status" "$(tail -n1 <<<"$R")" "404"
eq "unknown class code" "$(head -n1 <<<"$R" | jq -r .error.code)" "NotFound"
eq "no auth" "$(code "$SITE/SMS_R_System")" "401"
eq "wrong password" "$(code -u "CONTOSO\\svc-cmbridge:wrong" "$SITE/SMS_R_System")" "401"
eq "WWW-Authenticate" "$("${C[@]}" -D - -o /dev/null "$SITE/SMS_R_System" | tr -d '\r' | grep -i '^www-authenticate:')" \
	'WWW-Authenticate: Basic realm="AdminService"'
eq "gzip encoding" "$(site -H 'Accept-Encoding: gzip' -D - -o /dev/null "$SITE/SMS_R_System" | tr -d '\r' | grep -i '^content-encoding:')" \
	"Content-Encoding: gzip"
eq "gzip body" "$(site -H 'Accept-Encoding: gzip' "$SITE/SMS_R_System" | gzip -dc | md5sum)" "$(site "$SITE/SMS_R_System" | md5sum)"

# ---- AdminService strictness (odata.c): names, types, errors, $metadata -------------------
perr() { # perr PROPERTY CLASS -> the exact body ASP.NET OData answers for a property the class lacks
	printf '{"error":{"code":"","message":"The query specified in the URI is not valid. Could not find a property named '"'"'%s'"'"' on type '"'"'AdminService.%s'"'"'."}}' "$1" "$2"; }
for opt in '$select=ResourceID' '$filter=ResourceID%20eq%2016777220' '$orderby=ResourceID' '$select=resourceid' '$filter=Name%20eq%20%27x%27%20and%20ResourceID%20eq%201'; do
	R=$(site -w '\n%{http_code}' "$SITE/SMS_R_System?$opt")
	P=ResourceID; [ "$opt" != '$select=resourceid' ] || P=resourceid
	eq "SMS_R_System $opt" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R")" "400 $(perr "$P" SMS_R_System)"
done
eq "SMS_R_System ResourceId" "$(site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%2016777220&\$select=ResourceId&\$orderby=ResourceId" | jq -c .value)" '[{"ResourceId":16777220}]'
eq "SMS_R_System columns" "$(site "$SITE/SMS_R_System?\$top=1" | jq -c '.value[0] | keys_unsorted')" \
	'["ResourceId","Name","NetbiosName","ResourceType","SMSUniqueIdentifier","HardwareID","SMBIOSGUID","AADDeviceID","AADTenantID","OperatingSystemNameandVersion","Build","BuildExt","ResourceDomainORWorkgroup","Client","Obsolete","Decommissioned","Active"]'
eq "CDR has no IsDecommissioned" "$(site "$SITE/SMS_CombinedDeviceResources?\$select=ResourceID,IsDecommissioned")" "$(perr IsDecommissioned SMS_CombinedDeviceResources)"
eq "CDR columns" "$(site "$SITE/SMS_CombinedDeviceResources?\$top=1" | jq -c '.value[0] | keys_unsorted')" \
	'["ResourceID","Name","SiteCode","SMSID","Domain","IsClient","IsActive","IsBlocked","IsObsolete","ClientVersion","ClientActiveStatus","ClientCheckPass","LastPolicyRequest","LastActiveTime","DeviceOS","DeviceOSBuild"]'
eq "co-management columns" "$(site "$SITE/SMS_Client_ComanagementState?\$top=1" | jq -c '.value[0] | keys_unsorted')" \
	'["ResourceID","MachineId","Name","MDMEnrolled","Authority","ComgmtPolicyPresent","HybridAADJoined","AADJoined","MDMWorkloads"]'
eq "co-management has no ComgmtWorkloads" "$(site "$SITE/SMS_Client_ComanagementState?\$filter=ComgmtWorkloads%20gt%200")" "$(perr ComgmtWorkloads SMS_Client_ComanagementState)"
eq "co-management workloads" "$(site "$SITE/SMS_Client_ComanagementState?\$filter=MDMEnrolled%20eq%20true&\$select=MDMWorkloads,MachineId,ResourceID,Authority&\$top=1" | jq -c '.value[0] | [(.MDMWorkloads | type), .MachineId == .ResourceID, .Authority]')" '["number",true,"Intune"]'
eq "hardware columns" "$(site "$SITE/SMS_G_System_COMPUTER_SYSTEM?\$top=1" | jq -c '.value[0] | keys_unsorted') $(site "$SITE/SMS_G_System_PC_BIOS?\$top=1" | jq -c '.value[0] | keys_unsorted')" \
	'["ResourceID","GroupID","RevisionID","TimeStamp","Name","Manufacturer","Model"] ["ResourceID","GroupID","RevisionID","TimeStamp","SerialNumber"]'
eq "class names are case-insensitive" "$(site "$SITE/sms_r_system?\$top=1&\$select=ResourceId" | jq -r '."@odata.context"')" "$SITE/\$metadata#SMS_R_System"
eq "property names are case-sensitive" "$(site "$SITE/SMS_CombinedDeviceResources?\$select=isclient")" "$(perr isclient SMS_CombinedDeviceResources)"
eq "Boolean eq 1" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%201" | jq -r .error.message)" \
	"The query specified in the URI is not valid. A binary operator with incompatible types was detected. Found operand types 'Edm.Boolean' and 'Edm.Int32' for operator kind 'Equal'."
eq "string date literal" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=LastActiveTime%20gt%20'2000-01-01T00:00:00Z'" | jq -r .error.message)" \
	"The query specified in the URI is not valid. A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThan'."
eq "DateTimeOffset literal" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=LastActiveTime%20gt%202000-01-01T00:00:00Z&\$count=true&\$top=0" | jq '."@odata.count"')" "$CLIENTS"
eq "DateTimeOffset form" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true&\$top=1&\$select=LastActiveTime,IsClient" | jq -c '.value[0] | [(.LastActiveTime | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")), .IsClient]')" '[true,true]'
eq "parentheses" "$(site "$SITE/SMS_R_System?\$filter=(Client%20eq%201)%20and%20(Active%20eq%201)&\$count=true&\$top=0" | jq '."@odata.count"')" \
	"$(site "$SITE/SMS_R_System?\$filter=Client%20eq%201%20and%20Active%20eq%201&\$count=true&\$top=0" | jq '."@odata.count"')"
eq "unknown option" "$(site "$SITE/SMS_R_System?\$expand=Foo" | jq -c .error)" '{"code":"","message":"The query parameter '"'"'$expand'"'"' is not supported."}'
eq "bad \$top" "$(site "$SITE/SMS_R_System?\$top=-1" | jq -r .error.message)" \
	"The query specified in the URI is not valid. Invalid value '-1' for \$top query option found. The \$top query option requires a non-negative integer value."
MD=$(site -D "$D/md.hdr" "$SITE/\$metadata")
eq "\$metadata content type" "$(tr -d '\r' <"$D/md.hdr" | grep -i '^content-type:')" "Content-Type: application/xml"
CLS11='SMS_R_System SMS_CombinedDeviceResources SMS_Client_ComanagementState SMS_G_System_COMPUTER_SYSTEM SMS_G_System_PC_BIOS SMS_FullCollectionMembership SMS_Collection SMS_Site SMS_ClientOperation SMS_ClientOperationStatus SMS_CN_ClientStatus'
eq "\$metadata entity sets" "$(grep -o '<EntitySet Name="[^"]*"' <<<"$MD" | cut -d'"' -f2 | tr '\n' ' ')" "$CLS11 "
eq "\$metadata entity types" "$(grep -o '<EntityType Name="[^"]*"' <<<"$MD" | cut -d'"' -f2 | tr '\n' ' ')" "$CLS11 "
eq "\$metadata namespace" "$(grep -o '<Schema Namespace="[^"]*"' <<<"$MD")" '<Schema Namespace="AdminService"'
eq "\$metadata SMS_R_System key" "$(grep -o '<EntityType Name="SMS_R_System"><Key>[^K]*</Key><Property Name="ResourceId" Type="[^"]*" Nullable="false"/>' <<<"$MD")" \
	'<EntityType Name="SMS_R_System"><Key><PropertyRef Name="ResourceId"/></Key><Property Name="ResourceId" Type="Edm.Int64" Nullable="false"/>'
eq "\$metadata types" "$(grep -o '<Property Name="\(LastActiveTime\|ClientActiveStatus\|IsClient\|TargetResourceIDs\|MemberCount\|CollectionType\)" Type="[^"]*"' <<<"$MD" | sort -u | tr '\n' ' ')" \
	'<Property Name="ClientActiveStatus" Type="Edm.Int32" <Property Name="CollectionType" Type="Edm.Int64" <Property Name="IsClient" Type="Edm.Boolean" <Property Name="LastActiveTime" Type="Edm.DateTimeOffset" <Property Name="MemberCount" Type="Edm.Int32" <Property Name="TargetResourceIDs" Type="Collection(Edm.Int64)" '
eq "\$metadata actions" "$(grep -o '<Action Name="[^"]*"' <<<"$MD" | cut -d'"' -f2 | tr '\n' ' ')" "InitiateClientOperation BlockClients "
eq "\$metadata well-formed" "$(xmllint --noout - <<<"$MD" 2>&1 && echo ok)" "ok"
eq "service document" "$(site "$SITE/" | jq -r '[.value[].name] | join(" ")')" "$CLS11"
eq "\$metadata gzip" "$(site -H 'Accept-Encoding: gzip' "$SITE/\$metadata" | gzip -dc | md5sum)" "$(printf '%s' "$MD" | md5sum)"

# ---- gateway upload --------------------------------------------------------------
AUTH=(-H "Authorization: Bearer $TOKEN")
md() { jq -nc --arg n "$1" --arg j "${2:-hybridAzureADJoined}" \
	'{deviceName:$n, managementAgent:"configurationManagerClientMdm", operatingSystem:"Windows",
	  osVersion:"10.0.19045.4651", joinType:$j, serialNumber:"ABC1234", manufacturer:"Dell Inc.",
	  lastSyncDateTime:"2026-01-01T09:15:02Z",
	  configurationManagerClientEnabledFeatures:{inventory:true, modernApps:false, resourceAccess:false,
	    deviceConfiguration:true, compliancePolicy:true, windowsUpdateForBusiness:false,
	    endpointProtection:false, officeApps:false}}'; }
rec() { jq -nc --arg k "$1" --argjson m "$2" '{key:$k, managedDevice:$m, configurationManager:{siteCode:"PS1", resourceId:1}}'; }
post() { # post BODY [gzip] -> body\nstatus
	if [ "${2:-}" == gzip ]; then
		printf '%s' "$1" | gzip -c | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" -H 'Content-Type: application/json' \
			-H 'Content-Encoding: gzip' --data-binary @- "$TEN/api/gateway/DevicePost"
	else
		printf '%s' "$1" | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" -H 'Content-Type: application/json' \
			--data-binary @- "$TEN/api/gateway/DevicePost"
	fi
}
B1=$(jq -nc --argjson a "$(rec PS1:1 "$(md PC-1)")" --argjson b "$(rec PS1:2 "$(md PC-2)")" \
	--argjson c "$(rec PS1:3 "$(md PC-3)")" --argjson d "$(rec PS1:4 "$(md PC-4 foo)")" \
	'{batchId:"b-0001", siteCode:"PS1", devices:[$a,$b,$c,$d], removals:[]}')
R=$(post "$B1" gzip)
eq "upload 1 status" "$(tail -n1 <<<"$R")" "200"
eq "upload 1 statuses" "$(head -n1 <<<"$R" | jq -c '[.results[].status]')" '["created","created","created","rejected"]'
eq "upload 1 replayed" "$(head -n1 <<<"$R" | jq .replayed)" "false"
eq "upload 1 reject" "$(head -n1 <<<"$R" | jq -c '.results[3].error')" \
	'{"code":"InvalidProperty","message":"managedDevice.joinType: '"'"'foo'"'"' is not a member of graph.joinType"}'
ID1=$(head -n1 <<<"$R" | jq -r '.results[0].id')
B2=$(jq -nc --argjson a "$(rec PS1:1 "$(md PC-1-renamed)")" '{batchId:"b-0002", siteCode:"PS1", devices:[$a], removals:["PS1:2","PS1:999"]}')
R=$(post "$B2" gzip)
eq "upload 2" "$(head -n1 <<<"$R" | jq -c '[.replayed, .results[0].status, .results[0].id == "'"$ID1"'", [.removals[].status]]')" \
	'[false,"updated",true,["removed","notFound"]]'
R2=$(post "$B2")
eq "replay" "$(head -n1 <<<"$R2" | jq -c 'del(.replayed)')" "$(head -n1 <<<"$R" | jq -c 'del(.replayed)')"
eq "replay flag" "$(head -n1 <<<"$R2" | jq .replayed)" "true"
R=$(post '{"batchId":"b-x","devices":[')
eq "malformed status" "$(tail -n1 <<<"$R")" "400"
eq "malformed body" "$(head -n1 <<<"$R" | jq -r '.error.code + " " + (.error.message | split(":")[0])')" \
	"BadRequest Malformed JSON in the request body at byte offset 28"
eq "missing batchId" "$(post '{"devices":[]}' | head -n1 | jq -r .error.message)" "batchId: missing or not a non-empty string."
eq "devices not array" "$(post '{"batchId":"z","devices":{}}' | head -n1 | jq -r .error.message)" "devices: not an array."
R=$(printf 'not gzip' | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" -H 'Content-Encoding: gzip' --data-binary @- "$TEN/api/gateway/DevicePost")
eq "bad gzip" "$(tail -n1 <<<"$R")" "400"
R=$("${C[@]}" -D - -o /dev/null -X POST -d '{}' "$TEN/api/gateway/DevicePost" | tr -d '\r')
eq "no token status" "$(head -n1 <<<"$R" | cut -d' ' -f2)" "401"
eq "no token WWW-Authenticate" "$(grep -i '^www-authenticate:' <<<"$R" | cut -d' ' -f2)" "Bearer"
eq "bad token code" "$("${C[@]}" -H 'Authorization: Bearer a.b.c' "$TEN/beta/deviceManagement/managedDevices" | jq -r .error.code)" \
	"InvalidAuthenticationToken"

# 120 more devices, two of them with another management agent
RECS=$(for i in $(seq 10 129); do a=configurationManagerClientMdm; [ "$i" -lt 12 ] && a=configurationManagerClient
	rec "PS1:$i" "$(md "PC-$i" | jq -c --arg a $a '.managementAgent=$a')"; done | jq -sc .)
R=$(post "$(jq -nc --argjson d "$RECS" '{batchId:"b-0003", siteCode:"PS1", devices:$d}')" gzip)
eq "upload 3 created" "$(head -n1 <<<"$R" | jq '[.results[] | select(.status=="created")] | length')" "120"

# ---- Graph listing -----------------------------------------------------------------
G="$TEN/beta/deviceManagement/managedDevices"
graph() { "${C[@]}" "${AUTH[@]}" "$@"; }
url="$G?\$top=50&\$count=true"; n=0; : >"$D/ids"
while [ -n "$url" ]; do
	n=$((n + 1)); graph "$url" >"$D/page$n.json"
	eq "page $n count" "$(jq '."@odata.count"' "$D/page$n.json")" "122"
	jq -r '.value[].id' "$D/page$n.json" >>"$D/ids"
	url=$(jq -r '."@odata.nextLink" // empty' "$D/page$n.json")
done
eq "graph pages" "$n" "3"
eq "graph ids" "$(sort -u "$D/ids" | wc -l)" "122"
eq "graph filter count" "$(graph "$G?\$filter=managementAgent%20eq%20'configurationManagerClient'&\$count=true" | jq -c '[."@odata.count", (.value | length)]')" "[2,2]"
eq "graph select" "$(graph "$G?\$select=deviceName&\$top=1" | jq -c '.value[0] | keys')" '["deviceName","id"]'
eq "graph one" "$(graph "$G/$ID1" | jq -r .deviceName)" "PC-1-renamed"
R=$(graph -w '\n%{http_code}' "$G/00000000-0000-0000-0000-000000000000")
eq "graph unknown status" "$(tail -n1 <<<"$R")" "404"
eq "graph unknown code" "$(head -n1 <<<"$R" | jq -r .error.code)" "ResourceNotFound"

# ---- schema-check ------------------------------------------------------------------
"$LAB" schema-check "$D"/page*.json >/dev/null || fail "schema-check rejects the Graph listing pages"
CHECKS=$((CHECKS + 1))
printf '%s\n%s\n' '{"deviceName":"ok"}' '{"deviceName":5,"joinType":"foo","isEncrypted":null,"nope":1,"hardwareInformation":{"totalStorageSpace":"x"},"lastSyncDateTime":"yesterday"}' >"$D/bad.jsonl"
set +e; OUT=$("$LAB" schema-check "$D/bad.jsonl"); RC=$?; set -e
eq "schema-check exit" "$RC" "1"
eq "schema-check output" "$OUT" "$D/bad.jsonl:1: deviceName: expected a string (Edm.String), got number
$D/bad.jsonl:1: joinType: 'foo' is not a member of graph.joinType
$D/bad.jsonl:1: isEncrypted: null is not allowed (Nullable=false)
$D/bad.jsonl:1: nope: not a property of graph.managedDevice
$D/bad.jsonl:1: hardwareInformation.totalStorageSpace: expected an integer (Edm.Int64), got string
$D/bad.jsonl:1: lastSyncDateTime: 'yesterday' is not an ISO 8601 date-time with offset (Edm.DateTimeOffset)"
echo '{"managementAgent":"msSense","deviceName":null}' >"$D/new.json"
"$LAB" schema-check "$D/new.json" >/dev/null || fail "schema-check rejects the newer member msSense"

# ---- mutate ------------------------------------------------------------------------
before() { site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%20$1&\$select=BuildExt" | jq -r '.value[0].BuildExt'; }
OUT=$("$LAB" mutate "$D" --change 5 --add 2 --delete 3 --verbose)
CH=$(grep '^changed:' <<<"$OUT" | cut -d: -f2); AD=$(grep '^added:' <<<"$OUT" | cut -d: -f2); DE=$(grep '^deleted:' <<<"$OUT" | cut -d: -f2)
eq "changed ids" "$(wc -w <<<"$CH")" "5"
eq "added ids" "$(wc -w <<<"$AD")" "2"
eq "deleted ids" "$(wc -w <<<"$DE")" "3"
eq "site count" "$(site "$SITE/SMS_R_System?\$count=true&\$top=0" | jq '."@odata.count"')" "299"
MAX=$(tail -n1 <<<"$IDS")
eq "added ids" "$(echo $AD)" "$((MAX + 1)) $((MAX + 2))"
# the changed devices' builds moved on by one revision, and DeviceOSBuild with them
for id in $CH; do
	old=$(jq -r --argjson id "$id" 'select(.ResourceId == $id) | .BuildExt' <<<"$ALL")
	eq "changed $id BuildExt" "$(before "$id")" "${old%.*}.$(( ${old##*.} + 1 ))"
done
NEWB=$(for id in $CH; do before "$id"; done)
eq "changed BuildExt = DeviceOSBuild" "$(for id in $CH; do site "$SITE/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$id&\$select=DeviceOSBuild" | jq -r '.value[0].DeviceOSBuild'; done)" "$NEWB"
for id in $DE; do
	for cls in SMS_R_System SMS_CombinedDeviceResources SMS_Client_ComanagementState SMS_G_System_COMPUTER_SYSTEM SMS_G_System_PC_BIOS; do
		k=ResourceID; [ "$cls" != SMS_R_System ] || k=ResourceId
		eq "deleted $id in $cls" "$(site "$SITE/$cls?\$filter=$k%20eq%20$id&\$count=true&\$top=0" | jq '."@odata.count"')" "0"
	done
done
for id in $AD; do
	eq "added $id is plain" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$id&\$select=IsClient,IsActive,IsObsolete,ClientActiveStatus" | jq -c '.value[0]')" \
		'{"IsClient":true,"IsActive":true,"IsObsolete":false,"ClientActiveStatus":1}'
	eq "added $id not decommissioned" "$(site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%20$id&\$select=Decommissioned" | jq -c '.value[0]')" '{"Decommissioned":0}'
done
set +e; "$LAB" mutate "$D" --delete 100000 >/dev/null 2>&1; RC=$?; set -e
eq "mutate too many" "$RC" "1"

# ---- stats -------------------------------------------------------------------------
S=$("$LAB" stats "$D" --json)
eq "stats keys" "$(jq -c '[keys_unsorted[]] , [.tenant | keys_unsorted[]], [.site | keys_unsorted[]], [.faults | keys_unsorted[]]' <<<"$S" | tr '\n' ' ')" \
	'["tenant","site","actions","policies","faults","routes"] ["devices","uploadRequests","recordsReceived","recordsCreated","recordsUpdated","recordsRejected","removalsReceived","removalsApplied","batchesReplayed","tokensIssued","tokenErrors","authFailures","bytesReceived","writes","collections","collectionUploadRequests","collectionRecordsReceived","requests","maxRequestsPerSecond","assertionsAccepted","assertionsRejected"] ["devices","pageRequests","bytesSent","requests","maxRequestsPerSecond","operations","operationTargets","duplicateTargets","blockedClients"] ["injected500","injected503","injected429","resets","truncated","repliesLost","retryAfterViolations"] '
eq "stats writes = authenticated uploads" "$(jq -c '[.tenant.writes, .tenant.collections, .tenant.collectionRecordsReceived]' <<<"$S")" "[8,0,0]"
eq "stats tenant" "$(jq -c '.tenant | [.devices,.uploadRequests,.recordsReceived,.recordsCreated,.recordsUpdated,.recordsRejected,.removalsReceived,.removalsApplied,.batchesReplayed,.tokensIssued,.tokenErrors]' <<<"$S")" \
	"[122,8,125,123,1,1,2,1,1,1,6]"
eq "stats site devices" "$(jq .site.devices <<<"$S")" "299"
eq "stats gateway route" "$(jq '.routes["POST /api/gateway/DevicePost"]' <<<"$S")" "9"
eq "stats all integers" "$(jq '[.. | numbers | select(. != floor)] | length' <<<"$S")" "0"

# ---- inventory realism -----------------------------------------------------------------
# (one snapshot of the whole site: SMS_R_System, CDR and co-management joined by ResourceID)
allrows() { local u=$1 r; while [ -n "$u" ]; do r=$(site "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
allrows "$SITE/SMS_R_System?\$select=ResourceId,Name,HardwareID,SMBIOSGUID,AADDeviceID,AADTenantID,Client,Obsolete,Active" | jq -s 'INDEX(.ResourceId|tostring)' >"$D/sys0.json"
allrows "$SITE/SMS_CombinedDeviceResources" | jq -s 'INDEX(.ResourceID|tostring)' >"$D/cdr0.json"
allrows "$SITE/SMS_Client_ComanagementState" | jq -s 'INDEX(.ResourceID|tostring)' >"$D/cms0.json"
eq "co-managed devices are joined with an AADDeviceID" "$(jq -n --slurpfile s "$D/sys0.json" --slurpfile m "$D/cms0.json" \
	'[$m[0][] | select(.MDMEnrolled and .ComgmtPolicyPresent) | select(((.HybridAADJoined or .AADJoined) | not) or $s[0][.ResourceID|tostring].AADDeviceID == null)] | length')" "0"
eq "some co-managed" "$(jq '[.[] | select(.MDMEnrolled and .ComgmtPolicyPresent)] | length > 0' "$D/cms0.json")" "true"
eq "some joined, not co-managed" "$(jq '[.[] | select((.MDMEnrolled and .ComgmtPolicyPresent | not) and (.HybridAADJoined or .AADJoined))] | length > 0' "$D/cms0.json")" "true"
eq "some active clients not joined" "$(jq '[.[] | select(.Client == 1 and .Active == 1 and .AADDeviceID == null)] | length > 0' "$D/sys0.json")" "true"
# duplicate hardware: every pair sharing SMBIOSGUID has the newer record (higher ResourceID) later in LastActiveTime
PAIRS=$(jq -n -c --slurpfile s "$D/sys0.json" --slurpfile c "$D/cdr0.json" '[$s[0][]] | group_by(.SMBIOSGUID) | map(select(length > 1) | sort_by(.ResourceId)
	| {hw: (.[0].HardwareID == .[1].HardwareID), obs: [.[].Obsolete], later: ($c[0][.[1].ResourceId|tostring].LastActiveTime > $c[0][.[0].ResourceId|tostring].LastActiveTime)})')
eq "pairs: newer is later" "$(jq -c '[.[].later] | unique' <<<"$PAIRS")" "[true]"
eq "pair kinds" "$(jq -c 'map([.hw, .obs]) | unique - [[false,[0,0]],[true,[0,0]],[true,[1,0]]]' <<<"$PAIRS")" '[]'

# ---- collections (site) -----------------------------------------------------------------
COLLS=$(site "$SITE/SMS_Collection")
eq "collections" "$(jq -c '[.value[] | [.CollectionID, .CollectionType, .LimitToCollectionID]]' <<<"$COLLS")" \
	'[["PS100010",2,"SMS00001"],["PS100011",2,"SMS00001"],["PS100012",2,"SMS00001"],["PS100013",2,"SMS00001"],["PS100014",2,"SMS00001"],["PS100015",2,"SMS00001"],["PS100016",1,"SMS00002"],["SMS00001",2,""],["SMS00002",1,""],["SMSDM003",2,"SMS00001"]]'
eq "collection names" "$(jq -r '[.value[].Name] | join("|")' <<<"$COLLS")" \
	"Finance laptops|Servers – Production|Pilot – Co-management|Kiosk devices|Windows 11 workstations|Patch ring 1 – Early|Finance users|All Systems|All Users|All Desktop and Server Clients"
eq "collection keys" "$(jq -c '.value[0] | keys_unsorted' <<<"$COLLS")" \
	'["CollectionID","Name","Comment","CollectionType","MemberCount","LimitToCollectionID","LastChangeTime","LastMemberChangeTime"]'
eq "All Systems" "$(jq -c '.value[] | select(.CollectionID == "SMS00001") | [.MemberCount, .LastChangeTime, .LastMemberChangeTime]' <<<"$COLLS")" \
	'[299,"2023-07-16T10:07:00Z","2026-01-01T00:01:00Z"]'
eq "SMSDM003 = clients" "$(jq '.value[] | select(.CollectionID == "SMSDM003") | .MemberCount' <<<"$COLLS")" "$(jq '[.[] | select(.Client == 1)] | length' "$D/sys0.json")"
eq "empty collections" "$(jq -c '[.value[] | select(.MemberCount == 0) | .CollectionID]' <<<"$COLLS")" '["PS100013","PS100016","SMS00002"]'
eq "Kiosk unchanged" "$(jq -c '.value[] | select(.CollectionID == "PS100013") | [.LastChangeTime, .LastMemberChangeTime]' <<<"$COLLS")" \
	'["2025-11-22T10:03:00Z","2025-12-31T19:00:00Z"]'
for id in $(jq -r '.value[].CollectionID' <<<"$COLLS"); do
	W=$(walk "$SITE/SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20'$id'&\$select=ResourceID&\$orderby=ResourceID" abs)
	N=$(grep -c . <<<"$W" || true)
	eq "$id members = MemberCount" "$N" "$(jq --arg id "$id" '.value[] | select(.CollectionID == $id) | .MemberCount' <<<"$COLLS")"
	[ "$N" -eq 0 ] || eq "$id members unique and ascending" "$(sort -un <<<"$W" | tr '\n' ,)" "$(tr '\n' , <<<"$W")"
done
eq "All Systems members = SMS_R_System" "$(walk "$SITE/SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20'SMS00001'&\$select=ResourceID" abs | md5sum)" \
	"$(walk "$SITE/SMS_R_System?\$select=ResourceId" abs | md5sum)"
FCM=$(allrows "$SITE/SMS_FullCollectionMembership")
eq "membership rows = sum of MemberCount" "$(wc -l <<<"$FCM")" "$(jq '[.value[].MemberCount] | add' <<<"$COLLS")"
eq "membership rows unique" "$(jq -r '.CollectionID + " " + (.ResourceID|tostring)' <<<"$FCM" | sort -u | wc -l)" "$(wc -l <<<"$FCM")"
eq "membership keys" "$(head -n1 <<<"$FCM" | jq -c keys_unsorted)" '["CollectionID","ResourceID","Name","IsClient","SiteCode"]'
eq "in several collections" "$(jq -sr 'group_by(.ResourceID) | map(length) | max > 3' <<<"$FCM")" "true"
eq "Finance laptops are LT-FIN" "$(jq -s '[.[] | select(.CollectionID == "PS100010" and (.Name | startswith("LT-FIN-") | not))] | length' <<<"$FCM")" "0"
eq "SMS_Collection filter" "$(site "$SITE/SMS_Collection?\$filter=CollectionType%20eq%201&\$select=CollectionID" | jq -c '[.value[].CollectionID]')" '["PS100016","SMS00002"]'
eq "SMS_Collection orderby/top/skip" "$(site "$SITE/SMS_Collection?\$orderby=MemberCount%20desc&\$top=2&\$skip=1&\$select=CollectionID&\$count=true" | jq -c '[."@odata.count", [.value[].CollectionID], has("@odata.nextLink")]')" \
	'[10,["SMSDM003","PS100014"],false]'
eq "SMS_Collection unknown property" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_Collection?\$select=ResourceID")" "400"
eq "SMS_Site" "$(site "$SITE/SMS_Site" | jq -c .value)" \
	'[{"SiteCode":"CAS","SiteName":"Contoso Hierarchy","ReportingSiteCode":"","Version":"5.00.9128.1000"},{"SiteCode":"PS1","SiteName":"Contoso Primary Site","ReportingSiteCode":"CAS","Version":"5.00.9128.1000"}]'
eq "SMS_Site top" "$(site "$SITE/SMS_Site?\$filter=ReportingSiteCode%20eq%20''&\$select=SiteCode,SiteName" | jq -c .value)" '[{"SiteCode":"CAS","SiteName":"Contoso Hierarchy"}]'
eq "metadata keys" "$(site "$SITE/\$metadata" | grep -o '<EntityType Name="SMS_FullCollectionMembership"><Key>[^K]*</Key>')" \
	'<EntityType Name="SMS_FullCollectionMembership"><Key><PropertyRef Name="CollectionID"/><PropertyRef Name="ResourceID"/></Key>'

# ---- collections (tenant) ---------------------------------------------------------------
cpost() { printf '%s' "$1" | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary @- "$TEN/api/gateway/CollectionPost"; }
cm() { jq -nc --arg id "$1" --arg n "$2" '{collectionIdentifier:$id, displayName:$n, hierarchyName:"Contoso Hierarchy", hierarchyIdentifier:"CAS",
	createdDateTime:"2025-11-22T10:03:00Z", lastModifiedDateTime:"2025-11-22T10:03:00Z"}'; }
crec() { jq -nc --arg k "$1" --argjson m "$2" '{key:$k, configManagerCollection:$m}'; }
CB1=$(jq -nc --argjson a "$(crec PS1:PS100010 "$(cm PS100010 'Finance laptops')")" --argjson b "$(crec PS1:PS100011 "$(cm PS100011 'Servers')")" \
	--argjson c "$(crec PS1:PS100012 "$(cm PS100012 x | jq -c '.memberCount=3')")" --argjson d "$(crec PS1:PS100013 "$(cm PS100013 y | jq -c '.id="x"')")" \
	'{batchId:"c-0001", siteCode:"PS1", collections:[$a,$b,$c,$d]}')
R=$(printf '%s' "$CB1" | gzip -c | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" -H 'Content-Encoding: gzip' --data-binary @- "$TEN/api/gateway/CollectionPost")
eq "collection upload status" "$(tail -n1 <<<"$R")" "200"
eq "collection upload results" "$(head -n1 <<<"$R" | jq -c '[.replayed, [.results[].status], .results[2].error, .results[3].error.message]')" \
	'[false,["created","created","rejected","rejected"],{"code":"InvalidProperty","message":"configManagerCollection.memberCount: not a property of graph.configManagerCollection"},"configManagerCollection.id: assigned by the tenant; an upload must not send it"]'
CID=$(head -n1 <<<"$R" | jq -r '.results[0].id')
CB2=$(jq -nc --argjson a "$(crec PS1:PS100010 "$(cm PS100010 'Finance laptops (EU)')")" '{batchId:"c-0002", collections:[$a], removals:["PS1:PS100011","PS1:PS100099"]}')
R=$(cpost "$CB2")
eq "collection update" "$(head -n1 <<<"$R" | jq -c --arg id "$CID" '[.replayed, .results[0].status, .results[0].id == $id, [.removals[].status]]')" '[false,"updated",true,["removed","notFound"]]'
R2=$(cpost "$CB2")
eq "collection replay" "$(head -n1 <<<"$R2" | jq -c '[.replayed, .results, .removals]')" "$(head -n1 <<<"$R" | jq -c '[true, .results, .removals]')"
eq "collection batch ids apart from device batch ids" "$(cpost '{"batchId":"b-0001","collections":[]}' | head -n1 | jq .replayed)" "false"
eq "collection missing batchId" "$(cpost '{"collections":[]}' | head -n1 | jq -r .error.message)" "batchId: missing or not a non-empty string."
eq "collections not array" "$(cpost '{"batchId":"c-x","collections":{}}' | head -n1 | jq -r .error.message)" "collections: not an array."
eq "collection no key" "$(cpost '{"batchId":"c-y","collections":[{}]}' | head -n1 | jq -r .error.message)" "collections[0]: not an object with a non-empty string 'key'."
eq "collection malformed" "$(cpost '{"batchId":' | tail -n1)" "400"
eq "collection no token" "$(code -X POST -d '{}' "$TEN/api/gateway/CollectionPost")" "401"
R=$(printf '%s' "{\"batchId\":\"c-big\",\"collections\":$(jq -nc '[range(1001) | {key:("k" + tostring)}]')}" | "${C[@]}" -w '\n%{http_code}' "${AUTH[@]}" --data-binary @- "$TEN/api/gateway/CollectionPost")
eq "collection too many" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.message)" "400 collections: more than 1000 records in one batch."
GC="$TEN/beta/deviceManagement/configManagerCollections"
cpost "$(jq -nc --argjson a "$(crec PS1:PS100014 "$(cm PS100014 'Windows 11')")" '{batchId:"c-0003", collections:[$a]}')" >/dev/null
P1=$(graph "$GC?\$top=1&\$count=true"); echo "$P1" >"$D/cpage1.json"
eq "graph collections page" "$(jq -c '[."@odata.count", (.value | length), (."@odata.nextLink" | startswith("'"$GC"'?"))]' <<<"$P1")" '[2,1,true]'
P2=$(graph "$(jq -r '."@odata.nextLink"' <<<"$P1")"); echo "$P2" >"$D/cpage2.json"
eq "graph collections page 2" "$(jq -c '[(.value | length), has("@odata.nextLink"), .value[0].displayName]' <<<"$P2")" '[1,false,"Windows 11"]'
eq "graph collection one" "$(graph "$GC/$CID" | jq -c '[.id == "'"$CID"'", .displayName, .collectionIdentifier]')" '[true,"Finance laptops (EU)","PS100010"]'
R=$(graph -w '\n%{http_code}' "$GC/00000000-0000-0000-0000-000000000000")
eq "graph collection unknown" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.code)" "404 ResourceNotFound"
eq "graph collections select" "$(graph "$GC?\$select=displayName&\$top=1" | jq -c '.value[0] | keys')" '["displayName","id"]'
eq "graph collections bad select" "$(graph -o /dev/null -w '%{http_code}' "$GC?\$select=nope")" "400"
"$LAB" schema-check --type configManagerCollection "$D/cpage1.json" "$D/cpage2.json" >/dev/null || fail "schema-check rejects the collection pages"
CHECKS=$((CHECKS + 1))
S=$("$LAB" stats "$D" --json)
eq "stats collections" "$(jq -c '[.tenant.collections, .tenant.collectionRecordsReceived, .tenant.collectionUploadRequests, .tenant.writes, .routes["POST /api/gateway/CollectionPost"]]' <<<"$S")" "[2,6,10,18,11]"

# ---- mutate: checkin, health, unjoin, duplicate ----------------------------------------------
OUT=$("$LAB" mutate "$D" --checkin 3 --health 2 --unjoin 2 --duplicate 2 --verbose)
ids() { grep "^$1:" <<<"$OUT" | cut -d: -f2; }
CI=$(ids checkin); HE=$(ids health); UJ=$(ids unjoin); DU=$(ids duplicated); TW=$(ids twins)
eq "mutate id counts" "$(for x in "$CI" "$HE" "$UJ" "$DU" "$TW"; do wc -w <<<"$x"; done | tr '\n' ' ')" "3 2 2 2 2 "
eq "mutate distinct" "$(echo $CI $HE $UJ $DU | tr ' ' '\n' | sort -u | wc -l)" "9"
eq "twin ids" "$(echo $TW)" "$((MAX + 3)) $((MAX + 4))"
cdr() { site "$SITE/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$1" | jq -c '.value[0]'; }
sysr() { site "$SITE/SMS_R_System?\$filter=ResourceId%20eq%20$1" | jq -c '.value[0]'; }
plus() { date -u -d "@$(( $(date -u -d "$1" +%s) + $2 ))" +%Y-%m-%dT%H:%M:%SZ; }
for id in $CI; do
	B=$(jq -c --arg i "$id" '.[$i]' "$D/cdr0.json")
	eq "checkin $id CDR" "$(cdr "$id")" "$(jq -c --arg p "$(plus "$(jq -r .LastPolicyRequest <<<"$B")" 300)" --arg a "$(plus "$(jq -r .LastActiveTime <<<"$B")" 300)" \
		'.LastPolicyRequest = $p | .LastActiveTime = $a' <<<"$B")"
	eq "checkin $id health" "$(cdr "$id" | jq -c '[.ClientActiveStatus, .IsActive]')" "[1,true]"
	eq "checkin $id SMS_R_System unchanged" "$(sysr "$id" | jq -c '{ResourceId,Name,HardwareID,SMBIOSGUID,AADDeviceID,AADTenantID,Client,Obsolete,Active}')" "$(jq -c --arg i "$id" '.[$i]' "$D/sys0.json")"
done
for id in $HE; do
	B=$(jq -c --arg i "$id" '.[$i]' "$D/cdr0.json")
	eq "health $id CDR" "$(cdr "$id")" "$(jq -c --arg a "$(plus "$(jq -r .LastActiveTime <<<"$B")" 300)" \
		'.ClientActiveStatus = 0 | .IsActive = false | .LastActiveTime = $a' <<<"$B")"
	eq "health $id Active" "$(sysr "$id" | jq .Active)" "0"
done
for id in $UJ; do
	eq "unjoin $id was joined" "$(jq -r --arg i "$id" '.[$i].AADDeviceID != null' "$D/sys0.json")" "true"
	eq "unjoin $id SMS_R_System" "$(sysr "$id" | jq -c '[.AADDeviceID, .AADTenantID]')" "[null,null]"
	eq "unjoin $id co-management" "$(site "$SITE/SMS_Client_ComanagementState?\$filter=ResourceID%20eq%20$id" | jq -c '.value[0] | [.HybridAADJoined, .AADJoined, .MDMEnrolled]')" "[false,false,false]"
done
set -- $TW
for id in $DU; do
	tw=$1; shift
	eq "duplicate $id twin" "$(sysr "$tw" | jq -c '[.Name, .HardwareID, .SMBIOSGUID, .Client, .Active, .Obsolete]')" \
		"$(jq -c --arg i "$id" '.[$i] | [.Name, .HardwareID, .SMBIOSGUID, 1, 1, 0]' "$D/sys0.json")"
	eq "duplicate $id new SMSUniqueIdentifier" "$(sysr "$tw" | jq -r .SMSUniqueIdentifier | grep -c "$(jq -r --arg i "$id" '.[$i].SMSUniqueIdentifier' "$D/cdr0.json" 2>/dev/null || echo none)" || true)" "0"
	eq "duplicate $id twin later" "$(cdr "$tw" | jq -r .LastActiveTime)" "$(plus "$(jq -r --arg i "$id" '.[$i].LastActiveTime' "$D/cdr0.json")" 600)"
	eq "duplicate $id original unchanged" "$(cdr "$id")" "$(jq -c --arg i "$id" '.[$i]' "$D/cdr0.json")"
done
COLLS2=$(site "$SITE/SMS_Collection")
eq "All Systems after duplicate" "$(jq -c '.value[] | select(.CollectionID == "SMS00001") | [.MemberCount, .LastMemberChangeTime]' <<<"$COLLS2")" '[301,"2026-01-01T00:02:00Z"]'
eq "Kiosk still unchanged" "$(jq -c '.value[] | select(.CollectionID == "PS100013") | .LastMemberChangeTime' <<<"$COLLS2")" '"2025-12-31T19:00:00Z"'
set +e; "$LAB" mutate "$D" --unjoin 100000 >/dev/null 2>&1; RC=$?; set -e
eq "unjoin too many" "$RC" "1"
eq "failed mutate changed nothing" "$(site "$SITE/SMS_R_System?\$count=true&\$top=0" | jq '."@odata.count"')" "301"

# ---- faults ---------------------------------------------------------------------------------
flt() { "$LAB" faults "$D" "$@" >/dev/null; }
stat() { "$LAB" stats "$D" --json | jq -c "$1"; }
flt --site --rate-500 1
for i in 1 2 3; do
	R=$(site -w '\n%{http_code}' "$SITE/SMS_R_System?\$top=1")
	eq "500 #$i" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.code)" "500 InternalServerError"
done
eq "tenant unaffected" "$(graph -o /dev/null -w '%{http_code}' "$G?\$top=1")" "200"
flt --site --rate-503 1 --retry-after 0
R=$(site -D - "$SITE/SMS_R_System?\$top=1" | tr -d '\r')
eq "503 status, code and Retry-After" "$(head -n1 <<<"$R" | cut -d' ' -f2) $(tail -n1 <<<"$R" | jq -r .error.code) $(grep -i '^retry-after:' <<<"$R")" \
  "503 ServiceUnavailable Retry-After: 0"
flt --site --lose-reply-at 2
eq "lose-reply-at 2: the first answered" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$top=1")" "200"
set +e; site -o /dev/null "$SITE/SMS_R_System?\$top=1"; RC=$?; set -e
eq "lose-reply-at 2: the second gets no reply" "$([ "$RC" -ne 0 ] && echo closed)" "closed"
eq "lose-reply-at 2: the third answered" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$top=1")" "200"
flt --site --rate-429 1 --retry-after 0.5
R=$(site -D - -o /dev/null "$SITE/SMS_R_System?\$top=1" | tr -d '\r')
eq "429 status" "$(head -n1 <<<"$R" | cut -d' ' -f2)" "429"
eq "429 Retry-After" "$(grep -i '^retry-after:' <<<"$R")" "Retry-After: 0.5"
eq "429 again" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$top=1")" "429"
eq "one Retry-After violation" "$(stat .faults.retryAfterViolations)" "1"
sleep 0.6
flt --site --clear
eq "cleared" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$top=1")" "200"
eq "no new violation" "$(stat .faults.retryAfterViolations)" "1"
flt --site --rate-429 1 --no-retry-after
eq "429 without Retry-After" "$(site -D - -o /dev/null "$SITE/SMS_R_System?\$top=1" | tr -d '\r' | grep -ci '^retry-after:' || true)" "0"
flt --site --rate-reset 1
set +e; site -o /dev/null "$SITE/SMS_R_System?\$top=1"; RC=$?; set -e
eq "reset: no response" "$([ "$RC" -ne 0 ] && echo closed)" "closed"
flt --site --rate-truncate 1
set +e; site -o /dev/null "$SITE/SMS_R_System"; RC=$?; set -e
eq "truncate: curl partial file" "$RC" "18"
flt --site --latency-ms 300
eq "latency" "$(site -o /dev/null -w '%{time_total}' "$SITE/SMS_R_System?\$top=1" | awk '{print ($1 >= 0.3) ? "slow" : "fast"}')" "slow"
flt --site --rate-reply-lost 1
eq "site reply-lost: method calls only" "$(site -o /dev/null -w '%{http_code}' "$SITE/SMS_R_System?\$top=1")" "200"
flt --clear
flt --tenant --rate-reply-lost 1
LOST=$(jq -nc --argjson a "$(crec PS1:PS100015 "$(cm PS100015 'Patch ring 1')")" '{batchId:"c-lost", collections:[$a]}')
set +e; R=$(cpost "$LOST"); RC=$?; set -e
eq "reply lost: no reply" "$([ "$RC" -ne 0 ] && tail -n1 <<<"$R")" "000"
flt --clear
R=$(cpost "$LOST")
eq "reply lost: retry replayed" "$(head -n1 <<<"$R" | jq -c '[.replayed, .results[0].status]')" '[true,"created"]'
eq "reply lost: applied once" "$(stat '[.tenant.collections, .tenant.collectionRecordsReceived, .tenant.batchesReplayed]')" "[3,7,3]"
eq "fault counters" "$(stat .faults)" '{"injected500":3,"injected503":1,"injected429":3,"resets":1,"truncated":1,"repliesLost":2,"retryAfterViolations":1}'

# ---- request log ------------------------------------------------------------------------------
RL="$D/requests.log"
eq "log lines well-formed" "$(grep -cvE '^[0-9]{10}\.[0-9]{3} (site|tenant|admin) [A-Z]+ /[^ ?]* ([0-9]{3}|reset|truncated|reply-lost) (-|500|503|429|reset|truncate|reply-lost)$' "$RL" || true)" "0"
eq "log 500s" "$(grep -c ' site GET /AdminService/wmi/SMS_R_System 500 500$' "$RL")" "3"
eq "log 429s" "$(grep -c ' 429 429$' "$RL")" "3"
eq "log reset" "$(grep -c ' site GET /AdminService/wmi/SMS_R_System reset reset$' "$RL")" "1"
eq "log truncated" "$(grep -c ' site GET /AdminService/wmi/SMS_R_System truncated truncate$' "$RL")" "1"
eq "log reply-lost" "$(grep -c ' tenant POST /api/gateway/CollectionPost reply-lost reply-lost$' "$RL")" "1"
eq "log no secrets" "$(grep -c -e "$SECRET" -e "$PW" -e '?' "$RL" || true)" "0"
S=$("$LAB" stats "$D" --json)
eq "log site lines = site requests" "$(grep -c ' site ' "$RL")" "$(jq .site.requests <<<"$S")"
maxrps() { grep " $1 " "$RL" | cut -d' ' -f1 | tr -d . | sort -n | awk '{t[NR]=$1; while (t[j+1] <= $1 - 1000) j++; if (NR - j > m) m = NR - j} END {print m + 0}' j=0; }
eq "site maxRequestsPerSecond = log" "$(jq .site.maxRequestsPerSecond <<<"$S")" "$(maxrps site)"
eq "tenant maxRequestsPerSecond = log" "$(jq .tenant.maxRequestsPerSecond <<<"$S")" "$(maxrps tenant)"
eq "site maxRequestsPerSecond > 5" "$(jq '.site.maxRequestsPerSecond > 5' <<<"$S")" "true"

# ---- relative nextLink (restart with nextlink = relative) -------------------------------
"$LAB" down "$D" >/dev/null
sed -i 's/^nextlink = absolute$/nextlink = relative/' "$D/lab.conf"
"$LAB" up "$D" --detach >/dev/null
SP=$(conf site port); SITE="https://127.0.0.1:$SP/AdminService/wmi"
RIDS=$(walk "$SITE/SMS_R_System?\$select=ResourceId&\$orderby=ResourceId" rel)
eq "relative walk count" "$(wc -l <<<"$RIDS")" "301"
eq "relative walk unique" "$(sort -u <<<"$RIDS" | wc -l)" "301"
eq "state kept across restart" "$("${C[@]}" "${AUTH[@]}" "$G?\$count=true&\$top=1" | jq '."@odata.count"')" "122"

# ---- authentication (auth_*.c): client assertions, site schemes, mutual TLS -------------
KDC=$(dirname "$0")/kdc.sh
TP=$(conf tenant port); TOKURL="https://127.0.0.1:$TP/$TENANT/oauth2/v2.0/token"
b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
mkjwt() { # mkjwt PS256|RS256 KEY CERT CLAIMS -> compact JWS (x5t#S256 for PS256, x5t for RS256)
	local alg=$1 key=$2 cert=$3 claims=$4 h in
	if [ "$alg" == PS256 ]; then
		h=$(printf '{"alg":"PS256","typ":"JWT","x5t#S256":"%s"}' "$(openssl x509 -in "$cert" -outform DER | openssl dgst -sha256 -binary | b64u)")
		in="$(printf '%s' "$h" | b64u).$(printf '%s' "$claims" | b64u)"
		printf '%s.%s' "$in" "$(printf '%s' "$in" | openssl dgst -sha256 -sign "$key" -sigopt rsa_padding_mode:pss \
			-sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256 | b64u)"
	else
		h=$(printf '{"alg":"RS256","typ":"JWT","x5t":"%s"}' "$(openssl x509 -in "$cert" -outform DER | openssl dgst -sha1 -binary | b64u)")
		in="$(printf '%s' "$h" | b64u).$(printf '%s' "$claims" | b64u)"
		printf '%s.%s' "$in" "$(printf '%s' "$in" | openssl dgst -sha256 -sign "$key" | b64u)"
	fi
}
NOW=$(date +%s)
acl() { # acl [JTI] [AUD] [NBF] [EXP] [ISS] -> assertion claims
	jq -nc --arg a "${2:-$TOKURL}" --arg c "$CLIENT" --arg i "${5:-$CLIENT}" --arg j "${1:-$(cat /proc/sys/kernel/random/uuid)}" \
		--argjson n "${3:-$NOW}" --argjson e "${4:-$((NOW + 300))}" '{aud:$a, iss:$i, sub:$i, jti:$j, nbf:$n, iat:$n, exp:$e}'
}
AS=(--data-urlencode grant_type=client_credentials --data-urlencode "client_id=$CLIENT" --data-urlencode scope=https://graph.microsoft.com/.default
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer)
eq "client.key mode" "$(command stat -c %a "$D/client.key")" "600"
eq "client certificates" "$(for c in client client-expired client-soon; do openssl x509 -in "$D/$c.pem" -noout -checkend 0 >/dev/null && echo valid || echo expired; done | tr '\n' ' ')" "valid expired valid "
eq "client-soon within 10 days" "$(openssl x509 -in "$D/client-soon.pem" -noout -checkend $((10 * 86400)) >/dev/null && echo later || echo soon)" "soon"
eq "client.pem lifetime" "$(openssl x509 -in "$D/client.pem" -noout -checkend $((364 * 86400)) >/dev/null && echo '>364d')" ">364d"
eq "registered certificate" "$(conf tenant certificate)" "client.pem"
J1=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl)")
R=$(tok "$TOKURL" "${AS[@]}" --data-urlencode "client_assertion=$J1")
eq "PS256 assertion" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .token_type)" "200 Bearer"
R=$(tok "$TOKURL" "${AS[@]}" --data-urlencode "client_assertion=$(mkjwt RS256 "$D/client.key" "$D/client.pem" "$(acl)")")
eq "RS256 assertion" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .token_type)" "200 Bearer"
tokerr "replayed jti" "$TOKURL" 401 invalid_client 50013 "${AS[@]}" --data-urlencode "client_assertion=$J1"
J=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl)"); SIG=${J##*.}; C0=A; [ "${SIG:0:1}" != A ] || C0=B
tokerr "tampered signature" "$TOKURL" 401 invalid_client 700027 "${AS[@]}" --data-urlencode "client_assertion=${J%.*}.$C0${SIG:1}"
tokerr "wrong thumbprint" "$TOKURL" 401 invalid_client 700027 "${AS[@]}" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client-soon.key" "$D/client-soon.pem" "$(acl)")"
tokerr "wrong aud" "$TOKURL" 401 invalid_client 700023 "${AS[@]}" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl "" "https://login.microsoftonline.com/$TENANT/oauth2/v2.0/token")")"
tokerr "expired assertion" "$TOKURL" 401 invalid_client 700024 "${AS[@]}" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl "" "" $((NOW - 1000)) $((NOW - 400)))")"
tokerr "assertion lifetime > 600 s" "$TOKURL" 401 invalid_client 700024 "${AS[@]}" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl "" "" "$NOW" $((NOW + 3600)))")"
tokerr "iss/sub mismatch" "$TOKURL" 401 invalid_client 700021 "${AS[@]}" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl "" "" "" "" 11111111-2222-3333-4444-555555555555)")"
tokerr "malformed assertion" "$TOKURL" 401 invalid_client 50027 "${AS[@]}" --data-urlencode "client_assertion=not.a-jwt"
tokerr "secret and assertion" "$TOKURL" 400 invalid_request 90023 "${AS[@]}" --data-urlencode "client_secret=$SECRET" \
	--data-urlencode "client_assertion=$(mkjwt PS256 "$D/client.key" "$D/client.pem" "$(acl)")"
eq "assertion stats" "$("$LAB" stats "$D" --json | jq -c '[.tenant.assertionsAccepted, .tenant.assertionsRejected]')" "[2,8]"

relab() { # relab AUTH [EXTRA LINE]: restart the lab with [site] auth = AUTH
	"$LAB" down "$D" >/dev/null
	sed -i -e '/^keytab = /d' -e '/^client_ca = /d' -e "s|^auth = .*|auth = $1${2:+\\n$2}|" "$D/lab.conf"
	"$LAB" up "$D" --detach >/dev/null
	SP=$(conf site port); SITE="https://127.0.0.1:$SP/AdminService/wmi"
}
# bearer: a lab token for the site's resource, not one for Graph
relab bearer
eq "bearer_audience default" "$(conf site bearer_audience)" "https://cmbridge-lab-site"
SBODY=$(tok "$TOKURL" "${GOOD[@]/scope=https:\/\/graph.microsoft.com\/.default/scope=https://cmbridge-lab-site/.default}" | head -n1)
STOK=$(jq -r .access_token <<<"$SBODY")
eq "site token aud" "$(b64d "$(cut -d. -f2 <<<"$STOK")" | jq -r .aud)" "https://cmbridge-lab-site"
eq "bearer: site token" "$(code -H "Authorization: Bearer $STOK" "$SITE/SMS_Site")" "200"
R=$("${C[@]}" -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "$SITE/SMS_Site" | tr -d '\r')
eq "bearer: Graph token" "$(head -n1 <<<"$R" | cut -d' ' -f2) $(grep -i '^www-authenticate:' <<<"$R")" "401 WWW-Authenticate: Bearer"
eq "bearer: Basic refused" "$(code -u "CONTOSO\\svc-cmbridge:$PW" "$SITE/SMS_Site")" "401"
eq "site token refused by Graph" "$(code -H "Authorization: Bearer $STOK" "$G?\$top=1")" "401"
# ntlm: curl's NTLMv2 against the site password; the connection stays authenticated
relab ntlm
eq "ntlm: ok" "$(code --ntlm -u "CONTOSO\\svc-cmbridge:$PW" "$SITE/SMS_Site")" "200"
eq "ntlm: wrong password" "$(code --ntlm -u "CONTOSO\\svc-cmbridge:wrong" "$SITE/SMS_Site")" "401"
eq "ntlm: Basic refused" "$(code -u "CONTOSO\\svc-cmbridge:$PW" "$SITE/SMS_Site")" "401"
eq "ntlm: challenge" "$("${C[@]}" -D - -o /dev/null "$SITE/SMS_Site" | tr -d '\r' | grep -i '^www-authenticate:')" "WWW-Authenticate: NTLM"
V=$("${C[@]}" -v --ntlm -u "CONTOSO\\svc-cmbridge:$PW" -o /dev/null -o /dev/null "$SITE/SMS_Site" "$SITE/SMS_Collection" 2>&1 | tr -d '\r')
eq "ntlm: one handshake, two requests on one connection" "$(grep -c '^> Authorization: NTLM' <<<"$V") $(grep -c '^< HTTP/1.1 200' <<<"$V") $(grep -c '^\* Connected to' <<<"$V")" "2 2 1"
# mutual TLS: a client certificate from the lab CA is required
relab none "client_ca = ca.pem"
eq "mtls: with site-client.pem" "$(code --cert "$D/site-client.pem" --key "$D/site-client.key" "$SITE/SMS_Site")" "200"
eq "mtls: without certificate" "$(code "$SITE/SMS_Site")" "403"
eq "mtls: certificate not from the lab CA" "$(code --cert "$D/client.pem" --key "$D/client.key" "$SITE/SMS_Site")" "403"
# negotiate: Kerberos from a private KDC (lab/tests/kdc.sh)
set +e; KENV=$("$KDC" start "$D/kdc" 2>"$D/kdc.err"); KRC=$?; set -e
[ "$KRC" -eq 0 ] || fail "kdc.sh start: $(cat "$D/kdc.err")"
KT=$(grep '^KRB5_KTNAME=' <<<"$KENV" | cut -d= -f2-)
KE=(env $KENV); KN=(env $(grep -v '^KRB5_CLIENT_KTNAME=' <<<"$KENV"))   # KN: no automatic ticket from the client keytab
"$LAB" down "$D" >/dev/null
sed -i -e "s|^auth = .*|auth = negotiate\nkeytab = $KT|" -e '/^client_ca = /d' "$D/lab.conf"
"${KE[@]}" "$LAB" up "$D" --detach >/dev/null
SP=$(conf site port); LSITE="https://localhost:$SP/AdminService/wmi"
eq "negotiate: no ticket" "$("${KN[@]}" "${C[@]}" --negotiate -u : -o /dev/null -w '%{http_code}' "$LSITE/SMS_Site")" "401"
"${KE[@]}" kinit -k -t "$D/kdc/client.keytab" svc-cmbridge
R=$("${KN[@]}" "${C[@]}" --negotiate -u : -D - -o /dev/null "$LSITE/SMS_Site" | tr -d '\r')
eq "negotiate: with a ticket" "$(head -n1 <<<"$R" | cut -d' ' -f2)" "200"
eq "negotiate: mutual auth token" "$(grep -ci '^www-authenticate: negotiate [A-Za-z0-9+/]' <<<"$R")" "1"
eq "negotiate: Basic refused" "$(code -u "CONTOSO\\svc-cmbridge:$PW" "$LSITE/SMS_Site")" "401"
"$KDC" stop "$D/kdc"

# ---- remote actions (actions.c, wire-format.md §8): a lab of its own ------------------------
D3="$D/actlab"
"$LAB" init "$D3" --devices 200 --seed 7 --page-size 50 --epoch 1767225600 >/dev/null
eq "admin-secret mode" "$(command stat -c %a "$D3/admin-secret")" "600"
eq "lab.conf [actions] defaults" "$(awk '$0=="[actions]"{f=1;next} /^\[/{f=0} f' "$D3/lab.conf" | tr '\n' ' ')" \
	"ttl = 86400 success_rate = 0.9 offline_rate = 0.05 delay_ms = 200 list_targets = yes "
eq "lab.conf [policies] defaults" "$(awk '$0=="[policies]"{f=1;next} /^\[/{f=0} f' "$D3/lab.conf" | tr '\n' ' ')" \
	"compliant_rate = 0.85 error_rate = 0.03 conflict_rate = 0.02 not_applicable_rate = 0.05 report_delay_ms = 300 max_document = 1048576 "
sed -i 's/^report_delay_ms = 300$/report_delay_ms = 1500/' "$D3/lab.conf"     # a pending window the policy checks can see
"$LAB" up "$D3" --detach >/dev/null
c3() { awk -v s="[$1]" -v k="$2" '$0==s{f=1;next} /^\[/{f=0} f && $1==k{print $3}' "$D3/lab.conf"; }
C3=(curl -s --cacert "$D3/ca.pem"); TEN3="https://127.0.0.1:$(c3 tenant port)"; SITE3="https://127.0.0.1:$(c3 site port)/AdminService/wmi"
T3=$(c3 lab tenant_id)
site3() { "${C3[@]}" -u "CONTOSO\\svc-cmbridge:$(cat "$D3/site-password")" "$@"; }
TOK3=$("${C3[@]}" -X POST "$TEN3/$T3/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$(c3 lab client_id)" \
	--data-urlencode "client_secret=$(cat "$D3/client-secret")" --data-urlencode scope=https://graph.microsoft.com/.default | jq -r .access_token)
A3=(-H "Authorization: Bearer $TOK3")
g3() { "${C3[@]}" "${A3[@]}" "$@"; }
R=$("${C3[@]}" -X POST "$TEN3/$T3/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$(c3 tenant admin_client_id)" \
	--data-urlencode "client_secret=$(cat "$D3/admin-secret")" --data-urlencode scope=https://graph.microsoft.com/.default)
eq "admin token appid" "$(b64d "$(jq -r .access_token <<<"$R" | cut -d. -f2)" | jq -r .appid)" "$(c3 tenant admin_client_id)"
eq "admin wrong secret" "$("${C3[@]}" -X POST "$TEN3/$T3/oauth2/v2.0/token" --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$(c3 tenant admin_client_id)" \
	--data-urlencode client_secret=nope --data-urlencode scope=https://graph.microsoft.com/.default | jq -c .error_codes)" "[7000215]"
# 50 tenant devices keyed PS1:<ResourceID> of active clients
ARIDS=$(site3 "$SITE3/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true%20and%20IsActive%20eq%20true%20and%20IsObsolete%20eq%20false&\$select=ResourceID&\$top=50" \
	| jq -r '.value[].ResourceID')
ARECS=$(for r in $ARIDS; do rec "PS1:$r" "$(md "PC-$r")"; done | jq -sc .)
eq "action devices uploaded" "$(jq -nc --argjson d "$ARECS" '{batchId:"act-1", devices:$d}' | g3 --data-binary @- "$TEN3/api/gateway/DevicePost" | jq '[.results[] | select(.status == "created")] | length')" "50"
GD="$TEN3/beta/deviceManagement/managedDevices"
DEV1=$(g3 "$GD?\$top=1" | jq -r '.value[0].id'); DEV2=$(g3 "$GD?\$top=2" | jq -r '.value[1].id')
ALLACT="refreshMachinePolicy refreshUserPolicy wakeUpClient appEvaluation quickScan fullScan windowsDefenderUpdateSignatures syncDevice retire wipe"
AIDS=$(for a in $ALLACT; do "$LAB" trigger "$D3" "$DEV1" "$a"; done)
eq "trigger: one GUID per action" "$(grep -cE '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$AIDS")" "10"
BOB=$("$LAB" trigger "$D3" "$DEV2" syncDevice --requester bob@contoso.com)
LIST=$("$LAB" actions "$D3" --json)
eq "actions listed" "$(jq -c '[.value[] | [.action, .actionState, .actionDeliveryStatus, .errorCode]] | unique' <<<"$LIST")" \
	"$(for a in $ALLACT syncDevice; do echo "[\"$a\",\"pending\",\"pendingDelivery\",0]"; done | jq -sc 'unique')"
eq "actions ids" "$(jq -r '.value[].id' <<<"$LIST")" "$AIDS
$BOB"
eq "requester header" "$(jq -r --arg i "$BOB" '.value[] | select(.id == $i) | .requestedBy' <<<"$LIST")" "bob@contoso.com"
eq "default requester" "$(jq -r '.value[0].requestedBy' <<<"$LIST")" "admin@${T3:0:8}.onmicrosoft.com"
eq "expiry 24 h" "$(jq '[.value[] | (.expirationDateTime | fromdateiso8601) - (.requestedDateTime | fromdateiso8601)] | unique' -c <<<"$LIST")" "[86400]"
tpost() { g3 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' "$@"; }
R=$(tpost -d '{"configurationManagerAction":{"action":"reboot"}}' "$GD/$DEV1/triggerConfigurationManagerAction")
eq "unknown action" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.message)" \
	"400 configurationManagerAction.action: 'reboot' is not a member of graph.configurationManagerActionType."
eq "no configurationManagerAction" "$(tpost -d '{}' "$GD/$DEV1/triggerConfigurationManagerAction" | tail -n1)" "400"
eq "malformed trigger body" "$(tpost -d '{"configurationManagerAction":' "$GD/$DEV1/triggerConfigurationManagerAction" | tail -n1)" "400"
eq "syncDevice with a body" "$(tpost -d '{"x":1}' "$GD/$DEV1/syncDevice" | tail -n1)" "400"
eq "bad requester" "$(tpost -H 'X-Lab-Requester: nobody' "$GD/$DEV1/retire" | tail -n1)" "400"
R=$(tpost -d '{"configurationManagerAction":{"action":"fullScan"}}' "$GD/00000000-0000-0000-0000-000000000000/triggerConfigurationManagerAction")
eq "unknown device" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.code)" "404 ResourceNotFound"
eq "unknown device wipe" "$(tpost "$GD/nope/wipe" | tail -n1)" "404"
eq "trigger needs a token" "$("${C3[@]}" -o /dev/null -w '%{http_code}' -X POST "$GD/$DEV1/syncDevice")" "401"
eq "trigger GET" "$(g3 -o /dev/null -w '%{http_code}' "$GD/$DEV1/syncDevice")" "405"
set +e; "$LAB" trigger "$D3" "$DEV1" reboot >/dev/null 2>&1; RC=$?; "$LAB" trigger "$D3" nope wipe >/dev/null 2>&1; RC2=$?; set -e
eq "trigger CLI errors" "$RC $RC2" "2 1"
eq "nothing created by refusals" "$("$LAB" actions "$D3" | wc -l)" "11"
# notification channel
NT="$TEN3/api/gateway/Notification"
N0=$(g3 "$NT?cursor=&wait=0")
eq "notifications" "$(jq -c '[.cursor, (.notifications | length), [.notifications[].id] == ($ids | split("\n"))]' --arg ids "$AIDS
$BOB" <<<"$N0")" '["b",11,true]'
eq "notification keys" "$(jq -c '.notifications[0] | keys_unsorted' <<<"$N0")" \
	'["id","deviceId","key","action","requestedBy","requestedDateTime","expirationDateTime"]'
eq "notification device" "$(jq -r '.notifications[0] | .deviceId + " " + .key' <<<"$N0")" "$DEV1 PS1:$(sed -n 1p <<<"$ARIDS")"
eq "same cursor, same list" "$(g3 "$NT?cursor=&wait=0")" "$N0"
eq "next cursor, the rest" "$(g3 "$NT?cursor=5" | jq -c '[.cursor, [.notifications[].id]]')" "$(jq -c '[.cursor, [.notifications[5:][].id]]' <<<"$N0")"
eq "empty after W=1" "$(g3 "$NT?cursor=b&wait=1")" '{"cursor":"b","notifications":[]}'
eq "bad cursor" "$(g3 -o /dev/null -w '%{http_code}' "$NT?cursor=zz")" "400"
eq "bad wait" "$(g3 -o /dev/null -w '%{http_code}' "$NT?cursor=b&wait=61")" "400"
eq "notification token" "$("${C3[@]}" -o /dev/null -w '%{http_code}' "$NT")" "401"
g3 "$NT?cursor=b&wait=30" >"$D3/poll.json" &
POLL=$!
sleep 0.5
eq "served while a poll is held" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_Site") $(g3 -o /dev/null -w '%{http_code}' "$GD?\$top=1") $(wc -c <"$D3/poll.json")" "200 200 0"
NEW=$("$LAB" trigger "$D3" "$DEV2" quickScan)
wait "$POLL"
eq "held poll answers on a trigger" "$(jq -c '[.cursor, [.notifications[].id]]' "$D3/poll.json")" "[\"c\",[\"$NEW\"]]"
# NotificationResult
NR="$TEN3/api/gateway/NotificationResult"
res() { g3 -X POST -H 'Content-Type: application/json' -w '\n%{http_code}' -d "$1" "$NR"; }
st() { "$LAB" actions "$D3" --json | jq -c --arg i "$1" '.value[] | select(.id == $i) | [.actionState, .actionDeliveryStatus, .errorCode]'; }
AA=$(sed -n 1p <<<"$AIDS"); AB=$(sed -n 2p <<<"$AIDS"); AW=$(sed -n 10p <<<"$AIDS")
R=$(res '{"results":[{"id":"'"$AA"'","actionDeliveryStatus":"deliveredToConnectorService","actionState":"pending","errorCode":0,"lastUpdatedDateTime":"2026-11-29T10:00:00Z"},{"id":"00000000-0000-0000-0000-000000000001","actionState":"done"}]}')
eq "result accepted/unknown" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[.results[].status]')" '200 ["accepted","unknown"]'
eq "delivered to connector" "$(st "$AA")" '["pending","deliveredToConnectorService",0]'
res '{"results":[{"id":"'"$AA"'","actionDeliveryStatus":"deliveredToOnPremisesServer","actionState":"active"}]}' >/dev/null
res '{"results":[{"id":"'"$AA"'","actionDeliveryStatus":"deliveredToOnPremisesServer","actionState":"done","errorCode":0,"lastUpdatedDateTime":"2026-11-29T10:05:00Z"}]}' >/dev/null
eq "done" "$(st "$AA")" '["done","deliveredToOnPremisesServer",0]'
R=$(res '{"results":[{"id":"'"$AA"'","actionDeliveryStatus":"pendingDelivery","actionState":"pending","errorCode":7},{"id":"'"$AA"'","actionState":"failed","errorCode":9}]}')
eq "never backwards, still accepted" "$(head -n1 <<<"$R" | jq -c '[.results[].status]') $(st "$AA")" '["accepted","accepted"] ["done","deliveredToOnPremisesServer",0]'
res '{"results":[{"id":"'"$AB"'","actionDeliveryStatus":"deliveredToOnPremisesServer","actionState":"failed","errorCode":-2016281112,"message":"client offline"}]}' >/dev/null
res '{"results":[{"id":"'"$AB"'","actionDeliveryStatus":"deliveredToOnPremisesServer","actionState":"failed","errorCode":-2016281112,"message":"client offline"}]}' >/dev/null
eq "failed, idempotent" "$(st "$AB")" '["failed","deliveredToOnPremisesServer",-2016281112]'
res '{"results":[{"id":"'"$AW"'","actionDeliveryStatus":"deliveredToConnectorService","actionState":"notSupported","errorCode":1}]}' >/dev/null
eq "notSupported" "$(st "$AW")" '["notSupported","deliveredToConnectorService",1]'
eq "bad state" "$(res '{"results":[{"id":"'"$AA"'","actionState":"finished"}]}' | tail -n1)" "400"
eq "bad delivery" "$(res '{"results":[{"id":"'"$AA"'","actionDeliveryStatus":"sent"}]}' | tail -n1)" "400"
eq "no id" "$(res '{"results":[{"actionState":"done"}]}' | tail -n1)" "400"
eq "more than 500" "$(res "$(jq -nc '{results:[range(501) | {id:"x", actionState:"done"}]}')" | tail -n1)" "400"
# deviceActionResults
g3 "$GD/$DEV1?\$select=deviceActionResults" >"$D3/dar.json"
eq "deviceActionResults select" "$(jq -c '[keys_unsorted[1:][], (.deviceActionResults | length)]' "$D3/dar.json")" '["id","deviceActionResults",10]'
eq "deviceActionResults done" "$(jq -c '.deviceActionResults[0] | [."@odata.type", .actionName, .actionState, .actionDeliveryStatus, .errorCode, .lastUpdatedDateTime]' "$D3/dar.json")" \
	'["#microsoft.graph.configurationManagerActionResult","refreshMachinePolicy","done","deliveredToOnPremisesServer",0,"2026-11-29T10:05:00Z"]'
eq "deviceActionResults names" "$(jq -r '[.deviceActionResults[].actionName] | join(" ")' "$D3/dar.json")" "$ALLACT"
"$LAB" schema-check "$D3/dar.json" >/dev/null || fail "schema-check rejects deviceActionResults"
g3 "$GD/$DEV1" >"$D3/full.json"
eq "full object has deviceActionResults" "$(jq -c '[.deviceName, (.deviceActionResults | length)]' "$D3/full.json")" "[\"PC-$(sed -n 1p <<<"$ARIDS")\",10]"
"$LAB" schema-check "$D3/full.json" >/dev/null || fail "schema-check rejects the device with deviceActionResults"
printf '{"deviceActionResults":[{"@odata.type":"#microsoft.graph.configurationManagerActionResult","actionName":"x","actionState":"finished","startDateTime":"2026-01-01T00:00:00Z","lastUpdatedDateTime":"2026-01-01T00:00:00Z","actionDeliveryStatus":"deliveredToOnPremisesServer","errorCode":0}]}' >"$D3/bad.json"
set +e; "$LAB" schema-check "$D3/bad.json" >/dev/null; RC=$?; set -e
eq "schema-check catches a bad actionState" "$RC" "1"
eq "other device" "$(g3 "$GD/$DEV2?\$select=deviceActionResults" | jq -c '[.deviceActionResults[].actionName]')" '["syncDevice","quickScan"]'
# --many
MANY=$("$LAB" trigger "$D3" --many 50 appEvaluation --devices 20)
eq "--many 50" "$(sort -u <<<"$MANY" | wc -l)" "50"
eq "--many spread" "$("$LAB" actions "$D3" --json | jq -c '[.value[12:][] | .key] | [length, (unique | length)]')" "[50,20]"
eq "--many like Graph" "$("$LAB" actions "$D3" --json | jq -c '[.value[12:][] | [.action, .actionState, .actionDeliveryStatus, .requestedBy, ((.expirationDateTime | fromdateiso8601) - (.requestedDateTime | fromdateiso8601))]] | unique')" \
	"[[\"appEvaluation\",\"pending\",\"pendingDelivery\",\"admin@${T3:0:8}.onmicrosoft.com\",86400]]"
eq "--many notified" "$(g3 "$NT?cursor=c" | jq '.notifications | length')" "50"
set +e; "$LAB" trigger "$D3" --many 5 wipe --devices 51 >/dev/null 2>&1; RC=$?; set -e
eq "--many: not enough devices" "$RC" "1"
eq "action stats" "$("$LAB" stats "$D3" --json | jq -c .actions)" \
	'{"triggered":62,"pending":59,"deliveredToConnector":1,"deliveredToSite":2,"done":1,"failed":1,"notSupported":1,"resultsReceived":9,"deliveredAfterExpiry":0}'
# site: restart with ttl 3 s, 60% success, 20% offline, 0.8 s until the clients answer
"$LAB" down "$D3" >/dev/null
sed -i 's/^ttl = 86400$/ttl = 3/; s/^success_rate = 0.9$/success_rate = 0.6/; s/^offline_rate = 0.05$/offline_rate = 0.2/; s/^delay_ms = 200$/delay_ms = 800/' "$D3/lab.conf"
"$LAB" up "$D3" --detach >/dev/null
TEN3="https://127.0.0.1:$(c3 tenant port)"; SITE3="https://127.0.0.1:$(c3 site port)/AdminService/wmi"; GD="$TEN3/beta/deviceManagement/managedDevices"
RU=$(sed -n 3p <<<"$ARIDS"); DEVU=$(g3 "$GD?\$top=3" | jq -r '.value[2].id')
"$LAB" trigger "$D3" "$DEVU" refreshUserPolicy >/dev/null; TU=$(date +%s.%N)
spost() { site3 -X POST -H 'Content-Type: application/json' -w '\n%{http_code}' -d "$1" "$SITE3/$2"; }
OPS=$(head -n 40 <<<"$ARIDS" | jq -sc .)
R=$(spost "{\"Type\":8,\"TargetCollectionID\":\"SMS00001\",\"RandomizationWindow\":0,\"TargetResourceIDs\":$OPS}" SMS_ClientOperation.InitiateClientOperation)
eq "InitiateClientOperation" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[.ReturnValue, .OperationID]')" "201 [0,16777301]"
eq "InitiateClientOperation context" "$(head -n1 <<<"$R" | jq -r '."@odata.context"')" "$SITE3/\$metadata#SMS_ClientOperation.InitiateClientOperation"
opst() { site3 "$SITE3/SMS_ClientOperationStatus?\$filter=ID%20eq%20$1" | jq -c '.value[0] | [.TotalClients, .CompletedClients, .FailedClients, .OfflineClients, .UnknownClients, .IsExpired]'; }
eq "status before the clients answer" "$(opst 16777301)" "[40,0,0,0,40,0]"
R=$(spost "{\"Type\":9,\"TargetCollectionID\":\"SMS00001\",\"TargetResourceIDs\":[$RU]}" SMS_ClientOperation.InitiateClientOperation)
eq "op for a live action" "$(head -n1 <<<"$R" | jq .OperationID) $("$LAB" stats "$D3" --json | jq .actions.deliveredAfterExpiry)" "16777302 0"
sleep 0.9
S1=$(opst 16777301)
OFFL=$(u="$SITE3/SMS_CN_ClientStatus?\$filter=OnlineStatus%20eq%200&\$select=ResourceID"; while [ -n "$u" ]; do r=$(site3 "$u"); jq -r '.value[].ResourceID' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done)
OFF=$(head -n 40 <<<"$ARIDS" | grep -cxF -f <(printf '%s\n' $OFFL) || true)
eq "status settles" "$(jq -c '[.[0], .[1] + .[2] + .[3], .[4], (.[1] > 0 and .[2] > 0 and .[3] > 0)]' <<<"$S1")" "[40,40,0,true]"
eq "offline = OnlineStatus 0" "$(jq '.[3]' <<<"$S1")" "$OFF"
spost "{\"Type\":8,\"TargetCollectionID\":\"SMS00001\",\"TargetResourceIDs\":$OPS}" SMS_ClientOperation.InitiateClientOperation >/dev/null
sleep 0.9
eq "same devices offline again" "$(opst 16777303 | jq '.[3]')" "$OFF"
eq "ReturnValue 1 for an unknown ResourceID" "$(spost '{"Type":8,"TargetCollectionID":"SMS00001","TargetResourceIDs":[16777220,1]}' SMS_ClientOperation.InitiateClientOperation | head -n1 | jq -c '[.ReturnValue, has("OperationID")]')" "[1,false]"
eq "ReturnValue 1 for a user collection" "$(spost '{"Type":8,"TargetCollectionID":"SMS00002","TargetResourceIDs":[16777220]}' SMS_ClientOperation.InitiateClientOperation | head -n1 | jq .ReturnValue)" "1"
eq "bad Type" "$(spost '{"Type":7,"TargetCollectionID":"SMS00001","TargetResourceIDs":[16777220]}' SMS_ClientOperation.InitiateClientOperation | tail -n1)" "400"
eq "no targets" "$(spost '{"Type":8,"TargetCollectionID":"SMS00001","TargetResourceIDs":[]}' SMS_ClientOperation.InitiateClientOperation | tail -n1)" "400"
eq "no collection" "$(spost '{"Type":8,"TargetResourceIDs":[16777220]}' SMS_ClientOperation.InitiateClientOperation | tail -n1)" "400"
eq "GET InitiateClientOperation" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_ClientOperation.InitiateClientOperation")" "405"
OP1=$(site3 "$SITE3/SMS_ClientOperation?\$filter=ID%20eq%2016777301")
eq "SMS_ClientOperation columns" "$(jq -c '.value[0] | keys_unsorted' <<<"$OP1")" \
	'["ID","CollectionID","CreatedBy","PrimaryActionType","RequestedTime","SourceSite","State","TargetCollectionName","TargetResourceIDs","TargetType"]'
eq "SMS_ClientOperation by ID" "$(jq -c --argjson t "$OPS" '.value[0] | [.CollectionID, .TargetCollectionName, .TargetResourceIDs == ($t | sort), .TargetType, .State, .SourceSite, .CreatedBy, (.RequestedTime | test("^[0-9-]{10}T[0-9:]{8}Z$"))]' <<<"$OP1")" \
	'["SMS00001","All Systems",true,1,1,"PS1","CONTOSO\\svc-cmbridge",true]'
R=$(site3 -w '\n%{http_code}' "$SITE3/SMS_ClientOperation?\$filter=Type%20eq%208")
eq "SMS_ClientOperation has no Type" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -r .error.message)" \
	"400 The query specified in the URI is not valid. Could not find a property named 'Type' on type 'AdminService.SMS_ClientOperation'."
eq "SMS_ClientOperation has no TargetCollectionID" "$(site3 "$SITE3/SMS_ClientOperation?\$select=TargetCollectionID" | jq -r .error.message)" \
	"The query specified in the URI is not valid. Could not find a property named 'TargetCollectionID' on type 'AdminService.SMS_ClientOperation'."
eq "SMS_ClientOperation by collection" "$(site3 "$SITE3/SMS_ClientOperation?\$filter=CollectionID%20eq%20'SMS00001'&\$select=ID&\$count=true" | jq -c '[."@odata.count", [.value[].ID]]')" "[3,[16777301,16777302,16777303]]"
eq "SMS_ClientOperation top" "$(site3 "$SITE3/SMS_ClientOperation?\$top=1&\$select=ID,CollectionID" | jq -c '[.value, has("@odata.nextLink")]')" '[[{"ID":16777301,"CollectionID":"SMS00001"}],false]'
eq "SMS_ClientOperation orderby desc" "$(site3 "$SITE3/SMS_ClientOperation?\$orderby=ID%20desc&\$select=ID" | jq -c '[.value[].ID]')" "[16777303,16777302,16777301]"
eq "SMS_ClientOperationStatus columns" "$(site3 "$SITE3/SMS_ClientOperationStatus?\$filter=ID%20eq%2016777301" | jq -c '.value[0] | keys_unsorted')" \
	'["ID","Type","State","CollectionID","TargetCollectionName","TotalClients","CompletedClients","FailedClients","OfflineClients","UnknownClients","IsExpired","RequestedTime","CreatedBy"]'
eq "SMS_ClientOperationStatus Type" "$(site3 "$SITE3/SMS_ClientOperationStatus?\$filter=Type%20eq%208&\$select=ID,Type" | jq -c '[.value[].ID]')" "[16777301,16777303]"
eq "SMS_ClientOperationStatus has no TargetResourceIDs" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_ClientOperationStatus?\$select=TargetResourceIDs")" "400"
eq "SMS_ClientOperation unknown property" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_ClientOperation?\$select=Nope")" "400"
CNW=$(u="$SITE3/SMS_CN_ClientStatus?\$select=ResourceID"; while [ -n "$u" ]; do r=$(site3 "$u"); jq -r '.value[].ResourceID' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done)
NCL3=$(site3 "$SITE3/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true&\$count=true&\$top=0" | jq '."@odata.count"')
eq "SMS_CN_ClientStatus paged, clients only" "$(wc -l <<<"$CNW") $(sort -u <<<"$CNW" | wc -l)" "$NCL3 $NCL3"
# its pages in ResourceID order are windows (actions.c site_read); with $count every client's row is built: the same rows
all3() { local u=$1 r; while [ -n "$u" ]; do r=$(site3 "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
for q in "SMS_CN_ClientStatus?\$select=ResourceID,OnlineStatus" "SMS_CN_ClientStatus?\$filter=OnlineStatus%20eq%201&\$select=ResourceID&\$skip=7" \
	"SMS_CN_ClientStatus?\$filter=ResourceID%20gt%2016777300&\$orderby=ResourceID&\$top=70&\$skip=3"; do
	WIN=$(all3 "$SITE3/$q"); FULL=$(all3 "$SITE3/$q&\$count=true")
	eq "window = full: $q" "$(md5sum <<<"$WIN") $(wc -l <<<"$WIN")" "$(md5sum <<<"$FULL") $(wc -l <<<"$FULL")"
	[ "$(wc -l <<<"$WIN")" -gt 50 ] || fail "window = full: $q: only $(wc -l <<<"$WIN") rows"
done
eq "SMS_CN_ClientStatus columns" "$(site3 "$SITE3/SMS_CN_ClientStatus?\$top=1" | jq -c '.value[0] | keys_unsorted')" '["ChannelType","LastStatusTime","OnlineStatus","ResourceID","ServerID"]'
eq "SMS_CN_ClientStatus has no Name" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_CN_ClientStatus?\$select=Name")" "400"
eq "operations.log" "$(wc -l <"$D3/operations.log") $(grep -cvE '^[0-9]{10}\.[0-9]{3} (16777[0-9]{3} [0-9]+|- (Block|Unblock)) [0-9]+$' "$D3/operations.log" || true)" "81 0"
eq "operations.log first" "$(head -n1 "$D3/operations.log" | cut -d' ' -f2-)" "16777301 8 $(head -n1 <<<"$ARIDS")"
RB=$(sed -n 5p <<<"$ARIDS")
R=$(spost "{\"ResourceIDs\":[$RB],\"Blocked\":true}" SMS_Collection.BlockClients)
eq "BlockClients" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[keys_unsorted[], .ReturnValue]')" '201 ["@odata.context","ReturnValue",0]'
eq "IsBlocked" "$(site3 "$SITE3/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$RB&\$select=IsBlocked" | jq -c .value)" '[{"IsBlocked":true}]'
eq "blocked is offline" "$(site3 "$SITE3/SMS_CN_ClientStatus?\$filter=ResourceID%20eq%20$RB" | jq '.value[0].OnlineStatus')" "0"
eq "BlockClients unknown" "$(spost '{"ResourceIDs":[1],"Blocked":true}' SMS_Collection.BlockClients | head -n1 | jq .ReturnValue)" "1"
sleep "$(awk -v t="$TU" -v n="$(date +%s.%N)" 'BEGIN { d = t + 3.2 - n; print (d > 0) ? d : 0 }')"     # its ttl (3 s) passes
eq "expired action untouched" "$("$LAB" actions "$D3" --json | jq -c '.value[-1] | [.action, .actionState, .expired]')" '["refreshUserPolicy","pending",true]'
spost "{\"Type\":9,\"TargetCollectionID\":\"SMS00001\",\"TargetResourceIDs\":[$RU]}" SMS_ClientOperation.InitiateClientOperation >/dev/null
eq "site stats" "$("$LAB" stats "$D3" --json | jq -c '[.site.operations, .site.operationTargets, .site.duplicateTargets, .site.blockedClients, .actions.deliveredAfterExpiry]')" "[4,82,41,1,1]"
# without TargetResourceIDs (optional): the collection's current members, TargetType 0
R=$(spost '{"Type":13,"TargetCollectionID":"PS100014"}' SMS_ClientOperation.InitiateClientOperation)
OPW=$(head -n1 <<<"$R" | jq .OperationID)
MEMW=$(walk3() { local u=$1 r; while [ -n "$u" ]; do r=$(site3 "$u"); jq -r '.value[].ResourceID' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }; walk3 "$SITE3/SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20'PS100014'&\$select=ResourceID" | jq -sc .)
eq "whole collection" "$(tail -n1 <<<"$R") $(site3 "$SITE3/SMS_ClientOperation?\$filter=ID%20eq%20$OPW" | jq -c --argjson m "$MEMW" '.value[0] | [.TargetType, .TargetResourceIDs == $m, (.TargetResourceIDs | length > 0)]')" "201 [0,true,true]"
# a lost reply on the site: the operation is created, the client hears nothing
"$LAB" faults "$D3" --site --rate-reply-lost 1 >/dev/null
eq "reply-lost leaves reads alone" "$(site3 -o /dev/null -w '%{http_code}' "$SITE3/SMS_Site")" "200"
set +e; R=$(spost "{\"Type\":8,\"TargetCollectionID\":\"SMS00001\",\"TargetResourceIDs\":[$RU]}" SMS_ClientOperation.InitiateClientOperation); RC=$?; set -e
"$LAB" faults "$D3" --clear >/dev/null
eq "site reply lost: no reply" "$([ "$RC" -ne 0 ] && tail -n1 <<<"$R")" "000"
eq "site reply lost: the operation exists" "$(site3 "$SITE3/SMS_ClientOperation?\$orderby=ID%20desc&\$top=1" | jq -c --argjson w "$OPW" '.value[0] | [.ID == $w + 1, .TargetResourceIDs]')" "[true,[$RU]]"
eq "site reply lost: counted and logged" "$("$LAB" stats "$D3" --json | jq .faults.repliesLost) $(grep -c ' site POST /AdminService/wmi/SMS_ClientOperation.InitiateClientOperation reply-lost reply-lost$' "$D3/requests.log")" "1 1"
. "$(dirname "$0")/policies.sh"     # endpoint security policies on this lab (policies.c, policystore.c)
"$LAB" down "$D3" >/dev/null
D3=

# ---- an older site, client paging, alternate value forms, a big $metadata (a lab of its own) ----
D4="$D/oldlab"
set +e; "$LAB" init "$D4" --site-version older >/dev/null 2>&1; RC=$?; set -e
eq "init --site-version older" "$RC" "2"
"$LAB" init "$D4" --devices 120 --page-size 50 --seed 3 --epoch 1767225600 --site-version old --client-paging >/dev/null
c4() { awk -v s="[$1]" -v k="$2" '$0==s{f=1;next} /^\[/{f=0} f && $1==k{print $3}' "$D4/lab.conf"; }
eq "init writes version and paging" "$(c4 site version) $(c4 site paging) $(c4 site values) $(c4 site block_reply) $(c4 site metadata_padding) $(c4 actions list_targets)" \
	"old client native return_value 0 yes"
sed -i -e 's/^values = native$/values = alternate/' -e 's/^block_reply = return_value$/block_reply = empty/' \
	-e 's/^metadata_padding = 0$/metadata_padding = 1000/' -e 's/^list_targets = yes$/list_targets = no/' "$D4/lab.conf"
"$LAB" up "$D4" --detach >/dev/null
SITE4="https://127.0.0.1:$(c4 site port)/AdminService/wmi"
site4() { curl -s --cacert "$D4/ca.pem" -u "CONTOSO\\svc-cmbridge:$(cat "$D4/site-password")" "$@"; }
perr4() { printf 'The query specified in the URI is not valid. Could not find a property named '"'"'%s'"'"' on type '"'"'AdminService.%s'"'"'.' "$1" "$2"; }
# old: no BuildExt, no AADDeviceID, no co-management class, an older version, case-sensitive class names
eq "old: no BuildExt" "$(site4 -w ' %{http_code}' "$SITE4/SMS_R_System?\$select=ResourceId,BuildExt" | sed 's/^{"error":{"code":"","message":"\(.*\)"}}/\1/')" "$(perr4 BuildExt SMS_R_System) 400"
eq "old: no AADDeviceID" "$(site4 "$SITE4/SMS_R_System?\$filter=AADDeviceID%20ne%20null" | jq -r .error.message)" "$(perr4 AADDeviceID SMS_R_System)"
eq "old: SMS_R_System columns" "$(site4 "$SITE4/SMS_R_System?\$top=1" | jq -c '.value[0] | keys_unsorted')" \
	'["ResourceId","Name","NetbiosName","ResourceType","SMSUniqueIdentifier","HardwareID","SMBIOSGUID","AADTenantID","OperatingSystemNameandVersion","Build","ResourceDomainORWorkgroup","Client","Obsolete","Decommissioned","Active"]'
eq "old: no co-management class" "$(site4 -o /dev/null -w '%{http_code}' "$SITE4/SMS_Client_ComanagementState")" "404"
eq "old: class names are case-sensitive" "$(site4 -o /dev/null -w '%{http_code}' "$SITE4/sms_r_system") $(site4 -o /dev/null -w '%{http_code}' "$SITE4/SMS_R_System?\$top=1")" "404 200"
eq "old: SMS_Site.Version" "$(site4 "$SITE4/SMS_Site" | jq -r '[.value[].Version] | unique | join(" ")')" "5.00.8968.1000"
MD4=$(site4 "$SITE4/\$metadata")
eq "old: \$metadata classes" "$(grep -o '<EntitySet Name="SMS_[^G"][^"]*"' <<<"$MD4" | cut -d'"' -f2 | tr '\n' ' ')" \
	"SMS_R_System SMS_CombinedDeviceResources SMS_FullCollectionMembership SMS_Collection SMS_Site SMS_ClientOperation SMS_ClientOperationStatus SMS_CN_ClientStatus "
eq "old: \$metadata lacks BuildExt, AADDeviceID, co-management" "$(grep -c 'BuildExt\|AADDeviceID\|SMS_Client_ComanagementState' <<<"$MD4" || true)" "0"
# metadata_padding = 1000: a multi-megabyte document of 1010 EntityTypes
eq "padding: entity types" "$(grep -o '<EntityType ' <<<"$MD4" | wc -l) $(grep -o '<EntitySet Name="SMS_G_System_X[0-9]*"' <<<"$MD4" | wc -l)" "1010 1000"
eq "padding: size" "$(( $(printf '%s' "$MD4" | wc -c) > 2000000 ))" "1"
eq "padding: well-formed" "$(xmllint --noout - <<<"$MD4" 2>&1 && echo ok)" "ok"
eq "padding: gzip" "$(site4 -H 'Accept-Encoding: gzip' "$SITE4/\$metadata" | gzip -dc | md5sum)" "$(printf '%s' "$MD4" | md5sum)"
eq "padding: a generated class" "$(site4 "$SITE4/SMS_G_System_X0001" | jq -c .value) $(site4 -o /dev/null -w '%{http_code}' "$SITE4/SMS_G_System_X1001")" "[] 404"
# client paging: at most page_size (or $top) rows, never a nextLink, $skip windows
P4=$(site4 "$SITE4/SMS_R_System?\$select=ResourceId")
eq "client paging: one page, no nextLink" "$(jq -c '[(.value | length), has("@odata.nextLink")]' <<<"$P4")" "[50,false]"
W4=$(for k in 0 50 100 150; do site4 "$SITE4/SMS_R_System?\$select=ResourceId&\$top=50&\$skip=$k" | jq -r '.value[].ResourceId'; done)
eq "client paging: \$skip windows" "$(wc -l <<<"$W4") $(sort -u <<<"$W4" | wc -l) $(site4 "$SITE4/SMS_R_System?\$count=true&\$top=0" | jq '."@odata.count"')" "120 120 120"
eq "client paging: \$top 7" "$(site4 "$SITE4/SMS_CombinedDeviceResources?\$top=7&\$skip=3" | jq -c '[(.value | length), has("@odata.nextLink")]')" "[7,false]"
eq "client paging: no \$skiptoken" "$(site4 -o /dev/null -w '%{http_code}' "$SITE4/SMS_R_System?\$skiptoken=R16777220")" "400"
eq "client paging: operation classes too" "$(site4 "$SITE4/SMS_CN_ClientStatus" | jq -c '[(.value | length), has("@odata.nextLink")]')" "[50,false]"
# values = alternate: DMTF dates, WMI booleans as 0/1, 64-bit bitmasks as numeric strings
eq "alternate: CDR forms" "$(site4 "$SITE4/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true&\$top=1&\$select=ResourceID,IsClient,LastActiveTime,ClientActiveStatus" | jq -c '.value[0] | [(.ResourceID | type), .IsClient, (.LastActiveTime | test("^[0-9]{14}[.]000000[+]000$")), .ClientActiveStatus]')" \
	'["number",1,true,1]'
eq "alternate: collection times" "$(site4 "$SITE4/SMS_Collection?\$filter=CollectionID%20eq%20'SMS00001'&\$select=LastChangeTime" | jq -r '.value[0].LastChangeTime')" "20230716100700.000000+000"
# block_reply = empty, list_targets = no
R=$(site4 -X POST -H 'Content-Type: application/json' -w '\n%{http_code}' -d '{"ResourceIDs":[16777221],"Blocked":true}' "$SITE4/SMS_Collection.BlockClients")
eq "block_reply = empty" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c 'keys_unsorted')" '201 ["@odata.context"]'
eq "blocked anyway" "$(site4 "$SITE4/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%2016777221&\$select=IsBlocked" | jq -c .value)" '[{"IsBlocked":1}]'
R=$(site4 -X POST -H 'Content-Type: application/json' -w '\n%{http_code}' -d '{"Type":8,"TargetCollectionID":"SMS00001","TargetResourceIDs":[16777222,16777223]}' "$SITE4/SMS_ClientOperation.InitiateClientOperation")
eq "old: InitiateClientOperation" "$(tail -n1 <<<"$R") $(head -n1 <<<"$R" | jq -c '[.ReturnValue, .OperationID]')" "201 [0,16777301]"
eq "old: method names are case-sensitive" "$(site4 -o /dev/null -w '%{http_code}' -X POST -d '{}' "$SITE4/SMS_ClientOperation.initiateclientoperation")" "404"
eq "list_targets = no" "$(site4 "$SITE4/SMS_ClientOperation" | jq -c '.value[0] | [has("TargetResourceIDs"), .TargetType, (.RequestedTime | test("^[0-9]{14}"))]') $(site4 "$SITE4/SMS_ClientOperation?\$select=ID,TargetResourceIDs" | jq -c '.value')" \
	'[false,1,true] [{"ID":16777301}]'
"$LAB" down "$D4" >/dev/null
D4=

# ---- a default-sized lab (5,000 devices, seed 1): pairs, plain devices, collections ----------
D2=$(mktemp -d /tmp/cmbridge-lab-selftest2.XXXXXX)
"$LAB" init "$D2/lab" --epoch 1767225600 >/dev/null
"$LAB" up "$D2/lab" --detach >/dev/null
SITE2="https://127.0.0.1:$(awk '$0=="[site]"{f=1;next} /^\[/{f=0} f && $1=="port"{print $3}' "$D2/lab/lab.conf")/AdminService/wmi"
site2() { curl -s --cacert "$D2/lab/ca.pem" -u "CONTOSO\\svc-cmbridge:$(cat "$D2/lab/site-password")" "$@"; }
all2() { local u=$1 r; while [ -n "$u" ]; do r=$(site2 "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
all2 "$SITE2/SMS_R_System?\$select=ResourceId,HardwareID,SMBIOSGUID,Obsolete" | jq -s 'INDEX(.ResourceId|tostring)' >"$D2/sys.json"
all2 "$SITE2/SMS_CombinedDeviceResources?\$select=ResourceID,LastActiveTime" | jq -s 'INDEX(.ResourceID|tostring)' >"$D2/cdr.json"
eq "default lab pairs" "$(jq -n -c --slurpfile s "$D2/sys.json" --slurpfile c "$D2/cdr.json" '[$s[0][]] | group_by(.SMBIOSGUID) | map(select(length > 1) | sort_by(.ResourceId)
	| [(.[0].HardwareID == .[1].HardwareID), [.[].Obsolete], ($c[0][.[1].ResourceId|tostring].LastActiveTime > $c[0][.[0].ResourceId|tostring].LastActiveTime)])
	| group_by(.) | map([.[0], length])')" '[[[false,[0,0],true],6],[[true,[0,0],true],6],[[true,[1,0],true],20]]'
eq "default lab MemberCounts" "$(site2 "$SITE2/SMS_Collection" | jq -c '[.value[] | [.CollectionID, .MemberCount]]')" \
	'[["PS100010",487],["PS100011",365],["PS100012",355],["PS100013",0],["PS100014",2404],["PS100015",500],["PS100016",0],["SMS00001",5000],["SMS00002",0],["SMSDM003",4808]]'
set +e; MSG=$("$LAB" mutate "$D2/lab" --change 1000000 2>&1); set -e
eq "default lab plain devices" "${MSG##*the site has }" "4254"
OUT=$("$LAB" mutate "$D2/lab" --delete 600 --verbose)
eq "default lab delete 600" "$(grep '^deleted:' <<<"$OUT" | wc -w) $(site2 "$SITE2/SMS_Collection?\$filter=CollectionID%20eq%20'SMS00001'" | jq '.value[0].MemberCount')" "601 4400"
"$LAB" down "$D2/lab" >/dev/null
rm -rf "$D2"; D2=

# ---- down ----------------------------------------------------------------------------
eq "down" "$("$LAB" down "$D" >/dev/null; echo $?)" "0"
eq "pid removed" "$(test -e "$D/lab.pid" && echo yes || echo no)" "no"
eq "port closed" "$(curl -s -o /dev/null --cacert "$D/ca.pem" "$SITE/" && echo open || echo closed)" "closed"
eq "down when not running" "$("$LAB" down "$D")" "cmbridge-lab: $D: not running"
echo "lab selftest: $CHECKS checks passed"
