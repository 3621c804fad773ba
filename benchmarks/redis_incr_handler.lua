-- redis_incr_handler.lua -- one Redis INCR per message (benchmarks/run.sh, the
-- clients scenarios): the calls of concurrent handlers are pipelined on each
-- worker's connection (pool = 1). run.sh replaces @REDIS_PORT@ with the port of
-- the redis-server it starts.
local r = spoa.redis.new{ port = @REDIS_PORT@, timeout = 1000 }
spoa.register_message("check-client-ip", function(txn, msg)
  local n, err = r:call("INCR", "bench")
  if not n then error(err) end
  txn:set_var("sess.ip_score", spoa.uint32(n % 100))
end)
