#!/usr/bin/env bash
# The device model over a real lab: check-in times alone upload nothing in
# a delta and go out with the details refresh; a health change goes out at
# once; a newer duplicate replaces the old record; devices without an Entra
# device id are uploaded and flagged.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 2000 --seed 9
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
cmb_status
expect_match "devices without an Entra device id are uploaded and counted" "^[1-9][0-9]*$" "$(cycle_count noEntraDeviceId)"
dups0=$(cycle_count duplicates)
expect_match "the lab's active duplicate pairs are found" "^[1-9][0-9]*$" "$dups0"

say "only check-in times move: a delta uploads nothing"
"$CMBRIDGE_LAB" mutate "$LAB" --checkin 30 --verbose > "$TMP/checkin.txt" || { echo "FAIL: mutate"; exit 1; }
lab_stats; recv=$(stat "['tenant']['recordsReceived']")
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
expect_eq "delta exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "delta uploaded" 0 "$(cycle_count uploaded)"
expect_eq "tenant received nothing" "$recv" "$(stat "['tenant']['recordsReceived']")"

say "a health change goes out at once"
"$CMBRIDGE_LAB" mutate "$LAB" --health 5 --verbose > "$TMP/health.txt" || { echo "FAIL: mutate"; exit 1; }
# Devices whose health changed went out with their new times already.
pending_refresh=$(comm -23 <(sed -n 's/^checkin: //p' "$TMP/checkin.txt" | tr ' ' '\n' | sort) \
                           <(sed -n 's/^health: //p' "$TMP/health.txt" | tr ' ' '\n' | sort) | grep -c .)
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
cmb_status
expect_eq "health delta exit status" 0 "$rc"
expect_eq "health changes uploaded as changes" 5 "$(cycle_count changed)"
expect_eq "and nothing else" 5 "$(cycle_count uploaded)"

say "the details refresh uploads the check-in times"
FAST=$(conf_with fast sync.details_interval=1)
sleep 1.2
"$CMBRIDGE" -c "$FAST" sync > /dev/null 2>&1; rc=$?
"$CMBRIDGE" -c "$FAST" status --json > "$TMP/status.json"
expect_eq "refresh exit status" 0 "$rc"
expect_eq "refreshed: the checked-in devices not already sent" "$pending_refresh" "$(cycle_count refreshed)"
expect_match "and there are some to refresh" "^[1-9][0-9]*$" "$pending_refresh"
expect_eq "nothing counted as changed" 0 "$(cycle_count changed)"
sleep 1.2
"$CMBRIDGE" -c "$FAST" sync > /dev/null 2>&1
"$CMBRIDGE" -c "$FAST" status --json > "$TMP/status.json"
expect_eq "a second refresh has nothing left to send" 0 "$(cycle_count uploaded)"

say "a reimage the site has not cleaned up: the newer twin replaces the old record"
"$CMBRIDGE_LAB" mutate "$LAB" --duplicate 3 > /dev/null || { echo "FAIL: mutate"; exit 1; }
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1; rc=$?
cmb_status
expect_eq "duplicate sync exit status" 0 "$rc"
expect_eq "twins added" 3 "$(cycle_count added)"
expect_eq "old records removed" 3 "$(cycle_count removed)"
expect_eq "duplicates reported" "$((dups0 + 3))" "$(cycle_count duplicates)"
"$CMBRIDGE" -c "$CONF" quarantine --json > "$TMP/q.json"
expect_eq "quarantine lists every duplicate" "$((dups0 + 3))" "$(jget "$TMP/q.json" "sum(1 for q in d if q['kind']=='duplicate')")"
expect_match "each names the newer record" "uploaded instead" "$(jget "$TMP/q.json" "[q['reason'] for q in d if q['kind']=='duplicate'][0]")"

finish
