#!/usr/bin/env bash
# [site] auth = negotiate (SPNEGO/Kerberos through libcurl's GSS-API) against
# the lab site accepting with MIT GSS-API, and a private MIT KDC started by
# lab/tests/kdc.sh: a sync authenticated from a client keytab
# (KRB5_CLIENT_KTNAME: no password on disk), a sync from a ticket in the
# ccache (kinit), and a clear failure with no ticket at all.
. "$(dirname "$0")/lib.sh"
KDC_SH="$(cd "$(dirname "$0")/../../lab/tests" && pwd)/kdc.sh"
KDC="$TMP/kdc"

require krb5kdc:krb5-kdc kdb5_util:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user
trap '"$KDC_SH" stop "$KDC" > /dev/null 2>&1; cleanup' EXIT

lab_init_up --devices 80 --seed 3 --page-size 40
"$KDC_SH" start "$KDC" > "$TMP/kdc.env" 2> "$TMP/kdc.err"
rc=$?
if [ "$rc" -eq 77 ]; then echo "SKIP: $(cat "$TMP/kdc.err")"; exit 77; fi
[ "$rc" -eq 0 ] || { echo "FAIL: kdc.sh start"; cat "$TMP/kdc.err"; exit 1; }
while IFS='=' read -r k v; do [ -n "$k" ] && export "KDC_$k=$v"; done < "$TMP/kdc.env"

# The lab accepts for HTTP/localhost@REALM: restart it with negotiate and the acceptor keytab.
"$CMBRIDGE_LAB" down "$LAB" > /dev/null
sed -i -e 's/^auth = .*/auth = negotiate/' "$LAB/lab.conf"
sed -i "0,/^\[site\]/s##[site]\nkeytab = $KDC_KRB5_KTNAME#" "$LAB/lab.conf"
KRB5_CONFIG=$KDC_KRB5_CONFIG KRB5RCACHETYPE=none "$CMBRIDGE_LAB" up "$LAB" --detach > /dev/null ||
  { echo "FAIL: lab up with negotiate"; cat "$LAB/lab.log"; exit 1; }
SITE_URL=$(sed -n 's/^url *= *//p' "$CONF" | sed 's#//127.0.0.1:#//localhost:#')
sed -e '/^username *=/d' -e '/^password_file *=/d' "$CONF" > "$TMP/nocreds.conf"
NEG=$(CONF="$TMP/nocreds.conf" conf_with negotiate "site.auth=negotiate" "site.url=$SITE_URL")

krb() { # krb NAME [VAR=value...] -- ARGS...: cmbridge with the KDC's krb5.conf and a private ccache
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env -u KRB5_CLIENT_KTNAME KRB5_CONFIG="$KDC_KRB5_CONFIG" KRB5RCACHETYPE=none KRB5CCNAME="FILE:$TMP/ccache-$name" \
    "${envs[@]}" "$CMBRIDGE" -c "$NEG" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
  echo $? > "$TMP/$name.rc"
}
out() { cat "$TMP/$1.out" "$TMP/$1.err"; }

say "negotiate from the client keytab (KRB5_CLIENT_KTNAME)"
krb keytab KRB5_CLIENT_KTNAME="$KDC_KRB5_CLIENT_KTNAME" -- sync --full
expect_eq "keytab: full sync" 0 "$(cat "$TMP/keytab.rc")"
lab_stats
expect_match "keytab: devices uploaded" '^[1-9]' "$(stat "['tenant']['devices']")"
pages=$(stat "['site']['pageRequests']"); reqs=$(stat "['site']['requests']")
CHECKS=$((CHECKS + 1))
if [ "$pages" -gt 5 ] && [ $((reqs - pages)) -le 4 ]; then echo "ok:   negotiate: $pages pages over $reqs requests (connection kept)"
else echo "FAIL: negotiate: $pages pages took $reqs requests"; FAILS=$((FAILS + 1)); fi

say "negotiate from a ticket in the ccache (kinit)"
env KRB5_CONFIG="$KDC_KRB5_CONFIG" KRB5CCNAME="FILE:$TMP/ccache-kinit" kinit -k -t "$KDC_KRB5_CLIENT_KTNAME" \
  "$KDC_CMB_KDC_CLIENT" 2> "$TMP/kinit.err"
expect_eq "kinit from the client keytab" 0 "$?"
krb kinit -- sync
expect_eq "ccache: sync" 0 "$(cat "$TMP/kinit.rc")"

say "no ticket and no keytab: a clear failure"
krb none -- check
expect_eq "no ticket: exit status" 1 "$(cat "$TMP/none.rc")"
expect_match "no ticket: says what to do" 'no Kerberos ticket for the site at https://localhost:[0-9]+/.*: run kinit or set KRB5_CLIENT_KTNAME' "$(out none)"

finish
