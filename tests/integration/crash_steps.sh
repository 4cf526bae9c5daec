#!/usr/bin/env bash
# Crash at every step, and every reply lost in turn (docs/reliability.md).
#
#   crash_steps.sh crash SCENARIO...   cmbridge-test exits right after its
#       N-th state commit (CMB_CRASH_AFTER_COMMIT=N, docs/state.md) for
#       N = 1, 2, ... until a run completes; after each crash cmbridge is
#       started again and runs to completion.
#   crash_steps.sh lost SCENARIO...    the lab applies the K-th request of
#       one side and loses its reply (faults --lose-reply-at K) for
#       K = 1, 2, ... until a run has fewer than K requests there; a run
#       that fails is started again.
#
# Every run starts from the same saved lab and state (same tenant, same
# devices, same pending actions) and its end state must equal that of one
# uninterrupted run byte for byte: the tenant's devices (ids and content,
# from the Graph listing), the site's operations (type and target), the
# results reported to the tenant, the connector's own view, and what a
# following cycle still finds to do. No duplicate, nothing missing, for
# every N and every K.
#
# A scenario is three functions (below): NAME_prepare brings the saved
# starting point to where the step begins (once), NAME_run BINARY runs the
# step, NAME_observe FILE writes the end state. To add one (the policy relay),
# write the three and name it on the command line in CMakeLists.txt.
. "$(dirname "$0")/lib.sh"

if [ ! -x "${CMBRIDGE_TEST:-}" ]; then
  echo "SKIP: no cmbridge-test (built with -DCMB_TEST_HOOKS=OFF): the crash hook is compiled into it only"
  exit 77
fi
MODE=${1:?crash or lost}; shift
SCENARIOS=("$@")
MAX_STEPS=${CRASH_STEPS_MAX:-400}   # a bound, never reached: a run completes long before
SNAP="$TMP/snap"
mkdir -p "$SNAP"

lab() { "$CMBRIDGE_LAB" "$@" > /dev/null || { echo "FAIL: cmbridge-lab $*"; exit 1; }; }
snap_save() { lab down "$LAB"; rm -rf "${SNAP:?}/$1"; cp -a "$LAB" "$SNAP/$1"; lab up "$LAB" --detach; }
snap_restore() { lab down "$LAB"; rm -rf "$LAB"; cp -a "$SNAP/$1" "$LAB"; lab up "$LAB" --detach; }

# observe.py KIND: the end state as lines compared byte for byte, in one process (python starts slowly).
# sync: the tenant's devices from the Graph listing in id order (ids and content), the lab's counts of
# them, the connector's view ($TMP/status1.json) and what one more cycle found to do ($TMP/status2.json);
# relay: the site's operations (type, target), the tenant's actions and results, the connector's.
cat > "$TMP/observe.py" <<'PY'
import json, ssl, sys, urllib.parse, urllib.request
kind, tmp, conf, lab = sys.argv[1:5]
kv = dict(l.split(" = ", 1) for l in open(conf).read().splitlines() if " = " in l)
ctx = ssl.create_default_context(cafile=lab + "/ca.pem")
def get(url, headers):
    return json.load(urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx))
tenant = kv["gateway_url"]
admin = {"X-Lab-Key": open(lab + "/lab.key").read().strip()}
stats = get(tenant + "/_lab/stats", admin)
status = json.load(open(tmp + "/status1.json"))
if kind == "sync":
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": kv["client_id"],
        "client_secret": open(lab + "/client-secret").read(), "scope": "https://graph.microsoft.com/.default"})
    tok = json.load(urllib.request.urlopen(kv["authority"] + "/oauth2/v2.0/token", form.encode(), context=ctx))
    url, rows = kv["graph_url"] + "/deviceManagement/managedDevices?$top=1000", []
    while url:
        page = get(url, {"Authorization": "Bearer " + tok["access_token"]})
        rows += page["value"]
        url = page.get("@odata.nextLink")
    for r in sorted(rows, key=lambda r: r["id"]):
        print(json.dumps(r, sort_keys=True))
    t = stats["tenant"]
    print("tenant devices %d, created %d, removals applied %d" % (t["devices"], t["recordsCreated"], t["removalsApplied"]))
    print("connector: attached %d, quarantined %d, in flight %d" % (status["devicesAttached"], status["quarantined"], status["inFlight"]))
    c = json.load(open(tmp + "/status2.json"))["cycles"][0]
    print("next cycle: %s, " % c["status"] + ", ".join("%s %d" % (k, c["counts"][k]) for k in ("added", "changed", "removed", "quarantined", "rejected")))
