// Child processes (agents, HAProxy) with their output in a log file.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process with its output in a log file, stopped with SIGTERM then SIGKILL.
final class ManagedProcess {
    let name: String
    let process = Process()
    let logURL: URL

    init(name: String, executable: String, arguments: [String], logDir: URL, cwd: URL? = nil,
         environment: [String: String]? = nil) throws {
        self.name = name
        logURL = logDir.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if let cwd { process.currentDirectoryURL = cwd }
        if let environment { process.environment = environment }
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Log lines at warning level or above (the first `limit`).
    func problems(_ limit: Int = 10) -> String {
        log.split(separator: "\n").filter { l in
            ["warning", "error", "critical", "timeout"].contains { l.localizedCaseInsensitiveContains($0) }
        }.prefix(limit).joined(separator: "\n")
    }

    func logTail(_ lines: Int = 40) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Wait for the process to exit; returns its status, or nil on timeout.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = nowSeconds() + timeout
        while process.isRunning {
            if nowSeconds() > deadline { return nil }
            usleep(10_000)
        }
        return process.terminationStatus
    }

    /// SIGTERM, wait, then SIGKILL. Returns the exit status (nil if it had to be killed).
    @discardableResult
    func stop(timeout: Double = 10) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        if let s = waitForExit(timeout: timeout) { return s }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 5)
        return nil
    }
}
