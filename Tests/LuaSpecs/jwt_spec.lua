-- spoa.jwt with HMAC tokens built here (RS256/ES256 tokens signed by the
-- openssl CLI: JWTTests.swift). Run by ModuleSpecTests, or:
--     luaspoa test Tests/LuaSpecs/empty.lua Tests/LuaSpecs/jwt_spec.lua
local T = spoa.test
local c, J = spoa.crypto, spoa.json
local b64 = c.base64url.encode

local SECRET = "a shared secret, long enough for HS256"
local NOW = 1700000000

local function token(header, claims, secret, alg)
  local input = b64(J.encode(header)) .. "." .. b64(J.encode(claims))
  return input .. "." .. b64(c.hmac(alg or "sha256", secret or SECRET, input))
end
local function hs256(claims) return token({ alg = "HS256", typ = "JWT" }, claims) end
local function verify(tok, opts)
  opts = opts or {}
  opts.alg = opts.alg or "HS256"
  opts.key = opts.key or SECRET
  return spoa.jwt.verify(tok, opts)
end
local function refused(want, tok, opts)
  local claims, reason = verify(tok, opts)
  T.eq(claims, nil, want)
  T.eq(reason, want)
end

T.case("a valid HS256 token gives its claims and header", function()
  T.clock.set_ms(NOW * 1000)
  local claims, header = verify(hs256({ sub = "alice", role = "admin", exp = NOW + 60, iss = "me", aud = "api" }),
                                { iss = "me", aud = "api" })
  T.eq(claims.sub, "alice")
  T.eq(claims.role, "admin")
  T.eq(header.alg, "HS256")
  T.ok(verify(hs256({ sub = "bob" })), "no time claims")
  T.ok(verify(hs256({ aud = { "x", "api" } }), { aud = "api" }), "aud as an array")
  local hs512 = token({ alg = "HS512" }, { sub = "c" }, SECRET, "sha512")
  T.eq(verify(hs512, { alg = "HS512" }).sub, "c")
end)

T.case("RFC 7515 appendix A.1 HS256 example", function()
  T.clock.set_ms(1300819300 * 1000)
  local tok = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" ..
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" ..
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
  local key = assert(c.base64url.decode(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"))
  local claims = assert(verify(tok, { key = key, iss = "joe" }))
  T.eq(claims.iss, "joe")
  T.eq(claims["http://example.com/is_root"], true)
  T.clock.set_ms(1300819380 * 1000)
  refused("expired", tok, { key = key })
end)

T.case("the algorithm is the caller's, never the token's", function()
  T.clock.set_ms(NOW * 1000)
  local none = b64(J.encode({ alg = "none" })) .. "." .. b64(J.encode({ sub = "x" })) .. "."
  refused("alg not allowed", none)
  refused("alg not allowed", token({ alg = "HS512" }, { sub = "x" }, SECRET, "sha512"))
  refused("alg not allowed", token({ typ = "JWT" }, { sub = "x" }))
  refused("alg not allowed", hs256({ sub = "x" }), { alg = "HS384" })
  local ok, err = pcall(verify, hs256({}), { alg = "none" })
  T.eq(ok, false)
  T.ok(err:find("opts.alg must be one of", 1, true), err)
  ok, err = pcall(spoa.jwt.verify, hs256({}), { alg = "HS256" })
  T.eq(ok, false)
  T.ok(err:find("opts.key is required", 1, true), err)
  refused("alg not allowed", hs256({}), { alg = "RS256", key = SECRET })
  ok, err = pcall(verify, token({ alg = "RS256" }, {}), { alg = "RS256", key = SECRET })
  T.eq(ok, false, "an RS256 key that is an HMAC secret is a configuration error")
  T.ok(err:find("opts.key is not a PEM public key", 1, true), err)
end)

T.case("bad signatures", function()
  T.clock.set_ms(NOW * 1000)
  local tok = hs256({ sub = "alice" })
  refused("bad signature", tok, { key = "another secret" })
  local h, p, s = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
  refused("bad signature", h .. "." .. b64(J.encode({ sub = "mallory" })) .. "." .. s)
  refused("bad signature", h .. "." .. p .. "." .. s:sub(1, -2))
  refused("bad signature", h .. "." .. p .. ".")
end)

T.case("time claims with leeway", function()
  T.clock.set_ms(NOW * 1000)
  refused("expired", hs256({ exp = NOW }))
  refused("expired", hs256({ exp = NOW - 100 }), { leeway = 60 })
  T.ok(verify(hs256({ exp = NOW - 30 }), { leeway = 60 }))
  refused("not yet valid", hs256({ nbf = NOW + 10 }))
  T.ok(verify(hs256({ nbf = NOW + 10 }), { leeway = 30 }))
  T.ok(verify(hs256({ nbf = NOW, exp = NOW + 1 })))
  refused("malformed", hs256({ exp = "tomorrow" }))
end)

T.case("issuer and audience", function()
  T.clock.set_ms(NOW * 1000)
  refused("wrong issuer", hs256({ iss = "other" }), { iss = "me" })
  refused("wrong issuer", hs256({}), { iss = "me" })
  refused("wrong audience", hs256({ aud = "other" }), { aud = "api" })
  refused("wrong audience", hs256({ aud = { "a", "b" } }), { aud = "api" })
  refused("wrong audience", hs256({}), { aud = "api" })
end)

T.case("malformed tokens", function()
  T.clock.set_ms(NOW * 1000)
  local good = hs256({ sub = "x" })
  local h = b64(J.encode({ alg = "HS256" }))
  for _, tok in ipairs({ "", "a", "a.b", "a.b.c.d", good .. ".x", "!!.e30.sig", h .. ".!!.sig", h .. ".e30.!!",
                         b64("not json") .. ".e30.", b64("[1]") .. ".e30.", good:gsub("%.", "=.", 1),
                         string.rep("a", 20000) .. ".e30.x" }) do
    refused("malformed", tok)
  end
  refused("malformed", h .. "." .. b64("[1,2]") .. "." .. b64(c.hmac("sha256", SECRET, h .. "." .. b64("[1,2]"))))
  refused("malformed", token({ alg = "HS256", crit = { "exp" } }, { sub = "x" }))  -- an unknown critical extension
end)
