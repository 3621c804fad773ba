#!/usr/bin/env bash
# run-tests.sh -- build everything and run the whole test suite twice: in debug, and
# in the release configuration with the end-to-end tests against the shipped binary.
#
#   ./run-tests.sh                        # everything
#   ./run-tests.sh --filter EndToEndTests # extra arguments go to `swift test`
#   FUZZ_SECONDS=0 ./run-tests.sh         # without the short fuzz run
#   BENCH_CHECK=0 ./run-tests.sh          # without the malloc-count check of the microbenchmarks
#   SANITIZERS=0 ./run-tests.sh           # without the ASan/TSan runs of the unit suites
#
# On a fresh Debian 12 machine it installs what it needs first (liblua5.4-dev,
# pkg-config, haproxy: the end-to-end tests drive a real HAProxy).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/ensure-deps.sh
source tools/ensure-deps.sh
ensure_deps
# A real HAProxy 3.x (3.2 from Debian sid, 3.0 from trixie) in chroots cached
# under .build/ for the HAProxy3* tests; a failed download skips them and says so.
haproxy3_status="$(tools/haproxy-chroot.sh for-tests)"
echo "$haproxy3_status"
trap 'echo "$haproxy3_status"' EXIT   # again at the end, where the summary is read
# Each step says when it starts, so a slow one shows in CI's log (CI allows 90 minutes).
step() { printf '== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# Two passes. Debug: every suite with assertions on, the end-to-end tests against
# the debug binary. What ships: every suite again in the release configuration
# (.build-release-tests; the Swift/C value bridge once broke only under -O), with
# the end-to-end suite and the shipped script specs against the release binary
# built the way operators build it (tools/build-release.sh). E2E_*, not LUASPOA_*:
# the agent reads every LUASPOA_* variable as one of its options.
step "debug build"
swift build --build-tests
step "release build"
release_bin="$(tools/build-release.sh)"
step "debug pass: end-to-end tests against $(swift build --show-bin-path)/luaspoa"
E2E_LUASPOA_BIN="$(swift build --show-bin-path)/luaspoa" swift test "$@"
step "release pass: end-to-end tests against $release_bin"
E2E_LUASPOA_BIN="$release_bin" swift test -c release --scratch-path .build-release-tests "$@"

# A short real fuzz run after the tests (docs/fuzzing.md): libFuzzer on both
# targets, FUZZ_SECONDS each (default 30; 0 skips it), in its own instrumented
# build (.build-fuzz). A crash, sanitizer report or broken invariant fails the run.
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [[ "$FUZZ_SECONDS" != 0 ]]; then
    step "fuzz run"
    SECONDS_PER_TARGET=$FUZZ_SECONDS Fuzz/run.sh
fi

# The malloc counts of the hot-path microbenchmarks (Microbenchmarks/, built in release from
# scratch: about 4 minutes on 2 cores) against the committed baseline, docs/performance.md.
# One malloc more per 1000 messages on the engine path fails the run. BENCH_CHECK=0 skips it.
if [[ "${BENCH_CHECK:-1}" != 0 ]]; then
    step "malloc-count check"
    benchmarks/check-allocations.sh
fi

# The unit suites under AddressSanitizer (+ LeakSanitizer) and ThreadSanitizer, each in
# its own build (tools/sanitizers/run.sh, docs/reliability.md); any report from the
# runner or an agent fails the run. SANITIZERS=address runs one, 0 none.
SANITIZERS=${SANITIZERS:-address thread}
if [[ "$SANITIZERS" != 0 ]]; then
    step "sanitizers: $SANITIZERS"
    # shellcheck disable=SC2086
    tools/sanitizers/run.sh $SANITIZERS
fi
step "done"
