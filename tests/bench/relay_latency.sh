#!/usr/bin/env bash
# Remote action relay benchmark (label bench): end-to-end latency from the
# trigger in the tenant to the operation at the site (lab timestamps:
# requestedDateTime of the action, the site's operations.log), p50/p99,
# and sustained actions per second, with a floor measured in the same run:
# how fast the lab itself accepts triggers (the rate no relay can beat).
. "$(dirname "$0")/../integration/lib.sh"

N=${BENCH_ACTIONS:-2000}
lab_init_up --devices $((N + 200)) --seed 9
"$CMBRIDGE" -c "$CONF" sync >/dev/null 2>&1 || { echo "FAIL: sync"; exit 1; }
RCONF=$(conf_with bench actions.batch_window=0 actions.status_poll_interval=1 actions.poll_wait=30)

"$CMBRIDGE" -c "$RCONF" relay > "$TMP/relay.txt" 2> "$TMP/relay.log" &
relay_pid=$!
sleep 1
say "trigger $N actions in 7 bursts (one per client notification type) while the relay long-polls"
t0=$(date +%s.%N)
per=$((N / 7)); N=$((per * 7))
types=(refreshMachinePolicy refreshUserPolicy appEvaluation wakeUpClient fullScan quickScan windowsDefenderUpdateSignatures)
for i in $(seq 0 6); do
  # each burst its own Type on distinct devices: no legitimate repeat the lab would count as a duplicate
  "$CMBRIDGE_LAB" trigger "$LAB" --many "$per" "${types[$i]}" --devices "$per" >/dev/null
done
t1=$(date +%s.%N)
for _ in $(seq 1 300); do
  lab_stats
  [ "$(stat "['actions']['done'] + d['actions']['failed'] + d['actions']['notSupported']")" = "$N" ] && break
  sleep 0.5
done
t2=$(date +%s.%N)
kill -TERM "$relay_pid"; wait "$relay_pid"
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/actions.json"
python3 - "$TMP/actions.json" "$LAB/operations.log" "$t0" "$t1" "$t2" "$N" <<'PY'
import json, sys, datetime
acts = json.load(open(sys.argv[1]))["value"]
t0, t1, t2, n = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
TYPES = {"refreshMachinePolicy": 8, "syncDevice": 8, "refreshUserPolicy": 9, "appEvaluation": 13, "wakeUpClient": 150,
         "fullScan": 1, "quickScan": 2, "windowsDefenderUpdateSignatures": 3}
ops = {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) < 4 or f[2] in ("Block", "Unblock"):
        continue
    ops.setdefault((f[2], int(f[3])), []).append(float(f[0]))
def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
lat = []
for a in sorted(acts, key=lambda a: a["requestedDateTime"]):
    rid = int(a["key"].split(":")[1])
    cands = [ops[k] for k in ops if k[1] == rid and k[0] in (str(TYPES.get(a["action"])), a["action"])]
    times = sorted(t for c in cands for t in c)
    if times:
        lat.append(max(0.0, times.pop(0) - ts(a["requestedDateTime"])))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
last_op = max((t for v in ops.values() for t in v), default=t2)
rate = n / max(1e-9, last_op - t0)
floor = n / max(1e-9, t1 - t0)
print(f"actions {n}, matched {len(lat)} at the site")
print(f"latency trigger->site (1 s resolution of requestedDateTime): p50 {q(0.5):.2f} s, p99 {q(0.99):.2f} s")
print(f"sustained: {rate:.0f} actions/s end to end; floor (lab trigger rate) {floor:.0f} actions/s; ratio {rate/floor:.2f}")
PY
cat "$TMP/relay.txt"
finish
