# Shared helpers for the integration tests (sourced, not run).
# Needs: CMBRIDGE, CMBRIDGE_LAB, CANNED_SERVER in the environment (ctest sets them).
set -uo pipefail  # no -e: the tests check exit statuses themselves

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmbridge-it.XXXXXX")
LAB="$TMP/lab"
FAILS=0
CHECKS=0

cleanup() {
  "$CMBRIDGE_LAB" down "$LAB" >/dev/null 2>&1 || true
  if [ -f "$TMP/canned.pid" ]; then kill "$(cat "$TMP/canned.pid")" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

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
  if ! printf '%s' "$3" | grep -Eq -- "$2"; then
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
  echo "$((CHECKS - FAILS)) passed, $FAILS failed"
  [ "$FAILS" -eq 0 ]
}
