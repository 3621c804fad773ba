// The base test case: real processes (luaspoa, haproxy), real TCP sockets, no mocks.

import Foundation
import SpopTestFrames
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts agents/haproxies on demand and stops every one of them in tearDown.
class E2ETestCase: XCTestCase {
    var children: [ManagedProcess] = []
    var taps: [SpopTap] = []
    var tempDir: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        signal(SIGPIPE, SIG_IGN)
        tempDir = try E2EPaths.makeTempDir(String(describing: type(of: self)))
    }

    override func tearDown() {
        stopChildren()
        if let tempDir, ProcessInfo.processInfo.environment["E2E_KEEP_TMP"] == nil {
            try? FileManager.default.removeItem(at: tempDir)
        }
        super.tearDown()
    }

    /// Stop the processes and taps started so far (newest first).
    func stopChildren() {
        for c in children.reversed() { c.stop() }
        children.removeAll()
        for t in taps { t.stop() }
        taps.removeAll()
    }

    /// Start luaspoa with the given Lua source (written to a temp file) and wait until it listens.
    func startAgent(script: String, name: String = "agent", extraArgs: [String] = [],
                    generousTimeBudget: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) throws -> (ManagedProcess, UInt16) {
        let path = tempDir.appendingPathComponent("\(name).lua")
        try script.write(to: path, atomically: true, encoding: .utf8)
        // Scripts built from scripts/ip_reputation.lua read its list from their own directory.
        let list = tempDir.appendingPathComponent("ip_reputation.lst")
        if !FileManager.default.fileExists(atPath: list.path) {
            try FileManager.default.copyItem(at: E2EPaths.repoFile("scripts/ip_reputation.lst"), to: list)
        }
        return try startAgent(scriptPath: path.path, name: name, extraArgs: extraArgs,
                              generousTimeBudget: generousTimeBudget, file: file, line: line)
    }

    /// `launcher` (e.g. setpriv and its options) runs the agent binary as its last argument.
    func startAgent(scriptPath: String, name: String = "agent", extraArgs: [String] = [],
                    generousTimeBudget: Bool = true, launcher: [String] = [],
                    file: StaticString = #filePath, line: UInt = #line) throws -> (ManagedProcess, UInt16) {
        guard let bin = E2EPaths.agentBinary() else {
            XCTFail("luaspoa binary not found (build it with `swift build --product luaspoa`, or set E2E_LUASPOA_BIN)", file: file, line: line)
            throw WireError("no agent binary")
        }
        let port = try freePort()
        // Loaded CI machines (2 cores, parallel builds) can stall a thread for longer than the
        // default 100 ms handler budget; tests that are not about the budget get a generous one.
        // E2E_AGENT_ARGS (space-separated) is appended to every agent's command line, e.g. "--log-level debug".
        let envArgs = (ProcessInfo.processInfo.environment["E2E_AGENT_ARGS"] ?? "").split(separator: " ").map(String.init)
        let extraArgs = extraArgs + envArgs
        let budget = extraArgs.contains("--lua-timeout") || !generousTimeBudget ? [] : ["--lua-timeout", "5000"]
        let args = ["--script", scriptPath, "--listen", "127.0.0.1:\(port)"] + budget + extraArgs
        let p = try ManagedProcess(name: name, executable: launcher.first ?? bin,
                                   arguments: launcher.isEmpty ? args : launcher.dropFirst() + [bin] + args,
                                   logDir: tempDir)
        children.append(p)
        guard waitForPort(port, timeout: 20, while: { p.isRunning }) else {
            XCTFail("agent did not start listening on \(port):\n\(p.logTail())", file: file, line: line)
            throw WireError("agent did not start")
        }
        return (p, port)
    }

    /// A frame-parsing relay in front of the agent on `agentPort`.
    func startTap(agentPort: UInt16) throws -> SpopTap {
        let t = try SpopTap(upstreamPort: agentPort)
        taps.append(t)
        return t
    }

    /// Skip (not fail) when HAProxy is not installed; run-tests.sh installs it.
    func requireHAProxy() throws -> String {
        guard let h = E2EPaths.haproxyBinary() else {
            throw XCTSkip("haproxy binary not found (./run-tests.sh installs it)")
        }
        return h
    }

    /// Write `cfg` (and the other files) into the temp dir, start `haproxy -f cfg -db`, wait for `waitPort`.
    /// `binary` picks another HAProxy (the HAProxy3 tests' chroot launchers).
    func startHAProxy(config cfg: String, files: [String: String] = [:], waitPort: UInt16, binary: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> ManagedProcess {
        let bin = try binary ?? requireHAProxy()
        for (n, content) in files {
            try content.write(to: tempDir.appendingPathComponent(n), atomically: true, encoding: .utf8)
        }
        let cfgURL = tempDir.appendingPathComponent("haproxy.cfg")
        // HAProxy refuses a configuration whose last line has no LF.
        try (cfg.hasSuffix("\n") ? cfg : cfg + "\n").write(to: cfgURL, atomically: true, encoding: .utf8)
        let p = try ManagedProcess(name: "haproxy", executable: bin, arguments: ["-f", cfgURL.path, "-db"],
                                   logDir: tempDir, cwd: tempDir)
        children.append(p)
        guard waitForPort(waitPort, timeout: 20, while: { p.isRunning }) else {
            XCTFail("haproxy did not start listening on \(waitPort):\n\(p.logTail())", file: file, line: line)
            throw WireError("haproxy did not start")
        }
        return p
    }

    /// A fresh connection still completes a handshake and gets an ACK for §11.3.
    func assertAgentServes(_ port: UInt16, _ agent: ManagedProcess? = nil,
                           file: StaticString = #filePath, line: UInt = #line) {
        if let agent, !agent.isRunning {
            XCTFail("agent exited (status \(agent.process.terminationStatus)):\n\(agent.logTail())", file: file, line: line)
            return
        }
        do {
            let c = try TCPConn(port: port)
            _ = try c.handshake()
            c.send(hexBytes(Golden.notifyCheckClientIP))
            let ack = try c.expectFrame(timeout: 5, "ACK")
            XCTAssertEqual(ack.type, SpopType.ack.rawValue, "\(ack)", file: file, line: line)
            XCTAssertEqual(ack.streamID, 300, file: file, line: line)
            XCTAssertEqual(ack.frameID, 1, file: file, line: line)
        } catch {
            XCTFail("agent no longer serves a fresh connection: \(error)\n\(agent?.logTail() ?? "")", file: file, line: line)
        }
    }
}