elif kind == "relay":
    ops = sorted(l.split()[2:4] for l in open(lab + "/operations.log") if l.split()[1] != "-")
    for o in ops:
        print("site operation type %s target %s" % tuple(o))
    print("site operations' duplicate targets %d" % stats["site"]["duplicateTargets"])
    for a in sorted(get(tenant + "/_lab/actions", admin)["value"], key=lambda a: a["id"]):
        print("tenant action %(id)s %(key)s %(action)s %(actionState)s %(actionDeliveryStatus)s %(errorCode)d %(message)s" % a)
    for a in sorted(json.load(open(tmp + "/actions.json")), key=lambda a: a["id"]):
        print("connector action %(id)s %(state)s %(actionDeliveryStatus)s %(operationType)s %(errorCode)d" % a)
    print("connector actions: " + json.dumps(status["actions"], sort_keys=True))
PY
observe() { python3 "$TMP/observe.py" "$1" "$TMP" "$CONF" "$LAB" > "$2" || echo "observing failed" >> "$2"; }
# status_to FILE: the connector's status.
status_to() { "$CMBRIDGE" -c "$CONF" status --json > "$1" || echo "{}" > "$1"; }

# ---- scenarios ----

# A full sync of a new connector: every device uploaded.
full_prepare() { :; }
full_run() { "$1" -c "$CONF" sync; }
full_observe() {
  status_to "$TMP/status1.json"
  "$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1   # one more cycle: the one after it must find nothing to do
  status_to "$TMP/status2.json"
  observe sync "$1"
}

# A delta after a full sync: adds, changes and removes (within the deletion guard).
delta_prepare() {
  "$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: delta: the first sync"; exit 1; }
  lab mutate "$LAB" --add 25 --change 25 --delete 12
}
delta_run() { "$1" -c "$CONF" sync; }
delta_observe() { full_observe "$1"; }

# An action relay: 16 actions of four types pending in the tenant, relayed to the site once.
relay_prepare() {
  "$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: relay: the first sync"; exit 1; }
  local a
  for a in refreshMachinePolicy appEvaluation quickScan wakeUpClient; do
    lab trigger "$LAB" --many 4 "$a" --devices 4
  done
}
relay_run() { timeout 60 "$1" -c "$CONF" relay --once; }
relay_observe() {
  status_to "$TMP/status1.json"
  "$CMBRIDGE" -c "$CONF" actions --json > "$TMP/actions.json" || echo "[]" > "$TMP/actions.json"
  observe relay "$1"
}

# ---- walks ----

# compare WHAT REF GOT: equal, else the first lines of the difference.
compare() {
  CHECKS=$((CHECKS + 1))
  if cmp -s "$2" "$3"; then
    return 0
  fi
  printf 'FAIL: %s: the end state differs from the uninterrupted run:\n' "$1"
  diff "$2" "$3" | head -20 | sed 's/^/    /'
  FAILS=$((FAILS + 1))
  return 1
}

# reference S: the end state of one uninterrupted run from start_S, in $TMP/ref-S.
reference() {
  snap_restore "start-$1"
  "$1_run" "$CMBRIDGE" > "$TMP/run.log" 2>&1 || { echo "FAIL: $1: the uninterrupted run failed"; tail "$TMP/run.log"; exit 1; }
  "$1_observe" "$TMP/ref-$1"
  echo "$1: the uninterrupted run ends with $(grep -c '^{' "$TMP/ref-$1") tenant devices," \
    "$(grep -c '^site operation ' "$TMP/ref-$1") site operation targets, $(grep -c '^tenant action ' "$TMP/ref-$1") actions"
}

