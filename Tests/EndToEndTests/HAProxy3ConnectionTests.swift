// A real HAProxy 3.x and the agent's connections: the shipped configs as an
// operator runs them, spop-check health checks, idle SPOP connections closed
// by HAProxy. Once per available 3.x; skipped, with the reason, without one.

import Foundation
import XCTest

final class HAProxy3ConnectionTests: E2ETestCase {

    /// haproxy/haproxy-3.1.cfg (`mode spop`, 3.1+ only) and haproxy/haproxy.cfg
    /// (`mode tcp`, which 3.1+ converts) with spoe-ip-reputation.conf and
    /// scripts/ip_reputation.lua, as the README tells an operator to start them.
    func testShippedConfigsServeTheIPScore() throws {
        try forEachHAProxy3 { t in
            let configs = t.hasSpopMux ? ["haproxy/haproxy-3.1.cfg", "haproxy/haproxy.cfg"] : ["haproxy/haproxy.cfg"]
            let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-ip-reputation.conf"), encoding: .utf8)
            for path in configs {
                let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath)
                let s = try ProxySetup(agent: agentPort, backendMode: t.agentBackendMode)
                let haproxy = try startHAProxy(config: try s.shipped(path), files: ["spoe-ip-reputation.conf": spoe],
                                               waitPort: s.web, binary: t.command)
                for _ in 0..<3 {
                    let r = try httpGet(port: s.web)
                    XCTAssertEqual(r.status, 200, "\(t) \(path)\n\(haproxy.logTail())\n\(agent.logTail())")
                    XCTAssertEqual(r.header("X-IP-Score"), "100", "\(t) \(path): \(r.headers)\n\(haproxy.logTail())")
                    XCTAssertEqual(r.header("X-IP-Family"), "ipv4", "\(t) \(path)")
                    XCTAssertNil(r.header("X-SPOE-Error"), "\(t) \(path)")
                    XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "hello from the app\n", "\(t) \(path)")
                }
                stopChildren()
            }
        }
    }

    /// `option spop-check` probes (3.1+ sends a fixed HELLO) mark the agent UP (L7OK).
    func testSpopHealthCheckMarksAgentUp() throws {
        try forEachHAProxy3 { t in
            let (agent, agentPort) = try startAgent(script: try TestScripts.combined())
            let tap = try startTap(agentPort: agentPort)
            let s = try ProxySetup(agent: tap.port, backendMode: t.agentBackendMode)
            let statsPort = try freePort()
            let haproxy = try startHAProxy(
                config: s.haproxyConfig(headers: ProxySetup.varHeaders(["ok"]),
                                        check: "check inter 200ms fall 1 rise 1",
                                        extra: statsFrontend(port: statsPort)),
                files: ["e2e-spoe.conf": ProxySetup.spoeConfig(messages: [("ok", "src")])],
                waitPort: s.web, binary: t.command)
            let deadline = nowSeconds() + 10
            while nowSeconds() < deadline && tap.snapshot().healthCheckHellos < 3 { usleep(100_000) }
            XCTAssertGreaterThanOrEqual(tap.snapshot().healthCheckHellos, 3, "\(t) sent no spop-check probes")
            guard let row = try waitForServerUp(statsPort: statsPort, backend: "be_agents", server: "a1") else {
                return XCTFail("\(t): no be_agents/a1 row in stats\n\(haproxy.logTail())")
            }
            XCTAssertEqual(row["status"], "UP", "\(t): \(row["check_desc"] ?? "")\n\(agent.logTail())")
            XCTAssertEqual(row["check_status"], "L7OK", "\(t): \(row["check_desc"] ?? "")")
            let r = try httpGet(port: s.web)
            XCTAssertEqual(r.header("X-V-ok"), "1", "\(t): \(r.headers)\n\(haproxy.logTail(10))\n\(agent.logTail(10))")
        }
    }

    /// HAProxy closes idle SPOP connections and the agent takes it as ordinary:
    /// 3.0 sends HAPROXY-DISCONNECT (status 2) after the SPOE `timeout idle` and
    /// gets AGENT-DISCONNECT; 3.2 drops idle pooled connections with a TCP reset,
    /// no DISCONNECT, on the server's `pool-purge-delay` (its `timeout server` does
    /// not close an idle SPOP connection). The next requests open new connections.
    /// Neither close counts as luaspoa_connections_closed_total{reason="io_error"}.
    func testIdleConnectionsClosedByHAProxyThenReopened() throws {
        try forEachHAProxy3 { t in
            let metricsPort = try freePort()
            let (agent, agentPort) = try startAgent(script: try TestScripts.combined(),
                                                    extraArgs: ["--metrics", "127.0.0.1:\(metricsPort)"])
            let tap = try startTap(agentPort: agentPort)
            let s = try ProxySetup(agent: tap.port, backendMode: t.agentBackendMode)
            let haproxy = try startHAProxy(
                config: s.haproxyConfig(headers: ProxySetup.varHeaders(["ok"]), check: "pool-purge-delay 500ms"),
                files: ["e2e-spoe.conf": ProxySetup.spoeConfig(messages: [("ok", "src")], idleTimeout: "700ms")],
                waitPort: s.web, binary: t.command)
            XCTAssertEqual(try httpGet(port: s.web).header("X-V-ok"), "1", "\(t)\n\(haproxy.logTail())")
            let deadline = nowSeconds() + 15
            while nowSeconds() < deadline && tap.snapshot().closedConnections == 0 { usleep(100_000) }
            let st = tap.snapshot()
            print("E2E \(t) idle: closed \(st.closedConnections) of \(st.connections) SPOP connection(s); "
                  + "HAPROXY-DISCONNECT statuses \(st.haproxyDisconnectStatuses), "
                  + "AGENT-DISCONNECT statuses \(st.agentDisconnectStatuses)")
            XCTAssertGreaterThanOrEqual(st.closedConnections, 1, "\(t) did not close the idle connection: \(st)")
            usleep(200_000)  // the agent sees the close after the tap does
            let metrics = String(decoding: try httpGet(port: metricsPort, "/metrics").body, as: UTF8.self)
            let closes = metrics.split(separator: "\n").filter { $0.hasPrefix("luaspoa_connections_closed_total{") }
            XCTAssertTrue(closes.contains("luaspoa_connections_closed_total{reason=\"io_error\"} 0"),
                          "\(t): an ordinary idle close counted as an I/O error: \(closes)")
            if !t.hasSpopMux {
                XCTAssertEqual(st.haproxyDisconnectStatuses, [2], "\(t): \(st)")
            }
            XCTAssertEqual(st.agentDisconnectStatuses.count, st.haproxyDisconnectStatuses.count,
                           "\(t): the agent answers every HAPROXY-DISCONNECT: \(st)\n\(agent.logTail())")
            for _ in 0..<3 {
                let r = try httpGet(port: s.web)
                XCTAssertEqual(r.status, 200, "\(t)")
                XCTAssertEqual(r.header("X-V-ok"), "1", "\(t): \(r.headers)\n\(haproxy.logTail())")
                XCTAssertNil(r.header("X-SPOE-Error"), "\(t)")
            }
            XCTAssertGreaterThan(tap.snapshot().connections, st.connections, "\(t) reused a closed connection?")
            let complaints = agent.log.split(separator: "\n").filter {
                ["warning", "error", "critical"].contains($0.split(separator: " ").dropFirst().first ?? "")
            }
            XCTAssertEqual(complaints, [], "\(t): the agent logged an ordinary close above info level")
            XCTAssertTrue(agent.isRunning, "\(t)")
        }
    }
}
