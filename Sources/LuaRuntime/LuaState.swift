import CLuaSpoa
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Logging
import NIOCore
import SpopEngine

/// What the C callbacks reach through `ctx.ud`: the logger and, while one frame is
/// handled, the frame's AckWriter. The callbacks never throw or raise.
final class LuaBridge {
    var logger: Logger
    /// Set only for the duration of `LuaWorker.handle`.
    var ack: UnsafeMutablePointer<AckWriter>?
    /// The message being handled, for log metadata.
    var currentMessage: ByteBuffer?
    /// The state's C context, so callbacks can report details (max-frame-size).
    var ctx: UnsafeMutablePointer<luaspoa_ctx>?

    /// Lua warnings (errors in `__gc`) can come once per collected object.
    private var warnings = ErrorLogLimiter()

    /// Longest message logged from Lua; the rest is dropped and counted.
    static let maxLogBytes = 4096

    init(logger: Logger) {
        self.logger = logger
    }

    /// `fields`: a script's structured fields (spoa.log's table), as metadata:
    /// `--log-format json` writes them as keys, the text format as key=value.
    func log(level: Int32, _ bytes: UnsafeRawBufferPointer, fields: UnsafeBufferPointer<luaspoa_log_field> = .init(start: nil, count: 0)) {
        let text = Self.capped(bytes)
        var metadata: Logger.Metadata = [:]
        for field in fields {
            let key = String(decoding: UnsafeRawBufferPointer(start: field.key, count: field.key_len), as: UTF8.self)
            metadata[key] = .string(Self.capped(UnsafeRawBufferPointer(start: field.value, count: field.value_len)))
        }
        if level == Int32(LUASPOA_LOG_LUA_WARNING) {
            let now = UInt64(DispatchTime.now().uptimeNanoseconds)
            guard case .log(let suppressed) = warnings.decide(message: "warn", error: text, now: now) else { return }
            if suppressed > 0 { metadata["lua.suppressed"] = "\(suppressed)" }
        }
        if let currentMessage { metadata["lua.message"] = "\(String(buffer: currentMessage))" }
        let level: Logger.Level = switch level {
        case ...2: .critical
        case 3: .error
        case 4, Int32(LUASPOA_LOG_LUA_WARNING): .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
        logger.log(level: level, "\(text)", metadata: metadata.isEmpty ? nil : metadata)
    }

    /// The text of `bytes`, cut at `maxLogBytes` (on a UTF-8 character boundary)
    /// with "... (N bytes truncated)".
    static func capped(_ bytes: UnsafeRawBufferPointer) -> String {
        guard bytes.count > maxLogBytes else { return String(decoding: bytes, as: UTF8.self) }
        var end = maxLogBytes
        while end > 0, bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self) + "... (\(bytes.count - end) bytes truncated)"
    }
}

/// One sandboxed `lua_State` with the script loaded. Not thread-safe: owned by one
/// worker and used only on its thread. Closes the state in deinit.
final class LuaState {
    let scriptPath: String
    let bridge: LuaBridge
    let ctx: UnsafeMutablePointer<luaspoa_ctx>
    private(set) var L: OpaquePointer?
    private let errorVariable: UnsafeMutablePointer<CChar>?
    private var varPrefix: UnsafeMutableBufferPointer<CChar>?

    static let errorCapacity = 4096

    init(configuration: LuaConfiguration, workerIndex: Int, generation: Int, logger: Logger) throws(LuaScriptError) {
        let scriptPath = configuration.scriptPath
        let memoryLimit = configuration.memoryLimit
        let varPrefix = configuration.varPrefix
        self.scriptPath = scriptPath
        self.bridge = LuaBridge(logger: logger)
        self.ctx = .allocate(capacity: 1)
        self.errorVariable = configuration.errorVariable.map { strdup($0) }
        ctx.initialize(to: luaspoa_ctx())
        ctx.pointee.worker_index = Int32(clamping: workerIndex)
        ctx.pointee.worker_count = Int32(clamping: configuration.workerCount)
        ctx.pointee.timeout_ms = UInt32(clamping: configuration.timeoutMilliseconds)
        ctx.pointee.load_timeout_ms = UInt32(clamping: configuration.loadTimeoutMilliseconds)
        ctx.pointee.frame_timeout_ms = UInt32(clamping: configuration.effectiveFrameTimeoutMilliseconds)
        ctx.pointee.deadline_ms = UInt32(clamping: configuration.deadlineMilliseconds)
        ctx.pointee.unsafe_libs = configuration.unsafeLibraries ? 1 : 0
        ctx.pointee.generation = Int64(generation)
        if let errorVariable {
            ctx.pointee.error_var = UnsafePointer(errorVariable)
            ctx.pointee.error_var_len = strlen(errorVariable)
        }
        ctx.pointee.ud = Unmanaged.passUnretained(bridge).toOpaque()
        bridge.ctx = ctx
        ctx.pointee.append_action = { ud, kind, scope, name, nameLength, value in
            LuaState.appendAction(ud, kind, scope, name, nameLength, value)
        }
        ctx.pointee.ack_mark = { ud in
            let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
            return bridge.ack.map { size_t($0.pointee.mark) } ?? 0
        }
        ctx.pointee.ack_rollback = { ud, mark in
            let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
            bridge.ack?.pointee.rollback(to: Int(mark))
        }
        ctx.pointee.get_action = { ud, scope, name, nameLength, out in
            LuaState.queuedAction(ud, scope, name, nameLength, out)
        }
        if let varPrefix {
            let copy = Self.cString(varPrefix)
            self.varPrefix = copy
            ctx.pointee.var_prefix = UnsafePointer(copy.baseAddress)
            ctx.pointee.var_prefix_len = varPrefix.utf8.count
        }
        ctx.pointee.log = { ud, level, text, length in
            let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
            bridge.log(level: level, UnsafeRawBufferPointer(start: text, count: length))
        }
        ctx.pointee.log_fields = { ud, level, text, length, fields, count in
            let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
            bridge.log(level: level, UnsafeRawBufferPointer(start: text, count: length),
                       fields: UnsafeBufferPointer(start: fields, count: count))
        }
        var state: OpaquePointer?
        let error = withUnsafeTemporaryAllocation(of: CChar.self, capacity: Self.errorCapacity) { buffer in
            buffer[0] = 0
            let load = { [ctx] (source: UnsafePointer<CChar>?, length: Int) in
                luaspoa_newstate(ctx, scriptPath, source, length, max(memoryLimit, 0), buffer.baseAddress, buffer.count)
            }
            if let source = configuration.scriptSource {
                // A non-NULL pointer even for an empty script: NULL means "read the file".
                state = source.isEmpty ? load("", 0) : source.withUnsafeBufferPointer { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { load($0.baseAddress, $0.count) }
                }
            } else {
                state = load(nil, 0)
            }
            return state == nil ? String(cString: buffer.baseAddress!) : nil
        }
        guard let state else {
            // All stored properties are set: deinit runs and frees ctx.
            throw LuaScriptError(scriptPath: scriptPath, luaError: error ?? "cannot create the Lua state")
        }
        self.L = state
    }

