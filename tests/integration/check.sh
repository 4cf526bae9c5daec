#!/usr/bin/env bash
# cmbridge check covers what a cycle needs: a gateway_url holding the path
# the connector appends is refused with the base to write; a wrong one is
# probed and refused; [actions] allowed names are checked all at once with
# line numbers and suggestions; a half-turned retire pair warns; a token
# without the roles a cycle needs fails (the lab issuing fewer roles);
# both sides down answer in seconds, one line each. Exact lines and exit
# statuses (0 ok, 1 a side failed, 2 the configuration).
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 30 --seed 5

run() { # run NAME CONF: stdout, stderr and exit status of `check` in $TMP/NAME.*
  "$CMBRIDGE" -c "$2" check > "$TMP/$1.out" 2> "$TMP/$1.err"; echo $? > "$TMP/$1.rc"
}
steps() { sed -n 's/^\([a-z]*:\) .*/\1/p' "$TMP/$1.out" | tr '\n' ' '; }

GW=$(sed -n 's/^gateway_url *= *//p' "$CONF")
GRAPH=$(sed -n 's/^graph_url *= *//p' "$CONF")
CID=$(sed -n 's/^client_id *= *//p' "$CONF")

say "everything answers: every step ok"
run ok "$CONF"
expect_eq "exit status" 0 "$(cat "$TMP/ok.rc")"
expect_eq "the steps, in order" "config: site: tenant: roles: gateway: graph: " "$(steps ok)"
expect_eq "roles line" "roles:   DeviceManagementManagedDevices.ReadWrite.All, DeviceManagementConfiguration.Read.All" \
  "$(grep '^roles:' "$TMP/ok.out")"
expect_eq "gateway line" "gateway: $GW/api/gateway answers (notification channel read)" "$(grep '^gateway:' "$TMP/ok.out")"
expect_eq "graph line" "graph:   $GRAPH answers (a managedDevice read)" "$(grep '^graph:' "$TMP/ok.out")"
expect_eq "nothing FAILED" 0 "$(grep -c FAILED "$TMP/ok.out")"

say "a gateway_url holding the path the connector appends: refused, with the base to write"
DOUBLED=$(conf_with doubled "tenant.gateway_url=$GW/api/gateway/")
line=$(grep -n '^gateway_url' "$DOUBLED" | cut -d: -f1)
run doubled "$DOUBLED"
expect_eq "exit status" 2 "$(cat "$TMP/doubled.rc")"
expect_eq "the message" "cmbridge: $DOUBLED:$line: [tenant] gateway_url: \"$GW/api/gateway\" ends with a path the connector appends itself (/api/gateway/DevicePost and the other /api/gateway routes), so it would be requested twice (expected the base URL: write $GW)" \
  "$(cat "$TMP/doubled.err")"
expect_eq "nothing probed" "" "$(cat "$TMP/doubled.out")"

say "a gateway_url that is no gateway base: the probe says so"
WRONG=$(conf_with wrong "tenant.gateway_url=$GRAPH")
run wrong "$WRONG"
expect_eq "exit status" 1 "$(cat "$TMP/wrong.rc")"
expect_eq "the gateway line" "gateway: FAILED: [tenant] gateway_url $GRAPH (the base the gateway serves /api/gateway/ under): polling the notification channel: tenant answered HTTP 400 for $GRAPH/api/gateway/Notification?cursor=&wait=0: BadRequest: Resource not found for the segment '/beta/api/gateway/Notification'." \
  "$(grep '^gateway:' "$TMP/wrong.out")"
expect_eq "the other steps pass" 1 "$(grep -c FAILED "$TMP/wrong.out")"
expect_eq "the command's verdict" "cmbridge: check failed" "$(tail -1 "$TMP/wrong.err")"

say "[actions] allowed: every unknown name at once, with its line and the nearest action"
NAMES=$(conf_with names "actions.allowed=refreshMachinPolicy, fullScan, QuickScan, teleport")
line=$(grep -n '^allowed' "$NAMES" | cut -d: -f1)
run names "$NAMES"
expect_eq "exit status" 2 "$(cat "$TMP/names.rc")"
expect_eq "one line per mistake" "cmbridge: $NAMES:$line: [actions] allowed: \"refreshMachinPolicy\" is not an action the connector relays (did you mean refreshMachinePolicy?)
cmbridge: $NAMES:$line: [actions] allowed: \"QuickScan\" is not an action the connector relays (did you mean quickScan?)
cmbridge: $NAMES:$line: [actions] allowed: \"teleport\" is not an action the connector relays (see docs/actions.md)" \
  "$(cat "$TMP/names.err")"
