-- global_rate_limiter.lua -- a per-client limit kept in Redis, so that every
-- agent instance behind HAProxy (several luaspoa processes in one backend, on
-- one or several machines) counts against the same limit.
--
-- HAProxy side (see haproxy/haproxy-global-rate-limiter.cfg and
-- haproxy/spoe-global-rate-limiter.conf):
--
--     spoe-message global-rate-check
--         args src=src apikey=req.hdr(x-api-key) limit=int(100) window_ms=int(60000)
--         event on-frontend-http-request
--
-- For every message it sets
--
--   txn.limited      (BOOLEAN)  true when the client is over the limit
--   txn.count        (INT64)    requests of the client in the current window
--   txn.agent        (STRING)   which agent instance answered (for the demo)
--   txn.redis_error  (STRING)   set when Redis could not be asked (see below)
--
-- Window: fixed, starting at the client's first request (the counter's TTL),
-- counted by one atomic EVAL (INCR, and PEXPIRE on the first): one round trip
-- per request, pipelined with the other handlers' calls of the same worker.
--
-- Redis down (refused, timeout, ...): the request is let through (FAIL OPEN),
-- and txn.redis_error says why, so HAProxy can log it or add a header. An
-- outage of the rate limiter then never blocks traffic; the price is no limit
-- while Redis is away. For fail closed, set FAIL_OPEN = false: the request is
-- then limited.

local REDIS = { host = "127.0.0.1", port = 6379, timeout = 50 }
local DEFAULT_LIMIT     = 100
local DEFAULT_WINDOW_MS = 60000
local FAIL_OPEN         = true

local redis = spoa.redis.new(REDIS)

local COUNT = [[
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
]]

-- One id per agent process (the first state to add it wins), for txn.agent.
local meta = spoa.shared.declare("global_rate_limiter")
meta:add("agent", string.format("%08x", math.random(0, 0x7fffffff)))
local AGENT = meta:get("agent")

local function client_key(src, apikey)
  if type(apikey) == "string" and apikey ~= "" then
    return "grl:k:" .. apikey
  end
  if spoa.is_addr(src) then
    src = src:unmap()
    if src:is_v6() then src = src:mask(64) end
    return "grl:i:" .. tostring(src)
  end
  return "grl:i:unknown"
end

local function positive(n, default)
  return (math.type(n) == "integer" and n > 0) and n or default
end

spoa.register_message("global-rate-check", function(txn, msg)
  local a = msg.args
  local limit = positive(a.limit, DEFAULT_LIMIT)
  local window = positive(a.window_ms, DEFAULT_WINDOW_MS)
  txn:set_var("txn.agent", AGENT)
  local count, err = redis:eval(COUNT, { client_key(a.src, a.apikey) }, { window })
  if not count then
    txn:set_var("txn.redis_error", err)
    txn:set_var("txn.limited", not FAIL_OPEN)
    return
  end
  txn:set_var("txn.count", count)
  txn:set_var("txn.limited", count > limit)
end, { deadline_ms = 200, on_error = { ["txn.redis_error"] = "handler error" } })
