import Foundation
import Logging
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// Log lines captured from a worker.
final class LogCapture: @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lock = NSLock()
    private var storage: [Entry] = []

    var entries: [Entry] { lock.withLock { storage } }

    func append(_ entry: Entry) { lock.withLock { storage.append(entry) } }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in CapturingHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            merged.merge(event.metadata ?? [:]) { $1 }
            capture.append(Entry(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}

/// The directory of every script this test process writes, removed when the process exits
/// (thousands of tests each write one).
let testScriptRoot: URL = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("luaspoa-tests-\(getpid())")
    atexit { try? FileManager.default.removeItem(at: testScriptRoot) }
    return root
}()

/// Writes `source` to a fresh temporary directory of its own and returns the file's path.
func writeScript(_ source: String, name: String = "script.lua") throws -> String {
    let directory = testScriptRoot.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let url = directory.appendingPathComponent(name)
    try source.write(to: url, atomically: true, encoding: .utf8)
    return url.path
}

/// A new empty directory for one test; remove it with `defer`.
func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

typealias TestMessage = (name: String, arguments: [(name: String, value: SpopValue)])

/// A worker over a script, plus helpers to send it NOTIFY frames.
final class Harness {
    let worker: LuaWorker
    let logs = LogCapture()
    let scriptPath: String

    init(_ source: String, workerIndex: Int = 1, workerCount: Int = 2, varPrefix: String? = nil) throws {
        scriptPath = try writeScript(source)
        worker = try LuaWorker(scriptPath: scriptPath, workerIndex: workerIndex, workerCount: workerCount, logger: logs.logger,
                               varPrefix: varPrefix)
    }

    /// Handles one NOTIFY and returns the ACK's LIST-OF-ACTIONS bytes.
    func ackPayload(
        _ messages: [TestMessage], streamID: UInt64 = 7, frameID: UInt64 = 1,
        engineID: String? = nil, maxFrameSize: Int = 16380,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> ByteBuffer {
        try handleNotify(worker, messages, streamID: streamID, frameID: frameID, engineID: engineID,
                         maxFrameSize: maxFrameSize, file: file, line: line)
    }

    /// Handles one NOTIFY and returns the ACK's decoded actions.
    func actions(_ messages: [TestMessage], engineID: String? = nil, maxFrameSize: Int = 16380,
                 file: StaticString = #filePath, line: UInt = #line) throws -> [SpoaAction] {
        try SpoaAction.decodeList(ackPayload(messages, engineID: engineID, maxFrameSize: maxFrameSize, file: file, line: line))
    }

    /// Runs one message and returns its actions as a name -> value dictionary
    /// (set-var only; for scripts that report through txn variables).
    func vars(_ name: String, _ arguments: [(name: String, value: SpopValue)] = [],
              file: StaticString = #filePath, line: UInt = #line) throws -> [String: SpopValue] {
        var result: [String: SpopValue] = [:]
        for action in try actions([(name, arguments)], file: file, line: line) {
            if case .setVar(let scope, let name, let value) = action { result["\(scope.name).\(name)"] = value }
        }
        return result
    }

    var errorLogs: [LogCapture.Entry] { logs.entries.filter { $0.level == .error } }
}

/// Sends one NOTIFY made of `messages` to `worker` and returns the ACK's
/// LIST-OF-ACTIONS bytes, after checking the ACK frame's header.
func handleNotify(
    _ worker: LuaWorker, _ messages: [TestMessage], streamID: UInt64 = 7, frameID: UInt64 = 1,
    engineID: String? = nil, maxFrameSize: Int = 16380,
    file: StaticString = #filePath, line: UInt = #line
) throws -> ByteBuffer {
    var payload = ByteBuffer()
    for message in messages {
        payload.writeSpopRawString(message.name)
        payload.writeInteger(UInt8(message.arguments.count))
        for argument in message.arguments {
            payload.writeSpopRawString(argument.name)
            payload.writeSpopValue(argument.value)
        }
    }
    let notify = try NotifyFrame(streamID: streamID, frameID: frameID, payload: payload)
    var ack = AckWriter(streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize, buffer: ByteBuffer())
    worker.handle(notify, connection: SpoaConnectionInfo(engineID: engineID), ack: &ack)
    var reader = FrameReader()
    reader.append(ack.finish())
    let frame = try XCTUnwrap(try reader.next(maxFrameSize: 1 << 20), "ACK is not a complete frame", file: file, line: line)
    XCTAssertEqual(frame.header.type, .ack, file: file, line: line)
    XCTAssertEqual(frame.header.streamID, streamID, file: file, line: line)
    XCTAssertEqual(frame.header.frameID, frameID, file: file, line: line)
    return frame.payload
}

func hex(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String(format: "%02x", $0) }.joined(separator: " ")
}

extension SpopValue {
    /// The text of a STRING value, for assertions.
    var text: String? {
        if case .string(let bytes) = self { return String(buffer: bytes) }
        return nil
    }
}

/// Runs `body` on its own thread and returns its result, or fails the test and
/// returns nil when it has not returned within `seconds`: a stalled worker then
/// fails the test instead of hanging the run (its thread is left spinning).
func finishes<T>(within seconds: Double, file: StaticString = #filePath, line: UInt = #line,
                 _ body: @escaping () throws -> T) throws -> T? {
    let outcome = Outcome<T>()
    nonisolated(unsafe) let body = body
    Thread.detachNewThread {
        outcome.result = Result { try body() }
        outcome.done.signal()
    }
    guard outcome.done.wait(timeout: .now() + seconds) == .success, let result = outcome.result else {
        XCTFail("did not return within \(seconds) s", file: file, line: line)
        return nil
    }
    return try result.get()
}

private final class Outcome<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    let done = DispatchSemaphore(value: 0)
}
