import NIOCore
import XCTest
@testable import SpopEngine

/// Reads the single frame in `hex` (length prefix included).
func frame(_ hex: String, maxFrameSize: Int = 16380) throws -> RawFrame {
    var reader = FrameReader()
    reader.append(ByteBuffer(hex: hex))
    return try XCTUnwrap(reader.next(maxFrameSize: maxFrameSize))
}

/// The reference frames of docs/spop-protocol.md §11, decoded and re-encoded byte for byte.
enum Golden {
    static let haproxyHello = """
        00 00 00 81 01 00 00 00 01 00 00 12 73 75 70 70 6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 10 70 69 70 65 6c 69 6e 69 6e 67 2c 61 73 79 6e 63 09 65 6e 67 69 6e 65 2d 69 64 08
        24 30 62 31 65 35 63 39 61 2d 37 66 33 64 2d 34 61 32 31 2d 39 63 34 34 2d 35 65 36 66 37 61 38
        62 39 63 30 64
        """
    static let healthCheckHello = """
        00 00 00 4e 01 00 00 00 01 00 00 12 73 75 70 70 6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 00 0b 68 65 61 6c 74 68 63 68 65 63 6b 11
        """
    static let agentHello = """
        00 00 00 40 65 00 00 00 01 00 00 07 76 65 72 73 69 6f 6e 08 03 32 2e 30 0e 6d 61 78 2d 66 72 61
        6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74 69 65 73 08 0a 70 69 70 65 6c 69
        6e 69 6e 67
        """
    static let minimalAgentHello = """
        00 00 00 36 65 00 00 00 01 00 00 07 76 65 72 73 69 6f 6e 08 03 32 2e 30 0e 6d 61 78 2d 66 72 61
        6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74 69 65 73 08 00
        """
    static let notifyCheckClientIP = """
        00 00 00 21 03 00 00 00 01 fc 03 01 0f 63 68 65 63 6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70
        06 c0 00 02 0a
        """
    static let notifyEveryArgumentForm = """
        00 00 00 37 03 00 00 00 01 07 01 04 64 65 6d 6f 05 00 00 01 62 11 01 6e 04 fe f0 fe fe fe fe fe
        fe fe 0e 02 76 36 07 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 65 08 00
        """
    static let ackScore75 = "00 00 00 13 67 00 00 00 01 fc 03 01 01 03 02 05 73 63 6f 72 65 02 4b"
    static let ackScoreMinus1 = "00 00 00 1c 67 00 00 00 01 fc 03 01 01 03 02 05 73 63 6f 72 65 02 ff f0 fe fe fe fe fe fe fe 0e"
    static let ackUnsetScore = "00 00 00 11 67 00 00 00 01 fc 03 01 02 02 02 05 73 63 6f 72 65"
    static let emptyAck = "00 00 00 07 67 00 00 00 01 01 01"
    static let fragmentFirst = "00 00 00 13 03 00 00 00 00 fc 03 02 01 6d 01 01 73 08 0a 41 42 43 44"
    static let fragmentLast = "00 00 00 0e 00 00 00 00 01 fc 03 02 45 46 47 48 49 4a"
    static let fragmentAbort = "00 00 00 08 00 00 00 00 03 fc 03 02"
    static let haproxyDisconnectTimeout = """
        00 00 00 31 02 00 00 00 01 00 00 0b 73 74 61 74 75 73 2d 63 6f 64 65 03 02 07 6d 65 73 73 61 67
        65 08 12 61 20 74 69 6d 65 6f 75 74 20 6f 63 63 75 72 72 65 64
        """
    static let agentDisconnectNormal = """
        00 00 00 25 66 00 00 00 01 00 00 0b 73 74 61 74 75 73 2d 63 6f 64 65 03 00 07 6d 65 73 73 61 67
        65 08 06 6e 6f 72 6d 61 6c
        """
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
