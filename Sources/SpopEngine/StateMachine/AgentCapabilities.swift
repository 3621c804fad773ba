/// What this agent announces and enforces on every connection.
public struct AgentCapabilities: Hashable, Sendable {
    /// Largest frame the agent accepts and sends (LEN, without the 4-byte prefix).
    public var maxFrameSize: Int
    /// Several NOTIFYs in flight per connection; ACKs may leave in any order.
    public var pipelining: Bool
    /// Reassembly of fragmented NOTIFYs (HAProxy 2.6 to 3.0 send them only if announced).
    public var fragmentation: Bool
    /// Bound on a reassembled NOTIFY payload; a larger one is refused with status 3.
    public var maxReassembledSize: Int
    /// ACKs may leave on any connection of the same engine-id (HAProxy 2.6 to 3.0;
    /// off by default). Where they go is `SpopServerConfiguration.asyncAck`.
    public var async: Bool

    public static let defaultMaxFrameSize = 16380

    public init(
        maxFrameSize: Int = Self.defaultMaxFrameSize, pipelining: Bool = true, fragmentation: Bool = true,
        maxReassembledSize: Int = 1 << 20, async: Bool = false
    ) {
        self.async = async
        self.maxFrameSize = maxFrameSize
        self.pipelining = pipelining
        self.fragmentation = fragmentation
        self.maxReassembledSize = maxReassembledSize
    }

    /// The capability tokens of AGENT-HELLO. `async` only on request (HAProxy 3.1+ dropped it).
    var announced: [String] {
        (pipelining ? ["pipelining"] : []) + (fragmentation ? ["fragmentation"] : []) + (async ? ["async"] : [])
    }
}
