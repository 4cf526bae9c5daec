#!/usr/bin/env bash
# Faults during a cycle (docs/reliability.md, "Faults"): tokens that expire
# within the cycle; the tenant's clock 15 minutes ahead of the connector's
# and 15 minutes behind (lab [tenant] clock_offset); an empty inventory,
# new and after a full one; an @odata.nextLink to a foreign origin and a
# site that stalls mid-response (canned_server in place of the site, the
# lab's tenant behind it). Each ends with the tenant exactly right: what
# the site holds, each device created once, removals only from a complete
# read, and one more cycle with nothing to do.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/canned.sh"

lab() { "$CMBRIDGE_LAB" "$@" > /dev/null || { echo "FAIL: cmbridge-lab $*"; exit 1; }; }
# lab_set KEY VALUE: a [tenant] setting of lab.conf, the lab restarted with it
lab_set() {
  lab down "$LAB"
  sed -i "/^$1 = /d" "$LAB/lab.conf"
  sed -i "s/^\[tenant\]\$/[tenant]\n$1 = $2/" "$LAB/lab.conf"
  lab up "$LAB" --detach
}
tokens() { lab_stats; stat "['tenant']['tokensIssued']"; }
# nothing_left WHAT CONF: one more cycle succeeds and finds nothing to add, change or remove.
nothing_left() {
  "$CMBRIDGE" -c "$2" sync > "$TMP/next.out" 2>&1; local rc=$?
  "$CMBRIDGE" -c "$2" status --json > "$TMP/status.json"
  expect_eq "$1: one more cycle finds nothing to do" "0: 0 0 0" \
    "$rc: $(jget "$TMP/status.json" "' '.join(str(d['cycles'][0]['counts'][k]) for k in ('added', 'changed', 'removed'))")"
}
# tenant_is WHAT N CREATED: the tenant holds N devices, the connector N attached, CREATED created in all.
tenant_is() {
  lab_stats; cmb_status
  expect_eq "$1: the tenant holds the in-scope devices" "$2" "$(stat "['tenant']['devices']")"
  expect_eq "$1: each created once" "$3" "$(stat "['tenant']['recordsCreated']")"
  expect_eq "$1: the connector agrees" "$2" "$(jget "$TMP/status.json" "d['devicesAttached']")"
}

lab_init_up --devices 300 --seed 41 --page-size 100
# The default tenant rate (5 requests a second) and batches of 10: a cycle of about six seconds.
FCONF=$(conf_with cyc tenant.batch_size=10 actions.batch_window=0 actions.status_poll_interval=1)
cp "$FCONF" "$CONF"

say "tokens of 2 s: each expires within the cycle, which renews it and loses nothing"
lab_set token_lifetime 2
"$CMBRIDGE" -c "$CONF" sync > "$TMP/exp.out" 2>&1; rc=$?
expect_eq "short tokens: the full sync succeeds" 0 "$rc"
cmb_status
IN_SCOPE=$(jget "$TMP/status.json" "d['devicesAttached']"); CREATED=$IN_SCOPE
secs=$(jget "$TMP/status.json" "__import__('calendar').timegm(__import__('time').strptime(d['cycles'][0]['ended'], '%Y-%m-%dT%H:%M:%SZ')) - __import__('calendar').timegm(__import__('time').strptime(d['cycles'][0]['started'], '%Y-%m-%dT%H:%M:%SZ'))")
t=$(tokens)
echo "a cycle of about $secs s with tokens of 2 s: $t tokens issued"
expect_match "short tokens: the cycle outlived its first token (about $secs s)" '^([3-9]|[1-9][0-9]+)$' "$secs"
expect_match "short tokens: renewed within the cycle ($t tokens)" '^([2-9]|[1-9][0-9]+)$' "$t"
refused=$(stat "['tenant']['authFailures']")
echo "requests refused for an expired token, each then renewed and sent again: $refused"
expect_eq "short tokens: at most one refusal per token issued after the first ($refused)" yes \
  "$([ "$refused" -lt "$t" ] && echo yes || echo no)"
tenant_is "short tokens" "$IN_SCOPE" "$CREATED"
nothing_left "short tokens" "$CONF"
lab_set token_lifetime 3599

