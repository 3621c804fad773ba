import Foundation
import Logging
import LuaRuntime
import NIOCore
import SpopEngine

/// Fuzz entry point for the Lua dispatch: a decoded NOTIFY handed to a LuaWorker whose
/// script reads every argument through every accessor and echoes them as variables.
///
/// An input is the body of a NOTIFY's first message after its name ("fuzz"): NB-ARGS,
/// the arguments, then optionally more messages. Whatever the bytes, the worker must
/// not crash and must leave a well-formed ACK behind.
public enum LuaDispatchFuzzer {
    static let script = """
        local function touch(txn, msg)
          for i, name, value, t in msg:iter() do
            assert(msg:type(i) == t and msg:argname(i) == name)
            local v, t2 = msg:get(i)
            assert(t2 == t)
            if name ~= "" then msg:all(name); msg:type(name); local _ = msg.args[name] end
            if t == "ipv4" or t == "ipv6" then
              tostring(value); value:is_loopback(); value:key()
            end
            local ok = pcall(txn.set_var, txn, "txn.a" .. i, value)
            if not ok then txn:set_var("txn.a" .. i, tostring(value)) end
          end
          txn:set_var("txn.nargs", msg.nargs)
          txn:set_var("txn.name", msg.name)
        end
        spoa.register_message("fuzz", touch)
        spoa.register_message("m", touch)
        """

    /// One worker for the whole run (a fuzzer calls `run` millions of times).
    nonisolated(unsafe) static let worker: LuaWorker = {
        let path = NSTemporaryDirectory() + "/luaspoa-fuzz-\(getpid()).lua"
        try! script.write(toFile: path, atomically: true, encoding: .utf8)
        var configuration = LuaConfiguration(scriptPath: path, workerCount: 1)
        configuration.memoryLimit = 64 << 20
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        return try! LuaWorker(configuration: configuration, workerIndex: 1, logger: logger)
    }()

    static let maxFrameSize = AgentCapabilities.defaultMaxFrameSize

    public static func run(_ data: UnsafeRawBufferPointer) {
        var payload = ByteBuffer()
        payload.writeSpopRawString("fuzz")
        payload.writeBytes(data)
        guard let notify = try? NotifyFrame(streamID: 1, frameID: 1, payload: payload) else { return }
        var ack = AckWriter(streamID: 1, frameID: 1, maxFrameSize: maxFrameSize, buffer: ByteBuffer())
        let errorsBefore = worker.handlerErrors
        worker.handle(notify, connection: SpoaConnectionInfo(engineID: "fuzz"), ack: &ack)
        // The script's asserts check that msg:iter, msg:get, msg:type and msg:argname agree.
        if worker.handlerErrors > errorsBefore, let error = worker.lastError {
            precondition(!error.contains("assertion failed"), "Lua accessors disagree: \(error)")
        }
        var reader = FrameReader()
        reader.append(ack.finish())
        guard let frame = try? reader.next(maxFrameSize: maxFrameSize), frame.header.type == .ack,
              frame.header.streamID == 1, frame.header.frameID == 1,
              (try? SpoaAction.decodeList(frame.payload)) != nil
        else { preconditionFailure("the worker left a malformed ACK") }
    }
}
