// Handlers that wait, end to end: the async-agent-example binary (AsyncClosureWorker,
// a 50 ms lookup per message) behind a real HAProxy, and on a raw pipelined connection.

import Foundation
import XCTest

final class AsyncAgentTests: E2ETestCase {
    private func startExample(delayMilliseconds: Int) throws -> (ManagedProcess, UInt16) {
        try startExample("async-agent-example") {
            ["--listen", "127.0.0.1:\($0)", "--delay-ms", "\(delayMilliseconds)", "--workers", "2"]
        }
    }

    /// 2000 requests from 64 concurrent clients, each waiting on a 50 ms lookup: all are
    /// answered correctly, and the waits overlap (serial waiting would take 100 s).
    func testWaitingHandlersServeConcurrentRequestsThroughHAProxy() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startExample(delayMilliseconds: 50)
        let p = try ProxySetup(agent: agentPort)
        let headers = ProxySetup.varHeaders(["ip_score", "ip_family"], scope: "sess")
        let spoe = ProxySetup.spoeConfig(messages: [("check-client-ip", "ip=src")], processing: "10s")
        let haproxy = try startHAProxy(config: p.haproxyConfig(headers: headers), files: ["e2e-spoe.conf": spoe], waitPort: p.web)

        let total = 2000, connections = 64
        let (results, seconds) = httpLoad(port: p.web, total: total, connections: connections, timeout: 30,
                                          request: { ("/async/\($0)", []) },
                                          accept: { _, r in
                                              r.status == 200 && r.header("X-V-ip_score") == "100"
                                                  && r.header("X-V-ip_family") == "ipv4" && r.header("X-SPOE-Error") == nil
                                          })
        let (ok, failures, samples) = results.snapshot()
        print("E2E async agent: \(total) requests over \(connections) connections, 50 ms lookup each: \(ok) ok, "
              + "\(failures) failed, " + String(format: "%.2fs (serial waiting: %.0fs)", seconds, Double(total) * 0.05))
        XCTAssertEqual(ok, total, "first failures: \(samples)\n\(haproxy.logTail(10))\nagent problems:\n\(agent.problems())")
        XCTAssertLessThan(seconds, 40, "waits did not overlap")
        XCTAssertTrue(agent.isRunning)
    }

    /// One pipelined connection: a message whose lookup waits, then one that does not.
    /// The second ACK arrives first; both carry their own ids and answers.
    func testFastMessageOvertakesASlowOneOnOnePipelinedConnection() throws {
        let (_, port) = try startExample(delayMilliseconds: 500)
        let c = try TCPConn(port: port)
        _ = try c.handshake(haproxyHello(capabilities: "pipelining"))
        // The example looks up check-client-ip (slow); any other message needs no lookup.
        c.send(notifyFrame(streamID: 7, frameID: 1, [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([127, 0, 0, 1]))])])
               + notifyFrame(streamID: 8, frameID: 1, [SpopMessage(name: "other", args: [])]))
        let first = try c.expectFrame(timeout: 10, "first ACK")
        let second = try c.expectFrame(timeout: 10, "second ACK")
        XCTAssertEqual([first.type, second.type], [SpopType.ack.rawValue, SpopType.ack.rawValue])
        XCTAssertEqual(first.streamID, 8, "the message without a lookup is answered first")
        XCTAssertEqual(try first.actions().count, 0)
        XCTAssertEqual(second.streamID, 7)
        XCTAssertEqual(second.frameID, 1)
        let actions = actionMap(try second.actions())
        XCTAssertEqual(actions["sess.ip_score"]??.intValue, 100)
        XCTAssertEqual(actions["sess.ip_family"]??.stringValue, "ipv4")
    }
}
