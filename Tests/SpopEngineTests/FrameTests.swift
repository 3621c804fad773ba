import NIOCore
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// Reads the single frame in `hex` (length prefix included).
func frame(_ hex: String, maxFrameSize: Int = 16380) throws -> RawFrame {
    var reader = FrameReader()
    reader.append(ByteBuffer(hex: hex))
    return try XCTUnwrap(reader.next(maxFrameSize: maxFrameSize))
}


final class FrameTests: XCTestCase {
    func testHaproxyHelloDecodes() throws {
        let hello = try HaproxyHello(frame(Golden.haproxyHello))
        XCTAssertEqual(hello.supportedVersions, ["2.0"])
        XCTAssertEqual(hello.maxFrameSize, 16380)
        XCTAssertEqual(hello.capabilities, ["pipelining", "async"])
        XCTAssertEqual(hello.engineID, "0b1e5c9a-7f3d-4a21-9c44-5e6f7a8b9c0d")
        XCTAssertFalse(hello.isHealthCheck)
        XCTAssertTrue(try HaproxyHello(frame(Golden.healthCheckHello)).isHealthCheck)
    }

    func testAgentHelloEncodesLikeTheDigest() {
        var buffer = ByteBuffer()
        AgentHello(maxFrameSize: 16380, capabilities: ["pipelining"]).write(to: &buffer)
        XCTAssertEqual(buffer.hex, ByteBuffer(hex: Golden.agentHello).hex)
        buffer.clear()
        AgentHello(maxFrameSize: 16380, capabilities: []).write(to: &buffer)
        XCTAssertEqual(buffer.hex, ByteBuffer(hex: Golden.minimalAgentHello).hex)
    }

    func testHaproxyHelloRoundTrip() throws {
        let hello = HaproxyHello(supportedVersions: ["2.0"], maxFrameSize: 16380, capabilities: [], isHealthCheck: true)
        var buffer = ByteBuffer()
        hello.write(to: &buffer)
        XCTAssertEqual(buffer.hex, ByteBuffer(hex: Golden.healthCheckHello).hex)
    }

    func testNotifyDecodes() throws {
        let raw = try frame(Golden.notifyCheckClientIP)
        let notify = try NotifyFrame(streamID: raw.header.streamID, frameID: raw.header.frameID, payload: raw.payload)
        XCTAssertEqual(notify.streamID, 300)
        XCTAssertEqual(notify.frameID, 1)
        let messages = Array(notify.messages)
        XCTAssertEqual(messages.map(\.nameString), ["check-client-ip"])
        let arguments = Array(messages[0].arguments)
        XCTAssertEqual(arguments.map(\.nameString), ["ip"])
        XCTAssertEqual(arguments[0].value, .ipv4(IPv4Address(192, 0, 2, 10)))
    }

    func testNotifyWithEveryArgumentForm() throws {
        let raw = try frame(Golden.notifyEveryArgumentForm)
        let notify = try NotifyFrame(streamID: 7, frameID: 1, payload: raw.payload)
        let message = try XCTUnwrap(notify.messages.first { _ in true })
        XCTAssertEqual(message.nameString, "demo")
        XCTAssertEqual(message.argumentCount, 5)
        let arguments = Array(message.arguments)
        XCTAssertEqual(arguments.map(\.nameString), ["", "b", "n", "v6", "e"])
        XCTAssertEqual(arguments.map(\.value), [.null, .bool(true), .int64(-2), .ipv6(IPv6Address("2001:db8::1")!), .string("")])
    }

    func testNotifyEncoderMatchesDigest() {
        var buffer = ByteBuffer()
        NotifyFrame.write(
            streamID: 300, frameID: 1, messages: [("check-client-ip", [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])], to: &buffer
        )
        XCTAssertEqual(buffer.hex, ByteBuffer(hex: Golden.notifyCheckClientIP).hex)
    }

