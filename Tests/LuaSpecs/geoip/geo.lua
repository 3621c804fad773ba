-- The script geoip_spec.lua runs against: test.mmdb (made by make-test-mmdb.py)
-- opened at load time by a path relative to this script's directory.
local DB = spoa.geoip.open("test.mmdb")
local J = spoa.json

-- msg.args.ip: an address or its text; msg.args.path: keys joined by "/".
spoa.register_message("geo", function(txn, msg)
  local keys = {}
  for k in (msg.args.path or ""):gmatch("[^/]+") do keys[#keys + 1] = math.tointeger(tonumber(k)) or k end
  local value, err = DB:lookup(msg.args.ip, table.unpack(keys))
  txn:set_var("txn.json", J.encode({ value = value, err = err, type = math.type(value) or type(value) }))
end)

spoa.register_message("meta", function(txn)
  txn:set_var("txn.json", J.encode(DB:metadata()))
end)

spoa.register_message("open-late", function(txn)
  local ok, err = pcall(spoa.geoip.open, "test.mmdb")
  txn:set_var("txn.json", J.encode({ ok = ok, err = err }))
end)
