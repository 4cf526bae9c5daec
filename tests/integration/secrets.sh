#!/usr/bin/env bash
# Secrets never reach any output: check, sync and status against the lab at
# debug level (config file and -v), to stderr and to a log file, and a run
# with a refused secret. None of the client secret, the site password, the
# Basic auth value (base64 of user:password) or any access token (JWT
# pattern) may appear; controls show each grep finds its needle when present.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 300 --seed 11 --page-size 100

SECRET=$(cat "$LAB/client-secret")
PASSWORD=$(cat "$LAB/site-password")
USERNAME=$(sed -n 's/^username *= *//p' "$CONF")
BASIC=$(printf '%s:%s' "$USERNAME" "$PASSWORD" | base64 -w0)
JWT_RE='eyJ[A-Za-z0-9_-]+\.eyJ'
OUT="$TMP/out"
mkdir -p "$OUT"

# The connector at debug level, logging to stderr (first) and to a file (second).
sed -e 's/^level = .*/level = debug/' "$CONF" > "$TMP/debug.conf"
sed -e "s#^level = .*#level = debug\nfile = $OUT/cmbridge.log#" "$CONF" > "$TMP/file.conf"
chmod 600 "$TMP/debug.conf" "$TMP/file.conf"
expect_eq "log file configured" 1 "$(grep -c "^file = $OUT/cmbridge.log" "$TMP/file.conf")"

say "runs at debug level"
n=0
run() { # run NAME ARGS...: stdout and stderr of one connector run kept under $OUT
  local name=$1; shift
  "$CMBRIDGE" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  echo $? > "$OUT/$name.rc"
  n=$((n + 1))
}
run check-v -v -c "$TMP/debug.conf" check
run sync-v -v -c "$TMP/debug.conf" sync
run sync-full-v -v -c "$TMP/debug.conf" sync --full
run config -c "$TMP/debug.conf" config
run check-file -c "$TMP/file.conf" check
"$CMBRIDGE_LAB" mutate "$LAB" --change 20 --add 5 --delete 2 > /dev/null
run sync-file -c "$TMP/file.conf" sync
run status-v -v -c "$TMP/debug.conf" status
run status-json -c "$TMP/debug.conf" status --json
expect_eq "check exit status" 0 "$(cat "$OUT/check-v.rc")"
expect_eq "sync exit status" 0 "$(cat "$OUT/sync-v.rc")"
expect_eq "full sync exit status" 0 "$(cat "$OUT/sync-full-v.rc")"
expect_eq "delta sync (log file) exit status" 0 "$(cat "$OUT/sync-file.rc")"
CHECKS=$((CHECKS + 1))
if [ -s "$OUT/cmbridge.log" ] && grep -q debug "$OUT/cmbridge.log" && grep -q debug "$OUT/sync-v.err"; then
  echo "ok:   debug lines were written (stderr and log file)"
else
  echo "FAIL: expected debug lines in $OUT/sync-v.err and $OUT/cmbridge.log"; FAILS=$((FAILS + 1))
fi

say "a refused client secret: the error names the AADSTS code, never the secret"
WRONG="wrong-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
printf '%s' "$WRONG" > "$TMP/wrong-secret"; chmod 600 "$TMP/wrong-secret"
sed -e "s#^client_secret_file = .*#client_secret_file = $TMP/wrong-secret#" "$TMP/debug.conf" > "$TMP/wrong.conf"
chmod 600 "$TMP/wrong.conf"
run wrong-check -v -c "$TMP/wrong.conf" check
run wrong-sync -v -c "$TMP/wrong.conf" sync
expect_match "refused secret: AADSTS code reported" "AADSTS7000215" "$(cat "$OUT/wrong-check.err" "$OUT/wrong-check.out")"

# count_fixed NEEDLE FILE...: occurrences of a fixed string
count_fixed() { local nd=$1; shift; cat "$@" | grep -aoF -- "$nd" | wc -l; }
count_re() { local re=$1; shift; cat "$@" | grep -aoE -- "$re" | wc -l; }

say "no secret in any of $n runs' output, the log file or the state"
files=("$OUT"/*.out "$OUT"/*.err "$OUT/cmbridge.log")
state_files=()
while IFS= read -r -d '' f; do state_files+=("$f"); done < <(find "$LAB/state" -type f -print0)
expect_eq "client secret in output" 0 "$(count_fixed "$SECRET" "${files[@]}")"
expect_eq "refused secret in output" 0 "$(count_fixed "$WRONG" "${files[@]}")"
expect_eq "site password in output" 0 "$(count_fixed "$PASSWORD" "${files[@]}")"
expect_eq "Basic auth value in output" 0 "$(count_fixed "$BASIC" "${files[@]}")"
expect_eq "access tokens (JWT) in output" 0 "$(count_re "$JWT_RE" "${files[@]}")"
expect_eq "client secret in the state" 0 "$(count_fixed "$SECRET" "${state_files[@]}")"
expect_eq "site password in the state" 0 "$(count_fixed "$PASSWORD" "${state_files[@]}")"
expect_eq "access tokens (JWT) in the state" 0 "$(count_re "$JWT_RE" "${state_files[@]}")"

say "controls: each grep finds its needle where it is"
TENANT_URL=$(sed -n 's/^authority *= *//p' "$CONF")
CLIENT_ID=$(sed -n 's/^client_id *= *//p' "$CONF")
curl -sS --cacert "$LAB/ca.pem" -d grant_type=client_credentials --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "client_secret@$LAB/client-secret" --data-urlencode "scope=https://graph.microsoft.com/.default" \
  "$TENANT_URL/oauth2/v2.0/token" > "$TMP/token.json"
printf 'Authorization: Basic %s\n' "$BASIC" > "$TMP/basic.txt"
expect_eq "control: secret found in the secret file" 1 "$(count_fixed "$SECRET" "$LAB/client-secret")"
expect_eq "control: password found in the password file" 1 "$(count_fixed "$PASSWORD" "$LAB/site-password")"
expect_eq "control: Basic value found in a header line" 1 "$(count_fixed "$BASIC" "$TMP/basic.txt")"
expect_eq "control: a token endpoint reply matches the JWT pattern" 1 "$(count_re "$JWT_RE" "$TMP/token.json")"
decoded=no; [ "$(printf '%s' "$BASIC" | base64 -d)" = "$USERNAME:$PASSWORD" ] && decoded=yes
expect_eq "control: the Basic value decodes to user:password" yes "$decoded"
CHECKS=$((CHECKS + 1))
if [ -n "$SECRET" ] && [ -n "$PASSWORD" ] && [ ${#SECRET} -ge 16 ]; then
  echo "ok:   needles are non-empty (secret ${#SECRET} characters)"
else
  echo "FAIL: empty or short needles"; FAILS=$((FAILS + 1))
fi

finish
