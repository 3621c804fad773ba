-- Spec for verified_crawler.lua, with DNS stubbed by a zone:
--     luaspoa test scripts/verified_crawler.lua scripts/verified_crawler_spec.lua
local T = spoa.test

local GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
local BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"

-- Names absent from the zone answer "not found", as NXDOMAIN.
local ZONE = {
  ["1.66.249.66.in-addr.arpa"] = { "crawl-66-249-66-1.googlebot.com" },
  ["crawl-66-249-66-1.googlebot.com"] = { "66.249.66.1" },
  ["2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.8.4.0.6.8.4.1.0.0.2.ip6.arpa"] = { "crawl-v6.googlebot.com" },
  ["crawl-v6.googlebot.com"] = { "66.249.66.2", "2001:4860:4801:2::2" },
  ["5.113.0.203.in-addr.arpa"] = { "crawl-66-249-66-1.googlebot.com.evil.example" },
  ["6.113.0.203.in-addr.arpa"] = { "crawl-66-249-66-1.googlebot.com" },   -- resolves to another address
  ["7.113.0.203.in-addr.arpa"] = "timeout",
  ["8.113.0.203.in-addr.arpa"] = { "msnbot-203-0-113-8.search.msn.com" },
  ["msnbot-203-0-113-8.search.msn.com"] = { "203.0.113.8" },
}

local function check(ip, ua)
  return T.notify("crawler-check", { src = spoa.addr(ip), ua = ua })
end

T.case("a crawler whose PTR and forward lookup agree is verified, then cached", function()
  local calls = T.stub_dns(ZONE)
  local ack = check("66.249.66.1", GOOGLEBOT)
  T.eq(ack:get("txn.crawler"), "verified")
  T.eq(ack:get("txn.crawler_name"), "googlebot")
  T.eq(ack:get("txn.crawler_host"), "crawl-66-249-66-1.googlebot.com")
  T.eq(calls, { { name = "1.66.249.66.in-addr.arpa", type = "PTR" },
                { name = "crawl-66-249-66-1.googlebot.com", type = "A" } })
  ack = check("66.249.66.1", GOOGLEBOT)
  T.eq(ack:get("txn.crawler"), "verified")
  T.eq(ack:get("txn.crawler_host"), "crawl-66-249-66-1.googlebot.com")
  T.eq(#calls, 2, "the second request is answered from the cache")
  T.eq(check("203.0.113.8", BINGBOT):get("txn.crawler"), "verified")
end)

T.case("IPv6 crawlers are checked with AAAA", function()
  local calls = T.stub_dns(ZONE)
  T.eq(check("2001:4860:4801:2::2", GOOGLEBOT):get("txn.crawler"), "verified")
  T.eq(calls[2], { name = "crawl-v6.googlebot.com", type = "AAAA" })
end)

T.case("fakes: no PTR, a PTR outside the domains, a name that points elsewhere, another crawler's name", function()
  T.stub_dns(ZONE)
  T.eq(check("198.51.100.7", GOOGLEBOT):get("txn.crawler"), "fake")
  T.eq(check("203.0.113.5", GOOGLEBOT):get("txn.crawler"), "fake")
  T.eq(check("203.0.113.6", GOOGLEBOT):get("txn.crawler"), "fake")
  T.eq(check("203.0.113.8", GOOGLEBOT):get("txn.crawler"), "fake")
  T.eq(check("66.249.66.1", BINGBOT):get("txn.crawler"), "fake")
  T.eq(check("66.249.66.1", BINGBOT):get("txn.crawler_host"), nil)
end)

T.case("a DNS failure is unverifiable, says why, and is not cached", function()
  local calls = T.stub_dns(ZONE)
  local ack = check("203.0.113.7", GOOGLEBOT)
  T.eq(ack:get("txn.crawler"), "unverifiable")
  T.eq(ack:get("txn.crawler_error"), "PTR: timeout")
  check("203.0.113.7", GOOGLEBOT)
  T.eq(#calls, 2)
  T.stub_dns(function(name, type)
    if type == "PTR" then return { "crawl-66-249-66-1.googlebot.com" } end
    return nil, "server failure"
  end)
  ack = check("66.249.66.1", GOOGLEBOT)
  T.eq(ack:get("txn.crawler"), "unverifiable")
  T.eq(ack:get("txn.crawler_error"), "crawl-66-249-66-1.googlebot.com: server failure")
end)

T.case("browsers are no crawlers and cost no lookup", function()
  local calls = T.stub_dns(ZONE)
  local ack = check("66.249.66.1", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
  T.eq(ack:get("txn.crawler"), "none")
  T.eq(ack:get("txn.crawler_name"), nil)
  T.eq(check("66.249.66.1", nil):get("txn.crawler"), "none")
  T.eq(#calls, 0)
end)
