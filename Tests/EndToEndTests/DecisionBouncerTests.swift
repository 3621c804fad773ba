// scripts/decision_bouncer.lua as shipped, behind HAProxy 2.6 and the 3.x
// chroots, asking a decision API served by the test process over a real
// socket: the pulled list bans, other addresses are asked once per TTL, a new
// list entry is enforced after the next pull, and an API that went away fails
// open with its reason in HAProxy's log. Clients connect from several
// 127.0.0.x addresses, so HAProxy's `src` differs per client.

import Foundation
import XCTest

final class DecisionBouncerTests: E2ETestCase {
    /// The API: the list of banned CIDRs (changed by the test) and the addresses the live check bans.
    final class DecisionAPI: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String]
        let liveBans: Set<String>

        init(list: [String], liveBans: Set<String>) {
            self.list = list
            self.liveBans = liveBans
        }

        func ban(_ cidr: String) { lock.withLock { list.append(cidr) } }

        func answer(_ target: String) -> (status: Int, body: String) {
            if target == "/v1/decisions" {
                let decisions = lock.withLock { list }.map { "{\"value\": \"\($0)\", \"type\": \"ban\", \"scope\": \"Range\"}" }
                return (200, "[" + decisions.joined(separator: ", ") + "]")
            }
            guard target.hasPrefix("/v1/decisions?ip=") else { return (404, "null") }
            let ip = String(target.dropFirst("/v1/decisions?ip=".count))
            return (200, liveBans.contains(ip) ? "[{\"value\": \"\(ip)\", \"type\": \"ban\", \"scope\": \"Ip\"}]" : "null")
        }
    }

    func get(_ web: UInt16, from source: String) throws -> (status: Int, decision: String) {
        let r = try httpGet(port: web, source: source)
        return (r.status, "\(r.header("X-Decision") ?? "-")/\(r.header("X-Decision-Source") ?? "-")"
                + (r.header("X-Decision-Error").map { "/\($0)" } ?? ""))
    }

    /// Polls until `source`'s request gets `expected`; returns the last answer.
    func waitFor(_ web: UInt16, from source: String, _ expected: (status: Int, decision: String), timeout: Double = 10)
        throws -> (status: Int, decision: String)
    {
        let deadline = nowSeconds() + timeout
        var last = try get(web, from: source)
        while last != expected, nowSeconds() < deadline {
            usleep(100_000)
            last = try get(web, from: source)
        }
        return last
    }

    func runScenario(haproxy binary: String?, label: String) throws {
        let api = DecisionAPI(list: ["127.0.0.2/32"], liveBans: ["127.0.0.3"])
        let server = try TestHTTPServer { api.answer($0) }
        defer { server.stop() }
        let script = try shippedScript("decision_bouncer", replacing: [
            ("http://127.0.0.1:8082/", "http://127.0.0.1:\(server.port)/"),
            ("local PULL_INTERVAL_MS = 10000", "local PULL_INTERVAL_MS = 500"),
        ])
        let (web, haproxy, agent) = try startShipped(script: script, config: "decision-bouncer", binary: binary)
        let logs = { "\(label)\n\(haproxy.logTail())\n\(agent.logTail())" }
        let pulls = { server.requests.filter { $0 == "/v1/decisions" }.count }
        let asked = { (ip: String) in server.requests.filter { $0 == "/v1/decisions?ip=\(ip)" }.count }

        // The first pull runs when the agent starts; a second one means the first is published.
        let started = nowSeconds() + 10
        while pulls() < 2, nowSeconds() < started { usleep(50_000) }
        var r = try waitFor(web, from: "127.0.0.2", (403, "ban/list"))
        XCTAssertEqual(r.status, 403, logs())
        XCTAssertEqual(r.decision, "ban/list", logs())
        XCTAssertEqual(asked("127.0.0.2"), 0, "the list answers alone")

        // An address the list does not know: asked once, then from the cache (ALLOW_TTL 60 s).
        for i in 1...10 {
            r = try get(web, from: "127.0.0.1")
            XCTAssertEqual(r.status, 200, "request \(i) \(logs())")
            XCTAssertEqual(r.decision, i == 1 ? "allow/api" : "allow/cache", "request \(i)")
        }
        XCTAssertEqual(asked("127.0.0.1"), 1, "10 requests, 1 API call: \(server.requests.filter { $0.contains("?") })")
        for i in 1...5 {
            r = try get(web, from: "127.0.0.3")
            XCTAssertEqual(r.status, 403, "request \(i) \(logs())")
            XCTAssertEqual(r.decision, i == 1 ? "ban/api" : "ban/cache")
        }
        XCTAssertEqual(asked("127.0.0.3"), 1)

        // A new list entry wins over the cached "allow" after the next pull.
        XCTAssertEqual(try get(web, from: "127.0.0.4").decision, "allow/api")
        let before = pulls()
        api.ban("127.0.0.4/32")
        r = try waitFor(web, from: "127.0.0.4", (403, "ban/list"))
        XCTAssertEqual(r.status, 403, logs())
        XCTAssertEqual(r.decision, "ban/list")
        XCTAssertGreaterThan(pulls(), before)
        print("E2E \(label) decision bouncer: \(pulls()) pulls, \(server.requests.count - pulls()) live checks")

        // The API goes away: fail open, with the reason; the last good list still bans.
        server.stop()
        r = try get(web, from: "127.0.0.5")
        XCTAssertEqual(r.status, 200, logs())
        XCTAssertTrue(["allow/error/connection refused", "allow/error/connection closed"].contains(r.decision), r.decision)
        XCTAssertEqual(try get(web, from: "127.0.0.2").decision, "ban/list")
        XCTAssertTrue(haproxy.log.contains("\"allow\" \"error\" \"connection"), "the reason is logged\n\(logs())")
        let deadline = nowSeconds() + 10
        while !agent.log.contains("decision list pull failed, keeping the last good list: connection refused"),
              nowSeconds() < deadline {
            usleep(100_000)
        }
        XCTAssertTrue(agent.log.contains("decision list pull failed, keeping the last good list: connection refused"),
                      logs())
        XCTAssertTrue(agent.isRunning)
    }

    func testBansFromTheListAndTheAPIWithHAProxy26() throws {
        try runScenario(haproxy: nil, label: "HAProxy 2.6")
    }

    func testBansFromTheListAndTheAPIWithHAProxy3() throws {
        try forEachHAProxy3 { t in try runScenario(haproxy: t.command, label: "\(t)") }
    }
}
