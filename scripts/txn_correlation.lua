-- Correlates a request event with its response event through spoa.txstore.
--
-- HAProxy 3.1+ gives every event its own SPOP stream, and even 2.6 may send the
-- two events on different connections (so to different workers): nothing but an
-- argument ties them together. HAProxy's unique-id is that argument
-- (haproxy/haproxy-txstore.cfg sets unique-id-format).
--
--   request event  (txn-request):  id=unique-id path=path      -> remembered
--   response event (txn-response): id=unique-id status=status  -> txn.req_path,
--                                  txn.slow (handler-to-handler time over 1 s)

spoa.txstore.declare{ max_items = 200000 }   -- LRU beyond that; default 100000

spoa.register_message("txn-request", function(txn, msg)
  -- 30 s: longer than any response takes; entries never taken expire by themselves.
  spoa.txstore.set(msg.args.id, { path = msg.args.path, t0 = spoa.mono_ms() }, 30)
end)

spoa.register_message("txn-response", function(txn, msg)
  local req = spoa.txstore.take(msg.args.id)   -- read and remove
  if not req then
    txn:set_var("txn.req_path", "?")           -- expired, or the request event failed
    return
  end
  txn:set_var("txn.req_path", req.path)
  txn:set_var("txn.slow", spoa.mono_ms() - req.t0 > 1000)
end)
