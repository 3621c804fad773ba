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
            T.case("c", function() T.ok(T.notify("missing", {}):actions()[1] == nil) end)
            """, name: "m_spec.lua"))
        XCTAssertEqual(results.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(results.map(\.passed), [true, false, true])
        XCTAssertEqual(results[1].error?.hasSuffix("m_spec.lua:3: expected int64 (string), got uint32 (string)"), true,
                       results[1].error ?? "")
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
