#!/usr/bin/env bash
# systemd-check.sh -- run packaging/luaspoa.service under a real systemd and
# check what docs/operations.md promises: it starts, answers, is hardened, reloads on
# SIGHUP and drains on stop. For a host without systemd as PID 1 (CI, this
# sandbox): it boots Debian 13 (trixie, systemd 257) with systemd-nspawn.
#
#   swift build -c release --product luaspoa --static-swift-stdlib
#   tools/systemd-check.sh [path/to/luaspoa]     # default .build/release/luaspoa
#
# Root only. The container (.build/nspawn-trixie, ~260 MB, cached) shares the
# host's network; the agent listens on 127.0.0.1:$PORT (default 12399, set through
# /etc/default/luaspoa, which also exercises the unit's EnvironmentFile).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/.build/release/luaspoa}")"
DIR="$ROOT/.build/nspawn-trixie"
PORT="${PORT:-12399}"
MIRROR="${HAPROXY_CHROOT_MIRROR:-http://deb.debian.org/debian}"

log() { echo "systemd-check: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[ -x "$BIN" ] || fail "no agent binary at $BIN (swift build -c release --product luaspoa --static-swift-stdlib)"
command -v systemd-nspawn >/dev/null || apt-get install -y -qq systemd-container >&2
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >&2

if [ ! -f "$DIR/.luaspoa-ready" ]; then
    log "debootstrap trixie with systemd into $DIR"
    rm -rf "$DIR"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,liblua5.4-0,procps,iproute2 \
        trixie "$DIR" "$MIRROR" >"$DIR.log" 2>&1 || { tail -n 5 "$DIR.log" >&2; fail "debootstrap"; }
    touch "$DIR/.luaspoa-ready"
fi

# The documented install (docs/operations.md, "Running in production"), into the container.
install -m 0755 "$BIN" "$DIR/usr/local/bin/luaspoa"
chroot "$DIR" sh -c 'id luaspoa >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin luaspoa'
install -d -m 0755 "$DIR/etc/luaspoa" "$DIR/etc/luaspoa/scripts"
install -m 0644 "$ROOT/packaging/etc/luaspoa/luaspoa.yaml" "$DIR/etc/luaspoa/luaspoa.yaml"
install -m 0644 "$ROOT/scripts/ip_reputation.lua" "$DIR/etc/luaspoa/scripts/agent.lua"
install -m 0644 "$ROOT/scripts/ip_reputation.lst" "$DIR/etc/luaspoa/scripts/"
install -m 0644 "$ROOT/packaging/luaspoa.service" "$DIR/etc/systemd/system/luaspoa.service"
printf 'LUASPOA_LISTEN=127.0.0.1:%s\nLUASPOA_METRICS=127.0.0.1:%s\n' "$PORT" "$((PORT + 1))" >"$DIR/etc/default/luaspoa"

log "booting the container"
# systemd 257 needs the unified cgroup hierarchy; --register=no/--keep-unit: no host systemd.
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$DIR" --register=no --keep-unit -b --console=pipe \
    >"$DIR.boot.log" 2>&1 &
NSPAWN=$!
trap 'kill "$NSPAWN" 2>/dev/null || true; wait "$NSPAWN" 2>/dev/null || true' EXIT
LEADER=""
for _ in $(seq 1 100); do
    LEADER="$(pgrep -P "$NSPAWN" -x systemd || true)"
    [ -n "$LEADER" ] && break
    sleep 0.2
done
[ -n "$LEADER" ] || fail "the container's systemd did not start: $(cat "$DIR.boot.log")"
in_ct() { nsenter -t "$LEADER" -a "$@"; }
state=""
for _ in $(seq 1 120); do   # the manager's bus socket appears a moment after PID 1 does
    state="$(in_ct systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    sleep 0.5
done
log "container systemd: ${state:-no answer}"

step() { echo "== $*"; }
step "start"
in_ct systemctl daemon-reload
in_ct systemctl start luaspoa
sleep 1
in_ct systemctl is-active luaspoa || { in_ct journalctl -u luaspoa --no-pager | tail -n 20; fail "not active"; }
PID="$(in_ct systemctl show -p MainPID --value luaspoa)"

step "answers (luaspoa send, one NOTIFY)"
"$BIN" send --to "127.0.0.1:$PORT" --message check-client-ip --arg ip=ipv4:192.0.2.10

step "hardening as systemd applied it"
in_ct systemctl show luaspoa -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp \
    -p PrivateDevices -p CapabilityBoundingSet -p RestrictAddressFamilies -p MemoryDenyWriteExecute \
    -p SystemCallFilter -p ReadOnlyPaths | cut -c1-160
in_ct ps -o user=,pid=,comm= -p "$PID"
in_ct grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' "/proc/$PID/status"
in_ct systemd-analyze security luaspoa --no-pager 2>/dev/null | tail -n 1 || true

step "reload (systemctl reload = SIGHUP)"
in_ct systemctl reload luaspoa
sleep 1
in_ct systemctl is-active luaspoa
[ "$(in_ct systemctl show -p MainPID --value luaspoa)" = "$PID" ] || fail "reload restarted the process"
in_ct journalctl -u luaspoa --no-pager -o cat | grep -i reload | tail -n 2
"$BIN" send --to "127.0.0.1:$PORT" --message check-client-ip --arg ip=ipv4:192.0.2.10 >/dev/null

step "stop (SIGTERM drains: an open SPOP connection gets AGENT-DISCONNECT)"
# A HAProxy 2.6 HELLO (docs/spop-protocol.md §11.1) on a connection kept open across the stop.
python3 - "$PORT" >"$DIR.drain.log" 2>&1 <<'PY' &
import socket, sys
hello = bytes.fromhex(
    "000000810100000001000012737570706f727465642d76657273696f6e730803"
    "322e300e6d61782d6672616d652d73697a6503fcf0060c6361706162696c6974"
    "6965730810706970656c696e696e672c6173796e6309656e67696e652d696408"
    "2430623165356339612d376633642d346132312d396334342d356536663761386239633064")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(hello)
def frame():
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk: return None
        head += chunk
    n, body = int.from_bytes(head, "big"), b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk: return None
        body += chunk
    return body
print("first frame type", frame()[0])            # 101 = AGENT-HELLO
f = frame()
print("on stop: frame type", f[0] if f else "EOF")  # 102 = AGENT-DISCONNECT
PY
DRAIN=$!
sleep 1
in_ct systemctl stop luaspoa
wait "$DRAIN" || true
cat "$DIR.drain.log"
grep -q "on stop: frame type 102" "$DIR.drain.log" || fail "no AGENT-DISCONNECT on stop"
in_ct systemctl show luaspoa -p ActiveState -p Result -p ExecMainStatus -p ExecMainCode
in_ct journalctl -u luaspoa --no-pager -o cat | tail -n 4
[ "$(in_ct systemctl show -p Result --value luaspoa)" = "success" ] || fail "stop did not exit cleanly"
echo "systemd-check: OK"
