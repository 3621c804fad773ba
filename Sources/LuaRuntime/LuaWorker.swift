import CLuaSpoa
import Dispatch
import Logging
import NIOCore
import NIOPosix
import SpopEngine

/// Answers NOTIFY frames with a Lua script: one `lua_State` per worker, used only
/// on the worker's event-loop thread.
///
/// Each message runs in a coroutine of the state (`luaspoa_dispatch`). A failing
/// handler loses only its own message's actions; the frame's other messages keep
/// theirs and the ACK is always sent. A handler that waits suspends its frame's ACK
/// (LuaWorker+Waiting.swift); the worker serves other frames meanwhile.
public final class LuaWorker: SpoaWorker {
    public var scriptPath: String { state.scriptPath }
    public let workerIndex: Int
    /// Messages whose handler raised an error (timeouts included) since the worker started.
    public private(set) var handlerErrors = 0
    /// Messages whose handler was stopped by its time budget.
    public private(set) var handlerTimeouts = 0
    /// Messages that had no registered handler.
    public private(set) var unhandledMessages = 0
    /// Messages whose handler was still waiting at its deadline.
    public internal(set) var deadlinesExceeded = 0
    /// Frames waiting for a handler now (each holds its script generation's state).
    public internal(set) var waitingFrames = 0
    /// Waits run on the calling thread, blocking it, instead of suspending the
    /// frame (`roundTrip`: `luaspoa test` and `eval`, which have no event loop).
    var inlineWaits = false
    /// Waiting frames with a deadline and the one timer of their deadlines
    /// (LuaWorker+Waiting.swift). Used only on the worker's loop.
    var deadlines: (frames: CircularBuffer<WaitingFrame>, timer: (at: NIODeadline, task: Scheduled<Void>)?) = ([], nil)
    /// Reloads installed in this worker (`spoa.generation` of the current state).
    public private(set) var generation = 0

    private(set) var state: LuaState
    /// Per-message metrics; nil (no clock read) unless metrics are exported.
    public var metrics: MessageMetrics?
    /// The last handler error ("file:line: message" and traceback), for tools.
    public private(set) var lastError: String?
    private(set) var logger: Logger
    /// `--log-level trace`: one line per message with its arguments and actions.
    let tracing: Bool
    private var errorLogs = ErrorLogLimiter()
    /// Filled for each part of a call: C reads them only while it runs.
    private let arguments: UnsafeMutablePointer<spoa_arg>
    let errorBuffer: UnsafeMutablePointer<CChar>

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

    /// Closes the connections, pools and resolvers of the Lua clients on this
    /// worker's event loop (they belong to the loop, not to a state, so a reload
    /// keeps them). The server calls it on that loop when it stops.
    public func stop() {
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return }
        Upstream.close(on: loop)
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

    /// Replaces the state between two frames. Call it on the worker's thread. New
    /// frames use the new state at once; frames waiting for a handler hold the old
    /// one, which closes when the last of them ends (here when none waits).
    public func install(_ prepared: PreparedState) {
        state = prepared.state
        generation = prepared.generation
    }

