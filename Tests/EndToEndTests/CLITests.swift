// The luaspoa command line as an operator meets it: start-up errors, options,
// and a clean stop on SIGTERM / SIGINT.

import Foundation
import SpopTestFrames
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class CLITests: E2ETestCase {

    func agentBinary() throws -> String {
        guard let b = E2EPaths.agentBinary() else {
            XCTFail("luaspoa binary not found (swift build --product luaspoa, or set E2E_LUASPOA_BIN)")
            throw WireError("no agent binary")
        }
        return b
    }

    /// Run luaspoa with `args` and expect it to exit by itself.
    func runToExit(_ args: [String], name: String) throws -> (Int32, String) {
        let p = try ManagedProcess(name: name, executable: try agentBinary(), arguments: args, logDir: tempDir)
        children.append(p)
        guard let status = p.waitForExit(timeout: 20) else {
            XCTFail("luaspoa \(args) did not exit:\n\(p.logTail())")
            throw WireError("no exit")
        }
        return (status, p.log)
    }

    func testMissingScriptFileFails() throws {
        let missing = tempDir.appendingPathComponent("does-not-exist.lua").path
        let (status, log) = try runToExit(["--script", missing, "--listen", "127.0.0.1:\(try freePort())"], name: "missing")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.contains("does-not-exist.lua"), "the message should name the file: \(log)")
    }

    func testNoScriptArgumentFails() throws {
        let (status, log) = try runToExit(["--listen", "127.0.0.1:\(try freePort())"], name: "noscript")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.lowercased().contains("script"), log)
    }

    func testAMistypedOptionIsNamedBeforeTheMissingScript() throws {
        let (status, log) = try runToExit(["--scirpt", "x.lua"], name: "typo")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(log.hasPrefix("Error: unknown option '--scirpt' (did you mean '--script'?)\n"), log)
        XCTAssertTrue(log.contains("See 'luaspoa serve --help'"), log)
    }

    func testANegativeNumberIsTakenAsTheOptionsValue() throws {
        let (status, log) = try runToExit(["--script", TestScripts.ipReputationPath, "--workers", "-1"], name: "negative")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(log.contains("--workers must be at least 1"), log)
    }

    /// A port in use names the address, for the SPOP listener and for --metrics (which
    /// binds before serving, so the agent stops at once instead of running without it).
    func testAnAddressInUseIsNamed() throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = loopbackAddress(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) == 0 && getsockname(holder, $0, &length) == 0 }
        }
        XCTAssertTrue(bound && listen(holder, 1) == 0, "errno \(errno)")
        let taken = UInt16(bigEndian: address.sin_port)

        let (status, log) = try runToExit(["--script", TestScripts.ipReputationPath, "--listen", "127.0.0.1:\(taken)"], name: "inuse")
        XCTAssertEqual(status, 1)
        XCTAssertTrue(log.contains("Error: cannot listen on 127.0.0.1:\(taken): Address already in use"), log)

        let (metricsStatus, metricsLog) = try runToExit(
            ["--script", TestScripts.ipReputationPath, "--listen", "127.0.0.1:\(try freePort())", "--metrics", "127.0.0.1:\(taken)"],
            name: "metricsinuse")
        XCTAssertEqual(metricsStatus, 1)
        XCTAssertTrue(metricsLog.contains("Error: --metrics: cannot listen on 127.0.0.1:\(taken): Address already in use"), metricsLog)
    }

    func testSyntaxErrorReportsFileAndLine() throws {
        let path = tempDir.appendingPathComponent("broken.lua")
        try "-- line 1\nlocal x = 1\nspoa.register_message(\"a\", function(txn, msg)\n  if then\nend)\n"
            .write(to: path, atomically: true, encoding: .utf8)
        let (status, log) = try runToExit(["--script", path.path, "--listen", "127.0.0.1:\(try freePort())"], name: "syntax")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.contains("broken.lua:4:"), "expected file:line in the message: \(log)")
    }

    func testErrorWhileLoadingFails() throws {
        let path = tempDir.appendingPathComponent("raises.lua")
        try "local t = nil\nprint(t.field)\n".write(to: path, atomically: true, encoding: .utf8)
        let (status, log) = try runToExit(["--script", path.path, "--listen", "127.0.0.1:\(try freePort())"], name: "raises")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.contains("raises.lua:2:"), log)
    }

    func testAUnixSocketPathThatIsARegularFileIsNamed() throws {
        let script = tempDir.appendingPathComponent("ok.lua")
        try "spoa.register_message('m', function() end)\n".write(to: script, atomically: true, encoding: .utf8)
        let path = tempDir.appendingPathComponent("not-a-socket").path
        try "keep me\n".write(toFile: path, atomically: true, encoding: .utf8)
        let (status, log) = try runToExit(["--script", script.path, "--listen", "unix:\(path)"], name: "unix-file")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.contains("\(path) exists and is not a socket"), log)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "keep me\n", "the file is left alone")
    }

    func testSigtermStopsCleanlyWithOpenConnections() throws {
        let (agent, port) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "term",
                                           extraArgs: ["--workers", "3", "--log-level", "trace"])
        let idle = try TCPConn(port: port)
        _ = try idle.handshake()
        let half = try TCPConn(port: port)
        half.send(Array(hexBytes(Golden.haproxyHello).prefix(20)))
        assertAgentServes(port, agent)
        kill(agent.process.processIdentifier, SIGTERM)
        let status = agent.waitForExit(timeout: 15)
        XCTAssertEqual(status, 0, "SIGTERM should exit 0:\n\(agent.logTail())")
    }

    /// The first SIGTERM drains (bounded by --drain-timeout); a second one exits at once.
    func testSecondSignalExitsWithoutWaitingForTheDrain() throws {
        let (agent, port) = try startAgent(
            script: #"spoa.register_message("spin", function() while true do end end)"#, name: "second-signal",
            extraArgs: ["--workers", "1", "--lua-timeout", "0", "--drain-timeout", "60"], generousTimeBudget: false)
        let stuck = try TCPConn(port: port)
        _ = try stuck.handshake()
        // NOTIFY "spin" (no arguments): its worker never returns, so the drain cannot finish.
        XCTAssertTrue(stuck.send([0, 0, 0, 0x0d, 3, 0, 0, 0, 1, 1, 1, 4, 0x73, 0x70, 0x69, 0x6e, 0]))
        usleep(300_000)
        kill(agent.process.processIdentifier, SIGTERM)
        XCTAssertNil(agent.waitForExit(timeout: 1.5), "the drain should still be waiting:\n\(agent.logTail())")
        kill(agent.process.processIdentifier, SIGTERM)
        XCTAssertEqual(agent.waitForExit(timeout: 10), 1, "a second signal should exit at once:\n\(agent.logTail())")
        XCTAssertTrue(agent.log.contains("exiting without waiting for the drain"), agent.logTail())
    }

    /// Issue 11: 8 connections x 50 pipelined NOTIFYs whose handler takes 20 ms; sending
    /// stops 0.5 s before SIGTERM (--drain-timeout 30). Every NOTIFY gets its ACK before
    /// its connection's AGENT-DISCONNECT 0, and the agent exits 0.
    func testSigtermAnswersEveryNotifyAlreadySentBeforeTheGoodbye() throws {
        let (agent, port) = try startAgent(
            script: #"spoa.register_message("slow", function() local t = spoa.now_ms() while spoa.now_ms() - t < 20 do end end)"#,
            name: "drain-all", extraArgs: ["--workers", "2", "--drain-timeout", "30"])
        var connections: [TCPConn] = []
        for _ in 0..<8 {
            let connection = try TCPConn(port: port)
            _ = try connection.handshake()
            connections.append(connection)
        }
        for connection in connections {
            var burst: [UInt8] = []
            for id in 0..<50 as Range<UInt64> { burst += notifyFrame(streamID: id, frameID: 1, [SpopMessage(name: "slow", args: [])]) }
            XCTAssertTrue(connection.send(burst))
        }
        usleep(500_000)
        kill(agent.process.processIdentifier, SIGTERM)
        for (index, connection) in connections.enumerated() {
            var acks = 0
            var goodbye: SpopFrame?
            while let frame = try connection.readFrame(timeout: 30) {
                if frame.type == SpopType.ack.rawValue { acks += 1 }
                if frame.type == SpopType.agentDisconnect.rawValue { goodbye = frame; break }
            }
            XCTAssertEqual(acks, 50, "connection \(index): NOTIFYs sent before SIGTERM lost their ACK\n\(agent.logTail())")
            XCTAssertEqual(try goodbye?.kv()["status-code"], .uint32(0), "connection \(index)")
        }
        XCTAssertEqual(agent.waitForExit(timeout: 30), 0, agent.logTail())
    }

    /// Issue 11: with a worker stuck in a handler (--lua-timeout 0), one SIGTERM still ends
    /// the agent within --drain-timeout + 2 s, with status 0 and a line naming what was stuck.
    func testSigtermEndsWithinTheDrainTimeoutWhenAWorkerIsStuck() throws {
        let pidFile = tempDir.appendingPathComponent("stuck.pid").path
        let (agent, port) = try startAgent(
            script: #"spoa.register_message("spin", function() while true do end end)"#, name: "stuck-stop",
            extraArgs: ["--workers", "1", "--lua-timeout", "0", "--drain-timeout", "1", "--pid-file", pidFile],
            generousTimeBudget: false)
        let stuck = try TCPConn(port: port)
        _ = try stuck.handshake()
        XCTAssertTrue(stuck.send([0, 0, 0, 0x0d, 3, 0, 0, 0, 1, 1, 1, 4, 0x73, 0x70, 0x69, 0x6e, 0]))
        usleep(300_000)
        kill(agent.process.processIdentifier, SIGTERM)
        // 1 s drain + 2 s margin; the rest is slack for a loaded machine.
        XCTAssertEqual(agent.waitForExit(timeout: 10), 0, "SIGTERM should end a stuck agent with 0:\n\(agent.logTail())")
        XCTAssertTrue(agent.log.contains("shutdown did not finish within --drain-timeout"), agent.logTail())
        XCTAssertTrue(agent.log.contains("worker event loops"), agent.logTail())
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidFile), "the PID file outlived the forced exit")
    }

    func testSigintStopsCleanly() throws {
        let (agent, port) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "int",
                                           extraArgs: ["--log-level", "error"])
        assertAgentServes(port, agent)
        kill(agent.process.processIdentifier, SIGINT)
        XCTAssertEqual(agent.waitForExit(timeout: 15), 0, "SIGINT should exit 0:\n\(agent.logTail())")
    }

    func testWorkersOptionServesInParallel() throws {
        let (agent, port) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "workers",
                                           extraArgs: ["--workers", "4"])
        var conns: [TCPConn] = []
        for _ in 0..<8 { conns.append(try TCPConn(port: port)); _ = try conns.last!.handshake() }
        for (i, c) in conns.enumerated() { c.send(notifyFrame(streamID: UInt64(i), frameID: 1,
            [SpopMessage(name: "check-client-ip", args: [("", .ipv4([10, 9, 8, 7]))])])) }
        for (i, c) in conns.enumerated() {
            let f = try c.expectFrame(timeout: 5, "ACK")
            XCTAssertEqual(f.streamID, UInt64(i))
            XCTAssertEqual(actionMap(try f.actions())["sess.ip_score"], .uint32(90))
        }
        assertAgentServes(port, agent)
    }
}
