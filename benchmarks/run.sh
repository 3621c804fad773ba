#!/usr/bin/env bash
# benchmarks/run.sh -- the standard luaspoa scenarios, one table.
#
#   benchmarks/run.sh                                   # luaspoa only
#   REFERENCE_CMD='/path/to/agent -p {port} ...' benchmarks/run.sh
#                                                       # side by side with any other agent
#
# Every scenario starts a fresh agent, loads it with `luaspoa bench` (or wrk
# through HAProxy 2.6), then reads the agent's CPU seconds and peak RSS from
# /proc. Scenarios that compare agents run them in turns, round by round, and
# show each agent's median run. {port} in REFERENCE_CMD is replaced by the port the reference must
# listen on. The reference must answer `check-client-ip` (args ip=src) with
# sess.ip_score, as haproxy/spoa-example does.
#
# Environment: DURATION (s, default 5), WARMUP (s, 1), REPEAT (runs per
# scenario, the median by throughput is shown; default 1), BASE_PORT (21340),
# WORKERS (luaspoa workers, default: cores), LUASPOA (binary; default: a
# release build with --static-swift-stdlib), BUSY_POLL (us, the --busy-poll window of the
# "luaspoa+busy-poll" rows; default 1000), SKIP_HAPROXY=1, SKIP_CURVE=1,
# ONLY=clients (only the Lua clients' scenarios: Redis beside redis-benchmark,
# HTTP beside AsyncHTTPClient alone and wrk, one agent against two sharing Redis; REDIS_REQUESTS, default
# 300000, per redis-benchmark run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-1}
BASE_PORT=${BASE_PORT:-21340}
CORES=$(nproc)
WORKERS=${WORKERS:-$CORES}
REFERENCE_CMD=${REFERENCE_CMD:-}
BUSY_POLL=${BUSY_POLL:-1000}

if [[ -z "${LUASPOA:-}" ]]; then
    # The Swift runtime and Foundation linked statically: only the pages used are
    # resident (idle RSS 18.5 MB instead of about 25 MB with shared libraries).
    "$root/tools/ensure-deps.sh" >/dev/null
    LUASPOA="$("$root/tools/build-release.sh")"  # the binary that ships
fi
if ! command -v wrk >/dev/null && [[ -z "${SKIP_HAPROXY:-}" ]]; then
    echo "installing wrk" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi

tmp=$(mktemp -d /tmp/luaspoa-bench.XXXXXX)
agent_pid=""
haproxy_pid=""
upstream_pid=""
extra_pids=()  # the several-agents rows' agents and redis-server
cleanup() {
    [[ -n "$agent_pid" ]] && kill "$agent_pid" 2>/dev/null || true
    for pid in "${extra_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n "$haproxy_pid" ]] && kill "$haproxy_pid" 2>/dev/null || true
    [[ -n "$upstream_pid" ]] && kill "$upstream_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

agent_port=$BASE_PORT
fe_port=$((BASE_PORT + 1))
upstream_port=$((BASE_PORT + 2))
rows=()

wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# start_agent luaspoa|luaspoa+busy-poll SCRIPT [WORKERS] | reference | trivial
start_agent() {
    local kind=$1; shift
    local busy_poll=()
    [[ $kind == luaspoa+busy-poll ]] && busy_poll=(--busy-poll "$BUSY_POLL")
    case $kind in
    luaspoa*) "$LUASPOA" serve --script "$1" --listen "127.0.0.1:$agent_port" --workers "${2:-$WORKERS}" \
                 "${busy_poll[@]}" --log-level error >>"$tmp/agent.log" 2>&1 & ;;
    reference) ${REFERENCE_CMD//\{port\}/$agent_port} >>"$tmp/agent.log" 2>&1 & ;;
    trivial) "$LUASPOA" bench trivial-agent --listen "127.0.0.1:$agent_port" --workers "$WORKERS" >>"$tmp/agent.log" 2>&1 & ;;
    esac
    agent_pid=$!
    wait_port "$agent_port"
}

# CPU ticks (user+sys) the running agent has used so far.
agent_ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }

