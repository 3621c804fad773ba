import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// AsyncClosureWorker and SpoaWorker.answer: async handlers off the event loop.
final class AsyncWorkerTests: XCTestCase {
    private func notify(_ message: String, stream: UInt64 = 5) throws -> NotifyFrame {
        var buffer = ByteBuffer()
        NotifyFrame.write(streamID: stream, frameID: 9, messages: [(message, [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])], to: &buffer)
        var reader = FrameReader()
        reader.append(buffer)
        let raw = try XCTUnwrap(try reader.next(maxFrameSize: 16380))
        return try NotifyFrame(streamID: raw.header.streamID, frameID: raw.header.frameID, payload: raw.payload)
    }

    private func answer(_ notify: NotifyFrame, _ makeWorker: @escaping @Sendable () -> any SpoaWorker) async throws -> (RawFrame, [SpoaAction]) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let bytes = try await loop.flatSubmit { makeWorker().answer(notify, on: loop) }.get()
        var reader = FrameReader()
        reader.append(bytes)
        let frame = try XCTUnwrap(try reader.next(maxFrameSize: 16380))
        XCTAssertEqual(frame.header.type, .ack)
        return (frame, try SpoaAction.decodeList(frame.payload))
    }

    func testAsyncHandlerAnswersAfterAwaiting() async throws {
        let (frame, actions) = try await answer(try notify("check-client-ip")) {
            AsyncClosureWorker { notify, _ in
                try await Task.sleep(nanoseconds: 1_000_000)
                let ip = notify.messages.first { _ in true }?.arguments.first { _ in true }?.value
                return [.setVar(.session, "ip_score", .int32(ip == .ipv4(IPv4Address(192, 0, 2, 10)) ? 42 : 0))]
            }
        }
        XCTAssertEqual(frame.header.streamID, 5)
        XCTAssertEqual(frame.header.frameID, 9)
        XCTAssertEqual(actions, [.setVar(.session, "ip_score", .int32(42))])
    }

    func testThrowingHandlerAnswersWithAnEmptyAck() async throws {
        struct Failure: Error {}
        let (frame, actions) = try await answer(try notify("m")) { AsyncClosureWorker { _, _ in throw Failure() } }
        XCTAssertEqual(frame.header.streamID, 5)
        XCTAssertEqual(actions, [])
    }

    func testAnswerOfAnInlineHandler() async throws {
        let (_, actions) = try await answer(try notify("m")) {
            ClosureWorker { _, _, ack in try? ack.setVar(.transaction, "inline", .bool(true)) }
        }
        XCTAssertEqual(actions, [.setVar(.transaction, "inline", .bool(true))])
    }

    func testCopiedNotifyOwnsItsBytes() throws {
        let original = try notify("m")
        let copy = original.copied()
        XCTAssertEqual(copy, original)
        let addresses = [original, copy].map { $0.payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        XCTAssertNotEqual(addresses[0], addresses[1], "the copy has storage of its own")
    }

    /// A worker whose handler sleeps until its Task is cancelled, then says so.
    static func sleepingUntilCancelled(_ cancelled: NIOLockedValueBox<Bool>) -> @Sendable () -> any SpoaWorker {
        {
            AsyncClosureWorker { _, _ in
                do { try await Task.sleep(nanoseconds: 600_000_000_000) } catch { cancelled.withLockedValue { $0 = true } }
                return []
            }
        }
    }

    /// The connection closes while the handler awaits: its Task is cancelled.
    func testClosedConnectionCancelsTheTask() async throws {
        let cancelled = NIOLockedValueBox(false)
        let worker = Self.sleepingUntilCancelled(cancelled)
        try await withServer(worker) { _, address in
            try await TestClient.connect(address).channel.executeThenClose { inbound, outbound in
                var stream = FrameStream(inbound)
                var frames: [RawFrame] = []
                try await outbound.write(ByteBuffer(hex: Golden.haproxyHello))
                try await stream.read(into: &frames) { !$0.isEmpty }
                try await outbound.write(ByteBuffer(hex: Golden.notifyCheckClientIP))
            }
            for _ in 0..<1000 where !cancelled.withLockedValue({ $0 }) { try await Task.sleep(nanoseconds: 10_000_000) }
            XCTAssertTrue(cancelled.withLockedValue { $0 })
        }
    }

    /// Without pipelining a waiting frame holds the next one, yet a peer that closes is
    /// still noticed: the Task is cancelled.
    func testClosedConnectionWithoutPipeliningCancelsTheTask() async throws {
        let cancelled = NIOLockedValueBox(false)
        let worker = Self.sleepingUntilCancelled(cancelled)
        try await withServer(worker) { _, address in
            try await TestClient.connect(address).channel.executeThenClose { inbound, outbound in
                var stream = FrameStream(inbound)
                var frames: [RawFrame] = []
                try await outbound.write(haproxyHello(capabilities: ""))
                try await stream.read(into: &frames) { !$0.isEmpty }
                try await outbound.write(ByteBuffer(hex: Golden.notifyCheckClientIP))
                try await Task.sleep(nanoseconds: 50_000_000)  // not a bound: lets the NOTIFY be read first
            }
            for _ in 0..<1000 where !cancelled.withLockedValue({ $0 }) { try await Task.sleep(nanoseconds: 10_000_000) }
            XCTAssertTrue(cancelled.withLockedValue { $0 })
        }
    }

    /// One pipelined connection: a slow message then a fast one; the fast ACK comes first.
    func testFastAckOvertakesASlowOneOnOneConnection() async throws {
        let worker: @Sendable () -> any SpoaWorker = {
            AsyncClosureWorker { notify, _ in
                let slow = notify.messages.first { _ in true }?.nameString == "slow"
                try await Task.sleep(nanoseconds: slow ? 300_000_000 : 0)
                return [.setVar(.transaction, "name", .string(slow ? "slow" : "fast"))]
            }
        }
        try await withServer(worker) { _, address in
            var request = ByteBuffer(hex: Golden.haproxyHello)
            NotifyFrame.write(streamID: 1, frameID: 1, messages: [("slow", [])], to: &request)
            NotifyFrame.write(streamID: 2, frameID: 1, messages: [("fast", [])], to: &request)
            let frames = try await TestClient.exchange(address, request, frames: 3)
            XCTAssertEqual(frames.map(\.header.type), [.agentHello, .ack, .ack])
            XCTAssertEqual(frames.dropFirst().map(\.header.streamID), [2, 1])
            XCTAssertEqual(try SpoaAction.decodeList(frames[1].payload), [.setVar(.transaction, "name", .string("fast"))])
            XCTAssertEqual(try SpoaAction.decodeList(frames[2].payload), [.setVar(.transaction, "name", .string("slow"))])
        }
    }
}
