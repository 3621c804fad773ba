import CoreMetrics

/// The engine's metric objects, made once per server from whatever `MetricsSystem`
/// was bootstrapped (nothing is exported unless one is), every name starting with
/// `prefix` ("luaspoa_" for luaspoa; a library user picks its own).
///
/// Handlers never create metrics: they count into a `ConnectionMetrics` and flush
/// once per read burst, so the cost per frame is an integer increment.
public final class ServerMetrics: Sendable {
    let prefix: String
    let factory: any MetricsFactory
    let connectionsOpen: Meter
    let connectionsTotal: Counter
    let framesInFlight: Meter
    let closedByReason: [CloseReason: Counter]
    let received: [Counter]  // indexed by FrameKind.rawValue
    let sent: [Counter?]  // agent frame types only
    /// AGENT-DISCONNECT frames sent, by status code (0...13, then "other").
    let disconnectsSent: [Counter]
    /// ACK frames written on a sibling connection of the same engine-id (`async`), by reason.
    let acksRerouted: [AckRouting.Reason: Counter]
    /// ACK frames of a failed connection that no sibling could take.
    let acksRerouteFailed: Counter
    /// `limit_hits_total{limit}`: an operator sees which bound is hit without reading logs.
    private let limitHits: [Limit: Counter]
    /// False when no metrics backend was bootstrapped: connections then skip the
    /// per-frame counting, whose only reader would be a no-op handler.
    let countsFrames: Bool

    public init(prefix: String = "luaspoa_", factory: any MetricsFactory = MetricsSystem.factory) {
        self.prefix = prefix
        self.factory = factory
        func counter(_ name: String, _ dimensions: [(String, String)] = []) -> Counter {
            Counter(label: prefix + name, dimensions: dimensions, factory: factory)
        }
        countsFrames = !(factory is NOOPMetricsHandler)
        connectionsOpen = Meter(label: prefix + "connections_open", factory: factory)
        connectionsTotal = counter("connections_total")
        framesInFlight = Meter(label: prefix + "frames_in_flight", factory: factory)
        acksRerouteFailed = counter("acks_reroute_failed_total")
        closedByReason = Dictionary(uniqueKeysWithValues: CloseReason.allCases.map {
            ($0, counter("connections_closed_total", [("reason", $0.rawValue)]))
        })
        received = FrameKind.allCases.map { counter("frames_received_total", [("type", $0.label)]) }
        sent = FrameKind.allCases.map { kind in
            [.agentHello, .agentDisconnect, .ack].contains(kind) ? counter("frames_sent_total", [("type", kind.label)]) : nil
        }
        acksRerouted = Dictionary(uniqueKeysWithValues: AckRouting.Reason.allCases.map {
            ($0, counter("acks_rerouted_total", [("reason", $0.rawValue)]))
        })
        disconnectsSent = (0...Self.lastKnownStatus + 1).map {
            counter("agent_disconnects_total", [("status", $0 > Self.lastKnownStatus ? "other" : "\($0)")])
        }
        limitHits = Dictionary(uniqueKeysWithValues: Limit.allCases.map { ($0, counter("limit_hits_total", [("limit", $0.rawValue)])) })
    }

    /// The bounds of `ServerLimits`, as the `limit` label (and in log lines) names them.
    public enum Limit: String, CaseIterable, Sendable {
        case maxConnections = "max_connections"
        case helloTimeout = "hello_timeout"
        case idleTimeout = "idle_timeout"
        case frameTimeout = "frame_timeout"
        case maxFragmentMemory = "max_fragment_memory"
        case maxPendingOutput = "max_pending_output"
        case maxPendingHandlers = "max_pending"
        case drainTimeout = "drain_timeout"
    }

    func limitHit(_ limit: Limit, count: Int = 1) {
        limitHits[limit]?.increment(by: Int64(count))
    }

    /// `handlers_pending{worker}`.
    func handlersPending(worker: Int) -> Meter {
        Meter(label: prefix + "handlers_pending", dimensions: [("worker", "\(worker)")], factory: factory)
    }

    static let lastKnownStatus = 13

    /// Why a connection ended (the `reason` label).
    public enum CloseReason: String, CaseIterable, Sendable {
        case peerClosed = "peer_closed"
        case haproxyDisconnect = "haproxy_disconnect"
        case protocolError = "protocol_error"
        case healthCheck = "health_check"
        case ioError = "io_error"
        /// The agent closed an idle or silent connection (status 2).
        case timeout
        /// The agent stopped or drained (status 0 without HAProxy asking).
        case drain

