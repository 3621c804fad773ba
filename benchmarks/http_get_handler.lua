-- http_get_handler.lua -- one HTTP GET per message (benchmarks/run.sh, the clients
-- scenarios) to a local keep-alive server (HAProxy's `http-request return`).
-- run.sh replaces @HTTP_PORT@ with its port.
local hc = spoa.httpclient()
local URL = "http://127.0.0.1:@HTTP_PORT@/"
spoa.register_message("check-client-ip", function(txn, msg)
  local res, err = hc:get{ url = URL, timeout = 2000 }
  if not res then error(err) end
  txn:set_var("sess.ip_score", spoa.uint32(res.status == 200 and 50 or 0))
end)
