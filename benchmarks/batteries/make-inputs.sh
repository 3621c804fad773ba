#!/usr/bin/env bash
# make-inputs.sh DIR -- the inputs of the batteries' benchmarks (run.sh, and the
# ordo-one ones in Benchmarks/): a 50-word alternation and a 200-byte User-Agent,
# a 1 KiB JSON object, HS256 and RS256 tokens (a fresh 2048-bit key), the test
# GeoIP database. Needs python3 and openssl.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$1"

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
cp "$root/Tests/LuaSpecs/geoip/test.mmdb" .
hs_in="$(printf '{"alg":"HS256","typ":"JWT"}' | b64u).$claims"
echo "$hs_in.$(printf '%s' "$hs_in" | openssl dgst -sha256 -hmac secret -binary | b64u)" > hs.tok