        /// The reason of an AGENT-DISCONNECT with `status`, sent on the agent's own
        /// initiative or in answer to HAProxy's DISCONNECT.
        init(agentDisconnect status: SpopStatus, answeringPeer: Bool) {
            if answeringPeer { self = .haproxyDisconnect }
            else if status == .normal { self = .drain }
            else if status == .timeout { self = .timeout }
            else { self = .protocolError }
        }
    }

    /// Frame types as metric labels; unknown codes share one.
    enum FrameKind: Int, CaseIterable {
        case haproxyHello, haproxyDisconnect, notify, unset, agentHello, agentDisconnect, ack, unknown

        init(_ type: FrameType?) {
            switch type {
            case .haproxyHello: self = .haproxyHello
            case .haproxyDisconnect: self = .haproxyDisconnect
            case .notify: self = .notify
            case .unset: self = .unset
            case .agentHello: self = .agentHello
            case .agentDisconnect: self = .agentDisconnect
            case .ack: self = .ack
            case nil: self = .unknown
            }
        }

        var label: String {
            switch self {
            case .haproxyHello: "haproxy-hello"
            case .haproxyDisconnect: "haproxy-disconnect"
            case .notify: "notify"
            case .unset: "unset"
            case .agentHello: "agent-hello"
            case .agentDisconnect: "agent-disconnect"
            case .ack: "ack"
            case .unknown: "unknown"
            }
        }
    }
}

/// One connection's counts between two flushes, and why it closed.
struct ConnectionMetrics {
    let shared: ServerMetrics
    private var received = [Int](repeating: 0, count: ServerMetrics.FrameKind.allCases.count)
    private var sent = [Int](repeating: 0, count: ServerMetrics.FrameKind.allCases.count)
    /// NOTIFY/UNSET frames decoded in this burst: counted as in flight from the end
    /// of their read until the burst's ACKs are written.
    private var unreported = 0, inFlight = 0
    private var dirty = false
    private var closeReason: ServerMetrics.CloseReason?

    init(_ shared: ServerMetrics) { self.shared = shared }

    func opened() {
        shared.connectionsOpen.increment()
        shared.connectionsTotal.increment()
    }

    mutating func received(_ type: FrameType?) {
        guard shared.countsFrames else { return }
        received[ServerMetrics.FrameKind(type).rawValue] += 1
        if type == .notify || type == .unset { unreported += 1 }
        dirty = true
    }

    /// End of one read: its frames are now in flight.
    mutating func readDone() {
        guard unreported > 0 else { return }
        shared.framesInFlight.increment(by: Double(unreported))
        inFlight += unreported
        unreported = 0
    }

    mutating func sent(_ type: FrameType) {
        guard shared.countsFrames else { return }
        sent[ServerMetrics.FrameKind(type).rawValue] += 1
        dirty = true
    }

    mutating func disconnectSent(_ status: SpopStatus, answeringPeer: Bool) {
        sent(.agentDisconnect)
        shared.disconnectsSent[min(Int(status.rawValue), ServerMetrics.lastKnownStatus + 1)].increment()
        closeReason = closeReason ?? ServerMetrics.CloseReason(agentDisconnect: status, answeringPeer: answeringPeer)
    }

    func limitHit(_ limit: ServerMetrics.Limit) {
        shared.limitHit(limit)
    }

    mutating func closing(_ reason: ServerMetrics.CloseReason) {
        closeReason = closeReason ?? reason
    }

    /// Hands the burst's counts to the shared counters (once per read burst).
    mutating func flush() {
        guard dirty else { return }
        dirty = false
        readDone()
        if inFlight > 0 {
            shared.framesInFlight.decrement(by: Double(inFlight))
            inFlight = 0
        }
        for index in received.indices where received[index] > 0 {
            shared.received[index].increment(by: Int64(received[index]))
            received[index] = 0
        }
        for index in sent.indices where sent[index] > 0 {
            shared.sent[index]?.increment(by: Int64(sent[index]))
            sent[index] = 0
        }
    }

    mutating func closed() {
        flush()
        shared.connectionsOpen.decrement()
        shared.closedByReason[closeReason ?? .peerClosed]?.increment()
    }
}
