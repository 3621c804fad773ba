import ArgumentParser
import NIOCore
import SpopEngine

/// The limits that keep one bad peer from hurting the others, and the drain on stop.
struct ServerOptions: ParsableArguments {
    @Option(help: "Open connections at most; more are answered with AGENT-DISCONNECT 13 and closed.")
    var maxConnections = ServerLimits().maxConnections

    @Option(help: ArgumentHelp("Seconds a new connection has to send HAPROXY-HELLO.", valueName: "seconds"))
    var helloTimeout = 5.0

    @Option(help: ArgumentHelp("Seconds without any frame before a connection is closed (status 2); 0 = never.", valueName: "seconds"))
    var idleTimeout = 600.0

    @Option(help: ArgumentHelp(
        "Seconds a frame that started arriving has to complete (status 2, a peer trickling bytes); 0 = never.",
        valueName: "seconds"))
    var frameTimeout = 30.0

    @Option(help: ArgumentHelp(
        "Bytes of ACKs held for a peer that does not read; above it that connection is not read (backpressure).",
        valueName: "bytes"))
    var maxPendingOutput = ServerLimits().maxPendingOutput

    @Option(name: .customLong("max-pending"), help: ArgumentHelp(
        "Handlers waiting (suspended) at once per worker; at the limit that worker reads no new frames until some finish.",
        valueName: "n"))
    var maxPendingHandlers = ServerLimits().maxPendingHandlers

    @Option(help: ArgumentHelp(
        "Bytes all unfinished fragmented NOTIFYs may hold together; the connection that would pass it gets status 13.",
        valueName: "bytes"))
    var maxFragmentMemory = ServerLimits().maxFragmentMemory

    @Option(help: ArgumentHelp("Seconds SIGTERM/SIGINT waits for connections to close; the agent exits (0) at most 2 s later even if a worker is stuck; a second signal exits at once.",
                               valueName: "seconds"))
    var drainTimeout = 5.0

    @Option(help: ArgumentHelp("Octal permissions of a unix: socket, e.g. 660.", valueName: "mode"))
    var socketMode: String?

    func validate() throws {
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        for (name, value) in [("--hello-timeout", helloTimeout), ("--idle-timeout", idleTimeout), ("--frame-timeout", frameTimeout),
                              ("--drain-timeout", drainTimeout)] {
            guard value >= 0, value < 1e6 else { throw ValidationError("\(name) must be between 0 and 1000000 seconds") }
        }
        guard helloTimeout > 0 else { throw ValidationError("--hello-timeout must be above 0") }
        guard maxFragmentMemory >= 0 else { throw ValidationError("--max-fragment-memory must be at least 0") }
        guard maxPendingHandlers >= 1 else { throw ValidationError("--max-pending must be at least 1") }
        guard maxPendingOutput >= 4096 else { throw ValidationError("--max-pending-output must be at least 4096 bytes") }
        if let socketMode, UInt32(socketMode, radix: 8).map({ $0 <= 0o777 }) != true {
            throw ValidationError("--socket-mode must be octal permissions such as 660, got \(socketMode)")
        }
    }

    var limits: ServerLimits {
        ServerLimits(
            maxConnections: maxConnections, helloTimeout: .seconds(helloTimeout), idleTimeout: .seconds(idleTimeout),
            maxPendingOutput: maxPendingOutput, drainTimeout: .seconds(drainTimeout), frameTimeout: .seconds(frameTimeout),
            maxFragmentMemory: maxFragmentMemory, maxPendingHandlers: maxPendingHandlers
        )
    }

    func address(_ listen: ListenAddress) -> SpopListenAddress {
        guard case .unix(let path, _) = listen.address else { return listen.address }
        return .unix(path: path, mode: socketMode.flatMap { UInt32($0, radix: 8) })
    }
}

extension TimeAmount {
    static func seconds(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}
