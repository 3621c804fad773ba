#!/usr/bin/env bash
# tools/sanitizers/run.sh -- the tests under AddressSanitizer (+ LeakSanitizer) and
# ThreadSanitizer, each in its own build (.build-asan, .build-tsan), docs/reliability.md.
#
#   tools/sanitizers/run.sh                      # ASan and TSan, the unit suites (CI)
#   SCOPE=all tools/sanitizers/run.sh thread     # TSan, every test, end-to-end included
#
# The unit suites (codec, state machine, server over sockets, the Lua runtime and
# its C code, the fuzz corpus) do not depend on timing; the end-to-end ones run
# agents 5-15x slower and some of their waits are tuned for a normal build, so
# they are run by hand (SCOPE=all). Every process, the XCTest runner and each
# agent, writes its report to .build-sanitizers/<name>/report.<pid>: any error or
# race report fails the run, so a finding in an agent is not lost with its temporary log.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCOPE=${SCOPE:-unit}
SANITIZER_TIMEOUT=${SANITIZER_TIMEOUT:-1500}  # seconds per sanitizer's test run
unit_suites="LuaRuntimeTests|SpopEngineTests|FuzzCorpusTests|SpopBenchTests"
read -r -a sanitizers <<<"${*:-address thread}"

for sanitizer in "${sanitizers[@]}"; do
    case $sanitizer in
    address) scratch=.build-asan ;;
    thread) scratch=.build-tsan ;;
    *) echo "unknown sanitizer $sanitizer (address or thread)" >&2; exit 2 ;;
    esac
    reports=$PWD/.build-sanitizers/$sanitizer
    rm -rf "$reports" && mkdir -p "$reports"
    echo "sanitizer $sanitizer: building ($scratch)" >&2
    swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" >&2
    filter=()
    [[ $SCOPE == unit ]] && filter=(--filter "$unit_suites")
    start=$SECONDS
    set +e
    # No Swift backtracer: under ThreadSanitizer its process, spawned at a crash,
    # hangs in the sanitizer's fork handling and keeps the run waiting; the crash's
    # message is printed without it. The timeout bounds any other hang.
    SWIFT_BACKTRACE=enable=no \
    E2E_LUASPOA_BIN="$PWD/$scratch/debug/luaspoa" \
    ASAN_OPTIONS="log_path=$reports/report" \
    TSAN_OPTIONS="log_path=$reports/report suppressions=$PWD/tools/sanitizers/tsan.supp" \
    LSAN_OPTIONS="suppressions=$PWD/tools/sanitizers/lsan.supp" \
        timeout --kill-after=30 "$SANITIZER_TIMEOUT" \
        swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "${filter[@]}" >"$reports/tests.log" 2>&1
    status=$?
    set -e
    [[ $status -eq 124 || $status -eq 137 ]] && echo "sanitizer $sanitizer: the tests did not finish within $SANITIZER_TIMEOUT s" >&2
    grep -E "Executed [0-9]+ tests|error:|failed \(" "$reports/tests.log" | tail -20 >&2 || true
    # LeakSanitizer also writes a file holding only its "Suppressions used" table.
    mapfile -t found < <(grep -l -E "ERROR: |WARNING: ThreadSanitizer|CHECK failed" "$reports"/report.* 2>/dev/null)
    if ((${#found[@]} > 0)); then
        echo "sanitizer $sanitizer: ${#found[@]} report(s):" >&2
        head -n 40 "${found[@]}" >&2
        exit 1
    fi
    [[ $status -eq 0 ]] || { echo "sanitizer $sanitizer: tests failed (exit $status)" >&2; exit 1; }
    echo "sanitizer $sanitizer: $SCOPE tests passed in $((SECONDS - start)) s, no report" >&2
done
