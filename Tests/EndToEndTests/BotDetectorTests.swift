// scripts/bot_detector.lua behind a real HAProxy with the shipped
// haproxy/haproxy-bot-detector.cfg: req.hdrs_bin reaches the agent, and curl-like
// requests are scored as bots while browser-like ones pass.

import Foundation
import XCTest

final class BotDetectorTests: E2ETestCase {
    static let curl = [("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]
    static let browser = [
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
        ("Accept", "text/html,application/xhtml+xml"), ("Accept-Language", "en-GB,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate, br"), ("Sec-Fetch-Mode", "navigate"), ("Sec-CH-UA", "\"Chromium\";v=\"120\""),
    ]

    /// The shipped script and configuration, behind `binary` (nil: the system's HAProxy 2.6).
    func startShipped(binary: String? = nil) throws -> (web: UInt16, haproxy: ManagedProcess, agent: ManagedProcess) {
        _ = try binary ?? requireHAProxy()
        let (agent, agentPort) = try startAgent(
            scriptPath: E2EPaths.repoFile("scripts/bot_detector.lua").path, name: "bot", extraArgs: ["--var-prefix", "bot"])
        let setup = try ProxySetup(agent: agentPort), web = setup.web
        let cfg = try setup.shipped("haproxy/haproxy-bot-detector.cfg")
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-bot-detector.conf"), encoding: .utf8)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-bot-detector.conf": spoe], waitPort: web, binary: binary)
        return (web, haproxy, agent)
    }

    func testCurlIsABotAndABrowserIsNot() throws {
        try checkVerdicts(startShipped())
    }

    /// The same configuration through HAProxy 3.x (its "mode tcp" agents backend is converted on 3.1+).
    func testCurlIsABotAndABrowserIsNotThroughHAProxy3() throws {
        try forEachHAProxy3 { t in try checkVerdicts(startShipped(binary: t.command)) }
    }

    func checkVerdicts(_ started: (web: UInt16, haproxy: ManagedProcess, agent: ManagedProcess)) throws {
        let (web, haproxy, agent) = started
        let logs = { "\n\(haproxy.logTail())\n\(agent.logTail())" }

        let bot = try httpGet(port: web, headers: Self.curl)
        XCTAssertEqual(bot.status, 403, "\(bot.headers)\(logs())")
        XCTAssertEqual(bot.header("X-Bot-Score"), "80", "\(bot.headers)\(logs())")
        XCTAssertEqual(bot.header("X-Bot-Reason"), "ua:curl/,no-accept-encoding,few-headers")
        XCTAssertNil(bot.header("X-SPOE-Error"))

        let person = try httpGet(port: web, headers: Self.browser)
        XCTAssertEqual(person.status, 200, "\(person.headers)\(logs())")
        XCTAssertEqual(person.header("X-Bot-Score"), "0")
        XCTAssertNil(person.header("X-Bot-Reason"))
        XCTAssertEqual(String(decoding: person.body, as: UTF8.self), "hello from the app\n")

        // The library list is one case-insensitive regex; the reason names the match in lower case.
        let python = try httpGet(port: web, headers: [("User-Agent", "Python-Requests/2.31"), ("Accept", "*/*")])
        XCTAssertEqual(python.status, 403, "\(python.headers)\(logs())")
        XCTAssertEqual(python.header("X-Bot-Reason"), "ua:python-requests,no-accept-encoding,few-headers")

        // A browser User-Agent alone is not enough: the missing headers give it away.
        let pretender = try httpGet(port: web, headers: [Self.browser[0], ("Accept", "*/*")])
        XCTAssertEqual(pretender.status, 403, "\(pretender.headers)")
        XCTAssertEqual(pretender.header("X-Bot-Score"), "60")
        XCTAssertEqual(pretender.header("X-Bot-Reason"),
                       "browser-no-accept-language,chrome-no-client-hints,no-accept-encoding,few-headers")
    }

    func testRepeatedAndManyHeadersStillParse() throws {
        let (web, _, agent) = try startShipped()
        // Repeated headers and a header block of about 6 kB (multi-byte varint lengths).
        var headers = Self.browser
        headers += (0..<40).map { ("X-Filler-\($0)", String(repeating: "f", count: 150)) }
        headers += [("Accept", "text/plain"), ("X-Empty", "")]
        let r = try httpGet(port: web, headers: headers)
        XCTAssertEqual(r.status, 200, "\(r.headers)\n\(agent.logTail())")
        XCTAssertEqual(r.header("X-Bot-Score"), "0")
        XCTAssertFalse(agent.logTail().contains("error"), agent.logTail())
    }
}
