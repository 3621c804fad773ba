import CLuaSpoa
import Foundation
import NIOCore

/// How one wait of a Lua function ended: done, with values the function returns,
/// or why it failed (the Lua function then returns `nil, message`).
enum LuaWaitResult: Sendable {
    case done
    case values(LuaWaitReply)
    case failed(String)

    /// Writes the result into the call's `luaspoa_wait` for the duration of `body`
    /// (C reads the error text or the values while it resumes the call). `wait` is
    /// not touched after `body`: a call that ends in it is released, and may be
    /// freed. The pointers left in it are never read again: C clears them when the
    /// call waits next (`luaspoa_wait_yield`).
    func withResult<R>(in wait: UnsafeMutablePointer<luaspoa_wait>, _ body: () -> R) -> R {
        wait.pointee.error = nil
        wait.pointee.error_len = 0
        wait.pointee.values = nil
        wait.pointee.nvalues = 0
        switch self {
        case .done:
            return body()
        case .values(let reply):
            return reply.nodes.withUnsafeBufferPointer { nodes in
                reply.data.withUnsafeBufferPointer { data in
                    wait.pointee.values = nodes.baseAddress
                    wait.pointee.nvalues = nodes.count
                    wait.pointee.data = data.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
                    wait.pointee.data_len = data.count
                    return body()
                }
            }
        case .failed(let message):
            var text = message
            return text.withUTF8 { utf8 in
                wait.pointee.error = UnsafeRawPointer(utf8.baseAddress!).assumingMemoryBound(to: CChar.self)
                wait.pointee.error_len = utf8.count
                return body()
            }
        }
    }
}

/// Values a waiting Lua function returns, as C reads them (`luaspoa_wait_value`,
/// in preorder): an array or map node is followed by its elements, strings' bytes
/// are in `data`. Every client builds its replies with this.
struct LuaWaitReply: Sendable {
    private(set) var nodes: [luaspoa_wait_value] = []
    private(set) var data: [UInt8] = []

    mutating func null() { nodes.append(luaspoa_wait_value(type: Int32(LUASPOA_WV_NIL), len: 0, i: 0)) }
    mutating func int(_ value: Int64) { nodes.append(luaspoa_wait_value(type: Int32(LUASPOA_WV_INT), len: 0, i: value)) }
    mutating func bool(_ value: Bool) { nodes.append(luaspoa_wait_value(type: Int32(LUASPOA_WV_BOOL), len: 0, i: value ? 1 : 0)) }
    /// An array of `count` elements: append them next.
    mutating func array(_ count: Int) { nodes.append(luaspoa_wait_value(type: Int32(LUASPOA_WV_ARRAY), len: 0, i: Int64(count))) }
    /// A table of `count` pairs: append key, value, key, value... next.
    mutating func map(_ count: Int) { nodes.append(luaspoa_wait_value(type: Int32(LUASPOA_WV_MAP), len: 0, i: Int64(count))) }
    mutating func string(_ value: String) { bytes(value.utf8) }
    mutating func bytes<Bytes: Collection<UInt8>>(_ value: Bytes) { append(LUASPOA_WV_STR, value) }
    /// An address object from 4 or 16 bytes (network order).
    mutating func address<Bytes: Collection<UInt8>>(_ value: Bytes) { append(LUASPOA_WV_ADDR, value) }

    private mutating func append<Bytes: Collection<UInt8>>(_ type: Int, _ value: Bytes) {
        nodes.append(luaspoa_wait_value(type: Int32(type), len: value.count, i: Int64(data.count)))
        data.append(contentsOf: value)
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
        fileprivate var cancelRequest: (() -> Void)?
        fileprivate var live = true

        func cancel() {
            live = false
            scheduled?.cancel()
            cancelRequest?()
            cancelRequest = nil
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
        case LUASPOA_WAIT_HTTP, LUASPOA_WAIT_REDIS, LUASPOA_WAIT_DNS, LUASPOA_WAIT_TCP:
            let (future, cancel) = request(wait, on: eventLoop)
            operation.cancelRequest = cancel
            // Never before start returns (its caller stores the operation first).
            loop.execute {
                future.assumeIsolated().whenSuccess { deliver($0) }
            }
        default:  // LUASPOA_WAIT_YIELD: the next turn of the loop, after what is queued now
            loop.execute { deliver(.done) }
        }
        return operation
    }

    /// Starts a client's request on `loop` (its strings copied before this returns);
    /// the future completes there, never failed.
    private static func request(
        _ wait: luaspoa_wait, on loop: any EventLoop
    ) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        switch Int(wait.kind) {
        case LUASPOA_WAIT_HTTP: UpstreamMetrics.measure(wait, LuaHTTP.start(wait, on: loop))
        case LUASPOA_WAIT_REDIS: UpstreamMetrics.measure(wait, LuaRedis.start(wait, on: loop))
        case LUASPOA_WAIT_DNS: UpstreamMetrics.measure(wait, LuaDNS.start(wait, on: loop))
        default: UpstreamMetrics.measure(wait, LuaTCP.start(wait, on: loop))
        }
    }

    /// Performs `wait` on the calling thread, blocking it: background tasks and the
    /// tools (`luaspoa test`, `eval`). With the test clock frozen (`T.clock.set_ms`), a
    /// sleep moves that clock instead of sleeping. `stop` ends a sleep early (nil);
    /// a client's request runs on a loop of its own and ends by its timeout.
    static func block(_ wait: luaspoa_wait, stop: NSCondition? = nil, stopping: () -> Bool = { false }) -> LuaWaitResult? {
        switch Int(wait.kind) {
        case LUASPOA_WAIT_HTTP, LUASPOA_WAIT_REDIS, LUASPOA_WAIT_DNS, LUASPOA_WAIT_TCP:
            let (future, _) = request(wait, on: Upstream.backgroundLoop)
            return (try? future.wait()) ?? .failed("cancelled")
        default:
            break
        }
        guard Int(wait.kind) == LUASPOA_WAIT_SLEEP, wait.ms > 0 else { return .done }
        if luaspoa_clock_is_frozen() != 0 {
            luaspoa_clock_advance_ms(wait.ms)
            return .done
        }
        let until = Date(timeIntervalSinceNow: Double(wait.ms) / 1000)
        guard let stop else {
            Thread.sleep(until: until)
            return .done
        }
        stop.lock()
        defer { stop.unlock() }
        while !stopping() {
            if !stop.wait(until: until) { return stopping() ? nil : .done }
        }
        return nil
    }
}
