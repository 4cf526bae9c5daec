#!/usr/bin/env bash
# TLS failure paths, each with its exact message: a site certificate from a
# CA the connector does not trust, one for another host name, an expired
# one, a public key that does not match the pin, and the tenant's token
# endpoint with a foreign CA. Certificates are made here (the openssl
# command); the servers are canned_server. Every case is final: one
# request, no retry, nothing sent.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/canned.sh"

if ! command -v openssl > /dev/null; then
  echo "SKIP: the openssl command is not installed (Debian: openssl)"; exit 77
fi
lab_init_up --devices 10 --seed 2
CERTS="$TMP/certs"; mkdir -p "$CERTS"
# cert NAME SUBJECT-CN SAN CA-PEM CA-KEY [openssl ca date options]: an EC key and a certificate signed by that CA
cert() {
  local name=$1 cn=$2 san=$3 cacert=$4 cakey=$5; shift 5
  local d="$CERTS/ca-$name"; mkdir -p "$d"; : > "$d/index.txt"; echo 01 > "$d/serial"
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=sha256\npolicy=p\ndefault_days=30\n[p]\ncommonName=supplied\n[x]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=%s\n' \
    "$d" "$d" "$d" "$san" > "$d/ca.cnf"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$CERTS/$name.key" -out "$d/req.csr" 2>/dev/null &&
  openssl ca -batch -notext -config "$d/ca.cnf" -extensions x -cert "$cacert" -keyfile "$cakey" \
    -in "$d/req.csr" -out "$CERTS/$name.pem" "$@" > /dev/null 2>&1
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=Other CA" \
  -addext basicConstraints=critical,CA:TRUE -keyout "$CERTS/other-ca.key" -out "$CERTS/other-ca.pem" 2>/dev/null
cert foreign "foreign site" IP:127.0.0.1 "$CERTS/other-ca.pem" "$CERTS/other-ca.key"
cert wronghost wrong.example DNS:wrong.example "$LAB/ca.pem" "$LAB/ca.key"
cert expired "expired site" IP:127.0.0.1 "$LAB/ca.pem" "$LAB/ca.key" -startdate 20200101000000Z -enddate 20210101000000Z
cert good "good site" IP:127.0.0.1 "$LAB/ca.pem" "$LAB/ca.key"
[ -s "$CERTS/expired.pem" ] || { echo "FAIL: could not make the certificates"; exit 1; }
PAGE="$TMP/page.json"; echo '{"value":[]}' > "$PAGE"

# tls_case NAME CERT EXPECTED-REGEX [section.key=value...]: a sync against a site with that certificate
tls_case() {
  local name=$1 cert=$2 want=$3; shift 3
  canned_up "$name" "$CERTS/$cert" "$PAGE"
  local port=$CANNED_PORT
  local conf; conf=$(canned_site_conf "$name" "$port" "$@")
  timeout 60 "$CMBRIDGE" -c "$conf" sync > "$TMP/$name.out" 2>&1; local rc=$?
  local url="https://127\.0\.0\.1:$port/AdminService/wmi/SMS_R_System\?[^ ]*"
  expect_eq "$name: the cycle fails" 1 "$rc"
  expect_match "$name: the exact message" "^cmbridge: reading the site \(nothing was changed in the tenant\): SMS_R_System page 1: ${want//URL/$url}\$" \
    "$(grep '^cmbridge: ' "$TMP/$name.out")"
  expect_eq "$name: no request reached the server" 0 "$(wc -l < "$TMP/$name.log")"
  expect_eq "$name: not retried" 0 "$(count_lines 'trying again' "$TMP/$name.out")"
  canned_down
}

say "a site certificate from a CA the connector does not trust"
tls_case foreign foreign \
  "TLS with the site at URL failed: the certificate of 127\.0\.0\.1 did not verify \(unable to get local issuer certificate\); server certificate subject 'CN=foreign site', issuer 'CN=Other CA' \(check \[site\] ca_file\)"

say "a site certificate for another host name"
tls_case wronghost wronghost \
  "TLS with the site at URL failed: the certificate of 127\.0\.0\.1 is for other host names \(DNS:wrong\.example\); server certificate subject 'CN=wrong\.example', issuer 'CN=cmbridge lab CA,O=cmbridge lab' \(check \[site\] url: it must name the server as its certificate does\)"

say "an expired site certificate"
tls_case expired expired \
  "TLS with the site at URL failed: the certificate of 127\.0\.0\.1 expired on 2021-01-01T00:00:00Z; server certificate subject 'CN=expired site', issuer 'CN=cmbridge lab CA,O=cmbridge lab' \(the server's certificate must be renewed; if it was, check this machine's clock\)"

say "a site whose public key does not match the pin"
pin_of() { # pin_of CERT: the sha256// pin of its public key, as docs/credentials.md computes it
  echo "sha256//$(openssl x509 -in "$CERTS/$1.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -binary | base64)"
}
PIN=$(pin_of foreign)
tls_case pin good \
  "TLS with the site at URL failed: the public key of 127\.0\.0\.1 does not match \[site\] pinned_public_key; server certificate subject 'CN=good site', issuer 'CN=cmbridge lab CA,O=cmbridge lab'" \
  "site.pinned_public_key=$PIN"

say "control: the same server with the right pin and the lab CA is trusted"
canned_up ok "$CERTS/good" "$PAGE"
OKCONF=$(canned_site_conf ok "$CANNED_PORT" "site.pinned_public_key=$(pin_of good)")
timeout 60 "$CMBRIDGE" -c "$OKCONF" sync > "$TMP/ok.out" 2>&1
expect_match "control: requests reached the trusted server" '^[1-9]' "$(wc -l < "$TMP/ok.log")"
expect_eq "control: no TLS error" 0 "$(count_lines 'TLS with' "$TMP/ok.out")"
canned_down

say "the tenant's token endpoint with a certificate from another CA"
canned_up tok "$CERTS/foreign" "$PAGE"
TPORT=$CANNED_PORT
TCONF=$(canned_tenant_conf tok "$TPORT")
timeout 60 "$CMBRIDGE" -c "$TCONF" check > "$TMP/tok.out" 2>&1; rc=$?
expect_eq "token endpoint: check fails" 1 "$rc"
expect_match "token endpoint: the exact message" \
  "acquiring a token: TLS with the tenant at https://127\.0\.0\.1:$TPORT/t/token failed: the certificate of 127\.0\.0\.1 did not verify \(unable to get local issuer certificate\); server certificate subject 'CN=foreign site', issuer 'CN=Other CA' \(check \[tenant\] ca_file\)" \
  "$(cat "$TMP/tok.out")"
expect_eq "token endpoint: the secret never left" 0 "$(wc -l < "$TMP/tok.log")"
canned_down

finish
