#!/usr/bin/env bash
# benchmarks/soak.sh -- HAProxy 2.6 + luaspoa under wrk for a long time, with the
# script hot-reloaded every few seconds and connections churning; reports requests,
# failures, agent RSS and open descriptors over time.
#
#   benchmarks/soak.sh            # 10 minutes (DURATION=600)
#   benchmarks/soak.sh --short    # 60 seconds (CI)
#   HOSTILE=1 benchmarks/soak.sh  # the same, mixed with hostile scripts and peers
#
# Load: wrk keep-alive (-c32) for the whole run, plus a second wrk with
# "Connection: close" in bursts (4 s on, 3 s off), so client connections churn and
# HAProxy's SPOE opens agent connections in bursts and closes them after its 1 s
# `timeout idle`; HAProxy also health-checks the agent every second (a new
# connection each time). Every RELOAD_EVERY seconds the script is rewritten with a
# new generation number and the agent gets SIGHUP.
#
# A failure is a response without the agent's variable: HAProxy answers 200 (with
# X-Soak-Generation) only when sess.soak.ok is set, 503 otherwise; wrk counts the
# non-2xx responses and socket errors. Every SAMPLE_EVERY seconds the agent's VmRSS
# and /proc/PID/fd count go to samples.csv in the output directory.
#
# HOSTILE=1 adds, for the whole run, requests to /hostile/KIND (one every
# HOSTILE_EVERY seconds, KIND in turns) whose handler misbehaves: loops, loops in
# xpcall's message handler and in a __gc finalizer, backtracking patterns, 64 MB
# strings, log floods, 1 MB shared-dict values; and benchmarks/hostile_peers.py
# (trickled frames, peers that never read large ACKs, unfinished fragments,
# garbage, resets) straight to the agent's port. Normal requests must still all
# carry the variable; the hostile requests' status codes are counted apart.
#
# Environment: DURATION (s), RELOAD_EVERY (5), SAMPLE_EVERY (5), IDLE_AFTER (15: seconds
# after the traffic before the idle RSS, rss_kb_idle), WORKERS (2),
# BASE_PORT (21440), LUASPOA (binary; default: release build with static stdlib),
# OUT (output directory; default: a fresh /tmp/luaspoa-soak.XXXXXX, kept).
# Exit status 0 only if there was no failure and the agent survived.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-600}
[[ "${1:-}" == "--short" ]] && DURATION=60
HOSTILE=${HOSTILE:-0}
HOSTILE_EVERY=${HOSTILE_EVERY:-0.5}
RELOAD_EVERY=${RELOAD_EVERY:-5}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
IDLE_AFTER=${IDLE_AFTER:-15}
WORKERS=${WORKERS:-2}
BASE_PORT=${BASE_PORT:-21440}
agent_port=$BASE_PORT
fe_port=$((BASE_PORT + 1))

if [[ -z "${LUASPOA:-}" ]]; then
    "$root/tools/ensure-deps.sh" >/dev/null
    LUASPOA="$("$root/tools/build-release.sh")"  # the binary that ships
fi
command -v wrk >/dev/null || { echo "soak.sh needs wrk (apt-get install wrk)" >&2; exit 2; }

out=${OUT:-$(mktemp -d /tmp/luaspoa-soak.XXXXXX)}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
    timeout 10 bash -c "until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.05; done" ||
        { echo "nothing listens on port $1" >&2; return 1; }
}

# Written aside then renamed, as an editor or a deployment would.
write_script() {
    printf '%s\n' "local GENERATION = $1" \
        'spoa.register_message("soak", function(txn, msg)' \
        '  if msg.args.ip then txn:set_var("sess.ok", spoa.uint32(GENERATION)) end' \
        'end)' >"$out/soak.lua.new"
    [[ $HOSTILE == 1 ]] && cat "$here/hostile_handlers.lua" >>"$out/soak.lua.new"
    mv "$out/soak.lua.new" "$out/soak.lua"
}

