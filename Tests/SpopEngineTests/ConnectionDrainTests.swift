import Dispatch
import NIOCore
import NIOPosix
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// ConnectionRegistry.drain over real sockets: it ends when every connection has
/// closed, and within its timeout when connections cannot close.
final class ConnectionDrainTests: XCTestCase {
    /// Closes its connection when asked to drain, as SpopChannelHandler does after its goodbye.
    private final class CloseOnDrain: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ConnectionRegistry.DrainEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }
    }

    /// `n` accepted connections, admitted to a registry, served by a 2-loop group.
    private func withConnections(
        _ n: Int, _ body: (ConnectionRegistry, MultiThreadedEventLoopGroup) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let registry = ConnectionRegistry(maxConnections: 100)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                _ = registry.admit(channel)
                return channel.pipeline.addHandler(CloseOnDrain())
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var clients: [any Channel] = []
        for _ in 0..<n {
            clients.append(try await ClientBootstrap(group: group).connect(to: listener.localAddress!).get())
        }
        while registry.count < n { try await Task.sleep(nanoseconds: 1_000_000) }
        try await body(registry, group)
        for client in clients { try? await client.close() }
        try await listener.close()
        try await group.shutdownGracefully()
    }

    func testDrainEndsWhenEveryConnectionHasClosed() async throws {
        try await withConnections(4) { registry, _ in
            let cut = await registry.drain(timeout: .seconds(60))
            XCTAssertEqual(cut, 0)
            XCTAssertEqual(registry.count, 0)
        }
    }

    /// Every event loop is busy (as with a handler that never returns): no connection
    /// can close, and the drain still ends, cutting them all.
    func testDrainIsBoundedWhenTheEventLoopsAreStuck() async throws {
        try await withConnections(4) { registry, group in
            let release = DispatchSemaphore(value: 0)
            let loops = Array(group.makeIterator())
            for loop in loops { loop.execute { release.wait() } }
            let cut = await registry.drain(timeout: .milliseconds(200))
            for _ in loops { release.signal() }
            XCTAssertEqual(cut, 4)
        }
    }
}

/// The drain of a real SpopServer: NOTIFYs that reached the agent before its goodbye are answered first.
final class ServerDrainTests: XCTestCase {
    /// Issue 11: one busy worker loop; connection B's NOTIFYs wait in the socket buffer
    /// while A's are handled (20 ms each) when the drain starts. Both still get all 50 ACKs,
    /// then AGENT-DISCONNECT 0.
    func testNotifiesWaitingInTheSocketAreAnsweredBeforeTheGoodbye() async throws {
        let slow: @Sendable () -> any SpoaWorker = { ClosureWorker { _, _, _ in usleep(20_000) } }
        try await withServer(workers: 1, limits: ServerLimits(drainTimeout: .seconds(30)), slow) { server, address in
            let clients = [try await TestClient.connect(address), try await TestClient.connect(address)]
            let results = try await withThrowingTaskGroup(of: (Int, [RawFrame]).self) { group in
                for (index, client) in clients.enumerated() {
                    group.addTask {
                        try await client.channel.executeThenClose { inbound, outbound in
                            var stream = FrameStream(inbound)
                            var frames: [RawFrame] = []
                            try await outbound.write(ByteBuffer(hex: Golden.haproxyHello))
                            try await stream.read(into: &frames) { !$0.isEmpty }
                            // B sends while the loop is busy with A's burst (50 x 20 ms).
                            if index == 1 { try await Task.sleep(nanoseconds: 200_000_000) }
                            var notifies = ByteBuffer()
                            for id in 0..<50 as Range<UInt64> {
                                NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [])], to: &notifies)
                            }
                            try await outbound.write(notifies)
                            try await stream.read(into: &frames)
                            return (index, frames)
                        }
                    }
                }
                try await Task.sleep(nanoseconds: 400_000_000)
                let cut = await server.connections.drain(timeout: .seconds(30))
                XCTAssertEqual(cut, 0)
                var results: [Int: [RawFrame]] = [:]
                for try await (index, frames) in group { results[index] = frames }
                return results
            }
            for index in 0..<2 {
                let frames = try XCTUnwrap(results[index])
                XCTAssertEqual(frames.filter { $0.header.type == .ack }.count, 50, "connection \(index)")
                XCTAssertEqual(frames.last?.header.type, .agentDisconnect, "connection \(index)")
                if let last = frames.last { XCTAssertEqual(try Disconnect(last).status, .normal) }
            }
        }
    }
}
