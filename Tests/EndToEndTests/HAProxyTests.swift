// A real HAProxy in front of a real luaspoa: HTTP requests in, response headers
// showing the variables the Lua scripts set. Skipped only when haproxy is absent.

import Foundation
import XCTest

final class HAProxyTests: E2ETestCase {

    typealias Ports = ProxySetup

    // MARK: config generation (2.6: agents backend in mode tcp)

    func generatedConfig(_ p: Ports, bufsize: Int? = nil, headers: [String],
                         check: String = "check inter 2s", extra: String = "") -> String {
        p.haproxyConfig(headers: headers, check: check, global: bufsize.map { "tune.bufsize \($0)" } ?? "", extra: extra)
    }

    func varHeaders(_ names: [String], scope: String = "txn", converters: [String: String] = [:]) -> [String] {
        ProxySetup.varHeaders(names, scope: scope, converters: converters)
    }

    func spoeConfig(messages: [(name: String, args: String)], maxFrameSize: Int? = nil,
                    idleTimeout: String = "1m") -> String {
        ProxySetup.spoeConfig(messages: messages, maxFrameSize: maxFrameSize, idleTimeout: idleTimeout)
    }

    func ports(agent: UInt16) throws -> Ports {
        try ProxySetup(agent: agent)
    }

    func assertHeader(_ r: HTTPResponse, _ name: String, _ expected: String?,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.header(name), expected, "header \(name); all headers: \(r.headers)", file: file, line: line)
    }

    // MARK: (a) the shipped files

    func testShippedScriptAndConfigSetIPScore() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent")
        let p = try ports(agent: agentPort)
        let (cfg, spoe) = try shippedConfig(p)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-ip-reputation.conf": spoe], waitPort: p.web)

        for _ in 0..<3 {
            let r = try httpGet(port: p.web)
            XCTAssertEqual(r.status, 200, "\(r.headers)\n\(haproxy.logTail())\n\(agent.logTail())")
            assertHeader(r, "X-IP-Score", "100")
            assertHeader(r, "X-IP-Family", "ipv4")
            assertHeader(r, "X-SPOE-Error", nil)
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "hello from the app\n")
        }
    }

    /// The shipped example moves and re-ports without an edit: haproxy.cfg alone in one
    /// directory, its SPOE file in another, every address from the SPOA_* variables.
    func testTheShippedExampleMovesAndRePortsThroughEnvironmentVariables() throws {
        let haproxy = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent")
        let (web, app) = (try freePort(), try freePort())
        let cfgDir = tempDir.appendingPathComponent("moved"), spoeDir = tempDir.appendingPathComponent("elsewhere")
        for dir in [cfgDir, spoeDir] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(at: E2EPaths.repoFile("haproxy/haproxy.cfg"), to: cfgDir.appendingPathComponent("haproxy.cfg"))
        let spoe = spoeDir.appendingPathComponent("iprep.conf")
        try FileManager.default.copyItem(at: E2EPaths.repoFile("haproxy/spoe-ip-reputation.conf"), to: spoe)
        let environment = ProcessInfo.processInfo.environment.merging([
            "SPOA_WEB_ADDR": "127.0.0.1:\(web)", "SPOA_APP_ADDR": "127.0.0.1:\(app)",
            "SPOA_AGENT_ADDR": "127.0.0.1:\(agentPort)", "SPOA_SPOE_CONF": spoe.path,
        ]) { $1 }
        let proxy = try ManagedProcess(name: "haproxy-moved", executable: haproxy,
                                       arguments: ["-f", cfgDir.appendingPathComponent("haproxy.cfg").path, "-db"],
                                       logDir: tempDir, environment: environment)
        children.append(proxy)
        XCTAssertTrue(waitForPort(web, timeout: 20, while: { proxy.isRunning }), proxy.logTail())
        let r = try httpGet(port: web)
        XCTAssertEqual(r.status, 200, "\(r.headers)\n\(proxy.logTail())\n\(agent.logTail())")
        assertHeader(r, "X-IP-Score", "100")
        assertHeader(r, "X-SPOE-Error", nil)
    }

    /// haproxy/haproxy.cfg and haproxy/spoe-ip-reputation.conf with the ports substituted.
    func shippedConfig(_ p: Ports, processingTimeout: String? = nil) throws -> (String, String) {
        let cfg = try p.shipped("haproxy/haproxy.cfg")
        var spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-ip-reputation.conf"), encoding: .utf8)
        if let processingTimeout {
            let lines = spoe.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                line.trimmingCharacters(in: .whitespaces).hasPrefix("timeout processing")
                    ? "    timeout processing \(processingTimeout)" : String(line)
            }
            spoe = lines.joined(separator: "\n")
        }
        return (cfg, spoe)
    }

    // MARK: (b) types in both directions

    func testAllTypesThroughHAProxy() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let p = try ports(agent: agentPort)
        let incoming = (1...10).flatMap { ["a\($0)_t", "a\($0)_v", "a\($0)_len"] } + ["name", "nargs"]
        let outgoing = ["o_i32", "o_u32", "o_i64", "o_u64", "o_bool", "o_boolf", "o_str", "o_bin", "o_v4", "o_v6",
                        "o_null", "i_int", "i_neg", "i_bool", "i_str", "i_addr", "gone", "r_a", "r_b", "r_unset",
                        "named_i", "named_b", "named_v6"]
        let headers = varHeaders(incoming + outgoing, converters: ["o_bin": ",hex"])
            + varHeaders(["s_sess"], scope: "sess")
        let spoe = spoeConfig(messages: [
            ("types", "i=int(-5) s=str(hello) b=bool(1) v4=ipv4(10.1.2.3) v6=ipv6(2001:db8::1) "
                + "bin=bin(00414200) e=req.hdr(x-empty) n=req.hdr(x-missing) src method"),
            ("pre", "src"),
            ("emit", "ip=src"),
        ])
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: headers),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        let r = try httpGet(port: p.web, headers: [("X-Empty", "")])
        XCTAssertEqual(r.status, 200, "\(haproxy.logTail())\n\(agent.logTail())")
        assertHeader(r, "X-SPOE-Error", nil)

        // What HAProxy sent, as the agent saw it.
        assertHeader(r, "X-V-name", "types")
        assertHeader(r, "X-V-nargs", "10")
        let expected: [(String, String, String?)] = [
            ("int64", "-5", nil),
            ("string", "hello", "5"),
            ("boolean", "1", nil),
            ("ipv4", "10.1.2.3", nil),
            ("ipv6", "2001:db8::1", nil),
            ("binary", "00414200", "4"),
            ("string", "", "0"),
            ("null", "<absent>", nil),
            ("ipv4", "127.0.0.1", nil),
            ("string", "GET", "3"),
        ]
        for (i, (t, v, len)) in expected.enumerated() {
            let k = i + 1
            assertHeader(r, "X-V-a\(k)_t", t)
            if v == "<absent>" {
                assertHeader(r, "X-V-a\(k)_v", nil)
            } else {
                assertHeader(r, "X-V-a\(k)_v", v)
            }
            assertHeader(r, "X-V-a\(k)_len", len)
        }
        assertHeader(r, "X-V-named_i", "int64")
        assertHeader(r, "X-V-named_b", "boolean")
        assertHeader(r, "X-V-named_v6", "ipv6")

        // What the agent set, as HAProxy stores and prints it.
        assertHeader(r, "X-V-o_i32", "-1")
        assertHeader(r, "X-V-o_u32", "4294967295")
        assertHeader(r, "X-V-o_i64", "-9223372036854775808")
        assertHeader(r, "X-V-o_u64", "4611686018427387905")
        assertHeader(r, "X-V-o_bool", "1")
        assertHeader(r, "X-V-o_boolf", "0")
        assertHeader(r, "X-V-o_str", "hello world")
        assertHeader(r, "X-V-o_bin", "410042")
        assertHeader(r, "X-V-o_v4", "192.0.2.1")
        assertHeader(r, "X-V-o_v6", "2001:db8::2")
        assertHeader(r, "X-V-o_null", nil)     // "pre" set it, spoa.null unset it
        assertHeader(r, "X-V-gone", nil)       // "pre" set it, unset_var removed it
        assertHeader(r, "X-V-r_unset", nil)    // "pre" set it, spoa.unset in the returned table
        assertHeader(r, "X-V-i_int", "42")
        assertHeader(r, "X-V-i_neg", "-42")
        assertHeader(r, "X-V-i_bool", "1")
        assertHeader(r, "X-V-i_str", "text")
        assertHeader(r, "X-V-i_addr", "127.0.0.1")
        assertHeader(r, "X-V-r_a", "1")
        assertHeader(r, "X-V-r_b", "2")
        assertHeader(r, "X-V-s_sess", "1")
    }

    // MARK: (c) load

    func testPipelinedLoadThroughHAProxy() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent")
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        let (cfg, spoe) = try shippedConfig(p, processingTimeout: "5s")
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-ip-reputation.conf": spoe], waitPort: p.web)

        // E2E_LOAD_REQUESTS / E2E_LOAD_CONNECTIONS scale the test up for soak runs.
        let env = ProcessInfo.processInfo.environment
        let total = env["E2E_LOAD_REQUESTS"].flatMap { Int($0) } ?? 2000
        let connections = env["E2E_LOAD_CONNECTIONS"].flatMap { Int($0) } ?? 32
        let (results, elapsed) = httpLoad(port: p.web, total: total, connections: connections,
                                          request: { ("/load/\($0)", []) },
                                          accept: { _, r in
                                              r.status == 200 && r.header("X-IP-Score") == "100" && r.header("X-SPOE-Error") == nil
                                          })
        let (ok, failures, samples) = results.snapshot()
        print("E2E load: \(total) requests over \(connections) connections: \(ok) ok, \(failures) failed, "
              + String(format: "%.2fs, %.0f req/s", elapsed, Double(total) / elapsed))
        let st = tap.snapshot()
        print("E2E load: SPOP connections \(st.connections), NOTIFY \(st.framesByType[3] ?? 0), ACK \(st.acks), "
              + "max NOTIFYs in flight on one connection \(st.maxInFlightPerConnection)")
        XCTAssertEqual(ok, total)
        XCTAssertGreaterThanOrEqual(st.acks, total, "one ACK per NOTIFY")
        XCTAssertEqual(failures, 0, "first failures: \(samples)\n\(haproxy.logTail(10))\nagent problems:\n\(agent.problems())")
        XCTAssertTrue(agent.isRunning)
    }

    /// Slow handlers make HAProxy queue several NOTIFYs per SPOP connection
    /// (max-waiting-frames 20): every request still gets its own answer.
    func testPipelinedLoadWithSlowHandler() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        // Each request carries its own number; the agent echoes it back through the report handler.
        let spoe = spoeConfig(messages: [("slow", "ms=int(2)"), ("m", "n=req.hdr(x-n)")])
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: varHeaders(["slow", "a1_v"])),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        let total = 1000, connections = 64
        let (results, elapsed) = httpLoad(port: p.web, total: total, connections: connections, timeout: 20,
                                          request: { ("/slow/\($0)", [("X-N", "req-\($0)")]) },
                                          accept: { i, r in
                                              r.status == 200 && r.header("X-V-slow") == "1" && r.header("X-V-a1_v") == "req-\(i)"
                                                  && r.header("X-SPOE-Error") == nil
                                          })
        let (ok, failures, samples) = results.snapshot()
        let st = tap.snapshot()
        print("E2E slow load: \(total) requests over \(connections) connections, 2 ms handler: \(ok) ok, \(failures) failed, "
              + String(format: "%.2fs", elapsed) + "; SPOP connections \(st.connections), "
              + "max NOTIFYs in flight on one connection \(st.maxInFlightPerConnection)")
        XCTAssertEqual(ok, total)
        XCTAssertEqual(failures, 0, "first failures: \(samples)\n\(haproxy.logTail(10))\nagent problems:\n\(agent.problems())")
        XCTAssertGreaterThan(st.maxInFlightPerConnection, 1, "HAProxy never pipelined: \(st)")
    }

    // MARK: (d) fragmentation

    func testLargeArgumentIsFragmentedByHAProxy() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        let spoe = spoeConfig(messages: [("big", "big=req.hdr(x-big)")], maxFrameSize: 16380)
        let haproxy = try startHAProxy(config: generatedConfig(p, bufsize: 65536, headers: varHeaders(["big_len", "big_hash"])),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        for size in [40_000, 20_000, 16_500, 100] {
            let value = String((0..<size).map { Character(UnicodeScalar(UInt8(97 + ($0 * 7) % 26))) })
            let r = try httpGet(port: p.web, headers: [("X-Big", value)], timeout: 20)
            XCTAssertEqual(r.status, 200, "size \(size)\n\(haproxy.logTail())\n\(agent.logTail())")
            assertHeader(r, "X-SPOE-Error", nil)
            assertHeader(r, "X-V-big_len", "\(size)")
            assertHeader(r, "X-V-big_hash", "\(fnv1a32(value))")
            if size == 40_000 {
                // HAProxy really fragmented it: a NOTIFY without FIN and UNSET continuations.
                let st = tap.snapshot()
                print("E2E fragmentation: 40000-byte argument -> \(st.notifyWithoutFin) first fragment(s), \(st.unsetFrames) UNSET frame(s)")
                XCTAssertGreaterThanOrEqual(st.notifyWithoutFin, 1, "HAProxy did not fragment: \(st)")
                XCTAssertGreaterThanOrEqual(st.unsetFrames, 2, "a 40 KB payload needs at least 3 frames of 16380: \(st)")
            }
        }
    }

    // MARK: (e) a handler that raises

    func testRaisingHandlerDoesNotBreakTheRequest() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let p = try ports(agent: agentPort)
        let spoe = spoeConfig(messages: [("boom", "src"), ("ok", "src")])
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: varHeaders(["ok", "boom_partial"])),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        for _ in 0..<5 {
            let r = try httpGet(port: p.web)
            XCTAssertEqual(r.status, 200, "\(haproxy.logTail())\n\(agent.logTail())")
            assertHeader(r, "X-SPOE-Error", nil)
            assertHeader(r, "X-V-ok", "1")
            assertHeader(r, "X-V-boom_partial", nil)
        }
        XCTAssertTrue(agent.isRunning)
    }

    /// spoa.hash.crc32 and djb2 agree with HAProxy's converters of the same names:
    /// HAProxy sends a header and its hashes, the script compares.
    func testHashesAgreeWithHAProxyConverters() throws {
        _ = try requireHAProxy()
        let script = """
            local function check(name, mine, theirs)
              return mine == theirs and "same" or (name .. " " .. mine .. " vs " .. tostring(theirs))
            end
            spoa.register_message("hashes", function(txn, msg)
              local a = msg.args
              txn:set_var("txn.crc", check("crc32", spoa.hash.crc32(a.s), a.crc))
              txn:set_var("txn.djb2", check("djb2", spoa.hash.djb2(a.s), a.djb2))
            end)
            """
        let (agent, agentPort) = try startAgent(script: script, name: "hashes")
        let p = try ports(agent: agentPort)
        let spoe = spoeConfig(messages: [("hashes", "s=req.hdr(x-key) crc=req.hdr(x-key),crc32 djb2=req.hdr(x-key),djb2")])
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: varHeaders(["crc", "djb2"])),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        for key in ["123456789", "client-42", "a much longer key, with spaces / and slashes", "x"] {
            let r = try httpGet(port: p.web, headers: [("x-key", key)])
            XCTAssertEqual(r.status, 200, "\(haproxy.logTail())\n\(agent.logTail())")
            assertHeader(r, "X-V-crc", "same")
            assertHeader(r, "X-V-djb2", "same")
        }
    }

    // MARK: (f) connection life cycle with a real HAProxy

    func testIdleTimeoutDisconnectThenReconnect() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let tap = try startTap(agentPort: agentPort)
        let p = try ports(agent: tap.port)
        let spoe = spoeConfig(messages: [("ok", "src")], idleTimeout: "700ms")
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: varHeaders(["ok"])),
                                       files: ["e2e-spoe.conf": spoe], waitPort: p.web)
        assertHeader(try httpGet(port: p.web), "X-V-ok", "1")
        // HAProxy 2.6 closes idle SPOE connections with HAPROXY-DISCONNECT (status 2, timeout);
        // the agent answers AGENT-DISCONNECT.
        let deadline = nowSeconds() + 5
        while nowSeconds() < deadline && tap.snapshot().agentDisconnectStatuses.isEmpty { usleep(100_000) }
        let st = tap.snapshot()
        print("E2E idle: HAPROXY-DISCONNECT statuses \(st.haproxyDisconnectStatuses), AGENT-DISCONNECT statuses \(st.agentDisconnectStatuses)")
        XCTAssertTrue(st.haproxyDisconnectStatuses.contains(2), "\(st)\n\(haproxy.logTail())")
        XCTAssertFalse(st.agentDisconnectStatuses.isEmpty, "the agent did not answer HAPROXY-DISCONNECT: \(st)\n\(agent.logTail())")
        // New connections are opened for the next requests.
        for _ in 0..<3 {
            let r = try httpGet(port: p.web)
            XCTAssertEqual(r.status, 200)
            assertHeader(r, "X-V-ok", "1")
            assertHeader(r, "X-SPOE-Error", nil)
        }
    }

    func testSpopHealthCheckMarksAgentUp() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(script: try TestScripts.combined(), name: "agent")
        let tap = try startTap(agentPort: agentPort)
        let statsPort = try freePort()
        let p = try ports(agent: tap.port)
        let haproxy = try startHAProxy(config: generatedConfig(p, headers: varHeaders(["ok"]),
                                                               check: "check inter 200ms fall 1 rise 1",
                                                               extra: statsFrontend(port: statsPort)),
                                       files: ["e2e-spoe.conf": spoeConfig(messages: [("ok", "src")])], waitPort: p.web)
        let deadline = nowSeconds() + 5
        while nowSeconds() < deadline && tap.snapshot().healthCheckHellos < 3 { usleep(100_000) }
        XCTAssertGreaterThanOrEqual(tap.snapshot().healthCheckHellos, 3, "HAProxy sent no spop-check probes")
        guard let row = try waitForServerUp(statsPort: statsPort, backend: "be_agents", server: "a1") else {
            XCTFail("no be_agents/a1 row in stats\n\(haproxy.logTail())")
            return
        }
        XCTAssertEqual(row["status"], "UP", "\(row["check_desc"] ?? "")\n\(agent.logTail())")
        XCTAssertEqual(row["check_status"], "L7OK", "\(row["check_desc"] ?? "")")
        let r = try httpGet(port: p.web)
        XCTAssertEqual(r.header("X-V-ok"), "1", "\(r.headers)\n\(haproxy.logTail(10))\n\(agent.logTail(10))")
    }
}

/// Thread-safe counters for the load test.
final class LoadResults: @unchecked Sendable {
    private let lock = NSLock()
    private var okCount = 0
    private var failCount = 0
    private var samples: [String] = []

    func ok() { lock.lock(); okCount += 1; lock.unlock() }

    func fail(_ s: String) {
        lock.lock()
        failCount += 1
        if samples.count < 5 { samples.append(s) }
        lock.unlock()
    }

    func snapshot() -> (Int, Int, [String]) {
        lock.lock(); defer { lock.unlock() }
        return (okCount, failCount, samples)
    }
}
