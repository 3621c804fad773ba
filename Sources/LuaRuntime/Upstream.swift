import CLuaSpoa
import CoreMetrics
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What the clients of the outside world (HTTP, Redis, DNS, TCP) share.
public enum Upstream {
    /// Where background tasks' requests run (their thread blocks meanwhile):
    /// tasks have no event loop of their own.
    static let backgroundLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()

    /// A short reason for a socket error, for the script's `nil, err`.
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.isEmpty {
                return "DNS failure: cannot resolve \(error.host)"
            }
            let reasons = error.connectionErrors.map { describe($0.error) }
            return reasons.first { $0 == "connection refused" } ?? reasons[0]
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET, EPIPE: return "connection closed"
            case ETIMEDOUT: return "timeout"
            default: return "\(error)"
            }
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout: return "timeout"
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed: return "connection closed"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }

    /// Whether `error` means the target could not be reached (refused, unreachable,
    /// connect timeout, unresolvable): what makes a client back off from it.
    static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let error = error as? IOError {
            return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT].contains(error.errnoCode)
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
    }

    /// Closes the background tasks' connections and the HTTP client; later requests
    /// fail. The agent calls it when it stops, after the tasks ended.
    public static func shutdown() async {
        try? await backgroundLoop.submit { close(on: backgroundLoop) }.get()
        await LuaHTTP.shutdown()
    }

    /// Closes the clients' connections, pools and resolvers of `loop` (the worker
    /// stops; or the tests end). Calls on `loop` after this open new ones. Call it on `loop`.
    static func close(on loop: any EventLoop) {
        LuaRedis.close(on: loop)
        LuaTCP.close(on: loop)
        LuaDNS.close(on: loop)
    }
}

/// A key of per-loop client state (pools, resolvers) in a process-wide table.
protocol LoopKeyed: Hashable {
    var loop: ObjectIdentifier { get }
}

extension NIOLockedValueBox {
    /// Removes the entries of `loop` and returns their values.
    func removeAll<Key: LoopKeyed, Entry>(of loop: any EventLoop) -> [Entry] where Value == [Key: Entry] {
        withLockedValue { table in
            let mine = table.filter { $0.key.loop == ObjectIdentifier(loop) }
            for key in mine.keys { table[key] = nil }
            return Array(mine.values)
        }
    }
}

/// Failing fast while a target is down: after a failed connect, calls fail at
/// once for a delay that doubles with each failure in a row (`initial` to `cap`);
/// after it one call tries again (the others keep failing fast meanwhile), and a
/// success ends the back-off. So a down target costs one connect attempt per delay,
/// not one per message, and is used again by itself once it is back.
struct Backoff {
    static let initial = TimeAmount.milliseconds(100)
    static let cap = TimeAmount.seconds(5)

    private(set) var failures = 0
    private var until = NIODeadline.uptimeNanoseconds(0)
    private var reason = ""
    private var probing = false

    /// The delay after `failures` failed connects in a row.
    static func delay(after failures: Int) -> TimeAmount {
        guard failures > 0 else { return .nanoseconds(0) }
        let shift = min(failures - 1, 30)
        return .nanoseconds(min(initial.nanoseconds << shift, cap.nanoseconds))
    }

    /// nil: the call may connect (it is the probe when backing off ended); else the
    /// error it fails with at once.
    mutating func admit(now: NIODeadline) -> String? {
        guard failures > 0 else { return nil }
        if probing || now < until {
            return "\(reason) (backing off \(Self.delay(after: failures).nanoseconds / 1_000_000) ms)"
        }
        probing = true
        return nil
    }

    mutating func failed(_ reason: String, now: NIODeadline) {
        failures += 1
        probing = false
        self.reason = reason
        until = now + Self.delay(after: failures)
    }

    mutating func succeeded() {
        self = Backoff()
    }

    /// A connect that neither failed nor succeeded (cancelled): another call may probe.
    mutating func abandoned() {
        probing = false
    }

    /// Whether it holds nothing worth keeping: no failure, or a finished delay and no probe.
    func isIdle(now: NIODeadline) -> Bool { failures == 0 || (!probing && now >= until) }
}

/// The back-offs of one event loop's targets (`host:port`), for the clients that
/// connect per target (HTTP, TCP). Used only on its loop.
struct Backoffs {
    /// Targets remembered at most: past it, those whose delay ended are forgotten
    /// (and, if all are backing off, one of them).
    static let maxTargets = 1024
    private var targets: [String: Backoff] = [:]

    var count: Int { targets.count }

    mutating func admit(_ target: String) -> String? {
        targets[target]?.admit(now: .now())
    }

    /// A connect to `target` ended: `failure` is its reason if it could not connect.
    mutating func connected(_ target: String, failure: String?) {
        guard let failure else {
            targets[target] = nil
            return
        }
        let now = NIODeadline.now()
        if targets[target] == nil, targets.count >= Self.maxTargets {
            targets = targets.filter { !$0.value.isIdle(now: now) }
            if targets.count >= Self.maxTargets { targets.remove(at: targets.startIndex) }
        }
        targets[target, default: Backoff()].failed(failure, now: now)
    }

    mutating func abandoned(_ target: String) {
        targets[target]?.abandoned()
    }
}

/// `luaspoa_upstream_connections{client, target, state}`: the clients' open
/// connections, `busy` (a call uses it) or `idle` (pooled, waiting for one). The
/// clients count what they open, lend and close (`ConnectionGauge`); the gauges
/// are set from these counts at each scrape (`refresh`).
public enum UpstreamConnections {
    enum Use: String { case idle, busy }

    private struct Key: Hashable {
        let client: String
        let target: String
        let use: Use
    }

