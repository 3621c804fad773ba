-- spoa.geoip (libmaxminddb) against geoip/test.mmdb. Run by ModuleSpecTests, or:
--     luaspoa test Tests/LuaSpecs/geoip/geo.lua Tests/LuaSpecs/geoip_spec.lua
local T = spoa.test
local J = spoa.json

local function geo(ip, path)
  return J.decode(T.notify("geo", { ip = ip, path = path }):get("txn.json"))
end

T.case("a record as a table, from an address or its text", function()
  local r = geo(spoa.addr("192.0.2.10"))
  T.eq(r.value.country.iso_code, "FR")
  T.eq(r.value.country.names.de, "Frankreich")
  T.eq(r.value.asn, 64496)
  T.eq(r.value.tags, { "hosting", "eu" })
  T.eq(r.value.anycast, false)
  T.eq(geo("192.0.2.10").value, r.value, "text")
  T.eq(geo("198.51.100.7").value.score, 0.5)
  T.eq(geo("198.51.100.7").value.anycast, true)
  T.eq(geo("2001:db8:1::5").value.country.iso_code, "DE")
  T.eq(geo(spoa.addr("2001:db8:1::5")).value.asn, 4200000000)
end)

T.case("a field path", function()
  T.eq(geo("192.0.2.10", "country/iso_code").value, "FR")
  T.eq(geo("192.0.2.10", "asn"), { value = 64496, type = "integer" })
  T.eq(geo("192.0.2.10", "tags/2").value, "eu", "array indexes are 1-based")
  T.eq(geo("192.0.2.10", "country/names").value, { en = "France", de = "Frankreich" }, "a map")
  T.eq(geo("192.0.2.10", "country/missing").value, nil)
  T.eq(geo("192.0.2.10", "asn/deeper").value, nil)
end)

T.case("not found and invalid addresses", function()
  T.eq(geo("203.0.113.1"), { type = "nil" })
  T.eq(geo("198.51.100.200"), { type = "nil" }, "outside the /25")
  T.eq(geo("::1"), { type = "nil" })
  T.eq(geo("not an address").err, "invalid address")
  T.eq(geo("example.com").err, "invalid address", "never resolved")
end)

T.case("metadata", function()
  local m = J.decode(T.notify("meta", {}):get("txn.json"))
  T.eq(m.database_type, "luaspoa-test-geo")
  T.eq(m.ip_version, 6)
  T.eq(m.languages, { "en" })
  T.eq(m.description.en, "luaspoa spoa.geoip test data")
  T.eq(m.binary_format_major_version, 2)
end)

T.case("relative paths resolve from spoa.script_dir", function()
  T.ok(spoa.script_dir:find("/LuaSpecs/geoip$"), spoa.script_dir)
end)

T.case("open is for load time", function()
  local r = J.decode(T.notify("open-late", {}):get("txn.json"))
  T.eq(r.ok, false)
  T.ok(r.err:find("spoa.geoip.open is only available while the script loads or in an init function", 1, true), r.err)
end)
