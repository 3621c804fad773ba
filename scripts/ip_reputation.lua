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
-- The score is deterministic, so it can be tested (first rule that applies):
--
--   loopback (127.0.0.0/8, ::1)                                    -> 100
--   private  (10/8, 172.16/12, 192.168/16, fc00::/7)               ->  90
--   listed in ip_reputation.lst (longest prefix wins)              -> its score
--                  (e.g. 198.51.100.7 -> 3, 198.51.100.70 -> 60, 2001:db8:bad::1 -> 1)
--   anything else: FNV-1a (32 bit) of the address text, mod 100    -> 0..99
--                  (e.g. 192.0.2.10 -> 28, 2001:db8::1 -> 87, 8.8.8.8 -> 9)
--
-- ::ffff:a.b.c.d (an IPv4 client on an IPv6 socket) is scored as a.b.c.d.

local LOOPBACK_SCORE = 100
local PRIVATE_SCORE  = 90

-- Loaded once per worker state when the script loads; a relative path is read
-- from this script's directory. Lines: "<cidr> <score>".
local REPUTATION = spoa.netset.load("ip_reputation.lst")

-- FNV-1a (32 bit) in C: small, deterministic, the same on every platform.
-- Given an address it hashes its text, tostring(ip), without making that string.
local fnv1a32 = spoa.hash.fnv1a32

local function listed_score(ip)
  local cidr, value = REPUTATION:lookup(ip)
  if not cidr then return nil end
  local n = math.tointeger(tonumber(value))
  if n == nil or n < 0 or n > 100 then
    spoa.Warning(("ip_reputation.lst: %s has score %q, expected 0..100; ignored"):format(cidr, tostring(value)))
    return nil
  end
  return n
end

local function score_of(ip)
  ip = ip:unmap()
  if ip:is_loopback() then return LOOPBACK_SCORE end
  if ip:is_private() then return PRIVATE_SCORE end
  return listed_score(ip) or fnv1a32(ip) % 100
end

spoa.register_message("check-client-ip", function(txn, msg)
  -- "args ip=src" gives a named argument; the historic "args src" an unnamed one.
  local args = msg.args
  local key = (args.ip ~= nil) and "ip" or 1
  local ip, family = args[key], msg:type(key)

  if not spoa.is_addr(ip) then
    spoa.Warning("check-client-ip: expected an address, got " .. tostring(family))
    return
  end

  local score = score_of(ip)
  txn:set_var_uint32("sess.ip_score", score)   -- = set_var(..., spoa.uint32(score)), without the wrapper
  txn:set_var("txn.ip_family", family)

  if score < 20 then
    spoa.Info(("check-client-ip: low reputation %d for %s"):format(score, tostring(ip)))
  end
end)