    private static let counts = NIOLockedValueBox<[Key: Int]>([:])

    static func add(_ client: String, _ target: String, _ use: Use, _ delta: Int) {
        counts.withLockedValue { counts in
            var target = target
            if counts[Key(client: client, target: target, use: .busy)] == nil {
                let known = Set(counts.keys.lazy.filter { $0.client == client }.map(\.target))
                if known.count >= UpstreamMetrics.maxTargets { target = "other" }
            }
            counts[Key(client: client, target: target, use: .busy), default: 0] += use == .busy ? delta : 0
            counts[Key(client: client, target: target, use: .idle), default: 0] += use == .idle ? delta : 0
        }
    }

    /// The connections of `client` to `target` in `use` now.
    static func count(_ client: String, _ target: String, _ use: Use) -> Int {
        counts.withLockedValue { $0[Key(client: client, target: target, use: use)] ?? 0 }
    }

    /// Sets the gauges from the counts; the agent calls it before each scrape.
    public static func refresh() {
        for (key, count) in counts.withLockedValue({ $0 }) {
            Gauge(label: "luaspoa_upstream_connections",
                  dimensions: [("client", key.client), ("target", key.target), ("state", key.use.rawValue)])
                .record(count)
        }
    }
}

/// What one connection counts as in `UpstreamConnections`: its `use` is set as it
/// changes (nil once closed), and only a change touches the shared counts.
struct ConnectionGauge {
    let client: String
    let target: String
    private(set) var use: UpstreamConnections.Use?

    init(_ client: String, _ target: String) {
        self.client = client
        self.target = target
    }

    mutating func set(_ new: UpstreamConnections.Use?) {
        guard new != use else { return }
        if let use { UpstreamConnections.add(client, target, use, -1) }
        if let new { UpstreamConnections.add(client, target, new, 1) }
        use = new
    }
}

/// `luaspoa_upstream_requests_total{client, target, result}` and
/// `luaspoa_upstream_duration_seconds{client, target}`: one series per client
/// kind, target (HTTP scheme://host:port, Redis and TCP host:port, DNS servers)
/// and outcome. Series are made once and cached; targets past `maxTargets`
/// share the label "other".
enum UpstreamMetrics {
    static let maxTargets = 64

    private struct Series {
        let latency: Timer
        var results: [String: Counter] = [:]
    }

    private static let series = NIOLockedValueBox<[String: [String: Series]]>([:])
    /// Whether metrics are exported (the agent bootstraps them before any request):
    /// without, a call is not labelled, timed nor counted.
    private static let exported = !(MetricsSystem.factory is NOOPMetricsHandler)

    /// Counts the operation `wait` describes once `started` completes (TCP: its
    /// connects only; the other socket operations are part of a connection).
    static func measure(
        _ wait: luaspoa_wait, _ started: (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void)
    ) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        guard exported, let (client, target) = label(wait) else { return started }
        let start = DispatchTime.now().uptimeNanoseconds
        started.future.whenSuccess { result in
            record(client, target, result: outcome(result), nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
        }
        return started
    }

    private static func string(_ wait: luaspoa_wait, _ i: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: wait.args[i].ptr, count: wait.args[i].len), as: UTF8.self)
    }

    private static func label(_ wait: luaspoa_wait) -> (client: String, target: String)? {
        switch Int(wait.kind) {
        case LUASPOA_WAIT_HTTP:
            let url = string(wait, 1)
            guard let scheme = url.range(of: "://") else { return ("http", "invalid") }
            let rest = url[scheme.upperBound...]
            return ("http", String(url[..<scheme.upperBound]) + String(rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }))
        case LUASPOA_WAIT_REDIS:
            return ("redis", string(wait, 0) + ":" + string(wait, 1))
        case LUASPOA_WAIT_DNS:
            let servers = string(wait, 2)
            return ("dns", servers.isEmpty ? "resolv.conf" : servers)
        default:
            guard wait.nargs == 3, string(wait, 0) == "connect" else { return nil }
            return ("tcp", string(wait, 1) + ":" + string(wait, 2))
        }
    }

    /// A few outcomes, so that error texts do not make new series.
    private static func outcome(_ result: LuaWaitResult) -> String {
        guard case .failed(let message) = result else { return "ok" }
        switch message {
        case "timeout": return "timeout"
        case "connection refused": return "refused"
        case _ where message.hasSuffix(" ms)") && message.contains(" (backing off "): return "backoff"
        case "connection closed", "closed": return "closed"
        case "cancelled": return "cancelled"
        default:
            if message.hasPrefix("DNS failure") || message == "not found" { return "dns" }
            if message.hasPrefix("ERR") || message.hasPrefix("WRONGTYPE") || message.hasPrefix("NOSCRIPT") {
                return "error_reply"  // Redis answered with an error: the target is up
            }
            return "error"
        }
    }

    private static func record(_ client: String, _ target: String, result: String, nanoseconds: UInt64) {
        let (counter, latency) = series.withLockedValue { series in
            var targets = series[client, default: [:]]
            let key = targets[target] != nil || targets.count < maxTargets ? target : "other"
            var entry = targets[key] ?? Series(
                latency: Timer(label: "luaspoa_upstream_duration_seconds", dimensions: [("client", client), ("target", key)]))
            let counter = entry.results[result] ?? Counter(
                label: "luaspoa_upstream_requests_total", dimensions: [("client", client), ("target", key), ("result", result)])
            entry.results[result] = counter
            targets[key] = entry
            series[client] = targets
            return (counter, entry.latency)
        }
        counter.increment()
        latency.recordNanoseconds(Int64(clamping: nanoseconds))
    }
}
