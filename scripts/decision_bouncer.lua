-- decision_bouncer.lua -- a CrowdSec-style bouncer: HAProxy refuses the
-- addresses a decision API bans.
--
-- Two ways to know an address, both from the API (LAPI-like, JSON):
--
--   * the list (pull model): a background task fetches every decision of
--     LIST_URL every PULL_INTERVAL_MS and publishes the banned addresses and
--     ranges in a shared dict; each worker turns the newest list into a netset
--     (one binary search per request). A failed pull keeps the last good list
--     and logs why.
--   * the live check: an address the list does not ban is asked of
--     CHECK_URL .. "?ip=" .. address; the answer (ban or allow) is cached in a
--     shared dict for BAN_TTL / ALLOW_TTL seconds, so one client costs one API
--     call per TTL whatever its request rate.
--
-- API answers: a JSON array of decisions, or null for none, as CrowdSec's LAPI:
--     [{"value": "192.0.2.0/24", "type": "ban", "scope": "Range", "duration": "3h"}]
-- Decisions of another type than "ban" (captcha, ...) are answered as their
-- type by the live check and left out of the list.
--
-- HAProxy side (haproxy/haproxy-decision-bouncer.cfg, haproxy/spoe-decision-bouncer.conf):
--
--     spoe-message decision-check
--         args src=src
--         event on-frontend-http-request
--
-- For every message it sets
--
--   txn.decision         (STRING)  "ban", "allow" (or another decision type)
--   txn.decision_source  (STRING)  "list", "api", "cache" or "error"
--   txn.decision_error   (STRING)  why the API could not answer (source "error")
--
-- API down (refused, timeout, an HTTP status other than 200, a malformed
-- answer): FAIL_OPEN lets the request through ("allow", source "error") and
-- txn.decision_error says why, for HAProxy to log; the list still bans what it
-- holds. After a failure the API is not asked again for API_RETRY_S seconds
-- (requests meanwhile get the same answer at once). FAIL_OPEN = false bans
-- instead (fail closed): safer against attackers, but an API outage then
-- refuses every client the list does not know.

local LIST_URL         = "http://127.0.0.1:8082/v1/decisions"
local CHECK_URL        = "http://127.0.0.1:8082/v1/decisions"
local API_KEY          = "change-me"          -- sent as X-Api-Key
local PULL_INTERVAL_MS = 10000
local PULL_TIMEOUT_MS  = 2000
local CHECK_TIMEOUT_MS = 100
local BAN_TTL          = 300                  -- seconds a "ban" answer is cached
local ALLOW_TTL        = 60                   -- seconds an "allow" answer is cached
local API_RETRY_S      = 1
local FAIL_OPEN        = true

local hc = spoa.httpclient()
local HEADERS = { ["X-Api-Key"] = API_KEY, ["Accept"] = "application/json" }

-- "list": the banned CIDRs, one per line; "version": bumped by each pull that
-- changed it; "a:<address key>": cached answers; "api_down": the last failure.
local state = spoa.shared.declare("decision_bouncer", { max_items = 100000 })

-- The decisions of an API answer, or nil, err.
local function decisions(res, err)
  if not res then return nil, err end
  if res.status ~= 200 then return nil, "API status " .. res.status end
  local list, jerr = spoa.json.decode(res.body)
  if list == spoa.json.null then return {} end
  if type(list) ~= "table" then return nil, "API answer: " .. (jerr or "not a JSON array") end
  return list
end

-- The pull: every ban of LIST_URL into the shared list, checked before it
-- replaces the last good one.
local function pull()
  local list, err = decisions(hc:get{ url = LIST_URL, headers = HEADERS, timeout = PULL_TIMEOUT_MS })
  if not list then
    spoa.Warning("decision list pull failed, keeping the last good list: " .. err)
    return
  end
  local cidrs = {}
  for i, d in ipairs(list) do
    if type(d) ~= "table" or type(d.value) ~= "string" then
      spoa.Warning("decision list pull: decision " .. i .. " has no value, list ignored")
      return
    end
    if d.type == "ban" then
      local ok = spoa.cidr(d.value)
      if not ok then
        spoa.Warning("decision list pull: bad address '" .. d.value .. "', list ignored")
        return
      end
      cidrs[#cidrs + 1] = d.value
    end
  end
  table.sort(cidrs)
  local text = table.concat(cidrs, "\n")
  if text ~= state:get("list") then
    local ok, serr = state:safe_set("list", text)
    if not ok then
      spoa.Warning("decision list pull: cannot publish the list: " .. serr)
      return
    end
    state:incr("version", 1, 0)
    spoa.Info("decision list: " .. #cidrs .. " bans")
  end
end

spoa.register_task(pull, { every = PULL_INTERVAL_MS })

-- This worker's netset of the list, rebuilt when a pull published a new one:
-- once per worker and change, in the handler (a 100 000-CIDR set builds in
-- about 30 ms; the pull publishes only a list that changed).
local banned, banned_version = spoa.netset{}, 0

local function list_bans(ip)
  local version = state:get("version") or 0
  if version ~= banned_version then
    local cidrs = {}
    for cidr in (state:get("list") or ""):gmatch("[^\n]+") do cidrs[#cidrs + 1] = cidr end
    banned, banned_version = spoa.netset(cidrs), version
  end
  return banned:contains(ip)
end

-- The live check: the first decision's type, "allow" when there is none.
local function ask(ip)
  local list, err = decisions(hc:get{ url = CHECK_URL .. "?ip=" .. tostring(ip), headers = HEADERS,
                                      timeout = CHECK_TIMEOUT_MS })
  if not list then return nil, err end
  local d = list[1]
  if type(d) == "table" and type(d.type) == "string" then return d.type end
  return "allow"
end

local function answer(txn, decision, source, err)
  txn:set_var("txn.decision", decision)
  txn:set_var("txn.decision_source", source)
  if err then txn:set_var("txn.decision_error", err) end
end

spoa.register_message("decision-check", function(txn, msg)
  local ip = msg.args.src
  if not spoa.is_addr(ip) then
    return answer(txn, FAIL_OPEN and "allow" or "ban", "error", "no client address")
  end
  ip = ip:unmap()
  if list_bans(ip) then return answer(txn, "ban", "list") end
  local key = "a:" .. ip:key()
  local cached = state:get(key)
  if cached then return answer(txn, cached, "cache") end
  local down = state:get("api_down")
  if down then return answer(txn, FAIL_OPEN and "allow" or "ban", "error", down) end
  local decision, err = ask(ip)
  if not decision then
    state:set("api_down", err, API_RETRY_S)
    return answer(txn, FAIL_OPEN and "allow" or "ban", "error", err)
  end
  state:set(key, decision, decision == "allow" and ALLOW_TTL or BAN_TTL)
  answer(txn, decision, "api")
end, { deadline_ms = 300, on_error = { ["txn.decision_source"] = "error" } })
