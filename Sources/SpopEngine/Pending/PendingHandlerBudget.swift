import CoreMetrics
import Logging
import NIOCore

/// `--max-pending`: suspended handlers of one worker (one event loop), all its
/// connections together. At the limit its connections stop decoding new frames and
/// wait here; each completion below the limit lets them go on. Loop-confined.
final class PendingHandlerBudget {
    let limit: Int
    let eventLoop: any EventLoop
    private(set) var count = 0
    private let gauge: Meter?
    private let logger: Logger
    /// Connections that stopped at the limit, resumed (on a later turn) once there is room.
    private var waiting: [() -> Void] = []
    private var loggedLimit = false

    /// - Parameter worker: the `worker` label of `luaspoa_handlers_pending`; nil: no gauge.
    init(limit: Int, eventLoop: any EventLoop, worker: Int?, logger: Logger) {
        self.limit = max(1, limit)
        self.eventLoop = eventLoop
        self.logger = logger
        self.gauge = worker.map { Meter(label: "luaspoa_handlers_pending", dimensions: [("worker", "\($0)")]) }
    }

    var isFull: Bool { count >= limit }

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
        eventLoop.execute { for resume in resumed { resume() } }
    }

    /// A connection found the budget full: `resume` runs once some handler finished.
    func waitForRoom(_ resume: @escaping () -> Void) {
        LimitCounters.maxPending.increment()
        if !loggedLimit {
            loggedLimit = true
            logger.warning("\(limit) handlers of this worker are waiting (--max-pending): new frames wait until some finish")
        }
        waiting.append(resume)
    }
}
