#!/usr/bin/env bash
# The daemon: `cmbridge run` syncs and relays continuously with one tenant
# token for both, SIGHUP reloads, and SIGTERM stops it cleanly even while it
# is holding a 30-second long poll (signal handlers only set a flag; the
# HTTP core ends transfers when it is set). Log rotation: logrotate.sh.
. "$(dirname "$0")/lib.sh"
require jq

lab_init_up --devices 300 --seed 2
RUN=$(conf_with run actions.poll_wait=30)
"$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!

say "run syncs the site and relays an action while it runs"
for _ in $(seq $((100 * WAIT_SCALE))); do
  grep -q "run: cycle 1 .* ok" "$TMP/run.out" && break
  sleep 0.1
done
expect_match "a sync cycle completed" "run: cycle 1 .* ok" "$(cat "$TMP/run.out")"
lab_stats
daemon_tokens=$(stat "['tenant']['tokensIssued']")
DEVICE=$(curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $(graph_token)" \
  "$(sed -n 's/^graph_url *= *//p' "$CONF")/deviceManagement/managedDevices?\$top=1" | jq -r '.value[0].id')
"$CMBRIDGE_LAB" trigger "$LAB" "$DEVICE" appEvaluation > /dev/null
for _ in $(seq $((150 * WAIT_SCALE))); do
  lab_stats
  [ "$(stat "['actions']['pending']")" = 0 ] && [ "$(stat "['site']['operationTargets']")" = 1 ] && break
  sleep 0.2
done
expect_eq "the action reached the site once" 1 "$(stat "['site']['operationTargets']")"
# One tenant adapter for the cycle and the relay: the notification channel shares its token
# (the two others are the test's own, graph_token, and the one cmbridge-lab trigger uses).
expect_eq "one tenant token for the cycle and the relay" "1 1" "$daemon_tokens $(($(stat "['tenant']['tokensIssued']") - 2))"

say "SIGHUP reloads the configuration, and refuses a change that needs a restart"
sed -i 's/^\(\[sync\]\)$/\1\ninterval = 600/' "$RUN"
grep -q "^interval = 600" "$RUN" || printf '[sync]\ninterval = 600\n' >> "$RUN"
kill -HUP "$pid"
for _ in $(seq $((50 * WAIT_SCALE))); do grep -q "configuration reloaded" "$TMP/run.out" && break; sleep 0.1; done
expect_match "a reloadable change is applied" "run: SIGHUP: configuration reloaded from $RUN" "$(cat "$TMP/run.out")"
sed -i 's/^site_code = .*/site_code = XYZ/' "$RUN"
kill -HUP "$pid"
for _ in $(seq $((50 * WAIT_SCALE))); do grep -q "keeping the running configuration" "$TMP/run.out" && break; sleep 0.1; done
expect_match "a change needing a restart is refused by name" "keeping the running configuration: .*site_code" "$(cat "$TMP/run.out")"
expect_eq "still running after both reloads" yes "$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"

say "SIGTERM during the long poll"
sleep 1
kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
alive=$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)
expect_eq "stopped well before the 30 s poll would end" no "$alive"
[ "$alive" = yes ] && kill -KILL "$pid"
wait "$pid"; rc=$?
expect_eq "exit status after SIGTERM" 0 "$rc"
expect_match "said why it stopped" "stopping on request" "$(cat "$TMP/run.out")"

finish
