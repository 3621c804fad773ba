import NIOCore
import SpopTestFrames
import XCTest
@testable import SpopEngine

final class ConnectionStateMachineTests: XCTestCase {
    private func helloFrame(
        versions: String? = "2.0", maxFrameSize: SpopValue? = .uint32(16380), capabilities: String? = "pipelining,async",
        healthCheck: Bool = false, flags: FrameFlags = .fin, streamID: UInt64 = 0, frameID: UInt64 = 0
    ) throws -> RawFrame {
        var buffer = ByteBuffer()
        buffer.writeSpopFrame(FrameHeader(type: .haproxyHello, flags: flags, streamID: streamID, frameID: frameID)) { body in
            if let versions { body.writeSpopKV("supported-versions", .string(versions)) }
            if let maxFrameSize { body.writeSpopKV("max-frame-size", maxFrameSize) }
            if let capabilities { body.writeSpopKV("capabilities", .string(capabilities)) }
            if healthCheck { body.writeSpopKV("healthcheck", .bool(true)) }
            body.writeSpopKV("engine-id", .string("engine-1"))
        }
        return try frame(buffer.hex, maxFrameSize: 1 << 20)
    }

    private func running(_ capabilities: AgentCapabilities = .init()) throws -> ConnectionStateMachine {
        var machine = ConnectionStateMachine(capabilities: capabilities)
        guard case .sendHello = machine.frameReceived(try helloFrame()) else { throw XCTSkip("handshake failed") }
        return machine
    }

    private func assertDisconnect(
        _ action: ConnectionStateMachine.Action, _ status: SpopStatus, _ text: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        guard case .disconnect(let reply, nil) = action else {
            return XCTFail("expected disconnect \(status), got \(action)", file: file, line: line)
        }
        XCTAssertEqual(reply.status, status, reply.message, file: file, line: line)
        XCTAssertTrue(reply.message.contains(text), "\(reply.message) lacks \(text)", file: file, line: line)
    }

    func testHandshakeNegotiates() throws {
        var machine = ConnectionStateMachine(capabilities: AgentCapabilities(maxFrameSize: 4096))
        XCTAssertEqual(machine.maxFrameSize, 4096)
        let action = machine.frameReceived(try helloFrame())
        XCTAssertEqual(action, .sendHello(AgentHello(maxFrameSize: 4096, capabilities: ["pipelining", "fragmentation"]), closeAfterWrite: false))
        XCTAssertEqual(machine.engineID, "engine-1")
        XCTAssertEqual(machine.maxFrameSize, 4096)
    }

    func testMaxFrameSizeIsTheSmallerOffer() throws {
        var machine = ConnectionStateMachine(capabilities: .init())
        guard case .sendHello(let hello, _) = machine.frameReceived(try helloFrame(maxFrameSize: .uint32(1000))) else {
            return XCTFail()
        }
        XCTAssertEqual(hello.maxFrameSize, 1000)
        XCTAssertEqual(machine.maxFrameSize, 1000)
    }

    func testCapabilitiesFollowConfiguration() throws {
        var machine = ConnectionStateMachine(capabilities: AgentCapabilities(pipelining: false, fragmentation: false))
        XCTAssertEqual(machine.frameReceived(try helloFrame()), .sendHello(AgentHello(maxFrameSize: 16380, capabilities: []), closeAfterWrite: false))
    }

    func testHealthCheckIsAnsweredThenClosed() throws {
        var machine = ConnectionStateMachine(capabilities: .init())
        let action = machine.frameReceived(try frame(Golden.healthCheckHello))
        XCTAssertEqual(action, .sendHello(AgentHello(maxFrameSize: 16380, capabilities: ["pipelining", "fragmentation"]), closeAfterWrite: true))
        XCTAssertTrue(machine.isClosed)
    }

