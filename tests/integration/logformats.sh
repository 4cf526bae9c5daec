#!/usr/bin/env bash
# [log] format: a cmtrace log read back line by line into its fields (the
# format CMTrace and OneTrace read), rolled over to .lo_ at [log] max_size
# and created 0640; journald's <N> priority prefixes without a timestamp,
# chosen by itself when stderr is the journal (JOURNAL_STREAM) and when
# asked for; json, one object a line. Every line of a cycle carries its id.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 300 --seed 9

# A CMTrace line: <![LOG[message]LOG]!><time="HH:MM:SS.mmm+000" date="MM-DD-YYYY" component=".." context=""
# type="1|2|3" thread="N" file="name.c:N">; every line of the file must parse, and its fields make sense.
check_cmtrace() { # FILE -> "lines components types cycle-lines-with-id files-ok dates-ok"
  python3 - "$1" <<'PY'
import re, sys, time
rx = re.compile(r'^<!\[LOG\[(?P<msg>.*)\]LOG\]!><time="(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)\.(?P<ms>\d{3})\+000" '
                r'date="(?P<mo>\d\d)-(?P<d>\d\d)-(?P<y>\d{4})" component="(?P<comp>[a-z]+)" context="" '
                r'type="(?P<type>[123])" thread="(?P<thread>\d+)" file="(?P<file>[A-Za-z_]+\.c):(?P<line>\d+)">$')
today = time.strftime("%m-%d-%Y", time.gmtime())
lines = open(sys.argv[1]).read().splitlines()
bad = [l for l in lines if not rx.match(l)]
if bad:
    print("unparsed:", bad[0]); sys.exit(0)
ms = [rx.match(l) for l in lines]
comps = sorted({m["comp"] for m in ms})
types = sorted({m["type"] for m in ms})
cycle = [m for m in ms if "sync of site" in m["msg"] or "sync ok in" in m["msg"] or "site read:" in m["msg"]]
with_id = all(m["msg"].startswith("[cycle-") for m in cycle)
files = all(int(m["line"]) > 0 for m in ms)
dates = all(f'{m["mo"]}-{m["d"]}-{m["y"]}' == today and int(m["h"]) < 24 for m in ms)
print(len(lines) > 0, ",".join(comps), ",".join(types), len(cycle) > 0 and with_id, files, dates)
PY
}

say "cmtrace: every line parses into its fields"
CT=$(conf_with cmtrace log.file="$TMP/cmbridge.log" log.format=cmtrace)
"$CMBRIDGE" -c "$CT" sync > /dev/null 2> "$TMP/ct.err"; rc=$?
expect_eq "sync exit status" 0 "$rc"
expect_eq "nothing on stderr" 0 "$(wc -c < "$TMP/ct.err")"
expect_eq "lines, components, types, cycle ids, file:line, dates" "True sync 1 True True True" \
  "$(check_cmtrace "$TMP/cmbridge.log")"
expect_match "the engine's lines name their file" 'file="sync\.c:[0-9]+">$' "$(cat "$TMP/cmbridge.log")"
expect_eq "the log file is created 0640" 640 "$(command stat -c %a "$TMP/cmbridge.log")"

say "cmtrace: a warning is type 2, an error type 3"
BAD=$(conf_with bad log.file="$TMP/bad.log" log.format=cmtrace site.url=https://127.0.0.1:9/AdminService \
  sync.max_attempts=1 sync.retry_budget=0)
"$CMBRIDGE" -c "$BAD" sync > /dev/null 2>&1
expect_match "an error line is type 3" 'type="3"' "$(cat "$TMP/bad.log")"
expect_eq "and still parses" "True" "$(check_cmtrace "$TMP/bad.log" | cut -d' ' -f1)"

say "max_size: the log rolls over to .lo_"
RO=$(conf_with roll log.file="$TMP/roll.log" log.format=cmtrace log.max_size=1500)
for _ in 1 2 3; do "$CMBRIDGE" -c "$RO" sync > /dev/null 2>&1; done
expect_eq "the history file exists" yes "$([ -f "$TMP/roll.lo_" ] && echo yes || echo no)"
expect_eq "the current file stays under max_size" yes "$([ "$(wc -c < "$TMP/roll.log")" -le 1500 ] && echo yes || echo no)"
expect_eq "the history file parses" "True" "$(check_cmtrace "$TMP/roll.lo_" | cut -d' ' -f1)"
expect_eq "the current file parses" "True" "$(check_cmtrace "$TMP/roll.log" | cut -d' ' -f1)"

say "journald: <N> priority prefixes and no timestamp when stderr is the journal"
: > "$TMP/journal.err"
JOURNAL_STREAM=$(command stat -L -c '%d:%i' "$TMP/journal.err") "$CMBRIDGE" -c "$CONF" sync > /dev/null 2>> "$TMP/journal.err"
expect_eq "every line has a priority prefix" 0 "$(grep -cvE '^<[3467]>' "$TMP/journal.err")"
expect_match "info lines are <6> with the cycle id" '^<6>\[cycle-[0-9]+\] delta sync of site PS1 started$' "$(cat "$TMP/journal.err")"
expect_eq "no timestamp of our own" 0 "$(grep -cE '^<[0-9]>[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TMP/journal.err")"
JOURNAL_STREAM=1:1 "$CMBRIDGE" -c "$CONF" sync > /dev/null 2> "$TMP/notjournal.err"
expect_eq "another stream keeps the text format" 0 "$(grep -cE '^<[0-9]>' "$TMP/notjournal.err")"
JR=$(conf_with journal log.format=journal)
"$CMBRIDGE" -c "$JR" sync > /dev/null 2> "$TMP/asked.err"
expect_eq "format = journal asks for it" 0 "$(grep -cvE '^<[3467]>' "$TMP/asked.err")"
BADJ=$(conf_with badj site.url=https://127.0.0.1:9/AdminService sync.max_attempts=1 sync.retry_budget=0)
: > "$TMP/bad.err"
JOURNAL_STREAM=$(command stat -L -c '%d:%i' "$TMP/bad.err") "$CMBRIDGE" -c "$BADJ" sync > /dev/null 2>> "$TMP/bad.err"
expect_match "a failed command is logged <3>" '^<3>sync: reading the site' "$(cat "$TMP/bad.err")"
expect_eq "and only there, not a second time unprefixed" 0 "$(grep -cvE '^<[3467]>' "$TMP/bad.err")"

say "json: one object a line"
JS=$(conf_with json log.file="$TMP/json.log" log.format=json)
"$CMBRIDGE" -c "$JS" sync > /dev/null 2>&1
expect_eq "every line is an object with its fields" True "$(python3 - "$TMP/json.log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(bool(rows) and all(set(r) == {"time", "level", "component", "cid", "file", "message"} for r in rows)
      and any(r["cid"] and r["cid"].startswith("cycle-") and r["component"] == "sync" for r in rows))
PY
)"

finish
