-- Spec for bot_detector.lua:
--     luaspoa test scripts/bot_detector.lua scripts/bot_detector_spec.lua
local T = spoa.test

-- HAProxy's req.hdrs_bin: varint length + name, varint length + value, ..., then two
-- empty strings. The varint is SPOP's (spop-protocol.md §1.4).
local function varint(n)
  if n < 240 then return string.char(n) end
  local out = { string.char((n & 0xff) | 0xf0) }
  n = (n - 240) >> 4
  while n >= 128 do
    out[#out + 1] = string.char((n & 0xff) | 0x80)
    n = (n - 128) >> 7
  end
  out[#out + 1] = string.char(n)
  return table.concat(out)
end

local function hdrs_bin(headers)
  local out = {}
  for _, h in ipairs(headers) do
    out[#out + 1] = varint(#h[1]) .. h[1] .. varint(#h[2]) .. h[2]
  end
  return table.concat(out) .. "\0\0"
end

local function check(headers, opts)
  opts = opts or {}
  local ua
  for _, h in ipairs(headers) do
    if h[1]:lower() == "user-agent" then ua = h[2] end
  end
  return T.notify("check-bot", {
    src = spoa.addr(opts.src or "198.51.100.1"),
    ua = ua or "",
    ver = opts.ver or "1.1",
    hdrs = opts.raw and spoa.binary(opts.raw) or spoa.binary(hdrs_bin(headers)),
  })
end

local CURL = { { "Host", "example.com" }, { "User-Agent", "curl/8.5.0" }, { "Accept", "*/*" } }
local BROWSER = {
  { "Host", "example.com" },
  { "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" },
  { "Accept", "text/html" }, { "Accept-Language", "en" }, { "Accept-Encoding", "gzip" },
  { "Sec-Fetch-Mode", "navigate" },
}

T.case("curl is a bot", function()
  local ack = check(CURL)
  local score, type = ack:get("txn.bot_score")
  T.eq(score, 80)
  T.eq(type, "int32")
  T.eq(ack:get("txn.is_bot"), true)
  T.eq(ack:get("txn.bot_reason"), "ua:curl/,no-accept-encoding,few-headers")
end)

T.case("a complete browser request is not", function()
  local ack = check(BROWSER)
  T.eq(ack:get("txn.bot_score"), 0)
  T.eq(ack:get("txn.is_bot"), false)
  T.eq(ack:get("txn.bot_reason"), nil)
end)

T.case("a browser User-Agent without browser headers is", function()
  local ack = check({ BROWSER[1], BROWSER[2], { "Accept", "*/*" } })
  T.eq(ack:get("txn.bot_score"), 60)
  T.eq(ack:get("txn.is_bot"), true)
end)

T.case("no User-Agent and HTTP/1.0 add up", function()
  local ack = check({ { "Host", "x" } }, { ver = "1.0" })
  T.eq(ack:get("txn.bot_score"), 40 + 15 + 10 + 10 + 10)
  T.eq(ack:get("txn.bot_reason"), "no-ua,no-accept,no-accept-encoding,few-headers,http/1.0")
end)

T.case("malformed req.hdrs_bin is scored, not an error", function()
  local ack = check(BROWSER, { raw = "\5Host" })
  T.ok(ack.error == nil, "the handler must not fail")
  T.ok(ack:get("txn.bot_reason"):find("bad-headers", 1, true), "bad-headers is a reason")
end)

T.case("verified crawlers score 0", function()
  local ack = check(CURL, { src = "192.0.2.200" })
  T.eq(ack:get("txn.bot_score"), 0)
  T.eq(ack:get("txn.bot_reason"), "verified-crawler")
end)
