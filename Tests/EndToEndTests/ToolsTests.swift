// The script author's tools as a user runs them: luaspoa check, eval and test
// (exit statuses, printed actions with wire types, the spec summary line).

import Foundation
import XCTest

final class ToolsTests: E2ETestCase {

    /// Runs luaspoa with `args`; returns its exit status and output (stdout and stderr).
    func luaspoa(_ args: [String], name: String = "tool") throws -> (status: Int32, output: String) {
        let bin = try XCTUnwrap(E2EPaths.agentBinary(), "luaspoa binary not found")
        let p = try ManagedProcess(name: name, executable: bin, arguments: args, logDir: tempDir)
        children.append(p)
        let status = try XCTUnwrap(p.waitForExit(timeout: 30), "luaspoa \(args) did not exit:\n\(p.log)")
        return (status, p.log)
    }

    func write(_ text: String, _ name: String) throws -> String {
        let url = tempDir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// echo sends every argument back under its own name, with its own type.
    static let script = """
        local keep = { int32 = spoa.int32, uint32 = spoa.uint32, uint64 = spoa.uint64, binary = spoa.binary }
        spoa.register_message("echo", function(txn, msg)
          for i, name, value, type in msg:iter() do
            if keep[type] then value = keep[type](value) end
            if type ~= "null" then txn:set_var("txn." .. (name ~= "" and name or "arg" .. i), value) end
          end
        end)
        spoa.register_message("fail", function(txn)
          txn:set_var("txn.lost", 1)
          error("broken on purpose")
        end, { on_error = { ["txn.score"] = spoa.uint32(50) } })
        """

    func testCheckFailsALoopingScriptAtItsLoadBudget() throws {
        let loop = try write("local ready = false\nwhile not ready do end\n", "loop.lua")
        let failed = try luaspoa(["check", "--lua-load-timeout", "200", loop], name: "check-loop")
        XCTAssertEqual(failed.status, 1, failed.output)
        XCTAssertTrue(failed.output.contains("loop.lua:2: execution timeout while loading (200 ms)"), failed.output)
    }

    func testCheckReportsOkOrFileAndLine() throws {
        let good = try write(Self.script, "good.lua")
        let ok = try luaspoa(["check", good], name: "check-ok")
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.contains("good.lua: ok"), ok.output)

        let bad = try write("local x = 1\nspoa.register_message('m', function() end, { timeout = 5 })\n", "bad.lua")
        let failed = try luaspoa(["check", bad], name: "check-bad")
        XCTAssertEqual(failed.status, 1, failed.output)
        XCTAssertTrue(failed.output.contains("bad.lua:2:") && failed.output.contains("unknown option 'timeout'"), failed.output)
    }

