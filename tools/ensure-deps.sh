#!/usr/bin/env bash
# ensure-deps.sh -- make a fresh Debian 12 machine able to build and test luaspoa.
#
#   source tools/ensure-deps.sh && ensure_deps     # from run-agent.sh / run-tests.sh
#   tools/ensure-deps.sh                           # stand-alone
#
# * installs liblua5.4-dev, libssl-dev, libpcre2-dev, libjson-c-dev,
#   libmaxminddb-dev, libhiredis-dev, libc-ares-dev, pkg-config, haproxy,
#   redis-server and dnsmasq with apt-get when they are missing (as root, or through sudo otherwise);
# * makes sure `swift` is on PATH (also looks in /opt/swift/usr/bin and
#   /usr/share/swift/usr/bin); it does not install Swift itself.

_ensure_deps_log() { echo "ensure-deps: $*" >&2; }

# Adds package $3 to `missing` unless pkg-config knows $1 or header $2 exists.
_ensure_deps_want_pc() {
    if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1"; } && [ ! -f "$2" ]; then
        missing+=("$3")
    fi
}

_ensure_deps_missing_packages() {
    local missing=()
    if ! command -v pkg-config >/dev/null 2>&1; then
        missing+=(pkg-config)
    fi
    # liblua5.4-dev provides lua5.4.pc and the headers Package.swift needs.
    _ensure_deps_want_pc lua5.4 /usr/include/lua5.4/lua.h liblua5.4-dev
    # The C libraries behind spoa.crypto, spoa.re, spoa.json and spoa.geoip (Package.swift).
    _ensure_deps_want_pc libcrypto /usr/include/openssl/evp.h libssl-dev
    _ensure_deps_want_pc libpcre2-8 /usr/include/pcre2.h libpcre2-dev
    _ensure_deps_want_pc json-c /usr/include/json-c/json.h libjson-c-dev
    _ensure_deps_want_pc libmaxminddb "/usr/include/$(uname -m)-linux-gnu/maxminddb.h" libmaxminddb-dev
    if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
        missing+=(haproxy)
    fi
    # spoa.redis parses replies with hiredis; its tests start a real redis-server.
    if [ ! -f /usr/include/hiredis/hiredis.h ]; then
        missing+=(libhiredis-dev)
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        missing+=(redis-server)
    fi
    # spoa.dns uses c-ares; its tests start dnsmasq.
    if [ ! -f /usr/include/ares.h ]; then
        missing+=(libc-ares-dev)
    fi
    if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ]; then
        missing+=(dnsmasq)
    fi
    echo "${missing[@]}"
}

ensure_deps() {
    local missing
    missing="$(_ensure_deps_missing_packages)"
    if [ -n "$missing" ]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            _ensure_deps_log "missing: $missing; apt-get not found, please install them by hand"
            return 1
        fi
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1; then
                sudo="sudo"
            else
                _ensure_deps_log "missing: $missing; not root and no sudo, please install them by hand"
                return 1
            fi
        fi
        _ensure_deps_log "installing: $missing"
        # shellcheck disable=SC2086
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2 || {
            _ensure_deps_log "apt-get install failed"
            return 1
        }
    fi
    # haproxy lives in /usr/sbin, which is not on every user's PATH.
    if ! command -v haproxy >/dev/null 2>&1 && [ -x /usr/sbin/haproxy ]; then
        export PATH="$PATH:/usr/sbin"
    fi

    if ! command -v swift >/dev/null 2>&1; then
        local d
        for d in /opt/swift/usr/bin /usr/share/swift/usr/bin /usr/local/swift/usr/bin; do
            if [ -x "$d/swift" ]; then
                export PATH="$d:$PATH"
                break
            fi
        done
    fi
    if ! command -v swift >/dev/null 2>&1; then
        _ensure_deps_log "swift not found on PATH (nor in /opt/swift/usr/bin); install a Swift 6.1+ toolchain from https://swift.org/install"
        return 1
    fi
    return 0
}

# Executed directly (not sourced): run the check and report.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ensure_deps
    _ensure_deps_log "ok: $(swift --version 2>/dev/null | head -n1); $(haproxy -v 2>/dev/null | head -n1); lua5.4 $(pkg-config --modversion lua5.4 2>/dev/null)"
fi
