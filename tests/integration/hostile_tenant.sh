#!/usr/bin/env bash
# A hostile or broken tenant. Against the lab: one token serves the relay
# and the sync under errors, even with tokens shorter-lived than the
# renewal margin. Played by canned_server: NotificationResult answering 500
# for ever, a channel that ignores the cursor, a 20 MB access token, a
# reply nested two million deep, a gateway that refuses every token, and
# SQL metacharacters and control characters in notifications; each ends
# clearly (relay --once non-zero with what is pending) and bounded in time.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/canned.sh"

"$CMBRIDGE_LAB" init "$LAB" --devices 60 --seed 9 >/dev/null || { echo "FAIL: cmbridge-lab init"; exit 1; }
# Tokens of 4 minutes: less than the 5 minutes the connector renews ahead.
sed -i 's/^token_lifetime = .*/token_lifetime = 240/' "$LAB/lab.conf"
"$CMBRIDGE_LAB" up "$LAB" --detach >/dev/null || { echo "FAIL: cmbridge-lab up"; exit 1; }
CONF="$LAB/cmbridge.conf"
tokens() { lab_stats; stat "['tenant']['tokensIssued']"; }

say "one token for the whole relay --once and the whole sync, with half the tenant requests failing"
"$CMBRIDGE" -c "$CONF" sync > "$TMP/sync0.out" 2>&1 || { echo "FAIL: first sync"; cat "$TMP/sync0.out"; exit 1; }
"$CMBRIDGE_LAB" trigger "$LAB" --many 40 quickScan --devices 40 > /dev/null || { echo "FAIL: trigger"; exit 1; }
"$CMBRIDGE_LAB" faults "$LAB" --tenant --rate-500 0.4 --rate-429 0.1 --retry-after 0.2 --seed 7 > /dev/null
RCONF=$(conf_with relay actions.batch_window=0 actions.status_poll_interval=1)
t0=$(tokens)
timeout 200 "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/relay.out" 2>&1; rc=$?
t1=$(tokens)
expect_eq "relay --once under errors: exit status" 0 "$rc"
echo "relay --once: $(tail -1 "$TMP/relay.out")"
expect_match "relay --once under errors: the tenant did fail requests" '^([3-9]|[1-9][0-9]+)$' \
  "$(stat "['faults']['injected500'] + d['faults']['injected429']")"
expect_eq "relay --once under errors: token requests at the lab" 1 "$((t1 - t0))"
"$CMBRIDGE_LAB" mutate "$LAB" --change 30 > /dev/null
timeout 200 "$CMBRIDGE" -c "$CONF" sync --full > "$TMP/sync1.out" 2>&1; rc=$?
t2=$(tokens)
expect_eq "full sync under errors: exit status" 0 "$rc"
expect_eq "full sync under errors: token requests at the lab" 1 "$((t2 - t1))"
"$CMBRIDGE_LAB" faults "$LAB" --clear > /dev/null

TOK="$TMP/token.json"; echo '{"token_type":"Bearer","expires_in":3599,"access_token":"canned.access.token"}' > "$TOK"
E500="$TMP/e500.json"; echo '{"error":{"code":"InternalServerError","message":"canned failure"}}' > "$E500"
ID1=11111111-1111-4111-8111-111111111111; ID2=22222222-2222-4222-8222-222222222222
ID3=33333333-3333-4333-8333-333333333333
notif() { # notif ID KEY: one notification for a device this connector does not hold (refused: a result to report)
  printf '{"id":"%s","deviceId":"dev-%s","key":"%s","action":"quickScan","requestedBy":"admin@contoso.example","requestedDateTime":"2026-12-01T10:00:00Z","expirationDateTime":"2099-12-01T10:00:00Z"}' "$1" "$1" "$2"
}
printf '{"cursor":"c1","notifications":[%s]}' "$(notif $ID1 PS1:99999901)" > "$TMP/one.json"
printf '{"cursor":"c1","notifications":[]}' > "$TMP/none.json"
printf '{"cursor":"c1","notifications":[%s,%s,%s]}' "$(notif $ID1 PS1:99999901)" "$(notif $ID2 PS1:99999902)" \
  "$(notif $ID3 PS1:99999903)" > "$TMP/three.json"
