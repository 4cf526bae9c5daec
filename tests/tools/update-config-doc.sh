#!/usr/bin/env bash
# Rewrites the generated option reference inside docs/config.md from the
# option table in connector/config.c (build dir as $1, default build).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
cmake --build "$BUILD" --target config_doc >/dev/null
python3 - "$BUILD/tests/tools/config_doc" <<'PY'
import subprocess, sys
gen = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
doc = open("docs/config.md").read()
begin = doc.index("\n", doc.index("<!-- BEGIN generated")) + 1
end = doc.index("<!-- END generated")
open("docs/config.md", "w").write(doc[:begin] + gen + doc[end:])
PY
