// A real HAProxy 3.x (3.2 from Debian sid, 3.0 from trixie; tools/haproxy-chroot.sh)
// in front of a real luaspoa: what a user checks with curl. Each test runs once
// per available 3.x and is skipped, with the reason, when there is none.

import Foundation
import XCTest

final class HAProxy3Tests: E2ETestCase {

    func assertHeader(_ r: HTTPResponse, _ name: String, _ expected: String?, _ t: HAProxy3Target,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.header(name), expected, "\(t): header \(name); all headers: \(r.headers)", file: file, line: line)
    }

    /// Typed arguments in (int, string, bool, IPv4, IPv6, binary, src), typed variables out.
    func testTypedArgumentsAndVariablesRoundTrip() throws {
        try forEachHAProxy3 { t in
            let (agent, agentPort) = try startAgent(script: try TestScripts.combined())
            let s = try ProxySetup(agent: agentPort, backendMode: t.agentBackendMode)
            let incoming = (1...7).flatMap { ["a\($0)_t", "a\($0)_v"] } + ["name", "nargs", "a6_len"]
            let outgoing = ["o_i32", "o_u64", "o_bool", "o_str", "o_bin", "o_v4", "o_v6", "i_int", "i_addr", "r_a"]
            let spoe = ProxySetup.spoeConfig(messages: [
                ("types", "i=int(-5) s=str(hello) b=bool(1) v4=ipv4(10.1.2.3) v6=ipv6(2001:db8::1) bin=bin(00414200) src"),
                ("emit", "ip=src"),
            ])
            let haproxy = try startHAProxy(
                config: s.haproxyConfig(headers: ProxySetup.varHeaders(incoming + outgoing, converters: ["o_bin": ",hex"])),
                files: ["e2e-spoe.conf": spoe], waitPort: s.web, binary: t.command)
            let r = try httpGet(port: s.web)
            XCTAssertEqual(r.status, 200, "\(t)\n\(haproxy.logTail())\n\(agent.logTail())")
            assertHeader(r, "X-SPOE-Error", nil, t)
            assertHeader(r, "X-V-name", "types", t)
            assertHeader(r, "X-V-nargs", "7", t)
            let expected = [("int64", "-5"), ("string", "hello"), ("boolean", "1"), ("ipv4", "10.1.2.3"),
                            ("ipv6", "2001:db8::1"), ("binary", "00414200"), ("ipv4", "127.0.0.1")]
            for (i, (type, value)) in expected.enumerated() {
                assertHeader(r, "X-V-a\(i + 1)_t", type, t)
                assertHeader(r, "X-V-a\(i + 1)_v", value, t)
            }
            assertHeader(r, "X-V-a6_len", "4", t)
            for (name, value) in [("o_i32", "-1"), ("o_u64", "4611686018427387905"), ("o_bool", "1"),
                                  ("o_str", "hello world"), ("o_bin", "410042"), ("o_v4", "192.0.2.1"),
                                  ("o_v6", "2001:db8::2"), ("i_int", "42"), ("i_addr", "127.0.0.1"), ("r_a", "1")] {
                assertHeader(r, "X-V-\(name)", value, t)
            }
        }
    }

    /// A handler that raises is still ACKed: the request passes, the other message's variable is set.
    func testRaisingHandlerStillAnswers() throws {
        try forEachHAProxy3 { t in
            let (agent, agentPort) = try startAgent(script: try TestScripts.combined())
            let s = try ProxySetup(agent: agentPort, backendMode: t.agentBackendMode)
            let spoe = ProxySetup.spoeConfig(messages: [("boom", "src"), ("ok", "src")])
            let haproxy = try startHAProxy(config: s.haproxyConfig(headers: ProxySetup.varHeaders(["ok", "boom_partial"])),
                                           files: ["e2e-spoe.conf": spoe], waitPort: s.web, binary: t.command)
            for _ in 0..<5 {
                let r = try httpGet(port: s.web)
                XCTAssertEqual(r.status, 200, "\(t)\n\(haproxy.logTail())\n\(agent.logTail())")
                assertHeader(r, "X-SPOE-Error", nil, t)
                assertHeader(r, "X-V-ok", "1", t)
                assertHeader(r, "X-V-boom_partial", nil, t)
            }
            XCTAssertTrue(agent.isRunning, "\(t)")
        }
    }

    /// 1500 requests over 64 keep-alive connections, two messages each (one busy for
    /// 2 ms, so NOTIFYs queue up per SPOP connection): every one answered with its
    /// own header echoed; on 3.1+ the tap shows the multiplexer's ids (odd
    /// stream-ids, frame-id 1).
    func testConcurrentRequestsAllAnswered() throws {
        try forEachHAProxy3 { t in
            let (agent, agentPort) = try startAgent(script: try TestScripts.combined())
            let tap = try startTap(agentPort: agentPort)
            let s = try ProxySetup(agent: tap.port, backendMode: t.agentBackendMode)
            let spoe = ProxySetup.spoeConfig(messages: [("slow", "ms=int(2)"), ("m", "n=req.hdr(x-n)")])
            let haproxy = try startHAProxy(config: s.haproxyConfig(headers: ProxySetup.varHeaders(["slow", "a1_v"])),
                                           files: ["e2e-spoe.conf": spoe], waitPort: s.web, binary: t.command)
            let total = 1500, connections = 64
            let (results, seconds) = httpLoad(port: s.web, total: total, connections: connections, timeout: 20,
                                              request: { ("/load/\($0)", [("X-N", "req-\($0)")]) },
                                              accept: { i, r in
                                                  r.status == 200 && r.header("X-V-a1_v") == "req-\(i)"
                                                      && r.header("X-V-slow") == "1" && r.header("X-SPOE-Error") == nil
                                              })
            let (ok, failures, samples) = results.snapshot()
            let st = tap.snapshot()
            print("E2E \(t) load: \(total) requests / \(connections) connections: \(ok) ok, \(failures) failed, "
                  + String(format: "%.2fs", seconds) + "; SPOP connections \(st.connections), "
                  + "\(st.notifyStreamIDs.count) stream-ids, frame-ids \(st.notifyFrameIDs.sorted().prefix(5)), "
                  + "max in flight on one connection \(st.maxInFlightPerConnection)")
            XCTAssertEqual(ok, total, "\(t)")
            XCTAssertEqual(failures, 0, "\(t): first failures: \(samples)\nNOTIFY \(st.framesByType[3] ?? 0) ACK \(st.acks)"
                           + "\n\(haproxy.logTail(10))\n\(agent.problems())")
            XCTAssertGreaterThanOrEqual(st.acks, total, "\(t): one ACK per NOTIFY")
            if t.hasSpopMux {
                XCTAssertEqual(st.notifyFrameIDs, [1], "\(t): the multiplexer always sends frame-id 1")
                XCTAssertTrue(st.notifyStreamIDs.allSatisfy { $0 % 2 == 1 }, "\(t): even stream-id seen")
            }
            XCTAssertTrue(agent.isRunning, "\(t)")
        }
    }

    /// scripts/txn_correlation.lua + the shipped haproxy-txstore.cfg (its `mode tcp`
    /// backend as it is): the response event finds its own request's path by
    /// unique-id, which matters on 3.1+ where the two events share no stream-id.
    func testTxStoreCorrelatesRequestAndResponseEvents() throws {
        try forEachHAProxy3 { t in
            let (agent, agentPort) = try startAgent(scriptPath: E2EPaths.repoFile("scripts/txn_correlation.lua").path,
                                                    extraArgs: ["--workers", "2"])
            let tap = try startTap(agentPort: agentPort)
            let s = try ProxySetup(agent: tap.port, backendMode: t.agentBackendMode)
            let cfg = try s.shipped("haproxy/haproxy-txstore.cfg", threads: 2)
            let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-txstore.conf"), encoding: .utf8)
            let haproxy = try startHAProxy(config: cfg, files: ["spoe-txstore.conf": spoe], waitPort: s.web,
                                           binary: t.command)
            let results = TxStoreEndToEndTests.correlatedLoad(web: s.web)
            let (ok, failed, samples) = results.snapshot()
            let st = tap.snapshot()
            print("E2E \(t) txstore: \(ok) ok, \(failed) failed; \(st.framesByType[3] ?? 0) NOTIFYs on "
                  + "\(st.connections) SPOP connections, \(st.notifyStreams.count) distinct (connection, stream-id)")
            XCTAssertEqual(ok, 400, "\(t): first failures: \(samples.prefix(3))\n\(haproxy.logTail(10))\n\(agent.problems())")
            XCTAssertEqual(failed, 0, "\(t)")
            if t.hasSpopMux {
                // Two events per transaction, each on its own stream: ids cannot tie them together.
                XCTAssertEqual(st.notifyStreams.count, st.framesByType[3] ?? 0, "\(t): \(st)")
            }
        }
    }
}
