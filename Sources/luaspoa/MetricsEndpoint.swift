import Logging
import LuaRuntime
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import SpopEngine

/// `--metrics HOST:PORT`: Prometheus text at `/metrics`, `ok` at `/health`, over
/// plain NIO HTTP/1.1 on its own thread (scrapes never run on a worker's loop).
/// `bind` runs before serving, so an address in use stops the agent at start.
struct MetricsEndpoint: Service {
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup

    static func bind(
        address: ListenAddress, registry: PrometheusCollectorRegistry, beforeScrape: @escaping @Sendable () -> Void, logger: Logger
    ) async throws -> MetricsEndpoint {
        let (host, port) = try address.tcp()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    // On the channel's own loop: the handler never crosses threads.
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, beforeScrape: beforeScrape))
                    }
                }
                .bind(host: host, port: port).get()
            logger.info("metrics on http://\(host):\(channel.localAddress?.port ?? port)/metrics")
            return MetricsEndpoint(channel: channel, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw CommandFailure("--metrics: cannot listen on \(address): \(socketErrorText(error))")
        }
    }

    func run() async throws {
        try? await channel.closedOnShutdown()
        try await group.shutdownGracefully()
    }
}

/// Answers one request per message: GET /metrics, GET /health, else 404 (405 for other methods).
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let beforeScrape: @Sendable () -> Void
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, beforeScrape: @escaping @Sendable () -> Void) {
        self.registry = registry
        self.beforeScrape = beforeScrape
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            let (status, type, body) = answer(head)
            var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.utf8.count)")])
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    private func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, "text/plain", "GET only\n") }
        switch head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri {
        case "/metrics":
            beforeScrape()
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.emitToString() + ScriptMetrics.render())
        case "/health", "/healthz":
            return (.ok, "text/plain", "ok\n")
        default:
            return (.notFound, "text/plain", "not found: try /metrics or /health\n")
        }
    }
}
