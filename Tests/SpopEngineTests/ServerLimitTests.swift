import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// Each limit of ServerLimits, exercised over real sockets.
final class ServerLimitTests: XCTestCase {
    private let silent: @Sendable () -> any SpoaWorker = { ClosureWorker { _, _, _ in } }

    private func status(of frames: [RawFrame]) throws -> SpopStatus? {
        guard let last = frames.last, last.header.type == .agentDisconnect else { return nil }
        return try Disconnect(last).status
    }

    func testConnectionsOverTheLimitAreRefusedWithStatus13() async throws {
        try await withServer(limits: ServerLimits(maxConnections: 2), silent) { server, address in
            let first = try await TestClient.connect(address)
            let second = try await TestClient.connect(address)
            while server.connectionCount < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
            let refused = try await TestClient.exchange(address, ByteBuffer(hex: Golden.haproxyHello), frames: 1)
            let reply = try Disconnect(XCTUnwrap(refused.first))
            XCTAssertEqual(reply.status, .resourceAllocation)
            XCTAssertEqual(reply.message, "connection limit 2 reached")
            // executeThenClose finishes the writer too: an NIOAsyncChannel dropped
            // with an open writer is a precondition failure.
            try await first.channel.executeThenClose { _, _ in }
            try await second.channel.executeThenClose { _, _ in }
            while server.connectionCount > 0 { try await Task.sleep(nanoseconds: 1_000_000) }
            // Below the limit again: served.
            let served = try await TestClient.exchange(address, ByteBuffer(hex: Golden.healthCheckHello), frames: 1)
            XCTAssertEqual(served.first?.header.type, .agentHello)
        }
    }

    func testSilentPeerIsClosedAfterTheHelloTimeout() async throws {
        try await withServer(limits: ServerLimits(helloTimeout: .milliseconds(200)), silent) { _, address in
            let frames = try await TestClient.exchange(address, ByteBuffer(), frames: 2)
            XCTAssertEqual(try status(of: frames), .timeout)
            XCTAssertTrue(try Disconnect(frames[0]).message.hasPrefix("no HAPROXY-HELLO within 0.2 s"))
        }
    }

    func testHelloSentByteByByteStillTimesOut() async throws {
        try await withServer(limits: ServerLimits(helloTimeout: .milliseconds(300)), silent) { _, address in
            let client = try await TestClient.connect(address)
            let hello = ByteBuffer(hex: Golden.haproxyHello)
            let frames: [RawFrame] = try await client.channel.executeThenClose { inbound, outbound in
                let writer = Task {
                    for index in 0..<hello.readableBytes {
                        try await outbound.write(hello.getSlice(at: index, length: 1)!)
                        try await Task.sleep(nanoseconds: 50_000_000)
                    }
                }
                defer { writer.cancel() }
                var stream = FrameStream(inbound)
                var frames: [RawFrame] = []
                try await stream.read(into: &frames)
                return frames
            }
            XCTAssertEqual(try status(of: frames), .timeout)
        }
    }

    func testIdleConnectionIsClosedWithStatus2() async throws {
        try await withServer(limits: ServerLimits(idleTimeout: .milliseconds(200)), silent) { _, address in
            let frames = try await TestClient.exchange(address, ByteBuffer(hex: Golden.haproxyHello), frames: 3)
            XCTAssertEqual(frames.map(\.header.type), [.agentHello, .agentDisconnect])
            XCTAssertEqual(try status(of: frames), .timeout)
            XCTAssertTrue(try Disconnect(frames[1]).message.contains("idle"))
        }
    }

