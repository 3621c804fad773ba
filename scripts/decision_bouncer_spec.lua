-- Spec for decision_bouncer.lua, with the decision API stubbed:
--     luaspoa test scripts/decision_bouncer.lua scripts/decision_bouncer_spec.lua
local T = spoa.test

local LIST = "http://127.0.0.1:8082/v1/decisions"

-- The API: the list answers `bans` (CIDRs), the live check bans `live` addresses.
local function api(bans, live)
  return T.stub_http(function(method, req)
    T.eq(method, "GET")
    T.eq(req.headers["X-Api-Key"], "change-me")
    if req.url == LIST then
      local d = {}
      for i, v in ipairs(bans) do d[i] = { value = v, type = "ban", scope = "Range" } end
      return { status = 200, body = #d > 0 and spoa.json.encode(d) or "null" }
    end
    local ip = req.url:match("%?ip=(.+)$")
    if live[ip] then
      return { status = 200, body = spoa.json.encode({ { value = ip, type = live[ip] } }) }
    end
    return { status = 200, body = "null" }
  end)
end

local function check(ip)
  return T.notify("decision-check", { src = spoa.addr(ip) })
end

local function decision(ack)
  return ack:get("txn.decision") .. "/" .. ack:get("txn.decision_source")
end

T.case("the pulled list bans its ranges without asking the API", function()
  local calls = api({ "192.0.2.0/24", "2001:db8::/32" }, {})
  T.run_task(1)
  T.eq(#calls, 1)
  T.eq(calls[1].url, LIST)
  T.eq(decision(check("192.0.2.77")), "ban/list")
  T.eq(decision(check("2001:db8::1")), "ban/list")
  T.eq(#calls, 1, "the list answers alone")
  local logs = table.concat(T.logs(), "\n")
  T.ok(logs:find("info: decision list: 2 bans", 1, true), logs)
end)

T.case("other addresses are asked once, then answered from the cache until the TTL", function()
  T.clock.set_ms(1700000000000)
  local calls = api({}, { ["198.51.100.9"] = "ban", ["198.51.100.10"] = "captcha" })
  T.eq(decision(check("198.51.100.7")), "allow/api")
  T.eq(calls[1].url, LIST .. "?ip=198.51.100.7")
  for _ = 1, 5 do T.eq(decision(check("198.51.100.7")), "allow/cache") end
  T.eq(#calls, 1, "one API call for six requests")
  T.eq(decision(check("198.51.100.9")), "ban/api")
  T.eq(decision(check("198.51.100.9")), "ban/cache")
  T.eq(decision(check("198.51.100.10")), "captcha/api")
  T.eq(#calls, 3)
  T.clock.advance_ms(61000)             -- past ALLOW_TTL, within BAN_TTL
  T.eq(decision(check("198.51.100.7")), "allow/api")
  T.eq(decision(check("198.51.100.9")), "ban/cache")
  T.eq(#calls, 4)
end)

T.case("a new list entry wins over a cached allow", function()
  local bans = {}
  local calls = api(bans, {})
  T.run_task(1)
  T.eq(decision(check("203.0.113.5")), "allow/api")
  bans[1] = "203.0.113.0/28"
  T.run_task(1)
  T.eq(decision(check("203.0.113.5")), "ban/list")
  T.eq(#calls, 3)
end)

T.case("a failed pull keeps the last good list and says why", function()
  api({ "192.0.2.0/24" }, {})
  T.run_task(1)
  T.stub_http(function() return nil, "connection refused" end)
  T.run_task(1)
  T.eq(decision(check("192.0.2.1")), "ban/list")
  local logs = table.concat(T.logs(), "\n")
  T.ok(logs:find("decision list pull failed, keeping the last good list: connection refused", 1, true), logs)
  T.stub_http{ [LIST] = { status = 200, body = '[{"value": "not an address", "type": "ban"}]' } }
  T.run_task(1)
  T.eq(decision(check("192.0.2.1")), "ban/list")
  logs = table.concat(T.logs(), "\n")
  T.ok(logs:find("bad address 'not an address', list ignored", 1, true), logs)
end)

T.case("API down: fail open with the reason, and no call again for a second", function()
  T.clock.set_ms(1700000000000)
  local calls = T.stub_http(function() return nil, "timeout" end)
  local ack = check("198.51.100.7")
  T.eq(decision(ack), "allow/error")
  T.eq(ack:get("txn.decision_error"), "timeout")
  T.eq(decision(check("198.51.100.8")), "allow/error")
  T.eq(#calls, 1, "the API is left alone for API_RETRY_S")
  T.clock.advance_ms(1001)
  calls = api({}, {})
  T.eq(decision(check("198.51.100.8")), "allow/api")
  T.eq(#calls, 1)
end)

T.case("an API error status or a malformed answer is a failure too", function()
  T.clock.set_ms(1700000000000)
  T.stub_http(function() return { status = 503, body = "busy" } end)
  T.eq(check("198.51.100.7"):get("txn.decision_error"), "API status 503")
  T.clock.advance_ms(1001)
  T.stub_http(function() return { status = 200, body = "{not json" } end)
  local err = check("198.51.100.7"):get("txn.decision_error")
  T.ok(err:find("^API answer: "), err)
end)