printf '%s\n' "[soak]" \
    "spoe-agent soak-agent" \
    "    messages soak$([[ $HOSTILE == 1 ]] && echo " hostile")" \
    "    option var-prefix soak" \
    "    option set-on-error err" \
    "    timeout hello 2s" \
    "    timeout idle 1s" \
    "    timeout processing 1s" \
    "    use-backend be_agent" \
    "spoe-message soak" \
    "    args ip=src" \
    "    event on-frontend-http-request" \
    "spoe-message hostile" \
    "    args kind=path" \
    "    event on-frontend-http-request if { path_beg /hostile/ }" >"$out/spoe.conf"
printf '%s\n' "global" \
    "    nbthread 2" \
    "    maxconn 4096" \
    "defaults" \
    "    mode http" \
    "    timeout connect 5s" \
    "    timeout client 30s" \
    "    timeout server 30s" \
    "frontend fe" \
    "    bind 127.0.0.1:$fe_port" \
    "    filter spoe engine soak config $out/spoe.conf" \
    "    http-request return status 200 content-type text/plain string ok hdr x-soak-generation \"%[var(sess.soak.ok)]\" if { var(sess.soak.ok) -m found }" \
    "    http-request return status 503 content-type text/plain string missing-variable" \
    "backend be_agent" \
    "    mode tcp" \
    "    option spop-check" \
    "    timeout server 2m" \
    "    server agent 127.0.0.1:$agent_port check inter 1s" >"$out/haproxy.cfg"

generation=1
write_script $generation
"$LUASPOA" serve --script "$out/soak.lua" --listen "127.0.0.1:$agent_port" --workers "$WORKERS" \
    --log-level notice >"$out/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
wait_port "$agent_port"
haproxy -f "$out/haproxy.cfg" -db >"$out/haproxy.log" 2>&1 &
pids+=($!)
wait_port "$fe_port"

