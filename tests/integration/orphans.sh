#!/usr/bin/env bash
# Orphans (issue "Prove it survives crashes, faults and hostile input"): the
# tenant applied an upload whose reply never came back; the site then
# deletes some of those devices before the next good cycle. The keys of an
# upload whose outcome is unknown stay "in flight" in the state: status and
# diff show them, a gone device gets a removal (counted by the deletion
# guard), one still at the site is uploaded again, and the tenant ends
# holding exactly the site's devices.
. "$(dirname "$0")/lib.sh"

# The id the lab gives a key (docs/lab.md, "Device upload").
lab_ids() { # lab_ids FILE-OF-RESOURCE-IDS -> managedDevice ids, sorted
  { python3 - "$1" "$(sed -n 's|^authority *= *https://[^/]*/||p' "$CONF")" <<'PY'
import hashlib, sys
rids, tenant = sys.argv[1], sys.argv[2]
for rid in open(rids).read().split():
    b = bytearray(hashlib.sha256(("%s|PS1:%s" % (tenant, rid)).encode()).digest()[:16])
    b[6] = (b[6] & 0x0f) | 0x50
    b[8] = (b[8] & 0x3f) | 0x80
    h = b.hex()
    print("%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
PY
  } | sort
}
# The tenant ids the state holds (no cmbridge runs while it is read).
state_ids() {
  python3 -c 'import sqlite3,sys; [print(r[0]) for r in sqlite3.connect(sys.argv[1]).execute("SELECT tenant_id FROM devices")]' \
    "$LAB/state/cmbridge.db" | sort
}

lab_init_up --devices 5000 --seed 7
"$CMBRIDGE" -c "$CONF" sync --full > /dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
lab_stats; cmb_status
held=$(stat "['tenant']['devices']")
expect_eq "the first cycle attached every in-scope device" "$held" "$(jget "$TMP/status.json" "d['devicesAttached']")"

say "200 new devices; the tenant applies their upload but the reply is lost, every retry"
"$CMBRIDGE_LAB" mutate "$LAB" --add 200 --verbose > "$TMP/add.txt" || { echo "FAIL: mutate"; exit 1; }
sed -n 's/^added: //p' "$TMP/add.txt" | tr ' ' '\n' | grep . | sort > "$TMP/added.txt"
"$CMBRIDGE_LAB" faults "$LAB" --tenant --rate-reply-lost 1 > /dev/null || { echo "FAIL: faults"; exit 1; }
"$CMBRIDGE" -c "$CONF" sync > "$TMP/lost.txt" 2>&1; rc=$?
expect_eq "the cycle fails" 1 "$rc"
lab_stats; cmb_status
expect_eq "the tenant has all 200" "$((held + 200))" "$(stat "['tenant']['devices']")"
expect_eq "the state acknowledged none of them" "$held" "$(jget "$TMP/status.json" "d['devicesAttached']")"
expect_eq "status: 200 keys in flight" 200 "$(jget "$TMP/status.json" "d.get('inFlight')")"
expect_eq "status lists them" "$(sed 's/^/PS1:/' "$TMP/added.txt" | sort | tr '\n' ' ')" \
  "$(jget "$TMP/status.json" "' '.join(sorted(d.get('inFlightKeys', [])))+' '")"
"$CMBRIDGE" -c "$CONF" status > "$TMP/status.txt" 2>&1
expect_match "status says so in text" "200 uploads in flight" "$(cat "$TMP/status.txt")"
"$CMBRIDGE_LAB" faults "$LAB" --tenant --clear > /dev/null

say "the site deletes 450 devices, 30 of the 200 among them"
"$CMBRIDGE_LAB" mutate "$LAB" --delete 450 --verbose > "$TMP/del.txt" || { echo "FAIL: mutate"; exit 1; }
sed -n 's/^deleted: //p' "$TMP/del.txt" | tr ' ' '\n' | grep . | sort > "$TMP/deleted.txt"
comm -12 "$TMP/added.txt" "$TMP/deleted.txt" > "$TMP/orphans.txt"
comm -23 "$TMP/added.txt" "$TMP/deleted.txt" > "$TMP/kept.txt"
expect_eq "deleted devices among the 200" 30 "$(grep -c . "$TMP/orphans.txt")"

"$CMBRIDGE" -c "$CONF" diff --json > "$TMP/diff.json" 2>/dev/null; rc=$?
expect_eq "diff exit status" 0 "$rc"
expect_eq "diff: 450 removals" 450 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='remove')")"
expect_eq "diff: 30 of them in flight" 30 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='remove' and c.get('inFlight'))")"
expect_eq "diff: the 170 others uploaded again" 170 "$(jget "$TMP/diff.json" "sum(1 for c in d['changes'] if c['op']=='add' and c.get('inFlight'))")"
expect_eq "diff: in-flight count" 200 "$(jget "$TMP/diff.json" "d['counts'].get('inFlight')")"
expect_eq "diff: the in-flight removals are those 30" "$(sed 's/^/PS1:/' "$TMP/orphans.txt" | sort | tr '\n' ' ')" \
  "$(jget "$TMP/diff.json" "' '.join(sorted(c['key'] for c in d['changes'] if c['op']=='remove' and c.get('inFlight')))+' '")"

