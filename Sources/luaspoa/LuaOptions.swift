import ArgumentParser
import LuaRuntime

/// The Lua limits and failure options, shared by serve, check, eval and test so a
/// script is checked and tested under the limits it is served with.
struct LuaOptions: ParsableArguments {
    @Option(name: .customLong("lua-timeout"), help: ArgumentHelp(
        "Time budget of one handler call in milliseconds (0: none); a handler's timeout_ms overrides it.",
        valueName: "ms"))
    var timeout = 100

    @Option(name: .customLong("lua-deadline"), help: ArgumentHelp(
        "Wall-clock deadline of a message whose handler waits, from the frame's arrival, in milliseconds (0: none); a handler's deadline_ms overrides it. Keep it below HAProxy's timeout processing.",
        valueName: "ms"))
    var deadline = 400

    @Option(name: .customLong("lua-load-timeout"), help: ArgumentHelp(
        "Time budget of loading the script (body and init functions) in each state, in milliseconds of CPU time (0: none).",
        valueName: "ms"))
    var loadTimeout = 5000

    @Option(name: .customLong("lua-frame-timeout"), help: ArgumentHelp(
        "Wall time after which a NOTIFY frame's remaining messages are not run and get their on_error actions (default: 4 x --lua-timeout; 0: none).",
        valueName: "ms"))
    var frameTimeout: Int?

    @Option(name: .customLong("lua-max-memory"), help: ArgumentHelp(
        "Memory cap of each Lua state: bytes, or with a K, M or G suffix (0: none).", valueName: "size"))
    var maxMemory = ByteCount(0)

    @Flag(name: .customLong("lua-unsafe"), help: "Load the full standard library (os.execute, io, debug, require) instead of the sandbox.")
    var unsafe = false

    @Option(name: .customLong("lua-error-var"), help: ArgumentHelp(
        "Variable (scope.name) set to true in the ACK when a handler fails, e.g. txn.lua_error.", valueName: "var"))
    var errorVariable: String?

    func validate() throws {
        for (name, value) in [("--lua-timeout", timeout), ("--lua-load-timeout", loadTimeout), ("--lua-frame-timeout", frameTimeout ?? 0),
                              ("--lua-deadline", deadline)]
        where !(0...3_600_000).contains(value) {
            throw ValidationError("\(name) must be between 0 and 3600000 ms, got \(value)")
        }
        if let errorVariable {
            let parts = errorVariable.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, ["proc", "sess", "txn", "req", "res"].contains(parts[0]),
                  parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") })
            else {
                throw ValidationError("--lua-error-var must be scope.name with scope proc, sess, txn, req or res, got '\(errorVariable)'")
            }
        }
    }

    func configuration(script: String, workers: Int, varPrefix: String? = nil) -> LuaConfiguration {
        var configuration = LuaConfiguration(scriptPath: script, workerCount: workers)
        configuration.varPrefix = varPrefix
        configuration.timeoutMilliseconds = timeout
        configuration.loadTimeoutMilliseconds = loadTimeout
        configuration.frameTimeoutMilliseconds = frameTimeout
        configuration.deadlineMilliseconds = deadline
        configuration.memoryLimit = maxMemory.bytes
        configuration.unsafeLibraries = unsafe
        configuration.errorVariable = errorVariable
        return configuration
    }
}

/// A size in bytes written as 1048576, 512K, 64M or 1G (powers of 1024).
struct ByteCount: ExpressibleByArgument, CustomStringConvertible {
    var bytes: Int

    init(_ bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.uppercased().replacingOccurrences(of: "B", with: "")
        let shift: Int = switch text.last {
        case "K": 10
        case "M": 20
        case "G": 30
        default: 0
        }
        guard let value = Int(shift == 0 ? text : String(text.dropLast())), value >= 0, value <= Int.max >> shift else {
            return nil
        }
        bytes = value << shift
    }

    var description: String { "\(bytes)" }
}
