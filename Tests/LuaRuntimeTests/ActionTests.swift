import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// What a handler sends back: wrappers, inference, scopes, return tables, wire bytes.
final class ActionTests: XCTestCase {
    /// SET-VAR txn.<name> = <value bytes>, as hex.
    private func setVarHex(_ name: String, _ valueHex: String) -> String {
        let nameHex = name.utf8.map { String(format: "%02x", $0) }.joined(separator: " ")
        return "01 03 02 \(String(format: "%02x", name.utf8.count)) \(nameHex) \(valueHex)"
    }

    private func valueHex(_ value: SpopValue) -> String {
        var buffer = ByteBuffer()
        buffer.writeSpopValue(value)
        return hex(buffer)
    }

    func testWrappersAndInferenceProduceExactWireBytes() throws {
        // (Lua expression, expected typed-value bytes)
        let cases: [(String, String)] = [
            ("spoa.int32(-1)", "02 ff f0 fe fe fe fe fe fe fe 0e"),
            ("spoa.int32(75)", "02 4b"),
            ("spoa.int32(2147483647)", valueHex(.int32(Int32.max))),
            ("spoa.int32(-2147483648)", valueHex(.int32(Int32.min))),
            ("spoa.int32(3.0)", "02 03"),
            ("spoa.uint32(4294967295)", "03 ff f0 fe fe 7e"),
            ("spoa.uint32(0)", "03 00"),
            ("spoa.int64(-2)", "04 fe f0 fe fe fe fe fe fe fe 0e"),
            ("spoa.int64(math.maxinteger)", valueHex(.int64(Int64.max))),
            ("spoa.uint64(-1)", "05 ff f0 fe fe fe fe fe fe fe 0e"),
            ("spoa.uint64('18446744073709551615')", "05 ff f0 fe fe fe fe fe fe fe 0e"),
            ("spoa.uint64(300)", "05 fc 03"),
            ("spoa.boolean(true)", "11"),
            ("spoa.boolean(false)", "01"),
            ("spoa.string('hi')", "08 02 68 69"),
            ("spoa.string('')", "08 00"),
            ("spoa.string(42)", "08 02 34 32"),
            ("spoa.binary('\\0\\1')", "09 02 00 01"),
            ("spoa.ipv4('192.0.2.10')", "06 c0 00 02 0a"),
            ("spoa.ipv4(spoa.addr('10.0.0.1'))", "06 0a 00 00 01"),
            ("spoa.ipv6('2001:db8::1')", "07 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01"),
            ("spoa.null", "00"),
            // inference
            ("42", "04 2a"),
            ("3.0", "04 03"),
            ("-1", "04 ff f0 fe fe fe fe fe fe fe 0e"),
            ("true", "11"),
            ("false", "01"),
            ("'x'", "08 01 78"),
            ("'a\\0b'", "08 03 61 00 62"),
            ("spoa.addr('127.0.0.1')", "06 7f 00 00 01"),
            ("spoa.addr('::1')", "07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01"),
            ("msg.args[1]", "07 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02"),
            // An incoming BINARY reads as a Lua string: inference sends STRING,
            // spoa.binary keeps the type.
            ("msg.args[2]", "08 03 00 ff 00"),
            ("spoa.binary(msg.args[2])", "09 03 00 ff 00"),
        ]
        var lines = ["spoa.register_message(\"wire\", function(txn, msg)"]
        for (index, (expression, _)) in cases.enumerated() {
            lines.append("  txn:set_var(\"txn.v\(String(format: "%02d", index))\", \(expression))")
        }
        lines.append("end)")
        let harness = try Harness(lines.joined(separator: "\n"))
        let payload = try harness.ackPayload([("wire", [
            ("", .ipv6(IPv6Address("2001:db8::2")!)), ("", .binary([0x00, 0xFF, 0x00])),
        ])])
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs)")
        let expected = cases.enumerated().map { index, item in
            setVarHex("v\(String(format: "%02d", index))", item.1)
        }.joined(separator: " ")
        XCTAssertEqual(hex(payload), expected)
        // Spot-check one action on its own: INT32 -1, sign-extended (docs/spop-protocol.md §3.3).
        XCTAssertTrue(hex(payload).hasPrefix("01 03 02 03 76 30 30 02 ff f0 fe fe fe fe fe fe fe 0e"))
    }

    func testSetAndUnsetInAllFiveScopes() throws {
        let harness = try Harness("""
            spoa.register_message("scopes", function(txn, msg)
              for _, scope in ipairs({ "proc", "sess", "txn", "req", "res" }) do
                txn:set_var(scope .. ".v", scope)
                txn:unset_var(scope .. ".old")
              end
              txn:set_var("txn.gone", spoa.unset)
            end)
            """)
        let actions = try harness.actions([("scopes", [])])
        let scopes: [VarScope] = [.process, .session, .transaction, .request, .response]
        var expected: [SpoaAction] = []
        for scope in scopes {
            expected.append(.setVar(scope, "v", .string(scope.name)))
            expected.append(.unsetVar(scope, "old"))
        }
        expected.append(.unsetVar(.transaction, "gone"))
        XCTAssertEqual(actions, expected)
        // Scope codes on the wire: proc 0 .. res 4.
        let payload = try harness.ackPayload([("scopes", [])])
        XCTAssertTrue(hex(payload).hasPrefix("01 03 00 01 76 08 04 70 72 6f 63 02 02 00 03 6f 6c 64"), hex(payload))
    }

    func testReturnTableComesAfterImperativeCallsInSortedKeyOrder() throws {
        let harness = try Harness("""
            spoa.register_message("decl", function(txn, msg)
              txn:set_var("txn.zz_first", 1)
              return {
                ["txn.old"] = spoa.unset,
                ["txn.b"] = spoa.uint32(7),
                ["sess.a"] = "x",
                ["proc.z"] = true,
                ["req.a.b_c"] = spoa.null,
                ["res.addr"] = msg.args.ip,
              }
            end)
            spoa.register_message("none", function(txn, msg) return nil end)
            spoa.register_message("empty", function(txn, msg) return {} end)
            """)
        let actions = try harness.actions([
            ("decl", [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))]), ("none", []), ("empty", []),
        ])
        XCTAssertEqual(actions, [
            .setVar(.transaction, "zz_first", .int64(1)),
            .setVar(.process, "z", .bool(true)),
            .setVar(.request, "a.b_c", .null),
            .setVar(.response, "addr", .ipv4(IPv4Address(192, 0, 2, 10))),
            .setVar(.session, "a", .string("x")),
            .setVar(.transaction, "b", .uint32(7)),
            .unsetVar(.transaction, "old"),
        ])
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs)")
    }

    func testSeveralMessagesShareOneAckInOrder() throws {
        let harness = try Harness("""
            spoa.register_message({ "first", "second" }, function(txn, msg)
              txn:set_var("txn." .. msg.name, msg.args[1])
            end)
            """)
        let actions = try harness.actions([
            ("first", [("", .int64(1))]), ("unknown", [("", .int64(2))]), ("second", [("", .int64(3))]),
        ])
        XCTAssertEqual(actions, [.setVar(.transaction, "first", .int64(1)), .setVar(.transaction, "second", .int64(3))])
        XCTAssertEqual(harness.worker.unhandledMessages, 1)
    }

    func testUnknownMessageGivesAnEmptyAck() throws {
        let harness = try Harness("spoa.register_message('known', function(txn) txn:set_var('txn.x', 1) end)")
        let payload = try harness.ackPayload([("other", [("ip", .ipv4(IPv4Address(1, 2, 3, 4)))])])
        XCTAssertEqual(payload.readableBytes, 0)
        XCTAssertEqual(harness.worker.unhandledMessages, 1)
        XCTAssertEqual(harness.worker.handlerErrors, 0)
        XCTAssertTrue(harness.errorLogs.isEmpty)
    }

    func testWrapperRangeChecks() throws {
        let harness = try Harness("""
            local cases = {
              { spoa.int32, 1 << 31 }, { spoa.int32, -(1 << 31) - 1 }, { spoa.uint32, -1 },
              { spoa.uint32, 1 << 32 }, { spoa.uint64, "18446744073709551616" }, { spoa.uint64, "-1" },
              { spoa.int32, 2.5 }, { spoa.int64, "12" }, { spoa.ipv4, "2001:db8::1" }, { spoa.ipv6, "1.2.3.4" },
              { spoa.ipv4, "bogus" }, { spoa.boolean, 1 }, { spoa.ipv6, spoa.addr("10.0.0.1") },
            }
            spoa.register_message("ranges", function(txn, msg)
              for i, c in ipairs(cases) do
                local ok, err = pcall(c[1], c[2])
                txn:set_var(string.format("txn.e%02d", i), ok and "no error" or err)
              end
            end)
            """)
        let vars = try harness.vars("ranges")
        let expected = [
            "int32 out of range: 2147483648",
            "int32 out of range: -2147483649",
            "uint32 out of range: -1",
            "uint32 out of range: 4294967296",
            "uint64 out of range: 18446744073709551616",
            "uint64 out of range: -1",
            "spoa.int32: number has no integer representation: 2.5",
            "spoa.int64: integer expected, got string",
            "spoa.ipv4: not an IPv4 address (got IPv6)",
            "spoa.ipv6: not an IPv6 address (got IPv4)",
            "spoa.ipv4: invalid IP address: bogus",
        ]
        for (index, message) in expected.enumerated() {
            XCTAssertEqual(vars[String(format: "txn.e%02d", index + 1)]?.text, message)
        }
        XCTAssertTrue(vars["txn.e12"]?.text?.contains("boolean expected") ?? false, "\(String(describing: vars["txn.e12"]))")
        XCTAssertEqual(vars["txn.e13"]?.text, "spoa.ipv6: not an IPv6 address (got IPv4)")
    }

    func testTypeofReportsTheInferredType() throws {
        let harness = try Harness("""
            spoa.register_message("t", function(txn, msg)
              local _, why = spoa.typeof(2.5)
              return {
                ["txn.int"] = spoa.typeof(1), ["txn.float"] = why, ["txn.wrapper"] = spoa.typeof(spoa.uint32(1)),
                ["txn.addr"] = spoa.typeof(spoa.addr("::1")), ["txn.str"] = tostring(spoa.int32(-3)),
              }
            end)
            """)
        let vars = try harness.vars("t")
        XCTAssertEqual(vars["txn.int"]?.text, "int64")
        XCTAssertEqual(vars["txn.float"]?.text, "HAProxy variables have no float type; use // or math.floor")
        XCTAssertEqual(vars["txn.wrapper"]?.text, "uint32")
        XCTAssertEqual(vars["txn.addr"]?.text, "ipv6")
        XCTAssertEqual(vars["txn.str"]?.text, "spoa.int32(-3)")
    }

    func testCoroutinesInsideAHandlerCanQueueActions() throws {
        let harness = try Harness("""
            spoa.register_message("co", function(txn, msg)
              local co = coroutine.wrap(function(a) txn:set_var("txn.co", coroutine.yield(a) + 1) end)
              co(1)
              co(41)
            end)
            """)
        XCTAssertEqual(try harness.vars("co"), ["txn.co": .int64(42)])
    }
}
