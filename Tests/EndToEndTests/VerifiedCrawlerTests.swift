// scripts/verified_crawler.lua as shipped, behind HAProxy 2.6 and the 3.x
// chroots, with a real dnsmasq (on a free port) as the DNS server. Clients
// connect from several 127.0.0.x addresses, which HAProxy sends as `src`, as
// the shipped configuration does for real clients; dnsmasq holds their PTR and
// A records.

import Foundation
import XCTest

final class VerifiedCrawlerTests: E2ETestCase {
    static let googlebot = [("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")]
    static let bingbot = [("User-Agent", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")]
    static let browser = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")]

    func startDNS() throws -> (ManagedProcess, UInt16) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") else {
            throw XCTSkip("dnsmasq is not installed (tools/ensure-deps.sh installs it)")
        }
        return try startServer("dnsmasq", "/usr/sbin/dnsmasq") { port in [
            "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--port=\(port)",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--local-ttl=60",
            "--local=/googlebot.com/", "--local=/search.msn.com/", "--local=/example/", "--local=/127.in-addr.arpa/",
            // 127.0.0.2: a real crawler (PTR and A agree)
            "--host-record=crawl-127-0-0-2.googlebot.com,127.0.0.2",
            // 127.0.0.3: a PTR outside Google's domains
            "--ptr-record=3.0.0.127.in-addr.arpa,crawl-127-0-0-3.googlebot.com.evil.example",
            // 127.0.0.4: a PTR under googlebot.com whose name resolves elsewhere
            "--ptr-record=4.0.0.127.in-addr.arpa,crawl-127-0-0-4.googlebot.com",
            "--address=/crawl-127-0-0-4.googlebot.com/192.0.2.4",
        ] }
    }

    func runScenario(haproxy binary: String?, label: String) throws {
        let (dns, dnsPort) = try startDNS()
        let script = try shippedScript("verified_crawler", replacing: [
            ("local DNS_SERVERS     = nil", "local DNS_SERVERS     = { \"127.0.0.1:\(dnsPort)\" }"),
        ])
        let (web, haproxy, agent) = try startShipped(script: script, config: "verified-crawler", binary: binary)
        let logs = { "\(label)\n\(haproxy.logTail())\n\(agent.logTail())\n\(dns.logTail())" }
        func check(_ source: String, _ ua: [(String, String)], _ status: Int, _ crawler: String,
                   line: UInt = #line) throws -> HTTPResponse {
            let r = try httpGet(port: web, headers: ua, source: source)
            XCTAssertEqual(r.status, status, "\(source): \(r.headers)\(logs())", line: line)
            XCTAssertEqual(r.header("X-Crawler"), crawler, "\(source): \(r.headers)", line: line)
            XCTAssertNil(r.header("X-SPOE-Error"), line: line)
            return r
        }

        for _ in 0..<3 {  // the first is checked by DNS, the next come from the cache
            let r = try check("127.0.0.2", Self.googlebot, 200, "verified")
            XCTAssertEqual(r.header("X-Crawler-Host"), "crawl-127-0-0-2.googlebot.com")
            XCTAssertEqual(r.header("X-Crawler-Name"), "googlebot")
        }
        _ = try check("127.0.0.3", Self.googlebot, 403, "fake")
        _ = try check("127.0.0.4", Self.googlebot, 403, "fake")
        _ = try check("127.0.0.1", Self.googlebot, 403, "fake")     // no PTR at all
        _ = try check("127.0.0.2", Self.bingbot, 403, "fake")       // Google's address, Bing's name
        _ = try check("127.0.0.1", Self.browser, 200, "none")
        _ = try check("127.0.0.1", [], 200, "none")

        // DNS down: unverifiable, let through, with the reason; cached verdicts still hold.
        dns.stop()
        let r = try check("127.0.0.5", Self.googlebot, 200, "unverifiable")
        XCTAssertTrue(r.header("X-Crawler-Error")?.hasPrefix("PTR: ") == true, "\(r.headers)")
        _ = try check("127.0.0.2", Self.googlebot, 200, "verified")
        _ = try check("127.0.0.3", Self.googlebot, 403, "fake")
        XCTAssertTrue(haproxy.log.contains("\"unverifiable\" \"googlebot\" \"PTR: "), logs())
        XCTAssertTrue(agent.isRunning)
    }

    func testCrawlersAreVerifiedByDNSWithHAProxy26() throws {
        try runScenario(haproxy: nil, label: "HAProxy 2.6")
    }

    func testCrawlersAreVerifiedByDNSWithHAProxy3() throws {
        try forEachHAProxy3 { t in try runScenario(haproxy: t.command, label: "\(t)") }
    }
}
