#!/usr/bin/env bash
# The files generated from the option table and checked in are what the
# generator prints now, and the sample configuration is one an admin can use:
#   deploy/cmbridge.conf              = config_doc --template, byte for byte
#   deploy/man/cmbridge.conf.5.in     embeds config_doc --man between its markers
#   the template loads and only lacks the required keys; it names every option
#   of the table, each in its section; uncommented, its values are the defaults.
# (docs/config.md is test_config's.) Fix with tests/tools/update-config-doc.sh.
# Usage: generated.sh CONFIG_DOC CMBRIDGE
set -uo pipefail
CONFIG_DOC=$1
CMBRIDGE=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmbridge-gen.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
CHECKS=0
check() { # check WHAT COMMAND...: passes when COMMAND succeeds
  local what=$1; shift
  CHECKS=$((CHECKS + 1))
  if "$@"; then printf 'ok:   %s\n' "$what"; else printf 'FAIL: %s\n' "$what"; FAILS=$((FAILS + 1)); fi
}
fix="(run tests/tools/update-config-doc.sh)"

"$CONFIG_DOC" --template > "$TMP/template" || exit 1
"$CONFIG_DOC" --man > "$TMP/man" || exit 1
check "deploy/cmbridge.conf is the generated template $fix" \
  diff -u "$SRC/deploy/cmbridge.conf" "$TMP/template"
python3 - "$SRC/deploy/man/cmbridge.conf.5.in" > "$TMP/man.embedded" <<'PY'
import sys
doc = open(sys.argv[1]).read()
begin = doc.index("\n", doc.index('.\\" BEGIN generated')) + 1
sys.stdout.write(doc[begin:doc.index('.\\" END generated')])
PY
check "cmbridge.conf.5.in embeds the generated OPTIONS $fix" diff -u "$TMP/man.embedded" "$TMP/man"

# What ships is the checked-in file: the rest is about it.
TEMPLATE=$SRC/deploy/cmbridge.conf
# Loaded as it is, the template sets nothing: the first required key is missing.
cp "$TEMPLATE" "$TMP/as-is.conf"
out=$("$CMBRIDGE" -c "$TMP/as-is.conf" config 2>&1); rc=$?
check "the template as it is: exit 2" [ "$rc" = 2 ]
check "the template as it is: only [connector] site_code is missing" \
  [ "$out" = "cmbridge: $TMP/as-is.conf: [connector] site_code is required" ]

# The smallest configuration that loads, and everything `cmbridge config` prints for it.
printf 'a secret\n' > "$TMP/secret"
chmod 600 "$TMP/secret"
required=(connector.site_code=PS1 site.url=https://cm01.example/AdminService
  tenant.authority=https://login.example/tenant tenant.gateway_url=https://gateway.example
  tenant.client_id=app tenant.client_secret_file="$TMP/secret")
python3 - "$TEMPLATE" "$TMP/uncommented.conf" "$TMP/minimal.conf" "${required[@]}" <<'PY'
import re, sys
template, uncommented, minimal, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
want = {tuple(s.split("=", 1)[0].split(".")): s.split("=", 1)[1] for s in sets}
section, out, mini = None, [], {}
for line in open(template).read().splitlines():
    m = re.match(r"\[(\w+)\]$", line)
    if m:
        section = m.group(1)
    m = re.match(r"#(\w+) =(?: (.*))?$", line)
    if m and (section, m.group(1)) in want:
        line = "%s = %s" % (m.group(1), want[(section, m.group(1))])
    elif m and m.group(2) is not None:
        line = "%s = %s" % (m.group(1), m.group(2))   # a default, uncommented
    out.append(line)
open(uncommented, "w").write("\n".join(out) + "\n")
for (sec, key), val in want.items():
    mini.setdefault(sec, []).append("%s = %s" % (key, val))
open(minimal, "w").write("".join("[%s]\n%s\n" % (s, "\n".join(k)) for s, k in mini.items()))
PY
"$CMBRIDGE" -c "$TMP/minimal.conf" config > "$TMP/minimal.out" 2>&1 || { cat "$TMP/minimal.out"; exit 1; }

# Every option of the table, in its section, and no other: `config` prints them all.
keys() { awk '/^\[/ { s = $0 } /^#?[a-z_]+ =/ { sub(/^#/, ""); print s, $1 }' "$1"; }
check "the template names every option of the table in its section, in order" \
  diff -u <(keys "$TMP/minimal.out") <(keys "$TEMPLATE")

# Uncommented (each default set explicitly), it is the same configuration.
"$CMBRIDGE" -c "$TMP/uncommented.conf" config > "$TMP/uncommented.out" 2>&1
check "the template uncommented loads" [ $? = 0 ]
check "the template's values are the defaults" \
  diff -u <(tail -n +2 "$TMP/minimal.out") <(tail -n +2 "$TMP/uncommented.out")

echo "$((CHECKS - FAILS)) passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
