#!/usr/bin/env bash
# [log] format: a cmtrace log read back line by line into its fields (the
# format CMTrace and OneTrace read), rolled over to .lo_ at [log] max_size
# and created 0640; journald's <N> priority prefixes without a timestamp,
# chosen by itself when stderr is the journal (JOURNAL_STREAM) and when
# asked for; json, one object a line. Every line of a cycle carries its id,
# and every line of one relayed action its own (action-<id>), in cmtrace
# and json alike.
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

say "relay: every line of one action's handling carries its correlation id"
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || echo "FAIL: sync before the actions"
"$CMBRIDGE_LAB" trigger "$LAB" --many 3 refreshMachinePolicy --devices 3 > /dev/null || echo "FAIL: trigger"
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/lab-actions.json"
AID=$(jget "$TMP/lab-actions.json" "sorted(a['id'] for a in d['value'])[0]")
RT=$(conf_with relayct log.file="$TMP/relay.log" log.format=cmtrace actions.batch_window=0 actions.status_poll_interval=1)
timeout 120 "$CMBRIDGE" -c "$RT" relay --once > /dev/null 2>&1; rc=$?
expect_eq "relay --once exit status" 0 "$rc"
expect_eq "the relay's cmtrace log parses" "True" "$(check_cmtrace "$TMP/relay.log" | cut -d' ' -f1)"
expect_eq "every line naming the action carries its id, and only those" "0 0" \
  "$(grep -F "relay: action $AID:" "$TMP/relay.log" | grep -cvF "[action-$AID] ") $(grep -F "[action-$AID] " "$TMP/relay.log" | grep -cvF "relay: action $AID:")"
row=$(grep -F "[action-$AID] " "$TMP/relay.log" | sed -n 's/.*journaled in row \([0-9]*\):.*/\1/p')
expect_eq "its handling, step by step (received, journaled, delivered, final)" \
  "received journaled delivered final" \
  "$(grep -F "[action-$AID] " "$TMP/relay.log" | sed -E 's/.*relay: action [^:]*: //; s/^"refreshMachinePolicy" for .* received, .*/received/;
      s/^journaled in row [0-9]+: DownloadComputerPolicy for 3 devices.*/journaled/;
      s/^delivered to the site: OperationID [0-9]+ \(journal row [0-9]+\).*/delivered/; s/^(done|failed, errorCode [0-9]+) \(journal row [0-9]+\).*/final/' | tr '\n' ' ' | sed 's/ $//')"
expect_match "the operation's lines carry the journal row's id" \
  "^<!\[LOG\[\[journal-$row\] relay: journal row $row: DownloadComputerPolicy \(Type 8\) for 3 devices, OperationID [0-9]+\]LOG\]!><.* component=\"relay\"" \
  "$(grep -F "[journal-$row] " "$TMP/relay.log")"
"$CMBRIDGE_LAB" trigger "$LAB" --many 1 quickScan --devices 1 > /dev/null || echo "FAIL: trigger"
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/lab-actions2.json"
AID2=$(jget "$TMP/lab-actions2.json" "[a['id'] for a in d['value'] if a['action'] == 'quickScan'][0]")
RJ=$(conf_with relayjs log.file="$TMP/relay.json" log.format=json actions.batch_window=0 actions.status_poll_interval=1)
timeout 120 "$CMBRIDGE" -c "$RJ" relay --once > /dev/null 2>&1
expect_eq "json: the action's lines have its cid, received to final" "True 4" "$(python3 - "$TMP/relay.json" "$AID2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mine = [r for r in rows if ("relay: action %s:" % sys.argv[2]) in r["message"]]
print(all(r["cid"] == "action-" + sys.argv[2] and r["component"] == "relay" for r in mine), len(mine))
PY
)"

finish
