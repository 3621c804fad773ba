// Examples/MinimalAgent: the dozen-line Swift agent answers a NOTIFY from HAProxy's side.

import XCTest

final class MinimalAgentTests: E2ETestCase {
    func testTheMinimalExampleAnswersCheckClientIP() throws {
        let (_, port) = try startExample("minimal-agent-example") { ["\($0)"] }
        let c = try TCPConn(port: port)
        _ = try c.handshake(haproxyHello(capabilities: "pipelining"))
        c.send(notifyFrame(streamID: 1, frameID: 1, [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([127, 0, 0, 1]))])])
               + notifyFrame(streamID: 2, frameID: 1, [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([192, 0, 2, 10]))])]))
        let first = try c.expectFrame(timeout: 10, "first ACK"), second = try c.expectFrame(timeout: 10, "second ACK")
        XCTAssertEqual(actionMap(try first.actions())["sess.ip_score"]??.intValue, 100)
        XCTAssertEqual(actionMap(try second.actions())["sess.ip_score"]??.intValue, 50)
    }
}
