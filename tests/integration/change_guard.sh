#!/usr/bin/env bash
# The change guard (issue "Prove it survives crashes, faults and hostile
# input"): one secondary class answers {"value":[]}, or far fewer rows than
# at the last good cycle, while SMS_R_System is full. That is not a mass
# change: the cycle holds its changes (and removals), says why and how to
# approve, exits 1; the tenant keeps every field. --allow-changes N
# approves one such cycle; when the class is back, nothing is held.
. "$(dirname "$0")/lib.sh"

# nulls FIELD: devices in the last graph_walk whose FIELD is null
nulls() { python3 -c 'import json,glob,sys; print(sum(1 for f in glob.glob(sys.argv[1]+"/page*.json") for x in json.load(open(f))["value"] if x.get(sys.argv[2]) is None))' "$TMP" "$1"; }
faults() { "$CMBRIDGE_LAB" faults "$LAB" "$@" > /dev/null || { echo "FAIL: cmbridge-lab faults $*"; exit 1; }; }

lab_init_up --devices 5000 --seed 7
"$CMBRIDGE" -c "$CONF" sync --full > /dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
lab_stats; cmb_status
attached=$(jget "$TMP/status.json" "d['devicesAttached']")
graph_walk deviceManagement/managedDevices 1000
man0=$(nulls manufacturer); model0=$(nulls model)
with_hw=$((attached - man0))
expect_match "some devices have hardware inventory" "^[1-9][0-9]*$" "$with_hw"

say "SMS_G_System_COMPUTER_SYSTEM answers {\"value\":[]} while the other classes are full"
faults --site --class-rows SMS_G_System_COMPUTER_SYSTEM=0
"$CMBRIDGE" -c "$CONF" diff --json > "$TMP/diff.json" 2>/dev/null
expect_eq "diff: the changes would be held" True "$(jget "$TMP/diff.json" "d['changesWouldBeHeld']")"
expect_eq "diff: one change per device with inventory" "$with_hw" "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='change')")"
lab_stats; recv=$(stat "['tenant']['recordsReceived']")
"$CMBRIDGE" -c "$CONF" sync > "$TMP/held.txt" 2>&1; rc=$?
expect_eq "held sync exit status" 1 "$rc"
expect_match "says which class" "SMS_G_System_COMPUTER_SYSTEM answered 0 rows" "$(cat "$TMP/held.txt")"
expect_match "says which fields" "lose site properties they had \(manufacturer, model\)" "$(cat "$TMP/held.txt")"
expect_match "says how to approve" "cmbridge sync --allow-changes $with_hw" "$(cat "$TMP/held.txt")"
cmb_status; lab_stats
expect_eq "cycle status" change-threshold-exceeded "$(jget "$TMP/status.json" "d['cycles'][0]['status']")"
expect_eq "changes held" "$with_hw" "$(cycle_count changesHeld)"
expect_eq "nothing changed" 0 "$(cycle_count changed)"
expect_eq "the tenant received no record" "$recv" "$(stat "['tenant']['recordsReceived']")"
graph_walk deviceManagement/managedDevices 1000
expect_eq "the tenant kept every manufacturer" "$man0" "$(nulls manufacturer)"
expect_eq "and every model" "$model0" "$(nulls model)"

say "far fewer rows than last cycle: the first 100 only"
faults --site --class-rows SMS_G_System_COMPUTER_SYSTEM=100
"$CMBRIDGE" -c "$CONF" sync > "$TMP/short.txt" 2>&1; rc=$?
expect_eq "held sync exit status" 1 "$rc"
expect_match "says which class" "SMS_G_System_COMPUTER_SYSTEM answered 100 rows" "$(cat "$TMP/short.txt")"
cmb_status; lab_stats
short=$(cycle_count changesHeld)
expect_eq "held: every device beyond those rows" yes "$([ "$short" -gt 0 ] && [ "$short" -lt "$with_hw" ] && echo yes || echo no)"
expect_eq "the tenant received no record" "$recv" "$(stat "['tenant']['recordsReceived']")"

say "the class is back: nothing to upload, nothing held"
faults --site --clear
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "exit status" 0 "$rc"
cmb_status
expect_eq "uploaded" 0 "$(cycle_count uploaded)"
expect_eq "changes held" 0 "$(cycle_count changesHeld)"

say "held again, with 5 adds and 3 removals: adds go out, removals wait too"
faults --site --class-rows SMS_G_System_COMPUTER_SYSTEM=0
"$CMBRIDGE_LAB" mutate "$LAB" --add 5 --delete 3 > /dev/null || { echo "FAIL: mutate"; exit 1; }
lab_stats; rems=$(stat "['tenant']['removalsReceived']")
"$CMBRIDGE" -c "$CONF" sync > "$TMP/held2.txt" 2>&1; rc=$?
expect_eq "held sync exit status" 1 "$rc"
cmb_status; lab_stats
held=$(cycle_count changesHeld)
expect_eq "the deleted devices' changes are not among those held" "$((with_hw - 3))" "$held"
expect_eq "adds uploaded" 5 "$(cycle_count added)"
expect_eq "removals held" 3 "$(cycle_count removalsHeld)"
expect_eq "the tenant received no removal" "$rems" "$(stat "['tenant']['removalsReceived']")"
expect_match "says how to approve" "cmbridge sync --allow-changes $held" "$(cat "$TMP/held2.txt")"

say "--allow-changes $((held - 1)) keeps holding; --allow-changes $held approves once"
"$CMBRIDGE" -c "$CONF" sync --allow-changes "$((held - 1))" > /dev/null 2>&1; rc=$?
expect_eq "under-approved exit status" 1 "$rc"
cmb_status
expect_eq "still nothing changed" 0 "$(cycle_count changed)"
"$CMBRIDGE" -c "$CONF" sync --allow-changes "$held" > /dev/null 2>&1; rc=$?
expect_eq "approved exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "changed" "$held" "$(cycle_count changed)"
expect_eq "removed" 3 "$(cycle_count removed)"
expect_eq "the tenant received the 3 removals" "$((rems + 3))" "$(stat "['tenant']['removalsReceived']")"
graph_walk deviceManagement/managedDevices 1000
expect_eq "approved: no device has a manufacturer now" "$((attached + 5 - 3))" "$(nulls manufacturer)"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "the approved level is the new baseline: the next cycle is not held" 0 "$rc"

say "the class comes back: the fields return without approval"
faults --site --clear
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "exit status" 0 "$rc"
cmb_status
expect_eq "changed: every device with inventory" "$((with_hw - 3 + 5))" "$(cycle_count changed)"
graph_walk deviceManagement/managedDevices 1000
expect_eq "the tenant has the manufacturers again" "$man0" "$(nulls manufacturer)"
expect_eq "and the models" "$model0" "$(nulls model)"

finish
