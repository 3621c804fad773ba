import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// Failing handlers: rollback of their own actions only, error texts, logs.
final class ErrorTests: XCTestCase {
    func testHandlerErrorRollsBackOnlyItsOwnMessage() throws {
        let harness = try Harness("""
            spoa.register_message("m1", function(txn) txn:set_var("txn.a", 1) end)
            spoa.register_message("m2", function(txn)
              txn:set_var("txn.b", 2)
              txn:unset_var("sess.b")
              error("boom")
            end)
            spoa.register_message("m3", function(txn) txn:set_var("txn.c", 3) end)
            """)
        let actions = try harness.actions([("m1", []), ("m2", []), ("m3", [])])
        XCTAssertEqual(actions, [.setVar(.transaction, "a", .int64(1)), .setVar(.transaction, "c", .int64(3))])
        XCTAssertEqual(harness.worker.handlerErrors, 1)
        let errors = harness.errorLogs
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors.first?.message.hasPrefix("m2: ") ?? false, "\(errors)")
        XCTAssertTrue(errors.first?.message.hasSuffix("script.lua:5: boom") ?? false, "\(errors)")
        XCTAssertEqual(errors.first?.metadata["lua.message"], "m2")
        XCTAssertEqual(errors.first?.metadata["lua.script"], "\(harness.scriptPath)")
        XCTAssertTrue("\(errors.first?.metadata["lua.traceback"] ?? "")".hasPrefix("stack traceback:"))

