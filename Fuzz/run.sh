#!/usr/bin/env bash
# Fuzz/run.sh -- builds the libFuzzer binary and fuzzes both targets.
#
#   Fuzz/run.sh                 # 60 s per target
#   SECONDS_PER_TARGET=3600 JOBS=1 Fuzz/run.sh frames   # the long run, one target
#
# Each target starts from its seed corpus (Fuzz/corpus/<target>) and grows a work
# corpus in .build-fuzz/corpus/<target>; new inputs that add coverage can be merged
# back with `SpopFuzz -merge=1 Fuzz/corpus/<target> .build-fuzz/corpus/<target>`.
# A crash leaves crash-<sha1> in .build-fuzz/ and makes this script fail; replay it
# with `.build/debug/SpopFuzz <target> FILE` (no fuzzing toolchain needed). The 60 s
# per-input timeout is generous because a shared, loaded machine can stall a run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-60}
targets=("${@:-frames lua}")
# shellcheck disable=SC2206
targets=(${targets[*]})
binary=$(Fuzz/build.sh)
for target in "${targets[@]}"; do
    mkdir -p ".build-fuzz/corpus/$target"
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s" >&2
    (cd .build-fuzz && SPOP_FUZZ_TARGET=$target "$binary" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 \
        -print_final_stats=1 -timeout=60 -rss_limit_mb=4096 "corpus/$target" "../Fuzz/corpus/$target" 2>&1 |
        tee "fuzz-$target.log" | grep -E "^#[0-9]+ +(INITED|DONE|pulse)|ERROR|SUMMARY|stat::" >&2)
done
