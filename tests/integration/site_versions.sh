#!/usr/bin/env bash
# A current site and an older one (no BuildExt, no AADDeviceID, no
# SMS_Client_ComanagementState), both as strict as a real AdminService, the
# same inventory on each: full and delta syncs give exactly the expected
# tenant records on both, the older one with those fields empty and one
# warning per missing property or class per cycle; `cmbridge check` lists
# what each site lacks. A current site that pages on the client side and
# writes its values in their other forms (DMTF times, 0/1 booleans, numeric
# strings) gives records identical to the plain one.
. "$(dirname "$0")/lib.sh"

N=400
SEED=21
LABS=()

# start NAME [init args...]: a lab of its own in $TMP/NAME; sets CONF_NAME
start() {
  local name=$1; shift
  LAB="$TMP/$name"
  lab_init_up --devices "$N" --seed "$SEED" --page-size 150 "$@"
  LABS+=("$LAB")
  eval "CONF_$name=\$CONF"
}

stop_all() { for l in "${LABS[@]}"; do "$CMBRIDGE_LAB" down "$l" >/dev/null 2>&1; done; }
trap 'stop_all; cleanup' EXIT

# records NAME: every managedDevice the tenant of lab NAME holds, without its tenant id, keyed by name.
records() {
  LAB="$TMP/$1"
  eval "CONF=\$CONF_$1"
  graph_walk deviceManagement/managedDevices 500
  python3 - "$TMP/$1.records.json" "$TMP"/page*.json <<'PY'
import json, sys
out, pages = sys.argv[1], sys.argv[2:]
recs = {}
for p in pages:
    for r in json.load(open(p))["value"]:
        r.pop("id", None)
        r.pop("deviceActionResults", None)
        recs[r["deviceName"] + "|" + str(r.get("serialNumber"))] = r
json.dump(recs, open(out, "w"), sort_keys=True)
print(len(recs))
PY
}

# sync NAME ARGS...: one cycle on lab NAME; its stderr in $TMP/NAME.err.N
sync() {
  local name=$1; shift
  eval "local conf=\$CONF_$name"
  "$CMBRIDGE" -c "$conf" sync "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
}

start current
start old --site-version old
start alternate --client-paging
sed -i 's/^\[site\]$/[site]\nvalues = alternate/' "$TMP/alternate/lab.conf"
"$CMBRIDGE_LAB" down "$TMP/alternate" >/dev/null && "$CMBRIDGE_LAB" up "$TMP/alternate" --detach >/dev/null ||
  { echo "FAIL: restarting the alternate lab"; exit 1; }

say "check: what each site has and lacks"
"$CMBRIDGE" -c "$CONF_current" check > "$TMP/check.current" 2>&1; rc=$?
expect_eq "check, current site" 0 "$rc"
expect_match "current: SMS_R_System whole, keyed ResourceId" 'SMS_R_System +15 of 15 properties, key ResourceId' "$(cat "$TMP/check.current")"
expect_match "current: co-management class read" 'SMS_Client_ComanagementState +6 of 6 properties, key ResourceID' "$(cat "$TMP/check.current")"
expect_eq "current: nothing missing" 0 "$(grep -c 'without \|absent' "$TMP/check.current")"
"$CMBRIDGE" -c "$CONF_old" check > "$TMP/check.old" 2>&1; rc=$?
expect_eq "check, older site (it can be read)" 0 "$rc"
expect_match "old: from \$metadata, its version" 'site schema: from the site.s \$metadata, site version 5\.00\.8968\.1000' "$(cat "$TMP/check.old")"
expect_match "old: SMS_R_System lacks two" 'SMS_R_System +13 of 15 properties, key ResourceId' "$(cat "$TMP/check.old")"
expect_match "old: without AADDeviceID" 'without AADDeviceID: azureADDeviceId is left empty' "$(cat "$TMP/check.old")"
expect_match "old: without BuildExt" 'without BuildExt: osVersion comes from DeviceOSBuild or Build' "$(cat "$TMP/check.old")"
expect_match "old: no co-management class" 'SMS_Client_ComanagementState +absent: no device is reported co-managed' "$(cat "$TMP/check.old")"
expect_eq "old: exactly three things missing" 3 "$(grep -c 'without \|absent' "$TMP/check.old")"

say "full sync on each"
for s in current old alternate; do
  sync "$s" --full; rc=$?
  expect_eq "$s: full sync exit status" 0 "$rc"
  cp "$TMP/$s.err" "$TMP/$s.err.1"
done
warn_counts() { # warn_counts FILE: AADDeviceID BuildExt class
  printf '%s %s %s' "$(grep -c 'SMS_R_System has no property AADDeviceID' "$1")" \
    "$(grep -c 'SMS_R_System has no property BuildExt' "$1")" \
    "$(grep -c 'has no class SMS_Client_ComanagementState' "$1")"
}
expect_eq "old: one warning per missing property and class" "1 1 1" "$(warn_counts "$TMP/old.err.1")"
expect_eq "current: no such warning" "0 0 0" "$(warn_counts "$TMP/current.err.1")"
expect_eq "alternate: no such warning" "0 0 0" "$(warn_counts "$TMP/alternate.err.1")"

