#!/usr/bin/env bash
# Collections: [site] collection limits the upload to the members of one
# collection; [site] cloud_sync_collections uploads configManagerCollection
# records that validate against the schema, name the hierarchy from
# SMS_Site, are not re-sent when unchanged, and leave when unlisted.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 2000 --seed 4
SITE=$(sed -n 's/^url *= *//p' "$CONF")
USER=$(sed -n 's/^username *= *//p' "$CONF")
site_get() { curl -sS --fail --cacert "$LAB/ca.pem" -u "$USER:$(cat "$LAB/site-password")" "$SITE/wmi/$1"; }

say "the whole site, for reference"
mkdir -m 700 "$TMP/state-full"
FULLSTAGE=$(conf_with fullstage "connector.state_dir=$TMP/state-full" connector.mode=staging)
"$CMBRIDGE" -c "$FULLSTAGE" sync > /dev/null 2>&1 || { echo "FAIL: reference read"; exit 1; }
"$CMBRIDGE" -c "$FULLSTAGE" diff --json > "$TMP/full.json" 2>/dev/null || { echo "FAIL: reference diff"; exit 1; }
"$CMBRIDGE" -c "$FULLSTAGE" quarantine --json > "$TMP/fullq.json"

say "[site] collection = PS100010 uploads exactly its members"
site_get "SMS_FullCollectionMembership?\$filter=CollectionID%20eq%20%27PS100010%27&\$select=ResourceID" > "$TMP/members.json"
SCOPED=$(conf_with scoped site.collection=PS100010)
"$CMBRIDGE" -c "$SCOPED" sync > /dev/null 2>&1; rc=$?
expect_eq "scoped sync exit status" 0 "$rc"
"$CMBRIDGE" -c "$SCOPED" quarantine --json > "$TMP/scopedq.json"
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $(graph_token)" \
  "$(sed -n 's/^graph_url *= *//p' "$CONF")/deviceManagement/managedDevices?\$top=1000&\$count=true" > "$TMP/held.json"
"$CMBRIDGE" -c "$SCOPED" status --json > "$TMP/status.json"
verdict=$(python3 - "$TMP/members.json" "$TMP/full.json" "$TMP/fullq.json" "$TMP/scopedq.json" "$TMP/status.json" "$TMP/held.json" <<'PY'
import json, sys
members = {r["ResourceID"] for r in json.load(open(sys.argv[1]))["value"]}
full = json.load(open(sys.argv[2]))
in_scope = {c["key"] for c in full["changes"] if c["op"] == "add"}
in_scope |= {q["key"] for q in json.load(open(sys.argv[3])) if q["kind"] == "duplicate"}
scoped_dups = {q["key"] for q in json.load(open(sys.argv[4])) if q["kind"] == "duplicate"}
expected = {k for k in in_scope if int(k.split(":")[1]) in members} - scoped_dups
attached = json.load(open(sys.argv[5]))["devicesAttached"]
held = json.load(open(sys.argv[6]))["@odata.count"]
ok = len(members) > 0 and attached == len(expected) == held and len(expected) < len(in_scope)
print("exact" if ok else "members %d, expected %d, attached %d, tenant %d" % (len(members), len(expected), attached, held))
PY
)
expect_eq "attached = in-scope members (connector and tenant)" exact "$verdict"

say "cloud_sync_collections uploads configManagerCollection records"
site_get "SMS_Site?\$select=SiteCode,SiteName,ReportingSiteCode" > "$TMP/sites.json"
top=$(jget "$TMP/sites.json" "[s['SiteCode'] for s in d['value'] if not s.get('ReportingSiteCode')][0]")
topname=$(jget "$TMP/sites.json" "[s['SiteName'] for s in d['value'] if not s.get('ReportingSiteCode')][0]")
COLL=$(conf_with coll site.cloud_sync_collections=PS100010,PS100011,PS100013)
"$CMBRIDGE" -c "$COLL" sync > "$TMP/out.txt" 2>&1; rc=$?
expect_eq "collection sync exit status" 0 "$rc"
expect_match "sync reports the collections" "collections: 3 uploaded, 0 removed" "$(cat "$TMP/out.txt")"
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
TOKEN=$(graph_token)
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" "$GRAPH/deviceManagement/configManagerCollections?\$count=true" > "$TMP/colls.json"
expect_eq "tenant lists 3 collections" 3 "$(jget "$TMP/colls.json" "d['@odata.count']")"
expect_eq "identifiers" "PS100010 PS100011 PS100013" "$(jget "$TMP/colls.json" "' '.join(sorted(c['collectionIdentifier'] for c in d['value']))")"
site_get "SMS_Collection?\$filter=CollectionID%20eq%20%27PS100011%27" > "$TMP/c11.json"
expect_eq "displayName is the site's Name" "$(jget "$TMP/c11.json" "d['value'][0]['Name']")" \
  "$(jget "$TMP/colls.json" "[c['displayName'] for c in d['value'] if c['collectionIdentifier']=='PS100011'][0]")"
expect_eq "hierarchyIdentifier is the top site" "$top" "$(jget "$TMP/colls.json" "d['value'][0]['hierarchyIdentifier']")"
expect_eq "hierarchyName is the top site's name" "$topname" "$(jget "$TMP/colls.json" "d['value'][0]['hierarchyName']")"
out=$("$CMBRIDGE_LAB" schema-check --type configManagerCollection "$TMP/colls.json" 2>&1); rc=$?
expect_eq "collections validate against the reference schema" 0 "$rc"
lab_stats; crecv=$(stat "['tenant']['collectionRecordsReceived']")
"$CMBRIDGE" -c "$COLL" sync > /dev/null 2>&1
lab_stats
expect_eq "unchanged collections are not sent again" "$crecv" "$(stat "['tenant']['collectionRecordsReceived']")"

say "a collection that leaves the list leaves the tenant"
COLL2=$(conf_with coll2 site.cloud_sync_collections=PS100010,PS100013)
"$CMBRIDGE" -c "$COLL2" sync > "$TMP/out.txt" 2>&1; rc=$?
expect_eq "exit status" 0 "$rc"
expect_match "one removed" "collections: 0 uploaded, 1 removed" "$(cat "$TMP/out.txt")"
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" "$GRAPH/deviceManagement/configManagerCollections?\$count=true" > "$TMP/colls.json"
expect_eq "tenant lists 2 collections" 2 "$(jget "$TMP/colls.json" "d['@odata.count']")"

say "bad collection lists fail clearly"
BAD=$(conf_with bad site.cloud_sync_collections=PS100010,PS1000FF)
out=$("$CMBRIDGE" -c "$BAD" sync 2>&1); rc=$?
expect_eq "missing collection: exit status" 1 "$rc"
expect_match "missing collection: names it" "PS1000FF" "$out"
USERC=$(conf_with userc site.cloud_sync_collections=PS100016)
out=$("$CMBRIDGE" -c "$USERC" sync 2>&1); rc=$?
expect_eq "user collection: exit status" 1 "$rc"
expect_match "user collection: says why" "PS100016 is a user collection" "$out"

finish
