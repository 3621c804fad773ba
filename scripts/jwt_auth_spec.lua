-- Spec for jwt_auth.lua:
--     luaspoa test scripts/jwt_auth.lua scripts/jwt_auth_spec.lua
local T = spoa.test
local c, J = spoa.crypto, spoa.json

local SECRET = "example secret: replace with 32+ random bytes shared with the issuer"
local NOW = 1700000000

local function token(claims, secret, alg)
  local input = c.base64url.encode(J.encode({ alg = alg or "HS256", typ = "JWT" })) .. "." ..
                c.base64url.encode(J.encode(claims))
  return input .. "." .. c.base64url.encode(c.hmac("sha256", secret or SECRET, input))
end
local function good(extra)
  local claims = { sub = "alice", role = "admin", iss = "https://idp.example", aud = "example-api", exp = NOW + 300 }
  for k, v in pairs(extra or {}) do claims[k] = v end
  return claims
end
local function check(auth)
  T.clock.set_ms(NOW * 1000)
  return T.notify("check-jwt", { auth = auth })
end

T.case("a valid token passes with its subject and role", function()
  local ack = check("Bearer " .. token(good()))
  T.eq(ack:get("txn.valid"), true)
  T.eq(ack:get("txn.sub"), "alice")
  T.eq(ack:get("txn.role"), "admin")
  T.eq(ack:get("txn.error"), nil)
end)

T.case("no token, or not a bearer token", function()
  T.eq(check(nil):get("txn.error"), "no token")
  T.eq(check("Basic YTpi"):get("txn.error"), "no token")
  T.eq(check("Basic YTpi"):get("txn.valid"), false)
end)

T.case("refusals carry spoa.jwt's reason", function()
  T.eq(check("Bearer " .. token(good(), "wrong secret")):get("txn.error"), "bad signature")
  T.eq(check("Bearer " .. token(good({ exp = NOW - 60 }))):get("txn.error"), "expired")
  T.eq(check("Bearer " .. token(good({ aud = "other" }))):get("txn.error"), "wrong audience")
  T.eq(check("Bearer " .. token(good({ iss = "https://evil" }))):get("txn.error"), "wrong issuer")
  T.eq(check("Bearer " .. token(good(), SECRET, "HS512")):get("txn.error"), "alg not allowed")
  T.eq(check("Bearer " .. token(good({ exp = J.null }))):get("txn.error"), "malformed")
  local no_exp = good()
  no_exp.exp = nil
  T.eq(check("Bearer " .. token(no_exp)):get("txn.error"), "no expiry")
  T.eq(check("Bearer " .. token(no_exp)):get("txn.sub"), nil)
end)
