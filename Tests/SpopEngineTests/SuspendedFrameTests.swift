import Logging
import MetricsTestKit
import NIOCore
import NIOEmbedded
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// A worker whose messages say what to do: `wait-*` suspends the frame and parks its
/// PendingAck, `now-*` suspends and completes in the same turn, anything else answers
/// inline, `release-*` also completes every parked frame. Every frame first records
/// `txn.seen`, so actions written before a suspend show.
final class ParkingWorker: SpoaWorker {
    var parked: [String: PendingAck] = [:]
    /// The mark taken after `txn.seen`, before the suspend.
    var marks: [String: Int] = [:]
    private var depth = 0

    func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        depth += 1
        defer { depth -= 1 }
        XCTAssertEqual(depth, 1, "the worker was entered again from inside handle")
        for message in notify.messages {
            let name = message.nameString
            try? ack.setVar(.transaction, "seen", .string(name))
            marks[name] = ack.mark
            if name.hasPrefix("wait") {
                try? ack.setVar(.transaction, "before", .bool(true))
                parked[name] = ack.suspend()
                return
            }
            if name.hasPrefix("release") {
                for pending in parked.values { pending.complete() }
            }
            if name.hasPrefix("now") {
                let pending = ack.suspend()
                XCTAssertTrue(pending.complete([.setVar(.transaction, "done", .string("now"))]))
                return
            }
        }
    }
}

/// A HAPROXY-HELLO offering `capabilities` ("" : neither pipelining nor async).
func haproxyHello(capabilities: String) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeSpopFrame(FrameHeader(type: .haproxyHello, streamID: 0, frameID: 0)) { body in
        body.writeSpopKV("supported-versions", .string("2.0"))
        body.writeSpopKV("max-frame-size", .uint32(16380))
        body.writeSpopKV("capabilities", .string(capabilities))
        body.writeSpopKV("engine-id", .string("engine-1"))
    }
    return buffer
}

/// One SpopChannelHandler on an EmbeddedChannel, playing HAProxy's side by hand.
struct EmbeddedPeer {
    let channel: EmbeddedChannel
    let loop: EmbeddedEventLoop
    private var reader = FrameReader()

    /// `hello` nil: connected, no HAPROXY-HELLO sent yet.
    init(
        worker: any SpoaWorker, capabilities hello: String? = "pipelining", limits: ServerLimits = .init(),
        loop: EmbeddedEventLoop = EmbeddedEventLoop(), budget: PendingHandlerBudget? = nil
    ) throws {
        self.loop = loop
        let handler = SpopChannelHandler(
            capabilities: AgentCapabilities(), limits: limits, worker: worker, logger: Logger(label: "test"),
            metrics: ServerMetrics(), pendingBudget: budget)
        channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        guard let hello else { return }
        try send(haproxyHello(capabilities: hello))
        XCTAssertEqual(try frames().map(\.header.type), [.agentHello])
    }

    /// One read of `bytes`, as a socket delivers it (read, then read complete).
    func send(_ bytes: ByteBuffer) throws {
        try channel.writeInbound(bytes)
        channel.pipeline.fireChannelReadComplete()
    }

    func notify(_ names: [(stream: UInt64, message: String)]) throws {
        var buffer = ByteBuffer()
        for (stream, message) in names { NotifyFrame.write(streamID: stream, frameID: 1, messages: [(message, [])], to: &buffer) }
        try send(buffer)
    }

    /// The frames written since the last call.
    mutating func frames() throws -> [RawFrame] {
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { reader.append(bytes) }
        var frames: [RawFrame] = []
        while let frame = try reader.next(maxFrameSize: 1 << 20) { frames.append(frame) }
        return frames
    }

    /// The ACKs written since the last call, as (stream-id, actions).
    mutating func acks() throws -> [(UInt64, [SpoaAction])] {
        try frames().map { frame in
            XCTAssertEqual(frame.header.type, .ack)
            return (frame.header.streamID, try SpoaAction.decodeList(frame.payload))
        }
    }
}

final class SuspendedFrameTests: XCTestCase {
    private let seenA: SpoaAction = .setVar(.transaction, "seen", .string("wait-a"))
    private let before: SpoaAction = .setVar(.transaction, "before", .bool(true))

    func testFastFrameIsAnsweredBeforeASlowOneReadEarlier() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a"), (2, "fast-b")])
        let first = try peer.acks()
        XCTAssertEqual(first.map(\.0), [2])
        XCTAssertEqual(first.first?.1, [.setVar(.transaction, "seen", .string("fast-b"))])

