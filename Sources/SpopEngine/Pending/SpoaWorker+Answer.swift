import NIOCore

extension SpoaWorker {
    /// The finished ACK frame (length prefix included) of `notify`, whether the handler
    /// answered inline or suspended the frame: for tools and tests, which have no
    /// connection. Call it on `eventLoop` (the worker's own loop in a server).
    public func answer(
        _ notify: NotifyFrame, connection: SpoaConnectionInfo = SpoaConnectionInfo(),
        maxFrameSize: Int = AgentCapabilities.defaultMaxFrameSize, on eventLoop: any EventLoop
    ) -> EventLoopFuture<ByteBuffer> {
        eventLoop.preconditionInEventLoop()
        let host = AnswerHost(eventLoop: eventLoop)
        var ack = AckWriter(streamID: notify.streamID, frameID: notify.frameID, maxFrameSize: maxFrameSize,
                            buffer: ByteBuffer(), host: host)
        // The writer holds its host unowned: keep it alive until `handle` returned.
        withExtendedLifetime(host) { handle(notify, connection: connection, ack: &ack) }
        guard ack.isSuspended else { return eventLoop.makeSucceededFuture(ack.finish()) }
        return host.promise.futureResult
    }
}

/// Fulfils `SpoaWorker.answer`'s future when the suspended frame completes.
private final class AnswerHost: PendingAckHost {
    let eventLoop: any EventLoop
    let promise: EventLoopPromise<ByteBuffer>
    private var done = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.promise = eventLoop.makePromise()
    }

    func suspended(_ pending: PendingAck) {}

    func completed(_ pending: PendingAck, frame: ByteBuffer) {
        done = true
        promise.succeed(frame)
    }

    /// The handler dropped its PendingAck without completing it: say so rather than hang.
    deinit {
        if !done { promise.fail(PendingAckDropped()) }
    }
}

/// A handler let go of its `PendingAck` without completing it.
public struct PendingAckDropped: Error, CustomStringConvertible {
    public var description: String { "the handler suspended the frame and dropped its PendingAck without completing it" }
}
