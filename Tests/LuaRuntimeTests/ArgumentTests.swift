import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// What a handler sees in msg: every SPOP type, names, positions, NULLs.
final class ArgumentTests: XCTestCase {
    static let describeScript = """
        local function hexs(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
        spoa.register_message("types", function(txn, msg)
          for i = 1, msg.nargs do
            local v, t = msg.args[i], msg:type(i)
            local desc
            if t == "binary" then desc = hexs(v) .. "/" .. #v
            elseif t == "ipv4" or t == "ipv6" then
              desc = tostring(v) .. "/" .. v:family() .. "/" .. tostring(v:is_loopback())
            elseif t == "string" then desc = "[" .. v .. "]/" .. #v
            else desc = tostring(v) .. "/" .. (math.type(v) or type(v)) end
            txn:set_var("txn.a" .. i, t .. "=" .. desc)
          end
        end)
        """

    func testEveryTypeArrivesWithItsTypeAndValue() throws {
        let harness = try Harness(Self.describeScript)
        let arguments: [(name: String, value: SpopValue)] = [
            ("n", .null),
            ("b", .bool(true)),
            ("i32", .int32(-5)),
            ("u32", .uint32(UInt32.max)),
            ("i64", .int64(-2)),
            ("u64", .uint64(UInt64.max)),
            ("v4", .ipv4(IPv4Address(192, 0, 2, 10))),
            ("v6", .ipv6(IPv6Address("2001:db8::1")!)),
            ("s", .string("")),
            ("bin", .binary([0x00, 0x01, 0x00, 0xFF])),
            ("", .ipv4(IPv4Address(127, 0, 0, 2))),
            ("", .ipv6(IPv6Address("::1")!)),
            ("", .ipv6(IPv6Address("2001:0db8:0000:0000:0001:0000:0000:0001")!)),
            ("", .bool(false)),
            ("", .string("héllo wörld")),
        ]
        let vars = try harness.vars("types", arguments)
        let expected = [
            "null=nil/nil",
            "boolean=true/boolean",
            "int32=-5/integer",
            "uint32=4294967295/integer",
            "int64=-2/integer",
            "uint64=-1/integer",
            "ipv4=192.0.2.10/4/false",
            "ipv6=2001:db8::1/6/false",
            "string=[]/0",
            "binary=000100ff/4",
            "ipv4=127.0.0.2/4/true",
            "ipv6=::1/6/true",
            "ipv6=2001:db8::1:0:0:1/6/false",
            "boolean=false/boolean",
            "string=[héllo wörld]/13",
        ]
        XCTAssertEqual(vars.count, expected.count)
        for (index, text) in expected.enumerated() {
            XCTAssertEqual(vars["txn.a\(index + 1)"]?.text, text, "argument \(index + 1)")
        }
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs)")
    }

    func testNamesPositionsAndNulls() throws {
        let harness = try Harness("""
            spoa.register_message("check", function(txn, msg)
              local a = msg.args
              local v, t = msg:get("ua")
              return {
                ["txn.ip"] = tostring(a.ip),
                ["txn.third"] = tostring(a[3]),
                ["txn.gone"] = tostring(a.gone),
                ["txn.gone_type"] = msg:type("gone"),
                ["txn.missing_type"] = tostring(msg:type("missing")),
                ["txn.out_of_range"] = tostring(msg:type(99)),
                ["txn.unnamed"] = tostring(a[""]),
                ["txn.pos2"] = a[2],
                ["txn.nargs"] = msg.nargs,
                ["txn.name"] = msg.name,
                ["txn.ua"] = v .. ":" .. t,
                ["txn.argname"] = msg:argname(1) .. "," .. msg:argname(2),
                ["txn.eq"] = a.ip == spoa.addr("1.2.3.4"),
                ["txn.neq"] = a.ip == a[3],
                ["txn.concat"] = "ip=" .. a.ip .. "!",
                ["txn.same_table"] = msg.args == a,
              }
            end)
            """)
        let vars = try harness.vars("check", [
            ("ip", .ipv4(IPv4Address(1, 2, 3, 4))),
            ("", .string("pos")),
            ("ip", .ipv4(IPv4Address(5, 6, 7, 8))),
            ("gone", .null),
            ("ua", .string("curl")),
        ])
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs)")
        XCTAssertEqual(vars["txn.ip"]?.text, "1.2.3.4", "first occurrence of a name wins")
        XCTAssertEqual(vars["txn.third"]?.text, "5.6.7.8")
        XCTAssertEqual(vars["txn.gone"]?.text, "nil")
        XCTAssertEqual(vars["txn.gone_type"]?.text, "null")
        XCTAssertEqual(vars["txn.missing_type"]?.text, "nil")
        XCTAssertEqual(vars["txn.out_of_range"]?.text, "nil")
        XCTAssertEqual(vars["txn.unnamed"]?.text, "nil")
        XCTAssertEqual(vars["txn.pos2"]?.text, "pos")
        XCTAssertEqual(vars["txn.nargs"], .int64(5))
        XCTAssertEqual(vars["txn.name"]?.text, "check")
        XCTAssertEqual(vars["txn.ua"]?.text, "curl:string")
        XCTAssertEqual(vars["txn.argname"]?.text, "ip,")
        XCTAssertEqual(vars["txn.eq"], .bool(true))
        XCTAssertEqual(vars["txn.neq"], .bool(false))
        XCTAssertEqual(vars["txn.concat"]?.text, "ip=1.2.3.4!")
        XCTAssertEqual(vars["txn.same_table"], .bool(true), "msg.args is built once per message")
    }

    func testTxnFieldsAndWorkerNumbers() throws {
        let harness = try Harness("""
            spoa.register_message("ids", function(txn, msg)
              return {
                ["txn.sid"] = txn.stream_id, ["txn.fid"] = txn.frame_id,
                ["txn.engine"] = tostring(txn.engine_id), ["txn.message"] = txn.message,
                ["txn.worker"] = spoa.worker, ["txn.workers"] = spoa.workers,
              }
            end)
            """, workerIndex: 3, workerCount: 4)
        var payload = try harness.ackPayload([("ids", [])], streamID: 300, frameID: 9, engineID: "engine-1")
        var vars: [String: SpopValue] = [:]
        for case .setVar(_, let name, let value) in try SpoaAction.decodeList(payload) { vars[name] = value }
        XCTAssertEqual(vars["sid"], .int64(300))
        XCTAssertEqual(vars["fid"], .int64(9))
        XCTAssertEqual(vars["engine"]?.text, "engine-1")
        XCTAssertEqual(vars["message"]?.text, "ids")
        XCTAssertEqual(vars["worker"], .int64(3))
        XCTAssertEqual(vars["workers"], .int64(4))

        payload = try harness.ackPayload([("ids", [])], engineID: nil)
        vars = [:]
        for case .setVar(_, let name, let value) in try SpoaAction.decodeList(payload) { vars[name] = value }
        XCTAssertEqual(vars["engine"]?.text, "nil")

        // Connections of several HAProxy threads take turns on one worker.
        for engineID in ["engine-a", "engine-b", "engine-a", "a-much-longer-engine-id-\(String(repeating: "x", count: 40))"] {
            payload = try harness.ackPayload([("ids", [])], engineID: engineID)
            vars = [:]
            for case .setVar(_, let name, let value) in try SpoaAction.decodeList(payload) { vars[name] = value }
            XCTAssertEqual(vars["engine"]?.text, engineID)
        }
    }

    func testHandlesAreDeadAfterTheirHandler() throws {
        let harness = try Harness("""
            local kept_msg, kept_txn
            spoa.register_message("keep", function(txn, msg) kept_msg, kept_txn = msg, txn end)
            spoa.register_message("use", function(txn, msg)
              local ok1, e1 = pcall(function() return kept_msg.name end)
              local ok2, e2 = pcall(function() kept_txn:set_var("txn.x", 1) end)
              txn:set_var("txn.e1", e1)
              txn:set_var("txn.e2", e2)
            end)
            """)
        let vars = try harness.vars("keep")
        XCTAssertTrue(vars.isEmpty)
        let later = try harness.vars("use")
        XCTAssertEqual(later.count, 2, "\(later)")
        XCTAssertTrue(later["txn.e1"]?.text?.contains("msg used outside its handler") ?? false, "\(later)")
        XCTAssertTrue(later["txn.e2"]?.text?.contains("txn used outside its handler") ?? false, "\(later)")
    }
}
