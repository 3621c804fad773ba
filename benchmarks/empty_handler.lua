-- empty_handler.lua -- the least a luaspoa script can do: one constant variable per
-- message. Benchmarks use it to separate the engine's cost from the script's.
spoa.register_message("check-client-ip", function(txn, msg)
  txn:set_var("sess.ip_score", spoa.uint32(50))
end)
