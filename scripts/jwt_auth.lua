-- jwt_auth.lua -- a bearer-token gate: verifies the JWT in the Authorization header.
--
-- HAProxy side (see haproxy/spoe-jwt-auth.conf and haproxy/haproxy-jwt-auth.cfg):
--
--     spoe-message check-jwt
--         args auth=req.hdr(authorization)
--         event on-frontend-http-request
--
-- For every "check-jwt" message this script sets (with --var-prefix jwt, HAProxy
-- sees txn.jwt.<name>):
--
--   txn.valid   (BOOL)    true only for a token that verifies under RULES
--   txn.sub     (STRING)  the token's subject, when valid
--   txn.role    (STRING)  its "role" claim, when valid and present
--   txn.error   (STRING)  why not, when not valid: "no token", "no expiry" or a
--                         spoa.jwt reason ("bad signature", "expired", ...)
--
-- HAProxy then denies with 401 unless txn.jwt.valid is true. With --metrics,
-- /metrics counts the decisions: luaspoa_script_jwt_decisions_total{result=...}.

-- The issuer's rules. The algorithm is ours, never the token's. Replace the
-- example secret; for RS256 put the issuer's public key instead, read once at
-- load time:
--     RULES.alg = "RS256"
--     RULES.key = spoa.jwt.key(io.open("/etc/luaspoa/idp-public.pem"):read("a"))
local RULES = {
  alg = "HS256",
  key = "example secret: replace with 32+ random bytes shared with the issuer",
  iss = "https://idp.example",
  aud = "example-api",
  leeway = 30,
}

local DECISIONS = spoa.metrics.counter("jwt_decisions_total", "Bearer-token decisions by result.", { "result" })

local function refuse(txn, why)
  DECISIONS:inc({ result = why })
  txn:set_var_boolean("txn.valid", false)
  txn:set_var("txn.error", why)
end

spoa.register_message("check-jwt", function(txn, msg)
  local auth = msg.args.auth
  local token = type(auth) == "string" and auth:match("^[Bb]earer +([%w_.-]+)$")
  if not token then return refuse(txn, "no token") end
  local claims, reason = spoa.jwt.verify(token, RULES)
  if not claims then return refuse(txn, reason) end
  -- A token without exp would be valid forever.
  if math.type(claims.exp) == nil then return refuse(txn, "no expiry") end
  DECISIONS:inc({ result = "valid" })
  txn:set_var_boolean("txn.valid", true)
  txn:set_var("txn.sub", tostring(claims.sub))
  if type(claims.role) == "string" then txn:set_var("txn.role", claims.role) end
end)
