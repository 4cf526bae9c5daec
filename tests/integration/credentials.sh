#!/usr/bin/env bash
# Certificate credentials (docs/wire-format.md §6, docs/credentials.md): sync
# with PS256 and RS256 client assertions against the lab's real verifier;
# `cmbridge token`; an expired certificate refused at start and one expiring
# soon warned about; and assertions the lab must refuse, each reported by
# cmbridge with its AADSTS code: an unregistered certificate, a tampered
# signature, a wrong audience, an expired assertion (clock behind) and a
# replayed jti.
#
# Tampering, clock and replay need the connector to misbehave, which it has
# no switch for: the LD_PRELOAD shim tests/tools/assertion_shim.c, built with
# the tests ($ASSERTION_SHIM), bends only calls made from the cmbridge
# executable itself (not libcurl's or OpenSSL's own):
#   CMB_SHIM_TAMPER=1        flips one bit of each signature jwt.c makes
#   CMB_SHIM_CLOCK_SHIFT=S   moves cmbridge's wall clock (time()) by S seconds
#   CMB_SHIM_FIXED_RANDOM=1  makes cmbridge's random bytes (the jti) constant
# The wrong audience comes from configuration alone: a token_url with a query
# string is sent as the assertion's aud, and the endpoint's own URL is not.
. "$(dirname "$0")/lib.sh"
[ -f "${ASSERTION_SHIM:-}" ] || { echo "FAIL: ASSERTION_SHIM (tests/tools, set by ctest) is not a file: '${ASSERTION_SHIM:-}'"; exit 1; }

lab_init_up --devices 200 --seed 5 --page-size 100
TOKEN_URL=$(sed -n 's/^authority *= *//p' "$CONF")/oauth2/v2.0/token
JWT_RE='eyJ[A-Za-z0-9_-]+\.eyJ'

# cert_conf NAME CERT KEY [section.key=value...]: $CONF with a certificate instead of the secret.
cert_conf() {
  local name=$1 cert=$2 key=$3; shift 3
  sed '/^client_secret_file/d' "$CONF" > "$TMP/nosecret.conf"
  CONF="$TMP/nosecret.conf" conf_with "$name" "tenant.client_certificate_file=$cert" \
    "tenant.client_key_file=$key" "$@"
}
run() { # run NAME CONF ARGS...: rc in $TMP/NAME.rc, output in NAME.out/.err
  local name=$1 conf=$2; shift 2
  "$CMBRIDGE" -c "$conf" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
  echo $? > "$TMP/$name.rc"
}
out() { cat "$TMP/$1.out" "$TMP/$1.err"; }

say "PS256 (the default): sync with a certificate"
PS=$(cert_conf ps256 "$LAB/client.pem" "$LAB/client.key")
run ps-sync "$PS" -v sync
expect_eq "PS256 sync exit status" 0 "$(cat "$TMP/ps-sync.rc")"
lab_stats
cmb_status
expect_eq "tenant holds the uploaded devices" "$(cycle_count uploaded 2>/dev/null || cycle_count added)" \
  "$(stat "['tenant']['devices']")"
expect_match "devices were uploaded" '^[1-9]' "$(stat "['tenant']['devices']")"
expect_match "lab accepted assertions" '^[1-9]' "$(stat "['tenant']['assertionsAccepted']")"
expect_eq "no assertion or token in the debug output" 0 "$(out ps-sync | grep -cE "$JWT_RE")"

say "RS256: sync --full with the same certificate"
RS=$(cert_conf rs256 "$LAB/client.pem" "$LAB/client.key" "tenant.assertion_alg=RS256")
run rs-sync "$RS" sync --full
expect_eq "RS256 sync exit status" 0 "$(cat "$TMP/rs-sync.rc")"

say "cmbridge token: type, lifetime and public claims, never the token"
run token "$PS" token
expect_eq "token exit status" 0 "$(cat "$TMP/token.rc")"
expect_match "token names the credential" 'with a certificate \(PS256\)' "$(out token)"
expect_match "token shows the lifetime" 'lifetime: [0-9]+ s' "$(out token)"
expect_match "token shows aud" 'aud +https://graph.microsoft.com' "$(out token)"
expect_match "token shows roles" 'roles +DeviceManagementManagedDevices' "$(out token)"
expect_eq "token output holds no JWT" 0 "$(out token | grep -cE "$JWT_RE")"

