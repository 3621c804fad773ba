-- Spec for global_rate_limiter.lua, with Redis stubbed by a table:
--     luaspoa test scripts/global_rate_limiter.lua scripts/global_rate_limiter_spec.lua
local T = spoa.test

-- A stand-in for the Redis client: counts per key like the EVAL script does,
-- or fails like a client whose Redis is down.
local function stub(down)
  local counts = {}
  return {
    keys = counts,
    eval = function(_, _, keys, args)
      if down then return nil, down end
      counts[keys[1]] = (counts[keys[1]] or 0) + 1
      return counts[keys[1]]
    end,
  }
end

local function check(args)
  return T.notify("global-rate-check", args)
end

T.case("the request over the limit is limited, per client", function()
  global_rate_limiter.redis = stub()
  for i = 1, 3 do
    local ack = check({ src = spoa.addr("198.51.100.7"), limit = 3 })
    T.eq(ack:get("txn.limited"), false, "request " .. i)
    T.eq(ack:get("txn.count"), i)
  end
  T.eq(check({ src = spoa.addr("198.51.100.7"), limit = 3 }):get("txn.limited"), true)
  T.eq(check({ src = spoa.addr("198.51.100.8"), limit = 3 }):get("txn.limited"), false, "another client")
  T.eq(check({ src = spoa.addr("198.51.100.7"), apikey = "k1", limit = 3 }):get("txn.count"), 1, "an API key")
  T.ok(global_rate_limiter.redis.keys["grl:k:k1"], "the API key is the Redis key")
end)

T.case("Redis down: fail open, with the reason in txn.redis_error", function()
  global_rate_limiter.redis = stub("connection refused")
  local ack = check({ src = spoa.addr("198.51.100.7") })
  T.eq(ack:get("txn.limited"), false)
  T.eq(ack:get("txn.redis_error"), "connection refused")
  T.eq(ack:get("txn.count"), nil)
  T.ok(ack:get("txn.agent"), "the agent says who it is")
end)
