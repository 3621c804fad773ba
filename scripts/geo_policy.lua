-- geo_policy.lua -- country and ASN of each client from MaxMind DB files, a deny
-- list of countries from a map, and tags on the requests it lets through.
--
-- HAProxy side (see haproxy/spoe-geo-policy.conf and haproxy/haproxy-geo-policy.cfg):
--
--     spoe-message geo-check
--         args src=src
--     (sent by "http-request send-spoe-group geo geo-check", after set-src)
--
-- For every "geo-check" message this script sets (with --var-prefix geo, HAProxy
-- sees txn.geo.<name>):
--
--   txn.country  (STRING)  ISO code of the client's country, "--" when unknown
--   txn.asn      (UINT32)  its autonomous system, when known
--   txn.deny     (BOOL)    true when the country is in geo_policy.countries.map
--   txn.reason   (STRING)  that map's value, when denied
--   txn.tags     (STRING)  "cc=FR,asn=64496,org=Example Transit" (allowed requests)
--
-- The databases here are demo data over documentation ranges (192.0.2.0/24 is
-- FR, 198.51.100.0/24 KP, 203.0.113.0/24 JP, 2001:db8::/32 DE), written by
-- Tests/LuaSpecs/geoip/make-test-mmdb.py. In production point COUNTRY_DB and
-- ASN_DB at geoipupdate's GeoLite2-Country.mmdb and GeoLite2-ASN.mmdb (same
-- layouts); a reload (SIGHUP) maps the files geoipupdate replaced.

-- Relative paths are resolved from this script's directory.
local COUNTRY_DB = spoa.geoip.open("geo_policy-country.mmdb")
local ASN_DB = spoa.geoip.open("geo_policy-asn.mmdb")
local DENIED = spoa.map.load("geo_policy.countries.map")

spoa.register_message("geo-check", function(txn, msg)
  local src = msg.args.src
  local cc = COUNTRY_DB:lookup(src, "country", "iso_code") or "--"
  txn:set_var("txn.country", cc)
  local reason = DENIED:lookup(cc)
  if reason then
    txn:set_var_boolean("txn.deny", true)
    txn:set_var("txn.reason", reason)
    return
  end
  txn:set_var_boolean("txn.deny", false)
  local tags = { "cc=" .. cc }
  local as = ASN_DB:lookup(src)
  if as and as.autonomous_system_number then
    txn:set_var("txn.asn", spoa.uint32(as.autonomous_system_number))
    tags[#tags + 1] = "asn=" .. as.autonomous_system_number
    tags[#tags + 1] = "org=" .. (as.autonomous_system_organization or "?")
  end
  txn:set_var("txn.tags", table.concat(tags, ","))
end)