"$CMBRIDGE" -c "$NAMES" status > /dev/null 2> "$TMP/names-status.err"; rc=$?
expect_eq "every command that loads the file refuses it" "2 3" "$rc $(wc -l < "$TMP/names-status.err")"

say "allow_destructive without retire in allowed: a warning, not a refusal"
HALF=$(conf_with half "actions.allowed=refreshMachinePolicy" "actions.allow_destructive=yes")
line=$(grep -n '^allow_destructive' "$HALF" | cut -d: -f1)
run half "$HALF"
expect_eq "exit status" 0 "$(cat "$TMP/half.rc")"
expect_eq "the warning" "actions: warning: $HALF:$line: [actions] allow_destructive = yes has no effect: retire is not in allowed, so it is still refused (add retire to allowed to relay it, or remove the line)" \
  "$(grep '^actions:' "$TMP/half.out")"

say "both sides down: seconds, one line per side"
DOWN=$(conf_with down site.url=https://127.0.0.1:9/AdminService \
  "tenant.authority=https://127.0.0.1:1/$(sed -n 's|^authority *= *https://[^/]*/||p' "$CONF")" \
  tenant.gateway_url=https://127.0.0.1:1 tenant.graph_url=https://127.0.0.1:1/beta)
t0=$(date +%s%N)
run down "$DOWN"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq "exit status" 1 "$(cat "$TMP/down.rc")"
expect_eq "under 5 s (default budget: 26 s one after the other)" yes "$([ "$ms" -lt 5000 ] && echo yes || echo "no: $ms ms")"
expect_eq "the report: config, then one line per side" "config: site: tenant: " "$(steps down)"
expect_match "site: why" '^site:    FAILED: .*https://127.0.0.1:9/AdminService/wmi/SMS_R_System.*Couldn.t connect to server \(gave up after 2 attempts' \
  "$(grep '^site:' "$TMP/down.out")"
expect_match "tenant: why" '^tenant:  FAILED: acquiring a token: request to the tenant at https://127.0.0.1:1/.*Couldn.t connect to server \(gave up after 2 attempts' \
  "$(grep '^tenant:' "$TMP/down.out")"
expect_eq "nothing else on stdout" 3 "$(wc -l < "$TMP/down.out")"

say "a token without the roles a cycle needs (the lab issues fewer): refused, with what to grant"
"$CMBRIDGE_LAB" down "$LAB" > /dev/null
sed -i 's/^roles = .*/roles = DeviceManagementConfiguration.Read.All/' "$LAB/lab.conf"
"$CMBRIDGE_LAB" up "$LAB" --detach > /dev/null || { echo "FAIL: lab up"; exit 1; }
run roles "$CONF"
expect_eq "exit status" 1 "$(cat "$TMP/roles.rc")"
expect_eq "the roles line" "roles:   FAILED: the token of client $CID lacks DeviceManagementManagedDevices.ReadWrite.All (device uploads, the warm standby's listing and remote actions); it carries DeviceManagementConfiguration.Read.All (add them as Microsoft Graph application permissions of the app registration and grant admin consent: docs/credentials.md)" \
  "$(grep '^roles:' "$TMP/roles.out")"
expect_match "Graph refuses the token as Intune does" \
  "^graph:   FAILED: \[tenant\] graph_url $GRAPH: reading one managedDevice: tenant denied client $CID access to .*/managedDevices\?\\\$top=1 \(HTTP 403: Forbidden: .*Application must have one of the following scopes: DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All" \
  "$(grep '^graph:' "$TMP/roles.out")"
"$CMBRIDGE" -c "$CONF" sync > "$TMP/roles-sync.out" 2>&1; rc=$?
expect_eq "and a cycle fails as check said" 1 "$rc"
expect_match "the upload was refused" 'DevicePost \(HTTP 403: Forbidden' "$(cat "$TMP/roles-sync.out")"

"$CMBRIDGE_LAB" down "$LAB" > /dev/null
sed -i 's/^roles = .*/roles = /' "$LAB/lab.conf"
"$CMBRIDGE_LAB" up "$LAB" --detach > /dev/null || { echo "FAIL: lab up"; exit 1; }
run noroles "$CONF"
expect_match "no roles at all: said so" "^roles:   FAILED: the token of client $CID lacks DeviceManagementManagedDevices.ReadWrite.All .*, DeviceManagementConfiguration.Read.All \(endpoint security policies\); it carries no roles" \
  "$(grep '^roles:' "$TMP/noroles.out")"

finish
