import Logging
import NIOCore
import NIOPosix
import XCTest
@testable import SpopEngine

/// Any worker, for tests that pick one at run time (a server has one worker type).
final class AnyWorker: SpoaWorker {
    let base: any SpoaWorker
    init(_ base: any SpoaWorker) { self.base = base }

    func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        base.handle(notify, connection: connection, ack: &ack)
    }
}

/// Runs `body` against a real SpopServer on a loopback port (or a Unix socket).
func withServer(
    address: SpopListenAddress = .tcp(host: "127.0.0.1", port: 0), workers: Int = 2, limits: ServerLimits = .init(),
    capabilities: AgentCapabilities = .init(), asyncAck: AsyncAckMode = .own,
    busyPoll: TimeAmount = .zero,
    _ worker: @escaping @Sendable () -> any SpoaWorker,
    _ body: (SpopServer<AnyWorker>, SocketAddress) async throws -> Void
) async throws {
    var configuration = SpopServerConfiguration(address: address, workers: workers, capabilities: capabilities, limits: limits)
    configuration.asyncAck = asyncAck
    configuration.busyPoll = busyPoll
    let server = try SpopServer(
        configuration: configuration, logger: Logger(label: "test"),
        makeWorker: { _ in AnyWorker(worker()) }
    )
    let channel = try await server.bind()
    do {
        try await body(server, channel.localAddress!)
    } catch {
        try? await channel.close()
        try await server.shutdown()
        throw error
    }
    try await channel.close()
    try await server.shutdown()
}

/// A raw SPOP peer playing HAProxy's side.
struct TestClient {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(_ address: SocketAddress) async throws -> TestClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return TestClient(channel: channel)
    }

    /// Sends `bytes`, then reads until the agent closes or `frames` frames arrived.
    static func exchange(_ address: SocketAddress, _ bytes: ByteBuffer, frames expected: Int) async throws -> [RawFrame] {
        try await connect(address).channel.executeThenClose { inbound, outbound in
            if bytes.readableBytes > 0 { try await outbound.write(bytes) }
            var stream = FrameStream(inbound)
            var frames: [RawFrame] = []
            try await stream.read(into: &frames) { $0.count >= expected }
            return frames
        }
    }
}

/// The agent's replies cut into frames, read as far as a test needs.
struct FrameStream {
    private var chunks: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var reader = FrameReader()

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) { chunks = inbound.makeAsyncIterator() }

    /// Appends frames until `done(frames)` holds or the agent closes.
    mutating func read(into frames: inout [RawFrame], until done: ([RawFrame]) -> Bool = { _ in false }) async throws {
        while !done(frames), let chunk = try await chunks.next() {
            reader.append(chunk)
            while let frame = try reader.next(maxFrameSize: 1 << 20) { frames.append(frame) }
        }
    }
}
