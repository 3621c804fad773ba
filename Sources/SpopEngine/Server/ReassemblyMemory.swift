import NIOConcurrencyHelpers

/// The bytes of unfinished fragmented NOTIFYs held by all connections of a server,
/// against `ServerLimits.maxReassemblyMemory`. Touched only when a fragment arrives
/// or a connection holding one goes away, never for an unfragmented frame.
final class ReassemblyMemory: Sendable {
    let limit: Int
    private let held = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    var bytesHeld: Int { held.withLockedValue { $0 } }

    /// Moves a connection's share from `old` to `new` bytes; false (nothing changed)
    /// if growing it would go over the limit.
    func resize(from old: Int, to new: Int) -> Bool {
        held.withLockedValue { held in
            guard new <= old || held - old + new <= limit else { return false }
            held += new - old
            return true
        }
    }
}
