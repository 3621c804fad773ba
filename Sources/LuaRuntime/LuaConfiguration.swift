#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How every worker's Lua state is built: the script and its limits. The same
/// value builds the states at start and again on each reload.
public struct LuaConfiguration: Sendable {
    public var scriptPath: String
    /// `spoa.workers`.
    public var workerCount: Int
    /// Cap on one state's allocations in bytes (0: none); going over it fails the
    /// running call with "not enough memory".
    public var memoryLimit = 0
    /// Time budget of one handler call in milliseconds (0: none); a handler's
    /// `timeout_ms` option overrides it.
    public var timeoutMilliseconds = 100
    /// Time budget of loading the script (body and init functions) in one state,
    /// in milliseconds of CPU time (0: none).
    public var loadTimeoutMilliseconds = 5000
    /// Wall time after which a NOTIFY frame's remaining messages are not run (they
    /// get their on_error actions); nil: 4 x `timeoutMilliseconds`, 0: none.
    public var frameTimeoutMilliseconds: Int?
    /// The frame budget in effect.
    public var effectiveFrameTimeoutMilliseconds: Int {
        frameTimeoutMilliseconds ?? Self.frameTimeoutFactor * timeoutMilliseconds
    }
    /// Default frame budget in per-call budgets: a frame of several normal handlers
    /// fits, a frame of handlers that all time out is answered after about 4 + 1.
    public static let frameTimeoutFactor = 4
    /// Wall-clock deadline of a message whose handler waits, in milliseconds from the
    /// frame's arrival (0: none); a handler's `deadline_ms` option overrides it. At
    /// the deadline the wait is abandoned and the handler's on_error actions sent.
    public var deadlineMilliseconds = 400
    /// Load the full standard library (os.execute, io, debug, ...) instead of the sandbox.
    public var unsafeLibraries = false
    /// `scope.name` set to true in the ACK when a handler fails (`--lua-error-var`).
    public var errorVariable: String?
    /// The SPOE agent's "option var-prefix" (`--var-prefix`): variable names are
    /// then checked against HAProxy's 63-byte limit.
    public var varPrefix: String?

    /// The script's bytes, read once by `readScript()` so every state of a start
    /// or reload runs the same version; nil: each state reads `scriptPath`.
    public var scriptSource: [UInt8]?

    public init(scriptPath: String, workerCount: Int) {
        self.scriptPath = scriptPath
        self.workerCount = workerCount
    }

    /// Reads the script file into `scriptSource` (again on every call: each reload
    /// picks up the file as it is now).
    public mutating func readScript() throws(LuaScriptError) {
        guard let file = fopen(scriptPath, "rb") else {
            throw LuaScriptError(scriptPath: scriptPath, message: "cannot open \(scriptPath): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var source: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while case let count = fread(&chunk, 1, chunk.count, file), count > 0 {
            source += chunk[..<count]
        }
        guard ferror(file) == 0 else {
            throw LuaScriptError(scriptPath: scriptPath, message: "cannot read \(scriptPath): \(String(cString: strerror(errno)))")
        }
        scriptSource = source
    }
}