    func testSeveralMessagesAndZeroArguments() throws {
        var buffer = ByteBuffer()
        NotifyFrame.write(streamID: 0, frameID: 0, messages: [("a", []), ("b", [("", .int32(1))]), ("a", [])], to: &buffer)
        let raw = try frame(buffer.hex)
        let notify = try NotifyFrame(streamID: 0, frameID: 0, payload: raw.payload)
        XCTAssertEqual(notify.messageCount, 3)
        XCTAssertEqual(notify.messages.map(\.nameString), ["a", "b", "a"])
    }

    func testTruncatedNotifyIsRefusedWithAReason() throws {
        let payload = try frame(Golden.notifyCheckClientIP).payload
        for cut in 1..<payload.readableBytes {
            let truncated = payload.getSlice(at: payload.readerIndex, length: cut)!
            XCTAssertThrowsError(try NotifyFrame(streamID: 1, frameID: 1, payload: truncated), "cut at \(cut)") { error in
                XCTAssertTrue("\(error)".contains("truncated") || "\(error)".contains("past the end"), "\(error)")
            }
        }
    }

    func testAckEncodingMatchesDigest() throws {
        func ack(_ body: (inout AckWriter) throws -> Void) rethrows -> String {
            var writer = AckWriter(streamID: 300, frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer())
            try body(&writer)
            return writer.finish().hex
        }
        XCTAssertEqual(try ack { try $0.setVar(.transaction, "score", .int32(75)) }, ByteBuffer(hex: Golden.ackScore75).hex)
        XCTAssertEqual(try ack { try $0.setVar(.transaction, "score", .int32(-1)) }, ByteBuffer(hex: Golden.ackScoreMinus1).hex)
        XCTAssertEqual(try ack { try $0.unsetVar(.transaction, "score") }, ByteBuffer(hex: Golden.ackUnsetScore).hex)
        var empty = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer())
        XCTAssertEqual(empty.finish().hex, ByteBuffer(hex: Golden.emptyAck).hex)
    }

    func testAckNeverExceedsMaxFrameSize() throws {
        var writer = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 256, buffer: ByteBuffer())
        var added = 0
        while true {
            do { try writer.setVar(.session, "v\(added)", .string(String(repeating: "x", count: 40))) } catch {
                XCTAssertEqual(error, AckFullError(maxFrameSize: 256))
                break
            }
            added += 1
        }
        let ack = writer.finish()
        XCTAssertEqual(added, 5, "7-byte header + 5 actions of 48 bytes fit in 256")
        XCTAssertLessThanOrEqual(ack.readableBytes - 4, 256)
        let raw = try frame(ack.hex)
        XCTAssertEqual(try SpoaAction.decodeList(raw.payload).count, 5)
    }

    func testAckRollback() throws {
        var writer = AckWriter(streamID: 9, frameID: 2, maxFrameSize: 16380, buffer: ByteBuffer())
        try writer.setVar(.session, "kept", .bool(true))
        let mark = writer.mark
        try writer.setVar(.session, "dropped", .bool(true))
        writer.rollback(to: mark)
        let raw = try frame(writer.finish().hex)
        XCTAssertEqual(try SpoaAction.decodeList(raw.payload), [.setVar(.session, "kept", .bool(true))])
    }

    func testDisconnectFrames() throws {
        let peer = try Disconnect(frame(Golden.haproxyDisconnectTimeout))
        XCTAssertEqual(peer, Disconnect(status: .timeout, message: "a timeout occurred"))
        var buffer = ByteBuffer()
        Disconnect(status: .normal, message: "normal").write(to: &buffer)
        XCTAssertEqual(buffer.hex, ByteBuffer(hex: Golden.agentDisconnectNormal).hex)
    }

    func testDisconnectMessageIsCutTo255Bytes() throws {
        var buffer = ByteBuffer()
        Disconnect(status: .invalidFrame, message: String(repeating: "é", count: 200)).write(to: &buffer)
        let decoded = try Disconnect(frame(buffer.hex))
        XCTAssertLessThanOrEqual(decoded.message.utf8.count, 255)
        XCTAssertEqual(decoded.status, .invalidFrame)
    }
}
