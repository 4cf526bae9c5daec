#!/usr/bin/env bash
# Faults on both sides (about 20% of requests: 500, 503 and 429 with and
# without Retry-After, resets, truncated bodies, replies lost after the tenant
# applied a batch): ONE sync cycle still succeeds with the default retry
# budget, the tenant holds exactly the in-scope devices (no duplicates),
# no Retry-After is violated, the tenant rate limit holds, and after the
# faults are cleared a mutate + delta uploads exactly the changes.
. "$(dirname "$0")/lib.sh"

if ! "$CMBRIDGE_LAB" --help 2>&1 | grep -q -- '--rate-reply-lost'; then
  echo "FAIL: this cmbridge-lab has no fault injection (faults command; docs/lab.md)"; exit 1
fi

lab_init_up --devices 3000 --seed 21 --page-size 200
# Small batches: enough tenant requests (60 uploads) for faults and the rate limit to matter.
FCONF=$(conf_with faults tenant.batch_size=50)
TENANT_RATE=$(python3 -c 'print(5 + 5)')   # [tenant] rate_limit + rate_burst defaults
SITE_RATE=$(python3 -c 'print(100 + 20)')  # [site] rate_limit + rate_burst defaults

faults() { "$CMBRIDGE_LAB" faults "$LAB" "$@" > /dev/null || { echo "FAIL: cmbridge-lab faults $*"; exit 1; }; }
# log_faults SIDE: requests the lab answered with a fault on that side so far
log_faults() { awk -v s="$1" '$2 == s && $6 != "-"' "$LAB/requests.log" | wc -l; }
log_kind() { awk -v s="$1" -v k="$2" '$2 == s && $6 == k' "$LAB/requests.log" | wc -l; }

say "phase 1: faults on both sides; 429 with Retry-After on the site, without on the tenant"
faults --site --rate-500 0.05 --rate-429 0.05 --retry-after 1 --rate-reset 0.03 --rate-truncate 0.02 --rate-503 0.03 \
  --seed 5
faults --tenant --rate-500 0.05 --rate-429 0.05 --no-retry-after --rate-reset 0.03 --rate-truncate 0.02 \
  --rate-reply-lost 0.03 --rate-503 0.03 --seed 6
"$CMBRIDGE" -c "$FCONF" sync > "$TMP/sync1.txt" 2> "$TMP/sync1.log"; rc=$?
expect_eq "one cycle succeeds despite the faults" 0 "$rc"
[ "$rc" = 0 ] || tail -20 "$TMP/sync1.log"
cmb_status; lab_stats
# In scope: read, minus skipped, quarantined, and duplicate identities (one record each).
in_scope=$(jget "$TMP/status.json" "(lambda c: c['siteRecords'] - c['skipped'] - c['quarantined'] - c.get('duplicates', 0))(d['cycles'][0]['counts'])")
expect_eq "site devices read" 3000 "$(cycle_count siteRecords)"
expect_eq "every in-scope device added" "$in_scope" "$(cycle_count added)"
expect_eq "tenant holds exactly the in-scope devices" "$in_scope" "$(stat "['tenant']['devices']")"
expect_eq "tenant created each device once (replays applied nothing twice)" "$in_scope" "$(stat "['tenant']['recordsCreated']")"
expect_eq "connector attached count" "$in_scope" "$(jget "$TMP/status.json" "d['devicesAttached']")"
expect_eq "no Retry-After violated" 0 "$(stat "['faults']['retryAfterViolations']")"
expect_match "faults hit the site" '^[1-9]' "$(log_faults site)"
expect_match "faults hit the tenant" '^[1-9]' "$(log_faults tenant)"
expect_match "503s hit the site (with Retry-After) and the tenant (without)" '^[1-9][0-9]* [1-9][0-9]*$' \
  "$(log_kind site 503) $(log_kind tenant 503)"
