// The real HAProxy 3.x binaries the HAProxy3* tests run against: launchers made
// by tools/haproxy-chroot.sh (Debian sid = 3.2, trixie = 3.0), or the commands
// in $E2E_HAPROXY3_CMDS (colon-separated). Absent ones make those tests skip.

import Foundation
import XCTest

struct HAProxy3Target: CustomStringConvertible {
    let command: String
    let version: String      // "3.2.26-1"
    let major: Int
    let minor: Int

    /// 3.1+ runs SPOE on the SPOP multiplexer (docs/spop-protocol.md §9): `mode spop`
    /// backend, odd stream-ids with frame-id 1, no async, no fragmentation.
    var hasSpopMux: Bool { major > 3 || (major == 3 && minor >= 1) }
    var agentBackendMode: String { hasSpopMux ? "spop" : "tcp" }
    var description: String { "HAProxy \(version)" }

    /// Every available 3.x, found once per test process.
    static let discovered: (targets: [HAProxy3Target], notes: [String]) = discover()

    /// The targets, or XCTSkip saying why there is none and how to get one.
    static func available() throws -> [HAProxy3Target] {
        let d = discovered
        if d.targets.isEmpty {
            throw XCTSkip("no HAProxy 3.x: \(d.notes.joined(separator: "; "))"
                + " (build one with tools/haproxy-chroot.sh build sid)")
        }
        return d.targets
    }

    private static func discover() -> ([HAProxy3Target], [String]) {
        let env = ProcessInfo.processInfo.environment["E2E_HAPROXY3_CMDS"] ?? ""
        let commands = env.isEmpty
            ? ["sid", "trixie"].map { E2EPaths.repoFile(".build/haproxy-\($0)/luaspoa-haproxy").path }
            : env.split(separator: ":").map(String.init)
        var targets: [HAProxy3Target] = []
        var notes: [String] = []
        for cmd in commands {
            guard FileManager.default.isExecutableFile(atPath: cmd) else {
                notes.append("\(cmd) absent")
                continue
            }
            switch probe(cmd) {
            case .success(let t): targets.append(t)
            case .failure(let e): notes.append("\(cmd): \(e.description)")
            }
        }
        return (targets, notes)
    }

    /// `cmd -v`: "HAProxy version 3.2.26-1 2026/10/14 - https://haproxy.org/".
    private static func probe(_ cmd: String) -> Result<HAProxy3Target, WireError> {
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: cmd)
        p.arguments = ["-v"]
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return .failure(WireError("cannot run: \(error)")) }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard p.terminationStatus == 0, let i = words.firstIndex(of: "version"), i + 1 < words.count else {
            return .failure(WireError("`-v` failed (status \(p.terminationStatus)): \(text.prefix(200))"))
        }
        let version = String(words[i + 1])
        let parts = version.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard parts.count >= 2, parts[0] >= 3 else {
            return .failure(WireError("version \(version) is not 3.x"))
        }
        return .success(HAProxy3Target(command: cmd, version: version, major: parts[0], minor: parts[1]))
    }
}

extension E2ETestCase {
    /// Runs `body` once per available HAProxy 3.x (skips when there is none);
    /// the processes started in one round are stopped before the next.
    func forEachHAProxy3(_ body: (HAProxy3Target) throws -> Void) throws {
        for target in try HAProxy3Target.available() {
            print("E2E HAProxy3: running against \(target) (\(target.command))")
            try body(target)
            stopChildren()
        }
    }
}
