-- Spec for rate_limiter.lua:
--     luaspoa test scripts/rate_limiter.lua scripts/rate_limiter_spec.lua
-- Each case starts with empty shared dicts; T.clock drives spoa.now_ms and TTLs.
local T = spoa.test

local START = 1700000000000          -- a multiple of the 10 s window: a window starts here

local function check(args)
  return T.notify("rate-check", args)
end

local function from(ip, extra)
  local args = { src = spoa.addr(ip) }
  for k, v in pairs(extra or {}) do args[k] = v end
  return check(args)
end

T.case("the 101st request in a window is limited", function()
  T.clock.set_ms(START)
  for i = 1, 100 do
    local ack = from("198.51.100.7")
    T.eq(ack:get("txn.limited"), false, "request " .. i)
    T.eq(ack:get("txn.rate"), i, "request " .. i)
  end
  local ack = from("198.51.100.7")
  T.eq(ack:get("txn.limited"), true)
  local retry, ty = ack:get("txn.retry_after")
  T.eq(retry, 30)
  T.eq(ty, "int32")
end)

T.case("an API key has its own bucket, whatever the address", function()
  T.clock.set_ms(START)
  for _ = 1, 100 do from("198.51.100.7", { apikey = "alice" }) end
  T.eq(from("203.0.113.1", { apikey = "alice" }):get("txn.limited"), true, "alice from another address")
  T.eq(from("198.51.100.7", { apikey = "bob" }):get("txn.limited"), false, "bob from alice's address")
  T.eq(from("198.51.100.7"):get("txn.limited"), false, "the address itself")
end)

T.case("IPv6 clients share a /64 bucket", function()
  T.clock.set_ms(START)
  for i = 1, 100 do
    from(("2001:db8::%x"):format(i))
  end
  T.eq(from("2001:db8::ffff"):get("txn.limited"), true)
  T.eq(from("2001:db8:0:1::1"):get("txn.limited"), false, "the next /64")
end)

T.case("the previous window still counts, weighted by its overlap", function()
  T.clock.set_ms(START)
  for _ = 1, 100 do from("192.0.2.1") end
  T.clock.advance_ms(15000)          -- halfway through the next window: 100 * 0.5 = 50 carried over
  for i = 1, 50 do
    T.eq(from("192.0.2.1"):get("txn.limited"), false, "request " .. i .. " of the new window")
  end
  T.eq(from("192.0.2.1"):get("txn.limited"), true, "50 + 51 > 100")
end)

T.case("the penalty expires", function()
  T.clock.set_ms(START)
  for _ = 1, 101 do from("203.0.113.9") end
  T.clock.advance_ms(29000)
  local ack = from("203.0.113.9")
  T.eq(ack:get("txn.limited"), true)
  T.eq(ack:get("txn.retry_after"), 1, "one second of penalty left")
  T.clock.advance_ms(22000)          -- past the 30 s penalty and out of both counting windows
  T.eq(from("203.0.113.9"):get("txn.limited"), false)
end)

T.case("HAProxy can pass the limit and window", function()
  T.clock.set_ms(START)
  local policy = { limit = 3, window_ms = 60000 }
  for i = 1, 3 do
    T.eq(from("192.0.2.50", policy):get("txn.limited"), false, "request " .. i)
  end
  T.eq(from("192.0.2.50", policy):get("txn.limited"), true)
end)

T.case("every answer names the worker that counted", function()
  T.clock.set_ms(START)
  local worker, ty = from("192.0.2.60"):get("txn.worker")
  T.eq(worker, spoa.worker)
  T.eq(ty, "int32")
end)
