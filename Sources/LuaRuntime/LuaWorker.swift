import CLuaSpoa
import Dispatch
import Logging
import NIOCore
import SpopEngine

/// Answers NOTIFY frames with a Lua script: one `lua_State` per worker, used only
/// on the worker's event-loop thread.
///
/// Each message runs in one protected call (`luaspoa_dispatch`). A failing handler
/// loses only its own message's actions; the frame's other messages keep theirs and
/// the ACK is always sent.
public final class LuaWorker: SpoaWorker {
    public var scriptPath: String { state.scriptPath }
    public let workerIndex: Int
    /// Messages whose handler raised an error (timeouts included) since the worker started.
    public private(set) var handlerErrors = 0
    /// Messages whose handler was stopped by its time budget.
    public private(set) var handlerTimeouts = 0
    /// Messages that had no registered handler.
    public private(set) var unhandledMessages = 0
    /// Reloads installed in this worker (`spoa.generation` of the current state).
    public private(set) var generation = 0

    private(set) var state: LuaState
    /// Per-message metrics; nil (no clock read) unless metrics are exported.
    public var metrics: MessageMetrics?
    /// The last handler error ("file:line: message" and traceback), for tools.
    public private(set) var lastError: String?
    private(set) var logger: Logger
    /// `--log-level trace`: one line per message with its arguments and actions.
    private let tracing: Bool
    private var errorLogs = ErrorLogLimiter()
    private let arguments: UnsafeMutablePointer<spoa_arg>
    private let errorBuffer: UnsafeMutablePointer<CChar>

    /// Loads `scriptPath` into a new state. Throws a `LuaScriptError` whose message
    /// holds file:line for syntax errors and errors raised while the script loads.
    /// `memoryLimit` caps the state's allocations in bytes (0: no limit); going over
    /// it fails the running handler with "not enough memory".
    /// `varPrefix` is the SPOE agent's "option var-prefix": with it, variable names are
    /// checked against HAProxy's 63-byte limit when they are set.
    public convenience init(scriptPath: String, workerIndex: Int, workerCount: Int, logger: Logger, memoryLimit: Int = 0,
                            varPrefix: String? = nil) throws {
        var configuration = LuaConfiguration(scriptPath: scriptPath, workerCount: workerCount)
        configuration.memoryLimit = memoryLimit
        configuration.varPrefix = varPrefix
        try self.init(configuration: configuration, workerIndex: workerIndex, logger: logger)
    }

    /// Loads the configured script into a new state for worker `workerIndex` (1-based).
    public init(configuration: LuaConfiguration, workerIndex: Int, logger: Logger) throws {
        let logger = Self.workerLogger(logger, configuration: configuration, workerIndex: workerIndex)
        self.workerIndex = workerIndex
        self.logger = logger
        self.tracing = logger.logLevel <= .trace
        self.state = try LuaState(configuration: configuration, workerIndex: workerIndex, generation: 0, logger: logger)
        self.arguments = .allocate(capacity: 256)  // NB-ARGS is one byte
        self.errorBuffer = .allocate(capacity: LuaState.errorCapacity)
    }

    deinit {
        arguments.deallocate()
        errorBuffer.deallocate()
    }

    private static func workerLogger(_ logger: Logger, configuration: LuaConfiguration, workerIndex: Int) -> Logger {
        var logger = logger
        logger[metadataKey: "lua.worker"] = "\(workerIndex)"
        logger[metadataKey: "lua.script"] = "\(configuration.scriptPath)"
        return logger
    }

    /// Loads the script in a scratch state and throws what a worker would throw.
    /// The CLI uses it to fail before serving.
    public static func check(scriptPath: String) throws {
        try check(LuaConfiguration(scriptPath: scriptPath, workerCount: 0))
    }

    public static func check(_ configuration: LuaConfiguration) throws {
        var logger = Logger(label: "luaspoa.check")
        logger.logLevel = .warning
        _ = try LuaState(configuration: configuration, workerIndex: 0, generation: 0, logger: logger)
    }

    /// Bytes currently allocated by this worker's Lua state.
    public var luaMemory: Int { state.memoryInUse }

    // MARK: reload

