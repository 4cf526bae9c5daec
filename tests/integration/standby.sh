#!/usr/bin/env bash
# Warm standby (docs/safety.md): a staging instance on its own state reads
# the tenant's records into its diff base after each cycle, so its `diff`
# shows the real difference (not every device as an add), and promoted to
# mode = normal its first cycle uploads exactly the records that differ and
# removes exactly the devices the site lost, nothing twice.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 2000 --seed 11
"$CMBRIDGE" -c "$CONF" sync > /dev/null 2>&1 || { echo "FAIL: the primary's first sync"; exit 1; }
STANDBY=$(conf_with standby connector.state_dir="$TMP/standby" connector.mode=staging)

say "a staging cycle imports the tenant's records"
lab_stats; writes0=$(stat "['tenant']['writes']")
out=$("$CMBRIDGE" -c "$STANDBY" sync 2>/dev/null); rc=$?
expect_eq "staging sync exit status" 0 "$rc"
tenant_devices=$(stat "['tenant']['devices']")
expect_match "it read every tenant record" "standby: $tenant_devices tenant records: $tenant_devices as the site has them" "$out"
"$CMBRIDGE" -c "$STANDBY" diff --json > "$TMP/d0.json" 2>/dev/null
expect_eq "diff: nothing to do where the primary left off" "0 0" "$(jget "$TMP/d0.json" "'%d %d' % (d['counts']['upload'], d['counts']['remove'])")"

say "the site changes; the primary has not synced it yet"
"$CMBRIDGE_LAB" mutate "$LAB" --change 10 --add 5 --delete 3 > /dev/null || { echo "FAIL: mutate"; exit 1; }
for _ in 1 2; do "$CMBRIDGE" -c "$STANDBY" sync > /dev/null 2>&1 || echo "FAIL: staging sync"; done
lab_stats
expect_eq "three staging cycles wrote nothing to the tenant" "$writes0" "$(stat "['tenant']['writes']")"
# What the primary would do next is the reference for the standby.
"$CMBRIDGE" -c "$CONF" diff --json > "$TMP/ref.json" 2>/dev/null
"$CMBRIDGE" -c "$STANDBY" diff --json > "$TMP/sb.json" 2>/dev/null
ops() { jget "$1" "'\n'.join(sorted(c['op'] + ' ' + c['key'] for c in d['changes']))"; }
expect_eq "the reference: 5 adds, 10 changes, 3 removals" "5 10 3" \
  "$(jget "$TMP/ref.json" "' '.join(str(sum(1 for c in d['changes'] if c['op'] == o)) for o in ('add', 'change', 'remove'))")"
expect_eq "the standby's diff is the primary's, record for record" "$(ops "$TMP/ref.json")" "$(ops "$TMP/sb.json")"

say "promoted (mode = normal), its first cycle uploads exactly the difference"
PROMOTED=$(conf_with promoted connector.state_dir="$TMP/standby")
lab_stats; recv0=$(stat "['tenant']['recordsReceived']"); rem0=$(stat "['tenant']['removalsReceived']")
created0=$(stat "['tenant']['recordsCreated']")
"$CMBRIDGE" -c "$PROMOTED" sync > /dev/null 2>&1; rc=$?
expect_eq "the promoted sync exit status" 0 "$rc"
lab_stats
expect_eq "uploaded exactly the 15 records that differ" 15 "$(( $(stat "['tenant']['recordsReceived']") - recv0 ))"
expect_eq "created only the 5 new devices" 5 "$(( $(stat "['tenant']['recordsCreated']") - created0 ))"
expect_eq "removed exactly the 3 devices the site lost" 3 "$(( $(stat "['tenant']['removalsReceived']") - rem0 ))"
expect_eq "the tenant holds the site's devices" "$((tenant_devices + 5 - 3))" "$(stat "['tenant']['devices']")"
"$CMBRIDGE" -c "$PROMOTED" diff --json > "$TMP/after.json" 2>/dev/null
expect_eq "nothing left to do" "0 0" "$(jget "$TMP/after.json" "'%d %d' % (d['counts']['upload'], d['counts']['remove'])")"

finish
