-- bot_detector.lua -- scores each HTTP request from its headers.
--
-- HAProxy side (see haproxy/spoe-bot-detector.conf and haproxy/haproxy-bot-detector.cfg):
--
--     spoe-message check-bot
--         args src=src ua=req.fhdr(user-agent) ver=req.ver hdrs=req.hdrs_bin
--         event on-frontend-http-request
--
-- For every "check-bot" message this script sets:
--
--   txn.bot_score   (INT32, 0..100; 60 and more = bot)   -> txn.<var-prefix>.bot_score
--   txn.is_bot      (BOOL)                               -> txn.<var-prefix>.is_bot
--   txn.bot_reason  (STRING, comma-separated rules; only when the score is not 0)
--
-- Rules (points add up, capped at 100):
--
--   no User-Agent                                            40  no-ua
--   User-Agent of a known HTTP library or scanner            60  ua:<pattern>
--   claims to be a browser (Mozilla/) without Accept-Language 20 browser-no-accept-language
--   claims Chrome without Sec-Fetch-Mode nor Sec-CH-UA        20  chrome-no-client-hints
--   no Accept                                                15  no-accept
--   no Accept-Encoding                                       10  no-accept-encoding
--   fewer than 4 headers                                     10  few-headers
--   HTTP/1.0                                                 10  http/1.0
--   req.hdrs_bin missing or malformed                        20  bad-headers
--
-- Clients in VERIFIED_CRAWLERS score 0 with reason "verified-crawler".

-- Lowercase substrings, found in any case by one regex compiled at load time
-- (Lua patterns cannot alternate: this was a loop of 14 string.find calls).
local BAD_UA = {
  "curl/", "wget/", "python-requests", "python-urllib", "go-http-client", "libwww-perl",
  "java/", "okhttp", "sqlmap", "nikto", "masscan", "zgrab", "nuclei", "httpclient",
}
local function alternation(words)
  local quoted = {}
  for i, w in ipairs(words) do quoted[i] = w:gsub("%W", "\\%0") end
  return "(" .. table.concat(quoted, "|") .. ")"
end
local BAD_UA_RE = spoa.re.compile(alternation(BAD_UA), "i")
local BROWSER_RE = spoa.re.compile([[mozilla/]], "i")
local CHROME_RE = spoa.re.compile([[chrome/]], "i")

-- Example ranges only: a real deployment loads the crawlers' published ranges
-- with spoa.netset.load("verified-crawlers.lst").
local VERIFIED_CRAWLERS = spoa.netset{ "192.0.2.128/25", "2001:db8:c0de::/48" }

local function add(r, points, why)
  r.score = r.score + points
  r.why[#r.why + 1] = why
end

-- Header map ({ [lowercase name] = value }) and order, or empty ones plus an error.
local function headers_of(msg)
  if msg:type("hdrs") ~= "binary" then
    return {}, {}, "req.hdrs_bin not sent"
  end
  local h, order = spoa.parse_hdrs_bin(msg.args.hdrs)
  if not h then return {}, {}, order end
  return h, order
end

local function score_request(msg)
  local a = msg.args
  local r = { score = 0, why = {} }
  local h, order, err = headers_of(msg)
  if err then add(r, 20, "bad-headers") end

  local ua = a.ua or h["user-agent"]
  if ua == nil or ua == "" then
    add(r, 40, "no-ua")
  else
    -- The leftmost library name in the User-Agent (nil past the match limit too).
    local tool = BAD_UA_RE:match(ua)
    if tool then add(r, 60, "ua:" .. tool:lower()) end
    -- Claims to be a browser but lacks headers every modern browser sends.
    if BROWSER_RE:find(ua) then
      if not h["accept-language"] then add(r, 20, "browser-no-accept-language") end
      if CHROME_RE:find(ua) and not h["sec-fetch-mode"] and not h["sec-ch-ua"] then
        add(r, 20, "chrome-no-client-hints")
      end
    end
  end

  if not h["accept"]          then add(r, 15, "no-accept") end
  if not h["accept-encoding"] then add(r, 10, "no-accept-encoding") end
  if #order > 0 and #order < 4 then add(r, 10, "few-headers") end
  if a.ver == "1.0"           then add(r, 10, "http/1.0") end
  return math.min(r.score, 100), r.why
end

spoa.register_message("check-bot", function(txn, msg)
  local src = msg.args.src
  if spoa.is_addr(src) and VERIFIED_CRAWLERS:contains(src:unmap()) then
    txn:set_var_int32("txn.bot_score", 0)
    txn:set_var_boolean("txn.is_bot", false)
    txn:set_var("txn.bot_reason", "verified-crawler")
    return
  end

  local score, why = score_request(msg)
  txn:set_var_int32("txn.bot_score", score)
  txn:set_var_boolean("txn.is_bot", score >= 60)
  if #why > 0 then
    txn:set_var("txn.bot_reason", table.concat(why, ","))
  end
end)
