// What an operator relies on: the metrics endpoint after real traffic, JSON log
// lines, configuration file and environment precedence, `luaspoa send`, --async.

import Foundation
import SpopTestFrames
import XCTest

final class OperationsTests: E2ETestCase {

    static let script = """
        local seen = spoa.shared.declare("seen", { max_items = 1000 })
        spoa.register_message("ok", function(txn, msg)
          seen:set(tostring(msg.args.n), true)
          txn:set_var("txn.n", msg.args.n)
        end)
        spoa.register_message("fail", function(txn) error("broken on purpose") end)
        """

    func okMessage(_ n: Int) -> SpopMessage { SpopMessage(name: "ok", args: [("n", .int32(Int64(n)))]) }

    func scrape(_ port: UInt16) throws -> [String: Double] { try prometheusSeries(port: port) }

    /// The sum over workers of one per-message series, e.g. total(m, "luaspoa_messages_total", "ok").
    func total(_ m: [String: Double], _ name: String, _ message: String) -> Double? {
        let series = m.filter { $0.key.hasPrefix(name + "{") && $0.key.contains("message=\"\(message)\"") }
        return series.isEmpty ? nil : series.values.reduce(0, +)
    }

    /// `luaspoa_handlers_pending` exists for every worker from the start (0: no handler waits).
    func testHandlersPendingGaugeIsExportedPerWorker() throws {
        let metricsPort = try freePort()
        let (agent, _) = try startAgent(script: Self.script, extraArgs: ["--metrics", "127.0.0.1:\(metricsPort)", "--workers", "2"])
        XCTAssertTrue(waitForPort(metricsPort, timeout: 20, while: { agent.isRunning }), agent.logTail())
        let m = try scrape(metricsPort)
        for worker in 0..<2 {
            XCTAssertEqual(m["luaspoa_handlers_pending{worker=\"\(worker)\"}"], 0, "\(m.keys.filter { $0.contains("pending") })")
        }
    }

