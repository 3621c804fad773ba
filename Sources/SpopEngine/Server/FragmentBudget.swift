import NIOConcurrencyHelpers

/// Bytes held by unfinished fragmented NOTIFYs across all connections. Each connection
/// is capped on its own (`--max-notify-size`), but many of them could still hold
/// hundreds of MB; this is the process-wide bound. Taken only for fragments, never
/// on the path of a whole NOTIFY.
final class FragmentBudget: Sendable {
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    /// Moves a connection's reservation from `old` to `new` bytes; false (and nothing
    /// changed) if growing it would pass the limit. Shrinking always succeeds.
    func resize(from old: Int, to new: Int) -> Bool {
        used.withLockedValue { used in
            guard new <= old || used - old + new <= limit else { return false }
            used += new - old
            return true
        }
    }

    var bytesInUse: Int { used.withLockedValue { $0 } }
}
