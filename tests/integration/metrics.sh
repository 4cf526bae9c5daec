#!/usr/bin/env bash
# [metrics] listen against the lab: `cmbridge run` serves /metrics, whose
# counters match the lab's own stats and `status --json` exactly (devices
# read and attached, records added, removals, upload requests, tokens,
# requests per side, 429s and their retries, actions by state); the
# devices by managementAgent, health and joinType match the tenant's
# records (Graph) and move as the site's do; /healthz is 200 "ok", then
# 503 with status --check's reason after a failed cycle; 404 and 405; the
# page escapes what the tenant sends (a hostile requester) and never shows
# a device name (a hostile one is in the site). The page in a browser:
# status_page.sh.
. "$(dirname "$0")/lib.sh"

HOSTILE_NAME='<script>alert("name")</script>'
HOSTILE_UPN="<script>alert(1)</script>&'x@contoso.example"

"$CMBRIDGE_LAB" init "$LAB" --devices 300 --seed 11 >/dev/null || { echo "FAIL: cmbridge-lab init"; exit 1; }
# A site device with a hostile name, before the lab serves the inventory.
sqlite3 "$LAB/lab.db" "UPDATE site_device SET name = CAST('$HOSTILE_NAME' AS BLOB)
  WHERE resource_id = (SELECT min(resource_id) FROM site_device)"
"$CMBRIDGE_LAB" up "$LAB" --detach >/dev/null || { echo "FAIL: cmbridge-lab up"; cat "$LAB/lab.log"; exit 1; }
CONF="$LAB/cmbridge.conf"
RUN=$(conf_with run metrics.listen=127.0.0.1:0 actions.poll_wait=1 actions.batch_window=0 \
  actions.status_poll_interval=1 sync.interval=900)

