#!/usr/bin/env bash
# SIGKILL the connector at seeded random points while it relays, at least
# 20 times, restarting it each time; then one run to completion. Every
# deliverable action reaches the site exactly once and is reported final.
. "$(dirname "$0")/lib.sh"

N=${RELAY_CRASH_ACTIONS:-200}
KILLS=${RELAY_CRASH_KILLS:-20}
RANDOM=${RELAY_CRASH_SEED:-4242}

lab_init_up --devices 400 --seed 5
"$CMBRIDGE" -c "$CONF" sync >/dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
# Small batches of work per pass so kills land between intent and outcome too.
RCONF=$(conf_with crash actions.batch_window=0 actions.status_poll_interval=1)

say "$N actions over 4 types, distinct devices per type"
per=$((N / 4))
for a in refreshMachinePolicy appEvaluation quickScan fullScan; do
  "$CMBRIDGE_LAB" trigger "$LAB" --many "$per" "$a" --devices "$per" >/dev/null || { echo "FAIL: trigger"; exit 1; }
done

say "at least $KILLS runs killed with SIGKILL after 50-800 ms"
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/la.json"
mapfile -t DEVS < <(jget "$TMP/la.json" "'\n'.join(sorted({a['deviceId'] for a in d['value']}))")
killed=0; runs=0
while [ "$killed" -lt "$KILLS" ] && [ "$runs" -lt "${#DEVS[@]}" ]; do
  # One more action each run, on a device not used for wakeUpClient before: every run has work, and
  # the channel, the site and the outbox are all interrupted at some point. Never a legitimate repeat.
  "$CMBRIDGE_LAB" trigger "$LAB" "${DEVS[$runs]}" wakeUpClient >/dev/null 2>&1 || true
  runs=$((runs + 1))
  "$CMBRIDGE" -c "$RCONF" relay --once >>"$TMP/crash.log" 2>&1 &
  pid=$!
  ms=$((50 + RANDOM % 751))
  sleep "$(printf '0.%03d' "$ms")"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null
done
echo "killed $killed of $runs runs (the others had finished)"

say "final run to completion"
timeout 120 "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/final.txt" 2>>"$TMP/crash.log"; rc=$?
expect_eq "final relay --once exit status" 0 "$rc"
cat "$TMP/final.txt"
lab_stats
triggered=$(stat "['actions']['triggered']")
expect_eq "site targets = deliverable actions" "$triggered" "$(stat "['site']['operationTargets']")"
expect_eq "no duplicate target at the site" 0 "$(stat "['site']['duplicateTargets']")"
expect_eq "every action final in the tenant" "$triggered" "$(stat "['actions']['done'] + d['actions']['failed']")"
expect_eq "nothing pending in the tenant" 0 "$(stat "['actions']['pending']")"
expect_match "killed at least 20 times" '^([2-9][0-9])$' "$killed"
grep -c 'adopting OperationID' "$TMP/crash.log" | sed 's/^/reconciliations that adopted an operation: /'
finish
