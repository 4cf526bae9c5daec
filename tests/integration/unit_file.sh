#!/usr/bin/env bash
# deploy/cmbridge.service: systemd-analyze verifies it and rates its
# exposure at most 2.0 (docs/operations.md records the figure). Skipped
# (exit 77) where systemd-analyze is missing or cannot run offline here.
. "$(dirname "$0")/lib.sh"
UNIT="$(dirname "$0")/../../deploy/cmbridge.service"

if ! command -v systemd-analyze > /dev/null; then
  echo "SKIP: systemd-analyze is not installed (Debian: systemd)"; exit 77
fi
if ! out=$(systemd-analyze security --offline=yes --no-pager "$UNIT" 2>&1); then
  echo "SKIP: systemd-analyze security --offline=yes cannot run here: $(printf '%s' "$out" | tail -1)"; exit 77
fi
say "systemd-analyze security rates the unit"
level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for cmbridge.service: \([0-9.]*\).*/\1/p')
echo "exposure: $level"
expect_eq "the exposure level is at most 2.0" yes "$(python3 -c "print('yes' if 0 <= float('${level:-99}') <= 2.0 else 'no')")"
expect_eq "docs/operations.md records it" yes \
  "$(grep -q "rates it $level" "$(dirname "$0")/../../docs/operations.md" && echo yes || echo no)"

say "the unit says what the daemon needs"
for kv in Type=notify NotifyAccess=main WatchdogSec= User=cmbridge StateDirectory=cmbridge \
          ConfigurationDirectory=cmbridge ExecReload= ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
          NoNewPrivileges=yes 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
          SystemCallFilter=@system-service 'CapabilityBoundingSet=$'; do
  expect_eq "$kv" yes "$(grep -Eq "^${kv}" "$UNIT" && echo yes || echo no)"
done
finish
