// Lua handlers that wait (spoa.sleep), end to end: behind a real HAProxy with many
// clients, and on one raw pipelined connection.

import Foundation
import XCTest

final class WaitingLuaTests: E2ETestCase {
    static let script = """
        spoa.register_message("check-client-ip", function(txn, msg)
          txn:set_var("sess.ip_family", "ipv" .. msg.args.ip:family())
          spoa.sleep(msg.args.ms or 50)
          txn:set_var("sess.ip_score", spoa.uint32(msg.args.ip:is_loopback() and 100 or 50))
        end)
        spoa.register_message("fast", function(txn)
          txn:set_var("txn.fast", true)
        end)
        """

    /// 2000 requests from 64 concurrent clients, each handler sleeping 50 ms: all are
    /// answered correctly, and the sleeps overlap (serial sleeping would take 100 s).
    func testSleepingHandlersServeConcurrentRequestsThroughHAProxy() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: Self.script, name: "sleeper", extraArgs: ["--workers", "2"])
        let p = try ProxySetup(agent: agentPort)
        let headers = ProxySetup.varHeaders(["ip_score", "ip_family"], scope: "sess")
        let spoe = ProxySetup.spoeConfig(messages: [("check-client-ip", "ip=src")], processing: "10s")
        let haproxy = try startHAProxy(config: p.haproxyConfig(headers: headers), files: ["e2e-spoe.conf": spoe], waitPort: p.web)

        let total = 2000, connections = 64
        let (results, seconds) = httpLoad(port: p.web, total: total, connections: connections, timeout: 30,
                                          request: { ("/sleep/\($0)", []) },
                                          accept: { _, r in
                                              r.status == 200 && r.header("X-V-ip_score") == "100"
                                                  && r.header("X-V-ip_family") == "ipv4" && r.header("X-SPOE-Error") == nil
                                          })
        let (ok, failures, samples) = results.snapshot()
        print("E2E Lua spoa.sleep(50): \(total) requests over \(connections) connections: \(ok) ok, \(failures) failed, "
              + String(format: "%.2fs (serial sleeping: %.0fs)", seconds, Double(total) * 0.05))
        XCTAssertEqual(ok, total, "first failures: \(samples)\n\(haproxy.logTail(10))\nagent problems:\n\(agent.problems())")
        XCTAssertLessThan(seconds, 40, "sleeps did not overlap")
        XCTAssertTrue(agent.isRunning)
    }

    /// One pipelined connection: a message whose handler sleeps 200 ms, then one that
    /// does not wait. The second ACK arrives first; both carry their own ids and actions.
    func testFastMessageOvertakesASleepingOneOnOnePipelinedConnection() throws {
        let (_, port) = try startAgent(script: Self.script, name: "sleeper", extraArgs: ["--workers", "1"])
        let c = try TCPConn(port: port)
        _ = try c.handshake(haproxyHello(capabilities: "pipelining"))
        c.send(notifyFrame(streamID: 7, frameID: 1, [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([127, 0, 0, 1])), ("ms", .int32(200))])])
               + notifyFrame(streamID: 8, frameID: 1, [SpopMessage(name: "fast", args: [])]))
        let first = try c.expectFrame(timeout: 10, "first ACK")
        let second = try c.expectFrame(timeout: 10, "second ACK")
        XCTAssertEqual([first.type, second.type], [SpopType.ack.rawValue, SpopType.ack.rawValue])
        XCTAssertEqual(first.streamID, 8, "the message that does not wait is answered first")
        XCTAssertEqual(actionMap(try first.actions())["txn.fast"], .some(.bool(true)))
        XCTAssertEqual(second.streamID, 7)
        XCTAssertEqual(second.frameID, 1)
        let actions = actionMap(try second.actions())
        XCTAssertEqual(actions["sess.ip_score"]??.intValue, 100)
        XCTAssertEqual(actions["sess.ip_family"]??.stringValue, "ipv4")
    }

    /// SIGTERM while handlers sleep: every NOTIFY already sent gets its ACK (with the
    /// actions written after the wait) before its connection's AGENT-DISCONNECT 0.
    func testSigtermWaitsForSleepingHandlers() throws {
        let (agent, port) = try startAgent(script: Self.script, name: "drain-sleep",
                                           extraArgs: ["--workers", "2", "--drain-timeout", "30"])
        var connections: [TCPConn] = []
        for _ in 0..<4 {
            let connection = try TCPConn(port: port)
            _ = try connection.handshake(haproxyHello(capabilities: "pipelining"))
            connections.append(connection)
        }
        for connection in connections {
            var burst: [UInt8] = []
            for id in 0..<20 as Range<UInt64> {
                burst += notifyFrame(streamID: id, frameID: 1, [SpopMessage(name: "check-client-ip",
                                                                           args: [("ip", .ipv4([127, 0, 0, 1])), ("ms", .int32(300))])])
            }
            XCTAssertTrue(connection.send(burst))
        }
        usleep(100_000)  // the handlers are asleep now
        kill(agent.process.processIdentifier, SIGTERM)
        for (index, connection) in connections.enumerated() {
            var scores = 0
            var goodbye: SpopFrame?
            while let frame = try connection.readFrame(timeout: 30) {
                if frame.type == SpopType.ack.rawValue, actionMap(try frame.actions())["sess.ip_score"]??.intValue == 100 { scores += 1 }
                if frame.type == SpopType.agentDisconnect.rawValue { goodbye = frame; break }
            }
            XCTAssertEqual(scores, 20, "connection \(index): a sleeping handler lost its ACK\n\(agent.logTail())")
            XCTAssertEqual(try goodbye?.kv()["status-code"], .uint32(0), "connection \(index)")
        }
        XCTAssertEqual(agent.waitForExit(timeout: 30), 0, agent.logTail())
    }

    /// A handler still sleeping at --lua-deadline: the ACK carries its on_error actions
    /// and --lua-error-var, and luaspoa_lua_deadline_exceeded_total counts it.
    func testDeadlineAnswersWithOnErrorAndIsCounted() throws {
        let metricsPort = try freePort()
        let (agent, port) = try startAgent(
            script: """
                spoa.register_message("late", function(txn)
                  txn:set_var("txn.lost", 1)
                  spoa.sleep(5000)
                end, { on_error = { ["txn.late"] = true } })
                """, name: "deadline",
            extraArgs: ["--workers", "1", "--lua-deadline", "100", "--lua-error-var", "txn.lua_error",
                        "--metrics", "127.0.0.1:\(metricsPort)"])
        let c = try TCPConn(port: port)
        _ = try c.handshake(haproxyHello(capabilities: "pipelining"))
        c.send(notifyFrame(streamID: 3, frameID: 1, [SpopMessage(name: "late", args: [])]))
        let ack = try c.expectFrame(timeout: 10, "ACK at the deadline")
        XCTAssertEqual(ack.type, SpopType.ack.rawValue)
        let actions = actionMap(try ack.actions())
        XCTAssertEqual(actions["txn.late"], .some(.bool(true)))
        XCTAssertEqual(actions["txn.lua_error"], .some(.bool(true)))
        XCTAssertTrue(actions["txn.lost"] == nil, "rolled back")
        let series = try prometheusSeries(port: metricsPort)
            .filter { $0.key.hasPrefix("luaspoa_lua_deadline_exceeded_total{") && $0.key.contains("message=\"late\"") }
        XCTAssertEqual(series.values.reduce(0, +), 1, "\(series)")
        XCTAssertTrue(agent.log.contains("deadline exceeded (100 ms"), agent.logTail())
    }
}
