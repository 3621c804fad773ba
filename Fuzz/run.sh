#!/usr/bin/env bash
# Fuzz/run.sh -- builds the libFuzzer binary and fuzzes both targets.
#
#   Fuzz/run.sh                 # 60 s per target
#   SECONDS_PER_TARGET=3600 JOBS=1 Fuzz/run.sh frames   # the long run, one target
#   SECONDS_PER_TARGET=30 Fuzz/run.sh                   # the short run of ./run-tests.sh
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
    # libFuzzer exits non-zero on a crash, sanitizer report, broken invariant
    # (precondition) or timeout: show its last lines and fail.
    if ! (cd .build-fuzz && SPOP_FUZZ_TARGET=$target "$binary" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 \
        -print_final_stats=1 -timeout=60 -rss_limit_mb=4096 "corpus/$target" "../Fuzz/corpus/$target" 2>&1 |
        tee "fuzz-$target.log" | grep -E "^#[0-9]+[[:space:]]+(INITED|DONE|pulse)|ERROR|SUMMARY|stat::" >&2); then
        tail -n 40 ".build-fuzz/fuzz-$target.log" >&2
        echo "fuzz $target: FAILED (whole output: .build-fuzz/fuzz-$target.log; the input: .build-fuzz/crash-* or timeout-*)" >&2
        exit 1
    fi
    # One line per target: executions and coverage at the end.
    done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" ".build-fuzz/fuzz-$target.log" | tail -n 1)
    echo "fuzz $target: ${SECONDS_PER_TARGET}s, $(grep -oE "number_of_executed_units: [0-9]+" ".build-fuzz/fuzz-$target.log" |
        grep -oE "[0-9]+") execs, $(grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" <<<"$done_line"), no finding" >&2
done
