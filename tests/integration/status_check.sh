#!/usr/bin/env bash
# status without state creates none and says so; status --check's exit
# codes (Nagios): 3 UNKNOWN without state, 0 OK, 1 WARNING for a cycle the
# deletion guard holds, 2 CRITICAL for a failed cycle or one older than
# [sync] max_age. Dry runs (diff, sync --dry-run) are not cycles.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 200 --seed 12

say "no state yet: nothing is created, and it says so"
NOSTATE=$(conf_with nostate connector.state_dir="$TMP/nostate")
out=$("$CMBRIDGE" -c "$NOSTATE" status 2>&1); rc=$?
expect_eq "status exit status" 0 "$rc"
expect_match "status says there is no state yet" "^state: +no state yet in $TMP/nostate" "$out"
"$CMBRIDGE" -c "$NOSTATE" quarantine > /dev/null 2>&1; rc=$?
expect_eq "quarantine exit status" 0 "$rc"
"$CMBRIDGE" -c "$NOSTATE" actions --json > "$TMP/a.json" 2>/dev/null; rc=$?
expect_eq "actions --json: an empty list" "0 []" "$rc $(cat "$TMP/a.json")"
out=$("$CMBRIDGE" -c "$NOSTATE" status --check); rc=$?
expect_eq "status --check: UNKNOWN" 3 "$rc"
expect_match "status --check: the line" "^CMBRIDGE UNKNOWN - no state yet in $TMP/nostate" "$out"
"$CMBRIDGE" -c "$NOSTATE" diff > /dev/null 2>&1; rc=$?
expect_eq "diff without state works" 0 "$rc"
expect_eq "none of them created the state directory" no "$([ -e "$TMP/nostate" ] && echo yes || echo no)"

say "OK after a good cycle; dry runs are not cycles"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || echo "FAIL: first sync"
"$CMBRIDGE" -c "$CONF" diff > /dev/null 2>&1
"$CMBRIDGE" -c "$CONF" sync --dry-run > /dev/null 2>&1
cmb_status
expect_eq "the newest cycle is the real one" "1 ok" "$(jget "$TMP/status.json" "'%d %s' % (len(d['cycles']), d['cycles'][0]['status'])")"
out=$("$CMBRIDGE" -c "$CONF" status --check); rc=$?
expect_eq "status --check: OK" 0 "$rc"
expect_match "status --check: the line, with performance data" \
  '^CMBRIDGE OK - cycle 1 \(delta\) ok [0-9]+ s ago; [0-9]+ devices attached \| age=[0-9]+s;;2700 devices=[0-9]+' "$out"

say "WARNING while the deletion guard holds a cycle"
"$CMBRIDGE_LAB" mutate "$LAB" --delete 40 > /dev/null || { echo "FAIL: mutate"; exit 1; }
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1
out=$("$CMBRIDGE" -c "$CONF" status --check); rc=$?
expect_eq "status --check: WARNING" 1 "$rc"
expect_match "status --check: how to approve" 'CMBRIDGE WARNING - cycle 2 holds [0-9]+ removals: .*--allow-deletes [0-9]+' "$out"
out=$("$CMBRIDGE" -c "$CONF" status); rc=$?
expect_match "status: the guard and its limit" 'guard: +holding [0-9]+ removals of cycle 2: [0-9]+ > [0-9]+ = 10% of [0-9]+ attached' "$out"
held=$("$CMBRIDGE" -c "$CONF" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deletionGuard"]["removalsHeld"])')
"$CMBRIDGE" -c "$CONF" sync --allow-deletes "$held" > /dev/null 2>&1
"$CMBRIDGE" -c "$CONF" status --check > /dev/null; rc=$?
expect_eq "status --check: OK once approved" 0 "$rc"

say "CRITICAL when the last cycle failed"
BAD=$(conf_with bad site.url=https://127.0.0.1:9/AdminService sync.max_attempts=1 sync.retry_budget=0)
"$CMBRIDGE" -c "$BAD" sync > /dev/null 2>&1
out=$("$CMBRIDGE" -c "$BAD" status --check); rc=$?
expect_eq "status --check: CRITICAL" 2 "$rc"
expect_match "status --check: why" '^CMBRIDGE CRITICAL - cycle 4 \(delta\) failed [0-9]+ s ago: reading the site' "$out"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1

say "CRITICAL when the last cycle is older than [sync] max_age"
OLD=$(conf_with old sync.max_age=1)
"$CMBRIDGE" -c "$OLD" status --check > /dev/null; rc=$?
expect_eq "status --check: fresh enough at first" 0 "$rc"
sleep 2.2
out=$("$CMBRIDGE" -c "$OLD" status --check); rc=$?
expect_eq "status --check: CRITICAL when stale" 2 "$rc"
expect_match "status --check: says how old" 'ended [0-9]+ s ago, more than \[sync\] max_age = 1 s' "$out"

finish
