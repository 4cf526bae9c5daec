#!/usr/bin/env bash
# No secret in any output of any run at debug level, nor in any error
# message: the site password, the client secret, the certificate key's
# passphrase, the proxy password (and both Basic values), every token. The
# runs go through a Basic-authenticating proxy (a small python CONNECT
# proxy started here, which records the header names it sees) and cover
# check, sync, token, config, status, relay and actions, with a client
# secret and with an encrypted certificate key, and the failures: a wrong
# secret, site password, passphrase and proxy password, and credentials
# pasted into a URL. Credentials go only where they belong: the proxy's
# only to the proxy, the site's never to the proxy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/canned.sh"

lab_init_up --devices 40 --seed 13
OUT="$TMP/out"; mkdir -p "$OUT"
SECRET=$(cat "$LAB/client-secret"); PASSWORD=$(cat "$LAB/site-password")
USERNAME=$(sed -n 's/^username *= *//p' "$CONF")
PASSPHRASE="pp-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
PUSER=cmbproxy; PPASS="px-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
printf '%s' "$PASSPHRASE" > "$TMP/passphrase"; printf '%s' "$PPASS" > "$TMP/proxy-pass"
printf 'wrong-%s' "$PPASS" > "$TMP/proxy-wrong"; printf 'wrong-%s' "$PASSPHRASE" > "$TMP/passphrase-wrong"
printf 'wrong-%s' "$PASSWORD" > "$TMP/site-wrong"; printf 'wrong-%s' "$SECRET" > "$TMP/secret-wrong"
chmod 600 "$TMP/passphrase" "$TMP/proxy-pass" "$TMP/proxy-wrong" "$TMP/passphrase-wrong" "$TMP/site-wrong" \
  "$TMP/secret-wrong"
openssl pkey -in "$LAB/client.key" -aes256 -passout "file:$TMP/passphrase" -out "$TMP/client-enc.key" 2>/dev/null
chmod 600 "$TMP/client-enc.key"
grep -q ENCRYPTED "$TMP/client-enc.key" || { echo "FAIL: could not encrypt the client key"; exit 1; }

