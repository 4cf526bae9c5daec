#!/usr/bin/env bash
# A hostile site, played by canned_server: a page dripping 2 bytes a second
# ends the read within [site] timeout and page_timeout instead of keeping
# the cycle alive; a Name holding a NUL byte ("PC\u0000EVIL") is read as
# absent and quarantines its device; SQL metacharacters and control
# characters in names reach the state and the tenant as data; a redirect
# to another origin is not followed and the other origin never sees the
# site's credentials.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/canned.sh"

lab_init_up --devices 20 --seed 7
EMPTY="$TMP/empty.json"; echo '{"value":[]}' > "$EMPTY"
NOMETA="$TMP/nometa.json"; echo '{"error":{"code":"NotFound","message":"no $metadata here"}}' > "$NOMETA"
# A site of one page: every class gets the same rows, client-driven windows after the first are empty.
site_up() { # site_up NAME PAGE [canned_server options...]
  local name=$1 page=$2; shift 2
  canned_up "$name" site "$page" --route 'GET *$skip=*' "$EMPTY" 200 --route 'GET */$metadata*' "$NOMETA" 404 "$@"
}
page() { # page FILE ROW-JSON...: an SMS_R_System-like page of active clients
  local f=$1; shift
  local IFS=,
  printf '{"@odata.context":"https://127.0.0.1/AdminService/wmi/$metadata#SMS_R_System","value":[%s]}' "$*" > "$f"
}
# run_sync NAME CONF SECONDS: sync (at debug level) under a time limit; rc, seconds and output kept
run_sync() {
  local t0 t1
  t0=$(date +%s.%N)
  timeout "$3" "$CMBRIDGE" -v -c "$2" sync > "$TMP/$1.out" 2>&1; echo $? > "$TMP/$1.rc"
  t1=$(date +%s.%N)
  python3 -c "print(round($t1-$t0,1))" > "$TMP/$1.secs"
}

say "a page dripping 2 bytes a second: [site] timeout bounds each attempt (low-speed limit)"
page "$TMP/good.json" '{"ResourceID":16777220,"Name":"PC-1","Client":1,"Active":1}'
site_up drip "$TMP/good.json" --drip 2
C1=$(canned_site_conf drip "$CANNED_PORT" site.timeout=2 sync.max_attempts=2)
run_sync drip "$C1" 60
echo "sync against the dripping site: exit $(cat "$TMP/drip.rc") after $(cat "$TMP/drip.secs") s"
expect_eq "dripping site: the cycle fails (not killed by the test's 60 s limit)" 1 "$(cat "$TMP/drip.rc")"
expect_match "dripping site: within 30 s" '^([0-9]|[12][0-9])(\.[0-9])?$' "$(cat "$TMP/drip.secs")"
expect_match "dripping site: the error names the limit" \
  'slower than [0-9]+ bytes/s for 2 s \(\[site\] min_speed, timeout\)' "$(cat "$TMP/drip.out")"
canned_down

say "a page dripping just above the low-speed limit: [site] page_timeout ends the page"
site_up drip2 "$TMP/good.json" --drip 2
C2=$(canned_site_conf drip2 "$CANNED_PORT" site.timeout=60 site.min_speed=1 site.page_timeout=6)
run_sync drip2 "$C2" 60
echo "sync against the dripping site with a page deadline: exit $(cat "$TMP/drip2.rc") after $(cat "$TMP/drip2.secs") s"
expect_eq "page deadline: the cycle fails" 1 "$(cat "$TMP/drip2.rc")"
expect_match "page deadline: within 20 s" '^([0-9]|1[0-9])(\.[0-9])?$' "$(cat "$TMP/drip2.secs")"
expect_match "page deadline: the error names it" 'deadline of 6 s \(\[site\] page_timeout\)' "$(cat "$TMP/drip2.out")"
canned_down

say "a Name holding a NUL byte: read as absent, the device quarantined, its neighbour uploaded"
page "$TMP/nul.json" '{"ResourceID":16777220,"Name":"PC\u0000EVIL","Client":1,"Active":1}' \
  '{"ResourceID":16777221,"Name":"GOOD-PC","Client":1,"Active":1}'
site_up nul "$TMP/nul.json"
C3=$(canned_site_conf nul "$CANNED_PORT")
lab_stats; recv0=$(stat "['tenant']['recordsReceived']")
run_sync nul "$C3" 60
expect_eq "NUL name: the cycle succeeds" 0 "$(cat "$TMP/nul.rc")"
"$CMBRIDGE" -c "$C3" quarantine --json > "$TMP/nul-q.json"
expect_eq "NUL name: the device is quarantined" "PS1:16777220" "$(jget "$TMP/nul-q.json" "','.join(q['key'] for q in d)")"
expect_match "NUL name: the reason names the property" 'SMS_R_System\.Name' \
  "$(jget "$TMP/nul-q.json" "d[0]['reason'] if d else ''")"