        // The state is still usable afterwards.
        XCTAssertEqual(try harness.actions([("m3", [])]), [.setVar(.transaction, "c", .int64(3))])
    }

    func testFailingFinalizersLogOneRateLimitedWarning() throws {
        let harness = try Harness("""
            local mt = { __gc = function() error("finalizer broke") end }
            spoa.register_message("m", function()
              for i = 1, 1000 do setmetatable({}, mt) end
              collectgarbage()
            end)
            """)
        _ = try harness.actions([("m", [])])
        _ = try harness.actions([("m", [])])
        let warnings = harness.logs.entries.filter { $0.message.contains("finalizer broke") }
        XCTAssertEqual(warnings.count, 1, "\(warnings.prefix(3))")
        XCTAssertEqual(warnings.first?.level, .warning)
        XCTAssertTrue(warnings.first?.message.hasPrefix("__gc finalizer abandoned: ") ?? false, "\(warnings)")
    }

    func testLogLinesFromLuaAreCappedAndKeepTheirBytes() throws {
        let harness = try Harness("""
            spoa.register_message("big", function() spoa.log(spoa.info, string.rep("x", 100000)) end)
            spoa.register_message("level", function() spoa.log(1e18, "x") end)
            spoa.register_message("nul", function() error("before\\0after") end)
            """)
        _ = try harness.actions([("big", []), ("level", []), ("nul", [])])
        let big = try XCTUnwrap(harness.logs.entries.first { $0.level == .info }).message
        XCTAssertEqual(big, String(repeating: "x", count: 4096) + "... (95904 bytes truncated)")
        let errors = harness.errorLogs.map(\.message)
        XCTAssertEqual(errors.count, 2, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasSuffix("invalid level 1000000000000000000 (expected 0..7)") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.hasSuffix("script.lua:3: before\\0after") }, "\(errors)")
    }

    func testBadReturnTableRollsBackTheImperativeActionsToo() throws {
        let harness = try Harness("""
            spoa.register_message("float", function(txn)
              txn:set_var("txn.kept_not", 1)
              return { ["txn.ok"] = 1, ["txn.x"] = 2.5 }
            end)
            spoa.register_message("key", function(txn) return { "positional" } end)
            spoa.register_message("kind", function(txn) return "str" end)
            spoa.register_message("name", function(txn) return { ["txn.bad-name"] = 1 } end)
            spoa.register_message("fine", function(txn) return { ["txn.fine"] = 1 } end)
            """)
        let actions = try harness.actions([("float", [("x", .int64(1))]), ("key", []), ("kind", []), ("name", []), ("fine", [])])
        XCTAssertEqual(actions, [.setVar(.transaction, "fine", .int64(1))])
        let messages = harness.errorLogs.map(\.message)
        XCTAssertEqual(messages.count, 4, "\(messages)")
        guard messages.count == 4 else { return }
        XCTAssertTrue(messages[0].contains("script.lua:1: action table returned by handler of 'float': [\"txn.x\"]: HAProxy variables have no float type; use // or math.floor"), messages[0])
        XCTAssertTrue(messages[1].contains("script.lua:5: handler of 'key': action table keys must be \"scope.name\" strings, got number"), messages[1])
        XCTAssertTrue(messages[2].contains("script.lua:6: handler of 'kind': must return nil or an action table, got string"), messages[2])
        XCTAssertTrue(messages[3].contains("invalid variable \"txn.bad-name\": character '-' not allowed"), messages[3])
    }

    func testInvalidVariablesAndValuesGiveTheDocumentedErrors() throws {
        let harness = try Harness("""
            local function try(i, f, ...)
              local ok, err = pcall(f, ...)
              return ok and "no error" or err
            end
            spoa.register_message("bad", function(txn)
              local r = {
                try(1, txn.set_var, txn, "score", 1),
                try(2, txn.set_var, txn, "foo.x", 1),
                try(3, txn.set_var, txn, "txn.", 1),
                try(4, txn.set_var, txn, "txn.a-b", 1),
                try(5, txn.set_var, txn, "txn.f", 2.5),
                try(6, txn.set_var, txn, "txn.n", nil),
                try(7, txn.set_var, txn, "txn.t", {}),
                try(8, txn.set_var, txn, "txn.fn", print),
                try(9, txn.unset_var, txn, "bad"),
                try(10, txn.set_var, txn, "txn.f", 0 / 0),
                try(11, txn.set_var, txn, "TXN.x", 1),
                try(12, txn.set_var, txn, "txn.é", 1),
              }
              for i, e in ipairs(r) do txn:set_var(string.format("txn.e%02d", i), e) end
            end)
            """)
        let vars = try harness.vars("bad")
        let expected = [
            "invalid variable \"score\": expected \"<scope>.<name>\" with scope proc, sess, txn, req or res",
            "invalid variable \"foo.x\": unknown scope \"foo\" (expected proc, sess, txn, req or res)",
            "invalid variable \"txn.\": empty name",
            "invalid variable \"txn.a-b\": character '-' not allowed (use A-Z a-z 0-9 . _)",
            "txn:set_var(\"txn.f\"): HAProxy variables have no float type; use // or math.floor",
            "txn:set_var(\"txn.n\"): nil cannot be sent; use txn:unset_var() or spoa.null",
            "use txn:unset_var() or spoa.null",
            "use txn:unset_var() or spoa.null",
            "invalid variable \"bad\": expected \"<scope>.<name>\"",
            "HAProxy variables have no float type",
            "unknown scope \"TXN\"",
            "not allowed",
        ]
        for (index, text) in expected.enumerated() {
            let key = String(format: "txn.e%02d", index + 1)
            let got = vars[key]?.text ?? "(missing)"
            XCTAssertTrue(got.contains(text), "\(key): \(got)")
        }
        XCTAssertEqual(vars.count, expected.count, "nothing else was queued")
    }

    func testAckFullFailsOnlyTheMessageThatOverflowed() throws {
        let harness = try Harness("""
            spoa.register_message("small", function(txn) txn:set_var("txn.a", 1) end)
            spoa.register_message("big", function(txn)
              txn:set_var("txn.b", 2)
              txn:set_var("txn.big", string.rep("x", 100))
            end)
            spoa.register_message("probe", function(txn)
              local ok, err = pcall(txn.set_var, txn, "txn.big", string.rep("x", 100))
              if not ok then spoa.Warning(err) end
            end)
            """)
        // Header 7 bytes + "txn.a"=1 (7 bytes) + "txn.b"=2 (7 bytes) = 21: the big one cannot fit.
        let actions = try harness.actions([("small", []), ("big", []), ("probe", [])], maxFrameSize: 24)
        XCTAssertEqual(actions, [.setVar(.transaction, "a", .int64(1))])
        XCTAssertEqual(harness.errorLogs.count, 1)
        XCTAssertTrue(harness.errorLogs.first?.message.contains("big: ") ?? false)
        XCTAssertTrue(harness.errorLogs.first?.message.contains("script.lua:4: ACK full (max-frame-size 24)") ?? false,
                      "\(harness.errorLogs)")
        let warnings = harness.logs.entries.filter { $0.level == .warning }.map(\.message)
        XCTAssertEqual(warnings, ["ACK full (max-frame-size 24)"])
    }

    func testRuntimeErrorsCarryFileAndLine() throws {
        let harness = try Harness("""
            spoa.register_message("nilidx", function(txn, msg)
              local t = nil
              return t.field
            end)
            spoa.register_message("errtable", function(txn) error({ code = 1 }) end)
            spoa.register_message("deep", function(txn)
              local function inner() error("deep failure", 2) end
              local function outer() inner() end
              outer()
            end)
            """)
        _ = try harness.actions([("nilidx", []), ("errtable", []), ("deep", [])])
        let messages = harness.errorLogs.map(\.message)
        XCTAssertEqual(messages.count, 3)
        guard messages.count == 3 else { return }
        XCTAssertTrue(messages[0].contains("script.lua:3: attempt to index a nil value (local 't')"), messages[0])
        XCTAssertTrue(messages[1].contains("(error object is a table value)"), messages[1])
        XCTAssertTrue(messages[2].contains("script.lua:8: deep failure"), messages[2])
        let traceback = "\(harness.errorLogs[2].metadata["lua.traceback"] ?? "")"
        XCTAssertTrue(traceback.contains("in local 'outer'") || traceback.contains("in upvalue 'outer'") || traceback.contains("outer"), traceback)
    }

    func testRegisterOutsideLoadingIsAnError() throws {
        let harness = try Harness("""
            spoa.register_message("late", function(txn)
              spoa.register_message("other", function() end)
            end)
            """)
        _ = try harness.actions([("late", [])])
        XCTAssertTrue(harness.errorLogs.first?.message.contains("spoa.register_message is only available while the script loads") ?? false,
                      "\(harness.errorLogs)")
    }
}

