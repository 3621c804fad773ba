import NIOCore

/// What the agent knows about the connection a NOTIFY came in on.
public struct SpoaConnectionInfo: Sendable {
    /// HAProxy's engine-id from HAPROXY-HELLO (per thread in 2.6, per agent in 3.1+).
    public var engineID: String?
    /// The peer's address, for logs.
    public var remoteAddress: String?

    public init(engineID: String? = nil, remoteAddress: String? = nil) {
        self.engineID = engineID
        self.remoteAddress = remoteAddress
    }
}

/// The application side of the agent: messages in, actions out.
///
/// The server makes one worker per event-loop thread and calls it only on that
/// thread, so a worker may own thread-confined state such as a `lua_State`. `handle`
/// runs on the I/O thread: it must not block.
public protocol SpoaWorker: AnyObject, SendableMetatype {
    /// Called once per complete NOTIFY; append the ACK's actions to `ack`.
    func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter)
    /// Called once on the worker's thread when the server stops, after the drain and
    /// before the threads end: close what the worker opened (connections to other
    /// services). Does nothing by default.
    func stop()
}

extension SpoaWorker {
    public func stop() {}
}

/// A worker built from a closure, for Swift programs that need no per-thread state.
public final class ClosureWorker: SpoaWorker {
    let body: (NotifyFrame, SpoaConnectionInfo, inout AckWriter) -> Void

    public init(_ body: @escaping (NotifyFrame, SpoaConnectionInfo, inout AckWriter) -> Void) {
        self.body = body
    }

    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        body(notify, connection, &ack)
    }
}
