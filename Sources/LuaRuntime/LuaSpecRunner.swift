import CLuaSpoa
import Foundation
import Logging
import NIOCore
import SpopEngine

/// `luaspoa test`: loads the script into one worker state, then runs spec files in
/// that state with `spoa.test` installed. `T.notify` goes through `roundTrip`, the
/// server's own decoding, dispatch and ACK encoding.
public final class LuaSpecRunner {
    public struct CaseResult: Sendable {
        public var name: String
        public var passed: Bool
        /// "spec.lua:12: expected 2 (number), got 1 (number)"
        public var error: String?
        public var traceback: String?
    }

    public let worker: LuaWorker
    private let logs: LineCapture
    private var results: [CaseResult] = []
    private let ackBytes = CBytes()
    private let errorBytes = CBytes()
    private let logBytes = CBytes()

    /// Loads the script like a worker would (throws `LuaScriptError` with file:line).
    public init(configuration: LuaConfiguration) throws {
        let logs = LineCapture()
        var logger = Logger(label: "luaspoa.test") { _ in logs }
        logger.logLevel = .trace
        self.logs = logs
        worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: logger)
    }

    /// A spec file that failed to load or raised outside a case, with the cases
    /// that ran before it did.
    public struct SpecFileError: Error, CustomStringConvertible {
        public var cases: [CaseResult]
        public var error: LuaScriptError
        public var description: String { "\(error)" }
    }

    /// Runs one spec file; returns its cases in order. Throws a `SpecFileError` when
    /// the file itself cannot load or raises outside a case.
    public func run(specPath: String) throws -> [CaseResult] {
        results = []
        var hooks = luaspoa_test_hooks()
        hooks.ud = Unmanaged.passUnretained(self).toOpaque()
        hooks.notify = { ud, name, nameLength, args, count, streamID, frameID, length, error, errorLength in
            let runner = Unmanaged<LuaSpecRunner>.fromOpaque(ud!).takeUnretainedValue()
            let name = String(decoding: UnsafeRawBufferPointer(start: name, count: nameLength), as: UTF8.self)
            let arguments = (0..<Int(count)).map { index in
                let arg = args![index]
                return (name: String(decoding: UnsafeRawBufferPointer(start: arg.name, count: arg.name_len), as: UTF8.self),
                        value: SpopValue(arg.value))
            }
            return runner.notify(name, arguments, streamID: streamID, frameID: frameID,
                                 length: length!, error: error!, errorLength: errorLength!)
        }
        hooks.report = { ud, passed, name, nameLength, error, errorLength in
            let runner = Unmanaged<LuaSpecRunner>.fromOpaque(ud!).takeUnretainedValue()
            let text = { (p: UnsafePointer<CChar>?, n: Int) in String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self) }
            let failure = error.map { LuaScriptError.split(text($0, errorLength)) }
            runner.results.append(CaseResult(name: text(name, nameLength), passed: passed != 0,
                                             error: failure?.message, traceback: failure?.traceback))
        }
        hooks.log_line = { ud, index, length in
            let runner = Unmanaged<LuaSpecRunner>.fromOpaque(ud!).takeUnretainedValue()
            let lines = runner.logs.lines
            guard index < lines.count else { return nil }
            return runner.logBytes.set(Array(lines[index].utf8), length: length!)
        }
        hooks.run_task = { ud, index, length in
            let runner = Unmanaged<LuaSpecRunner>.fromOpaque(ud!).takeUnretainedValue()
            guard let error = runner.worker.state.runTask(index).error else { return nil }
            return runner.errorBytes.set(Array(error.utf8), length: length!)
        }
        hooks.case_started = { ud in
            Unmanaged<LuaSpecRunner>.fromOpaque(ud!).takeUnretainedValue().logs.clear()
        }
        let error = withUnsafePointer(to: &hooks) { hooks in
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: LuaState.errorCapacity) { buffer -> String? in
                buffer[0] = 0
                let status = luaspoa_run_spec(worker.state.L, specPath, hooks, buffer.baseAddress, buffer.count)
                return status == 0 ? nil : String(cString: buffer.baseAddress!)
            }
        }
        if let error { throw SpecFileError(cases: results, error: LuaScriptError(scriptPath: specPath, luaError: error)) }
        return results
    }

    /// Keeps the ACK bytes and error text alive until the next call (C copies them).
    private func notify(
        _ name: String, _ arguments: [(name: String, value: SpopValue)], streamID: UInt64, frameID: UInt64,
        length: UnsafeMutablePointer<Int>, error: UnsafeMutablePointer<UnsafePointer<CChar>?>, errorLength: UnsafeMutablePointer<Int>
    ) -> UnsafePointer<CChar>? {
        error.pointee = nil
        errorLength.pointee = 0
        do {
            let trip = try worker.roundTrip([(name, arguments)], streamID: streamID, frameID: frameID)
            // An empty ACK would look like "the handler chose no action": fail the case instead.
            if trip.unhandled {
                error.pointee = errorBytes.set(Array("no handler registered for message '\(name)'".utf8), length: errorLength)
                return nil
            }
            if let message = trip.error { error.pointee = errorBytes.set(Array(message.utf8), length: errorLength) }
            return ackBytes.set(Array(trip.payload.readableBytesView), length: length)
        } catch let failure {
            error.pointee = errorBytes.set(Array("\(failure)".utf8), length: errorLength)
            return nil
        }
    }
}

/// Bytes handed to C, owned here and valid until the next `set`.
final class CBytes {
    private var storage = UnsafeMutableBufferPointer<CChar>.allocate(capacity: 1)

    deinit { storage.deallocate() }

    func set(_ bytes: [UInt8], length: UnsafeMutablePointer<Int>) -> UnsafePointer<CChar> {
        storage.deallocate()
        storage = .allocate(capacity: bytes.count + 1)
        for (index, byte) in bytes.enumerated() { storage[index] = CChar(bitPattern: byte) }
        storage[bytes.count] = 0
        length.pointee = bytes.count
        return UnsafePointer(storage.baseAddress!)
    }
}

/// Log lines of the script under test, for `T.logs()`.
final class LineCapture: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var lines: [String] { lock.withLock { storage } }
    func clear() { lock.withLock { storage.removeAll() } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { storage.append("\(event.level): \(event.message)") }
    }
}
