import NIOConcurrencyHelpers
import NIOCore

/// One established connection that negotiated `async`, as seen from other threads.
///
/// Its handler runs on `channel.eventLoop`; other loops only read the lock-protected
/// counters and hand buffers to that loop (`deliver`), never touch the handler.
final class AckPeer: Sendable {
    let id: Int
    let engineID: String
    /// Siblings are connections of the same engine-id *and* peer address (see `EngineKey`).
    let key: EngineKey
    let channel: any Channel
    let maxFrameSize: Int
    /// The write-buffer high-water mark: ACKs handed over but not yet written count
    /// against it at once, before the channel's own writability flips.
    let maxPendingOutput: Int

    private struct State {
        var pendingBytes = 0
        var isClosing = false
    }
    private let state = NIOLockedValueBox(State())
    /// Called on the peer's loop when its pending ACKs fall below the mark. The channel
    /// turns writable at its low-water mark, before the promise of a batch's last frame
    /// completes: a handler that found the peer full then (and paused decoding) gets
    /// no writability change afterwards, so this wakes it.
    private let room: NIOLoopBoundBox<(() -> Void)?>

    init(id: Int, key: EngineKey, channel: any Channel, maxFrameSize: Int, maxPendingOutput: Int) {
        self.id = id
        self.engineID = key.engineID
        self.key = key
        self.channel = channel
        self.maxFrameSize = maxFrameSize
        self.maxPendingOutput = maxPendingOutput
        self.room = .makeEmptyBox(eventLoop: channel.eventLoop)
    }

    /// Sets (or, with nil, clears) what runs when the pending ACKs fall below the mark. On the peer's loop.
    func onRoom(_ wake: (() -> Void)?) { room.value = wake }

    var candidate: AckRouting.Candidate {
        let (pending, closing) = state.withLockedValue { ($0.pendingBytes, $0.isClosing) }
        return .init(id: id, isWritable: channel.isWritable && pending < maxPendingOutput, isClosing: closing || !channel.isActive,
                     pendingBytes: pending, maxFrameSize: maxFrameSize)
    }

    /// Set on the peer's own loop when it sends or receives a DISCONNECT or loses its socket.
    func markClosing() { state.withLockedValue { $0.isClosing = true } }

    var isClosing: Bool { state.withLockedValue { $0.isClosing } }

    /// Adds `bytes` to the pending output (negative: takes them off); true if that
    /// took it from the mark or above to below it.
    @discardableResult
    func addPending(_ bytes: Int) -> Bool {
        let before = state.withLockedValue { state in
            let before = state.pendingBytes
            state.pendingBytes += bytes
            return before
        }
        return before >= maxPendingOutput && before + bytes < maxPendingOutput
    }

    /// Writes `frames` on this connection from another loop, then calls `done` with
    /// nil, or with the frames if the connection closed meanwhile or the write failed.
    func deliver(_ frames: [ByteBuffer], done: @escaping @Sendable (_ failed: [ByteBuffer]?) -> Void) {
        // Counted before the hop: routing decisions on other loops see them at once.
        let bytes = AckFrames.byteCount(frames)
        addPending(bytes)
        channel.eventLoop.execute { [self] in
            guard !isClosing, channel.isActive else {
                addPending(-bytes)
                return done(frames)
            }
            write(frames, counted: bytes, flush: true).whenComplete { result in
                if case .failure = result { done(frames) } else { done(nil) }
            }
        }
    }

    /// Writes `frames` on this connection, on its own loop. Their `counted` bytes,
    /// already added to the pending output, are taken off once the write completes.
    func write(_ frames: [ByteBuffer], counted bytes: Int, flush: Bool) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        for frame in frames.dropLast() { channel.write(frame, promise: nil) }
        channel.write(frames[frames.count - 1], promise: promise)
        if flush { channel.flush() }
        promise.futureResult.whenComplete { [self] _ in
            if addPending(-bytes) { room.value?() }
        }
        return promise.futureResult
    }
}