        let pending = try XCTUnwrap(worker.parked["wait-a"])
        XCTAssertEqual(pending.streamID, 1)
        XCTAssertEqual(pending.frameID, 1)
        XCTAssertTrue(pending.complete([.setVar(.transaction, "late", .int32(7))]))
        let second = try peer.acks()
        XCTAssertEqual(second.map(\.0), [1])
        // Actions written before suspend() leave with the ACK, then the late ones.
        XCTAssertEqual(second.first?.1, [seenA, before, .setVar(.transaction, "late", .int32(7))])
        XCTAssertFalse(pending.complete(), "a second completion writes nothing")
        XCTAssertEqual(try peer.frames().count, 0)
    }

    func testCompletionInsideHandleLeavesWithTheBurst() throws {
        var peer = try EmbeddedPeer(worker: ParkingWorker())
        try peer.notify([(1, "now-a"), (2, "fast-b")])
        let acks = try peer.acks()
        XCTAssertEqual(Set(acks.map(\.0)), [1, 2])
        XCTAssertEqual(acks.first { $0.0 == 1 }?.1,
                       [.setVar(.transaction, "seen", .string("now-a")), .setVar(.transaction, "done", .string("now"))])
    }

    func testMarkTakenBeforeSuspendRollsBackAfterIt() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a")])
        let pending = try XCTUnwrap(worker.parked["wait-a"])
        let mark = try XCTUnwrap(worker.marks["wait-a"])
        pending.withWriter { writer in
            writer.rollback(to: mark)  // takes back txn.before, written after the mark
            try? writer.setVar(.transaction, "after", .bool(true))
        }
        pending.withWriter { try? $0.setVar(.transaction, "again", .int32(1)) }
        XCTAssertTrue(pending.complete())
        XCTAssertEqual(try peer.acks().first?.1,
                       [seenA, .setVar(.transaction, "after", .bool(true)), .setVar(.transaction, "again", .int32(1))])
    }

    func testCompletionAfterPeerCloseWritesNothing() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a")])
        let pending = try XCTUnwrap(worker.parked["wait-a"])
        var cancels = 0
        pending.onCancel = { cancels += 1 }
        try peer.channel.close().wait()
        XCTAssertTrue(pending.isCancelled)
        XCTAssertEqual(cancels, 1)
        XCTAssertFalse(pending.complete([.setVar(.transaction, "late", .bool(true))]))
        XCTAssertEqual(try peer.frames().count, 0)
        // Set late, the handler runs at once, and only once.
        var lateCancels = 0
        pending.onCancel = { lateCancels += 1 }
        XCTAssertEqual(lateCancels, 1)
        XCTAssertEqual(cancels, 1)
    }

    func testCompletedFrameIsNeverCancelled() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a")])
        let pending = try XCTUnwrap(worker.parked["wait-a"])
        var cancels = 0
        pending.onCancel = { cancels += 1 }
        XCTAssertTrue(pending.complete())
        try peer.channel.close().wait()
        XCTAssertFalse(pending.isCancelled)
        XCTAssertEqual(cancels, 0)
        XCTAssertEqual(try peer.acks().count, 1)
    }

    func testHaproxyDisconnectCancelsPendingFrames() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a"), (2, "wait-b")])
        var cancels = 0
        for pending in worker.parked.values { pending.onCancel = { cancels += 1 } }
        try peer.send(ByteBuffer(hex: Golden.haproxyDisconnectTimeout))
        XCTAssertEqual(try peer.frames().map(\.header.type), [.agentDisconnect])
        XCTAssertEqual(cancels, 2)
        for pending in worker.parked.values {
            XCTAssertTrue(pending.isCancelled)
            XCTAssertFalse(pending.complete())
        }
        XCTAssertEqual(try peer.frames().count, 0)
    }

    func testDrainWaitsForPendingFramesThenSaysGoodbye() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a"), (2, "fast-b")])
        XCTAssertEqual(try peer.acks().map(\.0), [2])
        peer.channel.pipeline.fireUserInboundEventTriggered(ConnectionRegistry.DrainEvent())
        peer.loop.advanceTime(by: .seconds(1))  // input quiet: only the pending frame holds the goodbye
        XCTAssertEqual(try peer.frames().count, 0)
        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).complete())
        let frames = try peer.frames()
        XCTAssertEqual(frames.map(\.header.type), [.ack, .agentDisconnect])
        XCTAssertEqual(frames.first?.header.streamID, 1)
        XCTAssertEqual(try Disconnect(frames[1]).status, .normal)
    }

    /// The registry's drain timeout closes the connection: the pending frame is cancelled.
    func testDrainTimeoutCutsPendingFrames() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker)
        try peer.notify([(1, "wait-a")])
        peer.channel.pipeline.fireUserInboundEventTriggered(ConnectionRegistry.DrainEvent())
        peer.loop.advanceTime(by: .seconds(1))
        try peer.channel.close().wait()  // what ConnectionRegistry.drain does at its timeout
        let pending = try XCTUnwrap(worker.parked["wait-a"])
        XCTAssertTrue(pending.isCancelled)
        XCTAssertFalse(pending.complete())
        XCTAssertEqual(try peer.frames().count, 0)
    }

    func testIdleTimerDoesNotFireWhileFramesArePending() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker, limits: ServerLimits(idleTimeout: .milliseconds(20)))
        try peer.notify([(1, "wait-a")])
        peer.loop.advanceTime(by: .milliseconds(200))
        XCTAssertEqual(try peer.frames().count, 0, "no idle timeout while a handler works")
        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).complete())
        XCTAssertEqual(try peer.acks().map(\.0), [1])
        peer.loop.advanceTime(by: .milliseconds(200))
        let frames = try peer.frames()
        XCTAssertEqual(frames.map(\.header.type), [.agentDisconnect])
        XCTAssertEqual(try frames.first.map(Disconnect.init)?.status, .timeout)
    }

    /// Without pipelining HAProxy has one frame in flight: a suspended one holds the next.
    func testWithoutPipeliningAPendingFrameHoldsTheNext() throws {
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker, capabilities: "")
        try peer.notify([(1, "wait-a"), (2, "fast-b")])
        XCTAssertEqual(try peer.frames().count, 0)
        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).complete())
        XCTAssertEqual(try peer.acks().map(\.0), [1, 2])
    }

    func testPendingCapStopsDecodingUntilAHandlerFinishes() throws {
        let metrics = TestMetrics()
        let loop = EmbeddedEventLoop()
        let budget = PendingHandlerBudget(limit: 1, eventLoop: loop, worker: 0, logger: Logger(label: "test"), metrics: ServerMetrics(factory: metrics))
        let worker = ParkingWorker()
        var peer = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)
        var other = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)
        let gauge = try metrics.expectMeter("luaspoa_handlers_pending", [("worker", "0")])
        let hits = try metrics.expectCounter("luaspoa_limit_hits_total", [("limit", "max_pending")])

        try peer.notify([(1, "wait-a"), (2, "fast-b")])
        try other.notify([(3, "fast-c")])
        XCTAssertEqual(try peer.frames().count, 0, "the worker's one pending handler holds new frames")
        XCTAssertEqual(try other.frames().count, 0, "the budget is the worker's, shared by its connections")
        XCTAssertEqual(gauge.lastValue, 1)
        XCTAssertEqual(hits.totalValue, 2)

        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).complete())
        loop.run()
        XCTAssertEqual(try peer.acks().map(\.0), [1, 2])
        XCTAssertEqual(try other.acks().map(\.0), [3])
        XCTAssertEqual(gauge.lastValue, 0)
        XCTAssertEqual(budget.count, 0)
    }

    func testCancelledFramesGiveTheirBudgetBack() throws {
        let loop = EmbeddedEventLoop()
        let budget = PendingHandlerBudget(limit: 10, eventLoop: loop, worker: nil, logger: Logger(label: "test"), metrics: ServerMetrics())
        let worker = ParkingWorker()
        let peer = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)
        try peer.notify([(1, "wait-a"), (2, "wait-b")])
        XCTAssertEqual(budget.count, 2)
        try peer.channel.close().wait()
        XCTAssertEqual(budget.count, 0)
    }

    /// A handler completes a frame of another connection of its worker: that ACK and
    /// the frames it held wait for the next loop turn, never re-entering the worker.
    func testCompletionFromAnotherConnectionsHandlerWaitsATurn() throws {
        let loop = EmbeddedEventLoop()
        let budget = PendingHandlerBudget(limit: 10, eventLoop: loop, worker: nil, logger: Logger(label: "test"), metrics: ServerMetrics())
        let worker = ParkingWorker()
        var held = try EmbeddedPeer(worker: worker, capabilities: "", loop: loop, budget: budget)
        var releasing = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)
        try held.notify([(1, "wait-b"), (2, "fast-c")])
        XCTAssertEqual(try held.frames().count, 0)
        try releasing.notify([(3, "release-a")])
        XCTAssertEqual(try releasing.acks().map(\.0), [3])
        loop.run()
        XCTAssertEqual(try held.acks().map(\.0), [1, 2])
    }

    /// A cancelled PendingAck the worker still holds keeps nothing of its connection alive.
    func testCancelledFrameDoesNotRetainItsConnection() throws {
        let worker = ParkingWorker()
        weak var channel: EmbeddedChannel?
        do {
            let peer = try EmbeddedPeer(worker: worker)
            channel = peer.channel
            try peer.notify([(1, "wait-a")])
            try peer.channel.close().wait()
            // What the embedded loop itself holds (timers, the channel until finish) goes too.
            peer.loop.run()
            peer.loop.advanceTime(by: .seconds(3600))
            _ = try? peer.channel.finish(acceptAlreadyClosed: true)
        }
        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).isCancelled)
        XCTAssertNil(channel, "the channel outlived its close through a pending frame")
    }

    /// A full budget holds NOTIFYs, not handshakes: a new connection still gets its AGENT-HELLO.
    func testFullBudgetStillAnswersHellos() throws {
        let loop = EmbeddedEventLoop()
        let budget = PendingHandlerBudget(limit: 1, eventLoop: loop, worker: nil, logger: Logger(label: "test"), metrics: ServerMetrics())
        let worker = ParkingWorker()
        let first = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)
        try first.notify([(1, "wait-a")])
        XCTAssertTrue(budget.isFull)
        var second = try EmbeddedPeer(worker: worker, loop: loop, budget: budget)  // asserts the AGENT-HELLO
        try second.notify([(2, "fast-b")])
        XCTAssertEqual(try second.frames().count, 0)
        XCTAssertTrue(try XCTUnwrap(worker.parked["wait-a"]).complete())
        loop.run()
        XCTAssertEqual(try second.acks().map(\.0), [2])
    }
}
