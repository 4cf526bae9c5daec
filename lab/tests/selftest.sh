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
eq "stats keys" "$(jq -c '[keys_unsorted[]] , [.tenant | keys_unsorted[]], [.site | keys_unsorted[]]' <<<"$S" | tr '\n' ' ')" \
	'["tenant","site","routes"] ["devices","uploadRequests","recordsReceived","recordsCreated","recordsUpdated","recordsRejected","removalsReceived","removalsApplied","batchesReplayed","tokensIssued","tokenErrors","authFailures","bytesReceived"] ["devices","pageRequests","bytesSent"] '
eq "stats tenant" "$(jq -c '.tenant | [.devices,.uploadRequests,.recordsReceived,.recordsCreated,.recordsUpdated,.recordsRejected,.removalsReceived,.removalsApplied,.batchesReplayed,.tokensIssued,.tokenErrors]' <<<"$S")" \
	"[122,8,125,123,1,1,2,1,1,1,6]"
eq "stats site devices" "$(jq .site.devices <<<"$S")" "299"
eq "stats gateway route" "$(jq '.routes["POST /api/gateway/DevicePost"]' <<<"$S")" "9"
eq "stats all integers" "$(jq '[.. | numbers | select(. != floor)] | length' <<<"$S")" "0"

# ---- relative nextLink (restart with nextlink = relative) -------------------------------
"$LAB" down "$D" >/dev/null
sed -i 's/^nextlink = absolute$/nextlink = relative/' "$D/lab.conf"
"$LAB" up "$D" --detach >/dev/null
SP=$(conf site port); SITE="https://127.0.0.1:$SP/AdminService/wmi"
RIDS=$(walk "$SITE/SMS_R_System?\$select=ResourceID&\$orderby=ResourceID" rel)
eq "relative walk count" "$(wc -l <<<"$RIDS")" "299"
eq "relative walk unique" "$(sort -u <<<"$RIDS" | wc -l)" "299"
eq "state kept across restart" "$("${C[@]}" "${AUTH[@]}" "$G?\$count=true&\$top=1" | jq '."@odata.count"')" "122"

# ---- down ----------------------------------------------------------------------------
eq "down" "$("$LAB" down "$D" >/dev/null; echo $?)" "0"
eq "pid removed" "$(test -e "$D/lab.pid" && echo yes || echo no)" "no"
eq "port closed" "$(curl -s -o /dev/null --cacert "$D/ca.pem" "$SITE/" && echo open || echo closed)" "closed"
eq "down when not running" "$("$LAB" down "$D")" "cmbridge-lab: $D: not running"
echo "lab selftest: $CHECKS checks passed"
