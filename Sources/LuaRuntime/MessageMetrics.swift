import CLuaSpoa
import CoreMetrics
import Dispatch
import NIOCore

/// Per-message-name metrics of one worker: messages, handler latency, errors and
/// timeouts. Objects are made the first time a name is seen and cached by the
/// name's bytes, so the hot path neither allocates nor builds a label.
///
/// One instance per worker, used only on its thread. Only installed when metrics
/// are exported: without it a worker reads no clock.
public final class MessageMetrics {
    struct Entry {
        let messages: Counter
        let latency: Timer
        let errors: Counter
        let timeouts: Counter
        let unhandled: Counter

        init(name: String) {
            let dimensions = [("message", name)]
            messages = Counter(label: "luaspoa_messages_total", dimensions: dimensions)
            latency = Timer(label: "luaspoa_handler_duration_seconds", dimensions: dimensions)
            errors = Counter(label: "luaspoa_lua_errors_total", dimensions: dimensions)
            timeouts = Counter(label: "luaspoa_lua_timeouts_total", dimensions: dimensions)
            unhandled = Counter(label: "luaspoa_messages_unhandled_total", dimensions: dimensions)
        }
    }

    /// Names beyond this share the label "other": a misconfigured HAProxy must not
    /// grow the metrics without bound.
    static let maxNames = 64
    private var entries: [ByteBuffer: Entry] = [:]
    private lazy var other = Entry(name: "other")

    public init() {}

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
        case LUASPOA_NO_HANDLER: entry.unhandled.increment()
        default: break
        }
    }

    private func entry(_ name: ByteBuffer) -> Entry {
        if let entry = entries[name] { return entry }
        guard entries.count < Self.maxNames else { return other }
        let entry = Entry(name: String(buffer: name))
        entries[name] = entry
        return entry
    }
}
