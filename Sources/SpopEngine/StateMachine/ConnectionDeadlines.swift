import NIOCore

/// When a handshaken connection's single timer fires and what has expired: pure, so the
/// rules are tested with made-up times. Reads only note the time (re-arming a timer per
/// read cost more than the Lua call); the timer re-arms itself for the earliest deadline.
public struct ConnectionDeadlines: Equatable, Sendable {
    /// No frame at all for this long (zero: off).
    public var idleTimeout: TimeAmount
    /// A frame whose first bytes arrived must be complete this soon (zero: off): a peer
    /// trickling one byte at a time would otherwise keep the idle timer fresh forever.
    public var frameTimeout: TimeAmount

    public init(idleTimeout: TimeAmount, frameTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.frameTimeout = frameTimeout
    }

    public enum Check: Equatable, Sendable {
        case idle
        /// A started frame is still incomplete after `frameTimeout`.
        case frameStalled
        /// Nothing expired: check again then (nil: both timeouts are off).
        case rearm(at: NIODeadline?)
    }

    /// - Parameters:
    ///   - lastRead: when bytes last arrived.
    ///   - frameStarted: when the frame now half-read began arriving; nil between frames.
    ///   - handlersWaiting: the agent owes ACKs of suspended frames: the connection is
    ///     busy, not idle, however long its handlers wait.
    public func check(now: NIODeadline, lastRead: NIODeadline, frameStarted: NIODeadline?, handlersWaiting: Bool = false) -> Check {
        let lastRead = handlersWaiting ? now : lastRead
        var next: NIODeadline?
        if frameTimeout > .zero {
            if let frameStarted {
                if frameStarted + frameTimeout <= now { return .frameStalled }
                next = frameStarted + frameTimeout
            } else {
                // A frame may start any time: look again then, so one is caught within 2 x frameTimeout.
                next = now + frameTimeout
            }
        }
        if idleTimeout > .zero {
            if lastRead + idleTimeout <= now { return .idle }
            next = min(next ?? lastRead + idleTimeout, lastRead + idleTimeout)
        }
        return .rearm(at: next)
    }
}
