#!/usr/bin/env bash
# Proxies ([network], docs/credentials.md): syncs through a real tinyproxy
# started here on a free loopback port, without and with BasicAuth; the
# proxy's log shows the CONNECT tunnels to the site and the tenant; a wrong
# or missing proxy password fails clearly; HTTPS_PROXY from the environment
# is honoured when the config says nothing, and [network] no_proxy and
# proxy = none override it.
. "$(dirname "$0")/lib.sh"

require tinyproxy
trap 'stop_proxy; cleanup' EXIT

lab_init_up --devices 60 --seed 4 --page-size 30
SITE_PORT=$(sed -n 's#^url *= *https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$CONF")
TENANT_PORT=$(sed -n 's#^authority *= *https://127.0.0.1:\([0-9]*\)/.*#\1#p' "$CONF")
PLOG="$TMP/tinyproxy.log"

start_proxy() { # start_proxy [BasicAuth user pass]
  PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  {
    echo "Port $PPORT"; echo "Listen 127.0.0.1"; echo "Timeout 60"; echo "MaxClients 20"
    echo "LogFile \"$PLOG\""; echo "LogLevel Connect"; echo "Allow 127.0.0.1"
    echo "ConnectPort $SITE_PORT"; echo "ConnectPort $TENANT_PORT"
    [ "$(id -u)" = 0 ] && { echo "User root"; echo "Group root"; }
    [ $# -gt 0 ] && echo "BasicAuth $1 $2"
  } > "$TMP/tinyproxy.conf"
  : > "$PLOG"
  tinyproxy -d -c "$TMP/tinyproxy.conf" > "$TMP/tinyproxy.out" 2>&1 &
  PPID_=$!
  for _ in $(seq 50); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PPORT),0.2)" 2> /dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: tinyproxy did not start"; cat "$TMP/tinyproxy.out" "$PLOG"; exit 1
}
stop_proxy() {
  if [ -n "${PPID_:-}" ]; then kill "$PPID_" 2> /dev/null; wait "$PPID_" 2> /dev/null; PPID_=; fi
}
connects() { grep -c "CONNECT 127.0.0.1:$1" "$PLOG"; }
run() { # run NAME CONF ARGS...
  local name=$1 conf=$2; shift 2
  "$CMBRIDGE" -c "$conf" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err"
  echo $? > "$TMP/$name.rc"
}
out() { cat "$TMP/$1.out" "$TMP/$1.err"; }

say "through tinyproxy without authentication"
start_proxy
PROXY=$(conf_with proxy "network.proxy=http://127.0.0.1:$PPORT")
run plain "$PROXY" sync --full
expect_eq "sync through the proxy" 0 "$(cat "$TMP/plain.rc")"
expect_match "proxy log: CONNECT to the site" '^[1-9]' "$(connects "$SITE_PORT")"
expect_match "proxy log: CONNECT to the tenant" '^[1-9]' "$(connects "$TENANT_PORT")"

say "HTTPS_PROXY from the environment; no_proxy and proxy = none override it"
n=$(grep -c CONNECT "$PLOG")
HTTPS_PROXY="http://127.0.0.1:$PPORT" run env "$CONF" check
expect_eq "env proxy: check" 0 "$(cat "$TMP/env.rc")"
CHECKS=$((CHECKS + 1))
if [ "$(grep -c CONNECT "$PLOG")" -gt "$n" ]; then echo "ok:   env proxy: tunnels in the proxy log"
else echo "FAIL: HTTPS_PROXY was not used"; FAILS=$((FAILS + 1)); fi
n=$(grep -c CONNECT "$PLOG")
NOPROXY=$(conf_with noproxy "network.no_proxy=127.0.0.1")
HTTPS_PROXY="http://127.0.0.1:$PPORT" https_proxy="http://127.0.0.1:$PPORT" run noproxy "$NOPROXY" check
expect_eq "no_proxy: check" 0 "$(cat "$TMP/noproxy.rc")"
expect_eq "no_proxy: nothing through the proxy" "$n" "$(grep -c CONNECT "$PLOG")"
DIRECT=$(conf_with direct "network.proxy=none")
HTTPS_PROXY="http://127.0.0.1:1" https_proxy="http://127.0.0.1:1" run direct "$DIRECT" check
expect_eq "proxy = none ignores a (dead) HTTPS_PROXY" 0 "$(cat "$TMP/direct.rc")"
stop_proxy

say "through tinyproxy with BasicAuth"
PUSER=cmbproxy; PPASS="p-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
start_proxy "$PUSER" "$PPASS"
printf '%s' "$PPASS" > "$TMP/proxy-pass"; printf 'wrong' > "$TMP/proxy-wrong"; chmod 600 "$TMP/proxy-pass" "$TMP/proxy-wrong"
AUTH=$(conf_with pauth "network.proxy=http://127.0.0.1:$PPORT" "network.proxy_auth=basic" \
  "network.proxy_username=$PUSER" "network.proxy_password_file=$TMP/proxy-pass")
run auth "$AUTH" sync --full
expect_eq "sync through the authenticating proxy" 0 "$(cat "$TMP/auth.rc")"
expect_match "proxy log: CONNECT to the site" '^[1-9]' "$(connects "$SITE_PORT")"
expect_match "proxy log: CONNECT to the tenant" '^[1-9]' "$(connects "$TENANT_PORT")"
WRONG=$(CONF=$AUTH conf_with pwrong "network.proxy_password_file=$TMP/proxy-wrong")
run wrong "$WRONG" check
expect_eq "wrong proxy password: exit status" 1 "$(cat "$TMP/wrong.rc")"
expect_match "wrong proxy password: proxy, user and scheme named" \
  "the proxy http://127.0.0.1:$PPORT refused the credentials for $PUSER \(HTTP 40[17], Basic\)" "$(out wrong)"
NOAUTH=$(conf_with noauth "network.proxy=http://127.0.0.1:$PPORT")
run none "$NOAUTH" check
expect_match "no proxy credentials: says which options to set" \
  'requires authentication .*\(HTTP 40[17]\): set \[network\] proxy_auth, proxy_username and proxy_password_file' \
  "$(out none)"
expect_eq "proxy password in any output" 0 "$(cat "$TMP"/*.out "$TMP"/*.err | grep -cF "$PPASS")"
stop_proxy

finish
