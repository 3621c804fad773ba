import Logging
import NIOCore
import NIOEmbedded
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// The channel handler's timers (hello, idle, frame) on an EmbeddedEventLoop: time only
/// moves when the test advances it, so each bound is checked on both sides of its
/// deadline, without sleeping. ServerLimitTests checks the same limits over real sockets.
final class ChannelTimerTests: XCTestCase {
    private var peer: EmbeddedPeer!
    private var loop: EmbeddedEventLoop { peer.loop }

    private func connect(_ limits: ServerLimits) throws {
        peer = try EmbeddedPeer(worker: ClosureWorker { _, _, _ in }, capabilities: nil, limits: limits)
    }

    private func send(_ bytes: ByteBuffer) throws { try peer.send(bytes) }

    private func frames() throws -> [RawFrame] { try peer.frames() }

    /// Sends `hex` one byte per `interval` of virtual time, all but the last `keep` bytes.
    private func trickle(_ hex: String, every interval: TimeAmount, keep: Int = 0) throws {
        let bytes = ByteBuffer(hex: hex)
        for index in 0..<(bytes.readableBytes - keep) {
            try send(bytes.getSlice(at: index, length: 1)!)
            loop.advanceTime(by: interval)
        }
    }

    /// The AGENT-DISCONNECT written since the last look, or nil when nothing was.
    private func disconnect() throws -> Disconnect? {
        let written = try frames()
        guard let last = written.last else { return nil }
        XCTAssertEqual(last.header.type, .agentDisconnect)
        return try Disconnect(last)
    }

    func testHelloTimeoutFiresAtItsDeadlineNotBefore() throws {
        try connect(ServerLimits(helloTimeout: .seconds(2)))
        loop.advanceTime(by: .milliseconds(1999))
        XCTAssertNil(try disconnect())
        loop.advanceTime(by: .milliseconds(1))
        let goodbye = try XCTUnwrap(try disconnect())
        XCTAssertEqual(goodbye.status, .timeout)
        XCTAssertEqual(goodbye.message, "no HAPROXY-HELLO within 2.0 s")
    }

    func testHelloSentByteByByteStillTimesOut() throws {
        try connect(ServerLimits(helloTimeout: .seconds(2)))
        // 100 ms per byte: the hello never completes within 2 s, the bytes do not reset the timer.
        try trickle(Golden.haproxyHello, every: .milliseconds(100), keep: 1)
        XCTAssertEqual(try disconnect()?.status, .timeout)
    }

    func testEachFrameRestartsTheIdleTimer() throws {
        try connect(ServerLimits(idleTimeout: .seconds(10)))
        try send(ByteBuffer(hex: Golden.haproxyHello))
        XCTAssertEqual(try frames().map(\.header.type), [.agentHello])
        for _ in 0..<3 {
            loop.advanceTime(by: .seconds(9))
            try send(ByteBuffer(hex: Golden.notifyCheckClientIP))
            XCTAssertEqual(try frames().map(\.header.type), [.ack])
        }
        loop.advanceTime(by: .milliseconds(9999))
        XCTAssertNil(try disconnect(), "27 s after the hello, but less than 10 s after the last frame")
        loop.advanceTime(by: .milliseconds(1))
        let goodbye = try XCTUnwrap(try disconnect())
        XCTAssertEqual(goodbye.status, .timeout)
        XCTAssertEqual(goodbye.message, "idle for 10.0 s")
    }

    /// A byte every 100 ms keeps the idle timer fresh; the frame timeout still ends a frame
    /// that never completes.
    func testTricklingPeerIsClosedByTheFrameTimeout() throws {
        try connect(ServerLimits(idleTimeout: .seconds(1), frameTimeout: .seconds(3)))
        try send(ByteBuffer(hex: Golden.haproxyHello))
        XCTAssertEqual(try frames().map(\.header.type), [.agentHello])
        let notify = ByteBuffer(hex: Golden.notifyCheckClientIP)
        // 29 bytes at 100 ms: 2.9 s, still within the frame timeout.
        for index in 0..<29 {
            try send(notify.getSlice(at: index, length: 1)!)
            loop.advanceTime(by: .milliseconds(100))
        }
        XCTAssertNil(try disconnect())
        try send(notify.getSlice(at: 29, length: 1)!)
        loop.advanceTime(by: .milliseconds(100))
        let goodbye = try XCTUnwrap(try disconnect())
        XCTAssertEqual(goodbye.status, .timeout)
        XCTAssertTrue(goodbye.message.hasPrefix("frame incomplete after 3.0 s (30 bytes received"), goodbye.message)
    }

    func testTimeoutsOffMeansNoTimer() throws {
        try connect(ServerLimits(idleTimeout: .zero, frameTimeout: .zero))
        try send(ByteBuffer(hex: Golden.haproxyHello))
        XCTAssertEqual(try frames().map(\.header.type), [.agentHello])
        loop.advanceTime(by: .hours(24))
        XCTAssertNil(try disconnect())
        XCTAssertTrue(peer.channel.isActive)
    }
}
