#!/usr/bin/env bash
# SIGKILL the connector at seeded random points while it relays, at least
# $KILLS times, restarting it each time; then one run to completion. Every
# deliverable action reaches the site exactly once and is reported final.
#
# While the kills go on, the site loses the reply to half of its method
# calls (lab faults --rate-reply-lost 0.5): the operation is created, the
# connector never hears of it, and backs off a second before it looks
# (longer than any run lives). So journal rows without an outcome are
# certain, whatever the kill timing, and only reconciliation can settle
# them: the test asserts that it did, after a restart, and never by
# sending an operation twice.
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

say "at least $KILLS runs killed with SIGKILL after 50-800 ms, half the site's replies lost"
"$CMBRIDGE_LAB" faults "$LAB" --site --rate-reply-lost 0.5 --seed "${RELAY_CRASH_SEED:-4242}" >/dev/null ||
  { echo "FAIL: cmbridge-lab faults"; exit 1; }
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/la.json"
mapfile -t DEVS < <(jget "$TMP/la.json" "'\n'.join(sorted({a['deviceId'] for a in d['value']}))")
killed=0; runs=0
while [ "$killed" -lt "$KILLS" ] && [ "$runs" -lt "${#DEVS[@]}" ]; do
  # One more action each run, on a device not used for wakeUpClient before: every run has work, and
  # the channel, the site and the outbox are all interrupted at some point. Never a legitimate repeat.
  "$CMBRIDGE_LAB" trigger "$LAB" "${DEVS[$runs]}" wakeUpClient >/dev/null 2>&1 || true
  runs=$((runs + 1))
  "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/run-$runs.log" 2>&1 &
  pid=$!
  ms=$((50 + RANDOM % 751))
  sleep "$(printf '0.%03d' "$ms")"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null
done
echo "killed $killed of $runs runs (the others had finished)"
lab_stats
lost=$(stat "['faults']['repliesLost']")
"$CMBRIDGE_LAB" faults "$LAB" --site --clear >/dev/null || { echo "FAIL: cmbridge-lab faults --clear"; exit 1; }

say "final run to completion"
timeout 120 "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/final.txt" 2> "$TMP/final.log"; rc=$?
expect_eq "final relay --once exit status" 0 "$rc"
cat "$TMP/final.txt"
lab_stats
triggered=$(stat "['actions']['triggered']")
expect_eq "site targets = deliverable actions" "$triggered" "$(stat "['site']['operationTargets']")"
expect_eq "no duplicate target at the site" 0 "$(stat "['site']['duplicateTargets']")"
expect_eq "every action final in the tenant" "$triggered" "$(stat "['actions']['done'] + d['actions']['failed']")"
expect_eq "nothing pending in the tenant" 0 "$(stat "['actions']['pending']")"
expect_eq "killed at least $KILLS times ($killed)" yes "$([ "$killed" -ge "$KILLS" ] && echo yes || echo no)"
expect_match "the site lost replies while the kills went on ($lost)" '^[1-9][0-9]*$' "$lost"
"$CMBRIDGE" -c "$CONF" actions --json > "$TMP/actions.json"
expect_eq "no action ended 'delivery unknown' (errorCode 10)" 0 \
  "$(jget "$TMP/actions.json" "sum(1 for a in d if a['errorCode'] == 10)")"

say "reconciliation settled the rows the kills and the lost replies left"
# Per run (the kill phase's, then the final one): the journal rows it left to
# reconcile, adopted, and sent after finding them absent, and its summary line
# when it lived to print one. Then the journal's own outcomes.
python3 - "$TMP" "$runs" "$(sed -n 's/^state_dir *= *//p' "$CONF")/cmbridge.db" > "$TMP/reconciled.txt" <<'PY'
import re, sqlite3, sys
tmp, runs, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logs = ["%s/run-%d.log" % (tmp, i) for i in range(1, runs + 1)] + [tmp + "/final.log", tmp + "/final.txt"]
runs_text = [open(p, errors="replace").read() for p in logs[:-2]] + [open(logs[-2]).read() + open(logs[-1]).read()]
rows = lambda pat, text: set(int(x) for x in re.findall(pat, text))
after_restart, adopted_logged, mismatched = set(), set(), 0
for text in runs_text:
    left = rows(r"journal row (\d+) \([a-z]+, Type \d+, \d+ targets\) left to reconcile", text)
    adopted = rows(r"journal row (\d+) was issued before the interruption: adopting OperationID", text)
    sent = rows(r"journal row (\d+) is not at the site: sending it", text)
    adopted_logged |= adopted
    after_restart |= (adopted | sent) - left
    m = re.search(r"reconciled \((\d+) adopted, (\d+) sent\)", text)
    if m and (int(m.group(1)), int(m.group(2))) != (
            len(re.findall(r"adopting OperationID", text)), len(re.findall(r"is not at the site: sending it", text))):
        mismatched += 1
con = sqlite3.connect(db)
adopted_db = set(r[0] for r in con.execute("SELECT id FROM journal WHERE outcome = 'adopted'"))
print(len(after_restart))
print(mismatched)
print(" ".join(map(str, sorted(adopted_db))) or "-")
print(" ".join(map(str, sorted(adopted_logged))) or "-")
PY
mapfile -t REC < "$TMP/reconciled.txt"
expect_match "journal rows settled by reconciliation after a restart (${REC[0]:-})" '^[1-9][0-9]*$' "${REC[0]:-}"
expect_eq "every summary line counts what its run logged" 0 "${REC[1]:-}"
expect_eq "the journal's adopted rows are those the log says were adopted" "${REC[3]:-}" "${REC[2]:-}"
expect_match "every lost reply left an operation that was adopted (journal rows adopted >= $lost)" '^yes$' \
  "$([ "$(wc -w <<<"${REC[2]/-/}")" -ge "$lost" ] && echo yes || echo no)"
finish
