// HAProxy 2.6 with `option async` in the SPOE file against an agent started with
// --async: the capability is negotiated and every request is still answered.

import Foundation
import XCTest

extension HAProxyTests {
    func testOptionAsyncUnderLoadWithAsyncAgent() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent",
                                                extraArgs: ["--async", "--workers", "2"])
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        var (cfg, spoe) = try shippedConfig(p, processingTimeout: "5s")
        cfg = cfg.replacingOccurrences(of: "\nglobal\n", with: "\nglobal\n    nbthread 2\n")
        XCTAssertTrue(cfg.contains("nbthread 2"), cfg)
        spoe = spoe.replacingOccurrences(of: "    messages check-client-ip\n", with: "    messages check-client-ip\n    option async\n")
        XCTAssertTrue(spoe.contains("option async"), spoe)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-ip-reputation.conf": spoe], waitPort: p.web)

        let total = 2000, clients = 16
        let webPort = p.web
        let results = LoadResults()
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            var conn = try? HTTPConn(port: webPort)
            for n in stride(from: client, to: total, by: clients) {
                let outcome: String?
                if let response = try? conn?.get("/async/\(n)", timeout: 15) {
                    outcome = response.header("X-IP-Score") == "100" ? nil : "request \(n): \(response.status) \(response.headers)"
                } else {
                    outcome = "request \(n): no response"
                    conn = try? HTTPConn(port: webPort)
                }
                if let outcome { results.fail(outcome) } else { results.ok() }
            }
        }
        let (ok, failed, samples) = results.snapshot()
        XCTAssertEqual(ok, total)
        XCTAssertEqual(failed, 0, "first: \(samples.prefix(3))\n\(haproxy.logTail(10))\n\(agent.problems())")
        XCTAssertGreaterThanOrEqual(tap.snapshot().acks, total)
        // HAProxy offered async and the agent accepted it on every connection.
        let hello = try TCPConn(port: agentPort).handshake()
        XCTAssertEqual(try hello.kv()["capabilities"]?.stringValue, "pipelining,fragmentation,async")
        XCTAssertTrue(agent.isRunning)
    }
}
