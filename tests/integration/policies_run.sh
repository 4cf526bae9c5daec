#!/usr/bin/env bash
# The policy relay inside `cmbridge run` (docs/policies.md §7): the first
# poll after the first full sync, then every [policies] interval as a task
# of the scheduler; `policies --now` asks the daemon for one poll;
# `policies` and `status --json` read its state while it runs;
# and an action triggered meanwhile is relayed without waiting for a poll.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policies_lib.sh"

pol_setup --devices 200 --seed 7
pbody "AV - daemon" endpointSecurityAntivirus "$(s_choice "$RTM" 1)" > "$TMP/a.json"
A=$(pcreate "$TMP/a.json"); passign "$A" PS100012
RUN=$(conf_with run site.cloud_sync_collections=PS100012,PS100014 policies.interval=20 sync.interval=600 \
  actions.poll_wait=30)
"$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!

say "the first poll follows the first full sync"
for _ in $(seq 100); do [ "$(site_version "$A")" = 1 ] && break; sleep 0.2; done
expect_eq "at the site without a command" 1 "$(site_version "$A")"
expect_match "the poll logs under its component's correlation id" "\[policy-$A-v1\] policy $A \(AV - daemon\): version 1 created" \
  "$(cat "$TMP/run.out")"
expect_match "the sync cycle came first" 'run: cycle [0-9]+ \(full\) ok' "$(sed -n '1,/policy-/p' "$TMP/run.out")"

say "policies and status read the daemon's state while it runs"
expect_eq "policies --json" '"applied"' "$("$CMBRIDGE" -c "$RUN" policies --json | jq -c --arg id "$A" '.[] | select(.id == $id) | .state')"
"$CMBRIDGE" -c "$RUN" status --json > "$TMP/status.json"
expect_eq "status --json: policies by state" 1 "$(jq .policiesByState.applied "$TMP/status.json")"
expect_match "status --json: the next poll" '^"20[0-9-]+T' "$(jq -c .daemon.nextPolicies "$TMP/status.json")"

say "policies --now: one poll by the daemon"
pbody "AV - now" endpointSecurityAntivirus "$(s_choice "${AV}_allowcloudprotection" 1)" > "$TMP/b.json"
B=$(pcreate "$TMP/b.json"); passign "$B" PS100014
out=$("$CMBRIDGE" -c "$RUN" policies --now 2>&1); rc=$?
expect_eq "policies --now exit status" 0 "$rc"
expect_match "answered by the daemon" '^policies: one poll by the daemon: 2 listed \(1 read\), 2 accepted \(0 in conflict\), 0 rejected; site: 1 written' "$out"
expect_eq "the new policy is at the site" 1 "$(site_version "$B")"
out=$("$CMBRIDGE" -c "$RUN" policies --once 2>&1); rc=$?
expect_eq "policies --once while run runs: refused" 1 "$rc"
expect_match "saying why" 'another cmbridge is using' "$out"

say "an action is relayed while policies are polled"
DEVICE=$(curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $(graph_token)" \
  "$(sed -n 's/^graph_url *= *//p' "$CONF")/deviceManagement/managedDevices?\$top=1" | jq -r '.value[0].id')
"$CMBRIDGE_LAB" trigger "$LAB" "$DEVICE" appEvaluation > /dev/null
t0=$(date +%s%N)
for _ in $(seq 150); do
  lab_stats
  [ "$(stat "['site']['operationTargets']")" = 1 ] && break
  sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "the action reached the site" 1 "$(stat "['site']['operationTargets']")"
expect_eq "within half a policy interval ($ms ms of 20 s): it never waits for a poll" yes "$([ "$ms" -lt 10000 ] && echo yes || echo no)"

say "the interval: a change reaches the site by itself"
pbody "AV - daemon" endpointSecurityAntivirus "$(s_choice "$RTM" 0)" | jq -c 'del(.templateReference)' > "$TMP/a2.json"
"$CMBRIDGE_LAB" policy "$LAB" update "$A" "$TMP/a2.json" > /dev/null || echo "FAIL: update"
for _ in $(seq 150); do [ "$(site_version "$A")" = 2 ] && break; sleep 0.2; done
expect_eq "version 2 within one [policies] interval (20 s, and its offset)" 2 "$(site_version "$A")"

kill -TERM "$pid"; wait "$pid"; rc=$?
expect_eq "run stops cleanly" 0 "$rc"
expect_eq "no error logged" "" "$(grep -E ' error ' "$TMP/run.out")"
finish
