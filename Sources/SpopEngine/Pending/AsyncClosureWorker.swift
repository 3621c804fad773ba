import Logging
import NIOCore

/// A worker whose handler is an `async` closure: each NOTIFY's frame is suspended,
/// the closure runs in a Task (off the event loop), and its actions are written on the
/// event loop when it returns. A throw answers with an empty ACK (logged); a closed
/// connection cancels the Task.
///
/// Every frame pays for a Task and a copy of its NOTIFY: for handlers that compute
/// only, `ClosureWorker` answers inline and allocates nothing.
public final class AsyncClosureWorker: SpoaWorker {
    public typealias Body = @Sendable (NotifyFrame, SpoaConnectionInfo) async throws -> [SpoaAction]

    private let body: Body
    private let logger: Logger

    public init(logger: Logger = Logger(label: "luaspoa.async-worker"), _ body: @escaping Body) {
        self.body = body
        self.logger = logger
    }

    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        // The NOTIFY may point into the connection's read buffer, reused after this call.
        let notify = notify.copied()
        let pending = ack.suspend()
        let promise = pending.eventLoop.makePromise(of: [SpoaAction].self)
        let body = body
        let task = Task {
            do { promise.succeed(try await body(notify, connection)) } catch { promise.fail(error) }
        }
        pending.onCancel = { task.cancel() }
        let logger = logger
        promise.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let actions):
                pending.complete(actions)
            case .failure(let error):
                if !pending.isCancelled {
                    logger.error("handler failed, empty ACK sent: \(error)",
                                 metadata: ["stream-id": "\(notify.streamID)", "frame-id": "\(notify.frameID)"])
                }
                pending.complete()
            }
        }
    }
}
