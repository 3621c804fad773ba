#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// What a `SpopServer` listens on, with how many workers, announcing what, within which limits.
public struct SpopServerConfiguration: Sendable {
    public var address: SpopListenAddress
    /// Event-loop threads, each with its own worker.
    public var workers: Int
    public var capabilities: AgentCapabilities
    public var limits: ServerLimits
    /// Where ACKs leave when `async` is negotiated (only with `capabilities.async`).
    public var asyncAck: AsyncAckMode = .own
    /// Keep a CPU awake this long after each read (see `BusyPoller`); zero: off.
    public var busyPoll: TimeAmount = .zero
    /// The start of every metric name (`luaspoa_connections_open`, ...).
    public var metricPrefix = "luaspoa_"
    /// Runs when the server stops, after the workers' `stop()` and before their
    /// threads end: what the workers share and what needs their loops to close
    /// (connections of a client used by every worker).
    public var beforeThreadsStop: (@Sendable () async -> Void)?

    public init(
        address: SpopListenAddress, workers: Int = System.coreCount, capabilities: AgentCapabilities = .init(),
        limits: ServerLimits = .init()
    ) {
        self.address = address
        self.workers = workers
        self.capabilities = capabilities
        self.limits = limits
    }

    public init(
        host: String = "127.0.0.1", port: Int = 12345, workers: Int = System.coreCount, capabilities: AgentCapabilities = .init(),
        limits: ServerLimits = .init()
    ) {
        self.init(address: .tcp(host: host, port: port), workers: workers, capabilities: capabilities, limits: limits)
    }
}

/// A TCP server speaking SPOP 2.0, with one `Worker` per event-loop thread.
///
/// Connections are pinned to an event loop and their NOTIFYs are handled inline by
/// that loop's worker: there is no hand-off between threads on the hot path.
public final class SpopServer<Worker: SpoaWorker>: Service, Sendable {
    public typealias Configuration = SpopServerConfiguration

    public let configuration: Configuration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    /// Accepts connections on its own thread, so a worker busy in a long handler
    /// never stops new connections from being taken in.
    private let acceptor: MultiThreadedEventLoopGroup
    private let workers: [NIOLoopBound<Worker>]
    /// Each worker's --max-pending budget, shared by its loop's connections.
    private let pendingBudgets: [NIOLoopBound<PendingHandlerBudget>]
    let connections: ConnectionRegistry
    private let busyPoller: BusyPoller?
    /// Made here, after `MetricsSystem.bootstrap`, once for all connections.
    private let metrics: ServerMetrics
    /// Bytes of unfinished fragmented NOTIFYs, all connections together.
    let fragments: FragmentBudget
    /// What the stop is waiting for, for the log line of a shutdown that overran its deadline.
    private let stopping = NIOLockedValueBox<String?>(nil)

