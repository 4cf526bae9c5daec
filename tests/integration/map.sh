#!/usr/bin/env bash
# Offline mapping: pages saved from the site map to exactly the records the
# tenant holds after a live sync of the same site; bad invocations fail
# clearly with the right exit status.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 250 --seed 11 --page-size 1000
SITE=$(sed -n 's/^url *= *//p' "$CONF")
USER=$(sed -n 's/^username *= *//p' "$CONF")
# Saved as an admin would save them, each class ordered by its own key:
# SMS_R_System spells it ResourceId, the others ResourceID.
for cls in SMS_R_System:ResourceId SMS_CombinedDeviceResources:ResourceID SMS_Client_ComanagementState:ResourceID \
           SMS_G_System_COMPUTER_SYSTEM:ResourceID SMS_G_System_PC_BIOS:ResourceID; do
  key=${cls#*:} cls=${cls%%:*}
  curl -sS --fail --cacert "$LAB/ca.pem" -u "$USER:$(cat "$LAB/site-password")" \
    "$SITE/wmi/$cls?\$orderby=$key" > "$TMP/$cls.json" || { echo "FAIL: saving $cls"; exit 1; }
done

say "map saved pages"
"$CMBRIDGE" map --from adminservice --site-code PS1 "$TMP"/SMS_*.json > "$TMP/records.jsonl" 2> "$TMP/map.err"; rc=$?
expect_eq "map exit status" 0 "$rc"
mapped=$(grep -c . "$TMP/records.jsonl")
expect_match "map summary on stderr" "^map: $mapped records, [0-9]+ skipped, 0 quarantined$" "$(tail -1 "$TMP/map.err")"
out=$("$CMBRIDGE_LAB" schema-check --type managedDevice <(python3 -c '
import json,sys
for l in open(sys.argv[1]): print(json.dumps(json.loads(l)["managedDevice"]))' "$TMP/records.jsonl") 2>&1); rc=$?
expect_eq "mapped managedDevice objects validate against the schema" 0 "$rc"

say "live sync of the same site"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "sync exit status" 0 "$rc"
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
AUTHORITY=$(sed -n 's/^authority *= *//p' "$CONF")
CLIENT_ID=$(sed -n 's/^client_id *= *//p' "$CONF")
TOKEN=$(curl -sS --cacert "$LAB/ca.pem" -d grant_type=client_credentials --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "client_secret@$LAB/client-secret" --data-urlencode "scope=https://graph.microsoft.com/.default" \
  "$AUTHORITY/oauth2/v2.0/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
  "$GRAPH/deviceManagement/managedDevices?\$top=1000" > "$TMP/listing.json"
# Offline mapping is per record; duplicate detection needs the whole site, so
# the live sync's duplicates (listed in its quarantine) are left out here.
"$CMBRIDGE" -c "$CONF" quarantine --json > "$TMP/quarantine.json"
same=$(python3 - "$TMP/records.jsonl" "$TMP/listing.json" "$TMP/quarantine.json" <<'PY'
import json, sys
dups = {q["key"] for q in json.load(open(sys.argv[3])) if q["kind"] == "duplicate"}
mapped = [json.loads(l)["managedDevice"] for l in open(sys.argv[1]) if json.loads(l)["key"] not in dups]
held = json.load(open(sys.argv[2]))["value"]
for d in held: d.pop("id")
key = lambda d: json.dumps(d, sort_keys=True)
print("same" if sorted(map(key, mapped)) == sorted(map(key, held)) else "differ: %d mapped, %d held" % (len(mapped), len(held)))
PY
)
expect_eq "offline mapping equals what the tenant holds after a live sync" same "$same"

say "bad invocations"
"$CMBRIDGE" map "$TMP/SMS_R_System.json" > /dev/null 2> "$TMP/err"; rc=$?
expect_eq "map without --from: exit status" 2 "$rc"
expect_match "map without --from: says so" "--from adminservice is required" "$(cat "$TMP/err")"
"$CMBRIDGE" map --from adminservice "$TMP/SMS_CombinedDeviceResources.json" > /dev/null 2> "$TMP/err"; rc=$?
expect_eq "map without SMS_R_System: exit status" 1 "$rc"
expect_match "map without SMS_R_System: says so" "no SMS_R_System page" "$(cat "$TMP/err")"
"$CMBRIDGE" map --from adminservice "$TMP/missing.json" > /dev/null 2> "$TMP/err"; rc=$?
expect_eq "map of a missing file: exit status" 1 "$rc"
expect_match "map of a missing file: names it" "cannot open .*missing.json" "$(cat "$TMP/err")"
printf '{"@odata.context":"x#SMS_R_System","value":[{"ResourceID":1,' > "$TMP/cut.json"
"$CMBRIDGE" map --from adminservice "$TMP/cut.json" > /dev/null 2> "$TMP/err"; rc=$?
expect_eq "map of a truncated page: exit status" 1 "$rc"
expect_match "map of a truncated page: names the file" "cut.json" "$(cat "$TMP/err")"

finish