say "an expired certificate is refused at start, before any request"
lab_stats; before=$(stat "['routes']['POST /{tenant}/oauth2/v2.0/token']")
EXP=$(cert_conf expired "$LAB/client-expired.pem" "$LAB/client-expired.key")
run expired "$EXP" check
expect_eq "expired certificate: exit status" 1 "$(cat "$TMP/expired.rc")"
expect_match "expired certificate: message names file, subject and date" \
  "client_certificate_file $LAB/client-expired.pem \(subject .*CN=cmbridge connector.*\) expired on 20[0-9-]+T" "$(out expired)"
lab_stats; expect_eq "expired certificate: no token request sent" "$before" "$(stat "['routes']['POST /{tenant}/oauth2/v2.0/token']")"

say "a certificate expiring within 30 days: a warning (and, unregistered, AADSTS700027)"
SOON=$(cert_conf soon "$LAB/client-soon.pem" "$LAB/client-soon.key")
run soon "$SOON" check
expect_match "soon: warning with the date" 'warn .*client-soon.pem .*expires on 20[0-9-]+T.*in (9|10) days' "$(out soon)"
run soon-status "$SOON" status --json
expect_eq "soon: status shows the certificate expiring soon" True \
  "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["certificate"]; print(c["expiresSoon"] and 9 <= c["daysLeft"] <= 10)' "$TMP/soon-status.out")"
run soon-human "$SOON" status
expect_match "soon: status says to renew" "^certificate: .*CN=.* expires 20[0-9-]+T.* \((9|10) days\): renew it" "$(out soon-human)"
expect_match "unregistered certificate: AADSTS700027 and the thumbprint offered" \
  'refused the credentials of client .*\(HTTP 401: invalid_client: AADSTS700027.*\[client assertion PS256 signed by certificate .*thumbprint [0-9A-F]{40}\]' "$(out soon)"

say "a wrong audience: AADSTS700023"
AUD=$(cert_conf aud "$LAB/client.pem" "$LAB/client.key" "tenant.token_url=$TOKEN_URL?api-version=1")
run aud "$AUD" check
expect_eq "wrong audience: exit status" 1 "$(cat "$TMP/aud.rc")"
expect_match "wrong audience: AADSTS700023 reported" '\(HTTP 401: invalid_client: AADSTS700023' "$(out aud)"

say "a tampered signature: AADSTS700027"
LD_PRELOAD="$ASSERTION_SHIM" CMB_SHIM_TAMPER=1 run tamper "$PS" check
expect_eq "tampered: exit status" 1 "$(cat "$TMP/tamper.rc")"
expect_match "tampered: AADSTS700027 reported" '\(HTTP 401: invalid_client: AADSTS700027' "$(out tamper)"
for alg in RS256; do
  LD_PRELOAD="$ASSERTION_SHIM" CMB_SHIM_TAMPER=1 run tamper-rs "$RS" check
  expect_match "tampered $alg: AADSTS700027 reported" 'AADSTS700027.*client assertion RS256' "$(out tamper-rs)"
done

say "an expired assertion (cmbridge's clock 20 minutes behind): AADSTS700024"
LD_PRELOAD="$ASSERTION_SHIM" CMB_SHIM_CLOCK_SHIFT=-1200 run late "$PS" check
expect_eq "expired assertion: exit status" 1 "$(cat "$TMP/late.rc")"
expect_match "expired assertion: AADSTS700024 reported" '\(HTTP 401: invalid_client: AADSTS700024' "$(out late)"

say "a replayed assertion (the same jti twice): AADSTS50013"
LD_PRELOAD="$ASSERTION_SHIM" CMB_SHIM_FIXED_RANDOM=1 run replay1 "$PS" token
LD_PRELOAD="$ASSERTION_SHIM" CMB_SHIM_FIXED_RANDOM=1 run replay2 "$PS" token
expect_eq "first use of the jti: accepted" 0 "$(cat "$TMP/replay1.rc")"
expect_eq "replay: exit status" 1 "$(cat "$TMP/replay2.rc")"
expect_match "replay: AADSTS50013 reported" '\(HTTP 401: invalid_client: AADSTS50013' "$(out replay2)"
lab_stats
expect_match "lab counted the rejections" '^[4-9]|^[1-9][0-9]' "$(stat "['tenant']['assertionsRejected']")"

say "no assertion or token in any output"
expect_eq "JWTs in all outputs" 0 "$(cat "$TMP"/*.out "$TMP"/*.err | grep -cE "$JWT_RE")"

finish
