import CLuaSpoa
import CoreMetrics
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What the clients of the outside world (HTTP, Redis, DNS, TCP) share.
enum Upstream {
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

    /// Counts the operation `wait` describes once `started` completes (TCP: its
    /// connects only; the other socket operations are part of a connection).
    static func measure(
        _ wait: luaspoa_wait, _ started: (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void)
    ) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        guard let (client, target) = label(wait) else { return started }
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
