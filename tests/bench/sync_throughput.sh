#!/usr/bin/env bash
# Benchmark: how close a sync runs to the speed of the wire. Reads the same
# AdminService pages the connector reads with curl (the floor: TLS transfer
# and nothing else), then times the connector's read-map-diff (dry run) and
# a full sync with uploads, and prints the ratios. BENCH_DEVICES sets the
# site size (default 50,000).
. "$(dirname "$0")/../integration/lib.sh"

N=${BENCH_DEVICES:-50000}
say "lab with $N devices"
lab_init_up --devices "$N" --seed 21 --page-size 1000
SITE=$(sed -n 's/^url *= *//p' "$CONF")
USER=$(sed -n 's/^username *= *//p' "$CONF")
now() { date +%s.%N; }

say "floor: the five classes' pages fetched by one curl on one connection, nothing parsed"
# Client-driven paging ($top/$skip) so every URL is known up front and one
# curl process fetches them all over one reused TLS connection: transfer only.
: > "$TMP/urls.txt"
for cls in SMS_R_System SMS_CombinedDeviceResources SMS_Client_ComanagementState \
           SMS_G_System_COMPUTER_SYSTEM SMS_G_System_PC_BIOS; do
  for skip in $(seq 0 1000 $((N - 1))); do
    echo "url = \"$SITE/wmi/$cls?\$orderby=ResourceID&\$top=1000&\$skip=$skip\"" >> "$TMP/urls.txt"
    echo "output = \"/dev/null\"" >> "$TMP/urls.txt"
  done
done
t0=$(now)
bytes=$(curl -sS --compressed --cacert "$LAB/ca.pem" -u "$USER:$(cat "$LAB/site-password")" \
  -w '%{size_download}\n' -K "$TMP/urls.txt" | awk '{s += $1} END {print s}')
t1=$(now)
floor=$(python3 -c "print($t1 - $t0)")

say "connector: read, map and diff (dry run), then a full sync with uploads"
t2=$(now); "$CMBRIDGE" -c "$CONF" sync --dry-run > /dev/null 2>&1 || { echo "FAIL: dry run"; exit 1; }; t3=$(now)
t4=$(now); "$CMBRIDGE" -c "$CONF" sync --full > "$TMP/full.txt" 2>&1 || { echo "FAIL: full sync"; exit 1; }; t5=$(now)
t6=$(now); "$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: delta"; exit 1; }; t7=$(now)
python3 - "$N" "$bytes" "$floor" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" <<'PY'
import sys
n, b, floor = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
dry = float(sys.argv[5]) - float(sys.argv[4])
full = float(sys.argv[7]) - float(sys.argv[6])
delta = float(sys.argv[9]) - float(sys.argv[8])
print(f"site: {n} devices, {b / 1e6:.1f} MB transferred (gzip) in 5 classes")
print(f"floor (curl, transfer only): {floor:.2f} s, {b / 1e6 / floor:.0f} MB/s")
print(f"read+map+diff (dry run):     {dry:.2f} s, {n / dry:.0f} devices/s, ratio to floor {dry / floor:.2f}")
print(f"full sync with uploads:      {full:.2f} s, {n / full:.0f} devices/s, ratio to floor {full / floor:.2f}")
print(f"idle delta (nothing to send): {delta:.2f} s, ratio to floor {delta / floor:.2f}")
PY
grep -E "^cycle|tenant:" "$TMP/full.txt"
echo "(the full sync's uploads are paced by [tenant] rate_limit, 5 requests/s by default: docs/retry.md)"
finish
