import CLuaSpoa
import NIOCore
import SpopEngine

/// A frame whose handler waits: its ACK is suspended, its remaining messages run
/// once the waiting one is done. Used only on its connection's event loop.
final class WaitingFrame {
    /// The state (script generation) the frame started on: it finishes there, and
    /// holding it keeps that state open after a reload.
    let state: LuaState
    /// A copy of the NOTIFY: argument bytes stay valid while the frame waits.
    let notify: NotifyFrame
    let engineID: String?
    let pending: PendingAck
    var message: LuaWorker.WaitingMessage
    /// The frame's clock for --lua-frame-timeout, given back at each resume.
    var frameClock: Int64
    /// When the frame's first message started: deadlines count from here.
    let arrival: NIODeadline
    var operation: LuaWaits.Operation?
    /// The waiting message's deadline (`deadline_ms`), while it runs: see `LuaWorker.deadlines`.
    var deadline: (at: NIODeadline, ms: UInt32)?
    /// Completed or cancelled: a timer that fired in the same loop turn finds it so.
    var ended = false

    init(state: LuaState, notify: NotifyFrame, engineID: String?, pending: PendingAck,
         message: LuaWorker.WaitingMessage, frameClock: Int64, arrival: NIODeadline) {
        self.state = state
        self.notify = notify
        self.engineID = engineID
        self.pending = pending
        self.message = message
        self.frameClock = frameClock
        self.arrival = arrival
    }

    /// The message at `index` of the frame.
    func message(at index: Int) -> SpoaMessage {
        var messages = notify.messages
        for _ in 0..<index { _ = messages.next() }
        return messages.next()!
    }

    /// Stops what the waiting message waits for and its deadline.
    func stopWaiting() {
        operation?.cancel()
        operation = nil
        deadline = nil
    }
}

extension LuaWorker {
    /// The frame's handler `waiting` waits: its ACK leaves later, from the event loop.
    func suspend(
        _ notify: NotifyFrame, _ waiting: WaitingMessage, state: LuaState, engineID: String?,
        ack: UnsafeMutablePointer<AckWriter>
    ) {
        let elapsed = luaspoa_frame_elapsed(state.L)
        let pending = ack.pointee.suspend()
        let frame = WaitingFrame(
            state: state, notify: notify.copied(), engineID: engineID, pending: pending, message: waiting,
            frameClock: luaspoa_frame_clock(state.L), arrival: pending.eventLoop.now - .nanoseconds(elapsed))
        waitingFrames += 1
        // The closure and the frame hold each other until complete() or the cancel drops it.
        pending.onCancel = { [weak self] in self?.cancel(frame) }
        wait(frame)
    }

    /// Starts what the frame's waiting message waits for, and its deadline.
    private func wait(_ frame: WaitingFrame) {
        // A frame suspended on a connection already closed: onCancel ran at once
        // when it was set and abandoned the call.
        guard !frame.pending.isCancelled else { return }
        let call = frame.message.call
        let loop = frame.pending.eventLoop
        if frame.deadline == nil, case let ms = luaspoa_call_deadline_ms(call), ms > 0 {
            let at = frame.arrival + .milliseconds(Int64(ms))
            frame.deadline = (at, ms)
            // Frames mostly end in the order they came: the ended ones at the front go.
            while let first = deadlines.frames.first, first.ended || first.deadline == nil { deadlines.frames.removeFirst() }
            deadlines.frames.append(frame)
            if deadlines.timer.map({ at < $0.at }) ?? true { armDeadlines(at, on: loop) }
        }
        frame.operation = LuaWaits.start(luaspoa_call_wait(call).pointee, on: loop) { [weak self] result in
            guard let self else { return }
            frame.operation = nil
            let message = frame.message(at: frame.message.index)
            let status = withFrame(frame) { _ in
                var next: OpaquePointer?
                let status = resume(message, call: frame.message.call, result: result, state: frame.state, waiting: &next)
                if let next { frame.message.call = next }
                return status
            }
            goOn(frame, status: status)
        }
    }

    /// One timer for the deadlines of all the waiting frames, due at the earliest
    /// (a timer per frame costs a schedule and a cancel, with a search of the loop's
    /// timers, for every waiting message).
    private func armDeadlines(_ at: NIODeadline, on loop: any EventLoop) {
        deadlines.timer?.task.cancel()
        deadlines.timer = (at, loop.assumeIsolated().scheduleTask(deadline: at) { [weak self] in
            self?.deadlinesDue(on: loop)
        })
    }

