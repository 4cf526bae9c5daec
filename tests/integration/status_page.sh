#!/usr/bin/env bash
# The status page in a browser: headless Chromium loads / of [metrics]
# listen while `cmbridge run` holds a cycle (the deletion guard), and what
# the rendered DOM shows is what `status --json` says: devices attached,
# the last cycle's id, kind and status, quarantine, both guards, the
# daemon's pid and next runs. No script runs on it (none is there, and
# the CSP forbids any). /metrics and /healthz: metrics.sh.
. "$(dirname "$0")/lib.sh"
require chromium

lab_init_up --devices 200 --seed 5
RUN=$(conf_with run metrics.listen=[::1]:0 actions.poll_wait=1 sync.interval=900)
"$CMBRIDGE" -c "$RUN" run > "$TMP/run.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; cleanup' EXIT
for _ in $(seq 300); do grep -q 'run: cycle 1 (full) ok' "$TMP/run.out" && break; sleep 0.1; done
PORT=$(sed -n 's|.*metrics: serving http://\[::1\]:\([0-9]*\)/ .*|\1|p' "$TMP/run.out")
expect_match "the listener serves on [::1]" '^[0-9]+$' "$PORT"

say "a cycle the deletion guard holds"
"$CMBRIDGE_LAB" mutate "$LAB" --delete 40 > /dev/null || { echo "FAIL: mutate"; exit 1; }
"$CMBRIDGE" -c "$RUN" sync --now > /dev/null 2>&1; rc=$?
expect_eq "the held cycle: exit status" 1 "$rc"
cmb_status
expect_eq "status: the guard holds" True "$(jget "$TMP/status.json" "d['deletionGuard']['holding']")"

say "the page as Chromium renders it"
timeout 60 chromium --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir="$TMP/chromium" \
  --dump-dom "http://[::1]:$PORT/" > "$TMP/dom.html" 2> "$TMP/chromium.err"
expect_eq "chromium exit status" 0 "$?"
# dom FIELD...: the text of the elements with those ids, then of the first cycle row's cells.
python3 - "$TMP/dom.html" > "$TMP/dom.json" <<'PY'
import html.parser, json, sys
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.ids = {}; s.stack = []; s.cells = []; s.scripts = 0; s.meta = None
    def handle_starttag(s, tag, attrs):
        a = dict(attrs)
        if tag == "script": s.scripts += 1
        if tag == "meta" and a.get("http-equiv") == "refresh": s.meta = a.get("content")
        if tag in ("td", "strong", "span", "p", "h1"):
            s.stack.append([a.get("id"), a.get("class"), ""])
    def handle_endtag(s, tag):
        if tag in ("td", "strong", "span", "p", "h1") and s.stack:
            i, c, t = s.stack.pop()
            if i: s.ids[i] = t
            if c and c.startswith("cycle-"): s.cells.append((c, t))
            if s.stack: s.stack[-1][2] += t
    def handle_data(s, d):
        if s.stack: s.stack[-1][2] += d
p = P(); p.feed(open(sys.argv[1]).read())
first = {}
for c, t in p.cells:
    first.setdefault(c, t)
json.dump({"ids": p.ids, "first": first, "scripts": p.scripts, "meta": p.meta}, sys.stdout)
PY
dom() { jget "$TMP/dom.json" "d$1"; }
st() { jget "$TMP/status.json" "d$1"; }
expect_eq "devices attached" "$(st "['devicesAttached']")" "$(dom "['ids']['devices-attached']")"
expect_eq "last cycle id" "$(st "['cycles'][0]['id']")" "$(dom "['first']['cycle-id']")"
expect_eq "last cycle kind" "$(st "['cycles'][0]['kind']")" "$(dom "['first']['cycle-kind']")"
expect_eq "last cycle status" deletion-threshold-exceeded "$(dom "['first']['cycle-status']")"
expect_eq "last cycle status = status" "$(st "['cycles'][0]['status']")" "$(dom "['first']['cycle-status']")"
expect_eq "quarantined" "$(st "['quarantined']")" "$(dom "['ids']['quarantined']")"
expect_eq "quarantined duplicates" "$(st "['quarantineByKind']['duplicate']")" "$(dom "['ids']['quarantine-duplicate']")"
expect_eq "uploads in flight" "$(st "['inFlight']")" "$(dom "['ids']['in-flight']")"
expect_eq "deletion guard" \
  "$(jget "$TMP/status.json" "'holding %d removals of cycle %d: %s; approve with: cmbridge sync --allow-deletes %d' % (d['deletionGuard']['removalsHeld'], d['deletionGuard']['cycle'], d['deletionGuard']['limit'], d['deletionGuard']['removalsHeld'])")" \
  "$(dom "['ids']['deletion-guard']")"
expect_eq "change guard" \
  "$(jget "$TMP/status.json" "'holding nothing (limits: %d changes, %d%%)' % (d['changeGuard']['changeThreshold'], d['changeGuard']['changeThresholdPercent'])")" \
  "$(dom "['ids']['change-guard']")"
expect_eq "the check: WARNING" WARNING "$(dom "['ids']['check']")"
expect_eq "the daemon's pid" "$(st "['daemon']['pid']")" "$(dom "['ids']['daemon-pid']")"
expect_eq "next delta" "$(st "['daemon']['nextDelta']")" "$(dom "['ids']['next-delta']")"
expect_eq "next full" "$(st "['daemon']['nextFull']")" "$(dom "['ids']['next-full']")"
expect_eq "version" "$(st "['version']")" "$(dom "['ids']['version']")"
expect_eq "actions pending" "$(st "['actions']['pending']")" "$(dom "['ids']['actions-pending']")"
expect_eq "no script in the DOM" 0 "$(dom "['scripts']")"
expect_eq "it reloads itself" 30 "$(dom "['meta']")"

kill -TERM "$pid"; wait "$pid"
finish
