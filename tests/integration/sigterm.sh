#!/usr/bin/env bash
# SIGTERM in the middle of an upload: the batch in flight finishes and is
# recorded ([connector] stop_timeout), `run` exits 0, and the state agrees
# with the tenant; the next run completes the sync with no record created
# twice (no duplicate) and every device in scope attached (no loss). The
# progress of the long upload is logged meanwhile.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 3000 --seed 8
# Small batches at four requests a second: the upload takes about 15 s.
RUN=$(conf_with run tenant.batch_size=50 tenant.rate_limit=4 tenant.rate_burst=1 connector.stop_timeout=20)
"$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!

say "SIGTERM while batches are going out"
for _ in $(seq 300); do
  lab_stats
  [ "$(stat "['tenant']['uploadRequests']")" -ge 4 ] && break
  sleep 0.1
done
expect_eq "the upload is under way" yes "$([ "$(stat "['tenant']['uploadRequests']")" -ge 4 ] && echo yes || echo no)"
t0=$(date +%s)
kill -TERM "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
alive=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)
expect_eq "stopped within the stop timeout" no "$alive"
[ "$alive" = yes ] && kill -KILL "$pid"
wait "$pid"; rc=$?
expect_eq "exit status after SIGTERM" 0 "$rc"
expect_eq "it took no longer than stop_timeout" yes "$([ $(( $(date +%s) - t0 )) -le 21 ] && echo yes || echo no)"
expect_match "the cycle says it was stopped while uploading" 'stopped on request while uploading' "$(cat "$TMP/run.out")"
expect_match "and the daemon that it stopped on request" 'run: stopping on request' "$(cat "$TMP/run.out")"

say "the state agrees with the tenant"
lab_stats; cmb_status
partial=$(stat "['tenant']['devices']")
expect_eq "the tenant holds part of the site" yes "$([ "$partial" -gt 0 ] && [ "$partial" -lt 2500 ] && echo yes || echo no)"
expect_eq "the state knows exactly what the tenant acknowledged" "$partial" "$(jget "$TMP/status.json" "d['devicesAttached']")"

say "the next run completes it: no duplicate, no loss"
"$CMBRIDGE" -c "$RUN" sync > "$TMP/sync.out" 2> "$TMP/sync.err"; rc=$?
expect_eq "the next sync exit status" 0 "$rc"
expect_match "progress lines during the long upload" \
  'progress: delta sync: [0-9]+ of [0-9]+ records uploaded in [0-9]+ batches, [0-9]+ records/s' "$(cat "$TMP/sync.err")"
lab_stats; cmb_status
in_scope=$(jget "$TMP/status.json" "(lambda c: c['siteRecords'] - c['skipped'] - c['quarantined'] - c['duplicates'])(d['cycles'][0]['counts'])")
expect_eq "no loss: the tenant holds every device in scope" "$in_scope" "$(stat "['tenant']['devices']")"
expect_eq "no duplicate: each record was created once" "$(stat "['tenant']['devices']")" "$(stat "['tenant']['recordsCreated']")"
expect_eq "nothing was sent twice" 0 "$(stat "['tenant']['recordsUpdated']")"
expect_eq "the state agrees" "$in_scope" "$(jget "$TMP/status.json" "d['devicesAttached']")"
expect_eq "this cycle uploaded only the rest" "$((in_scope - partial))" "$(cycle_count added)"

finish
