#!/usr/bin/env bash
# run.sh -- the batteries' cost per call through the Lua binding, beside the same
# library called directly from C (direct.c), for issue #14's four operations:
#   re    a 200-byte User-Agent against 50 alternated patterns (spoa.re, "i", JIT)
#   json  spoa.json.decode of a 1 KiB object
#   hs    spoa.jwt.verify of an HS256 token
#   rs    spoa.jwt.verify of an RS256 token (2048-bit key, parsed once by spoa.jwt.key)
# Each Lua figure is ns per dispatch / 100 (the handler runs the operation 100
# times); the empty handler's line is that loop's own cost.
#   benchmarks/batteries/run.sh             # from the repository root; needs gcc, openssl
#   CALLGRIND=1 benchmarks/batteries/run.sh # instructions per call instead (valgrind;
#                                           # independent of the machine's load)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

python3 - <<'PY'
words = ["bot", "crawler", "spider", "curl", "wget", "python-requests", "python-urllib", "go-http-client",
         "libwww-perl", "java", "okhttp", "sqlmap", "nikto", "masscan", "zgrab", "nuclei", "httpclient", "scrapy",
         "phantomjs", "headlesschrome", "slurp", "baiduspider", "yandex", "bingpreview", "facebookexternalhit",
         "ahrefs", "semrush", "mj12bot", "dotbot", "petalbot", "bytespider", "gptbot", "ccbot", "claudebot",
         "applebot", "duckduckbot", "seznambot", "exabot", "sogou", "ia_archiver", "archive.org_bot", "rogerbot",
         "screaming frog", "httrack", "wpscan", "dirbuster", "gobuster", "ffuf", "feroxbuster", "zmeu"]
open("pat.txt", "w").write("(" + "|".join(w.replace(".", "\\.") for w in words) + ")")
ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.130 "
      "Safari/537.36 Edg/120.0.2210.91 SomeExtraToken/1.2.3 Another/4.5")
open("ua.txt", "w").write(ua[:200].ljust(200, "x"))
values = ['123456', '"value string %d"', 'true', 'null', '[1,2,3]', '12.5']
obj = "{" + ",".join('"key%02d":%s' % (i, values[i % 6].replace("%d", str(i))) for i in range(60))
obj += ',"pad":"' + "x" * (1024 - len(obj) - 10) + '"}'
assert len(obj) == 1024, len(obj)
open("obj.json", "w").write(obj)
PY
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl pkey -in rsa.pem -pubout -out rsa.pub
b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
claims=$(printf '{"sub":"alice","role":"admin","iss":"idp","aud":"api","exp":4000000000}' | b64u)
rs_in="$(printf '{"alg":"RS256","typ":"JWT"}' | b64u).$claims"
echo "$rs_in.$(printf '%s' "$rs_in" | openssl dgst -sha256 -sign rsa.pem -binary | b64u)" > rs.tok
hs_in="$(printf '{"alg":"HS256","typ":"JWT"}' | b64u).$claims"
echo "$hs_in.$(printf '%s' "$hs_in" | openssl dgst -sha256 -hmac secret -binary | b64u)" > hs.tok

for op in empty re json hs rs; do
    sed "s/@OP@/$op/; s|@DIR@|$work|" "$root/benchmarks/batteries/batteries.lua.in" > "b_$op.lua"
done
libs="-llua5.4 -lcrypto -lpcre2-8 -ljson-c -lmaxminddb -lm -lpthread"
# shellcheck disable=SC2086
gcc -O2 -I"$root/Sources/CLuaSpoa/include" -I/usr/include/"$(uname -m)"-linux-gnu "$root/tools/dispatch-cost.c" \
    "$root"/Sources/CLuaSpoa/luaspoa_[a-z]*.c $libs -o dispatch-cost
gcc -O2 "$root/benchmarks/batteries/direct.c" -lpcre2-8 -ljson-c -lcrypto -o direct

if [ "${CALLGRIND:-0}" = 1 ]; then
    ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\)/\1/p'; }
    echo "instructions per call: binding (Ir(n dispatches) - Ir(0)) / 100n, direct (Ir(n) - Ir(0)) / n"
    for spec in re:10 json:5 hs:5 rs:1; do
        op=${spec%%:*} n=${spec##*:}
        lua=$(( ($(ir ./dispatch-cost "b_$op.lua" "$n" 600000 0) - $(ir ./dispatch-cost "b_$op.lua" 0 600000 0)) / (n * 100) ))
        c=$(( ($(ir ./direct "$op" $((n * 100))) - $(ir ./direct "$op" 0)) / (n * 100) ))
        echo "  $op binding $lua direct $c"
    done
    exit 0
fi
echo "through the binding (ns per call; 100 calls per dispatch, budget off):"
for op in empty re json hs rs; do
    n=2000; [ "$op" = rs ] && n=200
    ns=$(./dispatch-cost "b_$op.lua" "$n" 60000 0 | sed -n 's/.*, \([0-9]*\) ns per dispatch/\1/p')
    echo "  $op $((ns / 100))"
done
echo "directly from C:"
./direct | sed 's/^/  /'
