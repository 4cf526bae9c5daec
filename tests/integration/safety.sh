#!/usr/bin/env bash
# Sync safety: the deletion guard holds 600 removals while adds and changes
# land, --allow-deletes 600 removes exactly those; staging writes nothing to
# the tenant and `cmbridge diff` matches what the next normal cycle uploads.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 5000 --seed 5
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
lab_stats
held_devices=$(stat "['tenant']['devices']")
recv0=$(stat "['tenant']['recordsReceived']")
rem0=$(stat "['tenant']['removalsReceived']")

say "the site loses 600 devices while 10 change and 5 arrive"
"$CMBRIDGE_LAB" mutate "$LAB" --delete 600 --change 10 --add 5 > /dev/null || { echo "FAIL: mutate"; exit 1; }
out=$("$CMBRIDGE" -c "$CONF" sync 2>&1); rc=$?
expect_eq "guarded sync exit status" 1 "$rc"
expect_match "the held message says how to approve" "cmbridge sync --allow-deletes 600" "$out"
cmb_status; lab_stats
expect_eq "cycle status" deletion-threshold-exceeded "$(jget "$TMP/status.json" "d['cycles'][0]['status']")"
expect_eq "removals held" 600 "$(cycle_count removalsHeld)"
expect_eq "adds still uploaded" 5 "$(cycle_count added)"
expect_eq "changes still uploaded" 10 "$(cycle_count changed)"
expect_eq "tenant received the 15 records" 15 "$(( $(stat "['tenant']['recordsReceived']") - recv0 ))"
expect_eq "tenant received no removal" 0 "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"
expect_eq "tenant lost no device" "$((held_devices + 5))" "$(stat "['tenant']['devices']")"

say "approving 599 is not enough"
"$CMBRIDGE" -c "$CONF" sync --allow-deletes 599 > /dev/null 2>&1; rc=$?
expect_eq "under-approved sync exit status" 1 "$rc"
lab_stats
expect_eq "still no removal" 0 "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"

say "--allow-deletes 600 removes exactly those 600"
"$CMBRIDGE" -c "$CONF" sync --allow-deletes 600 > /dev/null 2>&1; rc=$?
expect_eq "approved sync exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "removed" 600 "$(cycle_count removed)"
expect_eq "tenant received 600 removals" 600 "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"
expect_eq "tenant applied 600 removals" 600 "$(( $(stat "['tenant']['removalsApplied']") ))"
expect_eq "tenant holds the site's devices" "$((held_devices + 5 - 600))" "$(stat "['tenant']['devices']")"
expect_eq "connector agrees" "$((held_devices + 5 - 600))" "$(jget "$TMP/status.json" "d['devicesAttached']")"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "the next cycle needs no approval" 0 "$rc"

say "staging: read, map and diff, write nothing"
STAGING=$(conf_with staging connector.mode=staging)
"$CMBRIDGE_LAB" mutate "$LAB" --change 7 --add 2 --delete 1 > /dev/null || { echo "FAIL: mutate"; exit 1; }
lab_stats
writes0=$(stat "['tenant']['writes']"); recv1=$(stat "['tenant']['recordsReceived']"); rem1=$(stat "['tenant']['removalsReceived']")
"$CMBRIDGE" -c "$STAGING" sync > /dev/null 2>&1; rc=$?
expect_eq "staging sync exit status" 0 "$rc"
"$CMBRIDGE" -c "$STAGING" status --json > "$TMP/status.json"
expect_eq "staging cycle status" staging "$(jget "$TMP/status.json" "d['cycles'][0]['status']")"
"$CMBRIDGE" -c "$STAGING" diff --json > "$TMP/diff.json" 2>/dev/null; rc=$?
expect_eq "diff exit status" 0 "$rc"
lab_stats
expect_eq "the tenant received no write at all" "$writes0" "$(stat "['tenant']['writes']")"
expect_eq "diff: adds" 2 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='add')")"
expect_eq "diff: changes" 7 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='change')")"
expect_eq "diff: removals" 1 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='remove')")"
jget "$TMP/diff.json" "'\n'.join(sorted(c['key'] for c in d['changes'] if c['op']!='remove'))" > "$TMP/diff.keys"

say "switching to normal exports exactly that difference"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "normal sync exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "uploaded = diff's adds and changes" 9 "$(( $(stat "['tenant']['recordsReceived']") - recv1 ))"
expect_eq "removed = diff's removals" 1 "$(( $(stat "['tenant']['removalsReceived']") - rem1 ))"
expect_eq "connector: added" 2 "$(cycle_count added)"
expect_eq "connector: changed" 7 "$(cycle_count changed)"

finish
