#!/usr/bin/env bash
# SIGKILL the policy relay at seeded random points while it applies
# policies, at least $KILLS times, with the tenant changing policies
# between runs; then one poll to completion. Every policy the tenant still
# has is at the site exactly once, at the version and content the
# connector's state says, carrying the tenant's latest lastModifiedDateTime;
# every deleted one is gone; no write went backwards (no 409) and no
# journal row is left open (docs/policies.md, "Journal").
#
# The site answers slowly (40 ms a request) and loses a fifth of its
# replies while the kills go on: the write happened, the connector never
# heard of it, so a kill between journal row and outcome is certain, and
# only reading the site back can settle it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/policies_lib.sh"
require sqlite3

N=${POLICY_CRASH_POLICIES:-30}
KILLS=${POLICY_CRASH_KILLS:-20}
RANDOM=${POLICY_CRASH_SEED:-4711}

pol_setup --devices 200 --seed 7

body() { # body NAME GENERATION: a policy whose content changes with GENERATION (exclusions merge: no conflict)
  pbody "$1" endpointSecurityAntivirus "$(s_choice "$RTM" 1)" "$(s_strings "${AV}_excludedpaths" "C:\\$1\\gen$2")"
}
say "$N policies on PS100012 and PS100014"
declare -a IDS GEN
for i in $(seq 0 $((N - 1))); do
  body "p$i" 0 > "$TMP/b.json"
  IDS[$i]=$(pcreate "$TMP/b.json") || { echo "FAIL: create"; exit 1; }
  GEN[$i]=0
  passign "${IDS[$i]}" $([ $((i % 2)) = 0 ] && echo PS100012 || echo PS100014)
done

say "at least $KILLS runs killed with SIGKILL after 0.1-1.5 s; policies change between runs"
"$CMBRIDGE_LAB" faults "$LAB" --site --latency-ms 40 --rate-reply-lost 0.2 --seed "${POLICY_CRASH_SEED:-4711}" > /dev/null ||
  { echo "FAIL: cmbridge-lab faults"; exit 1; }
declare -A DELETED
killed=0; runs=0
while [ "$killed" -lt "$KILLS" ] && [ "$runs" -lt 200 ]; do
  runs=$((runs + 1))
  # Three policies change (some twice between two polls), every seventh run one is deleted.
  for k in 1 2 3; do
    i=$((RANDOM % N))
    [ -n "${DELETED[$i]:-}" ] && continue
    GEN[$i]=$((GEN[$i] + 1))
    body "p$i" "${GEN[$i]}" | jq -c 'del(.templateReference)' > "$TMP/u.json"
    "$CMBRIDGE_LAB" policy "$LAB" update "${IDS[$i]}" "$TMP/u.json" > /dev/null || echo "FAIL: update p$i"
  done
  if [ $((runs % 7)) = 0 ]; then
    i=$((RANDOM % N))
    if [ -z "${DELETED[$i]:-}" ]; then
      "$CMBRIDGE_LAB" policy "$LAB" delete "${IDS[$i]}" > /dev/null && DELETED[$i]=1
    fi
  fi
  "$CMBRIDGE" -c "$PCONF" policies --once > "$TMP/run-$runs.txt" 2> "$TMP/run-$runs.log" &
  pid=$!
  ms=$((100 + RANDOM % 1401))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null
done
echo "killed $killed of $runs runs (the others had finished)"
lab_stats
lost=$(stat "['faults']['repliesLost']")
"$CMBRIDGE_LAB" faults "$LAB" --site --clear > /dev/null || { echo "FAIL: cmbridge-lab faults --clear"; exit 1; }
STATE_DB="$(sed -n 's/^state_dir *= *//p' "$PCONF")/cmbridge.db"
open_rows=$(sqlite3 "$STATE_DB" "SELECT count(*) FROM policy_journal WHERE outcome IS NULL")
echo "journal rows left open by the kills: $open_rows"

say "final poll to completion"
timeout 120 "$CMBRIDGE" -c "$PCONF" policies --once > "$TMP/final.txt" 2> "$TMP/final.log"; rc=$?
expect_eq "final poll exit status" 0 "$rc"
cat "$TMP/final.txt"
expect_eq "killed at least $KILLS times ($killed)" yes "$([ "$killed" -ge "$KILLS" ] && echo yes || echo no)"
expect_match "the site lost replies while the kills went on ($lost)" '^[1-9][0-9]*$' "$lost"
expect_eq "no journal row left open" 0 "$(sqlite3 "$STATE_DB" "SELECT count(*) FROM policy_journal WHERE outcome IS NULL")"
expect_match "the journal has adopted rows: interrupted writes found done at the site, not sent again" '^[1-9][0-9]*$' \
  "$(sqlite3 "$STATE_DB" "SELECT count(*) FROM policy_journal WHERE outcome = 'adopted'")"

say "every site document exactly once, at the right version and content"
lab_stats
alive=$((N - ${#DELETED[@]}))
expect_eq "documents at the site = policies the tenant still has" "$alive" "$(stat "['policies']['siteDocuments']")"
expect_eq "no document twice" 0 "$(stat "['policies']['duplicateDocuments']")"
expect_eq "no write went backwards (409)" 0 "$(stat "['policies']['siteConflicts']")"
site_docs > "$TMP/site.json"
"$CMBRIDGE" -c "$PCONF" policies --json > "$TMP/state.json"
"$CMBRIDGE_LAB" policy "$LAB" list --json > "$TMP/tenant.json"
bad=0
for i in $(seq 0 $((N - 1))); do
  id=${IDS[$i]}
  got=$(jq -r --arg id "$id" '[.value[] | select(.tenantPolicyId == $id) | "\(.version) \(.contentHash)"] | join(";")' "$TMP/site.json")
  if [ -n "${DELETED[$i]:-}" ]; then
    [ -z "$got" ] || { echo "FAIL: deleted p$i still at the site: $got"; bad=$((bad + 1)); }
    continue
  fi
  want=$(jq -r --arg id "$id" '.[] | select(.id == $id) | "\(.version) \(.contentHash)"' "$TMP/state.json")
  st=$(jq -r --arg id "$id" '.[] | select(.id == $id) | .state' "$TMP/state.json")
  [ "$got" = "$want" ] && [ "$st" = applied ] || { echo "FAIL: p$i: site [$got], state [$want] $st"; bad=$((bad + 1)); }
  # The document carries the tenant's latest content: its exclusion of the last generation.
  grep -qF "C:\\p$i\\gen${GEN[$i]}<" <<< "$(site_get "CmbridgePolicy('$id')")" ||
    { echo "FAIL: p$i: the site's document is not generation ${GEN[$i]}"; bad=$((bad + 1)); }
done
expect_eq "every policy: the site's version and hash are the state's, latest content" 0 "$bad"
poll
lab_stats
expect_eq "a poll after it all writes nothing" "0 0" \
  "$(grep -o 'site: [0-9]* written' "$TMP/poll.txt" | grep -o '[0-9]*') $(grep -o '[0-9]* removed' "$TMP/poll.txt" | grep -o '[0-9]*')"
finish
