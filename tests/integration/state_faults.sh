#!/usr/bin/env bash
# Faults of the state database (docs/reliability.md, "Faults"): another
# process holding its write lock, briefly and then past busy_timeout in the
# middle of a cycle; the disk full while writing it (RLIMIT_FSIZE through
# `ulimit -f`, with SIGXFSZ ignored so writes fail with EFBIG: works
# unprivileged); a corrupted database, refused at start with a clear
# message and never replaced, re-uploaded from or emptied. Each cycle that
# fails says what and where; the next one ends with the tenant exactly
# right: every in-scope device once, created once, nothing left to do.
. "$(dirname "$0")/lib.sh"

lab_init_up --devices 300 --seed 31 --page-size 100
# Small batches at the default tenant rate (5 a second): a cycle of about six seconds, thirty commits.
FCONF=$(conf_with state tenant.batch_size=10)
DB="$(sed -n 's/^state_dir *= *//p' "$CONF")/cmbridge.db"
sync_to() { "$CMBRIDGE" -c "$FCONF" sync "${@:2}" > "$TMP/$1.out" 2>&1; echo $? > "$TMP/$1.rc"; }

# exactly_right WHAT: the next cycle succeeds; then the tenant holds every in-scope device once, each
# created once, and one more cycle finds nothing to do.
exactly_right() {
  sync_to next
  expect_eq "$1: the next cycle succeeds" 0 "$(cat "$TMP/next.rc")"
  sync_to next
  cmb_status; lab_stats
  expect_eq "$1: one more cycle succeeds" 0 "$(cat "$TMP/next.rc")"
  expect_eq "$1: and finds nothing to add, change or remove" "0 0 0" \
    "$(jget "$TMP/status.json" "' '.join(str(d['cycles'][0]['counts'][k]) for k in ('added', 'changed', 'removed'))")"
  expect_eq "$1: the tenant holds the in-scope devices" "$IN_SCOPE" "$(stat "['tenant']['devices']")"
  expect_eq "$1: each created once" "$CREATED" "$(stat "['tenant']['recordsCreated']")"
  expect_eq "$1: the connector agrees" "$IN_SCOPE" "$(jget "$TMP/status.json" "d['devicesAttached']")"
  expect_eq "$1: nothing in flight" 0 "$(jget "$TMP/status.json" "d['inFlight']")"
}

say "a first full sync"
sync_to first
expect_eq "first sync" 0 "$(cat "$TMP/first.rc")"
cmb_status
IN_SCOPE=$(jget "$TMP/status.json" "d['devicesAttached']")
CREATED=$IN_SCOPE   # devices the tenant must have created, each once, since the lab started
echo "in scope: $IN_SCOPE"

say "another process holds the write lock for 2 s (within busy_timeout): the cycle waits and succeeds"
"$CMBRIDGE_LAB" mutate "$LAB" --change 40 > /dev/null
python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN IMMEDIATE"); print("held", flush=True)
time.sleep(2); c.execute("ROLLBACK")' "$DB" > "$TMP/hold1.out" &
holder=$!
for _ in $(seq 50); do grep -q held "$TMP/hold1.out" 2>/dev/null && break; sleep 0.1; done
sync_to lock1
wait "$holder"
expect_eq "short lock: the cycle succeeds" 0 "$(cat "$TMP/lock1.rc")"
cmb_status
expect_eq "short lock: 40 changed" 40 "$(cycle_count changed)"

say "another process holds the write lock 8 s (past busy_timeout, 5 s) as a cycle starts"
# Before the cycle, not inside it: the engine's transactions follow each other within microseconds, so
# another process could take the lock between two of them only by chance.
"$CMBRIDGE_LAB" mutate "$LAB" --change 150 --add 30 > /dev/null
IN_SCOPE=$((IN_SCOPE + 30)); CREATED=$((CREATED + 30))
lab_stats
writes=$(stat "['tenant']['writes']")
python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute("BEGIN IMMEDIATE"); print("held", flush=True)
time.sleep(8); c.execute("ROLLBACK")' "$DB" > "$TMP/hold2.out" &
holder=$!
for _ in $(seq 50); do grep -q held "$TMP/hold2.out" 2>/dev/null && break; sleep 0.1; done
sync_to lock2
wait "$holder"
expect_eq "lock past busy_timeout: the cycle fails" 1 "$(cat "$TMP/lock2.rc")"
expect_match "lock past busy_timeout: the error names the database and the lock" \
  "state database $DB: .*database is locked" "$(cat "$TMP/lock2.out")"
