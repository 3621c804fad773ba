import NIOCore

/// Bounds that keep one bad peer from hurting the others. Each has a flag in the CLI.
public struct ServerLimits: Hashable, Sendable {
    /// Open connections at most; a connection over the limit gets AGENT-DISCONNECT 13 and is closed.
    public var maxConnections: Int
    /// A peer must complete HAPROXY-HELLO this soon after connecting (slowloris guard).
    public var helloTimeout: TimeAmount
    /// A handshaken connection with no frame in either direction for this long is closed
    /// (status 2). Zero disables it; HAProxy's own `timeout idle` normally acts first.
    public var idleTimeout: TimeAmount
    /// A frame that started arriving must be complete this soon (status 2); zero disables it.
    /// HAProxy writes a frame at once, so only a stalled or hostile peer hits it.
    public var frameTimeout: TimeAmount
    /// Bytes of ACKs a connection may hold for a peer that does not read; above this
    /// the agent stops reading that connection until the peer catches up (backpressure:
    /// the frames in flight per connection are bounded, nothing queues without bound).
    public var maxPendingOutput: Int
    /// Bytes all unfinished fragmented NOTIFYs may hold together; a connection whose
    /// fragment would pass it gets AGENT-DISCONNECT 13 and is closed.
    public var maxFragmentMemory: Int
    /// Handlers suspended at once per worker (event loop), all its connections together;
    /// at the limit the worker stops reading new frames until some finish.
    public var maxPendingHandlers: Int
    /// On SIGTERM/SIGINT, how long connections get to be told goodbye before being cut.
    public var drainTimeout: TimeAmount

    public init(
        maxConnections: Int = 10_000, helloTimeout: TimeAmount = .seconds(5), idleTimeout: TimeAmount = .seconds(600),
        maxPendingOutput: Int = 1 << 20, drainTimeout: TimeAmount = .seconds(5), frameTimeout: TimeAmount = .seconds(30),
        maxFragmentMemory: Int = 64 << 20, maxPendingHandlers: Int = 1000
    ) {
        self.maxPendingHandlers = maxPendingHandlers
        self.maxFragmentMemory = maxFragmentMemory
        self.frameTimeout = frameTimeout
        self.maxConnections = maxConnections
        self.helloTimeout = helloTimeout
        self.idleTimeout = idleTimeout
        self.maxPendingOutput = maxPendingOutput
        self.drainTimeout = drainTimeout
    }
}
