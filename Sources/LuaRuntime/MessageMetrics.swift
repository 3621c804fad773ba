import CLuaSpoa
import CoreMetrics
import Dispatch
import NIOCore

/// Per-message-name metrics of one worker: messages, handler latency (from the
/// message's start to its end, waits included), errors, timeouts and deadlines.
/// Objects are made the first time a name is seen and cached by the name's bytes,
/// so the hot path neither allocates nor builds a label.
///
/// One instance per worker, used only on its thread, with its own series. Only installed when metrics
/// are exported: without it a worker reads no clock.
public final class MessageMetrics {
    struct Entry {
        let messages: Counter
        let latency: Timer
        let errors: Counter
        let timeouts: Counter
        let unhandled: Counter
        let deadlines: Counter

        init(name: String, worker: String) {
            let dimensions = [("message", name), ("worker", worker)]
            messages = Counter(label: "luaspoa_messages_total", dimensions: dimensions)
            latency = Timer(label: "luaspoa_handler_duration_seconds", dimensions: dimensions)
            errors = Counter(label: "luaspoa_lua_errors_total", dimensions: dimensions)
            timeouts = Counter(label: "luaspoa_lua_timeouts_total", dimensions: dimensions)
            unhandled = Counter(label: "luaspoa_messages_unhandled_total", dimensions: dimensions)
            deadlines = Counter(label: "luaspoa_lua_deadline_exceeded_total", dimensions: dimensions)
        }
    }

    /// Names beyond this share the label "other": a misconfigured HAProxy must not
    /// grow the metrics without bound.
    static let maxNames = 64
    private var entries: [ByteBuffer: Entry] = [:]
    /// The last name seen: agents mostly get one message name, so this skips hashing.
    private var last: (name: ByteBuffer, entry: Entry)?
    private lazy var other = Entry(name: "other", worker: worker)
    /// A label of its own per worker: two workers never touch the same counter or
    /// histogram lock (sum by message in queries).
    private let worker: String

    public init(worker: Int) { self.worker = "\(worker)" }

    /// The clock the latency is measured with (monotonic nanoseconds).
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    func record(_ name: ByteBuffer, status: Int32, startedAt start: UInt64) {
        let elapsed = Self.now() &- start
        let entry = self.entry(name)
        entry.messages.increment()
        entry.latency.recordNanoseconds(Int64(clamping: elapsed))
        switch Int(status) {
        case LUASPOA_TIMEOUT:
            entry.errors.increment()
            entry.timeouts.increment()
        case LUASPOA_ERROR: entry.errors.increment()
        case LUASPOA_DEADLINE:
            entry.errors.increment()
            entry.deadlines.increment()
        case LUASPOA_NO_HANDLER: entry.unhandled.increment()
        default: break
        }
    }

    private func entry(_ name: ByteBuffer) -> Entry {
        if let last, last.name == name { return last.entry }
        let found = lookup(name)
        last = found
        return found.entry
    }

    /// Keys are copies: a slice of the frame would keep its whole read buffer alive.
    private func lookup(_ name: ByteBuffer) -> (name: ByteBuffer, entry: Entry) {
        if let index = entries.index(forKey: name) { return (entries.keys[index], entries.values[index]) }
        let key = ByteBuffer(bytes: name.readableBytesView)
        guard entries.count < Self.maxNames else { return (key, other) }
        let entry = Entry(name: String(buffer: name), worker: worker)
        entries[key] = entry
        return (key, entry)
    }
}