    func testHelloErrors() throws {
        let cases: [(RawFrame, SpopStatus, String)] = [
            (try helloFrame(versions: nil), .noVersion, "supported-versions"),
            (try helloFrame(maxFrameSize: nil), .noMaxFrameSize, "max-frame-size"),
            (try helloFrame(capabilities: nil), .noCapabilities, "capabilities"),
            (try helloFrame(versions: "1.0, 3.0"), .unsupportedVersion, "1.0,3.0"),
            (try helloFrame(versions: "v2.0"), .unsupportedVersion, "v2.0"),
            (try helloFrame(maxFrameSize: .uint32(255)), .badMaxFrameSize, "255"),
            (try helloFrame(maxFrameSize: .string("big")), .invalidFrame, "max-frame-size must be an integer"),
            (try helloFrame(flags: []), .fragmentationNotSupported, "FIN"),
            (try helloFrame(streamID: 1), .invalidFrame, "stream-id 1"),
            (try frame(Golden.notifyCheckClientIP), .invalidFrame, "expected HAPROXY-HELLO"),
            (try frame("00 00 00 07 09 00 00 00 01 00 00"), .invalidFrame, "frame type 9"),
        ]
        for (input, status, text) in cases {
            var machine = ConnectionStateMachine(capabilities: .init())
            assertDisconnect(machine.frameReceived(input), status, text)
            XCTAssertTrue(machine.isClosed)
            XCTAssertEqual(machine.frameReceived(try helloFrame()), .none(reason: "frame after close ignored"))
        }
    }

    func testVersionListIsParsedNumerically() throws {
        for versions in [" 2.0 ", "1.0, 2.00", "3.0,2.5"] {
            var machine = ConnectionStateMachine(capabilities: .init())
            guard case .sendHello(let hello, _) = machine.frameReceived(try helloFrame(versions: versions)) else {
                return XCTFail("refused \(versions)")
            }
            XCTAssertEqual(hello.version, "2.0")
        }
    }

    func testEmptyKeyInHelloIsInvalid() throws {
        var machine = ConnectionStateMachine(capabilities: .init())
        let raw = try frame("00 00 00 0a 01 00 00 00 01 00 00 00 08 00")
        assertDisconnect(machine.frameReceived(raw), .invalidFrame, "empty key")
    }

    func testNotifyIsProcessedWithItsIds() throws {
        var machine = try running()
        guard case .processNotify(let notify) = machine.frameReceived(try frame(Golden.notifyCheckClientIP)) else { return XCTFail() }
        XCTAssertEqual(notify.streamID, 300)
        XCTAssertEqual(notify.frameID, 1)
        XCTAssertEqual(notify.messageCount, 1)
    }

    func testZeroIdsAndEmptyNotifyAreLegal() throws {
        var machine = try running()
        guard case .processNotify(let notify) = machine.frameReceived(try frame("00 00 00 07 03 00 00 00 01 00 00")) else { return XCTFail() }
        XCTAssertEqual(notify.messageCount, 0)
        XCTAssertEqual(notify.streamID, 0)
    }

    func testMalformedNotifyIsInvalid() throws {
        var machine = try running()
        assertDisconnect(machine.frameReceived(try frame("00 00 00 0a 03 00 00 00 01 01 01 05 61 62")), .invalidFrame, "message name")
    }

    func testSecondHelloIsInvalid() throws {
        var machine = try running()
        assertDisconnect(machine.frameReceived(try helloFrame()), .invalidFrame, "second HAPROXY-HELLO")
    }

    func testUnknownFrameTypesAreSkippedAfterHandshake() throws {
        var machine = try running()
        guard case .none = machine.frameReceived(try frame("00 00 00 07 2a 00 00 00 01 01 01")) else { return XCTFail() }
        XCTAssertFalse(machine.isClosed)
    }

    func testHaproxyDisconnectIsAnsweredWithNormal() throws {
        var machine = try running()
        let action = machine.frameReceived(try frame(Golden.haproxyDisconnectTimeout))
        XCTAssertEqual(
            action, .disconnect(Disconnect(status: .normal, message: "normal"), peer: Disconnect(status: .timeout, message: "a timeout occurred"))
        )
        XCTAssertTrue(machine.isClosed)
    }

