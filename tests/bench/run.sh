#!/usr/bin/env bash
# The scale benchmark in one command (docs/performance.md):
#   ./tests/bench/run.sh [N]        N devices, default 10000
# Builds into ./build if it is not built yet, then runs tests/bench/scale.sh
# nice'd, writing bench-scale-N.json in the current directory. Environment:
# BUILD_DIR (default ./build), BENCH_PACED (0 skips the full sync at the
# default pacing), BENCH_ACTIONS, BENCH_BASELINE_SAMPLE, BENCH_OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -x "$build/connector/cmbridge" ] || [ ! -x "$build/lab/cmbridge-lab" ] ||
   [ ! -x "$build/tests/tools/parse_floor" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build "$build" -j2 > /dev/null
fi
export CMBRIDGE=$build/connector/cmbridge CMBRIDGE_LAB=$build/lab/cmbridge-lab
export CANNED_SERVER=$build/tests/tools/canned_server PARSE_FLOOR=$build/tests/tools/parse_floor
export BENCH_DEVICES=${1:-${BENCH_DEVICES:-10000}}
exec nice -n 10 bash "$here/scale.sh"