lab_stats
expect_eq "lock past busy_timeout: nothing was sent to the tenant" "$writes" "$(stat "['tenant']['writes']")"
exactly_right "after the lock"

say "the disk full while writing the state (ulimit -f 64 KiB: EFBIG)"
"$CMBRIDGE_LAB" mutate "$LAB" --change 150 --add 20 --delete 10 > /dev/null
IN_SCOPE=$((IN_SCOPE + 20 - 10)); CREATED=$((CREATED + 20))
# The WAL starts empty after a checkpoint; 64 KiB holds a few of this cycle's commits, not all.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$DB"
( trap '' XFSZ; ulimit -f 64; exec "$CMBRIDGE" -c "$FCONF" sync --allow-deletes 10 ) 2>&1 | cat > "$TMP/full.out"
rc=${PIPESTATUS[0]}
expect_eq "disk full: the cycle fails" 1 "$rc"
expect_match "disk full: the error names the database and the write" \
  "state database $DB: .*(disk I/O error|database or disk is full)" "$(cat "$TMP/full.out")"
python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$DB" > "$TMP/integrity.txt"
expect_eq "disk full: the database is intact" ok "$(cat "$TMP/integrity.txt")"
sync_to full2 --allow-deletes 10
expect_eq "disk full: with room again the cycle succeeds" 0 "$(cat "$TMP/full2.rc")"
exactly_right "after the disk full"

say "a corrupted state database is refused at start, never replaced or worked around"
lab_stats
writes=$(stat "['tenant']['writes']")
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$DB"
cp "$DB" "$TMP/good.db"
# The root page of the devices table overwritten (quick_check at open reads every b-tree page).
python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'devices'").fetchone()[0]
size = c.execute("PRAGMA page_size").fetchone()[0]
c.close()
f = open(sys.argv[1], "r+b"); f.seek((root - 1) * size); f.write(b"\xa5" * size); f.close()
PY
cp "$DB" "$TMP/corrupt.db"
for cmd in "sync" "sync --full" "relay --once"; do
  # shellcheck disable=SC2086
  timeout 60 "$CMBRIDGE" -c "$FCONF" $cmd > "$TMP/corrupt.out" 2>&1; rc=$?
  expect_eq "corrupt: $cmd exits non-zero" 1 "$rc"
  expect_match "corrupt: $cmd says the database is corrupt" "state database $DB is corrupt \(" \
    "$(cat "$TMP/corrupt.out")"
  expect_match "corrupt: $cmd says what to do" "cmbridge will not use it: stop cmbridge, move the file .* aside" \
    "$(cat "$TMP/corrupt.out")"
done
"$CMBRIDGE" -c "$FCONF" status > "$TMP/corrupt-status.out" 2>&1; rc=$?
expect_eq "corrupt: status exits non-zero" 1 "$rc"
expect_match "corrupt: status says so too" "state database $DB is corrupt" "$(cat "$TMP/corrupt-status.out")"
expect_eq "corrupt: the file is left as it was" "$(sha256sum < "$TMP/corrupt.db")" "$(sha256sum < "$DB")"
lab_stats
expect_eq "corrupt: nothing was sent to the tenant (no upload, no removal)" "$writes" "$(stat "['tenant']['writes']")"
# The header itself garbled: not a database at all.
cp "$TMP/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
printf 'this is not a SQLite database, it only has the name of one' | dd of="$DB" conv=notrunc status=none
"$CMBRIDGE" -c "$FCONF" sync > "$TMP/corrupt2.out" 2>&1; rc=$?
expect_eq "not a database: sync exits non-zero" 1 "$rc"
expect_match "not a database: the message says so" "state database $DB is corrupt \(file is not a database\)" \
  "$(cat "$TMP/corrupt2.out")"
lab_stats
expect_eq "not a database: nothing was sent to the tenant" "$writes" "$(stat "['tenant']['writes']")"
say "the good copy back: the tenant is exactly right"
cp "$TMP/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
exactly_right "after the corruption"

finish