sample() { # $1 = seconds since the start
    local rss fds threads
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
    threads=$(awk '/^Threads/ {print $2}' "/proc/$agent_pid/status")
    fds=$(find "/proc/$agent_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$1,$rss,$fds,$threads" >>"$out/samples.csv"
}
echo "seconds,rss_kb,fds,threads" >"$out/samples.csv"
sample 0

echo "soak: ${DURATION}s, reload every ${RELOAD_EVERY}s, agent pid $agent_pid, output in $out" >&2
wrk -t1 -c32 -d"${DURATION}s" "http://127.0.0.1:$fe_port/" >"$out/wrk-keepalive.txt" 2>&1 &
wrk_main=$!
pids+=("$wrk_main")
(
    end=$((SECONDS + DURATION - 4))
    n=0
    while ((SECONDS < end)); do
        wrk -t1 -c16 -d4s -H "Connection: close" "http://127.0.0.1:$fe_port/" >"$out/wrk-close-$n.txt" 2>&1
        n=$((n + 1))
        sleep 3
    done
) &
churn=$!
pids+=("$churn")

if [[ $HOSTILE == 1 ]]; then
    (
        kinds=(loop xpcall gc pattern bigstring logflood dict)
        end=$((SECONDS + DURATION - 2))
        n=0
        while ((SECONDS < end)); do
            kind=${kinds[n % ${#kinds[@]}]}
            code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$fe_port/hostile/$kind" || true)
            echo "$kind $code" >>"$out/hostile-requests.txt"
            n=$((n + 1))
            sleep "$HOSTILE_EVERY"
        done
    ) &
    pids+=($!)
    python3 "$here/hostile_peers.py" 127.0.0.1 "$agent_port" "$((DURATION - 10))" >"$out/hostile-peers.txt" 2>&1 &
    pids+=($!)
fi

start=$SECONDS
next_reload=$((start + RELOAD_EVERY))
next_sample=$((start + SAMPLE_EVERY))
reloads=0
while kill -0 "$wrk_main" 2>/dev/null; do
    kill -0 "$agent_pid" 2>/dev/null || { echo "soak: the agent died" >&2; break; }
    now=$SECONDS
    if ((now >= next_reload)); then
        generation=$((generation + 1))
        write_script $generation
        kill -HUP "$agent_pid"
        reloads=$((reloads + 1))
        next_reload=$((now + RELOAD_EVERY))
    fi
    if ((now >= next_sample)); then
        sample $((now - start))
        next_sample=$((now + SAMPLE_EVERY))
    fi
    sleep 0.5
done
wait "$wrk_main" || true
wait "$churn" || true
agent_alive=0
rss_idle=0
if kill -0 "$agent_pid" 2>/dev/null; then
    agent_alive=1
    sample $((SECONDS - start))
    # Idle: HAProxy closes its agent connections after `timeout idle` (1 s); what the
    # agent still holds then is what heavy handlers left behind.
    sleep "$IDLE_AFTER"
    if kill -0 "$agent_pid" 2>/dev/null; then
        rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
    else
        agent_alive=0
    fi
fi

# wrk prints "N requests in ...", "Non-2xx or 3xx responses: N",
# "Socket errors: connect A, read B, write C, timeout D".
requests() { awk '/requests in/ {s += $1} END {print s + 0}' "$@"; }
non2xx() { awk '/Non-2xx/ {s += $NF} END {print s + 0}' "$@"; }
sockerr() { awk -F'[ ,]+' '/Socket errors/ {s += $5 + $7 + $9 + $11} END {print s + 0}' "$@"; }
reports=("$out"/wrk-*.txt)   # normal traffic only: the hostile requests are counted apart
total=$(requests "${reports[@]}")
missing=$(non2xx "${reports[@]}")
errors=$(sockerr "${reports[@]}")
reload_ok=$(grep -ci "reloaded " "$out/agent.log" || true)
reload_failed=$(grep -ciE "reload failed|reload interrupted" "$out/agent.log" || true)
# A handler over its time budget answers without the variable (the budget is CPU
# time, so only a handler that really spins should hit it): count them apart.
handler_timeouts=$(grep -c "execution timeout" "$out/agent.log" || true)
# Memory and descriptors after the warm-up (a sixth of the run, at most a minute:
# buffer pools and Lua states grow first).
warmup=$((DURATION / 6 < 60 ? DURATION / 6 : 60))
stats=$(awk -F, -v warmup="$warmup" 'NR > 1 && $1 >= warmup {n++; if (n == 1) {first = $2; min = $2; fmin = $3}
                 if ($2 < min) min = $2; if ($2 > max) max = $2; if ($3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3
                 last = $2; lastfd = $3}
                 END {printf "rss_kb_after_warmup=%d rss_kb_min=%d rss_kb_max=%d rss_kb_last=%d fds_min=%d fds_max=%d fds_last=%d samples=%d",
                      first, min, max, last, fmin, fmax, lastfd, n}' "$out/samples.csv")
echo "RESULT duration_s=$DURATION requests=$total missing_variable=$missing socket_errors=$errors" \
    "handler_timeouts=$handler_timeouts reloads_sent=$reloads reloads_logged=$reload_ok reload_failures=$reload_failed" \
    "agent_alive=$agent_alive $stats rss_kb_idle=$rss_idle"
if [[ $HOSTILE == 1 ]]; then
    # Per kind: how many hostile requests, and their status codes.
    awk '{n[$1]++; c[$1" "$2]++} END {for (k in c) {split(k, p, " "); printf "hostile-request %s status=%s count=%d\n", p[1], p[2], c[k]}}' \
        "$out/hostile-requests.txt" | sort
    cat "$out/hostile-peers.txt"
fi
echo "samples: $out/samples.csv" >&2
[[ $agent_alive == 1 && $missing == 0 && $reload_failed == 0 ]]
