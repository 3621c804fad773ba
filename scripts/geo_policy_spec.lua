-- Spec for geo_policy.lua:
--     luaspoa test scripts/geo_policy.lua scripts/geo_policy_spec.lua
local T = spoa.test

local function check(ip)
  return T.notify("geo-check", { src = spoa.addr(ip) })
end

T.case("a known client is tagged with its country and AS", function()
  local ack = check("192.0.2.10")
  T.eq(ack:get("txn.country"), "FR")
  T.eq(ack:get("txn.deny"), false)
  T.eq(ack:get("txn.asn"), 64496)
  T.eq(ack:get("txn.tags"), "cc=FR,asn=64496,org=Example Transit")
end)

T.case("a country on the deny list is denied with the map's reason", function()
  local ack = check("198.51.100.7")
  T.eq(ack:get("txn.country"), "KP")
  T.eq(ack:get("txn.deny"), true)
  T.eq(ack:get("txn.reason"), "sanctions")
  T.eq(ack:get("txn.tags"), nil)
end)

T.case("no AS record, IPv6, and unknown addresses", function()
  T.eq(check("2001:db8::1"):get("txn.tags"), "cc=DE")
  T.eq(check("2001:db8::1"):get("txn.asn"), nil)
  local unknown = check("127.0.0.1")
  T.eq(unknown:get("txn.country"), "--")
  T.eq(unknown:get("txn.deny"), false)
  T.eq(unknown:get("txn.tags"), "cc=--")
end)