expect_match "NUL name: the log says a value was unreadable and read as absent" \
  'a NUL inside a string.*read as absent' "$(cat "$TMP/nul.out")"
lab_stats
expect_eq "NUL name: one record reached the tenant (GOOD-PC)" 1 "$(( $(stat "['tenant']['recordsReceived']") - recv0 ))"
TOKEN=$(graph_token); GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" "$GRAPH/deviceManagement/managedDevices?\$top=1000" \
  > "$TMP/devices.json"
expect_eq "NUL name: neither PC nor EVIL in the tenant" "GOOD-PC" \
  "$(jget "$TMP/devices.json" "','.join(sorted(x['deviceName'] for x in d['value'] if x['deviceName'] in ('PC','EVIL','PC EVIL','GOOD-PC')))")"
canned_down

say "SQL metacharacters and control characters in names are data, in the state and in the tenant"
page "$TMP/sql.json" \
  '{"ResourceID":16777230,"Name":"O'"'"'BRIEN-PC","Client":1,"Active":1}' \
  '{"ResourceID":16777231,"Name":"X\"); DROP TABLE devices;--","Client":1,"Active":1}' \
  '{"ResourceID":16777232,"Name":"100%_LIKE\\","Client":1,"Active":1}' \
  '{"ResourceID":16777233,"Name":"CTRL\u0001\u001b[2J\nPC","Client":1,"Active":1}'
site_up sql "$TMP/sql.json"
C4=$(canned_site_conf sql "$CANNED_PORT")
run_sync sql "$C4" 60
expect_eq "metacharacters: the cycle succeeds" 0 "$(cat "$TMP/sql.rc")"
"$CMBRIDGE" -c "$C4" status --json > "$TMP/sql-status.json"
expect_eq "metacharacters: four devices attached" 4 "$(jget "$TMP/sql-status.json" "d['devicesAttached']")"
expect_eq "metacharacters: every table of the state is still there" "actions audit devices" \
  "$(python3 - "$TMP/state-sql/cmbridge.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
print(" ".join(n for n in ("actions", "audit", "devices") if n in names))
PY
)"
curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" "$GRAPH/deviceManagement/managedDevices?\$top=1000" \
  > "$TMP/devices.json"
expect_eq "metacharacters: quotes, semicolons, percent and backslash reach the tenant unchanged" \
  "100%_LIKE\\|O'BRIEN-PC|X\"); DROP TABLE devices;--" \
  "$(jget "$TMP/devices.json" "'|'.join(sorted(x['deviceName'] for x in d['value'] if x['deviceName'][:3] in ('O\'B','X\")','100')))")"
expect_eq "metacharacters: the control characters arrive as data (one name holds them)" 1 \
  "$(jget "$TMP/devices.json" "sum(1 for x in d['value'] if x['deviceName'].startswith('CTRL'))")"
"$CMBRIDGE" -v -c "$C4" diff --json > "$TMP/sql-diff.out" 2>&1
expect_eq "metacharacters: no raw control character in the connector's output at debug level" 0 \
  "$(python3 -c "import sys; print(sum(open(f,'rb').read().count(c) for f in sys.argv[1:] for c in (b'\x01', b'\x1b')))" \
     "$TMP/sql.out" "$TMP/sql-diff.out")"
canned_down

say "a redirect to another origin is not followed; the other origin sees no credentials"
canned_up target site "$TMP/good.json" --header-log "$TMP/target-headers.log"
TARGET_PORT=$CANNED_PORT
touch "$TMP/target-headers.log"
canned_up redirect site "$NOMETA" --status 302 \
  --header "Location: https://127.0.0.1:$TARGET_PORT/AdminService/wmi/SMS_R_System" --header-log "$TMP/redirect-headers.log"
C5=$(canned_site_conf redirect "$CANNED_PORT")
run_sync redirect "$C5" 60
expect_eq "redirect: the cycle fails" 1 "$(cat "$TMP/redirect.rc")"
expect_match "redirect: the error says where it led and that it was not followed" \
  "HTTP 302: a redirect to https://127\.0\.0\.1:$TARGET_PORT/AdminService/wmi/SMS_R_System, not followed" \
  "$(cat "$TMP/redirect.out")"
expect_eq "redirect: the other origin got no request at all" 0 "$(wc -l < "$TMP/target-headers.log")"
expect_match "redirect: the site itself got its Basic credentials" ' Authorization=Basic' \
  "$(cat "$TMP/redirect-headers.log")"
expect_eq "redirect: no 302 was retried (one request per page tried)" 0 \
  "$(count_lines 'trying again' "$TMP/redirect.out")"
canned_down

finish