expect_match "tenant replies were lost after applying a batch" '^[1-9]' "$(stat "['faults']['repliesLost']")"
expect_match "lost replies came back as replays" '^[1-9]' "$(stat "['tenant']['batchesReplayed']")"
t_rps=$(stat "['tenant']['maxRequestsPerSecond']"); s_rps=$(stat "['site']['maxRequestsPerSecond']")
expect_eq "tenant requests/s within rate_limit + burst ($t_rps <= $TENANT_RATE)" yes "$([ "$t_rps" -le "$TENANT_RATE" ] && echo yes || echo no)"
expect_eq "site requests/s within rate_limit + burst ($s_rps <= $SITE_RATE)" yes "$([ "$s_rps" -le "$SITE_RATE" ] && echo yes || echo no)"
echo "     faults: site $(log_faults site), tenant $(log_faults tenant); replays $(stat "['tenant']['batchesReplayed']")"

say "phase 2: the other way round (429 without Retry-After on the site, with it on the tenant), full cycle"
created=$(stat "['tenant']['recordsCreated']")
log_mark=$(wc -l < "$LAB/requests.log")
faults --site --rate-500 0.05 --rate-429 0.05 --no-retry-after --rate-reset 0.03 --rate-truncate 0.02 --seed 7
faults --tenant --rate-500 0.05 --rate-429 0.05 --retry-after 1 --rate-reset 0.03 --rate-truncate 0.02 \
  --rate-reply-lost 0.03 --seed 8
"$CMBRIDGE" -c "$FCONF" sync --full > "$TMP/sync2.txt" 2> "$TMP/sync2.log"; rc=$?
expect_eq "full cycle succeeds despite the faults" 0 "$rc"
[ "$rc" = 0 ] || tail -20 "$TMP/sync2.log"
cmb_status; lab_stats
expect_eq "tenant still holds exactly the in-scope devices" "$in_scope" "$(stat "['tenant']['devices']")"
expect_eq "nothing created twice" "$created" "$(stat "['tenant']['recordsCreated']")"
expect_eq "no Retry-After violated" 0 "$(stat "['faults']['retryAfterViolations']")"
expect_match "tenant 429s (with Retry-After) were sent in this phase" '^[1-9]' \
  "$(tail -n +"$((log_mark + 1))" "$LAB/requests.log" | awk '$2 == "tenant" && $5 == "429"' | wc -l)"
t_rps=$(stat "['tenant']['maxRequestsPerSecond']")
expect_eq "tenant requests/s within rate_limit + burst ($t_rps <= $TENANT_RATE)" yes "$([ "$t_rps" -le "$TENANT_RATE" ] && echo yes || echo no)"

say "faults cleared: the Graph listing has every device once"
faults --site --clear
faults --tenant --clear
graph_walk deviceManagement/managedDevices 1000
expect_eq "listing @odata.count" "$in_scope" "$(jget "$TMP/page1.json" "d['@odata.count']")"
expect_eq "ids listed" "$in_scope" "$(grep -c . "$TMP/ids.txt")"
expect_eq "distinct ids listed" "$in_scope" "$(sort -u "$TMP/ids.txt" | grep -c .)"

say "mutate --change 40 --add 10 --delete 5, then one delta without faults"
recv=$(stat "['tenant']['recordsReceived']"); rems=$(stat "['tenant']['removalsReceived']")
"$CMBRIDGE_LAB" mutate "$LAB" --change 40 --add 10 --delete 5 > /dev/null
"$CMBRIDGE" -c "$FCONF" sync > "$TMP/sync3.txt" 2>&1; rc=$?
expect_eq "delta exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "delta: added" 10 "$(cycle_count added)"
expect_eq "delta: changed" 40 "$(cycle_count changed)"
expect_eq "delta: removed" 5 "$(cycle_count removed)"
expect_eq "tenant received exactly 50 records" 50 "$(( $(stat "['tenant']['recordsReceived']") - recv ))"
expect_eq "tenant received exactly 5 removals" 5 "$(( $(stat "['tenant']['removalsReceived']") - rems ))"
expect_eq "tenant holds in_scope + 10 - 5" "$((in_scope + 5))" "$(stat "['tenant']['devices']")"
expect_eq "connector agrees" "$((in_scope + 5))" "$(jget "$TMP/status.json" "d['devicesAttached']")"

finish