    deinit {
        luaspoa_close(L)
        ctx.deinitialize(count: 1)
        ctx.deallocate()
        free(errorVariable)
        varPrefix?.deallocate()
    }

    /// A NUL-terminated C copy of `text`, to deallocate by the caller.
    static func cString(_ text: String) -> UnsafeMutableBufferPointer<CChar> {
        let utf8 = Array(text.utf8)
        let copy = UnsafeMutableBufferPointer<CChar>.allocate(capacity: utf8.count + 1)
        for (index, byte) in utf8.enumerated() { copy[index] = CChar(bitPattern: byte) }
        copy[utf8.count] = 0
        return copy
    }

    /// Bytes currently allocated by the Lua state.
    var memoryInUse: Int { luaspoa_memory(L) }

    /// Runs `body` with `txn.engine_id` pointing into `id`'s own UTF-8 storage: no
    /// copy, and nothing re-made when connections of several HAProxy threads (each
    /// with its own engine-id) take turns on this worker.
    func withEngineID<Result>(_ id: String?, _ body: () -> Result) -> Result {
        defer {
            ctx.pointee.engine_id = nil
            ctx.pointee.engine_id_len = 0
        }
        guard var id else { return body() }
        return id.withUTF8 { utf8 in
            ctx.pointee.engine_id = UnsafeRawPointer(utf8.baseAddress)?.assumingMemoryBound(to: CChar.self)
            ctx.pointee.engine_id_len = utf8.count
            return body()
        }
    }

    // MARK: callbacks (never throw)

    private static func queuedAction(
        _ ud: UnsafeMutableRawPointer?, _ scope: Int32, _ name: UnsafePointer<CChar>?, _ nameLength: Int,
        _ out: UnsafeMutablePointer<spoa_value>?
    ) -> Int32 {
        let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
        guard let ack = bridge.ack, let out, let scope = VarScope(rawValue: UInt8(truncatingIfNeeded: scope)) else { return 0 }
        switch ack.pointee.latestAction(scope, name: UnsafeRawBufferPointer(start: name, count: nameLength)) {
        case .set(let value)?:
            // Byte values point into the ACK's storage, which outlives this call.
            out.pointee = spoa_value(borrowing: value)
            return Int32(LUASPOA_ACTION_SET)
        case .unset?:
            return Int32(LUASPOA_ACTION_UNSET)
        case nil:
            return 0
        }
    }

    private static func appendAction(
        _ ud: UnsafeMutableRawPointer?, _ kind: Int32, _ scope: Int32,
        _ name: UnsafePointer<CChar>?, _ nameLength: Int, _ value: UnsafePointer<spoa_value>?
    ) -> Int32 {
        let bridge = Unmanaged<LuaBridge>.fromOpaque(ud!).takeUnretainedValue()
        guard let ack = bridge.ack, let scope = VarScope(rawValue: UInt8(truncatingIfNeeded: scope)) else { return 2 }
        let nameBytes = UnsafeRawBufferPointer(start: name, count: nameLength)
        do {
            if kind == Int32(LUASPOA_ACTION_UNSET) {
                try ack.pointee.unsetVar(scope, name: nameBytes)
            } else if let value {
                try ack.pointee.setVar(scope, name: nameBytes, wireValue: value.pointee.wireValue)
            } else {
                return 2
            }
            return 0
        } catch {
            // AckWriter wrote nothing of the action; C raises "ACK full".
            bridge.ctx?.pointee.max_frame_size = error.maxFrameSize
            return 1
        }
    }
}
