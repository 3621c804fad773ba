import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A TCP server speaking SPOP 2.0, with one `SpoaWorker` per event-loop thread.
///
/// Connections are pinned to an event loop and their NOTIFYs are handled inline by
/// that loop's worker: there is no hand-off between threads on the hot path.
public final class SpopServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Event-loop threads, each with its own worker.
        public var workers: Int
        public var capabilities: AgentCapabilities

        public init(host: String = "127.0.0.1", port: Int = 12345, workers: Int = System.coreCount, capabilities: AgentCapabilities = .init()) {
            self.host = host
            self.port = port
            self.workers = workers
            self.capabilities = capabilities
        }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let workers: [NIOLoopBound<any SpoaWorker>]

    /// Builds one worker per thread, on that thread; a failing factory fails the init.
    public init(
        configuration: Configuration, logger: Logger,
        makeWorker: @escaping @Sendable (_ index: Int) throws -> any SpoaWorker
    ) throws {
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.workers))
        var workers: [NIOLoopBound<any SpoaWorker>] = []
        do {
            for (index, loop) in group.makeIterator().enumerated() {
                workers.append(try loop.submit { NIOLoopBound(try makeWorker(index), eventLoop: loop) }.wait())
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.workers = workers
    }

    /// Runs `body` for every worker on that worker's own event-loop thread, between
    /// two frames (never while the worker handles one), and returns when all ran.
    /// This is how a worker's state is replaced while connections stay open.
    public func onEachWorker(_ body: @escaping @Sendable (_ index: Int, _ worker: any SpoaWorker) -> Void) async throws {
        for (index, worker) in workers.enumerated() {
            try await worker.eventLoop.submit { body(index, worker.value) }.get()
        }
    }

    /// Binds and returns the listening channel; `run()` does this and waits for shutdown.
    public func bind() async throws -> any Channel {
        let capabilities = configuration.capabilities
        let logger = logger
        let workers = workers
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard let worker = workers.first(where: { $0.eventLoop === channel.eventLoop }) else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        SpopChannelHandler(capabilities: capabilities, worker: worker.value, logger: logger)
                    )
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through a ServiceGroup) or cancellation.
    public func run() async throws {
        let channel = try await bind()
        logger.info("listening on \(channel.localAddress?.description ?? "?") with \(workers.count) workers")
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        logger.info("stopped")
        try await shutdown()
    }

    public func shutdown() async throws {
        try await group.shutdownGracefully()
    }
}
