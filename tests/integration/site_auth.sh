#!/usr/bin/env bash
# Site authentication and TLS (docs/wire-format.md §7, docs/credentials.md)
# against the lab site, which checks every scheme for real: basic, NTLM
# (NTLMv2 recomputed from the password), bearer (a token the lab's tenant
# issued for [site] scope, with a secret and with a certificate), mutual TLS;
# wrong credentials fail naming user, URL and scheme. TLS: a server
# certificate from another CA names host, subject and issuer; public-key
# pinning accepts the right key and refuses another.
. "$(dirname "$0")/lib.sh"
require openssl

lab_init_up --devices 120 --seed 9 --page-size 50
USERNAME=$(sed -n 's/^username *= *//p' "$CONF")
SITE_URL=$(sed -n 's/^url *= *//p' "$CONF")
JWT_RE='eyJ[A-Za-z0-9_-]+\.eyJ'
printf 'not-the-password' > "$TMP/wrong-password"; chmod 600 "$TMP/wrong-password"

run() { # run NAME CONF ARGS...
  local name=$1 conf=$2; shift 2
  "$CMBRIDGE" -c "$conf" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
  echo $? > "$TMP/$name.rc"
}
out() { cat "$TMP/$1.out" "$TMP/$1.err"; }
lab_site_auth() { # lab_site_auth SCHEME [extra lab.conf line]: restart the lab with that [site] auth
  "$CMBRIDGE_LAB" down "$LAB" > /dev/null
  sed -i -e "s/^auth = .*/auth = $1/" -e '/^client_ca = /d' "$LAB/lab.conf"
  if [ -n "${2:-}" ]; then sed -i "0,/^\[site\]/s//[site]\n$2/" "$LAB/lab.conf"; fi
  "$CMBRIDGE_LAB" up "$LAB" --detach > /dev/null || { echo "FAIL: lab up with auth = $1"; cat "$LAB/lab.log"; exit 1; }
}
drop_site_creds() { # a copy of $CONF without [site] username/password_file
  sed -e '/^username *=/d' -e '/^password_file *=/d' "$CONF" > "$TMP/nocreds.conf"; echo "$TMP/nocreds.conf"
}

say "basic"
run basic "$CONF" sync
expect_eq "basic: sync" 0 "$(cat "$TMP/basic.rc")"
BAD=$(conf_with basic-bad "site.password_file=$TMP/wrong-password")
run basic-bad "$BAD" check
expect_match "basic, wrong password: user, URL and scheme named" \
  "site refused the credentials of CONTOSO\\\\svc-cmbridge \(Basic\) at $SITE_URL/wmi/SMS_R_System\?[^ ]* \(HTTP 401: .*\)" "$(out basic-bad)"

say "ntlm"
lab_site_auth ntlm
NTLM=$(conf_with ntlm "site.auth=ntlm")
run ntlm "$NTLM" sync --full
expect_eq "ntlm: full sync" 0 "$(cat "$TMP/ntlm.rc")"
lab_stats
pages=$(stat "['site']['pageRequests']"); reqs=$(stat "['site']['requests']")
CHECKS=$((CHECKS + 1))
# NTLM authenticates a connection: the handshake (one extra 401 round) happens per connection, not per page.
if [ $((reqs - pages)) -le 4 ] && [ "$pages" -gt 5 ]; then echo "ok:   ntlm: $pages pages over $reqs requests (connection kept)"
else echo "FAIL: ntlm: $pages pages took $reqs requests (connection not kept?)"; FAILS=$((FAILS + 1)); fi
NTLM_BAD=$(CONF=$NTLM conf_with ntlm-bad "site.password_file=$TMP/wrong-password")
run ntlm-bad "$NTLM_BAD" check
expect_eq "ntlm, wrong password: exit status" 1 "$(cat "$TMP/ntlm-bad.rc")"
expect_match "ntlm, wrong password: user, URL and scheme named" \
  "site refused the credentials of CONTOSO\\\\svc-cmbridge \(NTLM\) at $SITE_URL/wmi/SMS_R_System\?[^ ]* \(HTTP 401: .*\)" "$(out ntlm-bad)"
