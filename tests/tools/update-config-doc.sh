#!/usr/bin/env bash
# Rewrites what is generated from the option table in connector/config/config.c
# (build dir as $1, default build):
#   docs/config.md                 the option reference between its markers
#   deploy/man/cmbridge.conf.5.in  the OPTIONS between its markers
#   deploy/cmbridge.conf           the sample configuration, whole
# test_config checks the first, generated_files the other two.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
cmake --build "$BUILD" --target config_doc >/dev/null
python3 - "$BUILD/tests/tools/config_doc" <<'PY'
import subprocess, sys

def gen(*args):
    return subprocess.run([sys.argv[1], *args], check=True, capture_output=True, text=True).stdout

def splice(path, begin_marker, end_marker, text):
    doc = open(path).read()
    begin = doc.index("\n", doc.index(begin_marker)) + 1
    end = doc.index(end_marker)
    open(path, "w").write(doc[:begin] + text + doc[end:])

splice("docs/config.md", "<!-- BEGIN generated", "<!-- END generated", gen())
splice("deploy/man/cmbridge.conf.5.in", '.\\" BEGIN generated', '.\\" END generated', gen("--man"))
open("deploy/cmbridge.conf", "w").write(gen("--template"))
PY