# "CPU_US_PER_MSG CPU_S PEAK_RSS_MB": CPU spent since START_TICKS over MESSAGES, the
# total, and the peak RSS. CPU per message is the figure that survives a change of machine.
agent_usage() { # START_TICKS MESSAGES
    local ticks hz
    hz=$(getconf CLK_TCK)
    ticks=$(agent_ticks)
    awk -v t="$ticks" -v t0="$1" -v n="$2" -v hz="$hz" '/VmHWM/ {
        printf "%s %.1f %.1f", (n > 0 ? sprintf("%.1f", (t - t0) / hz * 1e6 / n) : "-"), t / hz, $2 / 1024 }' \
        "/proc/$agent_pid/status"
}

agent_rss_now() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$agent_pid/status"; }

stop_agent() {
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# bench_once: starts the agent, runs `luaspoa bench`, prints
# "msgs p50 p99 p999 errors cpu_us_per_msg cpu_s rss". CPU per message counts the
# measured window only: the agent's ticks are read when the warm-up ends.
bench_once() {
    local agent=$1 agent_args=$2; shift 2
    # shellcheck disable=SC2086
    start_agent "$agent" $agent_args
    "$LUASPOA" bench --connect "127.0.0.1:$agent_port" --duration "$DURATION" --warmup "$WARMUP" "$@" \
        >"$tmp/bench.out" 2>&1 &
    local bench_pid=$!
    sleep "$WARMUP"
    local start_ticks
    start_ticks=$(agent_ticks)
    wait "$bench_pid" || true
    local out
    out=$(grep '^RESULT' "$tmp/bench.out" || true)
    local usage
    usage=$(agent_usage "$start_ticks" "$(field acks <<<"$out")")
    stop_agent
    if [[ -z "$out" ]]; then echo "- - - - failed $usage"; return; fi
    echo "$(field msgs_per_s <<<"$out") $(field p50_us <<<"$out") $(field p99_us <<<"$out") $(field p999_us <<<"$out") $(field errors <<<"$out") $usage"
}

# median_of N command...: the run with the median first field.
median_of() {
    local runs=() i
    for ((i = 0; i < REPEAT; i++)); do runs+=("$("$@")"); done
    median_line "${runs[@]}"
}

median_line() { printf '%s\n' "$@" | sort -n -k1,1 | sed -n "$((($# + 1) / 2))p"; }

# compare NAME RUN AGENT...: RUN (bench_once or wrk_once, given an agent) for every agent
# in turns, REPEAT rounds, so that a change in the machine's load (other jobs, page
# cache writeback after the build) hits every agent alike; one row per agent (median run).
compare() {
    local name=$1 run=$2; shift 2
    local -A runs=()
    local i agent
    for ((i = 0; i < REPEAT; i++)); do
        for agent in "$@"; do runs[$agent]+="$($run "$agent")"$'\n'; done
    done
    for agent in "$@"; do
        local lines=()
        mapfile -t lines < <(printf '%s' "${runs[$agent]}")
        row "$name" "$([[ $agent == none ]] && echo "no SPOE" || echo "$agent")" "$(median_line "${lines[@]}")"
    done
}

row() { rows+=("$(printf '%-34s %-17s %s' "$1" "$2" "$3")"); echo "  $1 / $2: $3" >&2; }

scenario() {
    local name=$1 agent=$2 agent_args=$3; shift 3
    row "$name" "$agent" "$(median_of bench_once "$agent" "$agent_args" "$@")"
}

ip_reputation="$root/scripts/ip_reputation.lua"
agents=(luaspoa luaspoa+busy-poll)
[[ -n "$REFERENCE_CMD" ]] && agents+=(reference)
args_for() { [[ $1 == luaspoa* ]] && echo "$ip_reputation" || echo ""; }

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "luaspoa benchmarks: ${DURATION}s per run, ${REPEAT} run(s) per scenario, $CORES cores" >&2
if [[ -z "${ONLY:-}" ]]; then
latency_run() { bench_once "$1" "$(args_for "$1")" --connections 1 --in-flight 1 --expect sess.ip_score; }
many_run() { bench_once "$1" "$(args_for "$1")" --connections 64 --in-flight 1 --expect sess.ip_score; }
pipelined_run() { bench_once "$1" "$(args_for "$1")" --connections 4 --in-flight 64 --expect sess.ip_score; }
# The Swift agent without Lua ("trivial") runs in the same rounds: the machine's floor for
# latency and the generator's ceiling for throughput, against which the Lua path is read.
compare "1 conn x 1 in flight (latency)" latency_run "${agents[@]}" trivial
compare "64 conn x 1 in flight" many_run "${agents[@]}" trivial
compare "4 conn x 64 in flight (pipelined)" pipelined_run "${agents[@]}" trivial
scenario "4 x 64, 4-arg request, scoring" luaspoa "$here/header_scoring.lua" \
    --connections 4 --in-flight 64 --message request --expect txn.req_score
scenario "4 x 64, empty Lua handler" luaspoa "$here/empty_handler.lua" --connections 4 --in-flight 64 --expect sess.ip_score
# Handlers that wait: the same handler after spoa.sleep(1), so every frame suspends and resumes.
scenario "4 x 64, spoa.sleep(1) handler" luaspoa "$here/sleep1_handler.lua" --connections 4 --in-flight 64 --expect sess.ip_score
scenario "64 x 1, spoa.sleep(1) handler" luaspoa "$here/sleep1_handler.lua" --connections 64 --in-flight 1 --expect sess.ip_score

if [[ -z "${SKIP_CURVE:-}" ]]; then
    for ((w = 1; w <= CORES; w++)); do
        scenario "4 x 64, $w worker(s)" luaspoa "$ip_reputation $w" --connections 4 --in-flight 64 --expect sess.ip_score
    done
fi

# Memory: idle with 2 workers, then holding 1000 connections (1 frame in flight each).
start_agent luaspoa "$ip_reputation" 2
sleep 1
row "idle RSS, 2 workers" luaspoa "rss_mb=$(agent_rss_now)"
stop_agent
row "1000 connections x 1 in flight" luaspoa "$(DURATION=3 bench_once luaspoa "$ip_reputation" --connections 1000 --in-flight 1 --expect sess.ip_score)"
fi

# The global and defaults sections of every HAProxy this script starts (1 thread), and
# the start of a frontend on port $1.
haproxy_head() {
    printf '%s\n' global "    nbthread 1" "    maxconn 4096" defaults "    mode http" "    timeout connect 5s" \
        "    timeout client 30s" "    timeout server 30s" "frontend fe" "    bind 127.0.0.1:$1"
}

# End to end: wrk -> HAProxy 2.6 (1 thread) [-> SPOE -> agent] -> http-request return.
haproxy_cfg() { # $1 = with-spoe|no-spoe
    cat >"$tmp/spoe.conf" <<EOF
[iprep]
spoe-agent iprep-agent
    messages check-client-ip
    option var-prefix iprep
    option set-on-error err
    timeout hello 2s
    timeout idle 2m
    timeout processing 1s
    use-backend be_agent
spoe-message check-client-ip
    args ip=src
    event on-frontend-http-request
EOF
    haproxy_head "$fe_port"
    cat <<EOF
$([[ $1 == with-spoe ]] && echo "    filter spoe engine iprep config $tmp/spoe.conf
    http-request deny deny_status 500 unless { var(sess.iprep.ip_score) -m found }")
    http-request return status 200 content-type text/plain string ok
backend be_agent
    mode tcp
    timeout server 2m
    server agent 127.0.0.1:$agent_port
EOF
}

wrk_once() { # $1 = agent or "none"
    local agent=$1 usage="- - -" start_ticks=0
    if [[ $agent != none ]]; then start_agent "$agent" "$(args_for "$agent")"; fi
    haproxy_cfg "$([[ $agent == none ]] && echo no-spoe || echo with-spoe)" >"$tmp/haproxy.cfg"
    haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 &
    haproxy_pid=$!
    wait_port "$fe_port"
    [[ $agent != none ]] && start_ticks=$(agent_ticks)
    local measured
    measured=$(wrk_measure "http://127.0.0.1:$fe_port/" 64)
    kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true; haproxy_pid=""
    if [[ $agent != none ]]; then usage=$(agent_usage "$start_ticks" "$(cat "$tmp/wrk.requests")"); stop_agent; fi
    echo "$measured $usage"
}

# wrk_measure URL CONNECTIONS: "req/s p50 p99 - errors" of one wrk run; the number of
# requests goes to $tmp/wrk.requests (for CPU per request).
wrk_measure() {
    local out rps errors p50 p99
    out=$(wrk -t1 -c"$2" -d"${DURATION}s" --latency "$1" 2>&1)
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
    awk '/requests in/ {print $1}' <<<"$out" >"$tmp/wrk.requests"
    errors=$(awk '/Non-2xx/ {print $5} /Socket errors/ {print "socket"}' <<<"$out" | head -1)
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$rps $p50 $p99 - ${errors:-0}"
}

# The Lua clients against local servers, each beside a plain client of that server
# in the same round: a Redis INCR per message (luaspoa opens one connection per
# worker: redis-benchmark gets as many, one command in flight each), and an HTTP GET
# per message to HAProxy's `http-request return` (luaspoa opens up to 16
# connections per worker to a host: wrk and AsyncHTTPClient alone get that many).
if [[ -z "${ONLY:-}" || "${ONLY:-}" == clients ]]; then
    redis-server --port "$upstream_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
        >"$tmp/redis.log" 2>&1 &
    upstream_pid=$!
    wait_port "$upstream_port"
    sed "s/@REDIS_PORT@/$upstream_port/" "$here/redis_incr_handler.lua" >"$tmp/redis_incr_handler.lua"
    redis_run() { # $1 = luaspoa | redis-benchmark
        if [[ $1 == luaspoa ]]; then
            bench_once luaspoa "$tmp/redis_incr_handler.lua" --connections 4 --in-flight 64 --expect sess.ip_score
            return
        fi
        redis-benchmark -p "$upstream_port" -t incr -P 1 -c "$WORKERS" -n "${REDIS_REQUESTS:-300000}" --csv 2>/dev/null |
            awk -F'","' '$1 == "\"INCR" {printf "%d %d %d - 0 - - -\n", $2, $5 * 1000, $7 * 1000}'
    }
    compare "4 x 64, Redis INCR per message" redis_run luaspoa redis-benchmark
    kill "$upstream_pid"; wait "$upstream_pid" 2>/dev/null || true

    { haproxy_head "$upstream_port"; echo "    http-request return status 200 content-type text/plain string ok"; } \
        >"$tmp/upstream.cfg"
    haproxy -f "$tmp/upstream.cfg" -db >"$tmp/upstream.log" 2>&1 &
    upstream_pid=$!
    wait_port "$upstream_port"
    sed "s/@HTTP_PORT@/$upstream_port/" "$here/http_get_handler.lua" >"$tmp/http_get_handler.lua"
    # AsyncHTTPClient alone, as luaspoa configures it: the floor of luaspoa's HTTP path.
    swift build -c release --package-path "$root/Microbenchmarks" --product http-client-alone >&2
    client_alone="$(swift build -c release --package-path "$root/Microbenchmarks" --show-bin-path)/http-client-alone"
    http_run() { # $1 = luaspoa | AsyncHTTPClient | wrk
        case $1 in
        luaspoa) bench_once luaspoa "$tmp/http_get_handler.lua" --connections 4 --in-flight 64 --expect sess.ip_score ;;
        AsyncHTTPClient)
            "$client_alone" "http://127.0.0.1:$upstream_port/" "$DURATION" "$WORKERS" "$WARMUP" |
                awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                     print v["requests_per_s"], "- - -", v["errors"], v["cpu_us_per_request"], "- -" }' ;;
        wrk) echo "$(wrk_measure "http://127.0.0.1:$upstream_port/" $((WORKERS * 16))) - - -" ;;
        esac
    }
    compare "4 x 64, HTTP GET per message" http_run luaspoa AsyncHTTPClient wrk
    kill "$upstream_pid"; wait "$upstream_pid" 2>/dev/null || true
    upstream_pid=""
