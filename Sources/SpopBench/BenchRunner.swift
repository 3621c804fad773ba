import NIOCore
import NIOPosix
import SpopEngine

public enum BenchRunError: Error, CustomStringConvertible {
    case handshake(String)
    case connect(String)

    public var description: String {
        switch self {
        case .handshake(let why): "handshake failed: \(why)"
        case .connect(let why): "cannot connect: \(why)"
        }
    }
}

/// Opens the connections, lets them warm up, measures for the configured duration,
/// then stops them and merges what every thread recorded.
public struct BenchRunner {
    public let configuration: BenchConfiguration

    public init(configuration: BenchConfiguration) { self.configuration = configuration }

    public func run() async throws -> BenchResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        do {
            let result = try await run(on: group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func run(on group: MultiThreadedEventLoopGroup) async throws -> BenchResult {
        let config = configuration
        let loops = Array(group.makeIterator())
        var recorders: [NIOLoopBound<BenchRecorder>] = []
        for loop in loops {
            recorders.append(try await loop.submit { NIOLoopBound(BenchRecorder(), eventLoop: loop) }.get())
        }

        // All connections start at once: opened one by one, the last would queue
        // behind the load of the first ones.
        let attempts = (0..<config.connections).map { index in
            connect(index, loop: loops[index % loops.count], recorder: recorders[index % loops.count])
        }
        var channels: [any Channel] = []
        var pipelining = true
        var failure: (any Error)?
        for (connecting, handshake) in attempts {
            do {
                channels.append(try await connecting.get())
                pipelining = try await handshake.get() && pipelining
            } catch {
                failure = failure ?? error
            }
        }
        if let failure {
            await close(channels)
            throw failure
        }

        try await Task.sleep(nanoseconds: UInt64(config.warmup * 1e9))
        _ = try await onEveryLoop(recorders) { $0.reset(); $0.measuring = true }
        let start = NIODeadline.now()
        try await Task.sleep(nanoseconds: UInt64(config.duration * 1e9))
        let samples = try await onEveryLoop(recorders) { recorder -> BenchSample in
            recorder.measuring = false
            recorder.stopping = true
            return recorder.sample
        }
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        await close(channels)

        var total = BenchSample()
        for sample in samples { total.merge(sample) }
        return BenchResult(configuration: config, pipelining: pipelining, elapsedSeconds: elapsed, sample: total)
    }

    /// Starts one connection; the second future succeeds with "pipelining negotiated".
    private func connect(
        _ index: Int, loop: any EventLoop, recorder: NIOLoopBound<BenchRecorder>
    ) -> (EventLoopFuture<any Channel>, EventLoopFuture<Bool>) {
        let config = configuration
        let handshake = loop.makePromise(of: Bool.self)
        let plan = BenchConnectionHandler.Plan(
            body: config.message.encodedBody, inFlight: max(1, config.inFlight), check: AckCheck(expected: config.expected),
            maxFrameSize: config.maxFrameSize, engineID: "luaspoa-bench-\(index + 1)")
        let connecting = ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        BenchConnectionHandler(plan: plan, recorder: recorder.value, handshake: handshake))
                }
            }
            .connect(host: config.host, port: config.port)
            .flatMapErrorThrowing { error -> any Channel in
                handshake.fail(error)
                throw BenchRunError.connect("\(config.host):\(config.port): \(error)")
            }
        return (connecting, handshake.futureResult)
    }

    private func onEveryLoop<T: Sendable>(
        _ recorders: [NIOLoopBound<BenchRecorder>], _ body: @escaping @Sendable (BenchRecorder) -> T
    ) async throws -> [T] {
        var results: [T] = []
        for recorder in recorders {
            results.append(try await recorder.eventLoop.submit { body(recorder.value) }.get())
        }
        return results
    }

    /// HAPROXY-DISCONNECT then close, as HAProxy does when it stops.
    private func close(_ channels: [any Channel]) async {
        var buffer = ByteBuffer()
        Disconnect(status: .normal, message: "benchmark done").write(as: .haproxyDisconnect, to: &buffer)
        let closing = channels.map { channel in
            channel.writeAndFlush(buffer).flatMap { channel.close() }
        }
        for future in closing { try? await future.get() }
    }
}
