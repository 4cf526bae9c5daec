#!/usr/bin/env bash
# [sync] retry_budget = 0 makes exactly one attempt per request, towards the
# site and towards the tenant alike: both adapters take their retry policy
# from one builder (cmb_retry_policy_from_config). With every request of one
# side answered 500, the lab's request log must show each request once; a
# control run with max_attempts = 2 shows each twice, so the count does see
# retries when there are some.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 50 --seed 9
NORETRY=$(conf_with noretry sync.retry_budget=0)
TWICE=$(conf_with twice sync.max_attempts=2)

faults() { "$CMBRIDGE_LAB" faults "$LAB" "$@" > /dev/null || { echo "FAIL: cmbridge-lab faults $*"; exit 1; }; }
# Lines of the request log after line $1.
since() { tail -n +"$(($1 + 1))" "$LAB/requests.log"; }
# requests SIDE MARK: requests of that side since MARK.
requests() { since "$2" | awk -v s="$1" '$2 == s' | wc -l; }
# most_tries SIDE MARK: how often the most repeated request (method and path) of that side was made since MARK.
most_tries() { since "$2" | awk -v s="$1" '$2 == s { print $3, $4 }' | sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 }'; }
injected500() { lab_stats; stat "['faults']['injected500']"; }

# one_sync NAME CONF: one sync; sets MARK (request log before it), RC, and BEFORE (injected 500s before it).
one_sync() {
  BEFORE=$(injected500)
  MARK=$(wc -l < "$LAB/requests.log")
  "$CMBRIDGE" -c "$2" sync > "$TMP/$1.out" 2> "$TMP/$1.err"; RC=$?
}

# one_attempt SIDE: with every SIDE request failing, one sync under retry_budget = 0 tries each once.
one_attempt() {
  one_sync "$1-noretry" "$NORETRY"
  local n; n=$(requests "$1" "$MARK")
  expect_eq "the cycle fails" 1 "$RC"
  expect_match "the $1 was asked ($n requests)" '^[1-9]' "$n"
  expect_eq "each $1 request was made once" 1 "$(most_tries "$1" "$MARK")"
  expect_eq "every one of them was an injected 500" "$n" "$(($(injected500) - BEFORE))"
  expect_eq "no retry announced in the log" 0 "$(grep -c 'trying again' "$TMP/$1-noretry.err")"
}
# two_attempts SIDE: the control, max_attempts = 2 and the default budget: each request twice.
two_attempts() {
  one_sync "$1-twice" "$TWICE"
  expect_eq "the cycle fails" 1 "$RC"
  expect_eq "each $1 request was made twice" 2 "$(most_tries "$1" "$MARK")"
  expect_match "the retries are announced in the log" '^[1-9]' "$(grep -c 'trying again' "$TMP/$1-twice.err")"
}

say "site: every request answered 500, retry_budget = 0"
faults --site --rate-500 1
one_attempt site
expect_eq "no tenant request after a failed read" 0 "$(requests tenant "$MARK")"

say "site: the control, max_attempts = 2"
two_attempts site

say "tenant: every request answered 500, retry_budget = 0"
faults --site --clear
faults --tenant --rate-500 1
one_attempt tenant
expect_match "the site was read" '^[1-9]' "$(requests site "$MARK")"

say "tenant: the control, max_attempts = 2"
two_attempts tenant

finish
