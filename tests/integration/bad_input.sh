#!/usr/bin/env bash
# Bad input from the site: each case ends the cycle with a clear error, and
# nothing in the state or the tenant changes (no upload, no removal).
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 400 --seed 3 --page-size 100
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: baseline sync"; exit 1; }
cmb_status; lab_stats
attached=$(jget "$TMP/status.json" "d['devicesAttached']")
recv=$(jget "$TMP/stats.json" "d['tenant']['recordsReceived']")
rems=$(jget "$TMP/stats.json" "d['tenant']['removalsReceived']")

# run_case NAME ERROR-REGEX BODY-FILE [canned_server options...]
run_case() {
  local name=$1 regex=$2 body=$3; shift 3
  rm -f "$TMP/port"
  "$CANNED_SERVER" --cert "$LAB/site.pem" --key "$LAB/site.key" --port-file "$TMP/port" \
    --body "$body" --log "$TMP/canned.log" "$@" &
  echo $! > "$TMP/canned.pid"
  for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
  local port; port=$(cat "$TMP/port")
  sed -e "s#^url = .*#url = https://127.0.0.1:$port/AdminService#" "$CONF" > "$TMP/bad.conf"
  if [ -n "${MAXMB:-}" ]; then printf '[sync]\nmax_response_mb = %s\n' "$MAXMB" >> "$TMP/bad.conf"; fi
  say "$name"
  local out rc
  out=$("$CMBRIDGE" -c "$TMP/bad.conf" sync 2>&1); rc=$?
  kill "$(cat "$TMP/canned.pid")"; wait "$(cat "$TMP/canned.pid")" 2>/dev/null || true; rm -f "$TMP/canned.pid"
  expect_eq "$name: exit status" 1 "$rc"
  expect_match "$name: error says what and where" "$regex" "$out"
  cmb_status; lab_stats
  expect_eq "$name: last cycle failed" failed "$(jget "$TMP/status.json" "d['cycles'][0]['status']")"
  expect_eq "$name: devices attached unchanged" "$attached" "$(jget "$TMP/status.json" "d['devicesAttached']")"
  expect_eq "$name: tenant received no record" "$recv" "$(jget "$TMP/stats.json" "d['tenant']['recordsReceived']")"
  expect_eq "$name: tenant received no removal" "$rems" "$(jget "$TMP/stats.json" "d['tenant']['removalsReceived']")"
}

CTX='"@odata.context":"https://127.0.0.1/AdminService/wmi/$metadata#SMS_R_System"'
printf '{%s,"value":[{"ResourceID":16777220,"Name":"PC-1"},{"ResourceID":' "$CTX" > "$TMP/malformed.json"
run_case "malformed page" "SMS_R_System.*(parse|malformed|truncated|incomplete)" "$TMP/malformed.json"

printf '{%s,"value":[{"ResourceID":16777220,"Name":"PC-1"}]}' "$CTX" > "$TMP/good.json"
run_case "truncated transfer" "SMS_R_System|127\.0\.0\.1" "$TMP/good.json" --truncate 40

printf '{%s,"values":[]}' "$CTX" > "$TMP/novalue.json"
run_case "missing value array" "value" "$TMP/novalue.json"

printf '<html><body><h1>502 Bad Gateway</h1></body></html>' > "$TMP/proxy.html"
run_case "non-JSON error page from a proxy" "502" "$TMP/proxy.html" --status 502 --content-type text/html

run_case "wrong content type" "text/plain" "$TMP/good.json" --content-type text/plain

python3 - "$TMP/huge.json" <<'PY'
import sys
# 50 rows (fewer than $top) of 30 KB each: only the response size limit can stop it.
rows = ",".join('{"ResourceID":%d,"Name":"%s"}' % (16777220 + i, "X" * 30000) for i in range(50))
open(sys.argv[1], "w").write('{"@odata.context":"x","value":[%s]}' % rows)
PY
MAXMB=1 run_case "oversize response" "SMS_R_System.*exceeds the limit of 1048576 bytes" "$TMP/huge.json"

finish