    /// Issue 11: after the handshake, a peer trickles a frame one byte every 100 ms. The
    /// idle timer stays fresh, but the frame timeout closes it with status 2 (and the
    /// DISCONNECT arrives although the peer goes on sending).
    func testPeerTricklingAFrameIsClosedByTheFrameTimeout() async throws {
        let limits = ServerLimits(idleTimeout: .milliseconds(300), frameTimeout: .milliseconds(400))
        try await withServer(limits: limits, silent) { _, address in
            let client = try await TestClient.connect(address)
            let notify = ByteBuffer(hex: Golden.notifyCheckClientIP)
            let frames: [RawFrame] = try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(hex: Golden.haproxyHello))
                let writer = Task {
                    for index in 0..<notify.readableBytes - 1 {
                        try await outbound.write(notify.getSlice(at: index, length: 1)!)
                        try await Task.sleep(nanoseconds: 100_000_000)
                    }
                }
                defer { writer.cancel() }
                var stream = FrameStream(inbound)
                var frames: [RawFrame] = []
                try await stream.read(into: &frames)
                return frames
            }
            XCTAssertEqual(frames.map(\.header.type), [.agentHello, .agentDisconnect])
            XCTAssertEqual(try status(of: frames), .timeout)
            let message = try Disconnect(frames[1]).message
            XCTAssertTrue(message.hasPrefix("frame incomplete after 0.4 s"), message)
        }
    }

    /// Issue 11: 12 kB ACKs for 14-byte NOTIFYs, a peer that never reads. The bytes the
    /// agent queues for it stay within --max-pending-output plus one ACK.
    func testLargeAcksForAPeerThatNeverReadsStayWithinTheMark() async throws {
        let cap = 64 * 1024
        let handled = NIOLockedValueBox(0)
        let worker: @Sendable () -> any SpoaWorker = {
            ClosureWorker { _, _, ack in
                handled.withLockedValue { $0 += 1 }
                try? ack.setVar(.transaction, "pad", .string(String(repeating: "x", count: 12_000)))
            }
        }
        try await withServer(workers: 1, limits: ServerLimits(maxPendingOutput: cap), worker) { server, address in
            let peer = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .channelOption(.autoRead, value: false)
                .connect(to: address).get()
            var bytes = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<3000 as Range<UInt64> { NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [])], to: &bytes) }
            try await peer.writeAndFlush(bytes)
            // Wait until the agent stops answering: the kernel buffers are full.
            var last = -1
            while handled.withLockedValue({ $0 }) != last {
                last = handled.withLockedValue { $0 }
                try await Task.sleep(nanoseconds: 300_000_000)
            }
            XCTAssertGreaterThan(last, 0)
            XCTAssertLessThan(last, 3000, "the peer never reads: the agent must have stopped")
            let connection = try XCTUnwrap(server.connections.openChannels.first)
            let held = try await connection.getOption(.bufferedWritableBytes).get()
            XCTAssertLessThanOrEqual(held, cap + 16_384, "\(held) bytes queued for a peer that does not read")
            try await peer.close()
        }
    }

    /// Issue 11: unfinished fragmented NOTIFYs are bounded across connections, not only
    /// per connection: connections each holding a first fragment are taken until the
    /// next would pass --max-fragment-memory; that one gets status 13, the others are
    /// left alone, and closed connections give their share back.
    func testUnfinishedFragmentsAreBoundedAcrossConnections() async throws {
        let bound = 20_000
        try await withServer(limits: ServerLimits(maxFragmentMemory: bound), silent) { server, address in
            func holdFragment(_ name: String) async throws -> ProbePeer {
                let peer = try await ProbePeer.connect(address, engineID: name, async: false)
                var bytes = ByteBuffer()
                NotifyFrame.write(streamID: 1, frameID: 1, messages: [("m", [("s", .string(String(repeating: "x", count: 2000)))])],
                                  flags: [], to: &bytes)
                let before = server.fragments.bytesInUse
                try await peer.channel.writeAndFlush(bytes)
                try await ProbePeer.waitUntil {
                    server.fragments.bytesInUse > before || peer.frames().last?.header.type == .agentDisconnect
                }
                return peer
            }
            var held: [ProbePeer] = []
            var refused: ProbePeer?
            for index in 0..<100 where refused == nil {
                let peer = try await holdFragment("e\(index)")
                if peer.frames().last?.header.type == .agentDisconnect { refused = peer } else { held.append(peer) }
            }
            let refusal = try Disconnect(XCTUnwrap(refused?.frames().last, "100 fragments of 2 kB within a 20 kB bound"))
            XCTAssertEqual(refusal.status, .resourceAllocation)
            XCTAssertTrue(refusal.message.contains("limit max_fragment_memory"), refusal.message)
            XCTAssertGreaterThan(held.count, 0)
            XCTAssertLessThanOrEqual(server.fragments.bytesInUse, bound)
            for peer in held { XCTAssertEqual(peer.frames().map(\.header.type), [.agentHello], "within the bound: left alone") }
            for peer in held { try await peer.channel.close() }
            try await ProbePeer.waitUntil { server.fragments.bytesInUse == 0 }
            let again = try await holdFragment("again")
            XCTAssertEqual(again.frames().map(\.header.type), [.agentHello], "room again once the others closed")
            try await again.channel.close()
            try await ProbePeer.waitUntil { server.fragments.bytesInUse == 0 }
        }
    }

    /// A peer that sends NOTIFYs but never reads its ACKs: the agent stops taking
    /// NOTIFYs in (bounded memory), and catches up once the peer reads.
    func testSlowReaderGetsBackpressureNotUnboundedBuffering() async throws {
        let handled = NIOLockedValueBox(0)
        let worker: @Sendable () -> any SpoaWorker = {
            ClosureWorker { _, _, ack in
                handled.withLockedValue { $0 += 1 }
                try? ack.setVar(.transaction, "pad", .string(String(repeating: "x", count: 4000)))
            }
        }
        let total = 20_000
        try await withServer(workers: 1, limits: ServerLimits(maxPendingOutput: 64 * 1024), worker) { _, address in
            var bytes = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<UInt64(total) {
                NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [])], to: &bytes)
            }
            let client = try await TestClient.connect(address)
            try await client.channel.executeThenClose { inbound, outbound in
                try await outbound.write(bytes)
                // Not reading: the agent must stall far below `total` (4 KB ACKs; kernel buffers hold a few MB).
                var previous = -1
                while handled.withLockedValue({ $0 }) != previous {
                    previous = handled.withLockedValue { $0 }
                    try await Task.sleep(nanoseconds: 300_000_000)
                }
                XCTAssertLessThan(previous, total / 2, "the agent kept reading while its ACKs piled up")
                // Reading resumes the flow: every NOTIFY gets its ACK.
                var reader = FrameReader()
                var acks = 0
                for try await chunk in inbound {
                    reader.append(chunk)
                    while let frame = try reader.next(maxFrameSize: 1 << 20) {
                        if frame.header.type == .ack { acks += 1 }
                    }
                    if acks == total { break }
                }
                XCTAssertEqual(acks, total)
            }
        }
    }

    func testDrainSaysGoodbyeWithStatus0() async throws {
        let server = try SpopServer(
            configuration: .init(host: "127.0.0.1", port: 0, workers: 1, limits: ServerLimits(drainTimeout: .seconds(5))),
            logger: Logger(label: "test"), makeWorker: { _ in ClosureWorker { _, _, _ in } }
        )
        let listener = try await server.bind()
        let client = try await TestClient.connect(listener.localAddress!)
        try await client.channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(hex: Golden.haproxyHello))
            var stream = FrameStream(inbound)
            var frames: [RawFrame] = []
            try await stream.read(into: &frames) { !$0.isEmpty }
            // What SIGTERM does: stop accepting, then drain.
            try await listener.close()
            async let drained: Void = server.drainAndShutdown()
            try await stream.read(into: &frames)
            try await drained
            XCTAssertEqual(frames.map(\.header.type), [.agentHello, .agentDisconnect])
            XCTAssertEqual(try Disconnect(frames[1]), Disconnect(status: .normal, message: "agent is shutting down"))
            XCTAssertEqual(server.connectionCount, 0)
        }
    }

    func testUnixSocketWithMode() async throws {
        let path = "/tmp/luaspoa-test-\(getpid()).sock"
        try await withServer(address: .unix(path: path, mode: 0o660), silent) { _, address in
            var info = stat()
            XCTAssertEqual(stat(path, &info), 0)
            XCTAssertEqual(info.st_mode & 0o777, 0o660)
            let frames = try await TestClient.exchange(address, ByteBuffer(hex: Golden.healthCheckHello), frames: 1)
            XCTAssertEqual(frames.first?.header.type, .agentHello)
        }
    }
}
