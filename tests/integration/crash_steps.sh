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
# from the Graph listing), the site's operations (type and target), its
# policy documents (ids, versions, content) and writes, the results and
# compliance reported to the tenant, the connector's own view, and what a
# following cycle still finds to do. No duplicate, nothing missing, for
# every N and every K.
#
# A scenario is three functions (below): NAME_prepare brings the saved
# starting point to where the step begins (once), NAME_run BINARY runs the
# step, NAME_observe FILE writes the end state. To add one, write the three
# and name it on the command line in CMakeLists.txt.
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
# relay: the site's operations (type, target), the tenant's actions and results, the connector's;
# policy: the site's policy documents and writes, the statuses the tenant stored, the connector's view
# ($TMP/policies.json) and what one more poll did ($TMP/poll2.txt).
cat > "$TMP/observe.py" <<'PY'
import base64, hashlib, json, os, sqlite3, ssl, sys, urllib.parse, urllib.request
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
elif kind == "policy":
    # The site's documents (the listing's "updated" is the lab's clock: left out) and each one's
    # body; the site's writes; what the tenant stored of the statuses posted (its "updated" left
    # out); the connector's view, the time it read compliance at left out.
    site, auth = kv["url"] + "/v1.0/CmbridgePolicy", "Basic " + base64.b64encode(
        ("%s:%s" % (kv["username"], open(lab + "/site-password").read().strip())).encode()).decode()
    for d in get(site, {"Authorization": auth})["value"]:
        body = urllib.request.urlopen(urllib.request.Request(site + "('%s')" % d["tenantPolicyId"],
            headers={"Authorization": auth}), context=ctx).read()
        print("site document %s version %d hash %s family %s targets %s body sha256 %s" % (d["tenantPolicyId"],
            d["version"], d["contentHash"], d["family"], ",".join(d["targets"]), hashlib.sha256(body).hexdigest()))
    p = stats["policies"]
    print("site: documents %d, created %d, updated %d, deleted %d, rejected %d, conflicts %d, duplicate documents %d" % tuple(
        p[k] for k in ("siteDocuments", "siteCreated", "siteUpdated", "siteDeletes", "siteRejected", "siteConflicts",
                       "duplicateDocuments")))
    if os.environ.get("STEPS_MODE") == "crash":  # a lost reply's write is sent again (answered unchanged or 404): not here
        print("site: PUTs of a version already stored %d, DELETEs of a document already gone %d" % (
            p["siteRepeats"], p["siteDeletesUnknown"]))
    db = sqlite3.connect("file:%s/lab.db?mode=ro" % lab, uri=True)
    for r in db.execute("SELECT policy_id, state, reasons, collections FROM tenant_policy_status ORDER BY policy_id"):
        print("tenant status %s %s reasons %s collections %s" % r)
    for r in db.execute("SELECT policy_id, key, state, failing FROM tenant_policy_device ORDER BY policy_id, key"):
        print("tenant device status %s %s %s failing %s" % r)
    for x in json.load(open(tmp + "/policies.json")):
        x["compliance"]["readAt"] = "-"
        print("connector policy " + json.dumps(x, sort_keys=True))
    print("connector policies: " + json.dumps(status.get("policiesByState"), sort_keys=True))
    print("next poll: " + open(tmp + "/poll2.txt").read().strip())
PY
observe() { STEPS_MODE=$MODE python3 "$TMP/observe.py" "$1" "$TMP" "$CONF" "$LAB" > "$2" || echo "observing failed" >> "$2"; }
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

# A policy relay (issue 12): three policies applied once (and their compliance reported); then in the
# tenant one updated, one deleted, a new one created and assigned; one `policies --once` carries it
# all: a PUT of version 2, a DELETE, a PUT of version 1, one document left as it is, the
# compliance of the new versions read and posted. The lab's devices report at once
# ([policies] report_delay_ms = 0, below), so what the site reports does not depend on timing.
policy_body() { # NAME FAMILY SETTING-JSON...: a new policy of that body (pbody, policies_lib.sh), its id
  pbody "$@" > "$TMP/pol.json"
  pcreate "$TMP/pol.json" || { echo "FAIL: policy: create $1"; exit 1; }
}
policy_prepare() {
  "$CMBRIDGE" -c "$PCONF" sync --full > /dev/null 2>&1 || { echo "FAIL: policy: the first sync"; exit 1; }
  local a b c d
  a=$(policy_body "AV - realtime" endpointSecurityAntivirus "$(s_choice "$RTM" 1)" "$(s_int "${AV}_avgcpuloadfactor" 50)")
  b=$(policy_body "AV - cloud" endpointSecurityAntivirus "$(s_choice "${AV}_allowcloudprotection" 1)")
  c=$(policy_body "AV - extensions" endpointSecurityAntivirus "$(s_strings "${AV}_excludedextensions" .log .tmp)")
  passign "$a" PS100012; passign "$b" PS100014; passign "$c" PS100012
  "$CMBRIDGE" -c "$PCONF" policies --once > /dev/null 2>&1 || { echo "FAIL: policy: the first apply"; exit 1; }
  pbody "AV - realtime" endpointSecurityAntivirus "$(s_choice "$RTM" 0)" "$(s_int "${AV}_avgcpuloadfactor" 50)" |
    jq -c 'del(.templateReference)' > "$TMP/pol.json"
  lab policy "$LAB" update "$a" "$TMP/pol.json"
  lab policy "$LAB" delete "$c"
  d=$(policy_body "AV - paths" endpointSecurityAntivirus "$(s_strings "${AV}_excludedpaths" 'C:\build' 'D:\cache')")
  passign "$d" PS100014
}
policy_run() { timeout 60 "$1" -c "$PCONF" policies --once; }
policy_observe() {
  status_to "$TMP/status1.json"
  "$CMBRIDGE" -c "$PCONF" policies --json > "$TMP/policies.json" || echo "[]" > "$TMP/policies.json"
  # one more poll: it must find the site as the tenant wants it (no write, nothing to reconcile or report)
  "$CMBRIDGE" -c "$PCONF" policies --once > "$TMP/poll2.txt" 2> /dev/null || echo "the next poll failed" >> "$TMP/poll2.txt"
  observe policy "$1"
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
  local what="" n kind
  for kind in '^{:tenant devices' '^site operation :site operation targets' '^tenant action :actions' \
    '^site document :site policy documents' '^tenant device status :device statuses in the tenant'; do
    n=$(grep -c "${kind%%:*}" "$TMP/ref-$1")
    [ "$n" = 0 ] || what="$what${what:+, }$n ${kind#*:}"
  done
  echo "$1: the uninterrupted run ends with ${what:-nothing}"
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
# Every client that is asked completes (the outcome of a target does not depend on how operations were grouped);
# devices report a policy document's compliance as soon as it is stored (not after a delay a restart may outlast).
sed -i -e 's/^success_rate = .*/success_rate = 1/' -e 's/^offline_rate = .*/offline_rate = 0/' \
  -e 's/^report_delay_ms = .*/report_delay_ms = 0/' "$LAB/lab.conf"
cp "$(conf_with steps tenant.batch_size=10 tenant.rate_limit=0 actions.batch_window=0 \
  actions.status_poll_interval=1 log.level=info)" "$CONF"
# The policy relay's: two collections uploaded for policies to target (policies_lib.sh).
case " ${SCENARIOS[*]} " in
  *" policy "*) . "$(dirname "$0")/policies_lib.sh"
    PCONF=$(conf_with policysteps site.cloud_sync_collections=PS100012,PS100014) ;;
esac
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
