#!/usr/bin/env bash
# benchmarks/check-allocations.sh -- build the microbenchmarks (Microbenchmarks/, release) and
# check their malloc counts against the committed baseline
# Microbenchmarks/.benchmarkBaselines/SpopHotPath/allocations, with the tolerances written in
# Microbenchmarks/Benchmarks/SpopHotPath/SpopHotPath.swift (none for decode, encode and the
# engine path; a small ceiling for the Lua dispatch). Only malloc counts: never time.
# Exit status 0 when every count is within its threshold (or below it), 1 otherwise.
#
#   benchmarks/check-allocations.sh
#   UPDATE=1 benchmarks/check-allocations.sh   # rewrite the baseline from this run (then commit it)
#
# The counting is the benchmark package's MallocInterposer trait: no jemalloc needed.
set -uo pipefail
cd "$(dirname "$0")/../Microbenchmarks"

if [[ "${UPDATE:-0}" == 1 ]]; then
    exec swift package --allow-writing-to-package-directory benchmark baseline update allocations \
        --metric mallocCountTotal --no-progress
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
swift package benchmark baseline check allocations --metric mallocCountTotal --no-progress 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

if [[ $status == 0 ]]; then
    echo "== allocations: every malloc count is within its committed threshold"
    exit 0
elif grep -q "is BETTER than" "$log" && ! grep -q "is WORSE than" "$log"; then
    echo "== allocations: fewer mallocs than the committed baseline (a threshold is now loose:" \
        "UPDATE=1 benchmarks/check-allocations.sh and commit the baseline to tighten it)"
    exit 0
elif grep -q "is WORSE than" "$log"; then
    echo "== FAIL allocations: a malloc count exceeds its committed threshold (table above:" \
        "benchmark, percentile, baseline and measured count per 1000 messages)" >&2
    exit 1
else
    echo "== FAIL allocations: the benchmarks did not build or run (status $status)" >&2
    exit 1
fi