printf '{"results":[{"id":"%s","status":"accepted"},{"id":"%s","status":"accepted"},{"id":"%s","status":"accepted"}]}' \
  $ID1 $ID2 $ID3 > "$TMP/acked.json"
# relay_once NAME CONF SECONDS: relay --once under a time limit; rc, seconds and output kept
relay_once() {
  local t0 t1
  t0=$(date +%s.%N)
  timeout "$3" "$CMBRIDGE" -v -c "$2" relay --once > "$TMP/$1.out" 2>&1; echo $? > "$TMP/$1.rc"
  t1=$(date +%s.%N)
  python3 -c "print(round($t1-$t0,1))" > "$TMP/$1.secs"
  echo "relay --once ($1): exit $(cat "$TMP/$1.rc") after $(cat "$TMP/$1.secs") s"
}

say "NotificationResult answers 500 for ever: relay --once ends, non-zero, saying what is pending"
canned_up r500 tenant "$E500" --status 500 --route 'POST /t/token' "$TOK" 200 \
  --route 'GET /api/gateway/Notification?cursor=&*' "$TMP/one.json" 200 \
  --route 'GET /api/gateway/Notification*' "$TMP/none.json" 200
C1=$(canned_tenant_conf r500 "$CANNED_PORT" sync.max_attempts=2)
relay_once r500 "$C1" 120
expect_eq "results refused for ever: exit status" 1 "$(cat "$TMP/r500.rc")"
expect_match "results refused for ever: ends within 60 s" '^[1-5]?[0-9](\.[0-9])?$' "$(cat "$TMP/r500.secs")"
expect_match "results refused for ever: the error says what is pending" \
  'pending: 0 actions short of final, 1 result not reported to the tenant' "$(cat "$TMP/r500.out")"
expect_match "results refused for ever: and why" 'NotificationResult: InternalServerError: canned failure' \
  "$(cat "$TMP/r500.out")"
canned_down

say "a channel that ignores the cursor: the same notifications under the same cursor end relay --once non-zero"
canned_up cursor tenant "$TMP/acked.json" --route 'POST /t/token' "$TOK" 200 \
  --route 'GET /api/gateway/Notification*' "$TMP/three.json" 200
C2=$(canned_tenant_conf cursor "$CANNED_PORT" sync.max_attempts=2)
relay_once cursor "$C2" 120
expect_eq "cursor ignored: exit status" 1 "$(cat "$TMP/cursor.rc")"
expect_match "cursor ignored: the error names the cursor that does not move" \
  "notification channel: cursor 'c1' came back with 3 notifications already in the inbox: the tenant does not move past them" \
  "$(cat "$TMP/cursor.out")"
expect_match "cursor ignored: and what is pending" 'pending: 0 actions short of final, 0 results not reported' \
  "$(cat "$TMP/cursor.out")"
"$CMBRIDGE" -c "$C2" actions --json > "$TMP/cursor-actions.json"
expect_eq "cursor ignored: the three actions are in the inbox once each" 3 "$(jget "$TMP/cursor-actions.json" "len(d)")"
canned_down

say "a 20 MB access token is refused at the token endpoint, naming the limit, and not retried"
python3 -c "import json,sys; json.dump({'token_type':'Bearer','expires_in':3599,'access_token':'eyJ'+'A'*(20<<20)}, open(sys.argv[1],'w'))" \
  "$TMP/bigtoken.json"
canned_up bigtok tenant "$TMP/acked.json" --route 'POST /t/token' "$TMP/bigtoken.json" 200
C3=$(canned_tenant_conf bigtok "$CANNED_PORT")
timeout 120 "$CMBRIDGE" -c "$C3" sync > "$TMP/bigtok.out" 2>&1; rc=$?
expect_eq "20 MB token: the cycle fails" 1 "$rc"
expect_match "20 MB token: the error names the limit" \
  'acquiring a token: the response from https://[^ ]*/t/token exceeds the limit of 1048576 bytes \(token reply, connector/base/limits\.h\)' \
  "$(cat "$TMP/bigtok.out")"
expect_eq "20 MB token: one token request" 1 "$(count_lines '^POST /t/token' "$TMP/bigtok.log")"
expect_eq "20 MB token: no upload was attempted with it" 0 "$(count_lines 'DevicePost' "$TMP/bigtok.log")"
expect_eq "20 MB token: nothing retried as 'out of memory'" 0 "$(count_lines 'Out of memory|trying again' "$TMP/bigtok.out")"
canned_down