    /// Builds one worker per thread, on that thread; a failing factory fails the init.
    public init(
        configuration: Configuration, logger: Logger,
        makeWorker: @escaping @Sendable (_ index: Int) throws -> Worker
    ) throws {
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.workers))
        var workers: [NIOLoopBound<Worker>] = []
        var budgets: [NIOLoopBound<PendingHandlerBudget>] = []
        let maxPending = configuration.limits.maxPendingHandlers
        let metrics = ServerMetrics(prefix: configuration.metricPrefix)
        self.metrics = metrics
        do {
            for (index, loop) in group.makeIterator().enumerated() {
                workers.append(try loop.submit { NIOLoopBound(try makeWorker(index), eventLoop: loop) }.wait())
                budgets.append(try loop.submit {
                    NIOLoopBound(PendingHandlerBudget(limit: maxPending, eventLoop: loop, worker: index, logger: logger, metrics: metrics),
                                 eventLoop: loop)
                }.wait())
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.acceptor = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.workers = workers
        self.pendingBudgets = budgets
        self.busyPoller = configuration.busyPoll > .zero ? BusyPoller(window: configuration.busyPoll, logger: logger) : nil
        self.connections = ConnectionRegistry(maxConnections: configuration.limits.maxConnections)
        self.fragments = FragmentBudget(limit: configuration.limits.maxFragmentMemory)
    }

    /// Connections open right now.
    public var connectionCount: Int { connections.count }

    /// Runs `body` for every worker on that worker's own event-loop thread, between
    /// two frames (never while the worker handles one), and returns when all ran.
    /// This is how a worker's state is replaced while connections stay open.
    public func onEachWorker(_ body: @escaping @Sendable (_ index: Int, _ worker: Worker) -> Void) async throws {
        for (index, worker) in workers.enumerated() {
            try await worker.eventLoop.submit { body(index, worker.value) }.get()
        }
    }

    /// Binds and returns the listening channel; `run()` does this and waits for shutdown.
    public func bind() async throws -> any Channel {
        let capabilities = configuration.capabilities
        let limits = configuration.limits
        let logger = logger
        let workers = workers
        let pendingBudgets = pendingBudgets
        let busyPoller = busyPoller
        let connections = connections
        let metrics = metrics
        let fragments = fragments
        let asyncAcks = capabilities.async
            ? AsyncAckRouting(mode: configuration.asyncAck, maxPendingOutput: limits.maxPendingOutput, metrics: metrics, logger: logger)
            : nil
        let bootstrap = ServerBootstrap(group: acceptor, childGroup: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)  // socketOption() would mean SOL_SOCKET: SO_DEBUG
            .childChannelOption(
                .writeBufferWaterMark, value: .init(low: limits.maxPendingOutput / 2, high: limits.maxPendingOutput)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard connections.admit(channel) else {
                        metrics.limitHit(.maxConnections)
                        logger.warning("connection refused: \(limits.maxConnections) connections open (limit max_connections)")
                        let refusal = ConnectionRefusal(reason: "connection limit \(limits.maxConnections) reached")
                        return try channel.pipeline.syncOperations.addHandler(refusal)
                    }
                    guard let worker = workers.first(where: { $0.eventLoop === channel.eventLoop }),
                          let budget = pendingBudgets.first(where: { $0.eventLoop === channel.eventLoop }) else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        SpopChannelHandler(capabilities: capabilities, limits: limits, worker: worker.value, logger: logger,
                                           metrics: metrics, asyncAcks: asyncAcks, busyPoller: busyPoller,
                                           fragments: fragments, pendingBudget: budget.value)
                    )
                }
            }
        let address = configuration.address
        switch address {
        case .tcp(let host, let port):
            do {
                return try await bootstrap.bind(host: host, port: port).get()
            } catch {
                throw SpopServerError("cannot listen on \(address): \(socketErrorText(error))")
            }
        case .unix(let path, let mode):
            let channel: Channel
            do {
                channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            } catch is UnixDomainSocketPathWrongType {
                throw SpopServerError("\(path) exists and is not a socket")
            } catch {
                throw SpopServerError("cannot listen on \(address): \(socketErrorText(error))")
            }
            if let mode, chmod(path, mode) != 0 {
                try? await channel.close()
                throw SpopServerError("cannot set mode \(String(mode, radix: 8)) on \(path): errno \(errno)")
            }
            return channel
        }
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through a ServiceGroup) or cancellation.
    public func run() async throws {
        let channel = try await bind()
        logger.info("listening on \(configuration.address) with \(workers.count) workers")
        try await channel.closedOnShutdown()
        try await drainAndShutdown()
    }

    /// Stops after the listener closed: every connection gets AGENT-DISCONNECT 0
    /// (its NOTIFYs are answered as they arrive, so nothing is in flight), bounded by
    /// the drain timeout; then the threads stop.
    public func drainAndShutdown() async throws {
        let open = connections.count
        stopping.withLockedValue { $0 = "draining \(open) connections" }
        if open > 0 { logger.info("draining \(open) connections") }
        let cut = await connections.drain(timeout: configuration.limits.drainTimeout)
        if cut > 0 {
            metrics.limitHit(.drainTimeout, count: cut)
            logger.warning("\(cut) connections did not close within the drain timeout and were cut")
        }
        if case .unix(let path, _) = configuration.address { unlink(path) }
        try await shutdown()
        logger.info("stopped")
    }

    public func shutdown() async throws {
        busyPoller?.stop()
        stopping.withLockedValue { $0 = "stopping the accept thread" }
        try await acceptor.shutdownGracefully()
        // A worker stuck in a handler (a script that never returns) never gets here.
        stopping.withLockedValue { $0 = "stopping the \(workers.count) worker event loops (one is stuck in a handler)" }
        for worker in workers {
            try? await worker.eventLoop.submit { worker.value.stop() }.get()
        }
        await configuration.beforeThreadsStop?()
        try await group.shutdownGracefully()
        stopping.withLockedValue { $0 = "stopped" }
    }

    /// The step the stop is at: nil before it began, "stopped" once the threads ended.
    public var shutdownStage: String? { stopping.withLockedValue { $0 } }
}

/// Where the agent listens: TCP (loopback by default) or a Unix domain socket.
public enum SpopListenAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    /// `mode` (e.g. 0o660) is applied to the socket file after binding.
    case unix(path: String, mode: mode_t?)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path, _): "unix:\(path)"
        }
    }
}

public struct SpopServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
