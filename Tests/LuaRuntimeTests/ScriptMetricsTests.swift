import Foundation
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.metrics: one process-wide registry, so two workers' updates add up, a
/// reload (new states declaring the same metrics) keeps the values, and the
/// text is what /metrics appends under luaspoa_script_.
final class ScriptMetricsTests: XCTestCase {
    /// Metric names are process-wide: each test uses its own.
    let suffix = "t\(UInt32.random(in: 0...UInt32.max))"

    func script(_ suffix: String) -> String {
        """
        local DECISIONS = spoa.metrics.counter("decisions_\(suffix)", "Decisions by reason.", { "reason" })
        local INFLIGHT = spoa.metrics.gauge("inflight_\(suffix)", "A gauge \\\\ with \\n escapes.")
        local SCORE = spoa.metrics.histogram("score_\(suffix)", "Scores.", { 10, 50, 90.5 })
        spoa.register_message("m", function(txn, msg)
          DECISIONS:inc({ reason = msg.args.reason })
          if msg.args.reason == "bad-bot" then DECISIONS:inc({ reason = "bad-bot" }, 2) end
          INFLIGHT:set(7)
          INFLIGHT:dec(2)
          SCORE:observe(msg.args.score)
        end)
        spoa.register_message("many", function(txn, msg)
          for i = 1, 1005 do DECISIONS:inc({ reason = "r" .. i }) end
        end)
        spoa.register_message("misuse", function(txn, msg)
          local ok, err = pcall(DECISIONS.dec, DECISIONS)
          txn:set_var("txn.dec", err)
          ok, err = pcall(DECISIONS.inc, DECISIONS, -1)
          txn:set_var("txn.negative", err)
          ok, err = pcall(spoa.metrics.counter, "late_\(suffix)", "x")
          txn:set_var("txn.late", err)
        end)
        """
    }

    func lines(_ prefix: String) -> [String] {
        ScriptMetrics.render().split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    func testWorkersAddUpAndAReloadKeepsTheValues() throws {
        let first = try Harness(script(suffix)), second = try Harness(script(suffix))
        _ = try first.vars("m", [("reason", .string(ByteBuffer(string: "bad-bot"))), ("score", .int32(5))])
        _ = try second.vars("m", [("reason", .string(ByteBuffer(string: "ok"))), ("score", .int32(60))])
        let reloaded = try Harness(script(suffix))
        _ = try reloaded.vars("m", [("reason", .string(ByteBuffer(string: "ok"))), ("score", .int32(95))])

        let name = "luaspoa_script_decisions_\(suffix)"
        XCTAssertEqual(lines("# HELP \(name)") + lines("# TYPE \(name)"),
                       ["# HELP \(name) Decisions by reason.", "# TYPE \(name) counter"])
        XCTAssertEqual(lines(name + "{"), ["\(name){reason=\"bad-bot\"} 3", "\(name){reason=\"ok\"} 2"])
        XCTAssertEqual(lines("luaspoa_script_inflight_\(suffix)"), ["luaspoa_script_inflight_\(suffix) 5"])
        XCTAssertEqual(lines("# HELP luaspoa_script_inflight_\(suffix)"),
                       ["# HELP luaspoa_script_inflight_\(suffix) A gauge \\\\ with \\n escapes."])
        let score = "luaspoa_script_score_\(suffix)"
        XCTAssertEqual(lines(score + "_"), [
            "\(score)_bucket{le=\"10\"} 1", "\(score)_bucket{le=\"50\"} 1", "\(score)_bucket{le=\"90.5\"} 2",
            "\(score)_bucket{le=\"+Inf\"} 3", "\(score)_sum 160", "\(score)_count 3",
        ])
        XCTAssertTrue(first.errorLogs.isEmpty && second.errorLogs.isEmpty, "\(first.errorLogs.map(\.message))")
    }

    func testLabelCombinationsAreCappedAndTheOverflowIsLoggedOnce() throws {
        let harness = try Harness(script(suffix))
        _ = try harness.vars("many")
        _ = try harness.vars("many")
        let name = "luaspoa_script_decisions_\(suffix)"
        let series = lines(name + "{")
        XCTAssertEqual(series.count, 1001)
        XCTAssertEqual(series.last, "\(name){reason=\"__overflow__\"} 10", "r1001..r1005, twice")
        let warnings = harness.logs.entries.filter { $0.message.contains("label combinations") }
        XCTAssertEqual(warnings.count, 1, "\(harness.logs.entries.map(\.message))")
    }

    func testMisuseIsAnErrorNamingIt() throws {
        let harness = try Harness(script(suffix))
        let vars = try harness.vars("misuse")
        XCTAssertTrue(vars["txn.dec"]?.text?.contains("is a counter") == true, "\(vars)")
        XCTAssertTrue(vars["txn.negative"]?.text?.contains("finite number >= 0") == true, "\(vars)")
        XCTAssertTrue(vars["txn.late"]?.text?.contains("only available while the script loads") == true, "\(vars)")
        XCTAssertThrowsError(try Harness("spoa.metrics.gauge('decisions_\(suffix)', 'x')")) { error in
            XCTAssertTrue("\(error)".contains("already declared with another type, labels or buckets"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.metrics.counter('bad-name', 'x')"))
    }
}
