import Logging
import NIOCore

/// Executes `AckRouting` for one connection, on its event loop: writes the ACK bytes
/// of a read burst on the own channel or hands them to siblings of the same engine.
final class ConnectionAckRouter {
    private let routing: AsyncAckRouting
    private let peer: AckPeer

    init(routing: AsyncAckRouting, engineID: String, channel: any Channel, maxFrameSize: Int) {
        self.routing = routing
        self.peer = routing.registry.register(engineID: engineID, channel: channel, maxFrameSize: maxFrameSize,
                                              maxPendingOutput: routing.maxPendingOutput)
        channel.closeFuture.whenComplete { [peer] _ in
            peer.markClosing()
            peer.onRoom(nil)
            routing.registry.unregister(peer)
        }
    }

    /// `wake` runs on this connection's loop when its pending ACKs fall below the mark.
    func onRoom(_ wake: @escaping () -> Void) { peer.onRoom(wake) }

    /// Writes a burst's ACK frames where the decision says; true if some were
    /// written on the own connection (the caller flushes).
    func write(_ batch: ByteBuffer) -> Bool {
        let own = peer.candidate
        if routing.mode == .own, !own.isClosing, own.isWritable {
            writeOwn([batch])
            return true
        }
        let frames = AckFrames.split(batch)
        let (peers, turn) = routing.registry.siblings(of: peer, advancingTurnBy: routing.mode == .spread ? frames.count : 0)
        let siblings = peers.values.map(\.candidate)
        var mine: [ByteBuffer] = []
        var theirs: [Int: [ByteBuffer]] = [:]
        for (index, frame) in frames.enumerated() {
            switch AckRouting.decide(mode: routing.mode, own: own, siblings: siblings, turn: turn &+ index) {
            case .own: mine.append(frame)
            case .sibling(let id): theirs[id, default: []].append(frame)
            }
        }
        let reason = AckRouting.reason(own: own)
        if reason != .spread, !theirs.isEmpty {
            routing.logger.debug("\(frames.count) ACKs go to a sibling connection (own connection \(reason.rawValue))")
        }
        for (id, frames) in theirs {
            guard let sibling = peers[id] else { continue }
            routing.send(frames, from: peer, to: sibling, reason: reason, tried: [peer.id])
        }
        guard !mine.isEmpty else { return false }
        writeOwn(mine)
        return true
    }

    /// A sibling could take this connection's ACKs while it is not writable itself.
    var siblingCanTakeAcks: Bool {
        let (peers, _) = routing.registry.siblings(of: peer)
        return AckRouting.canOffload(own: peer.candidate, siblings: peers.values.map(\.candidate))
    }

    /// The connection sends or received a DISCONNECT: HAProxy ignores ACKs on it from now on.
    func markClosing() { peer.markClosing() }

    /// ACKs decoded but not written when the connection went away go to a sibling.
    func connectionLost(pending: ByteBuffer?) {
        peer.markClosing()
        guard let pending else { return }
        routing.rescue(AckFrames.split(pending), from: peer, reason: .closing, tried: [peer.id])
    }

    /// Writes on the own connection (the caller flushes); if that fails, siblings get the frames.
    private func writeOwn(_ frames: [ByteBuffer]) {
        let bytes = AckFrames.byteCount(frames)
        peer.addPending(bytes)
        peer.write(frames, counted: bytes, flush: false).whenFailure { [peer, routing] _ in
            peer.markClosing()
            routing.rescue(frames.flatMap(AckFrames.split), from: peer, reason: .writeFailed, tried: [peer.id])
        }
    }
}
