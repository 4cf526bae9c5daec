# Helpers for tests that put canned_server (tests/tools/canned_server.c) in
# place of the site or the tenant (sourced after lib.sh, not run).

CANNED_PIDS=()
canned_down() {
  local p
  for p in "${CANNED_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  CANNED_PIDS=()
}
trap 'canned_down; cleanup' EXIT

# canned_up NAME CERT BODY [canned_server options...]: starts a canned server
# with the lab's site or tenant certificate (CERT site|tenant), or the one at
# CERT.pem and CERT.key (a path); sets CANNED_PORT.
canned_up() {
  local name=$1 cert=$2 body=$3; shift 3
  case $cert in */*) ;; *) cert="$LAB/$cert" ;; esac
  rm -f "$TMP/$name.port"
  "$CANNED_SERVER" --cert "$cert.pem" --key "$cert.key" --port-file "$TMP/$name.port" \
    --body "$body" --log "$TMP/$name.log" "$@" 2>>"$TMP/$name.stderr" &
  CANNED_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$TMP/$name.port" ] && break; sleep 0.05; done
  [ -s "$TMP/$name.port" ] || { echo "FAIL: canned_server $name did not start"; exit 1; }
  CANNED_PORT=$(cat "$TMP/$name.port")
  touch "$TMP/$name.log"
}

# canned_site_conf NAME PORT [section.key=value...]: the lab's config with the
# site at a canned server and a state directory of its own.
canned_site_conf() {
  local name=$1 port=$2; shift 2
  mkdir -p "$TMP/state-$name"; chmod 700 "$TMP/state-$name"
  conf_with "$name" "site.url=https://127.0.0.1:$port/AdminService" "connector.state_dir=$TMP/state-$name" "$@"
}

# canned_tenant_conf NAME PORT [section.key=value...]: the same with the
# tenant (authority, token endpoint, gateway) at a canned server.
canned_tenant_conf() {
  local name=$1 port=$2; shift 2
  mkdir -p "$TMP/state-$name"; chmod 700 "$TMP/state-$name"
  conf_with "$name" "tenant.authority=https://127.0.0.1:$port/t" "tenant.token_url=https://127.0.0.1:$port/t/token" \
    "tenant.gateway_url=https://127.0.0.1:$port" "connector.state_dir=$TMP/state-$name" "$@"
}

# count_lines PATTERN FILE: lines of FILE matching the extended regex (0 when none).
count_lines() { grep -cE -- "$1" "$2" 2>/dev/null || true; }
