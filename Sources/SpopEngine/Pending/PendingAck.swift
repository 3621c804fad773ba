import Logging
import NIOCore

/// Where a suspended frame's ACK goes when it is finished: the connection that read
/// the NOTIFY, or the future of `SpoaWorker.answer`. Called on `eventLoop` only.
protocol PendingAckHost: AnyObject {
    var eventLoop: any EventLoop { get }
    /// `pending` was just suspended; the host keeps it until it completes or is cancelled.
    func suspended(_ pending: PendingAck)
    /// `pending` completed: `frame` is its whole ACK frame, length prefix included.
    func completed(_ pending: PendingAck, frame: ByteBuffer)
}

/// A frame whose ACK is not written yet. Confined to its connection's event loop (not
/// Sendable; all calls on `eventLoop`).
///
/// It holds its connection only while pending: completion or cancellation drops that
/// reference, so a finished or cancelled frame keeps nothing of the connection alive.
public final class PendingAck {
    public let streamID: UInt64
    public let frameID: UInt64
    public let eventLoop: any EventLoop

    private var writer: AckWriter
    /// Set while pending; nil once completed or cancelled.
    private var host: (any PendingAckHost)?
    private var cancelled = false
    private var runningCancelHandler = false

    init(writer: AckWriter, host: any PendingAckHost) {
        self.streamID = writer.streamID
        self.frameID = writer.frameID
        self.eventLoop = host.eventLoop
        self.writer = writer
        self.host = host
    }

    /// The connection closed (peer close, HAPROXY-DISCONNECT, protocol error, idle/frame
    /// timeout, drain cut): writing is pointless.
    public var isCancelled: Bool { cancelled }

    /// Runs once when the pending frame is cancelled; set after cancellation it runs at
    /// once. Not run after complete().
    public var onCancel: (() -> Void)? {
        didSet {
            guard cancelled, !runningCancelHandler else { return }
            runCancelHandler()
        }
    }

    /// Adds actions to the pending ACK (may be called several times before complete); the
    /// writer enforces max-frame-size as usual. Do not call `complete` from `body`.
    public func withWriter<R>(_ body: (inout AckWriter) throws -> R) rethrows -> R {
        eventLoop.preconditionInEventLoop()
        return try body(&writer)
    }

    /// Sends the ACK now (actions written so far). Returns false, writing nothing, if
    /// cancelled or already completed. May be called from inside `handle` itself (same
    /// turn) as well as later.
    @discardableResult public func complete() -> Bool {
        eventLoop.preconditionInEventLoop()
        guard let host else { return false }
        self.host = nil
        onCancel = nil
        host.completed(self, frame: writer.finish())
        return true
    }

    /// Convenience: append these actions (dropping any that do not fit, logged) and complete.
    @discardableResult public func complete(_ actions: [SpoaAction]) -> Bool {
        guard host != nil else { return false }
        withWriter { writer in
            for action in actions {
                do throws(AckFullError) {
                    try writer.append(action)
                } catch {
                    Self.logger.warning("action dropped from the ACK of \(streamID)/\(frameID): \(error)", metadata: ["action": "\(action)"])
                }
            }
        }
        return complete()
    }

    /// The connection is gone: no ACK will be written. Called by the host.
    func cancel() {
        guard host != nil else { return }
        host = nil
        cancelled = true
        runCancelHandler()
    }

    private func runCancelHandler() {
        guard let handler = onCancel else { return }
        runningCancelHandler = true
        onCancel = nil
        runningCancelHandler = false
        handler()
    }

    static let logger = Logger(label: "luaspoa.pending-ack")
}

extension AckWriter {
    /// Appends one action (SET-VAR or UNSET-VAR).
    public mutating func append(_ action: SpoaAction) throws(AckFullError) {
        switch action {
        case .setVar(let scope, let name, let value): try setVar(scope, name, value)
        case .unsetVar(let scope, let name): try unsetVar(scope, name)
        }
    }
}
