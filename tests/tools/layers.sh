#!/usr/bin/env bash
# The layers of docs/architecture.md, checked in the tree: each folder
# includes only the layers below it, mapping/ never prints or does I/O, and
# nothing outside an adapter includes that adapter's internals.
set -uo pipefail
cd "$(dirname "$0")/../.."
fails=0

# allowed LAYER PATTERN...: every "..." include of LAYER's files must match one pattern.
allowed() {
  local layer=$1; shift
  local re
  re=$(printf '%s|' "$@"); re="^(${re%|})"
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:}")
    if ! grep -Eq "$re" <<<"$inc"; then
      echo "FAIL: $file includes $inc, outside what $layer may use"
      fails=$((fails + 1))
    fi
  done < <(grep -H '#include "' $(git ls-files "$layer" | grep -E '\.[ch]$') 2>/dev/null)
}

allowed connector/base      connector/base/
allowed connector/config    connector/base/ connector/config/
allowed connector/transport connector/base/ connector/config/ connector/transport/
allowed connector/store     connector/base/ connector/store/
allowed mapping             connector/base/ mapping/
allowed adapters            connector/base/ connector/config/ connector/transport/ mapping/ adapters/
allowed connector/engine    connector/base/ connector/config/ connector/transport/retry.h connector/store/ \
                            connector/engine/ mapping/ adapters/site.h adapters/tenant.h
allowed connector/daemon    connector/ mapping/ adapters/site.h adapters/tenant.h
# The lab shares no code with the connector: it can only agree with what it was written from.
if out=$(grep -nE '#include "(\.\./|connector/|adapters/|mapping/)' $(git ls-files lab | grep -E '\.[ch]$')); then
  echo "FAIL: the lab includes the connector's code:"; echo "$out"; fails=$((fails + 1))
fi

# mapping/ is pure: no printing, no logging, no files, no sockets.
if out=$(grep -nE '\b(printf|fprintf|puts|fputs|fwrite|perror|cmb_log|cmb_warn|cmb_info|cmb_debug|cmb_error_log|fopen|open|socket|curl_)\s*\(' \
           $(git ls-files mapping | grep -E '\.[ch]$')); then
  echo "FAIL: mapping/ prints or does I/O:"; echo "$out"; fails=$((fails + 1))
fi

[ "$fails" -eq 0 ] && echo "ok: every layer includes only what is below it; mapping/ is pure"
[ "$fails" -eq 0 ]
