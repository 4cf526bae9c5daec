#!/usr/bin/env bash
# The scale benchmark (docs/performance.md): a lab site of N devices, the
# floor measured in the same run as curl fetching exactly the URLs the
# connector requested (read from its own debug log: same $select, same
# credentials, same compression, one reused TLS connection), then timed:
#   dry run (read + map + diff), full sync with tenant pacing off, an idle
#   delta, a delta with 1% changed (adds, changes, removes), a full sync at
#   the default pacing (BENCH_PACED=1), an action burst, and a naive
#   per-device baseline (one site request and one upload per device, the
#   way community scripts do it) on a sample, scaled to N.
# Prints a table and writes $BENCH_OUT (JSON). Not a pass/fail test: it
# fails only when a step itself fails.
# Pacing off means both sides: [site] rate_limit = 0 and [tenant]
# rate_limit = 0 (the default site pacing alone, 100 requests a second,
# costs requests/100 seconds); the paced full sync keeps both defaults.
#   ./tests/bench/run.sh 100000      (default 10000; or BENCH_DEVICES=N with
#                                     CMBRIDGE, CMBRIDGE_LAB set, as ctest does)
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

say "an action burst: $ACTIONS actions, the relay to completion"
"$CMBRIDGE_LAB" trigger "$LAB" --many "$ACTIONS" refreshMachinePolicy --devices "$ACTIONS" > /dev/null ||
  { echo "FAIL: trigger"; exit 1; }
RCONF=$(conf_with relay site.rate_limit=0 tenant.rate_limit=0 actions.batch_window=1 actions.status_poll_interval=1)
measure action_burst "$CMBRIDGE" -c "$RCONF" relay --once
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/actions.json"

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
python3 - "$N" "$RESULTS" "$TMP/floor.json" "$TMP/baseline.json" "$TMP/actions.json" "$STATE_BYTES" "$ATTACHED" \
  "$OUT" "$(nproc)" "$(uname -srm)" <<'PY'
import json, statistics, sys
from datetime import datetime
n = int(sys.argv[1])
steps = [json.loads(l) for l in open(sys.argv[2])]
floor = json.load(open(sys.argv[3]))
base = json.load(open(sys.argv[4]))
acts = json.load(open(sys.argv[5]))
state_bytes, attached = int(sys.argv[6]), int(sys.argv[7]) or n
lat = []
for a in acts["value"]:
    t0, t1 = a.get("requestedDateTime"), a.get("lastUpdatedDateTime")
    if t0 and t1 and a.get("actionState") in ("done", "failed"):
        f = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        lat.append(f(t1) - f(t0))
per_device_naive = base["wall"] / max(base["devices"], 1)
naive_n = per_device_naive * n
print(f"site: {n} devices; machine: {sys.argv[9]} cores, {sys.argv[10]}")
print(f"floor: curl, the connector's {floor['requests']} requests, {floor['bytes'] / 1e6:.1f} MB on the wire, "
      f"{floor['connections']} connection(s): {floor['wall']:.2f} s")
print(f"{'step':<18}{'wall s':>9}{'cpu s':>9}{'ratio':>8}{'RSS MiB':>9}{'site req':>10}{'B/dev in':>10}{'tenant req':>11}{'B/dev out':>10}")
for s in steps:
    ratio = s["wall"] / floor["wall"] if floor["wall"] > 0 else float("nan")
    sb = s.get("site_bytes_out"); tb = s.get("tenant_bytes_in")
    print(f"{s['step']:<18}{s['wall']:>9.2f}{s['cpu']:>9.2f}{ratio:>8.2f}{s['maxrss_kib'] / 1024:>9.1f}"
          f"{s.get('site_requests') or 0:>10}{(sb or 0) / n:>10.0f}{s.get('tenant_requests') or 0:>11}{(tb or 0) / n:>10.0f}")
for s in steps:
    s["ratio_to_floor"] = s["wall"] / floor["wall"] if floor["wall"] > 0 else None
    s["per_device"] = {k: (s.get(k) or 0) / n for k in ("site_requests", "site_bytes_out", "tenant_requests",
                                                       "tenant_bytes_in")}
print(f"state: {state_bytes / 1e6:.1f} MB, {state_bytes / max(attached, 1):.0f} bytes per attached device")
burst = next((s for s in steps if s["step"] == "action_burst"), None)
if lat:
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"actions: {len(lat)} final, latency p50 {p(0.5):.2f} s, p99 {p(0.99):.2f} s, "
          f"{len(lat) / burst['wall']:.0f} actions/s over the burst")
dry = next(s for s in steps if s["step"] == "dry_run")
print(f"naive baseline: {per_device_naive * 1000:.2f} ms a device on {base['devices']} devices, "
      f"{naive_n:.0f} s for {n}; the full sync is {naive_n / next(s for s in steps if s['step'] == 'full_sync')['wall']:.0f}x faster")
json.dump({"devices": n, "cores": int(sys.argv[9]), "floor": floor, "steps": steps,
           "state_bytes": state_bytes, "attached": attached,
           "action_latency": {"count": len(lat), "p50": lat[len(lat) // 2] if lat else None,
                              "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None},
           "baseline": {"sample": base["devices"], "wall": base["wall"], "per_device": per_device_naive,
                        "scaled": naive_n}}, open(sys.argv[8], "w"), indent=1)
print(f"written: {sys.argv[8]}")
PY
finish
