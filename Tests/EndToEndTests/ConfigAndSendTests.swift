// `--config FILE` and LUASPOA_* precedence (flag > env > file), `luaspoa send`
// against a live agent, and the --async announcement.

import Foundation
import XCTest

final class ConfigAndSendTests: E2ETestCase {

    /// Starts `luaspoa ARGS` with extra environment variables.
    func run(_ args: [String], env: [String: String] = [:], name: String) throws -> ManagedProcess {
        let bin = try XCTUnwrap(E2EPaths.agentBinary(), "luaspoa binary not found")
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("LUASPOA_") }
            .merging(env) { $1 }
        let p = try ManagedProcess(name: name, executable: bin, arguments: args, logDir: tempDir, environment: environment)
        children.append(p)
        return p
    }

    func capabilities(_ port: UInt16) throws -> String? {
        let c = try TCPConn(port: port)
        defer { c.shutdownAndClose() }
        return try c.handshake().kv()["capabilities"]?.stringValue
    }

    func testFileThenEnvironmentThenFlag() throws {
        let (filePort, envPort, flagPort) = (try freePort(), try freePort(), try freePort())
        let config = tempDir.appendingPathComponent("luaspoa.yaml")
        try """
            # every serve option by its long name
            script: \(TestScripts.ipReputationPath)
            listen: 127.0.0.1:\(filePort)
            workers: 1
            log_format: json     # underscores work too
            pipelining: false
            lua-timeout: 5000
            """.write(to: config, atomically: true, encoding: .utf8)

        // File only.
        let fileOnly = try run(["--config", config.path], name: "file")
        XCTAssertTrue(waitForPort(filePort, timeout: 20, while: { fileOnly.isRunning }), fileOnly.logTail())
        XCTAssertEqual(try capabilities(filePort), "fragmentation", "pipelining: false from the file")
        XCTAssertEqual(fileOnly.stop(), 0)
        let first = try XCTUnwrap(fileOnly.log.split(separator: "\n").first)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any], "log_format json: \(first)")

        // The environment beats the file (LUASPOA_CONFIG names the file, too).
        let env = try run([], env: ["LUASPOA_CONFIG": config.path, "LUASPOA_LISTEN": "127.0.0.1:\(envPort)",
                                    "LUASPOA_PIPELINING": "true"], name: "env")
        XCTAssertTrue(waitForPort(envPort, timeout: 20, while: { env.isRunning }), env.logTail())
        XCTAssertEqual(try capabilities(envPort), "pipelining,fragmentation")
        XCTAssertEqual(env.stop(), 0)

        // A flag beats both.
        let flag = try run(["--config", config.path, "--listen", "127.0.0.1:\(flagPort)", "--no-fragmentation"],
                           env: ["LUASPOA_LISTEN": "127.0.0.1:\(envPort)", "LUASPOA_FRAGMENTATION": "true"], name: "flag")
        XCTAssertTrue(waitForPort(flagPort, timeout: 20, while: { flag.isRunning }), flag.logTail())
        XCTAssertEqual(try capabilities(flagPort), "")
        XCTAssertEqual(flag.stop(), 0)
    }

    /// The shipped /etc/luaspoa/luaspoa.yaml is valid: with only its paths overridden
    /// by flags, the agent serves and exports metrics as configured.
    func testShippedConfigurationFileStarts() throws {
        let (port, metricsPort) = (try freePort(), try freePort())
        let agent = try run(["--config", E2EPaths.repoFile("packaging/etc/luaspoa/luaspoa.yaml").path,
                             "--script", TestScripts.ipReputationPath, "--listen", "127.0.0.1:\(port)",
                             "--metrics", "127.0.0.1:\(metricsPort)",
                             "--pid-file", tempDir.appendingPathComponent("luaspoa.pid").path], name: "shipped")
        XCTAssertTrue(waitForPort(port, timeout: 20, while: { agent.isRunning }), agent.logTail())
        // The metrics listener opens independently of the SPOP one: wait for it too.
        XCTAssertTrue(waitForPort(metricsPort, timeout: 20, while: { agent.isRunning }), agent.logTail())
        XCTAssertEqual(String(decoding: try httpGet(port: metricsPort, "/health").body, as: UTF8.self), "ok\n")
        XCTAssertEqual(agent.stop(), 0)
        XCTAssertTrue(agent.log.split(separator: "\n").allSatisfy { $0.hasPrefix("{\"time\":") }, "log-format json: \(agent.log)")
    }

    func testUnknownKeysAndBadFilesAreRefusedByName() throws {
        let config = tempDir.appendingPathComponent("bad.yaml")
        try "script: x.lua\nlisten_port: 5\n".write(to: config, atomically: true, encoding: .utf8)
        let bad = try run(["--config", config.path], name: "badkey")
        XCTAssertNotEqual(bad.waitForExit(timeout: 20), 0)
        XCTAssertTrue(bad.log.contains("bad.yaml: listen_port: no option --listen-port"), bad.log)

        let env = try run(["--script", "x.lua"], env: ["LUASPOA_WORKERZ": "2"], name: "badenv")
        XCTAssertNotEqual(env.waitForExit(timeout: 20), 0)
        XCTAssertTrue(env.log.contains("LUASPOA_WORKERZ: no option --workerz"), env.log)

        try "workers: two\n".write(to: config, atomically: true, encoding: .utf8)
        let value = try run(["--config", config.path, "--script", "x.lua"], name: "badvalue")
        XCTAssertEqual(value.waitForExit(timeout: 20), 64)
        XCTAssertTrue(value.log.contains("bad.yaml: workers: The value 'two' is invalid for '--workers"), value.log)

        let envValue = try run(["--script", "x.lua"], env: ["LUASPOA_WORKERS": "zz"], name: "badenvvalue")
        XCTAssertEqual(envValue.waitForExit(timeout: 20), 64)
        XCTAssertTrue(envValue.log.contains("LUASPOA_WORKERS: The value 'zz' is invalid"), envValue.log)

        try "- a list\n".write(to: config, atomically: true, encoding: .utf8)
        let list = try run(["--config", config.path], name: "list")
        XCTAssertNotEqual(list.waitForExit(timeout: 20), 0)
        XCTAssertTrue(list.log.contains("expected a mapping of option names"), list.log)
    }

    /// `--max-pending` comes from a file or the environment like every option, and
    /// is refused below 1.
    func testMaxPendingFromTheConfigurationAndItsBound() throws {
        let config = tempDir.appendingPathComponent("pending.yaml")
        let port = try freePort()
        try "script: \(TestScripts.ipReputationPath)\nlisten: 127.0.0.1:\(port)\nmax-pending: 5\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let agent = try run(["--config", config.path], name: "maxpending")
        XCTAssertTrue(waitForPort(port, timeout: 20, while: { agent.isRunning }), agent.logTail())
        XCTAssertEqual(agent.stop(), 0)

        let zero = try run(["--script", TestScripts.ipReputationPath], env: ["LUASPOA_MAX_PENDING": "0"], name: "maxpending0")
        XCTAssertNotEqual(zero.waitForExit(timeout: 20), 0)
        XCTAssertTrue(zero.log.contains("--max-pending must be at least 1"), zero.log)
    }

    /// `LUASPOA_BUSY_POLL` (here from the environment, as from a config file) starts
    /// one `busy-poll` thread; the agent answers as usual and stops cleanly.
    func testBusyPollRunsOneSpinnerThread() throws {
        let port = try freePort()
        let agent = try run(["--script", TestScripts.ipReputationPath, "--listen", "127.0.0.1:\(port)"],
                            env: ["LUASPOA_BUSY_POLL": "500"], name: "busypoll")
        XCTAssertTrue(waitForPort(port, timeout: 20, while: { agent.isRunning }), agent.logTail())
        let send = try run(["send", "--to", "127.0.0.1:\(port)", "--message", "check-client-ip", "--arg", "ip=ipv4:192.0.2.10"],
                           name: "send")
        XCTAssertEqual(send.waitForExit(timeout: 20), 0, send.log)
        XCTAssertEqual(send.log.split(separator: "\n").first, "set-var(sess.ip_score) uint32:28")
        let tasks = "/proc/\(agent.process.processIdentifier)/task"
        let names = try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap {
            try? String(contentsOfFile: "\(tasks)/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(names.filter { $0 == "busy-poll" }.count, 1, "threads: \(names)")
        XCTAssertFalse(agent.log.contains("busy polling is off"), agent.log)
        XCTAssertEqual(agent.stop(), 0)

        let bad = try run(["--script", TestScripts.ipReputationPath, "--busy-poll", "2000000"], name: "badpoll")
        XCTAssertNotEqual(bad.waitForExit(timeout: 20), 0)
        XCTAssertTrue(bad.log.contains("--busy-poll must be between 0 and 1000000 microseconds, got 2000000"), bad.log)
    }

    func testSendPrintsTheAckOfALiveAgent() throws {
        let (_, port) = try startAgent(scriptPath: TestScripts.ipReputationPath)
        let send = try run(["send", "--to", "127.0.0.1:\(port)", "--message", "check-client-ip", "--arg", "ip=ipv4:127.0.0.1"],
                           name: "send")
        XCTAssertEqual(send.waitForExit(timeout: 20), 0, send.log)
        XCTAssertEqual(send.log.split(separator: "\n"), ["set-var(sess.ip_score) uint32:100", "set-var(txn.ip_family) string:\"ipv4\""])

        let badArg = try run(["send", "--to", "127.0.0.1:\(port)", "--message", "m", "--arg", "ip=ipv4:300.1.1.1"], name: "badarg")
        XCTAssertNotEqual(badArg.waitForExit(timeout: 20), 0)
        XCTAssertTrue(badArg.log.contains("'300.1.1.1' is not a valid ipv4"), badArg.log)

        let closedPort = try freePort()
        let nobody = try run(["send", "--to", "127.0.0.1:\(closedPort)", "--message", "m"], name: "nobody")
        XCTAssertEqual(nobody.waitForExit(timeout: 20), 1)
        XCTAssertEqual(nobody.log, "Error: cannot connect to 127.0.0.1:\(closedPort): Connection refused\n")

        // An empty ACK is an answer, not an error, but it is said: silence looked like a typo'd name going nowhere.
        let unknown = try run(["send", "--to", "127.0.0.1:\(port)", "--message", "nope"], name: "unknown")
        XCTAssertEqual(unknown.waitForExit(timeout: 20), 0, unknown.log)
        XCTAssertTrue(unknown.log.contains("no actions: the agent's ACK is empty (no handler for \"nope\""), unknown.log)

        let typo = try run(["send", "--to", "127.0.0.1:\(port)", "--mesage", "m"], name: "typo")
        XCTAssertEqual(typo.waitForExit(timeout: 20), 64)
        XCTAssertTrue(typo.log.contains("unknown option '--mesage' (did you mean '--message'?)"), typo.log)
    }

    func testVersionIsPrintedWithoutAScriptEvenWithConfigurationVariables() throws {
        let version = try run(["--version"], env: ["LUASPOA_WORKERS": "2"], name: "version")
        XCTAssertEqual(version.waitForExit(timeout: 20), 0, version.log)
        XCTAssertNotNil(version.log.wholeMatch(of: /\d+\.\d+\.\d+\n/), version.log)
    }

    func testAsyncIsAnnouncedOnlyWithTheFlag() throws {
        let (_, plain) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "plain")
        XCTAssertEqual(try capabilities(plain), "pipelining,fragmentation")
        let (_, async) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "async", extraArgs: ["--async"])
        XCTAssertEqual(try capabilities(async), "pipelining,fragmentation,async")
    }
}