"$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; cleanup' EXIT
wait_for() { # FILE REGEX [TENTHS]
  for _ in $(seq "${3:-300}"); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
wait_for "$TMP/run.out" 'run: cycle 1 \(full\) ok' || { echo "FAIL: no first cycle"; cat "$TMP/run.out"; exit 1; }
PORT=$(sed -n 's|.*metrics: serving http://127\.0\.0\.1:\([0-9]*\)/ .*|\1|p' "$TMP/run.out")
URL="http://127.0.0.1:$PORT"
expect_match "the listener says where it serves" '^[0-9]+$' "$PORT"

scrape() { curl -sS "$URL/metrics" > "$TMP/metrics.txt"; }
# metric SERIES: the value of one series, exactly as named with its labels.
metric() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/metrics.txt"; }
# graph_count PYTHON-EXPR: tenant records for which the expression (on m, a managedDevice) is true.
graph_count() {
  python3 - "$TMP" "$1" <<'PY'
import glob, json, sys
n = 0
for p in glob.glob(sys.argv[1] + "/page*.json"):
    for m in json.load(open(p))["value"]:
        n += bool(eval(sys.argv[2]))
print(n)
PY
}

say "after the first cycle: the counters agree with the lab and status --json"
scrape; lab_stats; cmb_status
expect_eq "text format 0.0.4" "text/plain; version=0.0.4; charset=utf-8" \
  "$(curl -sS -o /dev/null -w '%{content_type}' "$URL/metrics")"
expect_eq "build info" 1 "$(metric "cmbridge_build_info{version=\"$(jget "$TMP/status.json" "d['version']")\"}")"
expect_eq "devices read = the site's devices" "$(stat "['site']['devices']")" "$(metric cmbridge_sync_devices_read_total)"
expect_eq "devices read = status" "$(cycle_count siteRecords)" "$(metric cmbridge_sync_devices_read_total)"
expect_eq "added = records the tenant created" "$(stat "['tenant']['recordsCreated']")" \
  "$(metric 'cmbridge_sync_records_total{outcome="added"}')"
expect_eq "uploaded = records the tenant received" "$(stat "['tenant']['recordsReceived']")" \
  "$(( $(metric 'cmbridge_sync_records_total{outcome="added"}') + $(metric 'cmbridge_sync_records_total{outcome="changed"}') + $(metric 'cmbridge_sync_records_total{outcome="refreshed"}') ))"
expect_eq "attached = the tenant's devices" "$(stat "['tenant']['devices']")" "$(metric cmbridge_devices_attached)"
expect_eq "attached = status" "$(jget "$TMP/status.json" "d['devicesAttached']")" "$(metric cmbridge_devices_attached)"
expect_eq "skipped = status" "$(cycle_count skipped)" "$(metric 'cmbridge_sync_records_total{outcome="skipped"}')"
expect_eq "duplicates = status" "$(cycle_count duplicates)" "$(metric 'cmbridge_sync_records_total{outcome="duplicates"}')"
expect_eq "duplicate quarantine = status" "$(jget "$TMP/status.json" "d['quarantineByKind']['duplicate']")" \
  "$(metric 'cmbridge_quarantined_records{kind="duplicate"}')"
expect_eq "upload requests = the tenant's" \
  "$(( $(stat "['tenant']['uploadRequests']") + $(stat "['tenant']['collectionUploadRequests']") ))" \
  "$(metric cmbridge_sync_upload_requests_total)"
expect_eq "tokens = tokens the lab issued" "$(stat "['tenant']['tokensIssued']")" "$(metric cmbridge_tokens_obtained_total)"
expect_eq "site requests = the lab site's" "$(stat "['site']['requests']")" "$(metric 'cmbridge_http_requests_total{side="site"}')"
expect_eq "one full cycle, ok" 1 "$(metric 'cmbridge_sync_cycles_total{kind="full",status="ok"}')"
expect_eq "the histogram counts it" 1 "$(metric 'cmbridge_sync_cycle_duration_seconds_count{kind="full"}')"
expect_eq "in its +Inf bucket" 1 "$(metric 'cmbridge_sync_cycle_duration_seconds_bucket{kind="full",le="+Inf"}')"
expect_eq "check status OK" 0 "$(metric cmbridge_check_status)"
expect_eq "last success = the cycle's end" \
  "$(jget "$TMP/status.json" "__import__('calendar').timegm(__import__('time').strptime(d['lastSuccess'], '%Y-%m-%dT%H:%M:%SZ'))")" \
  "$(metric 'cmbridge_last_success_timestamp_seconds{engine="sync"}')"

say "devices by management agent, health and join type: the tenant's records, and the duplicates"
graph_walk deviceManagement/managedDevices 100
dups=$(metric 'cmbridge_sync_records_total{outcome="duplicates"}')
check_family() { # FAMILY LABEL GRAPH-FIELD-EXPR VALUES...
  local fam=$1 label=$2 expr=$3; shift 3
  local extra=0 v g n
  for v in "$@"; do
    n=$(metric "$fam{$label=\"$v\"}"); g=$(graph_count "$expr == '$v'")
    [ "$n" -lt "$g" ] && extra=-999999
    extra=$((extra + n - g))
  done
  expect_eq "$fam: the tenant's records plus the $dups duplicates" "$dups" "$extra"
}
check_family cmbridge_devices_by_management_agent management_agent "m['managementAgent']" \
  configurationManagerClient configurationManagerClientMdm
check_family cmbridge_devices_by_join_type join_type "m['joinType']" unknown azureADJoined hybridAzureADJoined
check_family cmbridge_devices_by_client_health state "m['configurationManagerClientHealthState']['state']" \
  unknown installed healthy installFailed communicationError
unjoined0=$(metric 'cmbridge_devices_by_join_type{join_type="unknown"}'); gunjoined0=$(graph_count "m['joinType'] == 'unknown'")
healthy0=$(metric 'cmbridge_devices_by_client_health{state="healthy"}'); ghealthy0=$(graph_count "m['configurationManagerClientHealthState']['state'] == 'healthy'")
"$CMBRIDGE_LAB" mutate "$LAB" --unjoin 7 --health 5 --delete 4 > /dev/null || { echo "FAIL: mutate"; exit 1; }
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "a delta cycle through the daemon" 0 "$rc"
scrape; lab_stats; graph_walk deviceManagement/managedDevices 100
expect_eq "unjoined devices moved as the tenant's did" "$(( $(graph_count "m['joinType'] == 'unknown'") - gunjoined0 ))" \
  "$(( $(metric 'cmbridge_devices_by_join_type{join_type="unknown"}') - unjoined0 ))"
expect_eq "healthy devices moved as the tenant's did" \
  "$(( $(graph_count "m['configurationManagerClientHealthState']['state'] == 'healthy'") - ghealthy0 ))" \
  "$(( $(metric 'cmbridge_devices_by_client_health{state="healthy"}') - healthy0 ))"
expect_eq "removed = removals the tenant received" "$(stat "['tenant']['removalsReceived']")" \
  "$(metric 'cmbridge_sync_records_total{outcome="removed"}')"
expect_eq "changed = records the tenant updated" "$(stat "['tenant']['recordsUpdated']")" \
  "$(( $(metric 'cmbridge_sync_records_total{outcome="changed"}') + $(metric 'cmbridge_sync_records_total{outcome="refreshed"}') ))"
expect_eq "one delta cycle, ok" 1 "$(metric 'cmbridge_sync_cycles_total{kind="delta",status="ok"}')"

say "actions: what the relay did, by state, as the lab has them"
"$CMBRIDGE_LAB" trigger "$LAB" --many 6 syncDevice --devices 6 --requester "$HOSTILE_UPN" > /dev/null ||
  { echo "FAIL: trigger"; exit 1; }
for _ in $(seq 300); do
  lab_stats
  [ "$(( $(stat "['actions']['done']") + $(stat "['actions']['failed']") ))" -eq 6 ] && break
  sleep 0.1
done
lab_stats
# The snapshot follows the relay pass that reported the last result.
for _ in $(seq 100); do
  scrape
  [ "$(metric 'cmbridge_relay_actions_total{event="reported"}')" = "$(stat "['actions']['resultsReceived']")" ] &&
    [ "$(( $(metric 'cmbridge_actions{state="done"}') + $(metric 'cmbridge_actions{state="failed"}') ))" = 6 ] && break
  sleep 0.1
done
expect_eq "received = actions the lab triggered" "$(stat "['actions']['triggered']")" \
  "$(metric 'cmbridge_relay_actions_total{event="received"}')"
expect_eq "done = the lab's done" "$(stat "['actions']['done']")" "$(metric 'cmbridge_actions{state="done"}')"
expect_eq "failed = the lab's failed" "$(stat "['actions']['failed']")" "$(metric 'cmbridge_actions{state="failed"}')"
expect_eq "reported = results the lab received" "$(stat "['actions']['resultsReceived']")" \
  "$(metric 'cmbridge_relay_actions_total{event="reported"}')"
expect_eq "site operations = the lab's" "$(stat "['site']['operations']")" "$(metric cmbridge_relay_site_operations_total)"

say "429s from the tenant: counted by side and retried"
sed -i 's/^\[tenant\]$/[tenant]\nbatch_size = 4\nrate_limit = 0/' "$RUN" # more requests: more draws
out=$("$CMBRIDGE" -c "$RUN" reload 2>&1); rc=$?
expect_eq "reload with batch_size = 4" 0 "$rc"
"$CMBRIDGE_LAB" mutate "$LAB" --change 60 > /dev/null
"$CMBRIDGE_LAB" faults "$LAB" --tenant --rate-429 0.4 --retry-after 0 --seed 5 > /dev/null || { echo "FAIL: faults"; exit 1; }
"$CMBRIDGE" -c "$RUN" sync --now > "$TMP/sync429.out" 2>&1; rc=$?
"$CMBRIDGE_LAB" faults "$LAB" --tenant --clear > /dev/null
expect_eq "the throttled cycle: exit status" 0 "$rc"
sleep 1.5 # a relay pass with the faults cleared: nothing more to count
scrape; lab_stats
throttled=$(( $(metric 'cmbridge_http_throttled_total{side="tenant"}') + $(metric 'cmbridge_http_throttled_total{side="token"}') ))
expect_eq "429s = the ones the lab sent" "$(stat "['faults']['injected429']")" "$throttled"
expect_eq "each was retried" "$throttled" \
  "$(( $(metric 'cmbridge_http_retries_total{side="tenant"}') + $(metric 'cmbridge_http_retries_total{side="token"}') ))"
expect_eq "none from the site" 0 "$(metric 'cmbridge_http_throttled_total{side="site"}')"
expect_eq "some were sent" yes "$([ "$throttled" -gt 0 ] && echo yes || echo no)"

say "/healthz: 200 ok, then 503 with status --check's reason after a failed cycle"
expect_eq "/healthz while well" "200 ok" "$(curl -sS -w '%{http_code}' -o "$TMP/h.txt" "$URL/healthz") $(cat "$TMP/h.txt")"
sed -i 's/^\[sync\]$/[sync]\nmax_attempts = 1/' "$RUN"
out=$("$CMBRIDGE" -c "$RUN" reload 2>&1); rc=$?
expect_eq "reload with max_attempts = 1" 0 "$rc"
"$CMBRIDGE_LAB" faults "$LAB" --site --rate-500 1 > /dev/null
"$CMBRIDGE" -c "$RUN" sync --now > /dev/null 2>&1; rc=$?
"$CMBRIDGE_LAB" faults "$LAB" --site --clear > /dev/null
expect_eq "the failed cycle: exit status" 1 "$rc"
code=$(curl -sS -w '%{http_code}' -o "$TMP/h.txt" "$URL/healthz")
check=$("$CMBRIDGE" -c "$RUN" status --check)
expect_eq "/healthz after it" 503 "$code"
ages='s/failed [0-9]+ s ago/failed N s ago/'
expect_eq "/healthz says what status --check says" \
  "$(sed -E 's/^CMBRIDGE CRITICAL - (.*) \| age=.*/critical: \1/' <<<"$check" | sed -E "$ages")" \
  "$(sed -E "$ages" "$TMP/h.txt")"
scrape
expect_eq "check status CRITICAL" 2 "$(metric cmbridge_check_status)"
expect_eq "one delta cycle failed" 1 "$(metric 'cmbridge_sync_cycles_total{kind="delta",status="failed"}')"

say "only GET and HEAD, only /, /metrics and /healthz"
expect_eq "POST /metrics" 405 "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d x "$URL/metrics")"
expect_match "405 names the methods" '^Allow: GET, HEAD' "$(curl -sS -D - -o /dev/null -X DELETE "$URL/" | tr -d '\r')"
expect_eq "GET /nope" 404 "$(curl -sS -o /dev/null -w '%{http_code}' "$URL/nope")"
expect_eq "HEAD /metrics" 200 "$(curl -sS -o /dev/null -w '%{http_code}' -I "$URL/metrics")"

say "the page: the tenant's hostile requester escaped, the site's hostile device name nowhere"
curl -sS -D "$TMP/page.hdr" "$URL/" > "$TMP/page.html"
tr -d '\r' < "$TMP/page.hdr" > "$TMP/page.h"
expect_match "strict CSP" "^Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'$" "$(cat "$TMP/page.h")"
expect_match "nosniff" '^X-Content-Type-Options: nosniff$' "$(cat "$TMP/page.h")"
expect_eq "the requester, escaped, once per recent action" 6 \
  "$(grep -o '<td>&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;x@contoso.example</td>' "$TMP/page.html" | wc -l)"
expect_eq "no script element" 0 "$(grep -ci '<script' "$TMP/page.html")"
expect_eq "the hostile name reached the tenant" 1 \
  "$(graph_count "m['deviceName'] == '''$HOSTILE_NAME'''")"
expect_eq "the device name is on neither the page nor /metrics" 0 \
  "$(cat "$TMP/page.html" "$TMP/metrics.txt" | grep -c 'alert("name")\|alert(&quot;name&quot;)')"
expect_eq "no secret on the page or in /metrics" 0 \
  "$(cat "$TMP/page.html" "$TMP/metrics.txt" | grep -cF "$(cat "$LAB/client-secret")")"

kill -TERM "$pid"; wait "$pid"
expect_eq "the listener is gone with the daemon" 000 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")"
finish
