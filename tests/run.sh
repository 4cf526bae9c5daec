#!/usr/bin/env bash
# The test command: installs what is missing, builds (warnings are errors),
# and runs the whole suite (unit + integration) with ctest.
#   ./tests/run.sh             all tests
#   ./tests/run.sh -L unit     only one label (any ctest arguments pass through)
# Long benchmarks and fuzz runs carry the labels bench and fuzz and are not
# run here.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
BUILD=${CMB_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
if [ $# -eq 0 ]; then
  set -- -LE 'bench|fuzz'
fi
ctest --output-on-failure -j2 "$@"
