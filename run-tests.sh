#!/usr/bin/env bash
# run-tests.sh -- build everything and run the whole test suite (unit + end-to-end).
#
#   ./run-tests.sh                        # everything
#   ./run-tests.sh --filter EndToEndTests # extra arguments go to `swift test`
#
# On a fresh Debian 12 machine it installs what it needs first (liblua5.4-dev,
# pkg-config, haproxy: the end-to-end tests drive a real HAProxy).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/ensure-deps.sh
source tools/ensure-deps.sh
ensure_deps

swift build --build-tests
# The end-to-end tests start the real agent binary; make sure it is built and
# tell them where it is (E2E_*, not LUASPOA_*: the agent reads every LUASPOA_*
# variable as one of its options and refuses unknown ones).
swift build --product luaspoa
E2E_LUASPOA_BIN="$(swift build --show-bin-path)/luaspoa"
export E2E_LUASPOA_BIN

swift test "$@"