say "the deletion guard counts the in-flight removals too (449 would hold them)"
GUARD=$(conf_with guard sync.delete_threshold=449)
"$CMBRIDGE" -c "$GUARD" diff --json > "$TMP/diff449.json" 2>/dev/null
expect_eq "diff with delete_threshold = 449: removals would be held" True "$(jget "$TMP/diff449.json" "d['removalsWouldBeHeld']")"

say "sync --allow-deletes 1000, then sync --full"
lab_stats; rems=$(stat "['tenant']['removalsReceived']")
"$CMBRIDGE" -c "$CONF" sync --allow-deletes 1000 > /dev/null 2>&1; rc=$?
expect_eq "approved sync exit status" 0 "$rc"
cmb_status; lab_stats
expect_eq "the 170 still at the site uploaded again" 170 "$(cycle_count added)"
expect_eq "removed: 420 acknowledged + 30 in flight" 450 "$(cycle_count removed)"
expect_eq "the tenant received 450 removals" 450 "$(( $(stat "['tenant']['removalsReceived']") - rems ))"
expect_eq "nothing left in flight" 0 "$(jget "$TMP/status.json" "d.get('inFlight')")"
"$CMBRIDGE" -c "$CONF" sync --full > /dev/null 2>&1; rc=$?
expect_eq "full sync exit status" 0 "$rc"
cmb_status; lab_stats
in_scope=$(jget "$TMP/status.json" "(lambda c: c['siteRecords'] - c['skipped'] - c['quarantined'] - c['duplicates'])(d['cycles'][0]['counts'])")
expect_eq "the full cycle removed nothing more" 0 "$(cycle_count removed)"

say "the tenant holds exactly the site's devices"
graph_walk deviceManagement/managedDevices 1000
sort "$TMP/ids.txt" | grep . > "$TMP/tenant.ids"
expect_eq "Graph @odata.count" "$in_scope" "$(jget "$TMP/page1.json" "d['@odata.count']")"
expect_eq "ids listed" "$in_scope" "$(grep -c . "$TMP/tenant.ids")"
expect_eq "connector attached count" "$in_scope" "$(jget "$TMP/status.json" "d['devicesAttached']")"
expect_eq "the listing is exactly the state's devices" "" "$(state_ids | diff - "$TMP/tenant.ids" | head -5)"
lab_ids "$TMP/orphans.txt" > "$TMP/orphans.ids"
lab_ids "$TMP/kept.txt" > "$TMP/kept.ids"
expect_eq "none of the 30 deleted devices is left in the tenant" 0 "$(comm -12 "$TMP/orphans.ids" "$TMP/tenant.ids" | grep -c .)"
expect_eq "all 170 kept devices are there" 170 "$(comm -12 "$TMP/kept.ids" "$TMP/tenant.ids" | grep -c .)"

finish
