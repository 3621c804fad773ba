import Foundation
import Logging
@testable import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// A worker built from a LuaConfiguration, for the limit and failure options.
func makeWorker(_ source: String, logs: LogCapture, configure: (inout LuaConfiguration) -> Void = { _ in }) throws -> LuaWorker {
    var configuration = LuaConfiguration(scriptPath: try writeScript(source), workerCount: 1)
    configure(&configuration)
    return try LuaWorker(configuration: configuration, workerIndex: 1, logger: logs.logger)
}

func setVars(_ worker: LuaWorker, _ name: String, _ arguments: [(name: String, value: SpopValue)] = []) throws -> [String: SpopValue] {
    var result: [String: SpopValue] = [:]
    for action in try SpoaAction.decodeList(handleNotify(worker, [(name, arguments)])) {
        if case .setVar(let scope, let name, let value) = action { result["\(scope.name).\(name)"] = value }
    }
    return result
}

/// Time budget, memory cap, sandbox switch, on_error and --lua-error-var.
final class SafetyTests: XCTestCase {
    let logs = LogCapture()
    var errors: [LogCapture.Entry] { logs.entries.filter { $0.level == .error } }

    static let runaway = """
        spoa.register_message("spin", function(txn)
          txn:set_var("txn.before", 1)
          while true do end
        end, { on_error = { ["txn.failed"] = spoa.int32(7), ["txn.reason"] = "spin" } })
        spoa.register_message("fine", function(txn) txn:set_var("txn.ok", true) end)
        """

    func testRunawayLoopIsStoppedRolledBackAndOnErrorSent() throws {
        let worker = try makeWorker(Self.runaway, logs: logs) { $0.timeoutMilliseconds = 30 }
        let vars = try setVars(worker, "spin")
        XCTAssertEqual(vars, ["txn.failed": .int32(7), "txn.reason": .string("spin")], "rolled back, then on_error")
        XCTAssertEqual(worker.handlerTimeouts, 1)
        XCTAssertTrue(errors.first?.message.contains("script.lua:3: execution timeout (30 ms)") ?? false, "\(errors)")
        XCTAssertEqual(try setVars(worker, "fine"), ["txn.ok": .bool(true)], "the state keeps serving")
    }

