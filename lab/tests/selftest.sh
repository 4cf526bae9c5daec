#!/usr/bin/env bash
# Self-test of cmbridge-lab: starts a fresh lab in a temporary directory and
# checks every surface with curl against the lab's CA, with exact assertions.
# Usage: selftest.sh PATH/TO/cmbridge-lab
set -euo pipefail

LAB=${1:?usage: selftest.sh PATH/TO/cmbridge-lab}
for tool in curl jq gzip; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

D=$(mktemp -d /tmp/cmbridge-lab-selftest.XXXXXX)
cleanup() {
	local rc=$?
	"$LAB" down "$D" >/dev/null 2>&1 || true
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
walk() { # walk FIRST_URL -> prints one ResourceID per line; checks nextLink form
	local url=$1 base=$2 r n
	while [ -n "$url" ]; do
		r=$(site "$url")
		jq -r '.value[].ResourceID' <<<"$r"
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
IDS=$(walk "$SITE/SMS_R_System?\$select=ResourceID,Name&\$orderby=ResourceID" abs)
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
P=$(site "$SITE/SMS_R_System?\$select=ResourceID,Name&\$top=3")
eq "\$select keys" "$(jq -c '[.value[0] | keys_unsorted[]]' <<<"$P")" '["ResourceID","Name"]'
eq "\$top 3" "$(jq '.value | length' <<<"$P")" "3"
eq "\$top no nextLink" "$(jq 'has("@odata.nextLink")' <<<"$P")" "false"
eq "content type" "$(site -o /dev/null -w '%{content_type}' "$SITE/SMS_R_System?\$top=1")" "application/json; odata.metadata=minimal"
eq "\$skip" "$(site "$SITE/SMS_R_System?\$select=ResourceID&\$skip=295" | jq -c '[.value[].ResourceID]')" "$(tail -n5 <<<"$IDS" | jq -sc .)"
eq "\$orderby desc" "$(site "$SITE/SMS_R_System?\$select=ResourceID&\$orderby=ResourceID%20desc&\$top=3" | jq -c '[.value[].ResourceID]')" \
	"$(tail -n3 <<<"$IDS" | tac | jq -sc .)"
TOP120=$(walk "$SITE/SMS_R_System?\$select=ResourceID&\$top=120" abs)
eq "\$top above page size" "$(wc -l <<<"$TOP120")" "120"
ALL=$(u="$SITE/SMS_R_System?\$select=ResourceID,Client,BuildExt"; while [ -n "$u" ]; do r=$(site "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done)
CLIENTS=$(jq -s '[.[] | select(.Client == 1)] | length' <<<"$ALL")
eq "\$filter Client eq 1 count" "$(site "$SITE/SMS_R_System?\$filter=Client%20eq%201&\$count=true&\$top=0" | jq '."@odata.count"')" "$CLIENTS"
eq "\$filter string and bool" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=IsClient%20eq%20true%20and%20SiteCode%20eq%20'PS1'&\$count=true&\$top=0" | jq '."@odata.count"')" "$CLIENTS"
eq "\$filter key" "$(site "$SITE/SMS_R_System?\$filter=ResourceID%20eq%2016777221&\$select=ResourceID" | jq -c .value)" '[{"ResourceID":16777221}]'
R=$(site -w '\n%{http_code}' "$SITE/SMS_R_System?\$select=ResourceID,Nope")
eq "unknown \$select status" "$(tail -n1 <<<"$R")" "400"
eq "unknown \$select body" "$(head -n1 <<<"$R" | jq -c .error)" \
	'{"code":"BadRequest","message":"Could not find a property named '"'"'Nope'"'"' on type '"'"'SMS_R_System'"'"' ($select)."}'
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
before() { site "$SITE/SMS_R_System?\$filter=ResourceID%20eq%20$1&\$select=BuildExt" | jq -r '.value[0].BuildExt'; }
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
	old=$(jq -r --argjson id "$id" 'select(.ResourceID == $id) | .BuildExt' <<<"$ALL")
	eq "changed $id BuildExt" "$(before "$id")" "${old%.*}.$(( ${old##*.} + 1 ))"
done
NEWB=$(for id in $CH; do before "$id"; done)
eq "changed BuildExt = DeviceOSBuild" "$(for id in $CH; do site "$SITE/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$id&\$select=DeviceOSBuild" | jq -r '.value[0].DeviceOSBuild'; done)" "$NEWB"
for id in $DE; do
	for cls in SMS_R_System SMS_CombinedDeviceResources SMS_Client_ComanagementState SMS_G_System_COMPUTER_SYSTEM SMS_G_System_PC_BIOS; do
		eq "deleted $id in $cls" "$(site "$SITE/$cls?\$filter=ResourceID%20eq%20$id&\$count=true&\$top=0" | jq '."@odata.count"')" "0"
	done
done
for id in $AD; do
	eq "added $id is plain" "$(site "$SITE/SMS_CombinedDeviceResources?\$filter=ResourceID%20eq%20$id&\$select=IsClient,IsActive,IsObsolete,IsDecommissioned,ClientActiveStatus" | jq -c '.value[0]')" \
		'{"IsClient":true,"IsActive":true,"IsObsolete":false,"IsDecommissioned":false,"ClientActiveStatus":1}'
done
set +e; "$LAB" mutate "$D" --delete 100000 >/dev/null 2>&1; RC=$?; set -e
eq "mutate too many" "$RC" "1"

# ---- stats -------------------------------------------------------------------------
S=$("$LAB" stats "$D" --json)
eq "stats keys" "$(jq -c '[keys_unsorted[]] , [.tenant | keys_unsorted[]], [.site | keys_unsorted[]], [.faults | keys_unsorted[]]' <<<"$S" | tr '\n' ' ')" \
	'["tenant","site","faults","routes"] ["devices","uploadRequests","recordsReceived","recordsCreated","recordsUpdated","recordsRejected","removalsReceived","removalsApplied","batchesReplayed","tokensIssued","tokenErrors","authFailures","bytesReceived","writes","collections","collectionUploadRequests","collectionRecordsReceived","requests","maxRequestsPerSecond"] ["devices","pageRequests","bytesSent","requests","maxRequestsPerSecond"] ["injected500","injected429","resets","truncated","repliesLost","retryAfterViolations"] '
eq "stats writes = authenticated uploads" "$(jq -c '[.tenant.writes, .tenant.collections, .tenant.collectionRecordsReceived]' <<<"$S")" "[8,0,0]"
eq "stats tenant" "$(jq -c '.tenant | [.devices,.uploadRequests,.recordsReceived,.recordsCreated,.recordsUpdated,.recordsRejected,.removalsReceived,.removalsApplied,.batchesReplayed,.tokensIssued,.tokenErrors]' <<<"$S")" \
	"[122,8,125,123,1,1,2,1,1,1,6]"
eq "stats site devices" "$(jq .site.devices <<<"$S")" "299"
eq "stats gateway route" "$(jq '.routes["POST /api/gateway/DevicePost"]' <<<"$S")" "9"
eq "stats all integers" "$(jq '[.. | numbers | select(. != floor)] | length' <<<"$S")" "0"

# ---- inventory realism -----------------------------------------------------------------
# (one snapshot of the whole site: SMS_R_System, CDR and co-management joined by ResourceID)
allrows() { local u=$1 r; while [ -n "$u" ]; do r=$(site "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
allrows "$SITE/SMS_R_System?\$select=ResourceID,Name,HardwareID,SMBIOSGUID,AADDeviceID,AADTenantID,Client,Obsolete,Active" | jq -s 'INDEX(.ResourceID|tostring)' >"$D/sys0.json"
allrows "$SITE/SMS_CombinedDeviceResources" | jq -s 'INDEX(.ResourceID|tostring)' >"$D/cdr0.json"
allrows "$SITE/SMS_Client_ComanagementState" | jq -s 'INDEX(.ResourceID|tostring)' >"$D/cms0.json"
eq "co-managed devices are joined with an AADDeviceID" "$(jq -n --slurpfile s "$D/sys0.json" --slurpfile m "$D/cms0.json" \
	'[$m[0][] | select(.MDMEnrolled and .ComgmtPolicyPresent) | select(((.HybridAADJoined or .AADJoined) | not) or $s[0][.ResourceID|tostring].AADDeviceID == null)] | length')" "0"
eq "some co-managed" "$(jq '[.[] | select(.MDMEnrolled and .ComgmtPolicyPresent)] | length > 0' "$D/cms0.json")" "true"
eq "some joined, not co-managed" "$(jq '[.[] | select((.MDMEnrolled and .ComgmtPolicyPresent | not) and (.HybridAADJoined or .AADJoined))] | length > 0' "$D/cms0.json")" "true"
eq "some active clients not joined" "$(jq '[.[] | select(.Client == 1 and .Active == 1 and .AADDeviceID == null)] | length > 0' "$D/sys0.json")" "true"
# duplicate hardware: every pair sharing SMBIOSGUID has the newer record (higher ResourceID) later in LastActiveTime
PAIRS=$(jq -n -c --slurpfile s "$D/sys0.json" --slurpfile c "$D/cdr0.json" '[$s[0][]] | group_by(.SMBIOSGUID) | map(select(length > 1) | sort_by(.ResourceID)
	| {hw: (.[0].HardwareID == .[1].HardwareID), obs: [.[].Obsolete], later: ($c[0][.[1].ResourceID|tostring].LastActiveTime > $c[0][.[0].ResourceID|tostring].LastActiveTime)})')
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
	"$(walk "$SITE/SMS_R_System?\$select=ResourceID" abs | md5sum)"
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
sysr() { site "$SITE/SMS_R_System?\$filter=ResourceID%20eq%20$1" | jq -c '.value[0]'; }
plus() { date -u -d "@$(( $(date -u -d "$1" +%s) + $2 ))" +%Y-%m-%dT%H:%M:%SZ; }
for id in $CI; do
	B=$(jq -c --arg i "$id" '.[$i]' "$D/cdr0.json")
	eq "checkin $id CDR" "$(cdr "$id")" "$(jq -c --arg p "$(plus "$(jq -r .LastPolicyRequest <<<"$B")" 300)" --arg a "$(plus "$(jq -r .LastActiveTime <<<"$B")" 300)" \
		'.LastPolicyRequest = $p | .LastActiveTime = $a' <<<"$B")"
	eq "checkin $id health" "$(cdr "$id" | jq -c '[.ClientActiveStatus, .IsActive]')" "[1,true]"
	eq "checkin $id SMS_R_System unchanged" "$(sysr "$id" | jq -c '{ResourceID,Name,HardwareID,SMBIOSGUID,AADDeviceID,AADTenantID,Client,Obsolete,Active}')" "$(jq -c --arg i "$id" '.[$i]' "$D/sys0.json")"
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
set +e; "$LAB" faults "$D" --site --rate-reply-lost 1 >/dev/null 2>&1; RC=$?; set -e
eq "reply-lost is tenant only" "$RC" "1"
flt --clear
flt --tenant --rate-reply-lost 1
LOST=$(jq -nc --argjson a "$(crec PS1:PS100015 "$(cm PS100015 'Patch ring 1')")" '{batchId:"c-lost", collections:[$a]}')
set +e; R=$(cpost "$LOST"); RC=$?; set -e
eq "reply lost: no reply" "$([ "$RC" -ne 0 ] && tail -n1 <<<"$R")" "000"
flt --clear
R=$(cpost "$LOST")
eq "reply lost: retry replayed" "$(head -n1 <<<"$R" | jq -c '[.replayed, .results[0].status]')" '[true,"created"]'
eq "reply lost: applied once" "$(stat '[.tenant.collections, .tenant.collectionRecordsReceived, .tenant.batchesReplayed]')" "[3,7,3]"
eq "fault counters" "$(stat .faults)" '{"injected500":3,"injected429":3,"resets":1,"truncated":1,"repliesLost":1,"retryAfterViolations":1}'

# ---- request log ------------------------------------------------------------------------------
RL="$D/requests.log"
eq "log lines well-formed" "$(grep -cvE '^[0-9]{10}\.[0-9]{3} (site|tenant|admin) [A-Z]+ /[^ ?]* ([0-9]{3}|reset|truncated|reply-lost) (-|500|429|reset|truncate|reply-lost)$' "$RL" || true)" "0"
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
RIDS=$(walk "$SITE/SMS_R_System?\$select=ResourceID&\$orderby=ResourceID" rel)
eq "relative walk count" "$(wc -l <<<"$RIDS")" "301"
eq "relative walk unique" "$(sort -u <<<"$RIDS" | wc -l)" "301"
eq "state kept across restart" "$("${C[@]}" "${AUTH[@]}" "$G?\$count=true&\$top=1" | jq '."@odata.count"')" "122"

# ---- a default-sized lab (5,000 devices, seed 1): pairs, plain devices, collections ----------
D2=$(mktemp -d /tmp/cmbridge-lab-selftest2.XXXXXX)
"$LAB" init "$D2/lab" --epoch 1767225600 >/dev/null
"$LAB" up "$D2/lab" --detach >/dev/null
SITE2="https://127.0.0.1:$(awk '$0=="[site]"{f=1;next} /^\[/{f=0} f && $1=="port"{print $3}' "$D2/lab/lab.conf")/AdminService/wmi"
site2() { curl -s --cacert "$D2/lab/ca.pem" -u "CONTOSO\\svc-cmbridge:$(cat "$D2/lab/site-password")" "$@"; }
all2() { local u=$1 r; while [ -n "$u" ]; do r=$(site2 "$u"); jq -c '.value[]' <<<"$r"; u=$(jq -r '."@odata.nextLink" // empty' <<<"$r"); done; }
all2 "$SITE2/SMS_R_System?\$select=ResourceID,HardwareID,SMBIOSGUID,Obsolete" | jq -s 'INDEX(.ResourceID|tostring)' >"$D2/sys.json"
all2 "$SITE2/SMS_CombinedDeviceResources?\$select=ResourceID,LastActiveTime" | jq -s 'INDEX(.ResourceID|tostring)' >"$D2/cdr.json"
eq "default lab pairs" "$(jq -n -c --slurpfile s "$D2/sys.json" --slurpfile c "$D2/cdr.json" '[$s[0][]] | group_by(.SMBIOSGUID) | map(select(length > 1) | sort_by(.ResourceID)
	| [(.[0].HardwareID == .[1].HardwareID), [.[].Obsolete], ($c[0][.[1].ResourceID|tostring].LastActiveTime > $c[0][.[0].ResourceID|tostring].LastActiveTime)])
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
