// Handlers that talk to the outside world, end to end behind a real HAProxy 2.6:
// an HTTP API (Fixtures/upstreams/http_server.py), and the global rate limiter
// (scripts/global_rate_limiter.lua) with two agent instances in one backend
// sharing their counters in a real redis-server (also behind a 3.x chroot).

import Foundation
import XCTest

final class OutsideWorldTests: E2ETestCase {
    private func startRedis() throws -> (ManagedProcess, UInt16) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            throw XCTSkip("redis-server is not installed (tools/ensure-deps.sh installs it)")
        }
        return try startServer("redis", "/usr/bin/redis-server") {
            ["--port", "\($0)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        }
    }

    func testHandlerCallsAnHTTPAPI() throws {
        _ = try requireHAProxy()
        let fixture = E2EPaths.repoFile("Tests/Fixtures/upstreams/http_server.py").path
        let (_, apiPort) = try startServer("api", "/usr/bin/python3") { [fixture, "\($0)"] }
        let metricsPort = try freePort()
        let (agent, agentPort) = try startAgent(script: """
            local hc = spoa.httpclient()
            spoa.register_message("ask-api", function(txn, msg)
              local res, err = hc:get{ url = "http://127.0.0.1:\(apiPort)" .. msg.args.path, timeout = 2000 }
              if not res then txn:set_var("txn.api_error", err) return end
              txn:set_var("txn.api_status", res.status)
              txn:set_var("txn.api_body", res.body)
            end, { deadline_ms = 3000 })
            """, extraArgs: ["--workers", "2", "--metrics", "127.0.0.1:\(metricsPort)"])
        let p = try ProxySetup(agent: agentPort)
        let headers = ProxySetup.varHeaders(["api_status", "api_body", "api_error"])
        let spoe = ProxySetup.spoeConfig(messages: [("ask-api", "path=path")], processing: "5s")
        let haproxy = try startHAProxy(config: p.haproxyConfig(headers: headers), files: ["e2e-spoe.conf": spoe],
                                       waitPort: p.web)
        let total = 200
        let (results, _) = httpLoad(port: p.web, total: total, connections: 16, timeout: 30,
                                    request: { _ in ("/hello", []) },
                                    accept: { _, r in
                                        r.status == 200 && r.header("X-V-api_status") == "200"
                                            && r.header("X-V-api_body") == "hello"
                                    })
        let (ok, _, samples) = results.snapshot()
        XCTAssertEqual(ok, total, "first failures: \(samples)\n\(haproxy.logTail(10))\nagent:\n\(agent.problems())")
        let missing = try httpGet(port: p.web, "/missing")
        XCTAssertEqual(missing.header("X-V-api_status"), "404")
        XCTAssertEqual(missing.header("X-V-api_body"), "not found")
        // Each request is counted before its handler goes on, so before its ACK.
        let series = try prometheusSeries(port: metricsPort)
        let requests = series.filter {
            $0.key.hasPrefix("luaspoa_upstream_requests_total{") && $0.key.contains("client=\"http\"")
                && $0.key.contains("result=\"ok\"") && $0.key.contains("target=\"http://127.0.0.1:\(apiPort)\"")
        }
        XCTAssertEqual(requests.values.reduce(0, +), Double(total + 1), "\(series.filter { $0.key.contains("upstream") })")
        // Requests in flight hold the busy connections: none now, and the series is there.
        let busy = series.filter {
            $0.key.hasPrefix("luaspoa_upstream_connections{") && $0.key.contains("client=\"http\"")
                && $0.key.contains("state=\"busy\"") && $0.key.contains("target=\"http://127.0.0.1:\(apiPort)\"")
        }
        XCTAssertEqual(Array(busy.values), [0], "\(series.filter { $0.key.contains("upstream") })")
        // The HTTP client's connections live on the worker loops: they close before
        // the loops end, so the stop ends by itself (not at --drain-timeout + 2 s).
        XCTAssertEqual(agent.stop(timeout: 5), 0, agent.logTail())
        XCTAssertFalse(agent.log.contains("shutdown did not finish"), agent.logTail())
        XCTAssertFalse(agent.log.contains("EventLoop that has already shut down"), agent.logTail())
    }

    func testGlobalRateLimiterTwoAgentsOneRedis() throws {
        _ = try requireHAProxy()
        try globalRateLimiter(haproxy: nil)
    }

    /// The same through the first HAProxy 3.x chroot (3.2 when present).
    func testGlobalRateLimiterWithHAProxy3() throws {
        guard let target = try HAProxy3Target.available().first else { return }
        print("E2E HAProxy3: running against \(target) (\(target.command))")
        try globalRateLimiter(haproxy: target.command)
    }

    func globalRateLimiter(haproxy binary: String?) throws {
        let (redis, redisPort) = try startRedis()
        var script = try String(contentsOf: E2EPaths.repoFile("scripts/global_rate_limiter.lua"), encoding: .utf8)
        let needle = "local REDIS = { host = \"127.0.0.1\", port = 6379"
        XCTAssertTrue(script.contains(needle), "global_rate_limiter.lua no longer contains \(needle)")
        script = script.replacingOccurrences(of: needle, with: "local REDIS = { host = \"127.0.0.1\", port = \(redisPort)")
        let metricsPort = try freePort()
        let (agent1, port1) = try startAgent(script: script, name: "grl1",
                                             extraArgs: ["--workers", "2", "--metrics", "127.0.0.1:\(metricsPort)"])
        let (agent2, port2) = try startAgent(script: script, name: "grl2", extraArgs: ["--workers", "2"])
        let setup = try ProxySetup(agent: port1)
        var cfg = try setup.shipped("haproxy/haproxy-global-rate-limiter.cfg", threads: 4)
        XCTAssertTrue(cfg.contains("127.0.0.1:12346"))
        cfg = cfg.replacingOccurrences(of: "127.0.0.1:12346", with: "127.0.0.1:\(port2)")
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-global-rate-limiter.conf"), encoding: .utf8)
        XCTAssertTrue(spoe.contains("limit=int(100) window_ms=int(60000)"))
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-global-rate-limiter.conf": spoe], waitPort: setup.web,
                                       binary: binary)

        // 150 requests of one key, one connection each (HAProxy spreads them over its
        // threads, whose SPOE connections go to both agents in turn).
        let key = [("X-API-Key", "e2e-\(UUID().uuidString)")]
        var passed = 0, limited = 0
        var agents = Set<String>()
        for i in 1...150 {
            let r = try httpGet(port: setup.web, headers: key)
            switch r.status {
            case 200:
                passed += 1
                XCTAssertEqual(r.header("X-RateLimit-Count"), "\(passed)", "request \(i)")
            case 429: limited += 1
            default: XCTFail("request \(i): \(r.status) \(r.headers)\n\(haproxy.logTail())")
            }
            if let a = r.header("X-RateLimit-Agent") { agents.insert(a) }
        }
        print("E2E global rate limiter: \(passed) passed, \(limited) limited, agents \(agents.sorted())")
        XCTAssertEqual(passed, 100, "\(haproxy.logTail())\n\(agent1.problems())\n\(agent2.problems())")
        XCTAssertEqual(limited, 50)
        XCTAssertEqual(agents.count, 2, "both agent instances answered")

        // Each worker that served a request holds its one connection (pool = 1), idle now.
        let connections = try prometheusSeries(port: metricsPort).filter {
            $0.key.hasPrefix("luaspoa_upstream_connections{") && $0.key.contains("client=\"redis\"")
                && $0.key.contains("target=\"127.0.0.1:\(redisPort)\"")
        }
        let idle = connections.first { $0.key.contains("state=\"idle\"") }?.value ?? -1
        XCTAssertTrue((1...2).contains(idle), "\(connections)")
        XCTAssertEqual(connections.first { $0.key.contains("state=\"busy\"") }?.value, 0, "\(connections)")

        // Redis down: fail open, and HAProxy sees why.
        redis.stop()
        var errors = Set<String>()
        for _ in 0..<6 {
            let r = try httpGet(port: setup.web, headers: key)
            XCTAssertEqual(r.status, 200, "fail open: \(r.headers)")
            if let e = r.header("X-RateLimit-Error") { errors.insert(e) }
        }
        // After a failed connect, calls fail fast: "connection refused (backing off N ms)".
        let reasons = Set(errors.map { $0.replacingOccurrences(of: #" \(backing off \d+ ms\)$"#, with: "", options: .regularExpression) })
        XCTAssertTrue(reasons.isSubset(of: ["connection refused", "connection closed"]) && !reasons.isEmpty, "\(errors)")
        XCTAssertTrue(haproxy.log.contains("\"connection refused\"") || haproxy.log.contains("\"connection closed\""),
                      "the error is in HAProxy's log\n\(haproxy.logTail())")
        XCTAssertTrue(agent1.isRunning && agent2.isRunning)
    }
}
