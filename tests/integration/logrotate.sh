#!/usr/bin/env bash
# logrotate and `cmbridge run`: [log] file is reopened on SIGHUP, so after
# the file is moved away and the signal sent (what logrotate's postrotate
# does) new lines go to a new file at the configured path and none to the
# moved one - also when the reload itself is refused. A -v given on the
# command line keeps debug lines coming across reloads although [log]
# level says info.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 100 --seed 4
LOG="$TMP/cmbridge.log"
# A one-second long poll: the relay's requests give a steady stream of debug lines.
RUN=$(conf_with run actions.poll_wait=1 log.file="$LOG" log.level=info)
"$CMBRIDGE" -v -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!

# wait_for FILE REGEX: up to 10 s for a line matching REGEX in FILE.
wait_for() {
  for _ in $(seq 100); do grep -Eq -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# grows FILE LINES: up to 10 s for FILE to have more than LINES lines.
grows() {
  for _ in $(seq 100); do [ "$(wc -l < "$1")" -gt "$2" ] && return 0; sleep 0.1; done
  return 1
}

say "run writes its log to [log] file"
wait_for "$LOG" "run: cycle 1 .* ok"
expect_match "the first cycle is logged in the file" "run: cycle 1 \(full\) ok" "$(cat "$LOG")"
expect_eq "nothing written to stderr" 0 "$(wc -c < "$TMP/run.out")"
expect_match "-v: debug lines although [log] level = info" "debug \[relay\] tenant: GET .*/Notification" "$(cat "$LOG")"

say "logrotate: the file is moved, then SIGHUP"
mv "$LOG" "$LOG.1"
kill -HUP "$pid"
wait_for "$LOG" "run: SIGHUP: configuration reloaded"
expect_match "the reload is logged in a new file at the configured path" \
  "run: SIGHUP: configuration reloaded from $RUN" "$(cat "$LOG" 2>/dev/null)"
moved=$(wc -c < "$LOG.1")
lines=$(wc -l < "$LOG")
grows "$LOG" $((lines + 5))
expect_eq "new lines keep coming in the new file" yes "$([ "$(wc -l < "$LOG")" -gt $((lines + 5)) ] && echo yes || echo no)"
expect_eq "none reach the moved file after the signal" "$moved" "$(wc -c < "$LOG.1")"
expect_eq "the moved file has no line about the reload" 0 "$(grep -c 'SIGHUP' "$LOG.1")"
expect_match "-v still gives debug lines after the reload" "debug \[relay\] tenant: GET .*/Notification" "$(tail -n +"$((lines + 1))" "$LOG")"

say "a refused reload reopens the log file too"
mv "$LOG" "$LOG.2"
sed -i 's/^site_code = .*/site_code = XYZ/' "$RUN"
kill -HUP "$pid"
wait_for "$LOG" "keeping the running configuration"
expect_match "the refusal names the option, in the new file" "keeping the running configuration: .*site_code" \
  "$(cat "$LOG" 2>/dev/null)"
moved=$(wc -c < "$LOG.2")
lines=$(wc -l < "$LOG")
grows "$LOG" $((lines + 5))
expect_eq "none reach the second moved file" "$moved" "$(wc -c < "$LOG.2")"
expect_eq "the first moved file is left alone" 0 "$(grep -c 'keeping the running' "$LOG.1")"

kill -TERM "$pid"
wait "$pid"; rc=$?
expect_eq "exit status after SIGTERM" 0 "$rc"
expect_match "the stop is logged in the current file" "run: stopping on request" "$(tail -3 "$LOG")"
finish
