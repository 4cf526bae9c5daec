#!/usr/bin/env bash
# `cmbridge run` as a service: systemd's notifications (READY, STATUS,
# RELOADING, STOPPING, WATCHDOG) on a NOTIFY_SOCKET this test listens on;
# readers (status, quarantine, actions, diff, config) answer while it runs
# and write nothing; a second instance is refused; the control socket runs
# cycles, releases a held cycle with `sync --allow-deletes` and reloads;
# SIGUSR1 runs a delta cycle; SIGHUP applies a new interval and keeps the
# running configuration when the new one is invalid. SIGTERM mid-upload:
# sigterm.sh.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 1000 --seed 7
RUN=$(conf_with run actions.poll_wait=30 sync.interval=900)
STATE=$(sed -n 's/^state_dir *= *//p' "$RUN")

# A datagram listener standing in for systemd: one line per notification.
python3 - "$TMP/notify.sock" "$TMP/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        out.flush()
PY
listener=$!
trap 'kill $listener 2>/dev/null; cleanup' EXIT
for _ in $(seq 50); do [ -S "$TMP/notify.sock" ] && break; sleep 0.1; done

NOTIFY_SOCKET="$TMP/notify.sock" WATCHDOG_USEC=1000000 "$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!

# wait_for FILE REGEX [TENTHS]: until a line matches (default 20 s).
wait_for() {
  for _ in $(seq "${3:-200}"); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# due_in KEY [CONF]: seconds from now to the daemon's nextDelta or nextFull.
due_in() {
  "$CMBRIDGE" -c "${2:-$RUN}" status --json > "$TMP/due.json"
  jget "$TMP/due.json" "__import__('calendar').timegm(__import__('time').strptime(d['daemon']['$1'], '%Y-%m-%dT%H:%M:%SZ')) - int(__import__('time').time())"
}

say "READY once the site and the tenant answered, then the first cycle"
wait_for "$TMP/notify.log" '^READY=1'
wait_for "$TMP/run.out" "run: cycle 1 .* ok"
expect_match "READY was sent" '^READY=1\|STATUS=ready' "$(cat "$TMP/notify.log")"
expect_match "STATUS lines say what it does" '^STATUS=full sync' "$(cat "$TMP/notify.log")"
expect_match "the next runs are logged after the cycle" \
  'run: next delta at 20[0-9-]+T[0-9:]+Z, next full at 20[0-9-]+T[0-9:]+Z' "$(cat "$TMP/run.out")"
ready_line=$(grep -n '^READY=1' "$TMP/notify.log" | head -1 | cut -d: -f1)
first_sync=$(grep -n '^STATUS=full sync' "$TMP/notify.log" | head -1 | cut -d: -f1)
expect_eq "READY comes before the first cycle" yes "$([ "$ready_line" -lt "$first_sync" ] && echo yes || echo no)"

say "readers answer while it runs, and write nothing"
cycles_before=$(sqlite3 "file:$STATE/cmbridge.db?mode=ro" "SELECT count(*) FROM cycles")
"$CMBRIDGE" -c "$RUN" status --json > "$TMP/status.json"; rc=$?
expect_eq "status --json exit status" 0 "$rc"
expect_eq "status: the daemon runs, with its pid" "True $pid" \
  "$(jget "$TMP/status.json" "str(d['daemon']['running']) + ' ' + str(d['daemon']['pid'])")"
expect_match "status: next delta and full times from the scheduler" '^20.*Z 20.*Z$' \
  "$(jget "$TMP/status.json" "d['daemon']['nextDelta'] + ' ' + d['daemon']['nextFull']")"
expect_eq "status: the last cycle" "full ok" "$(jget "$TMP/status.json" "d['cycles'][0]['kind'] + ' ' + d['cycles'][0]['status']")"
"$CMBRIDGE" -c "$RUN" status > "$TMP/status.txt"; rc=$?
expect_eq "status (text) exit status" 0 "$rc"
expect_match "status (text) names the daemon" "daemon: +running, pid $pid" "$(cat "$TMP/status.txt")"
"$CMBRIDGE" -c "$RUN" quarantine > "$TMP/q.txt" 2>&1; rc=$?
expect_eq "quarantine exit status" 0 "$rc"
expect_match "quarantine lists" 'records in quarantine' "$(cat "$TMP/q.txt")"
"$CMBRIDGE" -c "$RUN" actions --json > "$TMP/a.json" 2>&1; rc=$?
expect_eq "actions exit status" 0 "$rc"
"$CMBRIDGE" -c "$RUN" diff --json > "$TMP/diff.json" 2>"$TMP/diff.err"; rc=$?
expect_eq "diff exit status" 0 "$rc"
expect_eq "diff: nothing to upload after the cycle" 0 "$(jget "$TMP/diff.json" "d['counts']['upload']")"
"$CMBRIDGE" -c "$RUN" sync --dry-run > "$TMP/dry.txt" 2>&1; rc=$?
expect_eq "sync --dry-run exit status" 0 "$rc"
"$CMBRIDGE" -c "$RUN" config > /dev/null; rc=$?
expect_eq "config exit status" 0 "$rc"
expect_eq "diff and dry runs wrote no cycle to the state" "$cycles_before" \
  "$(sqlite3 "file:$STATE/cmbridge.db?mode=ro" "SELECT count(*) FROM cycles")"

say "a second instance is refused"
out=$("$CMBRIDGE" -c "$RUN" run 2>&1); rc=$?
expect_eq "second run exit status" 1 "$rc"
expect_match "second run names the first" "another cmbridge is using $STATE \(pid $pid\)" "$out"
expect_eq "the first still runs" yes "$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"

say "sync --now goes through the daemon"
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "sync --now exit status" 0 "$rc"
expect_match "the daemon ran it" 'cycle 2 \(delta\) ok, run by the daemon' "$out"

say "a held cycle, seen by status --check, released through the socket"
"$CMBRIDGE_LAB" mutate "$LAB" --delete 150 > /dev/null || { echo "FAIL: mutate"; exit 1; }
lab_stats; rem0=$(stat "['tenant']['removalsReceived']")
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "held cycle exit status" 1 "$rc"
expect_match "held: the message says how to approve" 'held: .*cmbridge sync --allow-deletes [0-9]+' "$out"
"$CMBRIDGE" -c "$RUN" status --json > "$TMP/status.json"
held=$(jget "$TMP/status.json" "d['deletionGuard']['removalsHeld']")
attached=$(jget "$TMP/status.json" "d['devicesAttached']")
expect_eq "status: the guard holds" True "$(jget "$TMP/status.json" "d['deletionGuard']['holding']")"
out=$("$CMBRIDGE" -c "$RUN" status --check); rc=$?
expect_eq "status --check: WARNING for a held cycle" 1 "$rc"
expect_match "status --check: the limit that tripped" \
  "^CMBRIDGE WARNING - cycle 3 holds $held removals: $held > $((attached / 10)) = 10% of $attached attached" "$out"
out=$("$CMBRIDGE" -c "$RUN" sync --allow-deletes $((held - 1)) 2>&1); rc=$?
expect_eq "approving fewer: exit status" 1 "$rc"
expect_match "approving fewer: says so" "$((held - 1)) is below the $held removals cycle 3 held; nothing was approved" "$out"
lab_stats; expect_eq "approving fewer: no removal sent" 0 "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"
out=$("$CMBRIDGE" -c "$RUN" sync --allow-deletes "$held" 2>&1); rc=$?
expect_eq "approving: exit status" 0 "$rc"
expect_match "approving: says what was approved" "approved: up to $held removals; $held removed" "$out"
lab_stats; expect_eq "approving: the removals reached the tenant" "$held" "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"
"$CMBRIDGE" -c "$RUN" status --check > /dev/null; rc=$?
expect_eq "status --check: OK again" 0 "$rc"

say "a cycle the change guard held, released through the socket"
"$CMBRIDGE_LAB" faults "$LAB" --site --class-rows SMS_G_System_COMPUTER_SYSTEM=0 > /dev/null ||
  { echo "FAIL: faults"; exit 1; }
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "change-held cycle exit status" 1 "$rc"
expect_match "held: says how to approve the changes" 'held: .*cmbridge sync --allow-changes [0-9]+' "$out"
"$CMBRIDGE" -c "$RUN" status --json > "$TMP/status.json"
cheld=$(jget "$TMP/status.json" "d['changeGuard']['changesHeld']")
expect_eq "status: the change guard holds" True "$(jget "$TMP/status.json" "d['changeGuard']['holding']")"
out=$("$CMBRIDGE" -c "$RUN" status --check); rc=$?
expect_eq "status --check: WARNING for a change-held cycle" 1 "$rc"
expect_match "status --check: how to approve" "holds $cheld changes \\(change guard\\); approve with: cmbridge sync --allow-changes $cheld" "$out"
out=$("$CMBRIDGE" -c "$RUN" sync --allow-deletes 1000 2>&1); rc=$?
expect_eq "approving removals for a change-held cycle: refused" 1 "$rc"
expect_match "approving removals: names the change guard" "held $cheld changes \\(change guard\\) and 0 is below that; nothing was approved" "$out"
out=$("$CMBRIDGE" -c "$RUN" sync --allow-changes "$cheld" 2>&1); rc=$?
expect_eq "approving changes: exit status" 0 "$rc"
expect_match "approving changes: says what was approved" "approved: up to $cheld changes; $cheld changed" "$out"
"$CMBRIDGE_LAB" faults "$LAB" --site --clear > /dev/null || { echo "FAIL: faults --clear"; exit 1; }
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "the site's data back: the next cycle exit status" 0 "$rc"
"$CMBRIDGE" -c "$RUN" status --check > /dev/null; rc=$?
expect_eq "status --check: OK after the approval" 0 "$rc"

say "SIGUSR1: a delta cycle now"
n=$(grep -c 'run: cycle [0-9]* (delta)' "$TMP/run.out")
kill -USR1 "$pid"
for _ in $(seq 100); do [ "$(grep -c 'run: cycle [0-9]* (delta)' "$TMP/run.out")" -gt "$n" ] && break; sleep 0.1; done
expect_eq "one more delta cycle" $((n + 1)) "$(grep -c 'run: cycle [0-9]* (delta)' "$TMP/run.out")"

say "SIGHUP applies a new interval at once"
before=$(due_in nextDelta)
expect_eq "next delta about 900 s away" yes "$([ "$before" -gt 850 ] && [ "$before" -le 960 ] && echo yes || echo no)"
sed -i 's/^interval = 900$/interval = 600/' "$RUN"
kill -HUP "$pid"
wait_for "$TMP/run.out" "run: SIGHUP: configuration reloaded from $RUN"
after=$(due_in nextDelta)
expect_eq "next delta now about 600 s after the last cycle" yes "$([ "$after" -gt 500 ] && [ "$after" -le 640 ] && echo yes || echo no)"
expect_match "RELOADING with MONOTONIC_USEC, then READY" '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$' "$(cat "$TMP/notify.log")"
expect_eq "READY follows the RELOADING" READY=1 \
  "$(sed -n '/^RELOADING=1/,$p' "$TMP/notify.log" | grep -v '^WATCHDOG' | sed -n 2p | cut -d'|' -f1)"
out=$("$CMBRIDGE" -c "$RUN" reload 2>&1); rc=$?
expect_eq "reload through the socket: exit status" 0 "$rc"
expect_match "reload through the socket: says so" "reload: configuration reloaded from $RUN" "$out"

say "an invalid configuration on SIGHUP keeps the running one"
cp "$RUN" "$TMP/good.conf"
sed -i 's/^interval = 600$/interval = soon/' "$RUN"
kill -HUP "$pid"
wait_for "$TMP/run.out" "run: SIGHUP: keeping the running configuration"
expect_match "the refusal names the file, line and key" \
  "run: SIGHUP: keeping the running configuration: $RUN:[0-9]+: \[sync\] interval" "$(cat "$TMP/run.out")"
expect_eq "still running" yes "$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
kept=$(due_in nextDelta "$TMP/good.conf")
expect_eq "the running interval stays" yes "$([ "$kept" -gt 500 ] && [ "$kept" -le 640 ] && echo yes || echo no)"
out=$("$CMBRIDGE" -c "$TMP/good.conf" reload 2>&1); rc=$?
expect_eq "reload of the invalid file through the socket: exit status" 1 "$rc"
expect_match "reload of the invalid file: the reason" 'keeping the running configuration: .*\[sync\] interval' "$out"
cp "$TMP/good.conf" "$RUN"

say "STATUS and watchdog pings"
expect_eq "watchdog pings while it runs" yes "$([ "$(grep -c '^WATCHDOG=1$' "$TMP/notify.log")" -ge 5 ] && echo yes || echo no)"
expect_match "STATUS for a delta cycle" '^STATUS=delta sync' "$(cat "$TMP/notify.log")"

say "SIGTERM: STOPPING, exit 0, the socket removed"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"; rc=$?
expect_eq "exit status after SIGTERM" 0 "$rc"
expect_match "STOPPING was sent" '^STOPPING=1' "$(cat "$TMP/notify.log")"
expect_eq "the control socket is gone" no "$([ -e "$STATE/cmbridge.sock" ] && echo yes || echo no)"
out=$("$CMBRIDGE" -c "$RUN" sync --now 2>&1); rc=$?
expect_eq "without a daemon, sync acts directly" 0 "$rc"
expect_match "without a daemon: a cycle of its own" '^cycle [0-9]+ \(delta\) ok in' "$out"

finish
