// The shipped rate limiter (scripts/rate_limiter.lua with haproxy/haproxy-rate-limiter.cfg
// and haproxy/spoe-rate-limiter.conf) behind a real HAProxy, against an agent with
// two workers: the counters live in a shared dict, so the limit holds across workers.

import Foundation
import XCTest

final class RateLimiterTests: E2ETestCase {
    static let limit = 8

    /// The shipped files with test ports, a small limit and a long window (so the
    /// sliding estimate cannot drop below the request count while the test runs),
    /// and several HAProxy threads (each opens its own connection to the agent).
    private func shippedConfig(_ setup: ProxySetup) throws -> (cfg: String, spoe: String) {
        let cfg = try setup.shipped("haproxy/haproxy-rate-limiter.cfg", threads: 4)
        var spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-rate-limiter.conf"), encoding: .utf8)
        for needle in ["limit=int(100)", "window_ms=int(10000)"] {
            XCTAssertTrue(spoe.contains(needle), "spoe-rate-limiter.conf no longer contains \(needle)")
        }
        spoe = spoe.replacingOccurrences(of: "limit=int(100)", with: "limit=int(\(Self.limit))")
            .replacingOccurrences(of: "window_ms=int(10000)", with: "window_ms=int(120000)")
        return (cfg, spoe)
    }

    func testTheRequestOverTheLimitGets429AcrossTwoWorkers() throws {
        try checkLimit(haproxy: requireHAProxy(), bothWorkers: true)
    }

    /// The same configuration through HAProxy 3.x (its "mode tcp" agents backend is converted on 3.1+).
    /// 3.1+ multiplexes the requests over fewer SPOP connections, which may all land on one worker.
    func testTheRequestOverTheLimitGets429ThroughHAProxy3() throws {
        try forEachHAProxy3 { t in try checkLimit(haproxy: t.command, bothWorkers: !t.hasSpopMux) }
    }

    /// `bothWorkers`: the requests must have reached both agent workers (one connection per HAProxy thread).
    func checkLimit(haproxy binary: String, bothWorkers: Bool) throws {
        let (agent, agentPort) = try startAgent(
            scriptPath: E2EPaths.repoFile("scripts/rate_limiter.lua").path, extraArgs: ["--workers", "2"])
        let setup = try ProxySetup(agent: agentPort), web = setup.web
        let (cfg, spoe) = try shippedConfig(setup)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-rate-limiter.conf": spoe], waitPort: web, binary: binary)
        let key = [("X-API-Key", "e2e-\(UUID().uuidString)")]

        // One connection per request: HAProxy spreads them over its threads, each
        // thread talks to the agent over its own connection, and the agent pins
        // connections to its workers in turn.
        var workers = Set<String>()
        for i in 1...Self.limit {
            let r = try httpGet(port: web, headers: key)
            XCTAssertEqual(r.status, 200, "request \(i): \(r.headers)\n\(haproxy.logTail())\n\(agent.logTail())")
            XCTAssertEqual(r.header("X-RateLimit-Estimate"), "\(i)", "request \(i)")
            if let w = r.header("X-RateLimit-Worker") { workers.insert(w) }
        }
        if bothWorkers {
            XCTAssertEqual(workers, ["1", "2"], "both agent workers counted requests\n\(haproxy.logTail())")
        }

        let over = try httpGet(port: web, headers: key)
        XCTAssertEqual(over.status, 429, "request \(Self.limit + 1): \(over.headers)")
        XCTAssertEqual(over.header("Retry-After"), "30")
        XCTAssertEqual(String(decoding: over.body, as: UTF8.self), "rate limited\n")

        // The penalty box holds the key on every worker; another key is unaffected.
        for _ in 0..<4 { XCTAssertEqual(try httpGet(port: web, headers: key).status, 429) }
        let other = try httpGet(port: web, headers: [("X-API-Key", "someone-else")])
        XCTAssertEqual(other.status, 200)
        XCTAssertEqual(other.header("X-RateLimit-Estimate"), "1")
        XCTAssertTrue(agent.isRunning)
    }
}
