// Hot reload and the Lua limits behind a real HAProxy 2.6: reloads under steady
// traffic lose nothing, a broken reload keeps the old script, and a runaway or
// memory-hungry handler still answers within its budget.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class ReloadAndLimitsTests: E2ETestCase {

    /// fe_web (SPOE filter; X-V-<name> headers from txn.e2e.<name>) -> fe_app (200).
    func startProxy(agentPort: UInt16, vars: [String], message: String = "check",
                    processing: String = "5s") throws -> UInt16 {
        let setup = try ProxySetup(agent: agentPort)
        let cfg = setup.haproxyConfig(headers: ProxySetup.varHeaders(vars), check: "")
        let spoe = ProxySetup.spoeConfig(messages: [(message, "ip=src")], processing: processing)
        _ = try startHAProxy(config: cfg, files: ["e2e-spoe.conf": spoe], waitPort: setup.web)
        return setup.web
    }

    static func versioned(_ version: String) -> String {
        """
        spoa.register_message("check", function(txn, msg)
          txn:set_var("txn.version", "\(version)")
          txn:set_var("txn.gen", spoa.generation)
        end)
        """
    }

    func testReloadUnderSteadyTrafficLosesNoRequest() throws {
        _ = try requireHAProxy()
        let script = tempDir.appendingPathComponent("agent.lua")
        try Self.versioned("v0").write(to: script, atomically: true, encoding: .utf8)
        let pidFile = tempDir.appendingPathComponent("agent.pid").path
        let (agent, agentPort) = try startAgent(scriptPath: script.path, extraArgs: ["--workers", "2", "--pid-file", pidFile, "--log-level", "debug"])
        let web = try startProxy(agentPort: agentPort, vars: ["version", "gen"])
        let pid = try XCTUnwrap(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(pid, agent.process.processIdentifier)

        let traffic = Traffic()
        let clients = DispatchGroup()
        for _ in 0..<2 {
            DispatchQueue.global().async(group: clients) {
                do {
                    let conn = try HTTPConn(port: web)
                    while !traffic.stopped {
                        let r = try conn.get()
                        let problem: String? = r.status != 200 ? "status \(r.status)"
                            : r.header("X-SPOE-Error") != nil ? "SPOE error \(r.header("X-SPOE-Error")!)"
                            : r.header("X-V-version") == nil || r.header("X-V-gen") == nil ? "no variable: \(r.headers)" : nil
                        traffic.record(problem)
                    }
                } catch {
                    traffic.record("client: \(error)")
                }
            }
        }
        for version in 1...5 {
            usleep(200_000)
            try Self.versioned("v\(version)").write(to: script, atomically: true, encoding: .utf8)
            XCTAssertEqual(kill(pid, SIGHUP), 0)
            XCTAssertTrue(waitForLog(agent, "generation \(version) serving"), agent.logTail())
        }
        usleep(200_000)
        traffic.stop()
        clients.wait()

        XCTAssertEqual(traffic.problems, [], "\(agent.logTail())")
        XCTAssertGreaterThan(traffic.responses, 20)
        let last = try httpGet(port: web)
        XCTAssertEqual(last.header("X-V-version"), "v5")
        XCTAssertEqual(last.header("X-V-gen"), "5")
        // HAProxy's SPOE connections carry an engine-id once the handshake is done.
        let dropped = agent.log.split(separator: "\n").filter { $0.contains("engine-id=") && $0.contains("connection closed") }
        XCTAssertEqual(dropped, [], "no SPOP connection dropped during the reloads")
    }

    func testBrokenReloadKeepsTheRunningScript() throws {
        _ = try requireHAProxy()
        let script = tempDir.appendingPathComponent("agent.lua")
        try Self.versioned("good").write(to: script, atomically: true, encoding: .utf8)
        let pidFile = tempDir.appendingPathComponent("agent.pid").path
        let (agent, agentPort) = try startAgent(scriptPath: script.path, extraArgs: ["--pid-file", pidFile])
        let web = try startProxy(agentPort: agentPort, vars: ["version", "gen"])
        XCTAssertEqual(try httpGet(port: web).header("X-V-version"), "good")

        try "spoa.register_message('check', function(txn)\n  txn:set_var('txn.version', 'bad'\nend)\n"
            .write(to: script, atomically: true, encoding: .utf8)
        let reload = try ManagedProcess(name: "reload", executable: try XCTUnwrap(E2EPaths.agentBinary()),
                                        arguments: ["reload", "--pid-file", pidFile], logDir: tempDir)
        XCTAssertEqual(reload.waitForExit(timeout: 20), 0, reload.log)
        XCTAssertTrue(waitForLog(agent, "reload failed"), agent.logTail())
        XCTAssertTrue(agent.log.contains("agent.lua:3:"), "the log names file:line: \(agent.logTail())")

        let r = try httpGet(port: web)
        XCTAssertEqual(r.header("X-V-version"), "good")
        XCTAssertEqual(r.header("X-V-gen"), "0")
        XCTAssertNil(r.header("X-SPOE-Error"))

        // A script that loads but whose init function fails is refused too.
        try (Self.versioned("init-fails") + "\nspoa.register_init(function() error('no database') end)\n")
            .write(to: script, atomically: true, encoding: .utf8)
        kill(agent.process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog(agent, "no database"), agent.logTail())
        XCTAssertEqual(try httpGet(port: web).header("X-V-version"), "good")
    }

    /// Handlers that build 64 MB strings leave hundreds of MB of garbage and freed
    /// heap behind; after them, the idle agent's RSS comes back near its baseline.
    func testMemoryGoesBackToTheSystemAfterHeavyHandlers() throws {
        let (agent, port) = try startAgent(script: """
            spoa.register_message("big", function(txn)
              local parts = {}
              for i = 1, 65536 do parts[i] = string.rep(string.char(65 + i % 26), 1024) end
              txn:set_var("txn.len", #table.concat(parts))
            end)
            """, extraArgs: ["--workers", "1"])
        let pid = agent.process.processIdentifier
        let c = try TCPConn(port: port)
        _ = try c.handshake(haproxyHello(capabilities: "pipelining"))
        for frame in 1...4 {
            c.send(notifyFrame(streamID: 1, frameID: UInt64(frame), [SpopMessage(name: "big", args: [])]))
            let ack = try c.expectFrame(timeout: 30, "ACK")
            XCTAssertEqual(actionMap(try ack.actions())["txn.len"], .int64(64 << 20), agent.logTail())
        }
        usleep(200_000)
        let rss = try XCTUnwrap(residentKilobytes(pid: pid))
        XCTAssertLessThan(rss, 100_000, "VmRSS \(rss) kB after the heavy handlers")
    }

    func testRunawayHandlerAnswersWithinItsBudget() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: """
            local calls = 0
            spoa.register_message("check", function(txn)
              calls = calls + 1
              if calls % 2 == 1 then while true do end end
              txn:set_var("txn.served", true)
            end, { timeout_ms = 50, on_error = { ["txn.blocked"] = true } })
            """, extraArgs: ["--workers", "1", "--lua-error-var", "txn.lua_error"])
        // HAProxy gives up after 2 s: the ACK must come well before that.
        let web = try startProxy(agentPort: agentPort, vars: ["blocked", "lua_error", "served"], processing: "2s")
        let stuck = try httpGet(port: web)
        XCTAssertEqual(stuck.status, 200)
        XCTAssertNil(stuck.header("X-SPOE-Error"), "the ACK arrived before HAProxy's processing timeout")
        XCTAssertEqual(stuck.header("X-V-blocked"), "1")
        XCTAssertEqual(stuck.header("X-V-lua_error"), "1")
        let next = try httpGet(port: web)
        XCTAssertEqual(next.header("X-V-served"), "1", "the worker keeps serving")
        XCTAssertNil(next.header("X-V-lua_error"))
        XCTAssertTrue(agent.log.contains("execution timeout (50 ms)"), agent.logTail())
    }

    func testAllocationBombFailsOnlyItsCall() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: """
            local calls = 0
            spoa.register_message("check", function(txn)
              calls = calls + 1
              if calls == 1 then
                local t = {}
                for i = 1, 1e9 do t[i] = string.rep("x", 100000) .. i end
              end
              txn:set_var("txn.served", true)
            end)
            """, extraArgs: ["--workers", "1", "--lua-max-memory", "16M", "--lua-timeout", "0", "--lua-error-var", "txn.lua_error"])
        let web = try startProxy(agentPort: agentPort, vars: ["lua_error", "served"])
        let bomb = try httpGet(port: web)
        XCTAssertEqual(bomb.header("X-V-lua_error"), "1")
        XCTAssertNil(bomb.header("X-V-served"))
        XCTAssertEqual(try httpGet(port: web).header("X-V-served"), "1")
        XCTAssertTrue(agent.isRunning)
        XCTAssertTrue(agent.log.contains("not enough memory"), agent.logTail())
    }

    /// A reload whose script never finishes loading fails at --lua-load-timeout and
    /// logs file:line; the next good reload is applied (the reloader is not stuck).
    func testLoopingReloadFailsAndALaterReloadIsApplied() throws {
        let script = tempDir.appendingPathComponent("agent.lua")
        try Self.versioned("first").write(to: script, atomically: true, encoding: .utf8)
        let (agent, agentPort) = try startAgent(scriptPath: script.path, extraArgs: ["--workers", "1", "--lua-load-timeout", "300"])
        func version() throws -> SpopValue? {
            let c = try TCPConn(port: agentPort)
            defer { c.shutdownAndClose() }
            _ = try c.handshake()
            c.send(notifyFrame(streamID: 1, frameID: 1, [SpopMessage(name: "check", args: [])]))
            return actionMap(try c.expectFrame(timeout: 10, "ACK").actions())["txn.version"] ?? nil
        }
        XCTAssertEqual(try version(), .string(Array("first".utf8)))

        try (Self.versioned("loops") + "\nspoa.register_init(function()\n  while true do end\nend)\n")
            .write(to: script, atomically: true, encoding: .utf8)
        kill(agent.process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog(agent, "reload failed"), agent.logTail())
        XCTAssertTrue(agent.log.contains("agent.lua:6: execution timeout while loading (300 ms)"), agent.logTail())
        XCTAssertEqual(try version(), .string(Array("first".utf8)))

        try Self.versioned("second").write(to: script, atomically: true, encoding: .utf8)
        kill(agent.process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog(agent, "generation 1 serving"), agent.logTail())
        XCTAssertEqual(try version(), .string(Array("second".utf8)))
    }

    /// Closing the old generation's states runs their pending __gc finalizers: a
    /// looping one is abandoned at the budget and the reload completes.
    func testReloadCompletesWhenAnOldFinalizerLoops() throws {
        let script = tempDir.appendingPathComponent("agent.lua")
        let looping = "KEPT = setmetatable({}, { __gc = function() while true do end end })\n"
        try (looping + Self.versioned("first")).write(to: script, atomically: true, encoding: .utf8)
        let (agent, _) = try startAgent(scriptPath: script.path, extraArgs: ["--workers", "2", "--lua-timeout", "50"])
        try Self.versioned("second").write(to: script, atomically: true, encoding: .utf8)
        kill(agent.process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog(agent, "generation 1 serving"), agent.logTail())
        XCTAssertTrue(waitForLog(agent, "__gc finalizer abandoned: "), agent.logTail())
        kill(agent.process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitForLog(agent, "generation 2 serving"), "the reloader is free again: \(agent.logTail())")
    }

    /// Polls the agent's log for `text` (the reload is asynchronous to the signal).
    func waitForLog(_ process: ManagedProcess, _ text: String, timeout: Double = 20) -> Bool {
        let deadline = nowSeconds() + timeout
        while nowSeconds() < deadline {
            if process.log.contains(text) { return true }
            usleep(20_000)
        }
        return false
    }
}

/// Counters shared by the client threads of a load test.
final class Traffic: @unchecked Sendable {
    private let lock = NSLock()
    private var _responses = 0
    private var _problems: [String] = []
    private var _stopped = false

    var responses: Int { lock.withLock { _responses } }
    var problems: [String] { lock.withLock { _problems } }
    var stopped: Bool { lock.withLock { _stopped } }

    func stop() { lock.withLock { _stopped = true } }

    /// One response; `problem` is nil when it was as expected.
    func record(_ problem: String?) {
        lock.withLock {
            _responses += 1
            if let problem { _problems.append(problem) }
        }
    }
}
