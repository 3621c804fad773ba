import CLuaSpoa
import Foundation
import NIOCore

/// How one wait of a Lua function ended: its value, or why it failed (the Lua
/// function then returns `nil, message`).
enum LuaWaitResult {
    case done
    case failed(String)

    /// Writes the result into the call's `luaspoa_wait` for the duration of `body`
    /// (C reads the error text while it resumes the call).
    func withResult<R>(in wait: UnsafeMutablePointer<luaspoa_wait>, _ body: () -> R) -> R {
        guard case .failed(let message) = self else {
            wait.pointee.error = nil
            wait.pointee.error_len = 0
            return body()
        }
        var text = message
        return text.withUTF8 { utf8 in
            wait.pointee.error = UnsafeRawPointer(utf8.baseAddress!).assumingMemoryBound(to: CChar.self)
            wait.pointee.error_len = utf8.count
            defer { wait.pointee.error = nil }
            return body()
        }
    }
}

/// The one place where what a Lua function waits for (a `luaspoa_wait` filled by
/// `luaspoa_wait_yield` in C) becomes an operation: on the worker's event loop for
/// handlers, or on the calling thread for background tasks and the tools. A new
/// waiting function adds its case here and its C function in `CLuaSpoa`.
enum LuaWaits {
    /// A started operation; `cancel` abandons it: its completion never runs, even
    /// when its timer already fired in the loop turn that cancels it.
    final class Operation {
        fileprivate var scheduled: Scheduled<Void>?
        fileprivate var live = true

        func cancel() {
            live = false
            scheduled?.cancel()
        }
    }

    /// Starts `wait` on `eventLoop`; `completion` runs there once, unless cancelled.
    static func start(
        _ wait: luaspoa_wait, on eventLoop: any EventLoop, _ completion: @escaping (LuaWaitResult) -> Void
    ) -> Operation {
        let operation = Operation()
        let deliver = { (result: LuaWaitResult) in
            guard operation.live else { return }
            operation.live = false
            completion(result)
        }
        let loop = eventLoop.assumeIsolated()
        switch Int(wait.kind) {
        case LUASPOA_WAIT_SLEEP:
            operation.scheduled = loop.scheduleTask(in: .milliseconds(wait.ms)) { deliver(.done) }
        default:  // LUASPOA_WAIT_YIELD: the next turn of the loop, after what is queued now
            loop.execute { deliver(.done) }
        }
        return operation
    }

    /// Performs `wait` on the calling thread, blocking it: background tasks and the
    /// tools (`luaspoa test`, `eval`). With the test clock frozen (`T.clock.set_ms`), a
    /// sleep moves that clock instead of sleeping. `stop` ends a sleep early (false).
    static func block(_ wait: luaspoa_wait, stop: NSCondition? = nil, stopping: () -> Bool = { false }) -> Bool {
        guard Int(wait.kind) == LUASPOA_WAIT_SLEEP, wait.ms > 0 else { return true }
        if luaspoa_clock_is_frozen() != 0 {
            luaspoa_clock_advance_ms(wait.ms)
            return true
        }
        let until = Date(timeIntervalSinceNow: Double(wait.ms) / 1000)
        guard let stop else {
            Thread.sleep(until: until)
            return true
        }
        stop.lock()
        defer { stop.unlock() }
        while !stopping() {
            if !stop.wait(until: until) { return !stopping() }
        }
        return false
    }
}
