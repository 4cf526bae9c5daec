#!/usr/bin/env bash
# The command line as a new admin meets it: --help and COMMAND --help need
# no configuration; a mistyped command or option gets one error line each,
# with the nearest real one; -c and -v may follow the command; a missing
# default configuration points at `config --template`, whose text is the
# packaged sample (deploy/cmbridge.conf) byte for byte.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# The default configuration path must not exist for the "missing default" check.
[ -e /etc/cmbridge/cmbridge.conf ] && { echo "SKIP: /etc/cmbridge/cmbridge.conf exists on this machine"; exit 77; }

run() { out=$("$CMBRIDGE" "$@" 2> "$TMP/err"); rc=$?; err=$(cat "$TMP/err"); }

say "--help and COMMAND --help without a configuration"
run --help
expect_eq "--help: exit 0" 0 "$rc"
expect_match "--help: lists the commands" '^  sync \[--now\]' "$out"
expect_eq "--help: nothing on stderr" "" "$err"
for c in sync diff status quarantine check config token map relay run reload actions; do
  run "$c" --help
  expect_eq "$c --help: exit 0" 0 "$rc"
  expect_match "$c --help: its usage line" "^usage: cmbridge \[-c FILE\] \[-v\] $c( |$)" "$out"
  expect_eq "$c --help: nothing on stderr" "" "$err"
done
run -c /nonexistent/cmbridge.conf status -h
expect_eq "status -h with a missing -c file: exit 0" 0 "$rc"
expect_match "status -h: status's usage" '^usage: cmbridge \[-c FILE\] \[-v\] status \[--json\] \[--check\]$' "$out"

say "mistakes: one line each, with the nearest"
run stauts
expect_eq "unknown command: exit 2" 2 "$rc"
expect_eq "unknown command: suggests" "cmbridge: unknown command 'stauts' (did you mean 'status'? see cmbridge --help)" "$err"
run frobnicate
expect_eq "far from any command: no suggestion" "cmbridge: unknown command 'frobnicate' (see cmbridge --help)" "$err"
run -c /nonexistent/cmbridge.conf sync --ful --dry-rn --allow-delete=3
expect_eq "unknown options: exit 2" 2 "$rc"
expect_eq "unknown options: one line each, then the usage" \
"cmbridge: sync: unknown option '--ful' (did you mean --full?)
cmbridge: sync: unknown option '--dry-rn' (did you mean --dry-run?)
cmbridge: sync: unknown option '--allow-delete' (did you mean --allow-deletes?)
cmbridge: usage: cmbridge sync [--now] [--full] [--dry-run] [--allow-deletes N] [--allow-changes N]" "$err"
run status --jsno
expect_eq "status --jsno" "cmbridge: status: unknown option '--jsno' (did you mean --json?)
cmbridge: usage: cmbridge status [--json] [--check]" "$err"

say "a missing default configuration points at the template"
run status
expect_eq "missing default: exit 2" 2 "$rc"
expect_eq "missing default: where to start" \
  "cmbridge: /etc/cmbridge/cmbridge.conf: cannot open: No such file or directory; start from the commented sample: cmbridge config --template > /etc/cmbridge/cmbridge.conf" "$err"
run -c "$TMP/none.conf" status
expect_eq "a missing -c file: just the error" "cmbridge: $TMP/none.conf: cannot open: No such file or directory" "$err"

say "config --template is the packaged sample and loads"
run config --template
expect_eq "config --template: exit 0" 0 "$rc"
printf '%s\n' "$out" > "$TMP/template.conf"
expect_eq "config --template is deploy/cmbridge.conf" "" "$(diff "$SRC/deploy/cmbridge.conf" "$TMP/template.conf")"
# The five required keys and a credential set, every other line as shipped.
printf 's3cret\n' > "$TMP/secret"; chmod 600 "$TMP/secret"
sed -i -e 's|^#site_code =$|site_code = PS1|' -e 's|^#url =$|url = https://site.example/AdminService|' \
  -e 's|^#authority =$|authority = https://login.example/tenant|' -e 's|^#gateway_url =$|gateway_url = https://gw.example|' \
  -e 's|^#client_id =$|client_id = 00000000-0000-0000-0000-000000000001|' \
  -e "s|^#client_secret_file =\$|client_secret_file = $TMP/secret|" "$TMP/template.conf"
expect_eq "the template: six lines set" 6 "$(diff "$SRC/deploy/cmbridge.conf" "$TMP/template.conf" | grep -c '^>')"
run -c "$TMP/template.conf" config
expect_eq "the template with the required keys set: config loads it" 0 "$rc"
expect_match "config shows the defaults it took" '^interval = 900$' "$out"

say "-c and -v after the command"
lab_init_up --devices 20 --seed 3
run status --json -c "$CONF"
expect_eq "status --json -c FILE: exit 0" 0 "$rc"
expect_eq "status --json -c FILE: the lab's state (none yet)" none "$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
run sync --config="$CONF" -v
expect_eq "sync --config=FILE -v: exit 0" 0 "$rc"
expect_match "-v after the command: debug lines" ' debug ' "$err"
run sync -c
expect_eq "-c without a file: exit 2" 2 "$rc"
expect_eq "-c without a file: says so" "cmbridge: sync: -c takes the configuration file's path" "$err"
finish
