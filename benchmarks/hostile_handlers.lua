-- Appended to the soak script by `HOSTILE=1 benchmarks/soak.sh`: handlers that
-- misbehave on purpose, one per /hostile/KIND path. Each one must cost its own
-- request at most (a timeout or an error), never the agent or other requests.
local flood = spoa.shared.declare("hostile_flood", { max_items = 1000 })
local MB = 1024 * 1024

local kinds = {
  loop = function() while true do end end,
  xpcall = function() xpcall(function() while true do end end, function() while true do end end) end,
  gc = function() setmetatable({}, { __gc = function() while true do end end }); collectgarbage() end,
  pattern = function() return string.rep(" ", 16000):match("^%s*(.-)%s*$") end,
  bigstring = function() local s = string.rep("x", 64 * MB); return #s end,
  logflood = function() for _ = 1, 2000 do spoa.Warning(string.rep("w", 10000)) end end,
  dict = function() flood:set(tostring(math.random(1e9)), string.rep("d", MB)) end,
}

spoa.register_message("hostile", function(txn, msg)
  local kind = tostring(msg.args.kind):match("^/hostile/(%w+)")
  local f = kinds[kind]
  if f then f() end
  txn:set_var("txn.hostile_done", true)
end)

-- Peers of benchmarks/hostile_peers.py ask for this one: a 12 KB ACK per NOTIFY.
spoa.register_message("bigack", function(txn)
  txn:set_var("txn.big", string.rep("a", 12000))
end)
