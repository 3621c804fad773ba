import CLuaSpoa
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
    public let scriptPath: String
    public let workerIndex: Int
    /// Messages whose handler raised an error since the worker started.
    public private(set) var handlerErrors = 0
    /// Messages that had no registered handler.
    public private(set) var unhandledMessages = 0

    private let state: LuaState
    private var logger: Logger
    private let arguments: UnsafeMutablePointer<spoa_arg>
    private let errorBuffer: UnsafeMutablePointer<CChar>

    /// Loads `scriptPath` into a new state. Throws a `LuaScriptError` whose message
    /// holds file:line for syntax errors and errors raised while the script loads.
    /// `memoryLimit` caps the state's allocations in bytes (0: no limit); going over
    /// it fails the running handler with "not enough memory".
    /// `varPrefix` is the SPOE agent's "option var-prefix": with it, variable names are
    /// checked against HAProxy's 63-byte limit when they are set.
    public init(scriptPath: String, workerIndex: Int, workerCount: Int, logger: Logger, memoryLimit: Int = 0,
                varPrefix: String? = nil) throws {
        var logger = logger
        logger[metadataKey: "lua.worker"] = "\(workerIndex)"
        logger[metadataKey: "lua.script"] = "\(scriptPath)"
        self.scriptPath = scriptPath
        self.workerIndex = workerIndex
        self.logger = logger
        self.state = try LuaState(
            scriptPath: scriptPath, workerIndex: workerIndex, workerCount: workerCount, memoryLimit: memoryLimit, logger: logger,
            varPrefix: varPrefix)
        self.arguments = .allocate(capacity: 256)  // NB-ARGS is one byte
        self.errorBuffer = .allocate(capacity: LuaState.errorCapacity)
    }

    deinit {
        arguments.deallocate()
        errorBuffer.deallocate()
    }

    /// Loads the script in a scratch state and throws what a worker would throw.
    /// The CLI uses it to fail before serving.
    public static func check(scriptPath: String) throws {
        var logger = Logger(label: "luaspoa.check")
        logger.logLevel = .warning
        _ = try LuaState(scriptPath: scriptPath, workerIndex: 0, workerCount: 0, memoryLimit: 0, logger: logger)
    }

    /// Bytes currently allocated by this worker's Lua state.
    public var luaMemory: Int { state.memoryInUse }

    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        let ctx = state.ctx
        ctx.pointee.stream_id = notify.streamID
        ctx.pointee.frame_id = notify.frameID
        state.setEngineID(connection.engineID)
        withUnsafeMutablePointer(to: &ack) { ackPointer in
            state.bridge.ack = ackPointer
            defer {
                state.bridge.ack = nil
                state.bridge.currentMessage = nil
            }
            // Byte arguments point into the frame's storage, which `notify` keeps
            // alive and nobody mutates while the frame is handled.
            withExtendedLifetime(notify) {
                for message in notify.messages {
                    dispatch(message)
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
        let status = message.name.withUnsafeReadableBytes { name in
            luaspoa_dispatch(
                state.L, state.ctx, name.baseAddress?.assumingMemoryBound(to: CChar.self), name.count,
                arguments, Int32(count), errorBuffer, LuaState.errorCapacity)
        }
        switch Int(status) {
        case LUASPOA_ERROR:
            handlerErrors += 1
            let (text, traceback) = LuaScriptError.split(String(cString: errorBuffer))
            var metadata: Logger.Metadata = ["lua.message": "\(message.nameString)"]
            if let traceback { metadata["lua.traceback"] = "\(traceback)" }
            logger.error("\(message.nameString): \(text)", metadata: metadata)
        case LUASPOA_NO_HANDLER:
            unhandledMessages += 1
            logger.debug("no handler for message \(message.nameString)")
        default:
            break
        }
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