for skew in 900 -900; do
  say "the tenant's clock $skew s off the connector's: tokens, uploads and actions as without"
  lab_set clock_offset "$skew"
  lab mutate "$LAB" --change 20 --add 5
  IN_SCOPE=$((IN_SCOPE + 5)); CREATED=5   # counted since the lab started again
  t0=$(tokens); triggered0=$(stat "['actions']['triggered']")
  "$CMBRIDGE" -c "$CONF" sync > "$TMP/skew.out" 2>&1; rc=$?
  expect_eq "skew $skew: the sync succeeds" 0 "$rc"
  cmb_status
  expect_eq "skew $skew: 5 added, 20 changed" "5 20" "$(cycle_count added) $(cycle_count changed)"
  tenant_is "skew $skew" "$IN_SCOPE" "$CREATED"
  lab trigger "$LAB" --many 8 quickScan --devices 8
  timeout 120 "$CMBRIDGE" -c "$CONF" relay --once > "$TMP/skew-relay.out" 2>&1; rc=$?
  expect_eq "skew $skew: relay --once succeeds" 0 "$rc"
  lab_stats
  expect_eq "skew $skew: one token for the sync and one for the relay" 2 "$(( $(stat "['tenant']['tokensIssued']") - t0 ))"
  expect_eq "skew $skew: every action reached the site once" "8 0" \
    "$(stat "['site']['operationTargets']") $(stat "['site']['duplicateTargets']")"
  expect_eq "skew $skew: every action final, none pending" "$((triggered0 + 8)) 0" \
    "$(stat "['actions']['done'] + d['actions']['failed']") $(stat "['actions']['pending']")"
  expect_eq "skew $skew: none delivered after its expiry" 0 "$(stat "['actions']['deliveredAfterExpiry']")"
  "$CMBRIDGE" -c "$CONF" actions --json > "$TMP/actions.json"
  expect_eq "skew $skew: the connector let none expire" 0 \
    "$(jget "$TMP/actions.json" "sum(1 for a in d if a['state'] not in ('done', 'failed') or 'expired' in (a.get('message') or ''))")"
  nothing_left "skew $skew" "$CONF"
  lab_set clock_offset 0
done
CREATED=0

say "an empty inventory after a full one: SMS_R_System answers {\"value\":[]}; nothing is removed"
lab faults "$LAB" --site --class-rows SMS_R_System=0
lab_stats; writes=$(stat "['tenant']['writes']")
"$CMBRIDGE" -c "$CONF" sync > "$TMP/empty.out" 2>&1; rc=$?
expect_eq "empty inventory: the cycle does not succeed" 1 "$rc"
expect_match "empty inventory: it says the removals are held and how to approve them" \
  "$IN_SCOPE removals held back.*approve once with: cmbridge sync --allow-deletes $IN_SCOPE" "$(cat "$TMP/empty.out")"
lab_stats
expect_eq "empty inventory: nothing was sent to the tenant" "$writes" "$(stat "['tenant']['writes']")"
tenant_is "empty inventory" "$IN_SCOPE" "$CREATED"
lab faults "$LAB" --site --clear
nothing_left "the inventory back" "$CONF"

say "an empty inventory from the start: a new connector's first cycle uploads nothing and succeeds"
EMPTY_LAB="$TMP/empty-lab"
"$CMBRIDGE_LAB" init "$EMPTY_LAB" --devices 0 > /dev/null && lab up "$EMPTY_LAB" --detach
"$CMBRIDGE" -c "$EMPTY_LAB/cmbridge.conf" sync > "$TMP/empty0.out" 2>&1; rc=$?
"$CMBRIDGE" -c "$EMPTY_LAB/cmbridge.conf" status --json > "$TMP/empty0.json"
"$CMBRIDGE_LAB" stats "$EMPTY_LAB" --json > "$TMP/empty0-stats.json"
lab down "$EMPTY_LAB"
expect_eq "new and empty: the cycle succeeds" 0 "$rc"
expect_eq "new and empty: 0 read, 0 attached" "0 0" \
  "$(jget "$TMP/empty0.json" "'%d %d' % (d['cycles'][0]['counts']['siteRecords'], d['devicesAttached'])")"
expect_eq "new and empty: the tenant holds nothing" 0 "$(jget "$TMP/empty0-stats.json" "d['tenant']['devices']")"

