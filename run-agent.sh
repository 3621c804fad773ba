#!/usr/bin/env bash
# run-agent.sh -- build luaspoa (release) and run it with the IP-reputation example.
#
#   ./run-agent.sh                                  # 127.0.0.1:12345, scripts/ip_reputation.lua
#   ./run-agent.sh --listen 0.0.0.0:12345 --workers 4 --log-level debug
#   ./run-agent.sh --script my.lua                  # later arguments override the defaults
#
# On a fresh Debian 12 machine it installs what it needs first (tools/ensure-deps.sh).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/ensure-deps.sh
source tools/ensure-deps.sh
ensure_deps

bin="$(tools/build-release.sh)"
exec "$bin" --script scripts/ip_reputation.lua "$@"
