/// The pure decision "on which connection does this ACK leave": no sockets, no
/// threads, so every rule is unit-tested. `ConnectionAckRouter` executes it.
public enum AckRouting {
    /// What the decision needs to know about one connection of the engine.
    public struct Candidate: Equatable, Sendable {
        public var id: Int
        /// Below the write-buffer high-water mark.
        public var isWritable: Bool
        /// Sent or received a DISCONNECT, or its socket is gone: HAProxy ignores ACKs there.
        public var isClosing: Bool
        /// ACK bytes handed to the socket and not yet written.
        public var pendingBytes: Int
        /// Negotiated max-frame-size: the sibling must accept frames of the ACK's size.
        public var maxFrameSize: Int

        public init(id: Int, isWritable: Bool = true, isClosing: Bool = false, pendingBytes: Int = 0, maxFrameSize: Int = 16380) {
            self.id = id
            self.isWritable = isWritable
            self.isClosing = isClosing
            self.pendingBytes = pendingBytes
            self.maxFrameSize = maxFrameSize
        }

        var canTake: Bool { isWritable && !isClosing }
    }

    public enum Decision: Equatable, Sendable {
        /// Write on the own connection (also when nothing better exists: as without async).
        case own
        case sibling(id: Int)
    }

    /// Why an ACK left on a sibling (the `reason` label of `luaspoa_acks_rerouted_total`).
    public enum Reason: String, CaseIterable, Sendable {
        case unwritable, closing, spread
        /// The write on the own connection (or on a first sibling) failed.
        case writeFailed = "write_failed"
    }

    /// - Parameters:
    ///   - own: the NOTIFY's connection (only connections that negotiated `async` are routed).
    ///   - siblings: the other connections of the same engine-id that negotiated `async`
    ///     (an entry with `own.id` is ignored).
    ///   - turn: the engine's round-robin counter, used by `.spread`.
    public static func decide(mode: AsyncAckMode, own: Candidate, siblings: [Candidate], turn: Int) -> Decision {
        switch mode {
        case .own:
            guard !own.canTake, let best = leastLoaded(usable(siblings, for: own)) else { return .own }
            return .sibling(id: best.id)
        case .spread:
            let ring = ((own.canTake ? [own] : []) + usable(siblings, for: own)).sorted { $0.id < $1.id }
            guard !ring.isEmpty else { return .own }
            let pick = ring[Int(UInt(bitPattern: turn) % UInt(ring.count))]
            return pick.id == own.id ? .own : .sibling(id: pick.id)
        }
    }

    /// The reason to count when the decision sent an ACK of `own` to a sibling.
    public static func reason(own: Candidate) -> Reason {
        if own.isClosing { return .closing }
        return own.isWritable ? .spread : .unwritable
    }

    /// Where an ACK goes after its write failed on `failed` connections: the
    /// sibling with the least pending output that has not failed yet, if any.
    public static func rescue(own: Candidate, siblings: [Candidate], failed: Set<Int>) -> Int? {
        leastLoaded(usable(siblings, for: own).filter { !failed.contains($0.id) })?.id
    }

    /// True when some sibling could take `own`'s ACKs: an unwritable connection may
    /// then go on reading NOTIFYs instead of holding reads for backpressure.
    public static func canOffload(own: Candidate, siblings: [Candidate]) -> Bool {
        !usable(siblings, for: own).isEmpty
    }

    /// Open, writable siblings that accept frames as large as `own`'s.
    private static func usable(_ siblings: [Candidate], for own: Candidate) -> [Candidate] {
        siblings.filter { $0.id != own.id && $0.canTake && $0.maxFrameSize >= own.maxFrameSize }
    }

    /// Least pending output first; the lower id breaks ties so the choice is stable.
    private static func leastLoaded(_ candidates: [Candidate]) -> Candidate? {
        candidates.min { ($0.pendingBytes, $0.id) < ($1.pendingBytes, $1.id) }
    }
}