# ---- canned sites in front of the lab's tenant ----
EMPTY="$TMP/empty.json"; echo '{"value":[]}' > "$EMPTY"
NOMETA="$TMP/nometa.json"; echo '{"error":{"code":"NotFound","message":"no $metadata here"}}' > "$NOMETA"
site_up() { # site_up NAME PAGE [canned_server options...]: every class gets PAGE, later windows are empty
  local name=$1 page=$2; shift 2
  canned_up "$name" site "$page" --route 'GET *$skip=*' "$EMPTY" 200 --route 'GET */$metadata*' "$NOMETA" 404 "$@"
}
page() { # page FILE NEXTLINK ROW-JSON...: an SMS_R_System-like page of active clients
  local f=$1 next=$2; shift 2
  local IFS=,
  printf '{"@odata.context":"https://127.0.0.1/AdminService/wmi/$metadata#SMS_R_System",%s"value":[%s]}' \
    "${next:+\"@odata.nextLink\":\"$next\",}" "$*" > "$f"
}
ROWS=('{"ResourceID":16777501,"Name":"CANNED-A","Client":1,"Active":1}'
      '{"ResourceID":16777502,"Name":"CANNED-B","Client":1,"Active":1}'
      '{"ResourceID":16777503,"Name":"CANNED-C","Client":1,"Active":1}')
page "$TMP/three.json" "" "${ROWS[@]}"
site_up good "$TMP/three.json"
SCONF=$(canned_site_conf canned "$CANNED_PORT" tenant.batch_size=10)
"$CMBRIDGE" -c "$SCONF" sync > "$TMP/canned0.out" 2>&1 || { echo "FAIL: sync against the canned site"; tail "$TMP/canned0.out"; exit 1; }
canned_down
lab_stats; devices0=$(stat "['tenant']['devices']"); writes=$(stat "['tenant']['writes']")
# canned_again WHAT: the good site back on the same state: nothing to do, the tenant as before
canned_again() {
  site_up good "$TMP/three.json"
  local conf
  conf=$(canned_site_conf canned "$CANNED_PORT" tenant.batch_size=10)
  nothing_left "$1: the site back" "$conf"
  lab_stats
  expect_eq "$1: the tenant holds what it held" "$devices0" "$(stat "['tenant']['devices']")"
  canned_down
}

say "an @odata.nextLink to a foreign origin: the read fails, nothing is removed, the origin gets nothing"
canned_up foreign site "$EMPTY" --header-log "$TMP/foreign-headers.log"
touch "$TMP/foreign-headers.log"
page "$TMP/next.json" "https://127.0.0.1:$CANNED_PORT/AdminService/wmi/SMS_R_System?\$skiptoken=R16777501" "${ROWS[0]}"
site_up nextlink "$TMP/next.json"
NCONF=$(canned_site_conf canned "$CANNED_PORT" tenant.batch_size=10)
"$CMBRIDGE" -c "$NCONF" sync > "$TMP/nextlink.out" 2>&1; rc=$?
expect_eq "foreign nextLink: the cycle fails" 1 "$rc"
expect_match "foreign nextLink: the error names the link and the origin it must stay on" \
  "@odata.nextLink leads to https://127\.0\.0\.1:[0-9]+/AdminService/wmi/SMS_R_System.*, outside the site.s origin" "$(tr '\n' ' ' < "$TMP/nextlink.out")"
expect_eq "foreign nextLink: the foreign origin got no request" 0 "$(wc -l < "$TMP/foreign-headers.log")"
lab_stats
expect_eq "foreign nextLink: nothing was sent to the tenant (no removal)" "$writes" "$(stat "['tenant']['writes']")"
canned_down
canned_again "foreign nextLink"

say "a site that stalls mid-response: [site] timeout ends the read, nothing is removed"
site_up stall "$TMP/three.json" --stall 60
TCONF=$(canned_site_conf canned "$CANNED_PORT" tenant.batch_size=10 site.timeout=2 sync.max_attempts=2)
t0=$(date +%s)
timeout 120 "$CMBRIDGE" -c "$TCONF" sync > "$TMP/stall.out" 2>&1; rc=$?
secs=$(( $(date +%s) - t0 ))
expect_eq "stall: the cycle fails" 1 "$rc"
expect_match "stall: within 30 s ($secs s)" '^([0-9]|[12][0-9])$' "$secs"
expect_match "stall: the error names the limit" "\[site\] (min_speed|timeout|page_timeout)" "$(cat "$TMP/stall.out")"
lab_stats
expect_eq "stall: nothing was sent to the tenant" "$writes" "$(stat "['tenant']['writes']")"
canned_down
canned_again "stall"

finish