    func testFragmentsAreReassembled() throws {
        var machine = try running()
        XCTAssertEqual(machine.frameReceived(try frame(Golden.fragmentFirst)), .none(reason: nil))
        guard case .processNotify(let notify) = machine.frameReceived(try frame(Golden.fragmentLast)) else { return XCTFail() }
        XCTAssertEqual(notify.streamID, 300)
        XCTAssertEqual(notify.frameID, 2)
        XCTAssertEqual(notify.payload.hex, "01 6d 01 01 73 08 0a 41 42 43 44 45 46 47 48 49 4a")
        let argument = try XCTUnwrap(notify.messages.first { _ in true }?.arguments.first { _ in true })
        XCTAssertEqual(argument.value, .string("ABCDEFGHIJ"))
    }

    func testManyMiddleFragments() throws {
        var machine = try running()
        XCTAssertEqual(machine.frameReceived(try frame(Golden.fragmentFirst)), .none(reason: nil))
        for chunk in ["45 46", "47 48", "49"] {
            let middle = try frame("00 00 00 \(String(format: "%02x", 8 + chunk.split(separator: " ").count)) 00 00 00 00 00 fc 03 02 \(chunk)")
            XCTAssertEqual(machine.frameReceived(middle), .none(reason: nil))
        }
        guard case .processNotify(let notify) = machine.frameReceived(try frame("00 00 00 09 00 00 00 00 01 fc 03 02 4a")) else { return XCTFail() }
        XCTAssertEqual(notify.payload.hex, "01 6d 01 01 73 08 0a 41 42 43 44 45 46 47 48 49 4a")
    }

    /// What the handler charges to the process-wide fragment budget, and the refusal.
    func testFragmentBytesAndRefusal() throws {
        var machine = try running()
        XCTAssertEqual(machine.fragmentBytes, 0)
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        XCTAssertGreaterThanOrEqual(machine.fragmentBytes, 11, "at least the first fragment's payload (19 - 8 header bytes)")
        _ = machine.frameReceived(try frame(Golden.fragmentAbort))
        XCTAssertEqual(machine.fragmentBytes, 0, "an abort gives it back")
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        assertDisconnect(machine.fragmentRefused("over the bound"), .resourceAllocation, "over the bound")
        XCTAssertEqual(machine.fragmentBytes, 0)
        XCTAssertEqual(machine.fragmentRefused("again"), .none(reason: nil))
    }

    func testAbortDropsThePartialNotify() throws {
        var machine = try running()
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        guard case .none = machine.frameReceived(try frame(Golden.fragmentAbort)) else { return XCTFail() }
        // A late abort for the same ids is ignored too, and the connection goes on.
        guard case .none = machine.frameReceived(try frame(Golden.fragmentAbort)) else { return XCTFail() }
        guard case .processNotify = machine.frameReceived(try frame(Golden.notifyCheckClientIP)) else { return XCTFail() }
    }

    func testInterlacedFragments() throws {
        var machine = try running()
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        assertDisconnect(machine.frameReceived(try frame("00 00 00 0a 00 00 00 00 01 fc 03 03 45 46")), .interlacedFrames, "300/3")

        machine = try running()
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        assertDisconnect(machine.frameReceived(try frame(Golden.notifyCheckClientIP)), .interlacedFrames, "300/2")
    }

    func testUnsetWithoutPendingNotify() throws {
        var machine = try running()
        assertDisconnect(machine.frameReceived(try frame(Golden.fragmentLast)), .frameIDNotFound, "no fragmented NOTIFY")
    }

    func testFragmentationRefusedWhenNotAnnounced() throws {
        var machine = try running(AgentCapabilities(fragmentation: false))
        assertDisconnect(machine.frameReceived(try frame(Golden.fragmentFirst)), .fragmentationNotSupported, "not announced")
        machine = try running(AgentCapabilities(fragmentation: false))
        assertDisconnect(machine.frameReceived(try frame(Golden.fragmentLast)), .fragmentationNotSupported, "not announced")
    }

    func testReassemblyIsBounded() throws {
        var machine = try running(AgentCapabilities(maxReassembledSize: 20))
        _ = machine.frameReceived(try frame(Golden.fragmentFirst))
        let big = try frame("00 00 00 14 00 00 00 00 00 fc 03 02" + String(repeating: " 41", count: 12))
        assertDisconnect(machine.frameReceived(big), .frameTooBig, "more than 20 bytes")
    }

