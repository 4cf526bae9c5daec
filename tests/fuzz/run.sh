#!/bin/sh
# run.sh BINARY TARGET SECONDS SOURCE_DIR [libFuzzer options...]
# Runs one libFuzzer target for SECONDS from its seed corpus
# (SOURCE_DIR/corpus/TARGET, only read) and its dictionary
# (SOURCE_DIR/TARGET.dict, when there is one). New inputs go to
# work-TARGET in the current directory; a crash, leak, timeout or sanitizer
# finding is saved there as crash-*/leak-*/timeout-* and fails the run.
# Every seed is executed first, so the regression inputs are replayed too.
set -eu
bin=$1 target=$2 seconds=$3 src=$4
shift 4
work=work-$target
mkdir -p "$work"
set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$@"
if [ -f "$src/$target.dict" ]; then
  set -- -dict="$src/$target.dict" "$@"
fi
exec "$bin" "$@" "$work" "$src/corpus/$target"
