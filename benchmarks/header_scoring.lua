-- header_scoring.lua -- the benchmark's "realistic" handler (luaspoa bench --message request).
--
--     spoe-message check-request
--         args ip=src path=path ua=req.hdr(user-agent),lower port=dst_port
--
-- Scores a request from its user-agent, path and port, and sets txn.req_score
-- (UINT32, 0..100, 100 = clean) and sess.ip_score like ip_reputation.lua.

local BAD_AGENTS = { "curl", "wget", "python%-requests", "sqlmap", "nikto", "masscan" }
local BAD_PATHS  = { "%.%./", "/etc/passwd", "<script", "union%s+select", "/wp%-admin" }

local function penalty_of(text, patterns, weight)
  for _, pattern in ipairs(patterns) do
    if text:find(pattern) then return weight end
  end
  return 0
end

spoa.register_message("check-request", function(txn, msg)
  local args = msg.args
  local ua, path, port, ip = args.ua or "", args.path or "", args.port, args.ip

  local score = 100
  if #ua == 0 then score = score - 40 end
  score = score - penalty_of(ua:lower(), BAD_AGENTS, 50)
  score = score - penalty_of(path:lower(), BAD_PATHS, 60)
  if #path > 1024 then score = score - 20 end
  if port ~= 80 and port ~= 443 and port ~= 8080 then score = score - 10 end
  if score < 0 then score = 0 end

  txn:set_var("txn.req_score", spoa.uint32(score))
  txn:set_var("sess.ip_score", spoa.uint32(ip and ip:is_loopback() and 100 or 50))
end)
