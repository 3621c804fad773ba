/// Rate-limits handler error logs per (message, error site), so a script that
/// fails on every request logs once per interval instead of flooding the log.
struct ErrorLogLimiter {
    enum Decision: Equatable {
        /// Log it; `suppressed` similar errors were dropped since the last line.
        case log(suppressed: Int)
        case suppress
    }

    private struct Entry {
        var lastLogged: UInt64
        var suppressed: Int
    }

    let intervalNanoseconds: UInt64
    private var entries: [String: Entry] = [:]
    private static let maxEntries = 1024

    init(intervalNanoseconds: UInt64 = 10_000_000_000) {
        self.intervalNanoseconds = intervalNanoseconds
    }

    mutating func decide(message: String, error: String, now: UInt64) -> Decision {
        let key = message + "\u{0}" + Self.site(of: error)
        if var entry = entries[key] {
            guard now &- entry.lastLogged >= intervalNanoseconds else {
                entry.suppressed += 1
                entries[key] = entry
                return .suppress
            }
            entries[key] = Entry(lastLogged: now, suppressed: 0)
            return .log(suppressed: entry.suppressed)
        }
        if entries.count >= Self.maxEntries { entries.removeAll(keepingCapacity: true) }
        entries[key] = Entry(lastLogged: now, suppressed: 0)
        return .log(suppressed: 0)
    }

    /// "file.lua:17" from "file.lua:17: attempt to ..."; errors without a
    /// location (memory) are keyed by their first line.
    static func site(of error: String) -> String {
        let firstLine = error.prefix { $0 != "\n" }
        let parts = firstLine.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, !parts[1].isEmpty, parts[1].allSatisfy(\.isNumber) {
            return "\(parts[0]):\(parts[1])"
        }
        return String(firstLine.prefix(120))
    }
}
