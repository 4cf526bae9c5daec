#!/usr/bin/env bash
# Mixed outcomes end to end against the lab, with the site's offline list
# spread over several pages (the lab's pages hold 10 rows): the relay reads
# that list a page at a time between passes, once for both operations,
# and every action of a device the site lists offline fails with errorCode
# 2 while the others are done (docs/actions.md, step 5).
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 400 --seed 5 --page-size 10
"$CMBRIDGE" -c "$CONF" sync >/dev/null 2>&1 || { echo "FAIL: first sync"; exit 1; }
RCONF=$(conf_with relay actions.batch_window=0 actions.status_poll_interval=1 log.level=debug "log.file=$TMP/relay.log")

say "two operations of 150 targets each, some of them offline"
"$CMBRIDGE_LAB" trigger "$LAB" --many 150 quickScan --devices 150 >/dev/null || { echo "FAIL: trigger quickScan"; exit 1; }
"$CMBRIDGE_LAB" trigger "$LAB" --many 150 fullScan --devices 150 >/dev/null || { echo "FAIL: trigger fullScan"; exit 1; }
timeout 120 "$CMBRIDGE" -c "$RCONF" relay --once > "$TMP/relay.out" 2> "$TMP/relay.err"; rc=$?
expect_eq "relay --once exit status" 0 "$rc"
[ "$rc" = 0 ] || tail -20 "$TMP/relay.err"

relay_pages=$(grep -c 'GET /AdminService/wmi/SMS_CN_ClientStatus' "$LAB/requests.log")

# The site's own offline list, every page followed (nextLink), as the truth to compare with.
SITE=$(sed -n 's/^url = \(https:.*AdminService\)$/\1/p' "$CONF" | head -1)
USER=$(sed -n 's/^username = //p' "$CONF" | head -1)
python3 - "$SITE" "$USER" "$LAB" > "$TMP/offline.txt" <<'PY'
import base64, json, ssl, sys, urllib.request
site, user, lab = sys.argv[1:4]
auth = base64.b64encode(("%s:%s" % (user, open(lab + "/site-password").read().strip())).encode()).decode()
ctx = ssl.create_default_context(cafile=lab + "/ca.pem")
url = site + "/wmi/SMS_CN_ClientStatus?$filter=OnlineStatus%20eq%200&$select=ResourceID"
pages = 0
while url:
    req = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
    d = json.load(urllib.request.urlopen(req, context=ctx))
    pages += 1
    for row in d["value"]:
        print(row["ResourceID"])
    url = d.get("@odata.nextLink")
open(lab + "/../pages.txt", "w").write("%d\n" % pages)
PY
n_off=$(wc -l < "$TMP/offline.txt")
expect_match "the site lists clients offline on several pages ($n_off)" '^([2-9][0-9])$' "$n_off"

"$CMBRIDGE_LAB" actions "$LAB" --json > "$TMP/actions.json"
python3 - "$TMP/actions.json" "$TMP/offline.txt" > "$TMP/check.txt" <<'PY'
import json, sys
acts = json.load(open(sys.argv[1]))["value"]
off = {int(l) for l in open(sys.argv[2]) if l.strip()}
counts = {"offline_failed": 0, "done": 0, "wrong": 0}
for a in acts:
    rid = int(a["key"].split(":")[1])
    if rid in off:
        ok = a["actionState"] == "failed" and a["errorCode"] == 2
        counts["offline_failed" if ok else "wrong"] += 1
    else:
        ok = a["actionState"] == "done"
        counts["done" if ok else "wrong"] += 1
    if not ok:
        print("wrong:", a["key"], a["action"], a["actionState"], a["errorCode"], file=sys.stderr)
print(counts["offline_failed"], counts["done"], counts["wrong"], len(acts))
PY
read -r n_failed n_done n_wrong n_acts < "$TMP/check.txt"
expect_eq "actions in the tenant" 300 "$n_acts"
expect_eq "actions whose result contradicts the site's offline list" 0 "$n_wrong"
expect_match "offline targets failed with errorCode 2 ($n_failed)" '^[1-9][0-9]*$' "$n_failed"
expect_eq "failed + done" 300 "$((n_failed + n_done))"
# Both operations are found finished in one pass unless the lab settled one of them a poll later.
reads=$(grep -c 'clients offline at the site' "$TMP/relay.log")
expect_match "complete reads of the offline list ($reads): one for both operations, two at most" '^[12]$' "$reads"
expect_eq "each read's count is the site's" "$n_off clients offline at the site" \
  "$(grep -o '[0-9]* clients offline at the site' "$TMP/relay.log" | sort -u)"
expect_eq "offline list requests: every page of each read, none twice" "$(( reads * $(cat "$TMP/pages.txt") ))" "$relay_pages"
finish
