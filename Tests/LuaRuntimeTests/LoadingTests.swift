import Foundation
import Logging
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// Loading scripts, LuaWorker.check, the sandbox, logging.
final class LoadingTests: XCTestCase {
    private func loadError(_ source: String, file: StaticString = #filePath, line: UInt = #line) throws -> (LuaScriptError, String) {
        let path = try writeScript(source)
        do {
            _ = try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: Logger(label: "test"))
        } catch let error as LuaScriptError {
            XCTAssertThrowsError(try LuaWorker.check(scriptPath: path), file: file, line: line) { checkError in
                XCTAssertEqual("\(checkError)", "\(error)", "check() reports what a worker would", file: file, line: line)
            }
            return (error, path)
        }
        XCTFail("the script loaded", file: file, line: line)
        throw XCTSkip("no error")
    }

    func testSyntaxErrorGivesFileAndLine() throws {
        let (error, path) = try loadError("""
            spoa.register_message("a", function(txn)
              local x = = 1
            end)
            """)
        XCTAssertTrue(error.message.hasSuffix(":2: unexpected symbol near '='"), error.message)
        XCTAssertTrue(error.message.contains("script.lua"), error.message)
        XCTAssertNil(error.traceback)
        XCTAssertEqual(error.scriptPath, path)
        XCTAssertEqual(error.description, error.message)
    }

    func testRuntimeErrorWhileLoadingGivesFileLineAndTraceback() throws {
        let (error, _) = try loadError("""
            local limits = {}
            local max = limits.conn.max
            """)
        XCTAssertTrue(error.message.contains("script.lua:2: attempt to index a nil value (field 'conn')"), error.message)
        XCTAssertTrue(error.traceback?.hasPrefix("stack traceback:") ?? false)
        XCTAssertTrue(error.description.contains("\nstack traceback:"))
    }

    /// A body or init function that never returns fails the load at its budget
    /// (--lua-load-timeout) with file:line, instead of hanging the start or a reload.
    func testLoopingBodyOrInitFailsTheLoadWithFileAndLine() throws {
        for (source, site) in [("local n = 0\nwhile true do n = n + 1 end\n", "script.lua:2:"),
                               ("spoa.register_init(function()\n  while true do end\nend)\n", "script.lua:2:")] {
            var configuration = LuaConfiguration(scriptPath: try writeScript(source), workerCount: 1)
            configuration.loadTimeoutMilliseconds = 50
            let error = try finishes(within: 10) { () -> String in
                do { try LuaWorker.check(configuration) } catch { return "\(error)" }
                return "loaded"
            }
            XCTAssertTrue(error?.contains("\(site) execution timeout while loading (50 ms)") ?? false, "\(String(describing: error))")
        }
    }

    func testMissingFile() throws {
        let path = "/nonexistent/luaspoa/script.lua"
        XCTAssertThrowsError(try LuaWorker.check(scriptPath: path)) { error in
            XCTAssertTrue("\(error)".contains("cannot open /nonexistent/luaspoa/script.lua"), "\(error)")
        }
    }

    func testRegisteringANameTwiceFailsAtLoad() throws {
        let (error, _) = try loadError("""
            spoa.register_message("dup", function() end)
            spoa.register_message({ "other", "dup" }, function() end)
            """)
        XCTAssertTrue(error.message.contains("script.lua:2: spoa.register_message: message 'dup' is already registered"), error.message)
    }

    func testRegisterMessageArgumentChecks() throws {
        XCTAssertTrue(try loadError("spoa.register_message('x')").0.message.contains("bad argument #2 to 'register_message' (function expected, got no value)"))
        XCTAssertTrue(try loadError("spoa.register_message('', function() end)").0.message.contains("empty message name"))
        XCTAssertTrue(try loadError("spoa.register_message({ 1 }, function() end)").0.message.contains("message names must be strings, got number"))
    }

    func testBinaryChunksAreRejected() throws {
        let path = try writeScript("\u{1B}Lua garbage")
        XCTAssertThrowsError(try LuaWorker.check(scriptPath: path)) { error in
            XCTAssertTrue("\(error)".contains("attempt to load a binary chunk"), "\(error)")
        }
    }

    func testValidScriptPassesCheck() throws {
        let path = try writeScript("spoa.register_message('ok', function() end)")
        XCTAssertNoThrow(try LuaWorker.check(scriptPath: path))
    }

    func testSandbox() throws {
        let harness = try Harness("""
            spoa.register_message("sandbox", function(txn)
              local f, err = load(string.dump(function() return 1 end))
              local ok_gc = pcall(collectgarbage, "stop")
              return {
                ["txn.io"] = type(io), ["txn.os_execute"] = type(rawget(os, "execute")), ["txn.os_time"] = type(os.time),
                ["txn.os_getenv"] = type(os.getenv), ["txn.require"] = type(rawget(_G, "require")),
                ["txn.package"] = type(rawget(_G, "package")),
                ["txn.dofile"] = type(rawget(_G, "dofile")), ["txn.loadfile"] = type(rawget(_G, "loadfile")),
                ["txn.debug_getinfo"] = type(rawget(debug, "getinfo")), ["txn.traceback"] = type(debug.traceback),
                ["txn.unknown"] = type(os.no_such_thing) .. "," .. type(no_such_global),
                ["txn.bytecode"] = tostring(err), ["txn.text_load"] = load("return 1 + 1")(),
                ["txn.env_load"] = load("return x", "chunk", "t", { x = 5 })(),
                ["txn.gc_count"] = math.type(collectgarbage("count")), ["txn.gc_stop"] = ok_gc,
                ["txn.string"] = ("abc"):upper(), ["txn.utf8"] = utf8.char(233),
                ["txn.math"] = math.floor(7 / 2), ["txn.table"] = table.concat({ "a", "b" }, ","),
              }
            end)
            """)
        let vars = try harness.vars("sandbox")
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs)")
        XCTAssertEqual(vars["txn.io"]?.text, "table", "io.open/io.lines exist but work only while loading (BudgetTests)")
        XCTAssertEqual(vars["txn.os_execute"]?.text, "nil")
        XCTAssertEqual(vars["txn.os_getenv"]?.text, "function", "works while loading only (testEnvironmentAtLoadTime)")
        XCTAssertEqual(vars["txn.unknown"]?.text, "nil,nil", "only removed names raise")
        XCTAssertEqual(vars["txn.os_time"]?.text, "function")
        XCTAssertEqual(vars["txn.require"]?.text, "nil")
        XCTAssertEqual(vars["txn.package"]?.text, "nil")
        XCTAssertEqual(vars["txn.dofile"]?.text, "nil")
        XCTAssertEqual(vars["txn.loadfile"]?.text, "nil")
        XCTAssertEqual(vars["txn.debug_getinfo"]?.text, "nil")
        XCTAssertEqual(vars["txn.traceback"]?.text, "function")
        XCTAssertTrue(vars["txn.bytecode"]?.text?.contains("attempt to load a binary chunk") ?? false, "\(vars)")
        XCTAssertEqual(vars["txn.text_load"], .int64(2))
        XCTAssertEqual(vars["txn.env_load"], .int64(5))
        XCTAssertEqual(vars["txn.gc_count"]?.text, "float")
        XCTAssertEqual(vars["txn.gc_stop"], .bool(false))
        XCTAssertEqual(vars["txn.string"]?.text, "ABC")
        XCTAssertEqual(vars["txn.utf8"]?.text, "é")
        XCTAssertEqual(vars["txn.math"], .int64(3))
        XCTAssertEqual(vars["txn.table"]?.text, "a,b")
    }

    func testLoggingReachesTheLogger() throws {
        let harness = try Harness("""
            spoa.Info("loading worker " .. spoa.worker)
            spoa.register_message("logs", function(txn, msg)
              spoa.log(spoa.warning, "w")
              spoa.log(spoa.err, "e")
              spoa.log(spoa.notice, "n")
              spoa.log(spoa.silent, "never")
              spoa.Debug("d")
              spoa.Info("i")
              spoa.Warning("warn")
              spoa.Alert("a")
              print("p", 1, nil, true)
              warn("careful")
              local ok, err = pcall(spoa.log, 9, "x")
              spoa.Info(err)
            end)
            """, workerIndex: 2)
        let loading = harness.logs.entries
        XCTAssertEqual(loading.count, 1)
        XCTAssertEqual(loading.first?.level, .info)
        XCTAssertEqual(loading.first?.message, "loading worker 2")
        XCTAssertEqual(loading.first?.metadata["lua.worker"], "2")

        _ = try harness.actions([("logs", [])])
        let entries = harness.logs.entries.dropFirst().filter { $0.level != .trace }
        let got = entries.map { "\($0.level) \($0.message)" }
        XCTAssertEqual(got, [
            "warning w", "error e", "notice n", "debug d", "info i", "warning warn", "critical a",
            "info p\t1\tnil\ttrue", "warning careful", "info spoa.log: invalid level 9 (expected 0..7)",
        ])
        XCTAssertTrue(entries.allSatisfy { $0.metadata["lua.message"] == "logs" })
        XCTAssertTrue(harness.errorLogs.allSatisfy { $0.message == "e" })
    }

    /// A name the sandbox removed says so, and how to get it, instead of
    /// "attempt to call a nil value".
    func testSandboxedNamesSayTheyAreSandboxed() throws {
        let harness = try Harness("""
            spoa.register_message("names", function(txn)
              local out = {}
              for _, f in ipairs({
                function() return os.execute("true") end, function() return io.popen("true") end,
                function() return require("socket") end, function() return debug.getinfo(1) end,
                function() return package.path end, function() return dofile("x.lua") end,
              }) do
                local _, err = pcall(f)
                out[#out + 1] = (err:gsub("^.-:%d+: ", ""):gsub(" is not available: .*", ""))
              end
              local _, err = pcall(function() return os.remove("x") end)
              out[#out + 1] = err:match(": (the sandbox .*)")
              txn:set_var("txn.names", table.concat(out, "|"))
            end)
            """)
        XCTAssertEqual(try harness.vars("names")["txn.names"]?.text,
                       "os.execute|io.popen|require|debug.getinfo|package|dofile|"
                       + "the sandbox removes it (luaspoa --lua-unsafe loads the full standard library, for trusted scripts)")
    }

    /// os.getenv configures a script at load time (body and init functions);
    /// a handler raises (read it into a local at load).
    func testEnvironmentAtLoadTime() throws {
        setenv("LUASPOA_TEST_MODE", "strict", 1)
        defer { unsetenv("LUASPOA_TEST_MODE") }
        let harness = try Harness("""
            local MODE = os.getenv("LUASPOA_TEST_MODE")
            local MISSING = os.getenv("LUASPOA_TEST_NOT_SET")
            local FROM_INIT
            spoa.register_init(function() FROM_INIT = os.getenv("LUASPOA_TEST_MODE") end)
            spoa.register_message("env", function(txn)
              local ok, err = pcall(os.getenv, "LUASPOA_TEST_MODE")
              txn:set_var("txn.mode", MODE)
              txn:set_var("txn.missing", tostring(MISSING))
              txn:set_var("txn.init", FROM_INIT)
              txn:set_var("txn.handler", tostring(ok) .. " " .. err:gsub("^.-:%d+: ", ""))
            end)
            """)
        let vars = try harness.vars("env")
        XCTAssertEqual(vars["txn.mode"]?.text, "strict")
        XCTAssertEqual(vars["txn.missing"]?.text, "nil")
        XCTAssertEqual(vars["txn.init"]?.text, "strict")
        XCTAssertEqual(vars["txn.handler"]?.text, "false os.getenv is only available while the script loads or in init functions")
    }

    /// io.open and io.lines read a relative path from the script's directory
    /// (as spoa.map.load does), whatever the working directory; absolute paths
    /// are unchanged.
    func testRelativeFilesAreReadFromTheScriptDirectory() throws {
        let directory = try makeTemporaryDirectory("luaspoa-io")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "alpha\nbeta\n".write(to: directory.appendingPathComponent("data/words.txt"), atomically: true, encoding: .utf8)
        let script = directory.appendingPathComponent("agent.lua")
        try """
            local f = assert(io.open("data/words.txt")); local first = f:read("l"); f:close()
            local n = 0
            for _ in io.lines("./data/words.txt") do n = n + 1 end
            local abs = assert(io.open("\(directory.path)/data/words.txt")):read("l")
            spoa.register_message("read", function(txn)
              txn:set_var("txn.r", first .. "," .. n .. "," .. abs)
            end)
            """.write(to: script, atomically: true, encoding: .utf8)
        XCTAssertNotEqual(FileManager.default.currentDirectoryPath, directory.path)
        let worker = try LuaWorker(scriptPath: script.path, workerIndex: 1, workerCount: 1, logger: LogCapture().logger)
        let vars = try handleNotify(worker, [("read", [])])
        let actions = try SpoaAction.decodeList(vars)
        XCTAssertEqual(actions.count, 1)
        if case .setVar(_, _, let value)? = actions.first { XCTAssertEqual(value.text, "alpha,2,alpha") } else { XCTFail("\(actions)") }
    }

    /// A fields table becomes the line's metadata (the log format writes it);
    /// misuse is an error naming it, never silently dropped.
    func testLogFieldsAndMisuse() throws {
        let harness = try Harness("""
            spoa.register_message("logs", function(txn, msg)
              spoa.Info("decision", { reason = "bad-bot", score = 5, ok = false, ip = spoa.addr("192.0.2.7") })
              spoa.log(spoa.warning, "plain", nil)
              spoa.log(spoa.silent, "never", { a = 1 })
              local errors = {}
              for _, call in ipairs({
                function() spoa.Info("x", "extra") end,
                function() spoa.Warning("x", {}, "more") end,
                function() spoa.log(spoa.info, "x", { a = 1 }, 2) end,
                function() spoa.Debug("x", { t = {} }) end,
                function() spoa.Info("x", { [1] = "positional" }) end,
              }) do
                local ok, err = pcall(call)
                errors[#errors + 1] = ok and "no error" or err:gsub("^.-:%d+: ", "")
              end
              txn:set_var("txn.errors", table.concat(errors, "|"))
            end)
            """)
        let vars = try harness.vars("logs")
        XCTAssertEqual(vars["txn.errors"]?.text?.split(separator: "|").map(String.init), [
            "spoa.Info: fields must be a table of key = value, got string",
            "spoa.Warning: expected (message [, fields]), got 3 arguments",
            "spoa.log: expected (level, message [, fields]), got 4 arguments",
            "spoa.Debug: field 't' is a table (strings, numbers, booleans or values with __tostring)",
            "spoa.Info: field names must be strings, got number",
        ])
        let lines = harness.logs.entries.filter { $0.level != .trace }
        XCTAssertEqual(lines.map(\.message), ["decision", "plain"])
        let decision = try XCTUnwrap(lines.first)
        XCTAssertEqual(decision.level, .info)
        XCTAssertEqual(decision.metadata["reason"], "bad-bot")
        XCTAssertEqual(decision.metadata["score"], "5")
        XCTAssertEqual(decision.metadata["ok"], "false")
        XCTAssertEqual(decision.metadata["ip"], "192.0.2.7")
        XCTAssertEqual(decision.metadata["lua.message"], "logs")
        XCTAssertNil(lines.last?.metadata["reason"])
    }

    func testStatesAreIndependentPerWorker() throws {
        let path = try writeScript("""
            local count = 0
            spoa.register_message("count", function(txn) count = count + 1; txn:set_var("txn.count", count) end)
            """)
        let logger = Logger(label: "test")
        let first = try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 2, logger: logger)
        let second = try LuaWorker(scriptPath: path, workerIndex: 2, workerCount: 2, logger: logger)
        func run(_ worker: LuaWorker) throws -> [SpoaAction] {
            try SpoaAction.decodeList(handleNotify(worker, [("count", [])]))
        }
        XCTAssertEqual(try run(first), [.setVar(.transaction, "count", .int64(1))])
        XCTAssertEqual(try run(first), [.setVar(.transaction, "count", .int64(2))])
        XCTAssertEqual(try run(second), [.setVar(.transaction, "count", .int64(1))])
        XCTAssertGreaterThan(first.luaMemory, 0)
    }
}
