#!/usr/bin/env bash
# The scale benchmark (docs/performance.md): a lab site of N devices, the
# floor measured in the same run as curl fetching exactly the URLs the
# connector requested (read from its own debug log: same $select, same
# credentials, same compression, one reused TLS connection), and the parse
# floor (tests/tools/parse_floor: the connector's own page parser over those
# pages, inflated in memory: what a reader adds to the transfer at the
# least), then timed:
#   dry run (read + map + diff), full sync with tenant pacing off, an idle
#   delta, a delta with 1% changed (adds, changes, removes), a full sync at
#   the default pacing (BENCH_PACED=1), actions at 100 a second (latency
#   p50/p99 trigger to site) and in a burst (actions a second), and a naive
#   per-device baseline (one site request and one upload per device, the
#   way community scripts do it) on a sample, scaled to N.
# Prints a table and writes $BENCH_OUT (JSON). Not a pass/fail test: it
# fails only when a step itself fails.
# Pacing off means both sides: [site] rate_limit = 0 and [tenant]
# rate_limit = 0 (the default site pacing alone, 100 requests a second,
# costs requests/100 seconds); the paced full sync keeps both defaults.
#   ./tests/bench/run.sh 100000      (default 10000; or BENCH_DEVICES=N with
#                                     CMBRIDGE, CMBRIDGE_LAB, PARSE_FLOOR set,
#                                     as ctest does)
. "$(dirname "$0")/../integration/lib.sh"

N=${BENCH_DEVICES:-10000}
PACED=${BENCH_PACED:-1}
ACTIONS=${BENCH_ACTIONS:-1000}
SAMPLE=${BENCH_BASELINE_SAMPLE:-1000}
OUT=${BENCH_OUT:-$PWD/bench-scale-$N.json}
RESULTS="$TMP/results.jsonl"
: > "$RESULTS"

say "lab with $N devices"
lab_init_up --devices "$N" --seed 21 --page-size 1000
SITE=$(sed -n 's/^url *= *//p' "$CONF")
USER=$(sed -n 's/^username *= *//p' "$CONF")
FAST=$(conf_with fast site.rate_limit=0 tenant.rate_limit=0 log.level=debug)
QUIET=$(conf_with quiet site.rate_limit=0 tenant.rate_limit=0)

# measure NAME CMD...: wall, CPU (user+sys) and peak RSS of CMD, and what
# crossed the wire (lab counters before and after), as one JSON line.
measure() {
  local name=$1; shift
  lab_stats; cp "$TMP/stats.json" "$TMP/before.json"
  python3 - "$name" "$RESULTS" "$@" <<'PY' || { echo "FAIL: $1"; exit 1; }
import json, resource, subprocess, sys, time
name, out, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=open("/dev/null", "w"))
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
wall = time.monotonic() - t0
rec = {"step": name, "wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
       "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime, "maxrss_kib": r1.ru_maxrss, "rc": p.returncode}
open(out, "a").write(json.dumps(rec) + "\n")
sys.exit(0 if p.returncode in (0,) else 1)
PY
  lab_stats
  python3 - "$RESULTS" "$TMP/before.json" "$TMP/stats.json" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
rec = json.loads(lines[-1])
a, b = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def d(path):
    x, y = a, b
    for k in path:
        x, y = x.get(k, {}), y.get(k, {})
    return (y or 0) - (x or 0) if isinstance(y, (int, float)) else 0
rec["site_requests"] = d(["site", "requests"])
rec["site_bytes_out"] = d(["site", "bytesSent"])
rec["tenant_requests"] = d(["tenant", "requests"])
rec["tenant_uploads"] = d(["tenant", "uploadRequests"])
rec["tenant_bytes_in"] = d(["tenant", "bytesReceived"])
lines[-1] = json.dumps(rec)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
}

say "warm-up dry run (fills the lab's page cache), and the connector's own requests"
"$CMBRIDGE" -c "$FAST" sync --dry-run > /dev/null 2> "$TMP/dry.log" || { echo "FAIL: warm-up dry run"; exit 1; }
grep -o 'site: GET https://[^ ]*' "$TMP/dry.log" | sed 's/^site: GET //' > "$TMP/requested.txt"
expect_match "the connector's requests were read from its log" '^[0-9]+$' "$(grep -c . "$TMP/requested.txt")"