    func testDecodingFailuresDisconnect() throws {
        var machine = try running()
        assertDisconnect(machine.decodingFailed(SpopProtocolError(.frameTooBig, "frame of 99999 bytes")), .frameTooBig, "99999")
        XCTAssertEqual(machine.decodingFailed(SpopProtocolError(.invalidFrame, "again")), .none(reason: nil))
    }
}

final class FrameReaderTests: XCTestCase {
    func testFramesSplitAnywhereAndCoalesced() throws {
        let stream = ByteBuffer(hex: Golden.haproxyHello + Golden.notifyCheckClientIP + Golden.emptyAck)
        for split in 0...stream.readableBytes {
            var reader = FrameReader()
            var frames: [RawFrame] = []
            reader.append(stream.getSlice(at: 0, length: split)!)
            while let frame = try reader.next(maxFrameSize: 16380) { frames.append(frame) }
            reader.append(stream.getSlice(at: split, length: stream.readableBytes - split)!)
            while let frame = try reader.next(maxFrameSize: 16380) { frames.append(frame) }
            XCTAssertEqual(frames.map(\.header.typeCode), [1, 3, 103], "split at \(split)")
            XCTAssertEqual(reader.bufferedBytes, 0)
        }
    }

    func testLengthIsCheckedBeforeTheBodyArrives() {
        var reader = FrameReader()
        reader.append(ByteBuffer(hex: "7f ff ff ff"))
        XCTAssertThrowsError(try reader.next(maxFrameSize: 16380)) { error in
            XCTAssertEqual((error as? SpopProtocolError)?.status, .frameTooBig)
        }
        reader = FrameReader()
        reader.append(ByteBuffer(hex: "00 00 00 06 03 00 00 00 01 00"))
        XCTAssertThrowsError(try reader.next(maxFrameSize: 16380)) { error in
            XCTAssertEqual((error as? SpopProtocolError)?.status, .invalidFrame)
        }
    }

    func testBadHeaderVarintIsInvalid() {
        var reader = FrameReader()
        reader.append(ByteBuffer(hex: "00 00 00 07 03 00 00 00 01 ff ff"))
        XCTAssertThrowsError(try reader.next(maxFrameSize: 16380)) { error in
            XCTAssertEqual((error as? SpopProtocolError)?.status, .invalidFrame)
        }
    }
}

final class ConnectionLifecycleTests: XCTestCase {
    func testTimeoutAndDrainAnswerOnceThenStayClosed() throws {
        var machine = ConnectionStateMachine(capabilities: .init())
        XCTAssertEqual(machine.timedOut("no HAPROXY-HELLO within 5 s"), .disconnect(Disconnect(status: .timeout, message: "no HAPROXY-HELLO within 5 s"), peer: nil))
        XCTAssertEqual(machine.drain(), .none(reason: nil))
        XCTAssertEqual(machine.timedOut("again"), .none(reason: nil))

        machine = ConnectionStateMachine(capabilities: .init())
        _ = machine.frameReceived(try frame(Golden.haproxyHello))
        XCTAssertTrue(machine.isRunning)
        XCTAssertEqual(machine.inputQuiet(), .none(reason: nil), "not draining: quiet input means nothing")
        // Draining keeps answering NOTIFYs already received; goodbye once input is quiet.
        guard case .none = machine.drain() else { return XCTFail("a running connection says goodbye only when input is quiet") }
        XCTAssertTrue(machine.isDraining)
        guard case .processNotify = machine.frameReceived(try frame(Golden.notifyCheckClientIP)) else {
            return XCTFail("a NOTIFY received while draining must be answered")
        }
        XCTAssertEqual(machine.inputQuiet(), .disconnect(Disconnect(status: .normal, message: "agent is shutting down"), peer: nil))
        XCTAssertTrue(machine.isClosed)
        XCTAssertEqual(machine.inputQuiet(), .none(reason: nil))
    }
}
