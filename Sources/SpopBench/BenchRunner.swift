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

        var channels: [any Channel] = []
        var pipelining = true
        for index in 0..<config.connections {
            let loop = loops[index % loops.count]
            let recorder = recorders[index % loops.count]
            let handshake = loop.makePromise(of: Bool.self)
            let plan = BenchConnectionHandler.Plan(
                body: config.message.encodedBody, inFlight: max(1, config.inFlight), check: AckCheck(expected: config.expected),
                maxFrameSize: config.maxFrameSize, engineID: "luaspoa-bench-\(index + 1)")
            let channel: any Channel
            do {
                channel = try await ClientBootstrap(group: loop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                BenchConnectionHandler(plan: plan, recorder: recorder.value, handshake: handshake))
                        }
                    }
                    .connect(host: config.host, port: config.port).get()
            } catch {
                handshake.fail(error)
                await close(channels)
                throw BenchRunError.connect("\(config.host):\(config.port): \(error)")
            }
            channels.append(channel)
            do { pipelining = try await handshake.futureResult.get() && pipelining } catch {
                await close(channels)
                throw error
            }
        }

        try await Task.sleep(nanoseconds: UInt64(config.warmup * 1e9))
        try await onEveryLoop(recorders) { $0.reset(); $0.measuring = true }
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
        for channel in channels {
            var buffer = channel.allocator.buffer(capacity: 64)
            Disconnect(status: .normal, message: "benchmark done").write(as: .haproxyDisconnect, to: &buffer)
            try? await channel.writeAndFlush(buffer).get()
            try? await channel.close().get()
        }
    }
}
