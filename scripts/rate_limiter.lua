-- rate_limiter.lua -- limits requests per API key, or per client address, with
-- counters shared by ALL worker states (spoa.shared), so the limit holds no
-- matter which worker HAProxy's connections land on.
--
-- HAProxy side (see haproxy/spoe-rate-limiter.conf):
--
--     spoe-message rate-check
--         args src=src apikey=req.hdr(x-api-key) limit=int(100) window_ms=int(10000)
--         event on-frontend-http-request
--
-- limit and window_ms are optional (defaults below): the policy can differ per
-- frontend or route without touching the script. For every message it sets
--
--   txn.limited      (BOOLEAN)  true when the client is over the limit
--   txn.rate         (INT64)    estimated requests in the last window
--   txn.retry_after  (INT32)    seconds until the penalty ends (limited only)
--   txn.worker       (INT32)    the worker state that answered (for the demo)
--
-- The window slides: the count of the previous fixed window is weighted by the
-- part of it still inside the sliding window ("sliding window of two fixed
-- windows"), which needs two counters per client, each one atomic incr.
-- Once over the limit a client stays limited for PENALTY_S seconds.
-- (For plain per-IP limits, HAProxy stick tables with http_req_rate are
-- cheaper; this shows custom keys and logic.)

local DEFAULT_LIMIT     = 100
local DEFAULT_WINDOW_MS = 10000
local PENALTY_S         = 30

-- declare() is idempotent: every worker state gets the same dicts.
local counters = spoa.shared.declare("rl_counters", { max_items = 1000000 })
local penalty  = spoa.shared.declare("rl_penalty",  { max_items = 200000 })

-- One bucket per API key, else per IPv4 address or IPv6 /64.
local function client_key(src, apikey)
  if type(apikey) == "string" and apikey ~= "" then
    return "k:" .. apikey
  end
  if spoa.is_addr(src) then
    src = src:unmap()
    if src:is_v6() then src = src:mask(64) end
    return "i:" .. src:key()                      -- 4 or 16 raw bytes
  end
  return "i:unknown"
end

local function positive(n, default)
  return (math.type(n) == "integer" and n > 0) and n or default
end

spoa.register_message("rate-check", function(txn, msg)
  local a      = msg.args
  local key    = client_key(a.src, a.apikey)
  local limit  = positive(a.limit, DEFAULT_LIMIT)
  local window = positive(a.window_ms, DEFAULT_WINDOW_MS)
  txn:set_var("txn.worker", spoa.int32(spoa.worker))

  -- Already in the penalty box?
  local left = penalty:ttl(key)
  if left then
    txn:set_var("txn.limited", true)
    txn:set_var("txn.retry_after", spoa.int32(math.max(1, math.ceil(left))))
    return
  end

  local now     = spoa.now_ms()
  local win     = now // window                    -- current fixed window number
  local elapsed = now - win * window               -- ms into it
  -- One atomic call creates (with a TTL of two windows) or bumps the counter.
  local cur, err = counters:incr(key .. "#" .. win, 1, 0, 2 * window / 1000)
  if not cur then
    txn:Warning("rate limiter: incr failed: " .. tostring(err))   -- fail open
    return
  end
  local prev = counters:get(key .. "#" .. (win - 1)) or 0
  local est  = prev * (window - elapsed) / window + cur

  local limited = est > limit
  if limited then
    penalty:add(key, true, PENALTY_S)              -- add(): the first worker wins
    txn:set_var("txn.retry_after", spoa.int32(PENALTY_S))
  end
  txn:set_var("txn.limited", limited)
  txn:set_var("txn.rate", math.floor(est))         -- integer -> INT64
end)
