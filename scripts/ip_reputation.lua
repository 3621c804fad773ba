-- ip_reputation.lua -- the luaspoa example every user reads first.
--
-- HAProxy side (see haproxy/spoe-ip-reputation.conf):
--
--     spoe-message check-client-ip
--         args ip=src                  # "args src" (unnamed) works too
--         event on-frontend-http-request
--
-- For every "check-client-ip" message this script sets two variables:
--
--   sess.ip_score  (UINT32, 0..100, 100 = trusted)     -> sess.<var-prefix>.ip_score in HAProxy
--   txn.ip_family  (STRING, "ipv4" or "ipv6")          -> txn.<var-prefix>.ip_family
--
-- The score is deterministic, so it can be tested:
--
--   loopback (127.0.0.0/8, ::1)                                    -> 100
--   private  (10/8, 172.16/12, 192.168/16, fc00::/7)               ->  90
--   anything else: FNV-1a (32 bit) of the address text, mod 100    -> 0..99
--                  (e.g. 192.0.2.10 -> 28, 2001:db8::1 -> 87, 8.8.8.8 -> 9)
--
-- A real deployment would look the address up in a reputation list instead of
-- hashing it; the shape of the handler stays the same.

local LOOPBACK_SCORE = 100
local PRIVATE_SCORE  = 90

-- "a.b.c.d" -> four integers, or nil when the text is not a dotted quad.
local function ipv4_octets(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d)
end

local function is_private(text, family)
  if family == "ipv4" then
    local a, b = ipv4_octets(text)
    if not a then return false end
    return a == 10
        or (a == 172 and b >= 16 and b <= 31)
        or (a == 192 and b == 168)
  end
  -- IPv6 unique local addresses fc00::/7: the first group starts with fc or fd.
  local first = text:lower():match("^(%x*):") or ""
  return #first == 4 and (first:sub(1, 2) == "fc" or first:sub(1, 2) == "fd")
end

-- FNV-1a, 32 bit: small, deterministic, and the same on every platform.
local function fnv1a32(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end

local function score_of(ip, family)
  local text = tostring(ip)
  if ip:is_loopback() then return LOOPBACK_SCORE end
  if is_private(text, family) then return PRIVATE_SCORE end
  return fnv1a32(text) % 100
end

spoa.register_message("check-client-ip", function(txn, msg)
  -- "args ip=src" gives a named argument; the historic "args src" an unnamed one.
  local key = (msg.args.ip ~= nil) and "ip" or 1
  local ip, family = msg.args[key], msg:type(key)

  if family ~= "ipv4" and family ~= "ipv6" then
    spoa.Warning("check-client-ip: expected an address, got " .. tostring(family))
    return
  end

  local score = score_of(ip, family)
  txn:set_var("sess.ip_score", spoa.uint32(score))
  txn:set_var("txn.ip_family", family)

  if score < 20 then
    spoa.Info(("check-client-ip: low reputation %d for %s"):format(score, tostring(ip)))
  end
end)
