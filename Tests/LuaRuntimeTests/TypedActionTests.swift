import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// txn:set_var_<type>, txn:get_var (reads the ACK being built, rollback included)
/// and variable-name validation, with and without --var-prefix.
final class TypedActionTests: XCTestCase {
    func testTypedShortcutsEncodeTheirTypes() throws {
        let harness = try Harness("""
            spoa.register_message("t", function(txn, msg)
              txn:set_var_null("txn.a")
              txn:set_var_boolean("txn.b", true)
              txn:set_var_int32("txn.c", -5)
              txn:set_var_uint32("txn.d", 4294967295)
              txn:set_var_int64("txn.e", -2)
              txn:set_var_uint64("txn.f", "18446744073709551615")
              txn:set_var_ipv4("txn.g", "192.0.2.1")
              txn:set_var_ipv6("txn.h", spoa.addr("2001:db8::1"))
              txn:set_var_str("txn.i", 42)
              txn:set_var_bin("txn.j", "\\0\\1")
            end)
            """)
        XCTAssertEqual(try harness.actions([("t", [])]), [
            .setVar(.transaction, "a", .null), .setVar(.transaction, "b", .bool(true)),
            .setVar(.transaction, "c", .int32(-5)), .setVar(.transaction, "d", .uint32(UInt32.max)),
            .setVar(.transaction, "e", .int64(-2)), .setVar(.transaction, "f", .uint64(UInt64.max)),
            .setVar(.transaction, "g", .ipv4(IPv4Address(192, 0, 2, 1))),
            .setVar(.transaction, "h", .ipv6(IPv6Address("2001:db8::1")!)),
            .setVar(.transaction, "i", .string("42")), .setVar(.transaction, "j", .binary([0, 1])),
        ])
    }

    func testTypedShortcutErrors() throws {
        let harness = try Harness("""
            local calls = {
              function(t) t:set_var_int32("txn.x", 1 << 31) end,
              function(t) t:set_var_uint32("txn.x", -1) end,
              function(t) t:set_var_ipv4("txn.x", "::1") end,
              function(t) t:set_var_int64("txn.x", "12") end,
              function(t) t:set_var_boolean("txn.x", 1) end,
              function(t) t:set_var_str("txn.x") end,
            }
            spoa.register_message("t", function(txn, msg)
              local out = {}
              for i, f in ipairs(calls) do
                local ok, err = pcall(f, txn)
                out["txn.e" .. i] = ok and "no error" or err
              end
              return out
            end)
            """)
        let vars = try harness.vars("t")
        let expected = [
            "int32 out of range: 2147483648", "uint32 out of range: -1",
            "txn:set_var_ipv4: not an IPv4 address (got IPv6)", "txn:set_var_int64: integer expected, got string",
            "boolean expected", "string expected",
        ]
        for (index, message) in expected.enumerated() {
            let text = vars["txn.e\(index + 1)"]?.text ?? "nil"
            XCTAssertTrue(text.contains(message), "e\(index + 1): \(text)")
        }
    }

    func testGetVarSeesQueuedActionsAndRollbacks() throws {
        let harness = try Harness("""
            spoa.register_message("first", function(txn, msg)
              local before = table.pack(txn:get_var("txn.score"))
              txn:set_var("txn.score", spoa.uint32(10))
              txn:set_var("txn.score", spoa.uint32(20))
              txn:set_var("sess.score", "other scope")
              local v, t = txn:get_var("txn.score")
              txn:set_var("txn.seen", ("%d:%s:%d"):format(v, t, before.n))
              txn:set_var_str("txn.name", "bob")
              txn:set_var("txn.name_seen", (txn:get_var("txn.name")))
            end)
            spoa.register_message("failing", function(txn, msg)
              txn:set_var("txn.score", 99)
              txn:unset_var("txn.name")
              error("boom")
            end)
            spoa.register_message("last", function(txn, msg)
              local v, t = txn:get_var("txn.score")
              txn:unset_var("txn.name")
              local nv, nt = txn:get_var("txn.name")
              txn:set_var("txn.after", ("%s:%s|%s:%s"):format(tostring(v), t, tostring(nv), nt))
            end)
            """)
        let actions = try harness.actions([("first", []), ("failing", []), ("last", [])])
        var vars: [String: SpopValue] = [:]
        for case .setVar(let scope, let name, let value) in actions { vars["\(scope.name).\(name)"] = value }
        XCTAssertEqual(vars["txn.seen"]?.text, "20:uint32:1")
        XCTAssertEqual(vars["txn.name_seen"]?.text, "bob")
        XCTAssertEqual(vars["txn.after"]?.text, "20:uint32|nil:unset", "the failed handler's 99 was rolled back")
        XCTAssertEqual(harness.worker.handlerErrors, 1)
    }

