#!/usr/bin/env bash
# Fuzz/build.sh -- builds the libFuzzer binary (Swift and C instrumented, with ASan)
# into .build-fuzz/, apart from the normal .build/. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c debug --scratch-path .build-fuzz --product SpopFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -D -Xswiftc FUZZING \
    -Xcc -fsanitize=fuzzer-no-link,address >&2
echo "$(swift build -c debug --scratch-path .build-fuzz --show-bin-path)/SpopFuzz"