say "a CONNECT proxy that requires Basic credentials and records the header names it is sent"
PPORT_FILE="$TMP/proxy.port"
python3 - "$PPORT_FILE" "$TMP/proxy-headers.log" "$PUSER:$PPASS" <<'PY' &
import base64, socket, sys, threading
port_file, log, cred = sys.argv[1], sys.argv[2], sys.argv[3]
want = "Basic " + base64.b64encode(cred.encode()).decode()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(50)
open(port_file, "w").write(str(srv.getsockname()[1]))
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def serve(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d: c.close(); return
        data += d
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    names, auth = [], None
    for h in head[1:]:
        k, _, v = h.partition(":")
        names.append(k.strip())
        if k.strip().lower() == "proxy-authorization": auth = v.strip()
    with open(log, "a") as f:  # names only, and whether the credentials were the right ones
        f.write("%s %s auth=%s\n" % (head[0].split(" ")[0], " ".join(names), "ok" if auth == want else "no" if auth is None else "bad"))
    if auth != want:
        c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\n\r\n")
        c.close(); return
    host, port = head[0].split(" ")[1].rsplit(":", 1)
    u = socket.create_connection((host, int(port)))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    pipe(u, c)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
CANNED_PIDS+=($!)
for _ in $(seq 100); do [ -s "$PPORT_FILE" ] && break; sleep 0.05; done
PPORT=$(cat "$PPORT_FILE"); touch "$TMP/proxy-headers.log"

PROXY=("network.proxy=http://127.0.0.1:$PPORT" "network.proxy_auth=basic" "network.proxy_username=$PUSER")
SEC=$(conf_with secret "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass" log.level=debug \
  "log.file=$OUT/secret.log" actions.batch_window=0 actions.status_poll_interval=1)
CERT=$(conf_with cert "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass" log.level=debug \
  "tenant.client_secret_file=" "tenant.client_certificate_file=$LAB/client.pem" \
  "tenant.client_key_file=$TMP/client-enc.key" "tenant.client_key_passphrase_file=$TMP/passphrase")
sed -i '/^client_secret_file = $/d' "$CERT"
run() { # run NAME CONF ARGS...: stdout and stderr kept under $OUT, at debug level
  local name=$1 conf=$2; shift 2
  "$CMBRIDGE" -v -c "$conf" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; echo $? > "$OUT/$name.rc"
}

say "runs at debug level through the proxy, with a client secret and with an encrypted key"
run check "$SEC" check
run sync "$SEC" sync
run token "$SEC" token
run token-site "$SEC" token --site
run config "$SEC" config
"$CMBRIDGE_LAB" trigger "$LAB" --many 5 quickScan --devices 5 > /dev/null
run relay "$SEC" relay --once
run actions "$SEC" actions --json
run status "$SEC" status --json
run cert-check "$CERT" check
"$CMBRIDGE_LAB" mutate "$LAB" --change 10 > /dev/null
run cert-sync "$CERT" sync
for r in check sync token relay cert-check cert-sync; do expect_eq "$r: exit status" 0 "$(cat "$OUT/$r.rc")"; done
expect_match "debug lines were written" 'debug' "$(cat "$OUT/sync.err" "$OUT/secret.log")"
expect_match "the proxy carried the runs" '^CONNECT .*auth=ok' "$(cat "$TMP/proxy-headers.log")"

say "failures at debug level: each names what is wrong, none shows the secret"
run bad-secret "$(conf_with bsec "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass" \
  "tenant.client_secret_file=$TMP/secret-wrong")" check
expect_match "wrong client secret: AADSTS code" 'AADSTS7000215' "$(cat "$OUT/bad-secret.out" "$OUT/bad-secret.err")"
run bad-site "$(conf_with bsite "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass" \
  "site.password_file=$TMP/site-wrong")" sync
expect_match "wrong site password: the refusal names the account" "refused the credentials of CONTOSO" \
  "$(cat "$OUT/bad-site.err")"
BADPP=$(conf_with bpp "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass" \
  "tenant.client_secret_file=" "tenant.client_certificate_file=$LAB/client.pem" \
  "tenant.client_key_file=$TMP/client-enc.key" "tenant.client_key_passphrase_file=$TMP/passphrase-wrong")
sed -i '/^client_secret_file = $/d' "$BADPP"
run bad-passphrase "$BADPP" check
expect_match "wrong passphrase: the key file is named" "client-enc.key" "$(cat "$OUT/bad-passphrase.err")"
run bad-proxy "$(conf_with bproxy "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-wrong")" check
expect_match "wrong proxy password: the proxy refusal names the user" \
  "the proxy http://127.0.0.1:$PPORT refused the credentials for $PUSER \(HTTP 407, Basic\)" "$(cat "$OUT/bad-proxy.err")"
run url-creds "$(conf_with ucreds "network.proxy=http://$PUSER:$PPASS@127.0.0.1:$PPORT")" check
expect_eq "proxy URL with a password: a configuration error" 2 "$(cat "$OUT/url-creds.rc")"
expect_match "proxy URL with a password: the password is removed from the message" \
  "\[network\] proxy: \"http://\(credentials removed\)@127\.0\.0\.1:$PPORT\" is not valid" "$(cat "$OUT/url-creds.err")"
run url-site "$(conf_with usite "site.url=https://$USERNAME:$PASSWORD@127.0.0.1:1/AdminService")" check
expect_eq "site URL with a password: a configuration error" 2 "$(cat "$OUT/url-site.rc")"

say "credentials only where they belong"
echo '{"value":[]}' > "$TMP/empty.json"
canned_up site site "$TMP/empty.json" --header-log "$TMP/site-headers.log"
touch "$TMP/site-headers.log"
run via-proxy "$(canned_site_conf viaproxy "$CANNED_PORT" "${PROXY[@]}" "network.proxy_password_file=$TMP/proxy-pass")" sync
expect_match "the site got its own credentials through the tunnel" ' Authorization=Basic' "$(cat "$TMP/site-headers.log")"
expect_eq "the site never got the proxy's credentials" 0 "$(count_lines 'Proxy-Authorization' "$TMP/site-headers.log")"
expect_eq "the proxy never got the site's or the tenant's credentials" 0 \
  "$(grep -cE ' Authorization( |$)' "$TMP/proxy-headers.log")"
canned_down

say "no secret in any of $(ls "$OUT" | wc -l) outputs, the log file, the state or the proxy's record"
BASIC_SITE=$(printf '%s:%s' "$USERNAME" "$PASSWORD" | base64 -w0)
BASIC_PROXY=$(printf '%s:%s' "$PUSER" "$PPASS" | base64 -w0)
KEY_LINE=$(sed -n '2p' "$LAB/client.key")
files=("$OUT"/* "$TMP/proxy-headers.log")
while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$LAB/state" "$TMP"/state-* -type f -print0 2>/dev/null)
count_fixed() { local nd=$1; shift; cat "$@" 2>/dev/null | grep -aoF -- "$nd" | wc -l; }
for pair in "site password:$PASSWORD" "client secret:$SECRET" "key passphrase:$PASSPHRASE" \
            "proxy password:$PPASS" "site Basic value:$BASIC_SITE" "proxy Basic value:$BASIC_PROXY" \
            "private key:$KEY_LINE" "wrong site password:wrong-$PASSWORD" "wrong secret:wrong-$SECRET" \
            "wrong passphrase:wrong-$PASSPHRASE" "wrong proxy password:wrong-$PPASS"; do
  expect_eq "${pair%%:*} in any output" 0 "$(count_fixed "${pair#*:}" "${files[@]}")"
done
expect_eq "tokens (JWT) in any output" 0 "$(cat "${files[@]}" | grep -aoE 'eyJ[A-Za-z0-9_-]+\.eyJ' | wc -l)"

say "controls: each needle is found where it is"
expect_eq "control: passphrase in its file" 1 "$(count_fixed "$PASSPHRASE" "$TMP/passphrase")"
expect_eq "control: proxy password in its file" 1 "$(count_fixed "$PPASS" "$TMP/proxy-pass")"
expect_eq "control: the key line in the key file" 1 "$(count_fixed "$KEY_LINE" "$LAB/client.key")"
printf 'Proxy-Authorization: Basic %s\n' "$BASIC_PROXY" > "$TMP/ctl.txt"
expect_eq "control: the proxy Basic value in a header line" 1 "$(count_fixed "$BASIC_PROXY" "$TMP/ctl.txt")"
graph_token > "$TMP/ctl-token.txt"
expect_eq "control: a token matches the JWT pattern" 1 "$(grep -aoE 'eyJ[A-Za-z0-9_-]+\.eyJ' "$TMP/ctl-token.txt" | wc -l)"

finish