    /// Runs the frame's messages. When a handler waits, the frame is suspended
    /// (`ack.suspend()`), so `ack` must come from the server or `SpoaWorker.answer`;
    /// `roundTrip` has no event loop and waits inline instead.
    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        let state = self.state
        let ctx = state.ctx
        ctx.pointee.stream_id = notify.streamID
        ctx.pointee.frame_id = notify.frameID
        state.withEngineID(connection.engineID) {
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
                    if let waiting = runMessages(notify, from: 0, state: state, ack: ackPointer) {
                        suspend(notify, waiting, state: state, engineID: connection.engineID, ack: ackPointer)
                    }
                }
            }
        }
        luaspoa_reclaim(state.L)  // memory of a heavy handler goes back to the system
    }

    /// A message whose handler waits: where it is in its frame and since when.
    struct WaitingMessage {
        var index: Int
        var call: OpaquePointer
        var started: UInt64
        var mark: Int
    }

    /// Runs the frame's messages from `start` on, in order; returns the first one
    /// whose handler waits (the rest then run once it is done), or nil.
    func runMessages(
        _ notify: NotifyFrame, from start: Int, state: LuaState, ack: UnsafeMutablePointer<AckWriter>
    ) -> WaitingMessage? {
        var index = -1
        for message in notify.messages {
            index += 1
            guard index >= start else { continue }
            let mark = tracing ? ack.pointee.mark : 0
            let started = metrics == nil ? 0 : MessageMetrics.now()
            var waiting: OpaquePointer?
            let status = dispatch(message, state: state, waiting: &waiting)
            if status == LUASPOA_WAITING, let waiting {
                return WaitingMessage(index: index, call: waiting, started: started, mark: mark)
            }
            finished(message, status: status, startedAt: started)
            if tracing { trace(message, notify: notify, actions: ack.pointee.actions(since: mark)) }
        }
        return nil
    }

    private func dispatch(_ message: SpoaMessage, state: LuaState, waiting: UnsafeMutablePointer<OpaquePointer?>) -> Int32 {
        let count = fillArguments(message)
        state.bridge.currentMessage = message.name
        errorBuffer[0] = 0
        var status = message.name.withUnsafeReadableBytes { name in
            luaspoa_dispatch(
                state.L, state.ctx, name.baseAddress?.assumingMemoryBound(to: CChar.self), name.count,
                arguments, Int32(count), errorBuffer, LuaState.errorCapacity, waiting)
        }
        if status == LUASPOA_WAITING, inlineWaits, let call = waiting.pointee {
            status = waitInline(message, call: call, state: state, waiting: waiting)
        }
        return status
    }

    /// Fills the C argument array from the message (names and byte values point
    /// into its frame). NB-ARGS is one byte: the array holds them all.
    func fillArguments(_ message: SpoaMessage) -> Int {
        let arguments = self.arguments
        var count = 0
        message.forEachArgument { argument in
            arguments[count] = spoa_arg(argument)
            count += 1
        }
        return count
    }

    /// Resumes a suspended call of `message` (its arguments filled again from the
    /// frame, which may have moved), with the result of its wait.
    func resume(
        _ message: SpoaMessage, call: OpaquePointer, result: LuaWaitResult, state: LuaState,
        waiting: UnsafeMutablePointer<OpaquePointer?>
    ) -> Int32 {
        let count = fillArguments(message)
        state.bridge.currentMessage = message.name
        errorBuffer[0] = 0
        return result.withResult(in: luaspoa_call_wait(call)) {
            message.name.withUnsafeReadableBytes { name in
                luaspoa_resume(
                    state.L, state.ctx, call, name.baseAddress?.assumingMemoryBound(to: CChar.self), name.count,
                    arguments, Int32(count), errorBuffer, LuaState.errorCapacity, waiting)
            }
        }
    }

    /// Ends a suspended call without resuming it: at its deadline (on_error actions
    /// written) or, with `deadline` 0, because its connection is gone.
    func abandon(_ message: SpoaMessage, call: OpaquePointer, deadline: UInt32, state: LuaState) -> Int32 {
        state.bridge.currentMessage = message.name
        errorBuffer[0] = 0
        return message.name.withUnsafeReadableBytes { name in
            luaspoa_abandon(
                state.L, state.ctx, call, name.baseAddress?.assumingMemoryBound(to: CChar.self), name.count,
                deadline, errorBuffer, LuaState.errorCapacity)
        }
    }

    /// Counts, measures and logs how one message ended.
    func finished(_ message: SpoaMessage, status: Int32, startedAt started: UInt64) {
        metrics?.record(message.name, status: status, startedAt: started)
        switch Int(status) {
        case LUASPOA_ERROR, LUASPOA_TIMEOUT, LUASPOA_DEADLINE:
            handlerErrors += 1
            if Int(status) == LUASPOA_TIMEOUT { handlerTimeouts += 1 }
            if Int(status) == LUASPOA_DEADLINE { deadlinesExceeded += 1 }
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
}
