#!/usr/bin/env bash
# Remote actions end to end against the lab: 1,000 actions triggered as an
# admin reach the site exactly once (1,000 distinct targets, no duplicate)
# and come back final; refused cases end with the right actionState and an
# audit row each.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 1300 --seed 11
"$CMBRIDGE" -c "$CONF" sync >/dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
RCONF=$(conf_with relay actions.batch_window=0 actions.status_poll_interval=1)

say "1,000 actions of 7 client notification types, each type on distinct devices"
n_total=0
for spec in refreshMachinePolicy:143 refreshUserPolicy:143 appEvaluation:143 wakeUpClient:143 fullScan:143 \
            quickScan:143 windowsDefenderUpdateSignatures:142; do
  a=${spec%%:*}; n=${spec##*:}
  "$CMBRIDGE_LAB" trigger "$LAB" --many "$n" "$a" --devices "$n" >/dev/null || { echo "FAIL: trigger $a"; exit 1; }
  n_total=$((n_total + n))
done
expect_eq "actions triggered" 1000 "$n_total"

t0=$(date +%s.%N)
timeout 300 "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/relay1.txt" 2>"$TMP/relay1.log"; rc=$?
t1=$(date +%s.%N)
expect_eq "relay --once exit status" 0 "$rc"
[ "$rc" = 0 ] || tail -20 "$TMP/relay1.log"
printf 'relay --once: %s s\n' "$(python3 -c "print(round($t1-$t0,2))")"; cat "$TMP/relay1.txt"
lab_stats
expect_eq "site operation targets" 1000 "$(stat "['site']['operationTargets']")"
expect_eq "site duplicate targets" 0 "$(stat "['site']['duplicateTargets']")"
expect_eq "distinct (type, device) pairs in operations.log" 1000 \
  "$(awk '$3 != "Block" && $3 != "Unblock" {print $3, $4}' "$LAB/operations.log" | sort -u | wc -l)"
expect_eq "tenant: done + failed" 1000 "$(stat "['actions']['done'] + d['actions']['failed']")"
expect_eq "tenant: pending" 0 "$(stat "['actions']['pending']")"
expect_eq "tenant: delivered after expiry" 0 "$(stat "['actions']['deliveredAfterExpiry']")"
ops=$(stat "['site']['operations']")
expect_match "batched: at most a few operations per type ($ops)" '^([7-9]|1[0-4])$' "$ops"
"$CMBRIDGE" -c "$RCONF" actions --json > "$TMP/actions.json"
expect_eq "connector inbox: 1000 final actions" 1000 \
  "$(jget "$TMP/actions.json" "sum(1 for a in d if a['state'] in ('done','failed'))")"

say "a second relay --once sends nothing"
"$CMBRIDGE" -c "$RCONF" relay --once >/dev/null 2>&1; rc=$?
expect_eq "idle relay exit status" 0 "$rc"
lab_stats
expect_eq "site operation targets unchanged" 1000 "$(stat "['site']['operationTargets']")"

say "refused cases"
# Device ids of attached devices, from the tenant's own list of actions (first 6 of the fullScan ones).
"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/lab-actions.json"
mapfile -t DEV < <(jget "$TMP/lab-actions.json" "'\n'.join(sorted({a['deviceId']+' '+a['key'] for a in d['value']})[:8])")
dev() { echo "${DEV[$1]}" | cut -d' ' -f1; }
key() { echo "${DEV[$1]}" | cut -d' ' -f2; }
# Out of scope: the connector no longer holds that device.
python3 - "$LAB" "$(key 1)" <<'PY'
import sqlite3, sys, re
conf = open(sys.argv[1] + "/cmbridge.conf").read()
state = re.search(r"^state_dir\s*=\s*(.+)$", conf, re.M).group(1).strip()
db = sqlite3.connect(state + "/cmbridge.db")
db.execute("DELETE FROM devices WHERE key = ?", (sys.argv[2],))
db.commit()
PY
trig() { "$CMBRIDGE_LAB" trigger "$LAB" "$1" "$2" | tail -1; }
id_notallowed=$(trig "$(dev 0)" fullScan)
id_scope=$(trig "$(dev 1)" refreshMachinePolicy)
id_unknown_wipe=$(trig "$(dev 2)" wipe)
id_retire=$(trig "$(dev 3)" retire)
RCONF2=$(conf_with refused actions.batch_window=0 actions.status_poll_interval=1 \
  actions.allowed=refreshMachinePolicy,quickScan,retire,wipe)
timeout 120 "$CMBRIDGE" -c "$RCONF2" relay --once > "$TMP/relay2.txt" 2>"$TMP/relay2.log"; rc=$?
expect_eq "relay --once (refusals) exit status" 0 "$rc"
lab_stats
expect_eq "no new site targets for refusals" 1000 "$(stat "['site']['operationTargets']")"
expect_eq "nothing blocked" 0 "$(stat "['site']['blockedClients']")"
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
TOKEN=$(graph_token)
state_of() { # state_of DEVICE-INDEX ACTION-ID -> actionState of that action in deviceActionResults
  curl -sS --cacert "$LAB/ca.pem" -H "Authorization: Bearer $TOKEN" \
    "$GRAPH/deviceManagement/managedDevices/$(dev "$1")?\$select=deviceActionResults" > "$TMP/dar.json"
  "$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/la.json"
  local name; name=$(jget "$TMP/la.json" "[a['action'] for a in d['value'] if a['id']=='$2'][0]")
  jget "$TMP/dar.json" "[r['actionState'] for r in d['deviceActionResults'] if r['actionName']=='$name'][-1]"
}
expect_eq "not allowed -> failed" failed "$(state_of 0 "$id_notallowed")"
expect_eq "out of scope -> failed" failed "$(state_of 1 "$id_scope")"
expect_eq "wipe -> notSupported" notSupported "$(state_of 2 "$id_unknown_wipe")"
expect_eq "retire without allow_destructive -> notSupported" notSupported "$(state_of 3 "$id_retire")"
for id in "$id_notallowed" "$id_scope" "$id_unknown_wipe" "$id_retire"; do
  "$CMBRIDGE" -c "$RCONF2" actions show "$id" --json > "$TMP/show.json"
  expect_eq "audit row 'refused' for $id" 1 "$(jget "$TMP/show.json" "sum(1 for h in d['history'] if h['event']=='refused')")"
done

say "an unknown action (the tenant refuses it at trigger time; the relay refuses it if it arrives)"
out=$("$CMBRIDGE_LAB" trigger "$LAB" "$(dev 4)" rebootNow 2>&1); rc=$?
expect_eq "lab refuses an unknown configurationManagerActionType member" 1 "$([ "$rc" != 0 ] && echo 1 || echo 0)"

say "expired actions fail and are never delivered"
"$CMBRIDGE_LAB" down "$LAB" >/dev/null
sed -i 's/^ttl = .*/ttl = 2/' "$LAB/lab.conf"
"$CMBRIDGE_LAB" up "$LAB" --detach >/dev/null || { echo "FAIL: lab up"; exit 1; }
id_expired=$(trig "$(dev 5)" quickScan)
sleep 3
timeout 120 "$CMBRIDGE" -c "$RCONF2" relay --once > "$TMP/relay3.txt" 2>"$TMP/relay3.log"; rc=$?
expect_eq "relay --once (expired) exit status" 0 "$rc"
lab_stats
TOKEN=$(graph_token)
expect_eq "expired -> failed" failed "$(state_of 5 "$id_expired")"
expect_eq "expired: not delivered" 0 "$(stat "['actions']['deliveredAfterExpiry']")"
"$CMBRIDGE" -c "$RCONF2" actions show "$id_expired" --json > "$TMP/show.json"
expect_eq "expired: errorCode 4 (expired)" 4 "$(jget "$TMP/show.json" "d['action']['errorCode']")"
expect_eq "expired: audit row refused" 1 "$(jget "$TMP/show.json" "sum(1 for h in d['history'] if h['event']=='refused')")"

finish