say "floor: curl fetching exactly those URLs, one reused TLS connection, gzip"
: > "$TMP/curl.cfg"
while read -r u; do printf 'url = "%s"\noutput = "/dev/null"\n' "$u" >> "$TMP/curl.cfg"; done < "$TMP/requested.txt"
for _ in 1 2; do   # the second run is the one kept: both sides warm
  python3 - "$TMP/floor.json" curl -sS --compressed --cacert "$LAB/ca.pem" -u "$USER:$(cat "$LAB/site-password")" \
    -H 'Accept: application/json' -w '%{size_download} %{num_connects}\n' -K "$TMP/curl.cfg" <<'PY'
import json, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic(); r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
p = subprocess.run(cmd, capture_output=True, text=True)
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
rows = [l.split() for l in p.stdout.splitlines() if l.strip()]
json.dump({"wall": time.monotonic() - t0, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
           "requests": len(rows), "bytes": sum(int(r[0]) for r in rows),
           "connections": sum(int(r[1]) for r in rows)}, open(out, "w"))
sys.exit(p.returncode)
PY
done

say "parse floor: the connector's page parser over the same pages, saved as the site sent them (gzip)"
# the collection pages: the service document's $metadata (XML, read once) is not one
mkdir -p "$TMP/pages"
grep -v '/\$metadata' "$TMP/requested.txt" > "$TMP/pages.txt"
awk -v d="$TMP/pages" '{ printf "url = \"%s\"\noutput = \"%s/%06d.gz\"\n", $0, d, NR }' "$TMP/pages.txt" > "$TMP/pages.cfg"
npages=$(grep -c . "$TMP/pages.txt")
curl -sS --fail -H 'Accept-Encoding: gzip' --cacert "$LAB/ca.pem" -u "$USER:$(cat "$LAB/site-password")" \
  -H 'Accept: application/json' -K "$TMP/pages.cfg" || { echo "FAIL: saving the pages"; exit 1; }