crash_walk() {
  local s=$1 n=1 rc bad=0
  reference "$s"
  while [ "$n" -le "$MAX_STEPS" ]; do
    snap_restore "start-$s"
    CMB_CRASH_AFTER_COMMIT=$n "${s}_run" "$CMBRIDGE_TEST" > "$TMP/run.log" 2>&1; rc=$?
    [ "$rc" = 0 ] && break
    if [ "$rc" != 99 ]; then
      echo "FAIL: $s, crash after commit $n: exit status $rc, not the hook's 99"; tail -5 "$TMP/run.log"
      FAILS=$((FAILS + 1)); bad=$((bad + 1))
    fi
    "${s}_run" "$CMBRIDGE" > "$TMP/restart.log" 2>&1; rc=$?
    if [ "$rc" != 0 ]; then
      echo "FAIL: $s, crash after commit $n: the restart exited $rc"; tail -5 "$TMP/restart.log"
      FAILS=$((FAILS + 1)); bad=$((bad + 1))
    fi
    "${s}_observe" "$TMP/got"
    compare "$s, crashed after commit $n, restarted" "$TMP/ref-$s" "$TMP/got" || bad=$((bad + 1))
    n=$((n + 1))
  done
  [ "$n" -le "$MAX_STEPS" ] || { echo "FAIL: $s: still crashing after $MAX_STEPS commits"; FAILS=$((FAILS + 1)); }
  "${s}_observe" "$TMP/got"
  compare "$s, the run that outlived its $((n - 1)) commits" "$TMP/ref-$s" "$TMP/got" || bad=$((bad + 1))
  expect_eq "$s: crashed after each of its $((n - 1)) commits, end states that differ" 0 "$bad"
  expect_match "$s: crash points tested ($((n - 1)))" '^[1-9][0-9]*$' "$((n - 1))"
  echo "FIGURE crash $s: $((n - 1)) crash points, $bad differing end states"
}

lost_walk() {
  local s=$1 side=$2 k=1 rc lost bad=0 again=0
  reference "$s"
  while [ "$k" -le "$MAX_STEPS" ]; do
    snap_restore "start-$s"
    lab faults "$LAB" "--$side" --lose-reply-at "$k"
    "${s}_run" "$CMBRIDGE" > "$TMP/run.log" 2>&1; rc=$?
    lost=$("$CMBRIDGE_LAB" stats "$LAB" --json | grep -o '"repliesLost":[0-9]*' | cut -d: -f2)
    lab faults "$LAB" "--$side" --clear
    [ "$lost" = 0 ] && break
    if [ "$rc" != 0 ]; then
      again=$((again + 1))
      "${s}_run" "$CMBRIDGE" > "$TMP/restart.log" 2>&1; rc=$?
      if [ "$rc" != 0 ]; then
        echo "FAIL: $s, $side reply $k lost: the restart exited $rc"; tail -5 "$TMP/restart.log"
        FAILS=$((FAILS + 1)); bad=$((bad + 1))
      fi
    fi
    "${s}_observe" "$TMP/got"
    compare "$s, $side reply $k lost" "$TMP/ref-$s" "$TMP/got" || bad=$((bad + 1))
    k=$((k + 1))
  done
  [ "$k" -le "$MAX_STEPS" ] || { echo "FAIL: $s: still losing replies after $MAX_STEPS"; FAILS=$((FAILS + 1)); }
  expect_eq "$s: the run without a lost reply exits 0" 0 "$rc"
  expect_eq "$s: each of the $((k - 1)) $side replies lost in turn, end states that differ" 0 "$bad"
  expect_match "$s: $side reply-lost points tested ($((k - 1)))" '^[1-9][0-9]*$' "$((k - 1))"
  echo "FIGURE lost $side $s: $((k - 1)) reply-lost points ($again runs failed and were started again)," \
    "$bad differing end states"
}

# ---- the base: 300 devices, small pages and batches so one cycle makes many commits and requests ----

lab_init_up --devices 300 --seed 12 --page-size 50
lab down "$LAB"
# Every client that is asked completes (the outcome of a target does not depend on how operations were grouped).
sed -i -e 's/^success_rate = .*/success_rate = 1/' -e 's/^offline_rate = .*/offline_rate = 0/' "$LAB/lab.conf"
cp "$(conf_with steps tenant.batch_size=10 tenant.rate_limit=0 actions.batch_window=0 \
  actions.status_poll_interval=1 log.level=info)" "$CONF"
lab up "$LAB" --detach
snap_save base
for s in "${SCENARIOS[@]}"; do
  snap_restore base
  "${s}_prepare"
  snap_save "start-$s"
done

for s in "${SCENARIOS[@]}"; do
  case $MODE in
    crash) say "$s: crash after commit N, N = 1, 2, ..."; crash_walk "$s" ;;
    lost)
      # The site's side only where it holds more than page reads (which any delta repeats): a full
      # sync's first reads and the relay's method calls.
      sides=(tenant); [ "$s" = delta ] || sides+=(site)
      for side in "${sides[@]}"; do say "$s: the $side's reply K lost, K = 1, 2, ..."; lost_walk "$s" "$side"; done ;;
    *) echo "FAIL: unknown mode $MODE"; exit 2 ;;
  esac
done
finish
