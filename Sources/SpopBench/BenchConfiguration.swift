import SpopEngine

/// What one `luaspoa bench` run does: where, how many connections and frames in
/// flight, for how long, with which message, and what every ACK must contain.
public struct BenchConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var connections: Int
    /// NOTIFYs in flight per connection; 1 when the agent does not announce pipelining.
    public var inFlight: Int
    /// Seconds measured, after `warmup` seconds that are not.
    public var duration: Double
    public var warmup: Double
    /// Event-loop threads of the load generator.
    public var threads: Int
    public var message: BenchMessage
    /// A variable every ACK must set or unset, or nil to check only the ids.
    public var expected: ExpectedVariable?
    public var maxFrameSize: Int

    public init(
        host: String = "127.0.0.1", port: Int = 12345, connections: Int = 1, inFlight: Int = 1,
        duration: Double = 10, warmup: Double = 1, threads: Int = 1,
        message: BenchMessage = .ipv4(), expected: ExpectedVariable? = nil, maxFrameSize: Int = 16380
    ) {
        self.host = host
        self.port = port
        self.connections = connections
        self.inFlight = inFlight
        self.duration = duration
        self.warmup = warmup
        self.threads = threads
        self.message = message
        self.expected = expected
        self.maxFrameSize = maxFrameSize
    }
}

/// "sess.ip_score": the scope and the name as they appear in an ACK's actions.
public struct ExpectedVariable: Sendable, CustomStringConvertible {
    public var scope: VarScope
    public var name: [UInt8]

    /// Parses "scope.name" with scope one of proc, sess, txn, req, res.
    public init?(_ text: String) {
        guard let dot = text.firstIndex(of: "."),
              let scope = VarScope.allCases.first(where: { $0.name == text[..<dot] })
        else { return nil }
        let name = text[text.index(after: dot)...]
        guard !name.isEmpty else { return nil }
        self.scope = scope
        self.name = Array(name.utf8)
    }

    public var description: String { "\(scope.name).\(String(decoding: name, as: UTF8.self))" }
}
