// HAProxy 2.6 with `option async` in the SPOE file against an agent started with
// --async: the capability is negotiated and every request is still answered, with
// ACKs on their own connection (default) and spread over the engine's connections.

import Foundation
import XCTest

extension HAProxyTests {
    func testOptionAsyncUnderLoadWithAsyncAgent() throws {
        let run = try runAsyncLoad(agentArgs: ["--async"], total: 2000, clients: 16, path: "/async")
        XCTAssertGreaterThanOrEqual(run.tap.snapshot().acks, 2000)
        XCTAssertEqual(run.tap.snapshot().acksOnOtherConnection, 0, "--async-ack own moved ACKs off healthy connections")
        // HAProxy offered async and the agent accepted it on every connection.
        let hello = try TCPConn(port: run.agentPort).handshake()
        XCTAssertEqual(try hello.kv()["capabilities"]?.stringValue, "pipelining,fragmentation,async")
        XCTAssertTrue(run.agent.isRunning)
    }

    /// The proof that HAProxy 2.6 takes an ACK on any connection of the NOTIFY's
    /// engine-id: with --async-ack spread most ACKs leave on a sibling, and every
    /// request still gets the agent's variable.
    func testAsyncAckSpreadUnderLoadIsAcceptedByHAProxy() throws {
        let metricsPort = try freePort()
        let total = 4000
        let run = try runAsyncLoad(
            agentArgs: ["--async", "--async-ack", "spread", "--metrics", "127.0.0.1:\(metricsPort)"],
            total: total, clients: 32, path: "/spread", maxWaitingFrames: 1
        )
        let wire = run.tap.snapshot()
        XCTAssertGreaterThanOrEqual(wire.acks, total)
        // Several connections per engine-id (HAProxy thread), else there is no sibling.
        // (HAProxy 3.1+ has one engine-id and no async: this test is for 2.6-3.0.)
        XCTAssertEqual(wire.connectionsByEngine.count, 2, "one engine-id per HAProxy thread expected: \(wire.connectionsByEngine)")
        XCTAssertGreaterThan(wire.connectionsByEngine.values.max() ?? 0, 1, "\(wire.connectionsByEngine)")
        // Seen on the wire between HAProxy and the agent, and counted by the agent.
        XCTAssertGreaterThan(wire.acksOnOtherConnection, 0)
        // The agent counts a rerouted ACK when its write completes, on the sibling's
        // event loop: on a busy machine that can trail the bytes the tap saw.
        let series = "luaspoa_acks_rerouted_total{reason=\"spread\"}"
        var rerouted = try prometheusSeries(port: metricsPort)[series] ?? 0
        let deadline = Date().addingTimeInterval(5)
        while Int(rerouted) != wire.acksOnOtherConnection, Date() < deadline {
            usleep(50_000)
            rerouted = try prometheusSeries(port: metricsPort)[series] ?? 0
        }
        XCTAssertEqual(Int(rerouted), wire.acksOnOtherConnection, "agent's count vs the wire")
        print("async spread: \(total) requests, \(wire.acks) ACKs, \(wire.acksOnOtherConnection) on a sibling connection, "
              + "connections per engine \(wire.connectionsByEngine.values.sorted())")
        XCTAssertTrue(run.agent.isRunning)
    }

    struct AsyncLoadRun {
        var agent: ManagedProcess
        var agentPort: UInt16
        var tap: SpopTap
    }

    /// HAProxy 2.6 (2 threads, `option async`) in front of the shipped IP-reputation
    /// agent; `total` requests from `clients` keep-alive clients must all carry X-IP-Score.
    func runAsyncLoad(agentArgs: [String], total: Int, clients: Int, path: String,
                      maxWaitingFrames: Int? = nil) throws -> AsyncLoadRun {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent",
                                                extraArgs: agentArgs + ["--workers", "2"])
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        var (cfg, spoe) = try shippedConfig(p, processingTimeout: "5s")
        cfg = try ProxySetup.withThreads(2, cfg)
        let extra = "    option async\n" + (maxWaitingFrames.map { "    max-waiting-frames \($0)\n" } ?? "")
        spoe = spoe.replacingOccurrences(of: "    messages check-client-ip\n", with: "    messages check-client-ip\n" + extra)
        XCTAssertTrue(spoe.contains("option async"), spoe)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-ip-reputation.conf": spoe], waitPort: p.web)

        let webPort = p.web
        let results = LoadResults()
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            var conn = try? HTTPConn(port: webPort)
            for n in stride(from: client, to: total, by: clients) {
                let outcome: String?
                if let response = try? conn?.get("\(path)/\(n)", timeout: 15) {
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
        return AsyncLoadRun(agent: agent, agentPort: agentPort, tap: tap)
    }
}