    /// Expires the frames past their deadline; sets the timer for the next one.
    private func deadlinesDue(on loop: any EventLoop) {
        deadlines.timer = nil
        let now = NIODeadline.now()
        let frames = deadlines.frames
        deadlines.frames.removeAll()
        var next: NIODeadline?
        for frame in frames where !frame.ended {
            guard let deadline = frame.deadline else { continue }
            if deadline.at <= now {
                expire(frame, deadline: deadline.ms)  // may set the frame's next deadline
            } else {
                deadlines.frames.append(frame)
                next = min(next ?? deadline.at, deadline.at)
            }
        }
        if let next, deadlines.timer.map({ next < $0.at }) ?? true { armDeadlines(next, on: loop) }
    }

    /// The waiting message's deadline passed: its call is abandoned, its on_error
    /// actions go into the ACK, and the frame goes on.
    private func expire(_ frame: WaitingFrame, deadline: UInt32) {
        frame.stopWaiting()
        let message = frame.message(at: frame.message.index)
        let status = withFrame(frame) { _ in
            abandon(message, call: frame.message.call, deadline: deadline, state: frame.state)
        }
        goOn(frame, status: status)
    }

    /// After a part of the waiting message ran: wait again, or finish it and run the
    /// frame's next messages; the ACK leaves when all are done.
    private func goOn(_ frame: WaitingFrame, status: Int32) {
        if status == LUASPOA_WAITING {
            wait(frame)
            return
        }
        frame.deadline = nil
        let done = frame.message
        let message = frame.message(at: done.index)
        let next = withFrame(frame) { ack in
            finished(message, status: status, startedAt: done.started)
            if tracing { trace(message, notify: frame.notify, actions: ack.pointee.actions(since: done.mark)) }
            return runMessages(frame.notify, from: done.index + 1, state: frame.state, ack: ack)
        }
        if let next {
            frame.message = next
            wait(frame)
            return
        }
        frameEnded()
        frame.ended = true
        frame.pending.complete()
    }

    /// Counts a frame out; when none waits, the deadline list lets go of the ended
    /// frames it still holds (and of their states, which a reload may have replaced).
    private func frameEnded() {
        waitingFrames -= 1
        guard waitingFrames == 0 else { return }
        deadlines.timer?.task.cancel()
        deadlines = ([], nil)
    }

    /// The connection closed: the call is closed (its __close methods run) and
    /// nothing is written.
    private func cancel(_ frame: WaitingFrame) {
        guard !frame.ended else { return }
        frame.ended = true
        frame.stopWaiting()
        frameEnded()
        let message = frame.message(at: frame.message.index)
        let state = frame.state
        state.ctx.pointee.stream_id = frame.notify.streamID
        state.ctx.pointee.frame_id = frame.notify.frameID
        // No ACK: a __close method's txn:set_var fails instead of writing. (Cancelled
        // from inside handle, bridge.ack is still the writer the frame just left.)
        let ack = state.bridge.ack
        state.bridge.ack = nil
        state.withEngineID(frame.engineID) {
            _ = abandon(message, call: frame.message.call, deadline: 0, state: state)
        }
        state.bridge.ack = ack
        state.bridge.currentMessage = nil
    }

    /// Runs `body` with the frame's state pointed at the frame (ids, engine id,
    /// frame clock) and its txn writing into the pending ACK.
    private func withFrame<R>(_ frame: WaitingFrame, _ body: (UnsafeMutablePointer<AckWriter>) -> R) -> R {
        let state = frame.state
        state.ctx.pointee.stream_id = frame.notify.streamID
        state.ctx.pointee.frame_id = frame.notify.frameID
        luaspoa_frame_set_clock(state.L, frame.frameClock)
        defer {
            frame.frameClock = luaspoa_frame_clock(state.L)
            luaspoa_reclaim(state.L)
        }
        return state.withEngineID(frame.engineID) {
            frame.pending.withWriter { writer in
                withUnsafeMutablePointer(to: &writer) { ack in
                    state.bridge.ack = ack
                    defer {
                        state.bridge.ack = nil
                        state.bridge.currentMessage = nil
                    }
                    return body(ack)
                }
            }
        }
    }

    /// `roundTrip` (tools): the wait happens here, blocking, and the call goes on in
    /// place; the deadline is checked against the (maybe frozen) test clock.
    func waitInline(
        _ message: SpoaMessage, call: OpaquePointer, state: LuaState, waiting: UnsafeMutablePointer<OpaquePointer?>
    ) -> Int32 {
        let started = luaspoa_clock_mono_ms()
        var call = call
        var status = Int32(LUASPOA_WAITING)
        while status == LUASPOA_WAITING {
            let result = LuaWaits.block(luaspoa_call_wait(call).pointee) ?? .done
            let deadline = luaspoa_call_deadline_ms(call)
            if deadline > 0, luaspoa_clock_mono_ms() - started >= Int64(deadline) {
                return abandon(message, call: call, deadline: deadline, state: state)
            }
            waiting.pointee = nil
            status = resume(message, call: call, result: result, state: state, waiting: waiting)
            if let next = waiting.pointee { call = next }
        }
        return status
    }
}
