import CoreMetrics
import Logging
import NIOCore

/// `ServerLimits.maxPendingHandlers`: suspended handlers of one worker (one event loop), all its
/// connections together. At the limit its connections stop decoding new frames and
/// wait here; each completion below the limit lets them go on. Loop-confined.
final class PendingHandlerBudget {
    let limit: Int
    let eventLoop: any EventLoop
    private(set) var count = 0
    /// `handlers_pending{worker}`.
    private let gauge: Meter?
    /// Counts `limit_hits_total{limit="max_pending"}`: a connection stopped at the limit.
    private let metrics: ServerMetrics
    private let logger: Logger
    /// Connections that stopped at the limit, resumed (on a later turn) once there is room.
    private var waiting: [() -> Void] = []
    private var loggedLimit = false

    /// - Parameter worker: the `worker` label of `handlers_pending`; nil: no gauge.
    init(limit: Int, eventLoop: any EventLoop, worker: Int?, logger: Logger, metrics: ServerMetrics) {
        self.limit = max(1, limit)
        self.eventLoop = eventLoop
        self.logger = logger
        self.metrics = metrics
        self.gauge = worker.map { metrics.handlersPending(worker: $0) }
    }

    var isFull: Bool { count >= limit }

    /// A connection of this worker is inside `handle`: the worker must not be entered
    /// again, so work a completion would trigger on another connection waits a turn.
    var workerBusy = false

    func acquire() {
        count += 1
        gauge?.set(count)
    }

    func release() {
        count -= 1
        gauge?.set(count)
        guard count < limit, !waiting.isEmpty else { return }
        let resumed = waiting
        waiting = []
        // Not inline: a completion may run inside a handler, in the middle of a read burst.
        eventLoop.assumeIsolated().execute { for resume in resumed { resume() } }
    }

    /// A connection found the budget full: `resume` runs once some handler finished.
    func waitForRoom(_ resume: @escaping () -> Void) {
        metrics.limitHit(.maxPendingHandlers)
        if !loggedLimit {
            loggedLimit = true
            logger.warning("\(limit) handlers of this worker are waiting (limit max_pending): new frames wait until some finish")
        }
        waiting.append(resume)
    }
}