say "a gateway reply nested two million deep fails the upload clearly (no crash)"
python3 -c "import sys; open(sys.argv[1],'w').write('['*2000000 + ']'*2000000)" "$TMP/deep.json"
canned_up deep tenant "$TMP/deep.json" --route 'POST /t/token' "$TOK" 200
C4=$(canned_tenant_conf deep "$CANNED_PORT" sync.max_attempts=1)
timeout 120 "$CMBRIDGE" -c "$C4" sync > "$TMP/deep.out" 2>&1; rc=$?
expect_eq "deep reply: the cycle fails (1, not a crash)" 1 "$rc"
expect_match "deep reply: the error names the limit" \
  'tenant reply from https://[^ ]*/api/gateway/DevicePost: nesting exceeds the limit of 64 levels \(JSON depth, connector/base/limits\.h\)' \
  "$(cat "$TMP/deep.out")"
canned_down

say "a gateway that refuses every token: renewed once, not on every request"
echo '{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}' > "$TMP/e401.json"
canned_up r401 tenant "$TMP/e401.json" --status 401 --route 'POST /t/token' "$TOK" 200
C5=$(canned_tenant_conf r401 "$CANNED_PORT" sync.max_attempts=2)
relay_once r401 "$C5" 120
expect_eq "refused tokens: exit status" 1 "$(cat "$TMP/r401.rc")"
expect_match "refused tokens: the error names the refusal" 'refused the credentials of client .*HTTP 401' \
  "$(cat "$TMP/r401.out")"
polls=$(count_lines '^GET /api/gateway/Notification' "$TMP/r401.log")
expect_match "refused tokens: several polls were refused ($polls)" '^([3-9]|[1-9][0-9])$' "$polls"
expect_eq "refused tokens: two token requests (the first, one renewal)" 2 "$(count_lines '^POST /t/token' "$TMP/r401.log")"
canned_down

say "SQL metacharacters and control characters in notifications are data"
HOSTILE_ID="x'); DROP TABLE actions;--"
printf '{"cursor":"c1","notifications":[{"id":"%s","deviceId":"d\\"; DELETE FROM audit;","key":"PS1:1%%27 OR 1=1","action":"quickScan\\u0000x","requestedBy":"evil\\u001b[2J\\n@x","requestedDateTime":"2026-12-01T10:00:00Z","expirationDateTime":"2099-12-01T10:00:00Z"}]}' \
  "$HOSTILE_ID" > "$TMP/hostile.json"
printf '{"results":[{"id":"%s","status":"accepted"}]}' "$HOSTILE_ID" > "$TMP/hostile-ack.json"
canned_up hostile tenant "$TMP/hostile-ack.json" --route 'POST /t/token' "$TOK" 200 \
  --route 'GET /api/gateway/Notification?cursor=&*' "$TMP/hostile.json" 200 \
  --route 'GET /api/gateway/Notification*' "$TMP/none.json" 200
C6=$(canned_tenant_conf hostile "$CANNED_PORT")
relay_once hostile "$C6" 60
expect_eq "hostile strings: relay --once exit status" 0 "$(cat "$TMP/hostile.rc")"
"$CMBRIDGE" -c "$C6" actions --json > "$TMP/hostile-actions.json"
expect_eq "hostile strings: the id is kept as data" "$HOSTILE_ID" "$(jget "$TMP/hostile-actions.json" "d[0]['id']")"
expect_eq "hostile strings: refused, not relayed" "notSupported" "$(jget "$TMP/hostile-actions.json" "d[0]['state']")"
expect_eq "hostile strings: every table of the state is still there, the audit not emptied" "actions audit devices 2" \
  "$(python3 - "$TMP/state-hostile/cmbridge.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
print(" ".join(n for n in ("actions", "audit", "devices") if n in names), db.execute("SELECT count(*) FROM audit").fetchone()[0])
PY
)"
expect_eq "hostile strings: no raw control character in the connector's output at debug level" 0 \
  "$(python3 -c "import sys; print(open(sys.argv[1],'rb').read().count(b'\x1b'))" "$TMP/hostile.out")"
canned_down

finish