    /// A loaded state waiting to be installed in a worker. Built on any thread;
    /// after `install` only the worker's thread touches it.
    public struct PreparedState: @unchecked Sendable {
        fileprivate let state: LuaState
        fileprivate let generation: Int
    }

    /// Loads the script into a fresh state for worker `workerIndex`, off the worker's
    /// thread, so a slow load does not stall serving. Throws like `init`.
    public static func prepare(
        _ configuration: LuaConfiguration, workerIndex: Int, generation: Int, logger: Logger
    ) throws -> PreparedState {
        let logger = workerLogger(logger, configuration: configuration, workerIndex: workerIndex)
        let state = try LuaState(configuration: configuration, workerIndex: workerIndex, generation: generation, logger: logger)
        return PreparedState(state: state, generation: generation)
    }

    /// Replaces the state between two frames. Call it on the worker's thread; the
    /// old state is closed here, as no frame can be using it.
    public func install(_ prepared: PreparedState) {
        state = prepared.state
        generation = prepared.generation
    }

    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        let ctx = state.ctx
        ctx.pointee.stream_id = notify.streamID
        ctx.pointee.frame_id = notify.frameID
        state.withEngineID(connection.engineID) {
            handleFrame(notify, ack: &ack)
        }
        luaspoa_reclaim(state.L)  // memory of a heavy handler goes back to the system
    }

    private func handleFrame(_ notify: NotifyFrame, ack: inout AckWriter) {
        withUnsafeMutablePointer(to: &ack) { ackPointer in
            state.bridge.ack = ackPointer
            defer {
                state.bridge.ack = nil
                state.bridge.currentMessage = nil
            }
            // Byte arguments point into the frame's storage, which `notify` keeps
            // alive and nobody mutates while the frame is handled.
            withExtendedLifetime(notify) {
                luaspoa_frame_begin(state.L)
                for message in notify.messages {
                    let mark = tracing ? ackPointer.pointee.mark : 0
                    dispatch(message)
                    if tracing { trace(message, notify: notify, actions: ackPointer.pointee.actions(since: mark)) }
                }
            }
        }
    }

    private func dispatch(_ message: SpoaMessage) {
        var count = 0
        for argument in message.arguments where count < 256 {
            fill(&arguments[count], with: argument)
            count += 1
        }
        state.bridge.currentMessage = message.name
        errorBuffer[0] = 0
        let started = metrics == nil ? 0 : MessageMetrics.now()
        let status = message.name.withUnsafeReadableBytes { name in
            luaspoa_dispatch(
                state.L, state.ctx, name.baseAddress?.assumingMemoryBound(to: CChar.self), name.count,
                arguments, Int32(count), errorBuffer, LuaState.errorCapacity, nil)
        }
        metrics?.record(message.name, status: status, startedAt: started)
        switch Int(status) {
        case LUASPOA_ERROR, LUASPOA_TIMEOUT:
            handlerErrors += 1
            if Int(status) == LUASPOA_TIMEOUT { handlerTimeouts += 1 }
            logError(message.nameString, String(cString: errorBuffer))
        case LUASPOA_NO_HANDLER:
            unhandledMessages += 1
            logger.debug("no handler for message \(message.nameString)")
        default:
            break
        }
    }

    private func logError(_ name: String, _ error: String) {
        lastError = error
        let now = UInt64(DispatchTime.now().uptimeNanoseconds)
        guard case .log(let suppressed) = errorLogs.decide(message: name, error: error, now: now) else { return }
        let (text, traceback) = LuaScriptError.split(error)
        var metadata: Logger.Metadata = ["lua.message": "\(name)"]
        if let traceback { metadata["lua.traceback"] = "\(traceback)" }
        if suppressed > 0 { metadata["lua.suppressed"] = "\(suppressed)" }
        logger.error("\(name): \(text)", metadata: metadata)
    }

    private func fill(_ arg: inout spoa_arg, with argument: SpoaArgument) {
        arg.name = nil
        arg.name_len = 0
        argument.name.withUnsafeReadableBytesWithStorageManagement { bytes, _ in
            arg.name = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
            arg.name_len = bytes.count
        }
        arg.value = spoa_value(borrowing: argument.value)
    }
}
