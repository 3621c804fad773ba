-- Spec for global_rate_limiter.lua, with Redis stubbed (T.stub_redis):
--     luaspoa test scripts/global_rate_limiter.lua scripts/global_rate_limiter_spec.lua
local T = spoa.test

-- Redis as the EVAL script uses it: one counter per key. Returns the counters.
local function redis()
  local counts = {}
  T.stub_redis(function(cmd, script, nkeys, key, window)
    T.eq(cmd, "EVAL")
    T.eq(nkeys, "1")
    counts[key] = (counts[key] or 0) + 1
    return counts[key]
  end)
  return counts
end

local function check(args)
  return T.notify("global-rate-check", args)
end

T.case("the request over the limit is limited, per client", function()
  local counts = redis()
  for i = 1, 3 do
    local ack = check({ src = spoa.addr("198.51.100.7"), limit = 3 })
    T.eq(ack:get("txn.limited"), false, "request " .. i)
    T.eq(ack:get("txn.count"), i)
  end
  T.eq(check({ src = spoa.addr("198.51.100.7"), limit = 3 }):get("txn.limited"), true)
  T.eq(check({ src = spoa.addr("198.51.100.8"), limit = 3 }):get("txn.limited"), false, "another client")
  T.eq(check({ src = spoa.addr("198.51.100.7"), apikey = "k1", limit = 3 }):get("txn.count"), 1, "an API key")
  T.ok(counts["grl:k:k1"], "the API key is the Redis key")
end)

T.case("Redis down: fail open, with the reason in txn.redis_error", function()
  local calls = T.stub_redis(function() return nil, "connection refused" end)
  local ack = check({ src = spoa.addr("198.51.100.7"), window_ms = 5000 })
  T.eq(ack:get("txn.limited"), false)
  T.eq(ack:get("txn.redis_error"), "connection refused")
  T.eq(ack:get("txn.count"), nil)
  T.ok(ack:get("txn.agent"), "the agent says who it is")
  T.eq(calls[1][4], "grl:i:198.51.100.7")
  T.eq(calls[1][5], "5000", "the window is the counter's PEXPIRE")
end)
