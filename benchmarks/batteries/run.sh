#!/usr/bin/env bash
# run.sh -- the batteries' cost per call through the Lua binding, beside the same
# library called directly from C (direct.c), for the batteries' operations:
#   re    a 200-byte User-Agent against 50 alternated patterns (spoa.re, "i", JIT)
#   json  spoa.json.decode of a 1 KiB object
#   hs    spoa.jwt.verify of an HS256 token
#   rs    spoa.jwt.verify of an RS256 token (2048-bit key, parsed once by spoa.jwt.key)
#   geo   GEO:lookup(addr, "country", "iso_code") in Tests/LuaSpecs/geoip/test.mmdb
#   georec GEO:lookup(addr), the whole record as a table
# Each Lua figure is ns per dispatch / 100 (the handler runs the operation 100
# times); the empty handler's line is that loop's own cost, which the
# instruction counts (CALLGRIND=1) subtract.
#   benchmarks/batteries/run.sh             # from the repository root; needs gcc, openssl
#   CALLGRIND=1 benchmarks/batteries/run.sh # instructions per call instead (valgrind;
#                                           # independent of the machine's load)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

"$root/benchmarks/batteries/make-inputs.sh" "$work"

for op in empty re json hs rs geo georec; do
    sed "s/@OP@/$op/; s|@DIR@|$work|; s/@TIMES@/100/" "$root/benchmarks/batteries/batteries.lua.in" > "b_$op.lua"
done
libs="-llua5.4 -lcrypto -lpcre2-8 -ljson-c -lmaxminddb -lm -lpthread"
# shellcheck disable=SC2086
gcc -O2 -I"$root/Sources/CLuaSpoa/include" -I/usr/include/"$(uname -m)"-linux-gnu "$root/tools/dispatch-cost.c" \
    "$root"/Sources/CLuaSpoa/luaspoa_[a-z]*.c $libs -o dispatch-cost
gcc -O2 "$root/benchmarks/batteries/direct.c" -lpcre2-8 -ljson-c -lcrypto -lmaxminddb -o direct

if [ "${CALLGRIND:-0}" = 1 ]; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\)/\1/p'; }
    # The binding's figure leaves out the handler's loop and the dispatch (the
    # empty operation's figure), as the direct one has only its C loop. json and
    # hs run for several collector cycles: collecting the tables they build is
    # part of their cost, and a run of one cycle or less under- or overcounts it.
    lua_ir() { echo $(( ($(ir ./dispatch-cost "b_$1.lua" "$2" 600000 0) - $(ir ./dispatch-cost "b_$1.lua" 0 600000 0)) / ($2 * 100) )); }
    empty=$(lua_ir empty 20)
    echo "instructions per call: binding (Ir(n dispatches) - Ir(0)) / 100n - empty's ($empty), direct (Ir(n) - Ir(0)) / n"
    for spec in re:10 json:20 hs:20 rs:1 geo:20 georec:10; do
        op=${spec%%:*} n=${spec##*:}
        lua=$(( $(lua_ir "$op" "$n") - empty ))
        c=$(( ($(ir ./direct "$op" $((n * 100))) - $(ir ./direct "$op" 0)) / (n * 100) ))
        full=""
        case $op in hs|rs) # the whole verify from C too, not only its signature check
            full=" whole-verify-from-C $(( ($(ir ./direct "${op}full" $((n * 100))) - $(ir ./direct "${op}full" 0)) / (n * 100) ))";;
        esac
        echo "  $op binding $lua direct $c$full"
    done
    exit 0
fi
echo "through the binding (ns per call; 100 calls per dispatch, budget off):"
for op in empty re json hs rs geo georec; do
    n=2000; [ "$op" = rs ] && n=200
    ns=$(./dispatch-cost "b_$op.lua" "$n" 60000 0 | sed -n 's/.*, \([0-9]*\) ns per dispatch/\1/p')
    echo "  $op $((ns / 100))"
done
echo "directly from C:"
./direct | sed 's/^/  /'
