import Foundation
@testable import LuaRuntime
import XCTest

/// LuaSpecRunner (luaspoa test) without the CLI: results, load errors, isolation.
final class SpecRunnerTests: XCTestCase {
    func runner(_ script: String) throws -> LuaSpecRunner {
        try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: try writeScript(script), workerCount: 1))
    }

    func testCasesReportFileAndLineAndGoOn() throws {
        let runner = try runner("spoa.register_message('m', function(txn, msg) txn:set_var('txn.n', spoa.uint32(msg.args.n)) end)")
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("a", function() T.eq(T.notify("m", { n = 3 }):get("txn.n"), 3) end)
            T.case("b", function() T.eq(select(2, T.notify("m", { n = 3 }):get("txn.n")), "int64") end)
            T.case("c", function() T.notify("missing", {}) end)
            """, name: "m_spec.lua"))
        XCTAssertEqual(results.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(results.map(\.passed), [true, false, false])
        XCTAssertEqual(results[1].error?.hasSuffix("m_spec.lua:3: expected int64 (string), got uint32 (string)"), true,
                       results[1].error ?? "")
        // An empty ACK for a message nobody handles would pass for "no action": it fails, naming the message.
        XCTAssertEqual(results[2].error?.contains("m_spec.lua:4: T.notify: no handler registered for message 'missing'"), true,
                       results[2].error ?? "")
    }

    /// Handlers that wait run to completion inside T.notify; with the test clock
    /// frozen, spoa.sleep moves it instead of sleeping, deadlines included.
    func testWaitingHandlersOnTheTestClock() throws {
        let runner = try runner("""
            spoa.register_message("slow", function(txn, msg)
              local before = spoa.mono_ms()
              spoa.sleep(msg.args.ms)
              spoa.yield()
              txn:set_var("txn.slept", spoa.mono_ms() - before)
            end, { deadline_ms = 10000, on_error = { ["txn.late"] = true } })
            """)
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("virtual", function()
              T.clock.set_ms(1000000)
              T.eq(T.notify("slow", { ms = 5000 }):get("txn.slept"), 5000)
            end)
            T.case("deadline", function()
              T.clock.set_ms(1000000)
              local ack = T.notify("slow", { ms = 20000 })
              T.eq(ack:get("txn.late"), true)
              T.eq(ack:get("txn.slept"), nil)
            end)
            """, name: "wait_spec.lua"))
        XCTAssertEqual(results.map(\.passed), [true, true], results.map { $0.error ?? "" }.joined(separator: "\n"))
    }

    func testAnErrorOutsideACaseKeepsTheCasesThatRan() throws {
        let runner = try runner("")
        XCTAssertThrowsError(try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("first", function() end)
            T.case("second", function() T.eq(1, 2) end)
            error("top level")
            """, name: "late_spec.lua"))) { error in
            let failure = error as? LuaSpecRunner.SpecFileError
            XCTAssertEqual(failure?.cases.map(\.name), ["first", "second"])
            XCTAssertEqual(failure?.cases.map(\.passed), [true, false])
            XCTAssertTrue("\(error)".contains("late_spec.lua:4: top level"), "\(error)")
        }
    }

    func testEqComparesTablesDeeplyAndNamesTheFirstDifference() throws {
        let runner = try runner("")
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("equal", function() T.eq({ a = 1, b = { 2, 3 }, ["x y"] = true }, { a = 1, b = { 2, 3 }, ["x y"] = true }) end)
            T.case("value", function() T.eq({ a = 1, b = { 2, 4 } }, { a = 1, b = { 2, 3 } }, "b") end)
            T.case("missing", function() T.eq({ a = 1 }, { a = 1, ["x y"] = "z" }) end)
            T.case("extra", function() T.eq({ 1, 2 }, { 1 }) end)
            T.case("kind", function() T.eq({ a = {} }, { a = 5 }) end)
            local cycle = {}; cycle.self = cycle
            T.case("cycle", function() T.eq(cycle, { self = { self = {} } }) end)
            """, name: "eq_spec.lua"))
        XCTAssertEqual(results.map(\.passed), [true, false, false, false, false, false])
        let errors = results.map { $0.error ?? "" }
        XCTAssertTrue(errors[1].hasSuffix("eq_spec.lua:3: b: at .b[2]: expected 3 (number), got 4 (number)"), errors[1])
        XCTAssertTrue(errors[2].hasSuffix(#"eq_spec.lua:4: at ["x y"]: expected z (string), got nil (nil)"#), errors[2])
        XCTAssertTrue(errors[3].hasSuffix("eq_spec.lua:5: at [2]: expected nil (nil), got 2 (number)"), errors[3])
        XCTAssertTrue(errors[4].contains("eq_spec.lua:6: at .a: expected 5 (number), got table: "), errors[4])
        XCTAssertTrue(errors[5].contains("eq_spec.lua:8: at .self.self"), errors[5])
    }

    func testABrokenSpecThrowsWithFileAndLine() throws {
        let runner = try runner("")
        XCTAssertThrowsError(try runner.run(specPath: try writeScript("local T = spoa.test\nT.case('x', function() end\n",
                                                                       name: "broken_spec.lua"))) { error in
            XCTAssertTrue("\(error)".contains("broken_spec.lua:3: ')' expected (to close '(' at line 2)"), "\(error)")
        }
    }

    func testSpoaTestExistsOnlyUnderTheRunner() throws {
        let logs = LogCapture()
        let worker = try makeWorker("spoa.register_message('t', function() return { ['txn.t'] = type(spoa.test) } end)", logs: logs)
        XCTAssertEqual(try setVars(worker, "t")["txn.t"]?.text, "nil")
    }
}