    func testPcallCannotSwallowTheTimeout() throws {
        let worker = try makeWorker("""
            spoa.register_message("stubborn", function(txn)
              while true do pcall(function() while true do end end) end
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        XCTAssertEqual(try setVars(worker, "stubborn"), [:])
        XCTAssertEqual(worker.handlerTimeouts, 1)
    }

    func testRunawayCoroutineIsStopped() throws {
        let worker = try makeWorker("""
            spoa.register_message("co", function(txn)
              local co = coroutine.wrap(function() while true do end end)
              co()
            end)
            spoa.register_message("resume", function(txn)
              local ok, err = coroutine.resume(coroutine.create(function() while true do end end))
              while true do end
            end)
            spoa.register_message("yields", function(txn)
              local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
              return { ["txn.sum"] = gen() + gen() + gen() }
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        XCTAssertEqual(try setVars(worker, "co"), [:])
        XCTAssertEqual(try setVars(worker, "resume"), [:])
        XCTAssertEqual(worker.handlerTimeouts, 2)
        XCTAssertEqual(try setVars(worker, "yields"), ["txn.sum": .int64(6)], "coroutines still work")
    }

    /// Lua runs an xpcall message handler from inside the error the hook raises,
    /// with hooks off: a looping or catching handler must still be cut.
    func testXpcallMessageHandlerCannotOutliveTheBudget() throws {
        let worker = try makeWorker("""
            spoa.register_message("loops", function(txn)
              xpcall(function() while true do end end, function(e) while true do end end)
            end, { on_error = { ["txn.failed"] = true } })
            spoa.register_message("catches", function(txn)
              while true do
                xpcall(function() while true do end end, function(e) return pcall(function() while true do end end) end)
              end
            end)
            spoa.register_message("fine", function(txn)
              local ok, e = xpcall(error, function(m) return "handled: " .. m end, "boom", 0)
              local co = coroutine.wrap(function(a)
                return xpcall(function(b) return b + coroutine.yield(a) end, print, a + 1)
              end)
              co(1)
              local yielded_ok, sum = co(40)
              return { ["txn.e"] = e, ["txn.ok"] = ok, ["txn.sum"] = sum, ["txn.yielded"] = yielded_ok }
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        let vars = try finishes(within: 5) { try setVars(worker, "loops") }
        XCTAssertEqual(vars, ["txn.failed": .bool(true)])
        XCTAssertEqual(try finishes(within: 5) { try setVars(worker, "catches") }, [:])
        XCTAssertEqual(worker.handlerTimeouts, 2)
        XCTAssertTrue(errors.allSatisfy { $0.message.contains("execution timeout (20 ms)") }, "\(errors)")
        XCTAssertEqual(try setVars(worker, "fine"),
                       ["txn.e": .string("handled: boom"), "txn.ok": .bool(false), "txn.sum": .int64(42), "txn.yielded": .bool(true)])
    }

    /// The call budget is per message: a frame of handlers that all time out would
    /// be answered after all their budgets. Messages that would start after the
    /// frame's budget (4 x the call budget by default) are not run and get their
    /// on_error actions; the next frame starts afresh.
    func testFrameBudgetStopsRunningTheFramesMessages() throws {
        let worker = try makeWorker("""
            local started = 0
            spoa.register_message("spin", function(txn)
              started = started + 1
              while true do end
            end, { on_error = { ["txn.failed"] = true } })
            spoa.register_message("inc", function(txn) started = started + 1 end)
            spoa.register_message("count", function(txn)
              local n = started
              started = 0
              return { ["txn.started"] = n }
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        let spins = [TestMessage](repeating: (name: "spin", arguments: []), count: 100)
        let actions = try finishes(within: 60) { try SpoaAction.decodeList(handleNotify(worker, spins)) }
        XCTAssertEqual(actions?.count, 100, "every message has its on_error action")
        let started = try XCTUnwrap(try setVars(worker, "count")["txn.started"])
        guard case .int64(let count) = started else { return XCTFail("\(started)") }
        XCTAssertTrue((1...20).contains(count), "\(count) of 100 handlers ran in an 80 ms frame budget")
        XCTAssertEqual(worker.handlerTimeouts, 100)
        XCTAssertTrue(worker.lastError?.contains(
            "script.lua:2: handler of 'spin': not run: the frame used its time budget (80 ms, --lua-frame-timeout)") ?? false,
            "\(String(describing: worker.lastError))")

        let incs = [TestMessage](repeating: (name: "inc", arguments: []), count: 100)
        _ = try handleNotify(worker, incs)
        XCTAssertEqual(try setVars(worker, "count"), ["txn.started": .int64(100)], "short handlers all run")
    }

    /// Lua runs __gc finalizers with hooks off: a looping one must still be cut
    /// in a handler (and logged), while finalizers keep Lua's semantics.
    func testLoopingFinalizerIsCutInAHandler() throws {
        let worker = try makeWorker("""
            spoa.register_message("gc", function(txn)
              setmetatable({}, { __gc = function() while true do end end })
              collectgarbage()
              txn:set_var("txn.after", true)
            end, { on_error = { ["txn.failed"] = true } })
            spoa.register_message("finalizes", function(txn)
              local ran, mt = {}, {}
              setmetatable({}, mt)
              mt.__gc = function() ran[#ran + 1] = "never marked" end
              local later = setmetatable({}, { __gc = true })
              getmetatable(later).__gc = function(o) ran[#ran + 1] = tostring(o == later) end
              local count, resurrect = 0, {}
              resurrect.__gc = function(o) count = count + 1; if count == 1 then KEEP = o end end
              setmetatable({}, resurrect)
              collectgarbage(); collectgarbage()
              setmetatable(KEEP, resurrect)
              KEEP = nil
              collectgarbage(); collectgarbage()
              ran[#ran + 1] = "resurrected " .. count
              local protected = setmetatable({}, { __metatable = "no" })
              local ok, err = pcall(setmetatable, protected, {})
              later = nil
              collectgarbage()
              return { ["txn.ran"] = table.concat(ran, ","), ["txn.protected"] = err }
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        XCTAssertEqual(try finishes(within: 10) { try setVars(worker, "finalizes") },
                       ["txn.ran": .string("resurrected 2,false"), "txn.protected": .string("cannot change a protected metatable")],
                       "as in Lua: marked when set with __gc, the field read when finalizing")
        XCTAssertEqual(try finishes(within: 10) { try setVars(worker, "gc") }, ["txn.failed": .bool(true)])
        XCTAssertEqual(worker.handlerTimeouts, 1)
        let warnings = logs.entries.filter { $0.level == .warning }.map(\.message)
        XCTAssertTrue(warnings.contains { $0.contains("__gc finalizer abandoned: ") && $0.contains("script.lua:2: execution timeout (20 ms)") },
                      "\(warnings)")
    }

    /// lua_close runs every pending finalizer: closing an old state on reload must
    /// not loop forever in one.
    func testLoopingFinalizerIsCutWhenTheStateCloses() throws {
        var configuration = LuaConfiguration(scriptPath: try writeScript("""
            KEPT = setmetatable({}, { __gc = function() while true do end end })
            ALSO = setmetatable({}, { __gc = function() while true do end end })
            """), workerCount: 1)
        configuration.timeoutMilliseconds = 20
        let worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: logs.logger)
        XCTAssertNotNil(try finishes(within: 10) {
            worker.install(try LuaWorker.prepare(configuration, workerIndex: 1, generation: 1, logger: self.logs.logger))
        }, "the old state closed")
        let warnings = logs.entries.filter { $0.level == .warning }.map(\.message)
        XCTAssertTrue(warnings.contains { $0.contains("__gc finalizer abandoned: ") && $0.contains("script.lua:") }, "\(warnings)")
        XCTAssertEqual(warnings.count, 2, "both abandoned, sharing one close budget: \(warnings)")
    }

    /// coroutine.close runs the coroutine's pending __close methods on that
    /// coroutine: the watchdog must interrupt it there too.
    func testLoopingCloseMethodOfAClosedCoroutineIsStopped() throws {
        let worker = try makeWorker("""
            spoa.register_message("close", function(txn)
              local co = coroutine.create(function()
                local guard <close> = setmetatable({}, { __close = function() while true do end end })
                coroutine.yield()
              end)
              coroutine.resume(co)
              txn:set_var("txn.closed", coroutine.close(co))
            end, { on_error = { ["txn.failed"] = true } })
            spoa.register_message("fine", function(txn)
              local co = coroutine.create(function()
                local guard <close> = setmetatable({}, { __close = function() txn:set_var("txn.ran", true) end })
                coroutine.yield()
              end)
              coroutine.resume(co)
              txn:set_var("txn.closed", coroutine.close(co))
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 20 }
        XCTAssertEqual(try finishes(within: 10) { try setVars(worker, "close") }, ["txn.failed": .bool(true)])
        XCTAssertEqual(worker.handlerTimeouts, 1)
        XCTAssertEqual(try setVars(worker, "fine"), ["txn.ran": .bool(true), "txn.closed": .bool(true)])
    }

    func testPerHandlerTimeoutOverridesTheDefault() throws {
        let worker = try makeWorker("""
            spoa.register_message("spin", function() while true do end end, { timeout_ms = 15 })
            """, logs: logs) { $0.timeoutMilliseconds = 0 }
        XCTAssertEqual(try setVars(worker, "spin"), [:])
        XCTAssertTrue(errors.first?.message.contains("execution timeout (15 ms)") ?? false, "\(errors)")
    }

    /// The budget is the worker thread's CPU time: a handler that waits (here in
    /// os.execute, as a descheduled thread would) longer than its budget is not
    /// cut; one that spins, before or after waiting, still is.
    func testBudgetCountsCPUTimeNotTimeSpentWaiting() throws {
        let worker = try makeWorker("""
            spoa.register_message("waits", function(txn)
              os.execute("sleep 0.3")
              txn:set_var("txn.waited", true)
            end)
            spoa.register_message("spins", function() while true do end end)
            spoa.register_message("waits_then_spins", function()
              os.execute("sleep 0.3")
              while true do end
            end)
            """, logs: logs) {
            $0.timeoutMilliseconds = 40
            $0.unsafeLibraries = true  // os.execute: the sandbox has no way to wait
        }
        XCTAssertEqual(try setVars(worker, "waits"), ["txn.waited": .bool(true)], "\(errors)")
        XCTAssertEqual(worker.handlerTimeouts, 0)
        XCTAssertEqual(try setVars(worker, "spins"), [:])
        XCTAssertEqual(try setVars(worker, "waits_then_spins"), [:])
        XCTAssertEqual(worker.handlerTimeouts, 2)
        XCTAssertTrue(errors.allSatisfy { $0.message.contains("execution timeout (40 ms)") }, "\(errors)")
        XCTAssertEqual(try setVars(worker, "waits"), ["txn.waited": .bool(true)], "after timeouts too")
    }

    func testBadOptionsFailTheLoadWithFileAndLine() throws {
        for (options, expected) in [
            ("{ timeout_ms = 0 }", "timeout_ms must be an integer"),
            ("{ timeot_ms = 5 }", "unknown option 'timeot_ms'"),
            ("{ on_error = { ['bogus'] = 1 } }", "on_error"),
            ("{ on_error = { ['txn.x'] = 2.5 } }", "on_error[\"txn.x\"]"),
        ] {
            let path = try writeScript("\nspoa.register_message('m', function() end, \(options))\n")
            XCTAssertThrowsError(try LuaWorker.check(scriptPath: path)) { error in
                XCTAssertTrue("\(error)".contains("script.lua:2:") && "\(error)".contains(expected), "\(options): \(error)")
            }
        }
    }

    func testErrorVariableIsSetOnFailureOnly() throws {
        let worker = try makeWorker(Self.runaway + """

            spoa.register_message("boom", function() error("no") end)
            """, logs: logs) {
            $0.timeoutMilliseconds = 20
            $0.errorVariable = "txn.lua_error"
        }
        XCTAssertEqual(try setVars(worker, "boom"), ["txn.lua_error": .bool(true)])
        XCTAssertEqual(try setVars(worker, "spin")["txn.lua_error"], .bool(true))
        XCTAssertEqual(try setVars(worker, "fine"), ["txn.ok": .bool(true)])
    }

    /// spoa.json.decode stopped by the memory limit while it builds the tables:
    /// json-c's tree stays with the state's decoder until the next decode frees
    /// it, and that decode works.
    func testJSONDecodeStoppedByTheMemoryLimitLeavesTheDecoderUsable() throws {
        let worker = try makeWorker("""
            local BIG = "[" .. string.rep("1,", 300000) .. "1]"
            spoa.register_message("big", function() spoa.json.decode(BIG) end)
            spoa.register_message("small", function(txn)
              txn:set_var("txn.v", spoa.json.decode('{"a":[1,2]}').a[2])
            end)
            """, logs: logs) {
            $0.memoryLimit = 4 << 20
            $0.timeoutMilliseconds = 0
        }
        XCTAssertEqual(try setVars(worker, "big"), [:])
        XCTAssertTrue(errors.first?.message.contains("not enough memory") ?? false, "\(errors)")
        XCTAssertEqual(try setVars(worker, "small"), ["txn.v": .int64(2)])
        XCTAssertEqual(try setVars(worker, "big"), [:])
        XCTAssertEqual(try setVars(worker, "small"), ["txn.v": .int64(2)])
    }

    func testAllocationBombFailsTheCallNotTheWorker() throws {
        let worker = try makeWorker("""
            spoa.register_message("bomb", function()
              local t = {}
              for i = 1, 1e9 do t[i] = string.rep("x", 64) .. i end
            end)
            spoa.register_message("fine", function(txn) txn:set_var("txn.ok", true) end)
            """, logs: logs) {
            $0.memoryLimit = 4 << 20
            $0.timeoutMilliseconds = 0  // the memory cap, not the clock, must stop it
        }
        XCTAssertEqual(try setVars(worker, "bomb"), [:])
        XCTAssertTrue(errors.first?.message.contains("not enough memory") ?? false, "\(errors)")
        XCTAssertEqual(try setVars(worker, "fine"), ["txn.ok": .bool(true)])
        XCTAssertLessThanOrEqual(worker.luaMemory, 4 << 20)
    }

    func testUnsafeLoadsTheFullStandardLibrary() throws {
        let source = """
            spoa.register_message("libs", function()
              return { ["txn.execute"] = type(rawget(os, "execute")), ["txn.popen"] = type(io and rawget(io, "popen")),
                       ["txn.getinfo"] = type(rawget(debug, "getinfo")) }
            end)
            """
        let sandboxed = try makeWorker(source, logs: logs)
        XCTAssertEqual(try setVars(sandboxed, "libs"),
                       ["txn.execute": .string("nil"), "txn.popen": .string("nil"), "txn.getinfo": .string("nil")])
        let unsafe = try makeWorker(source, logs: logs) { $0.unsafeLibraries = true }
        XCTAssertEqual(try setVars(unsafe, "libs"),
                       ["txn.execute": .string("function"), "txn.popen": .string("function"), "txn.getinfo": .string("function")])
    }

    func testFilesAreReadableWhileLoadingOnly() throws {
        let data = try writeScript("alpha\nbeta\n", name: "words.txt")
        let worker = try makeWorker("""
            local words = {}
            for line in io.lines(\(luaString(data))) do words[#words + 1] = line end
            local f = assert(io.open(\(luaString(data)), "rb")); local all = f:read("a"); f:close()
            local ok_w, err_w = pcall(io.open, \(luaString(data)), "w")
            local from_init
            spoa.register_init(function() from_init = io.open(\(luaString(data))):read("l") end)
            spoa.register_message("read", function()
              local ok, err = pcall(io.open, \(luaString(data)))
              return { ["txn.words"] = table.concat(words, ","), ["txn.bytes"] = #all,
                       ["txn.write"] = tostring(err_w), ["txn.runtime"] = tostring(err), ["txn.init"] = from_init }
            end)
            """, logs: logs)
        let vars = try setVars(worker, "read")
        XCTAssertEqual(vars["txn.words"]?.text, "alpha,beta")
        XCTAssertEqual(vars["txn.bytes"], .int64(11))
        XCTAssertEqual(vars["txn.init"]?.text, "alpha", "init functions may read files too")
        XCTAssertTrue(vars["txn.write"]?.text?.contains("only reading is allowed") ?? false, "\(vars)")
        XCTAssertTrue(vars["txn.runtime"]?.text?.contains("only available while the script loads or in init functions") ?? false, "\(vars)")
    }

    func testRepeatedErrorsAreLoggedOncePerSite() throws {
        let worker = try makeWorker("""
            spoa.register_message("a", function() error("first site") end)
            spoa.register_message("b", function() error("second site") end)
            """, logs: logs)
        for _ in 0..<50 { _ = try setVars(worker, "a") }
        _ = try setVars(worker, "b")
        XCTAssertEqual(worker.handlerErrors, 51)
        XCTAssertEqual(errors.count, 2, "\(errors)")
        XCTAssertTrue(errors[0].message.hasPrefix("a: ") && errors[0].message.hasSuffix("script.lua:1: first site"))
        XCTAssertTrue(errors[1].message.hasPrefix("b: ") && errors[1].message.hasSuffix("script.lua:2: second site"))
    }

    func testErrorLogLimiterLogsAgainAfterTheIntervalWithTheSuppressedCount() {
        var limiter = ErrorLogLimiter(intervalNanoseconds: 1000)
        XCTAssertEqual(limiter.decide(message: "m", error: "x.lua:3: boom 1", now: 0), .log(suppressed: 0))
        XCTAssertEqual(limiter.decide(message: "m", error: "x.lua:3: boom 2", now: 10), .suppress)
        XCTAssertEqual(limiter.decide(message: "m", error: "x.lua:4: other", now: 20), .log(suppressed: 0))
        XCTAssertEqual(limiter.decide(message: "n", error: "x.lua:3: boom", now: 30), .log(suppressed: 0))
        XCTAssertEqual(limiter.decide(message: "m", error: "x.lua:3: boom 3", now: 1000), .log(suppressed: 1))
        XCTAssertEqual(ErrorLogLimiter.site(of: "not enough memory"), "not enough memory")
    }

    func testInstallSwapsTheStateAndCountsGenerations() throws {
        let path = try writeScript("spoa.register_message('v', function() return { ['txn.v'] = 1, ['txn.gen'] = spoa.generation } end)")
        let configuration = LuaConfiguration(scriptPath: path, workerCount: 1)
        let worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: logs.logger)
        XCTAssertEqual(try setVars(worker, "v"), ["txn.v": .int64(1), "txn.gen": .int64(0)])
        try "spoa.register_message('v', function() return { ['txn.v'] = 2, ['txn.gen'] = spoa.generation } end)"
            .write(toFile: path, atomically: true, encoding: .utf8)
        worker.install(try LuaWorker.prepare(configuration, workerIndex: 1, generation: 1, logger: logs.logger))
        XCTAssertEqual(try setVars(worker, "v"), ["txn.v": .int64(2), "txn.gen": .int64(1)])
        XCTAssertEqual(worker.generation, 1)
    }
}

func luaString(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