    func testVariableNamesAreCheckedAtTheCall() throws {
        let harness = try Harness("""
            local names = { "txn", "bogus.x", "txn.", "txn.a-b", "txn.ok.name_1", "sess." .. string.rep("n", 80) }
            spoa.register_message("t", function(txn, msg)
              local out = {}
              for i, n in ipairs(names) do
                local ok, err = pcall(txn.set_var, txn, n, 1)
                out["txn.e" .. i] = ok and "ok" or err
              end
              return out
            end)
            """)
        let vars = try harness.vars("t")
        XCTAssertTrue(vars["txn.e1"]?.text?.contains("expected \"<scope>.<name>\"") ?? false)
        XCTAssertTrue(vars["txn.e2"]?.text?.contains("unknown scope \"bogus\"") ?? false)
        XCTAssertTrue(vars["txn.e3"]?.text?.contains("empty name") ?? false)
        XCTAssertTrue(vars["txn.e4"]?.text?.contains("character '-' not allowed") ?? false)
        XCTAssertEqual(vars["txn.e5"]?.text, "ok")
        XCTAssertEqual(vars["txn.e6"]?.text, "ok", "without --var-prefix there is no length limit")
    }

    func testVarPrefixLimitsLengthAndWarnsOnDoubledPrefix() throws {
        let harness = try Harness("""
            spoa.register_message("t", function(txn, msg)
              local fits = string.rep("n", 63 - #"sess" - #"iprep" - 2)
              txn:set_var("sess." .. fits, 1)
              local ok, err = pcall(txn.set_var, txn, "sess." .. fits .. "x", 1)
              local ok2, err2 = pcall(txn.set_var_int32, txn, "txn." .. fits .. "x", 1)
              txn:set_var("txn.iprep.score", 1)
              txn:set_var("txn.iprep.score", 2)
              txn:set_var("txn.iprep_score", 3)
              return { ["txn.err"] = err, ["txn.err2"] = tostring(ok2), ["txn.bad.ret" .. string.rep("x", 60)] = nil }
            end)
            spoa.register_message("ret", function(txn, msg)
              return { ["sess." .. string.rep("y", 60)] = 1 }
            end)
            """, varPrefix: "iprep")
        let vars = try harness.vars("t")
        XCTAssertNotNil(vars["sess.\(String(repeating: "n", count: 52))"])
        XCTAssertEqual(vars["txn.err"]?.text.map { $0.contains("is 64 bytes long, HAProxy allows 63") }, true, "\(vars)")
        XCTAssertEqual(vars["txn.err2"]?.text, "true", "txn is one byte shorter than sess: it fits")
        let warnings = harness.logs.entries.filter { $0.level == .warning }.map(\.message)
        XCTAssertEqual(warnings.count, 1, "warned once per name: \(warnings)")
        XCTAssertTrue(warnings.first?.contains("\"iprep.score\" starts with the var-prefix \"iprep\"") ?? false, "\(warnings)")
        XCTAssertTrue(try harness.actions([("ret", [])]).isEmpty)
        XCTAssertTrue(harness.errorLogs.last?.message.contains("HAProxy allows 63") ?? false, "\(harness.errorLogs.map(\.message))")
    }
}