"$PARSE_FLOOR" "$TMP"/pages/*.gz > "$TMP/parse.json" || { echo "FAIL: parse floor"; exit 1; }
expect_match "the parse floor read every page" "^$npages\$" "$(jget "$TMP/parse.json" "d['pages']")"
rm -rf "$TMP/pages"

say "the connector"
measure dry_run "$CMBRIDGE" -c "$QUIET" sync --dry-run
measure full_sync "$CMBRIDGE" -c "$QUIET" sync --full
measure idle_delta "$CMBRIDGE" -c "$QUIET" sync
pct=$((N / 100)); third=$((pct / 3))
"$CMBRIDGE_LAB" mutate "$LAB" --change $((pct - 2 * third)) --add "$third" --delete "$third" > /dev/null ||
  { echo "FAIL: mutate"; exit 1; }
measure delta_1pct "$CMBRIDGE" -c "$QUIET" sync --allow-deletes "$third"
STATE_BYTES=$(du -sb "$LAB/state" | awk '{print $1}')
ATTACHED=$("$CMBRIDGE" -c "$QUIET" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["devicesAttached"])' 2>/dev/null || echo 0)
if [ "$PACED" = 1 ]; then
  PACE=$(conf_with paced log.level=warn)
  measure full_sync_paced "$CMBRIDGE" -c "$PACE" sync --full
fi

say "actions: 7 x 100 at 100 a second, then a burst of $ACTIONS, the relay long-polling"
RCONF=$(conf_with relay site.rate_limit=0 tenant.rate_limit=0 actions.batch_window=0 actions.status_poll_interval=1 \
  actions.poll_wait=30)
types=(refreshMachinePolicy refreshUserPolicy appEvaluation wakeUpClient fullScan quickScan windowsDefenderUpdateSignatures)
# wait_final N: until the lab counts N actions final (done, failed, notSupported), at most 150 s
wait_final() {
  for _ in $(seq 1 300); do
    lab_stats
    [ "$(stat "['actions']['done'] + d['actions']['failed'] + d['actions']['notSupported']")" -ge "$1" ] && return 0
    sleep 0.5
  done
  echo "FAIL: actions did not all end"
  kill -TERM "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null   # the relay would outlive the run
  exit 1
}
python3 - "$TMP/relay-rusage.json" "$CMBRIDGE" -c "$RCONF" relay <<'PY' > /dev/null 2>&1 &
import json, resource, signal, subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
signal.signal(signal.SIGTERM, lambda *a: p.terminate())
p.wait()
r = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"cpu": r.ru_utime + r.ru_stime, "maxrss_kib": r.ru_maxrss}, open(sys.argv[1], "w"))
PY
relay_pid=$!
sleep 1
: > "$TMP/bursts.txt"
for i in $(seq 0 6); do   # paced: each second its own type on the same 100 devices (no repeat the lab would drop)
  t_start=$(date +%s.%N)
  "$CMBRIDGE_LAB" trigger "$LAB" --many 100 "${types[$i]}" --devices 100 > /dev/null || { echo "FAIL: trigger"; exit 1; }
  printf 'paced %s %s %s\n' "$t_start" "${types[$i]}" "$(date +%s.%N)" >> "$TMP/bursts.txt"
  sleep 0.9
done
wait_final 700
per=$((ACTIONS / 7)); ACTIONS=$((per * 7))
printf 'burst %s\n' "$(date +%s.%N)" >> "$TMP/bursts.txt"
for i in $(seq 0 6); do   # the burst: the seven types on other devices, as fast as the lab takes them
  "$CMBRIDGE_LAB" trigger "$LAB" --many "$per" "${types[$i]}" --devices $((per + 100)) > /dev/null ||
    { echo "FAIL: trigger"; exit 1; }
done
printf 'triggered %s\n' "$(date +%s.%N)" >> "$TMP/bursts.txt"
wait_final $((700 + ACTIONS))
kill -TERM "$relay_pid"; wait "$relay_pid"
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/actions.json"
python3 - "$TMP/actions.json" "$LAB/operations.log" "$TMP/bursts.txt" "$TMP/relay-rusage.json" "$RESULTS" <<'PY'
import datetime, json, sys
acts = json.load(open(sys.argv[1]))["value"]
TYPES = {"refreshMachinePolicy": 8, "refreshUserPolicy": 9, "appEvaluation": 13, "wakeUpClient": 150,
         "fullScan": 1, "quickScan": 2, "windowsDefenderUpdateSignatures": 3}
ops = {}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) >= 4 and f[2] not in ("Block", "Unblock"):
        ops.setdefault((f[2], int(f[3])), []).append(float(f[0]))
marks = [l.split() for l in open(sys.argv[3])]
burst_t0 = next(float(m[1]) for m in marks if m[0] == "burst")
round_t0 = {m[2]: float(m[1]) for m in marks if m[0] == "paced"}
round_t1 = {m[2]: float(m[3]) for m in marks if m[0] == "paced"}
burst_t1 = next(float(m[1]) for m in marks if m[0] == "triggered")
ts = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
paced, paced_from_start, burst_ops = [], [], []
for a in sorted(acts, key=lambda a: a["requestedDateTime"]):
    key = (str(TYPES.get(a["action"])), int(a["key"].split(":")[1]))
    times = ops.get(key) or ops.get((a["action"], key[1])) or []
    if not times:
        continue
    t = times.pop(0)
    if ts(a["requestedDateTime"]) < burst_t0 - 1:
        # from the end of its round's trigger (the action exists by then; this script's clock, not the
        # 1 s requestedDateTime), and from its start (the lab's own time to store the round included)
        paced.append(max(0.0, t - round_t1[a["action"]]))
        paced_from_start.append(max(0.0, t - round_t0[a["action"]]))
    else:
        burst_ops.append(t)
paced.sort()
paced_from_start.sort()
q = lambda l, p: l[min(len(l) - 1, int(p * len(l)))] if l else None
rate = len(burst_ops) / max(1e-9, max(burst_ops) - burst_t0) if burst_ops else 0
r = json.load(open(sys.argv[4]))
rec = {"step": "actions", "paced_count": len(paced), "latency_p50": q(paced, 0.5), "latency_p99": q(paced, 0.99),
       "latency_from_trigger_start_p50": q(paced_from_start, 0.5),
       "latency_from_trigger_start_p99": q(paced_from_start, 0.99),
       "lab_trigger_seconds": max(round_t1[k] - round_t0[k] for k in round_t0),
       "burst_count": len(burst_ops), "burst_actions_per_s": rate,
       "lab_trigger_rate": len(burst_ops) / max(1e-9, burst_t1 - burst_t0), "relay_cpu": r["cpu"],
       "relay_maxrss_kib": r["maxrss_kib"]}
open(sys.argv[5] + ".actions", "w").write(json.dumps(rec))
PY
[ -s "$RESULTS.actions" ] || { echo "FAIL: actions"; exit 1; }

say "naive baseline: one site request and one upload per device, on $SAMPLE devices"
python3 - "$SITE" "$USER" "$LAB" "$SAMPLE" "$TMP/baseline.json" "$CONF" <<'PY'
import base64, gzip, http.client, json, ssl, sys, time, urllib.parse
site, user, lab, sample, out, conf = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
cfg = dict(l.split("=", 1) for l in (x.strip() for x in open(conf)) if "=" in l and not l.startswith(("#", ";")))
cfg = {k.strip(): v.strip() for k, v in cfg.items()}
ctx = ssl.create_default_context(cafile=f"{lab}/ca.pem")
u = urllib.parse.urlparse(site)
sc = http.client.HTTPSConnection(u.hostname, u.port, context=ctx)
auth = "Basic " + base64.b64encode(f"{user}:{open(lab + '/site-password').read()}".encode()).decode()
a = urllib.parse.urlparse(cfg["authority"])
tc = http.client.HTTPSConnection(a.hostname, a.port, context=ctx)
body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": cfg["client_id"],
       "client_secret": open(lab + "/client-secret").read(), "scope": "https://graph.microsoft.com/.default"})
tc.request("POST", a.path + "/oauth2/v2.0/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
token = json.loads(tc.getresponse().read())["access_token"]
g = urllib.parse.urlparse(cfg["gateway_url"])
gc = http.client.HTTPSConnection(g.hostname, g.port, context=ctx)
# the ids, the way a script lists them first
sc.request("GET", u.path + f"/wmi/SMS_R_System?$select=ResourceId&$top={sample}", headers={"Authorization": auth})
ids = [r["ResourceId"] for r in json.loads(sc.getresponse().read().decode('utf-8', 'replace'))["value"]]
t0 = time.monotonic()
for rid in ids:
    sc.request("GET", u.path + f"/wmi/SMS_R_System?$filter=ResourceId%20eq%20{rid}", headers={"Authorization": auth})
    row = json.loads(sc.getresponse().read().decode('utf-8', 'replace'))["value"][0]
    rec = {"key": f"PS1:{rid}", "managedDevice": {"deviceName": row.get("Name") or f"PC-{rid}",
           "managementAgent": "configurationManagerClient"}}
    payload = json.dumps({"batchId": f"00000000-0000-4000-8000-{rid:012d}", "siteCode": "PS1", "devices": [rec],
                          "removals": []}).encode()
    gc.request("POST", g.path + "/api/gateway/DevicePost", gzip.compress(payload, 1),
               {"Authorization": "Bearer " + token, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    gc.getresponse().read()
json.dump({"devices": len(ids), "wall": time.monotonic() - t0}, open(out, "w"))
PY
[ -s "$TMP/baseline.json" ] || { echo "FAIL: baseline"; exit 1; }

say "results"
python3 - "$N" "$RESULTS" "$TMP/floor.json" "$TMP/baseline.json" "$RESULTS.actions" "$STATE_BYTES" "$ATTACHED" \
  "$OUT" "$(nproc)" "$(uname -srm)" "$TMP/parse.json" <<'PY'
import json, sys
n = int(sys.argv[1])
parse = json.load(open(sys.argv[11]))
steps = [json.loads(l) for l in open(sys.argv[2])]
floor = json.load(open(sys.argv[3]))
base = json.load(open(sys.argv[4]))
acts = json.load(open(sys.argv[5]))
state_bytes, attached = int(sys.argv[6]), int(sys.argv[7]) or n
per_device_naive = base["wall"] / max(base["devices"], 1)
naive_n = per_device_naive * n
print(f"site: {n} devices; machine: {sys.argv[9]} cores, {sys.argv[10]}")
print(f"floor: curl, the connector's {floor['requests']} requests, {floor['bytes'] / 1e6:.1f} MB on the wire, "
      f"{floor['connections']} connection(s): {floor['wall']:.2f} s")
# inflate is in curl's floor already; the parse is what a reader on one thread adds to it at the least
parse["floor_plus_parse_ratio"] = (floor["wall"] + parse["parse_cpu"]) / floor["wall"] if floor["wall"] > 0 else None
print(f"parse floor: the connector's page parser over the same {parse['pages']} pages ({parse['records']} records, "
      f"{parse['json_bytes'] / 1e6:.1f} MB of JSON): inflate {parse['inflate_cpu']:.2f} s, parse {parse['parse_cpu']:.2f} s "
      f"of CPU ({parse['parse_cpu'] / n * 1e6:.1f} us a device); the floor plus the parse alone is "
      f"{parse['floor_plus_parse_ratio'] or float('nan'):.2f}x the floor")
print(f"{'step':<18}{'wall s':>9}{'cpu s':>9}{'ratio':>8}{'RSS MiB':>9}{'site req':>10}{'B/dev in':>10}{'tenant req':>11}{'B/dev out':>10}")
for s in steps:
    s["ratio_to_floor"] = s["wall"] / floor["wall"] if floor["wall"] > 0 else None
    s["per_device"] = {k: (s.get(k) or 0) / n for k in ("site_requests", "site_bytes_out", "tenant_requests",
                                                       "tenant_bytes_in")}
    sb = s.get("site_bytes_out"); tb = s.get("tenant_bytes_in")
    print(f"{s['step']:<18}{s['wall']:>9.2f}{s['cpu']:>9.2f}{s['ratio_to_floor'] or float('nan'):>8.2f}"
          f"{s['maxrss_kib'] / 1024:>9.1f}{s.get('site_requests') or 0:>10}{(sb or 0) / n:>10.0f}"
          f"{s.get('tenant_requests') or 0:>11}{(tb or 0) / n:>10.0f}")
print(f"state: {state_bytes / 1e6:.1f} MB, {state_bytes / max(attached, 1):.0f} bytes per attached device")
fmt = lambda v: f"{v:.2f} s" if v is not None else "n/a"
print(f"actions at 100 a second: {acts['paced_count']} at the site, latency trigger->site p50 {fmt(acts['latency_p50'])}, "
      f"p99 {fmt(acts['latency_p99'])} from the trigger's return; from its start p50 "
      f"{fmt(acts['latency_from_trigger_start_p50'])}, p99 {fmt(acts['latency_from_trigger_start_p99'])} "
      f"(the lab took up to {acts['lab_trigger_seconds']:.2f} s to store a round)")
print(f"action burst: {acts['burst_count']} at the site, {acts['burst_actions_per_s']:.0f} actions/s end to end "
      f"(the lab took the triggers at {acts['lab_trigger_rate']:.0f}/s); relay CPU {acts['relay_cpu']:.2f} s, "
      f"RSS {acts['relay_maxrss_kib'] / 1024:.1f} MiB")
full = next(s for s in steps if s["step"] == "full_sync")
print(f"naive baseline (timed on {base['devices']} devices, scaled to {n}): {per_device_naive * 1000:.2f} ms a device, "
      f"{naive_n:.0f} s; the full sync is {naive_n / full['wall']:.0f}x faster")
json.dump({"devices": n, "cores": int(sys.argv[9]), "machine": sys.argv[10], "floor": floor, "parse_floor": parse, "steps": steps,
           "state_bytes": state_bytes, "attached": attached, "state_bytes_per_device": state_bytes / max(attached, 1),
           "actions": acts,
           "baseline": {"sample": base["devices"], "wall": base["wall"], "per_device": per_device_naive,
                        "scaled": naive_n, "full_sync_speedup": naive_n / full["wall"]}}, open(sys.argv[8], "w"),
          indent=1)
print(f"written: {sys.argv[8]}")
PY
finish
