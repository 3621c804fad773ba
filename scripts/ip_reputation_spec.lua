-- Spec for ip_reputation.lua:
--     luaspoa test scripts/ip_reputation.lua scripts/ip_reputation_spec.lua
-- The expected scores are the ones documented at the top of the script.
local T = spoa.test

local function check(ip)
  return T.notify("check-client-ip", { ip = spoa.addr(ip) })
end

T.case("loopback is trusted, as UINT32", function()
  local score, type = check("127.0.0.1"):get("sess.ip_score")
  T.eq(score, 100)
  T.eq(type, "uint32")
  T.eq(check("::1"):get("sess.ip_score"), 100)
end)

T.case("private ranges score 90", function()
  for _, ip in ipairs({ "10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1", "fd12:3456::1" }) do
    T.eq(check(ip):get("sess.ip_score"), 90, ip)
  end
end)

T.case("listed ranges take their score from ip_reputation.lst", function()
  T.eq(check("198.51.100.7"):get("sess.ip_score"), 3)
  T.eq(check("198.51.100.70"):get("sess.ip_score"), 60, "the narrower /26 wins")
  T.eq(check("203.0.113.9"):get("sess.ip_score"), 15)
  T.eq(check("2001:db8:bad::1"):get("sess.ip_score"), 1)
end)

T.case("IPv4-mapped IPv6 addresses are scored as IPv4", function()
  local ack = check("::ffff:198.51.100.7")
  T.eq(ack:get("sess.ip_score"), 3)
  T.eq(ack:get("txn.ip_family"), "ipv6")
end)

T.case("anything else hashes deterministically", function()
  T.eq(check("192.0.2.10"):get("sess.ip_score"), 28)
  T.eq(check("8.8.8.8"):get("sess.ip_score"), 9)
  T.eq(check("2001:db8::1"):get("sess.ip_score"), 87)
  T.eq(check("203.0.113.200"):get("sess.ip_score"), check("203.0.113.200"):get("sess.ip_score"))
end)

T.case("family is reported", function()
  T.eq(check("192.0.2.10"):get("txn.ip_family"), "ipv4")
  T.eq(check("2001:db8::1"):get("txn.ip_family"), "ipv6")
end)

T.case("the historic unnamed 'args src' works too", function()
  local ack = T.notify("check-client-ip", { { "", spoa.ipv4("10.0.0.1") } })
  T.eq(ack:get("sess.ip_score"), 90)
end)

T.case("a non-address argument sets nothing", function()
  local ack = T.notify("check-client-ip", { ip = "not an address" })
  T.eq(ack:get("sess.ip_score"), nil)
  T.eq(ack:get("txn.ip_family"), nil)
end)
