-- sleep1_handler.lua -- empty_handler.lua plus spoa.sleep(1): every message
-- suspends its frame and is resumed by a timer. Against empty_handler.lua it
-- measures what one suspend and resume costs (messages/s, agent CPU per message).
spoa.register_message("check-client-ip", function(txn, msg)
  spoa.sleep(1)
  txn:set_var("sess.ip_score", spoa.uint32(50))
end)