n_cur=$(records current); n_old=$(records old); n_alt=$(records alternate)
expect_match "current: records in the tenant" '^[0-9]{3}$' "$n_cur"
expect_eq "old: as many records" "$n_cur" "$n_old"
expect_eq "alternate: as many records" "$n_cur" "$n_alt"

# compare A B: the records' differences, field by field: "field count" lines
compare() {
  python3 - "$TMP/$1.records.json" "$TMP/$2.records.json" <<'PY'
import json, sys, collections
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
if set(a) != set(b):
    print("keys differ: %d only in the first, %d only in the second" % (len(set(a) - set(b)), len(set(b) - set(a))))
diff = collections.Counter()
for k in set(a) & set(b):
    for f in set(a[k]) | set(b[k]):
        if a[k].get(f) != b[k].get(f):
            diff[f] += 1
for f in sorted(diff):
    print(f, diff[f])
PY
}
expect_eq "alternate (client paging, DMTF times, 0/1, numeric strings) = current, exactly" "" "$(compare current alternate)"

# The older site's records differ only where its missing names feed the record.
diff_fields=$(compare current old | awk '{print $1}' | tr '\n' ' ')
expect_match "old differs from current only in the fields the missing names feed" \
  '^azureADDeviceId (complianceState )?configurationManagerClientEnabledFeatures deviceEnrollmentType joinType managementAgent (osVersion )?$' \
  "$diff_fields"
python3 - "$TMP/old.records.json" > "$TMP/old.facts" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])).values()
print("aad", sum(1 for x in r if x.get("azureADDeviceId") is not None))
print("agents", sorted({x.get("managementAgent") for x in r}))
print("join", sorted({x.get("joinType") for x in r}))
print("enrollment", sorted({x.get("deviceEnrollmentType") for x in r}))
print("features", sum(1 for x in r for v in (x.get("configurationManagerClientEnabledFeatures") or {}).values() if v))
print("compliance", sorted({x.get("complianceState") for x in r}))
PY
expect_eq "old: no Entra device id anywhere" "aad 0" "$(sed -n 1p "$TMP/old.facts")"
expect_eq "old: no device co-managed" "agents ['configurationManagerClient']" "$(sed -n 2p "$TMP/old.facts")"
expect_eq "old: join type unknown" "join ['unknown']" "$(sed -n 3p "$TMP/old.facts")"
expect_eq "old: enrollment type unknown" "enrollment ['unknown']" "$(sed -n 4p "$TMP/old.facts")"
expect_eq "old: no workload with Intune" "features 0" "$(sed -n 5p "$TMP/old.facts")"
expect_eq "old: compliance stays with ConfigMgr" "compliance ['configManager']" "$(sed -n 6p "$TMP/old.facts")"
cur_aad=$(python3 -c 'import json,sys; print(sum(1 for x in json.load(open(sys.argv[1])).values() if x.get("azureADDeviceId")))' "$TMP/current.records.json")
expect_match "current: devices with an Entra device id" '^[1-9][0-9]*$' "$cur_aad"

say "a delta after the same changes on each site"
for s in current old alternate; do
  "$CMBRIDGE_LAB" mutate "$TMP/$s" --change 25 --add 10 --delete 5 > /dev/null || { echo "FAIL: mutate $s"; exit 1; }
  sync "$s"; rc=$?
  expect_eq "$s: delta exit status" 0 "$rc"
  cp "$TMP/$s.err" "$TMP/$s.err.2"
  expect_match "$s: delta counts" 'tenant: +[0-9]+ uploaded \(10 added, 25 changed, 0 refreshed\), 5 removed' "$(cat "$TMP/$s.out")"
done
expect_eq "old: the delta warns once again per missing name" "1 1 1" "$(warn_counts "$TMP/old.err.2")"
n_cur=$(records current); n_old=$(records old); n_alt=$(records alternate)
expect_eq "after the delta: old as many records as current" "$n_cur" "$n_old"
expect_eq "after the delta: alternate = current, exactly" "" "$(compare current alternate)"
diff_fields=$(compare current old | awk '{print $1}' | tr '\n' ' ')
expect_match "after the delta: old still differs only in those fields" \
  '^azureADDeviceId (complianceState )?configurationManagerClientEnabledFeatures deviceEnrollmentType joinType managementAgent (osVersion )?$' \
  "$diff_fields"
say "an idle delta on the older site uploads nothing"
sync old; rc=$?
expect_eq "old: idle delta exit status" 0 "$rc"
expect_match "old: idle delta sends nothing" 'tenant: +0 uploaded .* 0 removed' "$(cat "$TMP/old.out")"
finish
