# Shared helpers for the integration tests (sourced, not run).
# Needs: CMBRIDGE, CMBRIDGE_LAB, CANNED_SERVER in the environment (ctest sets them).
set -uo pipefail  # no -e: the tests check exit statuses themselves

# require TOOL[:PACKAGE]...: a test that cannot run its point without a tool
# says so and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE),
# never as passed. PACKAGE (default TOOL) is the Debian package
# deploy/install-deps.sh installs it from.
require() {
  local t
  for t in "$@"; do
    if ! PATH=$PATH:/usr/sbin:/sbin command -v "${t%%:*}" > /dev/null 2>&1; then
      echo "SKIP: ${t%%:*} is not installed (Debian: ${t#*:}; deploy/install-deps.sh installs it)"
      exit 77
    fi
  done
}
require python3 curl

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmbridge-it.XXXXXX")
LAB="$TMP/lab"
FAILS=0
CHECKS=0

valgrind_check() {
  local f
  [ "${CMB_VALGRIND:-0}" = 1 ] || return 0
  for f in "$TMP"/valgrind/*.log; do
    [ -s "$f" ] || continue  # -q: a clean run (or one killed before its exit) logs nothing
    CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1))
    printf 'FAIL: valgrind memcheck, process %s:\n' "$(basename "$f" .log)"
    cat "$f"
  done
}

cleanup() {
  "$CMBRIDGE_LAB" down "$LAB" >/dev/null 2>&1 || true
  if [ -f "$TMP/canned.pid" ]; then kill "$(cat "$TMP/canned.pid")" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# CMB_VALGRIND=1 (the valgrind label, docs/reliability.md): every cmbridge
# run goes through valgrind memcheck, each process logging to its own file;
# finish() fails the test on any memcheck error or definite leak and shows
# the log. A memcheck error also makes that run exit 99. WAIT_SCALE
# multiplies how long a test polls for progress (cmbridge runs some 20
# times slower under memcheck); limits that are the test's point stay.
WAIT_SCALE=1
if [ "${CMB_VALGRIND:-0}" = 1 ]; then
  WAIT_SCALE=20
  require valgrind
  mkdir -p "$TMP/valgrind"
  printf '#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --log-file=%s/valgrind/%%p.log %s "$@"\n' \
    "$TMP" "$CMBRIDGE" > "$TMP/cmbridge-valgrind"
  chmod +x "$TMP/cmbridge-valgrind"
  CMBRIDGE="$TMP/cmbridge-valgrind"
fi

say() { printf '== %s\n' "$*"; }

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
  CHECKS=$((CHECKS + 1))
  if [ "$2" != "$3" ]; then
    printf 'FAIL: %s: expected [%s], got [%s]\n' "$1" "$2" "$3"
    FAILS=$((FAILS + 1))
  else
    printf 'ok:   %s = %s\n' "$1" "$3"
  fi
}

# expect_match WHAT REGEX TEXT
expect_match() {
  CHECKS=$((CHECKS + 1))
  # A here-string, not a pipe: grep -q stops at the first match, and under
  # pipefail the writer's SIGPIPE on a long text would read as no match.
  if ! grep -Eq -- "$2" <<< "$3"; then
    printf 'FAIL: %s: [%s] does not match /%s/\n' "$1" "$3" "$2"
    FAILS=$((FAILS + 1))
  else
    printf 'ok:   %s\n' "$1"
  fi
}

# jget FILE PYTHON-EXPR  (the JSON document is bound to d)
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

lab_init_up() { # lab_init_up [init args...]
  "$CMBRIDGE_LAB" init "$LAB" "$@" >/dev/null || { echo "FAIL: cmbridge-lab init"; exit 1; }
  "$CMBRIDGE_LAB" up "$LAB" --detach >/dev/null || { echo "FAIL: cmbridge-lab up"; cat "$LAB/lab.log"; exit 1; }
  CONF="$LAB/cmbridge.conf"
}

lab_stats() { "$CMBRIDGE_LAB" stats "$LAB" --json > "$TMP/stats.json" || { echo "FAIL: cmbridge-lab stats"; exit 1; }; }
cmb_status() { "$CMBRIDGE" -c "$CONF" status --json > "$TMP/status.json"; }

finish() {
  valgrind_check
  echo "$((CHECKS - FAILS)) passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}

# cycle_count FIELD: a count of the newest cycle in the last `cmb_status`.
cycle_count() { jget "$TMP/status.json" "d['cycles'][0]['counts']['$1']"; }
stat() { jget "$TMP/stats.json" "d$1"; }

# conf_with NAME 'section.key=value'...: a copy of $CONF with options set or replaced.
conf_with() {
  local out="$TMP/$1.conf"; shift
  python3 - "$CONF" "$out" "$@" <<'PY'
import sys, re
src, out, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = open(src).read().splitlines()
for s in sets:
    sk, val = s.split("=", 1)
    sec, key = sk.split(".", 1)
    # drop an existing key of that section
    cur, keep = None, []
    for l in lines:
        m = re.match(r"\s*\[(\w+)\]", l)
        if m: cur = m.group(1)
        if cur == sec and re.match(r"\s*%s\s*=" % re.escape(key), l): continue
        keep.append(l)
    lines = keep
    if not any(re.match(r"\s*\[%s\]" % sec, l) for l in lines):
        lines.append("[%s]" % sec)
    idx = max(i for i, l in enumerate(lines) if re.match(r"\s*\[%s\]" % sec, l))
    lines.insert(idx + 1, "%s = %s" % (key, val))
open(out, "w").write("\n".join(lines) + "\n")
PY
  chmod 600 "$out"
  echo "$out"
}

graph_token() {
  local authority client_id
  authority=$(sed -n 's/^authority *= *//p' "$CONF")
  client_id=$(sed -n 's/^client_id *= *//p' "$CONF")
  curl -sS --cacert "$LAB/ca.pem" -d grant_type=client_credentials --data-urlencode "client_id=$client_id" \
    --data-urlencode "client_secret@$LAB/client-secret" --data-urlencode "scope=https://graph.microsoft.com/.default" \
    "$authority/oauth2/v2.0/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# graph_walk PATH TOP: follows @odata.nextLink from {graph_url}/PATH?$top=TOP&$count=true,
# saving each page as $TMP/pageN.json and every id in $TMP/ids.txt; sets PAGES.
graph_walk() {
  local token url
  token=$(graph_token)
  url="$(sed -n 's/^graph_url *= *//p' "$CONF")/$1?\$top=$2&\$count=true"
  PAGES=0
  rm -f "$TMP"/page*.json
  : > "$TMP/ids.txt"
  while [ -n "$url" ]; do
    PAGES=$((PAGES + 1))
    curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $token" "$url" > "$TMP/page$PAGES.json"
    jget "$TMP/page$PAGES.json" "'\n'.join(x['id'] for x in d['value'])" >> "$TMP/ids.txt"
    url=$(jget "$TMP/page$PAGES.json" "d.get('@odata.nextLink','')")
  done
}