run ntlm-as-basic "$CONF" check
expect_match "basic against an NTLM site: refused, Basic named" 'site refused the credentials .*\(Basic\) at ' "$(out ntlm-as-basic)"

say "bearer (client secret, then certificate)"
lab_site_auth bearer
NOC=$(drop_site_creds)
BEARER=$(CONF=$NOC conf_with bearer "site.auth=bearer" "site.scope=https://cmbridge-lab-site/.default")
run bearer "$BEARER" sync --full
expect_eq "bearer (secret): full sync" 0 "$(cat "$TMP/bearer.rc")"
sed '/^client_secret_file/d' "$BEARER" > "$TMP/bearer-nosecret.conf"
BEARER_CERT=$(CONF="$TMP/bearer-nosecret.conf" conf_with bearer-cert "tenant.client_certificate_file=$LAB/client.pem" \
  "tenant.client_key_file=$LAB/client.key")
run bearer-cert "$BEARER_CERT" sync
expect_eq "bearer (certificate): sync" 0 "$(cat "$TMP/bearer-cert.rc")"
run token-site "$BEARER" token --site
expect_match "token --site: audience is the site" 'aud +https://cmbridge-lab-site' "$(out token-site)"
BEARER_BAD=$(CONF=$BEARER conf_with bearer-bad "site.scope=https://graph.microsoft.com/.default")
run bearer-bad "$BEARER_BAD" check
expect_eq "bearer, Graph token: exit status" 1 "$(cat "$TMP/bearer-bad.rc")"
expect_match "bearer, Graph token: client, URL and scheme named" \
  "site refused the credentials of client [0-9a-f-]+ \(Bearer\) at $SITE_URL/wmi/SMS_R_System\?[^ ]* \(HTTP 401: .*\)" "$(out bearer-bad)"

say "mutual TLS (with basic)"
lab_site_auth basic "client_ca = ca.pem"
run mtls-none "$CONF" check
expect_match "no client certificate: refused (403)" 'HTTP 403' "$(out mtls-none)"
MTLS=$(conf_with mtls "site.client_certificate_file=$LAB/site-client.pem" "site.client_key_file=$LAB/site-client.key")
run mtls "$MTLS" sync
expect_eq "client certificate: sync" 0 "$(cat "$TMP/mtls.rc")"

say "TLS: a server certificate from another CA; public-key pinning"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/other-ca.key" \
  -out "$TMP/other-ca.pem" -days 2 -subj "/CN=Some Other CA" 2> /dev/null
OTHER=$(CONF=$MTLS conf_with other-ca "site.ca_file=$TMP/other-ca.pem")
run other-ca "$OTHER" check
expect_match "other CA: host, subject and issuer named" \
  "the certificate of 127.0.0.1 did not verify \(.*\); server certificate subject '[^']+', issuer '[^']+' \(check \[site\] ca_file\)" "$(out other-ca)"
PIN="sha256//$(openssl x509 -in "$LAB/site.pem" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64)"
WRONG_PIN="sha256//$(openssl pkey -in "$TMP/other-ca.key" -pubout -outform DER | openssl dgst -sha256 -binary | base64)"
PINNED=$(CONF=$MTLS conf_with pinned "site.pinned_public_key=$PIN")
run pinned "$PINNED" check
expect_match "right pin: site reachable" 'site: +https://.* reachable' "$(out pinned)"
MISPINNED=$(CONF=$MTLS conf_with mispinned "site.pinned_public_key=$WRONG_PIN")
run mispinned "$MISPINNED" check
expect_match "wrong pin: refused, naming the option" 'public key of 127.0.0.1 does not match \[site\] pinned_public_key' "$(out mispinned)"

say "no token or password in any output"
expect_eq "JWTs in all outputs" 0 "$(cat "$TMP"/*.out "$TMP"/*.err | grep -cE "$JWT_RE")"
expect_eq "site password in all outputs" 0 "$(cat "$TMP"/*.out "$TMP"/*.err | grep -cF "$(cat "$LAB/site-password")")"

finish
