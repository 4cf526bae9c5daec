#!/usr/bin/env bash
# The test command: installs what is missing, builds (warnings are errors),
# and runs the whole suite (unit + integration) with ctest.
#   ./tests/run.sh             all tests
#   ./tests/run.sh -L unit     only one label (any ctest arguments pass through)
#   CMB_SANITIZE=1 ./tests/run.sh -L unit
#                              an AddressSanitizer + UBSan build (in build-asan)
#   CMB_FUZZ=1 ./tests/run.sh  the libFuzzer targets, built with clang (in
#                              build-fuzz), each run 20 s from its corpus
#                              (label fuzz-smoke; CMB_FUZZ=1 ./tests/run.sh -L '^fuzz$'
#                              is the 10-minute run of each, docs/reliability.md)
#   CMB_VALGRIND=1 ./tests/run.sh
#                              integration tests with cmbridge under valgrind
#                              memcheck (label valgrind, docs/reliability.md)
# Long benchmarks, fuzz runs and the valgrind run carry the labels bench,
# fuzz and valgrind and are not run by default (-LE 'bench|fuzz|valgrind').
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
SAN=${CMB_SANITIZE:-0}
if [ "${CMB_FUZZ:-0}" = 1 ]; then
  # Only the fuzz targets and what they link: clang, instrumented throughout.
  BUILD=${CMB_BUILD_DIR:-build-fuzz}
  CC=clang cmake -S . -B "$BUILD" -DCMB_FUZZ=ON -DCMB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target fuzz-targets
  cd "$BUILD"
  [ $# -eq 0 ] && set -- -L '^fuzz-smoke$'
  exec ctest --output-on-failure -j2 "$@"
fi
if [ "$SAN" = 1 ]; then
  BUILD=${CMB_BUILD_DIR:-build-asan}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  BUILD=${CMB_BUILD_DIR:-build}
fi
VG=${CMB_VALGRIND:-0}
cmake -S . -B "$BUILD" -DCMB_WERROR=ON -DCMB_SANITIZE="$([ "$SAN" = 1 ] && echo ON || echo OFF)" \
  -DCMB_VALGRIND="$([ "$VG" = 1 ] && echo ON || echo OFF)" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
if [ $# -eq 0 ] && [ "$VG" = 1 ]; then
  set -- -L '^valgrind$'
elif [ $# -eq 0 ]; then
  set -- -LE 'bench|fuzz|valgrind'
fi
ctest --output-on-failure -j2 "$@"
