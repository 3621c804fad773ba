#!/usr/bin/env bash
# build-release.sh -- build the binary operators deploy, and print its path.
#
#   bin="$(tools/build-release.sh)"      # .build/release/luaspoa
#
# One command for every place that needs the shipped binary: run-agent.sh,
# benchmarks/run.sh and soak.sh, the
# end-to-end tests in run-tests.sh and the production install in docs/operations.md. The
# tests must run what ships: a release-only miscompile once sent every IPv4
# address as 0.0.0.6 while the debug build passed.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --static-swift-stdlib --product luaspoa >&2
echo "$(swift build -c release --static-swift-stdlib --show-bin-path)/luaspoa"