    func testEvalPrintsTheShippedExampleScore() throws {
        let r = try luaspoa(["eval", TestScripts.ipReputationPath, "--message", "check-client-ip", "--arg", "ip=ipv4:127.0.0.1"],
                            name: "eval-iprep")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.split(separator: "\n").contains("set-var(sess.ip_score) uint32:100"), r.output)
    }

    func testEvalSendsTypedArgumentsAndShowsWireTypes() throws {
        let path = try write(Self.script, "echo.lua")
        let r = try luaspoa(["eval", path, "--message", "echo",
                             "--arg", "a=int32:-5", "--arg", "b=uint64:18446744073709551615", "--arg", "c=ipv6:2001:db8::1",
                             "--arg", "d=hello", "--arg", "e=binary:00ff", "--arg", "f=boolean:true", "--arg", "=ipv4:192.0.2.1"],
                            name: "eval-echo")
        XCTAssertEqual(r.status, 0, r.output)
        let lines = r.output.split(separator: "\n").map(String.init)
        for expected in ["set-var(txn.a) int32:-5", "set-var(txn.c) ipv6:2001:db8::1", "set-var(txn.d) string:\"hello\"",
                         "set-var(txn.e) binary:0 ff", "set-var(txn.f) boolean:true", "set-var(txn.arg7) ipv4:192.0.2.1"] {
            XCTAssertTrue(lines.contains(expected), "missing \(expected) in:\n\(r.output)")
        }
        XCTAssertTrue(lines.contains("set-var(txn.b) uint64:18446744073709551615"), r.output)
    }

    func testEvalPrintsTheACKOfAHandlerThatWaits() throws {
        let path = try write("""
            spoa.register_message("slow", function(txn)
              txn:set_var("txn.before", 1)
              spoa.sleep(30)
              spoa.yield()
              txn:set_var("txn.after", 2)
            end)
            spoa.register_message("late", function(txn) spoa.sleep(500) end,
              { deadline_ms = 50, on_error = { ["txn.late"] = true } })
            """, "wait.lua")
        let r = try luaspoa(["eval", path, "--message", "slow"], name: "eval-wait")
        XCTAssertEqual(r.status, 0, r.output)
        let lines = r.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("set-var(txn.before) int64:1") && lines.contains("set-var(txn.after) int64:2"), r.output)
        let late = try luaspoa(["eval", path, "--message", "late"], name: "eval-late")
        XCTAssertEqual(late.status, 1, late.output)
        XCTAssertTrue(late.output.contains("wait.lua:7: deadline exceeded (50 ms"), late.output)
        XCTAssertTrue(late.output.split(separator: "\n").contains("set-var(txn.late) boolean:true"), late.output)
    }

    func testEvalOfAFailingHandlerPrintsOnErrorAndExitsNonZero() throws {
        let path = try write(Self.script, "fail.lua")
        let r = try luaspoa(["eval", path, "--message", "fail", "--lua-error-var", "txn.lua_error"], name: "eval-fail")
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("broken on purpose"), r.output)
        let lines = r.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("set-var(txn.score) uint32:50"), r.output)
        XCTAssertTrue(lines.contains("set-var(txn.lua_error) boolean:true"), r.output)
        XCTAssertFalse(r.output.contains("txn.lost"), "rolled back: \(r.output)")

        let bad = try luaspoa(["eval", path, "--message", "echo", "--arg", "x=int32:big"], name: "eval-badarg")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("'big' is not a valid int32"), bad.output)
    }

    func testEvalOfAMessageWithNoHandlerExitsNonZero() throws {
        let path = try write(Self.script, "nohandler.lua")
        let r = try luaspoa(["eval", path, "--message", "ehco"], name: "eval-nohandler")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("no handler registered for message 'ehco'"), r.output)
    }

    func testASpecErrorOutsideACaseStillReportsTheCasesThatRan() throws {
        let script = try write(Self.script, "agent.lua")
        let spec = try write("""
            local T = spoa.test
            T.case("ran", function() T.eq(1, 1) end)
            T.case("also ran", function() T.eq(1, 1) end)
            error("setup broke")
            """, "late_spec.lua")
        let r = try luaspoa(["test", script, spec], name: "test-late-error")
        XCTAssertEqual(r.status, 1, r.output)
        let lines = r.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("ok 1 - ran") && lines.contains("ok 2 - also ran"), r.output)
        XCTAssertTrue(r.output.contains("late_spec.lua:4: setup broke"), r.output)
        XCTAssertEqual(lines.last, "2 passed, 1 failed", r.output)
    }

    func testReloadRefusesToSignalAProcessThatIsNotLuaspoa() throws {
        let sleeper = try ManagedProcess(name: "sleeper", executable: "/bin/sleep", arguments: ["30"], logDir: tempDir)
        children.append(sleeper)
        let pidFile = try write("\(sleeper.process.processIdentifier)\n", "stale.pid")
        let r = try luaspoa(["reload", "--pid-file", pidFile], name: "reload-stale")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("process \(sleeper.process.processIdentifier) from \(pidFile) is 'sleep', not luaspoa"),
                      r.output)
        usleep(100_000)
        XCTAssertTrue(sleeper.isRunning, "the sleep was signalled: \(r.output)")
    }

    static let spec = """
        local T = spoa.test
        T.case("wire types come from the ACK bytes", function()
          local ack = T.notify("echo", { n = spoa.int32(7), u = spoa.uint32(9), ip = spoa.addr("2001:db8::5"),
                                         s = "x", b = spoa.binary("\\0\\1"), t = true })
          T.eq(select(2, ack:get("txn.n")), "int32")
          T.eq(select(2, ack:get("txn.u")), "uint32")
          local ip, ty = ack:get("txn.ip"); T.eq(ty, "ipv6"); T.eq(tostring(ip), "2001:db8::5")
          T.eq(select(2, ack:get("txn.b")), "binary")
          T.eq(ack:get("txn.t"), true)
          T.eq(#ack:actions(), 6)
          T.eq(ack.error, nil)
        end)
        T.case("ordered arguments keep their order and names", function()
          local ack = T.notify("echo", { {"", spoa.int32(1)}, {"z", "last"} })
          T.eq(tostring(ack), 'set-var(txn.arg1) int32:1\\nset-var(txn.z) string:"last"')
        end)
        T.case("a failing handler: error, rollback, on_error", function()
          local ack = T.notify("fail", {})
          T.ok(ack.error:find("broken on purpose", 1, true), ack.error)
          T.eq(ack:get("txn.lost"), nil)
          T.eq(ack:get("txn.score"), 50)
          T.ok(T.logs()[1]:find("broken on purpose", 1, true), "the error is logged")
        end)
        """

    func testSpecsPassAndTheSummaryLineCounts() throws {
        let script = try write(Self.script, "agent.lua")
        let spec = try write(Self.spec, "agent_spec.lua")
        let r = try luaspoa(["test", script, spec], name: "test-pass")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.split(separator: "\n").last, "3 passed, 0 failed", r.output)
    }

    func testAFailingSpecExitsNonZeroWithFileAndLine() throws {
        let script = try write(Self.script, "agent.lua")
        let spec = try write("""
            local T = spoa.test
            T.case("passes", function() T.eq(1, 1) end)
            T.case("fails", function()
              T.eq(T.notify("echo", { n = spoa.int32(1) }):get("txn.n"), 2, "n")
            end)
            """, "failing_spec.lua")
        let r = try luaspoa(["test", script, spec], name: "test-fail")
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("not ok 2 - fails: ") && r.output.contains("failing_spec.lua:4: n: expected 2"), r.output)
        XCTAssertEqual(r.output.split(separator: "\n").last, "1 passed, 1 failed", r.output)
    }

    func testTheShippedSpecsPass() throws {
        for example in ["ip_reputation", "bot_detector", "rate_limiter", "jwt_auth", "geo_policy", "global_rate_limiter",
                        "decision_bouncer", "verified_crawler"] {
            let r = try luaspoa(["test", E2EPaths.repoFile("scripts/\(example).lua").path,
                                 E2EPaths.repoFile("scripts/\(example)_spec.lua").path], name: "spec-\(example)")
            XCTAssertEqual(r.status, 0, r.output)
            let summary = String(r.output.split(separator: "\n").last ?? "")
            XCTAssertTrue(summary.hasSuffix(" passed, 0 failed") && !summary.hasPrefix("0 "), r.output)
        }
    }
}