    func testMetricsEndpointCountsTrafficErrorsDisconnectsAndDicts() throws {
        let metricsPort = try freePort()
        let (agent, port) = try startAgent(script: Self.script, extraArgs: ["--metrics", "127.0.0.1:\(metricsPort)", "--workers", "2"])
        XCTAssertTrue(waitForPort(metricsPort, timeout: 20, while: { agent.isRunning }), agent.logTail())

        // 12 good messages (4 frames of 3 in flight) and 2 failing ones on one connection.
        let c = try TCPConn(port: port)
        _ = try c.handshake()
        var acks = 0
        for frame in 0..<4 {
            for i in 0..<3 { XCTAssertTrue(c.send(notifyFrame(streamID: UInt64(frame * 3 + i), frameID: 1, [okMessage(frame * 3 + i)]))) }
            for _ in 0..<3 { if try c.expectFrame(timeout: 10, "ACK").type == SpopType.ack.rawValue { acks += 1 } }
        }
        for i in 0..<2 {
            c.send(notifyFrame(streamID: UInt64(100 + i), frameID: 1, [SpopMessage(name: "fail", args: [])]))
            if try c.expectFrame(timeout: 10, "ACK").type == SpopType.ack.rawValue { acks += 1 }
        }
        XCTAssertEqual(acks, 14)
        c.send(haproxyDisconnect(status: 0, message: "bye"))
        _ = try c.waitForClose(timeout: 10)

        // A protocol error: a second HAPROXY-HELLO after the handshake is status 4.
        let bad = try TCPConn(port: port)
        _ = try bad.handshake()
        bad.send(haproxyHello())
        XCTAssertEqual(try bad.expectFrame(timeout: 10, "AGENT-DISCONNECT").type, SpopType.agentDisconnect.rawValue)
        _ = try bad.waitForClose(timeout: 10)
        // A health check.
        let check = try TCPConn(port: port)
        check.send(hexBytes(Golden.healthCheckHello))
        _ = try check.expectFrame(timeout: 10, "AGENT-HELLO")
        _ = try check.waitForClose(timeout: 10)

        // Counters move when the agent sees a close or finishes a write, which a
        // sanitizer build does late: poll until they all read as expected (or the
        // deadline passes), then check each, so a miscount still fails. The
        // harness's port probe is the fourth connection (closed without a frame).
        let expected: [String: Double] = [
            "luaspoa_connections_total": 4,
            "luaspoa_connections_open": 0,
            #"luaspoa_connections_closed_total{reason="peer_closed"}"#: 1,
            #"luaspoa_connections_closed_total{reason="haproxy_disconnect"}"#: 1,
            #"luaspoa_connections_closed_total{reason="protocol_error"}"#: 1,
            #"luaspoa_connections_closed_total{reason="health_check"}"#: 1,
            #"luaspoa_frames_received_total{type="notify"}"#: 14,
            #"luaspoa_frames_received_total{type="haproxy-hello"}"#: 4,
            #"luaspoa_frames_sent_total{type="ack"}"#: 14,
            #"luaspoa_frames_sent_total{type="agent-hello"}"#: 3,
            #"luaspoa_agent_disconnects_total{status="0"}"#: 1,
            #"luaspoa_agent_disconnects_total{status="4"}"#: 1,
            "luaspoa_frames_in_flight": 0,
        ]
        var m = try scrape(metricsPort)
        let deadline = nowSeconds() + 60
        while expected.contains(where: { m[$0.key] != $0.value }), nowSeconds() < deadline {
            usleep(50_000)
            m = try scrape(metricsPort)
        }
        for (series, value) in expected.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(m[series], value, series)
        }
        XCTAssertEqual(total(m, "luaspoa_messages_total", "ok"), 12)
        XCTAssertEqual(total(m, "luaspoa_messages_total", "fail"), 2)
        XCTAssertEqual(total(m, "luaspoa_lua_errors_total", "fail"), 2)
        XCTAssertEqual(total(m, "luaspoa_lua_errors_total", "ok"), 0)
        XCTAssertEqual(total(m, "luaspoa_handler_duration_seconds_count", "ok"), 12)
        XCTAssertEqual(m[#"luaspoa_shared_dict_items{dict="seen"}"#], 12)
        XCTAssertEqual(m[#"luaspoa_shared_dict_capacity{dict="seen"}"#], 1000)
        // Keys "0"..."11" (14 bytes) and 12 booleans (8 bytes each).
        XCTAssertEqual(m[#"luaspoa_shared_dict_bytes{dict="seen"}"#], 14 + 12 * 8)
        XCTAssertEqual(m[#"luaspoa_shared_dict_max_bytes{dict="seen"}"#], 64 * 1024 * 1024)

        // Reloads: one good (SIGHUP), counted once it is installed.
        kill(agent.process.processIdentifier, SIGHUP)
        while m[#"luaspoa_reloads_total{result="ok"}"#] != 1, nowSeconds() < deadline + 20 {
            usleep(50_000)
            m = try scrape(metricsPort)
        }
        XCTAssertEqual(m[#"luaspoa_reloads_total{result="ok"}"#], 1, agent.logTail())
        XCTAssertEqual(m[#"luaspoa_reloads_total{result="failed"}"#], 0)

        let health = try httpGet(port: metricsPort, "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(String(decoding: health.body, as: UTF8.self), "ok\n")
        XCTAssertEqual(try httpGet(port: metricsPort, "/nope").status, 404)
    }

    func testJSONLogLinesParseAndTraceMessagesOnlyAtTrace() throws {
        let (debugAgent, debugPort) = try startAgent(script: Self.script, name: "debug",
                                                     extraArgs: ["--log-format", "json", "--log-level", "trace"])
        let c = try TCPConn(port: debugPort)
        _ = try c.handshake()
        c.send(notifyFrame(streamID: 7, frameID: 1, [okMessage(42)]))
        _ = try c.expectFrame(timeout: 10, "ACK")
        c.send(notifyFrame(streamID: 8, frameID: 1, [SpopMessage(name: "fail", args: [])]))
        _ = try c.expectFrame(timeout: 10, "ACK")
        c.shutdownAndClose()
        XCTAssertEqual(debugAgent.stop(), 0)

        let lines = debugAgent.log.split(separator: "\n")
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(object, "not a JSON object: \(line)")
            if let object { objects.append(object) }
        }
        XCTAssertTrue(objects.allSatisfy { $0["time"] is String && $0["level"] is String && $0["message"] is String })
        let trace = try XCTUnwrap(objects.first { $0["message"] as? String == "message ok" }, debugAgent.log)
        XCTAssertEqual(trace["level"] as? String, "trace")
        XCTAssertEqual(trace["args"] as? [String], ["n=int32:42"])
        XCTAssertEqual(trace["actions"] as? [String], ["set-var(txn.n) int64:42"])
        XCTAssertEqual(trace["stream-id"] as? String, "7")
        let error = try XCTUnwrap(objects.first { $0["level"] as? String == "error" }, debugAgent.log)
        XCTAssertEqual(error["lua.message"] as? String, "fail")
        XCTAssertTrue((error["message"] as? String)?.contains("broken on purpose") == true, "\(error)")
        XCTAssertTrue(objects.contains { $0["message"] as? String == "connection established" && $0["engine-id"] != nil })

        // At the default level: connection events, no line per request.
        let (infoAgent, infoPort) = try startAgent(script: Self.script, name: "info", extraArgs: ["--log-format", "json"])
        let d = try TCPConn(port: infoPort)
        _ = try d.handshake()
        for i in 0..<50 {
            d.send(notifyFrame(streamID: UInt64(i), frameID: 1, [okMessage(i)]))
            _ = try d.expectFrame(timeout: 10, "ACK")
        }
        d.send(haproxyDisconnect(status: 0, message: "bye"))
        _ = try d.waitForClose(timeout: 10)
        XCTAssertEqual(infoAgent.stop(), 0)
        let messages = try infoAgent.log.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["message"] as? String
        }
        XCTAssertEqual(messages.filter { $0 == "connection established" }.count, 1, infoAgent.log)
        XCTAssertEqual(messages.filter { $0?.hasPrefix("HAProxy disconnects") == true }.count, 1, infoAgent.log)
        XCTAssertLessThan(messages.count, 10, "log lines per request at info:\n\(infoAgent.log)")
    }

    /// spoa.Info's fields table: keys of the JSON line, key=value in the text line.
    func testLogFieldsInBothFormats() throws {
        let script = """
            spoa.Info("rules loaded", { rules = 12, mode = "strict", ip = spoa.addr("192.0.2.1"), strict = true })
            spoa.register_message("ok", function(txn) end)
            """
        let (jsonAgent, _) = try startAgent(script: script, name: "fields-json", extraArgs: ["--log-format", "json"])
        XCTAssertEqual(jsonAgent.stop(), 0)
        // Only the logger's lines: SwiftNIO may print its own warning at shutdown.
        let objects = try jsonAgent.log.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
        let loaded = objects.filter { $0["message"] as? String == "rules loaded" }
        XCTAssertFalse(loaded.isEmpty, jsonAgent.log)
        for line in loaded {
            XCTAssertEqual(line["rules"] as? String, "12")
            XCTAssertEqual(line["mode"] as? String, "strict")
            XCTAssertEqual(line["ip"] as? String, "192.0.2.1")
            XCTAssertEqual(line["strict"] as? String, "true")
            XCTAssertEqual(line["level"] as? String, "info")
        }

        let (textAgent, _) = try startAgent(script: script, name: "fields-text")
        XCTAssertEqual(textAgent.stop(), 0)
        let lines = textAgent.log.split(separator: "\n").filter { $0.contains("rules loaded") }
        XCTAssertFalse(lines.isEmpty, textAgent.log)
        for line in lines {
            for pair in ["rules=12", "mode=strict", "ip=192.0.2.1", "strict=true"] {
                XCTAssertTrue(line.contains(pair), "\(pair) in \(line)")
            }
        }
    }

    /// Metrics declared by the script keep their values across a reload
    /// (SIGHUP): the new states declare the same series and count on.
    func testScriptMetricsKeepTheirValuesAcrossAReload() throws {
        let script = """
            local SEEN = spoa.metrics.counter("seen_total", "Messages seen.", { "kind" })
            local LAST = spoa.metrics.gauge("last_n", "The last n.")
            spoa.register_message("ok", function(txn, msg)
              SEEN:inc({ kind = "ok" })
              LAST:set(msg.args.n)
            end)
            """
        let metricsPort = try freePort()
        let (agent, port) = try startAgent(script: script, extraArgs: ["--metrics", "127.0.0.1:\(metricsPort)", "--workers", "2"])
        XCTAssertTrue(waitForPort(metricsPort, timeout: 20, while: { agent.isRunning }), agent.logTail())
        func send(_ range: Range<Int>) throws {
            let c = try TCPConn(port: port)
            _ = try c.handshake()
            for i in range {
                c.send(notifyFrame(streamID: UInt64(i), frameID: 1, [okMessage(i)]))
                XCTAssertEqual(try c.expectFrame(timeout: 10, "ACK").type, SpopType.ack.rawValue)
            }
            c.shutdownAndClose()
        }
        let seen = #"luaspoa_script_seen_total{kind="ok"}"#
        try send(0..<3)
        var m = try scrape(metricsPort)
        XCTAssertEqual(m[seen], 3)
        XCTAssertEqual(m["luaspoa_script_last_n"], 2)

        kill(agent.process.processIdentifier, SIGHUP)
        let deadline = nowSeconds() + 30
        while m[#"luaspoa_reloads_total{result="ok"}"#] != 1, nowSeconds() < deadline {
            usleep(50_000)
            m = try scrape(metricsPort)
        }
        XCTAssertEqual(m[#"luaspoa_reloads_total{result="ok"}"#], 1, agent.logTail())
        XCTAssertEqual(m[seen], 3, "the reload keeps the count")
        XCTAssertEqual(m["luaspoa_script_last_n"], 2, "and the gauge")
        try send(3..<5)
        m = try scrape(metricsPort)
        XCTAssertEqual(m[seen], 5, "the new states count on")
        XCTAssertEqual(m["luaspoa_script_last_n"], 4)
    }

    /// SIGHUP re-reads a map and a netset file that changed; at debug level
    /// the log says which files were read and which were found unchanged.
    func testReloadReadsChangedDataFilesAgain() throws {
        let map = tempDir.appendingPathComponent("data.map"), set = tempDir.appendingPathComponent("set.lst")
        try "k old\n".write(to: map, atomically: false, encoding: .utf8)
        try "10.0.0.0/8 old\n".write(to: set, atomically: false, encoding: .utf8)
        let script = """
            local M = spoa.map.load("data.map")
            local S = spoa.netset.load("set.lst")
            spoa.register_message("ok", function(txn)
              local _, v = S:lookup("10.1.2.3")
              txn:set_var("txn.m", M:lookup("k") or "none")
              txn:set_var("txn.s", v or "none")
            end)
            """
        let metricsPort = try freePort()
        let (agent, port) = try startAgent(script: script, extraArgs: ["--metrics", "127.0.0.1:\(metricsPort)", "--log-level", "debug"])
        XCTAssertTrue(waitForPort(metricsPort, timeout: 20, while: { agent.isRunning }), agent.logTail())
        func values(_ streamID: UInt64) throws -> [String: SpopValue?] {
            let c = try TCPConn(port: port)
            _ = try c.handshake()
            c.send(notifyFrame(streamID: streamID, frameID: 1, [SpopMessage(name: "ok", args: [])]))
            let ack = try c.expectFrame(timeout: 10, "ACK")
            c.shutdownAndClose()
            return actionMap(try ack.actions())
        }
        func reload(_ count: Double) throws {
            kill(agent.process.processIdentifier, SIGHUP)
            let deadline = nowSeconds() + 30
            var m = try scrape(metricsPort)
            while m[#"luaspoa_reloads_total{result="ok"}"#] != count, nowSeconds() < deadline {
                usleep(50_000)
                m = try scrape(metricsPort)
            }
            XCTAssertEqual(m[#"luaspoa_reloads_total{result="ok"}"#], count, agent.logTail())
        }
        XCTAssertEqual(try values(1)["txn.m"], .str("old"))
        XCTAssertEqual(try values(2)["txn.s"], .str("old"))

        try reload(1)
        XCTAssertTrue(agent.log.contains("spoa.map.load: \(map.path) unchanged, sharing the copy already loaded"), agent.logTail())
        XCTAssertTrue(agent.log.contains("spoa.netset.load: \(set.path) unchanged, sharing the copy already loaded"), agent.logTail())

        try "k new value\n".write(to: map, atomically: false, encoding: .utf8)
        try "10.0.0.0/8 newer\n".write(to: set, atomically: true, encoding: .utf8)
        try reload(2)
        let after = try values(3)
        XCTAssertEqual(after["txn.m"], .str("new value"))
        XCTAssertEqual(after["txn.s"], .str("newer"))
    }
}
