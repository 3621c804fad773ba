import Dispatch
import NIOCore
import NIOPosix
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
