import Logging
import NIOCore
#if canImport(Glibc)
import Glibc  // ECONNRESET
#elseif canImport(Darwin)
import Darwin
#endif

/// Executes a `ConnectionStateMachine`'s actions on one channel; decides nothing itself.
final class SpopChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var stateMachine: ConnectionStateMachine
    private var frames = FrameReader()
    private let worker: any SpoaWorker
    private var logger: Logger
    private var connection = SpoaConnectionInfo()
    /// ACKs written during one read burst, written and flushed together.
    private var acks = AckBatch()
    private var metrics: ConnectionMetrics

    private let limits: ServerLimits
    private var timer: Scheduled<Void>?
    /// When the last frame arrived, for the idle timer; the connect time until then. Every
    /// time here is the loop's clock (`context.eventLoop.now`), never the wall clock.
    private var lastRead = NIODeadline.uptimeNanoseconds(0)
    /// When the frame now half-read in `frames` began arriving, for the frame timeout.
    private var frameStarted: NIODeadline?
    private var readHeld = false
    /// Frames wait in `frames` undecoded: their ACKs would take the bytes held for this
    /// peer past --max-pending-output.
    private var decodePaused = false
    /// The last read did not fill its buffer: the socket had nothing more at that moment.
    private var socketEmptied = false

    /// Set once `async` is negotiated: decides on which connection of the engine ACKs leave.
    private let asyncAcks: AsyncAckRouting?
    private var ackRouter: ConnectionAckRouter?
    private let busyPoller: BusyPoller?
    /// Process-wide bytes of unfinished fragments, and this connection's share of them.
    private let fragments: FragmentBudget?
    private var fragmentReserved = 0

    /// The worker's --max-pending budget (nil: one of this connection's own, for tests).
    private let pendingBudget: PendingHandlerBudget?
    /// Frames whose handler suspended; made once the event loop is known.
    private var suspended: SuspendedFrames!
    private var context: ChannelHandlerContext?
    /// ACKs of suspended frames that completed, written with the next output.
    private var readyAcks: [ByteBuffer] = []
    /// Inside `decodeFrames`: a frame completed now leaves with the burst's ACKs.
    private var decoding = false
    /// A drained goodbye that came with a completion, run once its ACK is written.
    private var deferredAction: ConnectionStateMachine.Action?
    /// Completed ACKs wait for the next loop turn (see `suspendedFrameEnded`).
    private var flushScheduled = false
    /// New frames wait in `frames` for handlers: the worker's --max-pending budget is full,
    /// or a suspended frame holds a connection without pipelining.
    private var heldForHandlers = false
    private var waitingForBudget = false

    init(
        capabilities: AgentCapabilities, limits: ServerLimits = .init(), worker: any SpoaWorker, logger: Logger, metrics: ServerMetrics,
        asyncAcks: AsyncAckRouting? = nil, busyPoller: BusyPoller? = nil, fragments: FragmentBudget? = nil,
        pendingBudget: PendingHandlerBudget? = nil
    ) {
        self.pendingBudget = pendingBudget
        self.fragments = fragments
        self.busyPoller = busyPoller
        self.asyncAcks = asyncAcks
        self.stateMachine = ConnectionStateMachine(capabilities: capabilities)
        self.limits = limits
        self.worker = worker
        self.logger = logger
        self.metrics = ConnectionMetrics(metrics)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let budget = pendingBudget
            ?? PendingHandlerBudget(limit: limits.maxPendingHandlers, eventLoop: context.eventLoop, worker: nil, logger: logger, metrics: metrics.shared)
        suspended = SuspendedFrames(eventLoop: context.eventLoop, budget: budget)
        suspended.onSuspend = { [weak self] in self?.stateMachine.frameSuspended() }
        suspended.onEnd = { [weak self] ack in self?.suspendedFrameEnded(ack) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        suspended.cancelAll()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        connection.remoteAddress = context.remoteAddress?.description
        logger[metadataKey: "peer"] = "\(connection.remoteAddress ?? "?")"
        logger.debug("connection opened")
        metrics.opened()
        lastRead = context.eventLoop.now
        let helloTimeout = limits.helloTimeout
        arm(at: context.eventLoop.now + helloTimeout, context: context) {
            self.metrics.limitHit(.helloTimeout)
            self.execute(self.stateMachine.timedOut("no HAPROXY-HELLO within \(helloTimeout.secondsDescription)"), context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !stateMachine.isClosed else { return }
        if stateMachine.isRunning {
            lastRead = context.eventLoop.now
            busyPoller?.noteActivity(at: lastRead)
        }
        let bytes = unwrapInboundIn(data)
        socketEmptied = bytes.writableBytes > 0
        frames.append(bytes)
        // No clock read here: a frame left half-read started at the latest with this read.
        decodeFrames(context: context, now: lastRead)
        metrics.readDone()
    }

    /// Answers the buffered frames while the bytes held for the peer (queued on the
    /// channel plus this burst's ACKs) stay below --max-pending-output. ACKs can be far
    /// larger than their NOTIFYs: holding reads alone let one read burst queue megabytes.
    /// With `async` the burst alone is bounded; siblings' own marks bound the rest.
    private func decodeFrames(context: ChannelHandlerContext, now: NIODeadline) {
        // Provisional: the channel is asked what it holds only once the burst's ACKs reach
        // half the mark, so ordinary bursts pay nothing for the bound.
        var budget = limits.maxPendingOutput / 2
        var exact = false
        decoding = true
        defer {
            decoding = false
            if let action = deferredAction {
                deferredAction = nil
                execute(action, context: context)
            }
        }
        do {
            while !stateMachine.isClosed {
                // Only after the handshake: a HELLO (or a health check) never waits for handlers.
                if stateMachine.isRunning, heldForHandlers || mustWaitForHandlers() { break }
                if acks.byteCount >= budget {
                    guard exact else {
                        budget = outputBudget(context: context)
                        exact = true
                        continue
                    }
                    pauseDecoding()
                    break
                }
                guard let frame = try frames.next(maxFrameSize: stateMachine.maxFrameSize) else { break }
                metrics.received(frame.header.type)
                // Only fragments touch the shared budget: a whole NOTIFY holds no reservation.
                let fragment = frame.header.type == .unset || !frame.header.flags.contains(.fin)
                execute(stateMachine.frameReceived(frame), context: context)
                if fragment || fragmentReserved > 0 { accountFragments(context: context) }
            }
        } catch {
            execute(stateMachine.decodingFailed(error), context: context)
        }
        // A frame stalls on the peer only when it is half-read and not held back by us.
        if frames.bufferedBytes == 0 || decodePaused || heldForHandlers { frameStarted = nil } else if frameStarted == nil { frameStarted = now }
    }

    /// True when the next frame must wait for handlers to finish (then `heldForHandlers`
    /// is set, and the worker's budget calls back once it has room).
    private func mustWaitForHandlers() -> Bool {
        if stateMachine.awaitsSuspendedFrame {
            heldForHandlers = true
        } else if suspended.budget.isFull {
            heldForHandlers = true
            if !waitingForBudget {
                waitingForBudget = true
                suspended.budget.waitForRoom { [weak self] in
                    guard let self else { return }
                    self.waitingForBudget = false
                    self.resumeAfterHandlers()
                }
            }
        }
        return heldForHandlers
    }

    /// Handlers finished: frames held back are decoded, then reading goes on.
    private func resumeAfterHandlers() {
        guard let context, heldForHandlers, !stateMachine.isClosed else { return }
        heldForHandlers = false
        decodeFrames(context: context, now: context.eventLoop.now)
        if writeOutgoing(context: context) { context.flush() }
        metrics.flush()
        finishDrainIfQuiet(context: context)
        if !heldForHandlers, !decodePaused, readHeld, context.channel.isWritable || ackRouter?.siblingCanTakeAcks == true {
            readHeld = false
            context.read()
        }
    }

    /// A suspended frame's ACK is ready (`ack`), or the frame was cancelled (nil).
    private func suspendedFrameEnded(_ ack: ByteBuffer?) {
        let action = stateMachine.suspendedFrameEnded()
        guard let ack, let context else { return }
        metrics.sent(.ack)
        lastRead = context.eventLoop.now  // the connection was busy until now, not idle
        readyAcks.append(ack)
        if case .disconnect = action { deferredAction = action }
        // Completed inside this connection's `handle`: the burst writes it and runs the action.
        if decoding { return }
        // Completed by another connection's handler: writing here may resume reads
        // (writability, held frames) and call the worker again while it is busy.
        if suspended.budget.workerBusy {
            guard !flushScheduled else { return }
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute { [weak self] in self?.writeCompleted() }
            return
        }
        writeCompleted()
    }

    /// Writes the completed ACKs, runs a goodbye they allowed, and lets held frames go on.
    private func writeCompleted() {
        flushScheduled = false
        guard let context, !stateMachine.isClosed || deferredAction != nil else { return }
        if writeOutgoing(context: context) { context.flush() }
        metrics.flush()
        if let action = deferredAction {
            deferredAction = nil
            execute(action, context: context)
        }
        if heldForHandlers, !waitingForBudget { resumeAfterHandlers() }
    }

    /// Moves this connection's reservation to the bytes its fragment now holds; if the
    /// process-wide bound would be passed, this connection is refused (status 13).
    private func accountFragments(context: ChannelHandlerContext) {
        guard let fragments else { return }
        let held = stateMachine.fragmentBytes
        if fragments.resize(from: fragmentReserved, to: held) {
            fragmentReserved = held
            return
        }
        metrics.limitHit(.maxFragmentMemory)
        execute(stateMachine.fragmentRefused(
            "unfinished fragmented NOTIFYs would hold more than \(fragments.limit) bytes in all (limit max_fragment_memory)"),
            context: context)
        releaseFragments()
    }

    private func releaseFragments() {
        guard fragmentReserved > 0 else { return }
        _ = fragments?.resize(from: fragmentReserved, to: 0)
        fragmentReserved = 0
    }

    /// Bytes of ACKs this burst may still add: the mark minus what the channel already
    /// queues. A writable channel always takes one more ACK: it may sit between the marks
    /// and never signal writability again. With `async` only the burst is bounded here.
    private func outputBudget(context: ChannelHandlerContext) -> Int {
        guard ackRouter == nil else { return limits.maxPendingOutput }
        let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        let budget = limits.maxPendingOutput - queued
        return context.channel.isWritable ? max(1, budget) : budget
    }

    private func pauseDecoding() {
        guard !decodePaused else { return }
        decodePaused = true
        metrics.limitHit(.maxPendingOutput)
        logger.debug("ACKs held for the peer reached limit max_pending_output (\(limits.maxPendingOutput) bytes): decoding and reading paused")
    }

    /// Room for output again: answers what waits in `frames`, then reads on.
    private func resumeDecoding(context: ChannelHandlerContext) {
        decodePaused = false
        decodeFrames(context: context, now: context.eventLoop.now)
        if writeOutgoing(context: context) { context.flush() }
        finishDrainIfQuiet(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if writeOutgoing(context: context) { context.flush() }
        // The burst stopped at the mark and the ACKs left at once (or go to a sibling): go on.
        if decodePaused, !stateMachine.isClosed, context.channel.isWritable || ackRouter?.siblingCanTakeAcks == true {
            resumeDecoding(context: context)
        }
        metrics.flush()
        finishDrainIfQuiet(context: context)
        context.fireChannelReadComplete()
    }

    /// Draining: every complete NOTIFY read so far is answered; once the socket was
    /// found empty with no frame half-read, nothing else reached the agent: goodbye.
    private func finishDrainIfQuiet(context: ChannelHandlerContext) {
        if stateMachine.isDraining, socketEmptied, frames.bufferedBytes == 0 {
            execute(stateMachine.inputQuiet(), context: context)
        }
    }

    /// Queues the burst's ACKs and those of completed suspended frames (before any other
    /// frame, to keep the order); true if some were written on this channel.
    private func writeOutgoing(context: ChannelHandlerContext) -> Bool {
        var wrote = false
        if let buffer = acks.drain() { wrote = write(buffer, context: context) }
        if !readyAcks.isEmpty {
            for ack in readyAcks { wrote = write(ack, context: context) || wrote }
            readyAcks.removeAll(keepingCapacity: true)
        }
        return wrote
    }

    private func write(_ buffer: ByteBuffer, context: ChannelHandlerContext) -> Bool {
        if let ackRouter { return ackRouter.write(buffer) }
        context.write(wrapOutboundOut(buffer), promise: nil)
        return true
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ConnectionRegistry.DrainEvent else { return context.fireUserInboundEventTriggered(event) }
        execute(stateMachine.drain(), context: context)
        if stateMachine.isDraining { armDrainCheck(since: context.eventLoop.now, context: context) }
    }

    /// Backpressure: while ACKs above the write-buffer high-water mark wait for a slow
    /// peer, reads are held, so no more NOTIFYs are taken in and nothing queues without bound.
    /// With `async`, reading goes on while a sibling can take the ACKs (its own mark bounds them).
    func read(context: ChannelHandlerContext) {
        // After the goodbye the input is only read to be dropped (see closeAfterGoodbye).
        guard stateMachine.isClosed || !heldForHandlers else {
            readHeld = true
            return
        }
        guard stateMachine.isClosed || !decodePaused && (context.channel.isWritable || ackRouter?.siblingCanTakeAcks == true) else {
            if !readHeld, !decodePaused { metrics.limitHit(.maxPendingOutput) }
            readHeld = true
            logger.debug("peer reads slowly, reading paused")
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        outputRoom(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Room for ACKs again: decodes what waits, then reads on.
    private func outputRoom(context: ChannelHandlerContext) {
        guard context.channel.isWritable else { return }
        if decodePaused, !stateMachine.isClosed { resumeDecoding(context: context) }
        if !decodePaused, !heldForHandlers, readHeld {
            readHeld = false
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        suspended.cancelAll()
        ackRouter?.connectionLost(pending: acks.drain())
        for ack in readyAcks { ackRouter?.connectionLost(pending: ack) }
        readyAcks.removeAll()
        timer?.cancel()
        if !stateMachine.isClosed { logger.info("connection closed by peer") }
        stateMachine.closed()
        releaseFragments()
        metrics.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        // HAProxy 3.2 drops idle pooled SPOP connections with a reset: an ordinary close.
        metrics.closing((error as? IOError)?.errnoCode == ECONNRESET ? .peerClosed : .ioError)
        stateMachine.closed()
        suspended.cancelAll()
        releaseFragments()
        context.close(promise: nil)
    }

    private func execute(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .sendHello(let hello, let closeAfterWrite):
            var buffer = context.channel.allocator.buffer(capacity: 64)
            hello.write(to: &buffer)
            metrics.sent(.agentHello)
            if closeAfterWrite {
                logger.debug("health check answered")
                metrics.closing(.healthCheck)
                context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                connection.engineID = stateMachine.engineID
                if let engineID = connection.engineID { logger[metadataKey: "engine-id"] = "\(engineID)" }
                logger.info("connection established", metadata: ["max-frame-size": "\(hello.maxFrameSize)"])
                if let asyncAcks, stateMachine.asyncNegotiated, let engineID = connection.engineID {
                    let router = ConnectionAckRouter(
                        routing: asyncAcks, engineID: engineID, channel: context.channel, maxFrameSize: Int(hello.maxFrameSize))
                    // Woken from a write's completion: on the next turn, not inside the flush
                    // that completed it. The router drops it when the channel closes.
                    router.onRoom { [weak self] in
                        context.eventLoop.assumeIsolated().execute { self?.outputRoom(context: context) }
                    }
                    ackRouter = router
                }
                lastRead = context.eventLoop.now
                armIdleTimer(context: context)
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            }

        case .processNotify(let notify):
            let (worker, connection) = (worker, connection)
            suspended.budget.workerBusy = true
            let answered = acks.append(
                streamID: notify.streamID, frameID: notify.frameID, maxFrameSize: stateMachine.maxFrameSize,
                allocator: context.channel.allocator, host: suspended
            ) { ack in
                worker.handle(notify, connection: connection, ack: &ack)
            }
            suspended.budget.workerBusy = false
            if answered { metrics.sent(.ack) }

        case .disconnect(let reply, let peer):
            timer?.cancel()
            suspended.cancelAll()
            releaseFragments()  // the closed state machine dropped its fragment
            if let peer {
                logger.info("HAProxy disconnects: status \(peer.status): \(peer.message)")
            } else if reply.status == .normal {
                logger.debug("disconnecting: \(reply.message)")
            } else {
                logger.warning("disconnecting with status \(reply.status): \(reply.message)")
            }
            metrics.disconnectSent(reply.status, answeringPeer: peer != nil)
            var buffer = context.channel.allocator.buffer(capacity: 64)
            reply.write(to: &buffer)
            // After HAProxy's DISCONNECT it ignores ACKs here: with async they go to a sibling.
            if peer != nil { ackRouter?.markClosing() }
            _ = writeOutgoing(context: context)
            ackRouter?.markClosing()
            // Peers may already have closed their side: a failed last write is expected.
            context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { result in
                guard case .success = result else { return context.close(promise: nil) }
                self.closeAfterGoodbye(context: context)
            }

        case .none(let reason):
            if let reason { logger.debug("\(reason)") }
        }
    }

    /// Closing a socket with unread input makes the kernel send a reset, and a reset can
    /// discard the DISCONNECT before the peer reads it (a peer still sending fragments or
    /// trickling bytes). So: shut the output (FIN after the goodbye), drop what still
    /// arrives, and close when the peer does (HAProxy does at once) or after a linger.
    private func closeAfterGoodbye(context: ChannelHandlerContext) {
        context.close(mode: .output).assumeIsolated().whenFailure { _ in context.close(promise: nil) }
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.goodbyeLinger) { context.close(promise: nil) }
        context.channel.read()
    }

    static let goodbyeLinger = TimeAmount.seconds(1)

    // MARK: timers

    /// Reads only note the time (see `ConnectionDeadlines`): the timer fires at most once
    /// per idle or frame-timeout period and re-arms itself for the time left.
    private func armIdleTimer(context: ChannelHandlerContext) {
        let deadlines = ConnectionDeadlines(idleTimeout: limits.idleTimeout, frameTimeout: limits.frameTimeout)
        let at: NIODeadline
        switch deadlines.check(now: context.eventLoop.now, lastRead: lastRead, frameStarted: frameStarted, handlersWaiting: stateMachine.suspendedFrames > 0) {
        case .rearm(let next?): at = next
        case .rearm(nil):  // both timeouts off; the hello timer must not outlive the hello
            timer?.cancel()
            timer = nil
            return
        case .idle, .frameStalled: at = context.eventLoop.now  // expired since the last look: fire at once
        }
        arm(at: at, context: context) {
            switch deadlines.check(
                now: context.eventLoop.now, lastRead: self.lastRead, frameStarted: self.frameStarted,
                handlersWaiting: self.stateMachine.suspendedFrames > 0) {
            case .rearm:
                self.armIdleTimer(context: context)
            case .idle:
                self.metrics.limitHit(.idleTimeout)
                self.execute(self.stateMachine.timedOut("idle for \(deadlines.idleTimeout.secondsDescription)"), context: context)
            case .frameStalled:
                self.metrics.limitHit(.frameTimeout)
                let held = self.frames.bufferedBytes
                self.execute(
                    self.stateMachine.timedOut(
                        "frame incomplete after \(deadlines.frameTimeout.secondsDescription) (\(held) bytes received; limit frame_timeout)"),
                    context: context)
            }
        }
    }

    /// NOTIFYs may still sit in the socket buffer when the drain starts (NIO reads a bounded
    /// amount per wakeup; reads may be held for backpressure). A read that empties the socket
    /// ends the drain (`channelReadComplete`); this timer ends it when nothing arrives at all.
    /// The registry's drain timeout bounds both.
    private func armDrainCheck(since: NIODeadline, context: ChannelHandlerContext) {
        arm(at: since + Self.drainQuietPeriod, context: context) {
            if self.readHeld || self.frames.bufferedBytes > 0 || self.lastRead >= since {
                return self.armDrainCheck(since: context.eventLoop.now, context: context)
            }
            self.execute(self.stateMachine.inputQuiet(), context: context)
        }
    }

    static let drainQuietPeriod = TimeAmount.milliseconds(20)

    /// One timer at a time: the hello timer, then the idle timer (or the drain check).
    private func arm(at deadline: NIODeadline, context: ChannelHandlerContext, onTimeout: @escaping () -> Void) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline, onTimeout)
    }
}

extension TimeAmount {
    fileprivate var secondsDescription: String { "\(Double(nanoseconds) / 1e9) s" }
}
