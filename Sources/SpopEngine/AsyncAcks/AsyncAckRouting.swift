import Logging
import NIOCore

/// Server-wide part of `async` ACK routing: the engine registry, the mode and the
/// counters. Made once by `SpopServer` when `async` is announced.
struct AsyncAckRouting: Sendable {
    let registry = AsyncEngineRegistry()
    let mode: AsyncAckMode
    /// `--max-pending-output`, the write-buffer high-water mark of every connection.
    let maxPendingOutput: Int
    let metrics: ServerMetrics
    let logger: Logger

    /// Hands `frames` to `sibling`; if that fails too, tries the next sibling not yet tried.
    func send(_ frames: [ByteBuffer], from own: AckPeer, to sibling: AckPeer, reason: AckRouting.Reason, tried: Set<Int>) {
        sibling.deliver(frames) { written in
            guard let failed = written else {
                metrics.acksRerouted[reason]?.increment(by: Int64(frames.count))
                return
            }
            rescue(failed, from: own, reason: .writeFailed, tried: tried.union([sibling.id]))
        }
    }

    /// ACK frames that could not be written on the connections in `tried`: another
    /// sibling of the engine gets them, or they are lost as without `async` (and counted).
    func rescue(_ frames: [ByteBuffer], from own: AckPeer, reason: AckRouting.Reason, tried: Set<Int>) {
        let (peers, _) = registry.siblings(of: own)
        let target = AckRouting.rescue(own: own.candidate, siblings: peers.values.map(\.candidate), failed: tried)
        guard let target, let sibling = peers[target] else {
            metrics.acksRerouteFailed.increment(by: Int64(frames.count))
            logger.debug("\(frames.count) ACKs lost: their connection failed and no sibling of engine \(own.engineID) could take them")
            return
        }
        send(frames, from: own, to: sibling, reason: reason, tried: tried)
    }
}
