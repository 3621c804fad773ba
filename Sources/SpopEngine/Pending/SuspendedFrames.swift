import NIOCore

/// One connection's suspended frames: keeps them so that closing the connection
/// cancels them, counts them against the worker's budget, and hands each finished
/// ACK to the channel handler. Confined to the connection's event loop.
final class SuspendedFrames: PendingAckHost {
    let eventLoop: any EventLoop
    let budget: PendingHandlerBudget
    private var frames: [ObjectIdentifier: PendingAck] = [:]
    /// A frame was suspended (the handler tells its state machine).
    var onSuspend: () -> Void = {}
    /// A frame completed with this ACK frame, or (nil) was cancelled.
    var onEnd: (ByteBuffer?) -> Void = { _ in }

    init(eventLoop: any EventLoop, budget: PendingHandlerBudget) {
        self.eventLoop = eventLoop
        self.budget = budget
    }

    var count: Int { frames.count }

    func suspended(_ pending: PendingAck) {
        frames[ObjectIdentifier(pending)] = pending
        budget.acquire()
        onSuspend()
    }

    func completed(_ pending: PendingAck, frame: ByteBuffer) {
        guard frames.removeValue(forKey: ObjectIdentifier(pending)) != nil else { return }
        budget.release()
        onEnd(frame)
    }

    /// The connection closed: every pending frame is cancelled, none will be written.
    func cancelAll() {
        guard !frames.isEmpty else { return }
        let cancelled = frames.values
        frames = [:]
        for pending in cancelled {
            budget.release()
            pending.cancel()
            onEnd(nil)
        }
    }
}
