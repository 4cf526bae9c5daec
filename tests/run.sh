#!/usr/bin/env bash
# The test command: installs what is missing, builds (warnings are errors),
# and runs the whole suite (unit + integration) with ctest.
#   ./tests/run.sh             all tests
#   ./tests/run.sh -L unit     only one label (any ctest arguments pass through)
#   CMB_SANITIZE=1 ./tests/run.sh -L unit
#                              an AddressSanitizer + UBSan build (in build-asan)
# Long benchmarks and fuzz runs carry the labels bench and fuzz and are not
# run here.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
SAN=${CMB_SANITIZE:-0}
if [ "$SAN" = 1 ]; then
  BUILD=${CMB_BUILD_DIR:-build-asan}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  BUILD=${CMB_BUILD_DIR:-build}
fi
cmake -S . -B "$BUILD" -DCMB_WERROR=ON -DCMB_SANITIZE="$([ "$SAN" = 1 ] && echo ON || echo OFF)" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
if [ $# -eq 0 ]; then
  set -- -LE 'bench|fuzz'
fi
ctest --output-on-failure -j2 "$@"