fi

if [[ -z "${SKIP_HAPROXY:-}" && -z "${ONLY:-}" ]]; then
    compare "HAProxy 2.6 + wrk (req/s)" wrk_once none "${agents[@]}"
fi

# Several agents, one state: wrk -> HAProxy 2.6 -> SPOE balanced over N luaspoa
# instances running scripts/global_rate_limiter.lua, every request counted in one
# redis-server (one EVAL per message). N = 1 (2 workers) against N = 2 (1 worker
# each): the same cores, so the rows show what a second process costs, not scaling.
several_agents_once() { # $1 = instances
    local instances=$1 workers=$((WORKERS / $1)) ports=() pids=() i
    ((workers > 0)) || workers=1
    for ((i = 0; i < instances; i++)); do
        ports+=($((agent_port + 10 + i)))
        "$LUASPOA" serve --script "$tmp/grl.lua" --listen "127.0.0.1:${ports[i]}" --workers "$workers" \
            --log-level error >>"$tmp/agent.log" 2>&1 &
        pids+=($!)
        extra_pids+=($!)
        wait_port "${ports[i]}"
    done
    printf '%s\n' "[grl]" "spoe-agent grl-agent" "    messages global-rate-check" "    use-backend be_agents" \
        "    option var-prefix grl" "    option set-on-error err" "    timeout hello 2s" "    timeout idle 2m" \
        "    timeout processing 1s" "spoe-message global-rate-check" \
        "    args src=src apikey=req.hdr(x-api-key) limit=int(2000000000) window_ms=int(600000)" \
        "    event on-frontend-http-request" >"$tmp/grl-spoe.conf"
    {
        haproxy_head "$fe_port"
        printf '%s\n' "    filter spoe engine grl config $tmp/grl-spoe.conf" \
            "    http-request deny deny_status 500 unless { var(txn.grl.count) -m found }" \
            "    http-request return status 200 content-type text/plain string ok" \
            "backend be_agents" "    mode tcp" "    balance roundrobin" "    timeout server 2m"
        for i in "${!ports[@]}"; do printf '    server agent%s 127.0.0.1:%s\n' "$i" "${ports[i]}"; done
    } >"$tmp/haproxy.cfg"
    haproxy -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 &
    haproxy_pid=$!
    wait_port "$fe_port"
    local measured
    measured=$(wrk_measure "http://127.0.0.1:$fe_port/" 64)
    kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true; haproxy_pid=""
    for i in "${pids[@]}"; do kill "$i"; wait "$i" 2>/dev/null || true; done
    echo "$measured - - -"
}

if [[ -z "${SKIP_HAPROXY:-}" && "${ONLY:-clients}" == clients ]] && command -v redis-server >/dev/null; then
    redis_port=$((BASE_PORT + 3))
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
    extra_pids+=($!)
    wait_port "$redis_port"
    sed "s/port = 6379/port = $redis_port/" "$root/scripts/global_rate_limiter.lua" >"$tmp/grl.lua"
    grep -q "port = $redis_port" "$tmp/grl.lua" || { echo "global_rate_limiter.lua: the Redis port line changed" >&2; exit 1; }
    several_agents_run() { several_agents_once "${1%% *}"; }
    compare "rate limiter in Redis + wrk (req/s)" several_agents_run "1 instance" "2 instances"
fi

echo
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $CORES cores, $(uname -sr); load at start: $load_at_start, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "luaspoa workers: $WORKERS; generator: luaspoa bench on the same machine; ${DURATION}s measured after ${WARMUP}s warm-up"
printf '%-34s %-17s %s\n' "scenario" "agent" "msgs/s p50_us p99_us p99.9_us errors cpu_us/msg agent_cpu_s peak_rss_mb"
printf '%s\n' "${rows[@]}"
