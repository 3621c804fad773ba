import NIOCore
import NIOPosix

/// What the clients of the outside world (HTTP, Redis) share.
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
