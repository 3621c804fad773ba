-- verified_crawler.lua -- tells real search engine crawlers from clients that
-- only borrow their User-Agent, the way the search engines document it:
--
--   1. the User-Agent names a crawler of CRAWLERS (Googlebot, Bingbot, ...);
--   2. the reverse lookup (PTR) of the client address gives a name under one
--      of that crawler's domains (crawl-66-249-66-1.googlebot.com);
--   3. the forward lookup (A or AAAA) of that name gives back the client address.
--
-- HAProxy side (haproxy/haproxy-verified-crawler.cfg, haproxy/spoe-verified-crawler.conf):
--
--     spoe-message crawler-check
--         args src=src ua=req.fhdr(user-agent)
--         event on-frontend-http-request
--
-- For every message it sets
--
--   txn.crawler        (STRING)  "none"         the User-Agent claims no crawler
--                                "verified"     all three steps passed
--                                "fake"         no PTR, a PTR outside the crawler's
--                                               domains, or a name that does not
--                                               resolve back to the address
--                                "unverifiable" DNS failed (timeout, refused, ...)
--   txn.crawler_name   (STRING)  the crawler the User-Agent claims ("googlebot")
--   txn.crawler_host   (STRING)  the verified PTR name
--   txn.crawler_error  (STRING)  why DNS could not answer ("unverifiable")
--
-- The example configuration refuses "fake" (403) and lets "unverifiable"
-- through (fail open, logged): a DNS outage must not hide a site from search
-- engines. Verdicts are cached in a shared dict per address and crawler
-- (VERIFIED_TTL, FAKE_TTL seconds); "unverifiable" is not cached.

-- Lowercase User-Agent substring -> the PTR domains its crawler uses.
local CRAWLERS = {
  { name = "googlebot", ua = "googlebot", domains = { "googlebot.com", "google.com", "googleusercontent.com" } },
  { name = "bingbot", ua = "bingbot", domains = { "search.msn.com" } },
  { name = "applebot", ua = "applebot", domains = { "applebot.apple.com" } },
  { name = "duckduckbot", ua = "duckduckbot", domains = { "duckduckgo.com" } },
  { name = "yandexbot", ua = "yandexbot", domains = { "yandex.ru", "yandex.net", "yandex.com" } },
}
-- nil: the servers of /etc/resolv.conf; or { "127.0.0.1:53", ... }.
local DNS_SERVERS     = nil
local DNS_TIMEOUT_MS  = 300
local VERIFIED_TTL    = 3600
local FAKE_TTL        = 3600

if DNS_SERVERS then spoa.dns.configure{ servers = DNS_SERVERS } end

local verdicts = spoa.shared.declare("verified_crawler", { max_items = 50000 })

local function claimed(ua)
  if type(ua) ~= "string" then return nil end
  ua = ua:lower()
  for _, c in ipairs(CRAWLERS) do
    if ua:find(c.ua, 1, true) then return c end
  end
end

local function under(name, domains)
  for _, d in ipairs(domains) do
    if name == d or name:sub(-#d - 1) == "." .. d then return true end
  end
  return false
end

-- "verified", host | "fake" | "unverifiable", err
local function verify(ip, crawler)
  local names, err = spoa.dns.reverse(ip, { timeout = DNS_TIMEOUT_MS })
  if not names then
    if err == "not found" then return "fake" end
    return "unverifiable", "PTR: " .. err
  end
  local failure
  for _, name in ipairs(names) do
    name = name:lower():gsub("%.$", "")
    if under(name, crawler.domains) then
      local addrs, ferr = spoa.dns.resolve(name, { type = ip:is_v6() and "AAAA" or "A", timeout = DNS_TIMEOUT_MS })
      if addrs then
        for _, a in ipairs(addrs) do
          if a == ip then return "verified", name end
        end
      elseif ferr ~= "not found" then
        failure = name .. ": " .. ferr
      end
    end
  end
  if failure then return "unverifiable", failure end
  return "fake"
end

spoa.register_message("crawler-check", function(txn, msg)
  local crawler = claimed(msg.args.ua)
  if not crawler then
    txn:set_var("txn.crawler", "none")
    return
  end
  txn:set_var("txn.crawler_name", crawler.name)
  local ip = msg.args.src
  if not spoa.is_addr(ip) then
    txn:set_var("txn.crawler", "unverifiable")
    txn:set_var("txn.crawler_error", "no client address")
    return
  end
  ip = ip:unmap()
  local key = crawler.name .. ":" .. ip:key()
  local cached = verdicts:get(key)
  local verdict, detail
  if cached then
    verdict, detail = cached:match("^(%a+) ?(.*)$")
  else
    verdict, detail = verify(ip, crawler)
    if verdict == "verified" then
      verdicts:set(key, "verified " .. detail, VERIFIED_TTL)
    elseif verdict == "fake" then
      verdicts:set(key, "fake", FAKE_TTL)
    end
  end
  txn:set_var("txn.crawler", verdict)
  if verdict == "verified" then txn:set_var("txn.crawler_host", detail) end
  if verdict == "unverifiable" then txn:set_var("txn.crawler_error", detail) end
end, { deadline_ms = 800, on_error = { ["txn.crawler"] = "unverifiable" } })