final class MemoryLimitTests: XCTestCase {
    func testOutOfMemoryFailsTheHandlerNotTheAgent() throws {
        let logs = LogCapture()
        let path = try writeScript("""
            spoa.register_message("hog", function(txn)
              txn:set_var("txn.before", 1)
              local t = {}
              for i = 1, 1e7 do t[i] = string.rep("x", 64) .. i end
            end)
            spoa.register_message("ok", function(txn) txn:set_var("txn.ok", #string.rep("y", 1000)) end)
            """)
        var configuration = LuaConfiguration(scriptPath: path, workerCount: 1)
        configuration.memoryLimit = 4 << 20
        configuration.timeoutMilliseconds = 0  // the memory cap, not the time budget, must stop "hog"
        let worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: logs.logger)
        for _ in 0..<2 {  // the state stays usable after a memory error
            let actions = try SpoaAction.decodeList(handleNotify(worker, [("hog", []), ("ok", [])]))
            XCTAssertEqual(actions, [.setVar(.transaction, "ok", .int64(1000))])
        }
        XCTAssertEqual(worker.handlerErrors, 2)
        XCTAssertTrue(logs.entries.filter { $0.level == .error }.allSatisfy { $0.message == "hog: not enough memory" },
                      "\(logs.entries.map(\.message))")
        XCTAssertLessThanOrEqual(worker.luaMemory, 4 << 20)
    }
}
