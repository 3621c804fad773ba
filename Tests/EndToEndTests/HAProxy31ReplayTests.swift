// HAProxy 3.1+ behaviour replayed byte for byte (docs/spop-protocol.md §9, §11): its HELLO
// (pipelining only), odd stream-ids with frame-id 1, 20 streams in flight on one
// connection, empty NOTIFYs, idle closes with and without DISCONNECT, the fixed
// health-check HELLO. The byte-level cases a real HAProxy does not produce on
// demand; a real 3.2 and 3.0 run in HAProxy3Tests / HAProxy3ConnectionTests.

import Foundation
import SpopTestFrames
import XCTest

final class HAProxy31ReplayTests: E2ETestCase {
    var agent: ManagedProcess!
    var port: UInt16 = 0

    override func setUpWithError() throws {
        try super.setUpWithError()
        (agent, port) = try startAgent(scriptPath: TestScripts.ipReputationPath)
    }

    /// §11.1 as 3.1+ sends it: capabilities "pipelining" only, LEN 0x7b.
    static let hello31: [UInt8] = {
        let bytes = spopFrame(type: SpopType.haproxyHello.rawValue, payload: kvPayload([
            ("supported-versions", .str("2.0")), ("max-frame-size", .uint32(16380)),
            ("capabilities", .str("pipelining")), ("engine-id", .str("0b1e5c9a-7f3d-4a21-9c44-5e6f7a8b9c0d")),
        ]))
        return bytes
    }()

    func testHelloIsTheDocumentedSequence() throws {
        XCTAssertEqual(Array(Self.hello31.prefix(4)), [0, 0, 0, 0x7b])
        // Same bytes as 2.6's §11.1 up to the capabilities value, and the same engine-id tail.
        XCTAssertEqual(Array(Self.hello31[4..<0x43]), Array(hexBytes(Golden.haproxyHello)[4..<0x43]))
        XCTAssertEqual(Array(Self.hello31.suffix(36)), Array(hexBytes(Golden.haproxyHello).suffix(36)))
        let c = try TCPConn(port: port)
        let reply = try c.handshake(Self.hello31)
        XCTAssertEqual(try reply.kv()["capabilities"]?.stringValue, "pipelining,fragmentation")
        XCTAssertEqual(try reply.kv()["max-frame-size"], .uint32(16380))
    }

    func testTwentyOddStreamsInFlightEachWithFrameIDOne() throws {
        let c = try TCPConn(port: port)
        _ = try c.handshake(Self.hello31)
        // Streams 1, 3, ..., 39 in one write, as the multiplexer sends them (frame-id always 1).
        var burst: [UInt8] = []
        let ids = (0..<20).map { UInt64(2 * $0 + 1) }
        for sid in ids {
            burst += notifyFrame(streamID: sid, frameID: 1,
                                 [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([192, 0, 2, 10]))])])
        }
        XCTAssertTrue(c.send(burst))
        var answered: Set<UInt64> = []
        for _ in ids {
            let ack = try c.expectFrame(timeout: 10, "ACK")
            XCTAssertEqual(ack.type, SpopType.ack.rawValue, "\(ack)")
            XCTAssertEqual(ack.frameID, 1)
            XCTAssertEqual(actionMap(try ack.actions())["sess.ip_score"], .uint32(28))
            answered.insert(ack.streamID)
        }
        XCTAssertEqual(answered, Set(ids))
        // §11.3's 3.1 frame (stream 5 again, a later event on the same connection).
        c.send(hexBytes(Golden.notifyCheckClientIPv31))
        let again = try c.expectFrame(timeout: 10, "ACK")
        XCTAssertEqual([again.streamID, again.frameID], [5, 1])
    }

    func testEmptyNotifyGetsTheEmptyAckOfSection11_5() throws {
        let c = try TCPConn(port: port)
        _ = try c.handshake(Self.hello31)
        // 3.1.x/3.2.x before dc6e8dde2 may send a NOTIFY with no message at all.
        c.send(spopFrame(type: SpopType.notify.rawValue, streamID: 1, frameID: 1, payload: []))
        XCTAssertEqual(try c.readExactly(11, timeout: 10), hexBytes("00 00 00 07 67 00 00 00 01 01 01"))
    }

    func testIdleCloseWithDisconnectIsAnsweredWithSection11_8() throws {
        let c = try TCPConn(port: port)
        _ = try c.handshake(Self.hello31)
        c.send(hexBytes(Golden.notifyCheckClientIPv31))
        _ = try c.expectFrame(timeout: 10, "ACK")
        // Idle pool expiry: HAPROXY-DISCONNECT status 0, then AGENT-DISCONNECT and close.
        c.send(haproxyDisconnect(status: 0, message: "normal"))
        XCTAssertEqual(try c.readExactly(hexBytes(Golden.agentDisconnectNormal).count, timeout: 10), hexBytes(Golden.agentDisconnectNormal))
        XCTAssertEqual(try c.waitForClose(timeout: 10), [])
        assertAgentServes(port, agent)
    }

    func testIdleCloseWithoutDisconnectKeepsTheAgentServing() throws {
        for _ in 0..<3 {
            let c = try TCPConn(port: port)
            _ = try c.handshake(Self.hello31)
            c.send(hexBytes(Golden.notifyCheckClientIPv31))
            _ = try c.expectFrame(timeout: 10, "ACK")
            c.shutdownAndClose()  // dropped silently by idle-pool management
        }
        assertAgentServes(port, agent)
        XCTAssertTrue(agent.problems().isEmpty, agent.problems())
    }

    func testFixedHealthCheckHelloIsAnsweredThenClosed() throws {
        let c = try TCPConn(port: port)
        c.send(hexBytes(Golden.healthCheckHello))
        let reply = try c.expectFrame(timeout: 10, "AGENT-HELLO")
        // 3.1+ validates strictly: flags exactly FIN, ids 0/0, all three keys.
        XCTAssertEqual(reply.flags, 0x0000_0001)
        XCTAssertEqual([reply.streamID, reply.frameID], [0, 0])
        XCTAssertEqual(Set(try reply.kv().keys), ["version", "max-frame-size", "capabilities"])
        XCTAssertEqual(try c.waitForClose(timeout: 10), [])
    }
}
