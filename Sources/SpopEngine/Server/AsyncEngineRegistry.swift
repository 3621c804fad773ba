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

    init(id: Int, key: EngineKey, channel: any Channel, maxFrameSize: Int, maxPendingOutput: Int) {
        self.id = id
        self.engineID = key.engineID
        self.key = key
        self.channel = channel
        self.maxFrameSize = maxFrameSize
        self.maxPendingOutput = maxPendingOutput
    }

    var candidate: AckRouting.Candidate {
        let (pending, closing) = state.withLockedValue { ($0.pendingBytes, $0.isClosing) }
        return .init(id: id, isWritable: channel.isWritable && pending < maxPendingOutput, isClosing: closing || !channel.isActive,
                     pendingBytes: pending, maxFrameSize: maxFrameSize)
    }

    /// Set on the peer's own loop when it sends or receives a DISCONNECT or loses its socket.
    func markClosing() { state.withLockedValue { $0.isClosing = true } }

    var isClosing: Bool { state.withLockedValue { $0.isClosing } }

    func addPending(_ bytes: Int) { state.withLockedValue { $0.pendingBytes += bytes } }

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
        promise.futureResult.whenComplete { [self] _ in addPending(-bytes) }
        return promise.futureResult
    }
}

/// Who may receive a connection's ACKs: the engine-id alone is whatever the peer says,
/// so any client presenting another's engine-id would get its ACKs. Siblings must also
/// come from the same IP address (all of HAProxy's connections do); a unix socket
/// peer has no address and counts as one host.
struct EngineKey: Hashable, Sendable {
    var engineID: String
    var peerHost: String

    init(engineID: String, channel: any Channel) {
        self.engineID = engineID
        self.peerHost = channel.remoteAddress?.ipAddress ?? "local"
    }
}

/// The established `async` connections by engine-id and peer address (HAProxy 2.6
/// announces one engine-id per thread and matches an ACK on any connection of that engine).
/// Shared by every event loop: the lock is taken when a connection comes or goes
/// and when an ACK is routed, never on the own-connection fast path.
final class AsyncEngineRegistry: Sendable {
    private struct Engine {
        var peers: [Int: AckPeer] = [:]
        /// Round-robin position for `--async-ack spread`.
        var turn = 0
    }
    private struct State {
        var engines: [EngineKey: Engine] = [:]
        var nextID = 0
    }
    private let state = NIOLockedValueBox(State())

    func register(engineID: String, channel: any Channel, maxFrameSize: Int, maxPendingOutput: Int) -> AckPeer {
        let key = EngineKey(engineID: engineID, channel: channel)
        return state.withLockedValue { state in
            state.nextID += 1
            let peer = AckPeer(id: state.nextID, key: key, channel: channel, maxFrameSize: maxFrameSize,
                               maxPendingOutput: maxPendingOutput)
            state.engines[key, default: Engine()].peers[peer.id] = peer
            return peer
        }
    }

    func unregister(_ peer: AckPeer) {
        state.withLockedValue { state in
            state.engines[peer.key]?.peers[peer.id] = nil
            if state.engines[peer.key]?.peers.isEmpty == true { state.engines[peer.key] = nil }
        }
    }

    /// The other connections of `peer`'s engine, and the engine's round-robin turn,
    /// which then moves on by `advancingTurnBy` (one per ACK spread).
    func siblings(of peer: AckPeer, advancingTurnBy steps: Int = 0) -> (peers: [Int: AckPeer], turn: Int) {
        state.withLockedValue { state in
            guard let engine = state.engines[peer.key] else { return ([:], 0) }
            if steps > 0 { state.engines[peer.key]?.turn &+= steps }
            let turn = engine.turn
            var others = engine.peers
            others[peer.id] = nil
            return (others, turn)
        }
    }

    /// Connections registered for `engineID`, from any address (tests and logs).
    func count(engineID: String) -> Int {
        state.withLockedValue { $0.engines.filter { $0.key.engineID == engineID }.values.reduce(0) { $0 + $1.peers.count } }
    }
}
