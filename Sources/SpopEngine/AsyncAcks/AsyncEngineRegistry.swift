import NIOConcurrencyHelpers
import NIOCore

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
