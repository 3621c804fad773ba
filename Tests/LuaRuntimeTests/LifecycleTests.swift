import Foundation
import Logging
import LuaRuntime
import SpopEngine
import XCTest

/// register_init, register_task and the background state, context guards, time.
final class LifecycleTests: XCTestCase {
    override func tearDown() {
        LuaClock.useSystemClock()
        super.tearDown()
    }

    func testInitFunctionsRunInOrderAfterTheBodyInEveryState() throws {
        let source = """
            local order = {}
            spoa.register_init(function() order[#order + 1] = "init1:" .. tostring(LATE) end)
            spoa.register_init(function() order[#order + 1] = "init2" end)
            LATE = "body-done"
            spoa.register_message("run", function(txn)
              txn:set_var("txn.r", table.concat(order, ",") .. "@" .. spoa.worker .. "/" .. spoa.workers)
            end)
            """
        let w1 = try Harness(source, workerIndex: 1, workerCount: 2)
        let w2 = try Harness(source, workerIndex: 2, workerCount: 2)
        XCTAssertEqual(try w1.result(), "init1:body-done,init2@1/2")
        XCTAssertEqual(try w2.result(), "init1:body-done,init2@2/2")
    }

    func testAnInitErrorAbortsTheStartWithFileAndLine() throws {
        let path = try writeScript("""
            spoa.register_init(function()
              error("cannot reach the database")
            end)
            """)
        XCTAssertThrowsError(try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: Logger(label: "t"))) { error in
            XCTAssertTrue("\(error)".contains("script.lua:2: cannot reach the database"), "\(error)")
        }
        XCTAssertThrowsError(try BackgroundTasks(scriptPath: path, workerCount: 1, logger: Logger(label: "t"))) { error in
            XCTAssertTrue("\(error)".contains("script.lua:2: cannot reach the database"), "\(error)")
        }
    }

    func testRegistrationOutsideTheBodyIsRefused() throws {
        XCTAssertThrowsError(try Harness("spoa.register_init(function() spoa.register_init(print) end)")) { error in
            XCTAssertTrue("\(error)".contains("spoa.register_init is only available while the script loads"), "\(error)")
        }
        let h = try Harness("""
            spoa.register_message("run", function() spoa.register_task(print) end)
            """)
        XCTAssertNil(try h.result())
        XCTAssertTrue(h.errorLogs.contains { $0.message.contains("spoa.register_task is only available while the script loads") })
        XCTAssertThrowsError(try Harness("spoa.register_task(print, { every = 0 })")) { error in
            XCTAssertTrue("\(error)".contains("every must be an integer number of milliseconds >= 1"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.register_task(print, { period = 5 })")) { error in
            XCTAssertTrue("\(error)".contains("unknown option 'period' (supported: every, at_start)"), "\(error)")
        }
    }

    /// Tasks run in the background state (worker 0) on their own thread; a
    /// periodic task runs again, a failing one is logged and keeps its schedule.
    func testTasksRunInTheBackgroundState() throws {
        let logs = LogCapture()
        let path = try writeScript("""
            local d = spoa.shared.declare("lifecycle_tasks")
            spoa.register_message("check", function(txn) end)   -- accepted, never dispatched here
            spoa.register_task(function()
              d:set("once", spoa.worker .. "/" .. spoa.workers)
              local ok, err = pcall(spoa.register_message, "late", print)
              d:set("register_message", err)
            end)
            spoa.register_task(function() d:incr("ticks", 1, 0) end, { every = 5 })
            spoa.register_task(function() error("task failed on purpose") end, { every = 5, at_start = false })
            """)
        let tasks = try BackgroundTasks(scriptPath: path, workerCount: 3, logger: logs.logger)
        XCTAssertEqual(tasks.taskCount, 3)
        tasks.start()
        XCTAssertTrue(tasks.waitForRuns(8, timeout: 60))
        tasks.stop()
        let d = try XCTUnwrap(SharedDictionary.named("lifecycle_tasks"))
        XCTAssertEqual(d.get("once"), .string("0/3"))
        XCTAssertEqual(d.get("register_message"), .string("spoa.register_message is not available in the background state"))
        guard case .int(let ticks) = d.get("ticks") else { return XCTFail("no ticks") }
        XCTAssertGreaterThanOrEqual(ticks, 2, "the periodic task ran more than once")
        XCTAssertGreaterThanOrEqual(tasks.failures, 1)
        let errors = logs.entries.filter { $0.level == .error }
        XCTAssertTrue(errors.contains { $0.message.contains("script.lua:9: task failed on purpose") }, "\(errors.map(\.message))")
    }

    /// A task that blocks (here: spins until a worker has answered) holds only the
    /// background thread; the worker answers meanwhile.
    func testABlockingTaskNeverBlocksWorkers() throws {
        let path = try writeScript("""
            local d = spoa.shared.declare("lifecycle_blocking")
            spoa.register_task(function()
              d:set("task_started", true)
              while not d:get("worker_answered") do end
              d:set("task_done", true)
            end)
            spoa.register_message("run", function(txn)
              d:set("worker_answered", true)
              txn:set_var("txn.r", tostring(d:get("task_done")))
            end)
            """)
        let tasks = try BackgroundTasks(scriptPath: path, workerCount: 1, logger: Logger(label: "t"))
        let worker = try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: Logger(label: "t"))
        let d = try XCTUnwrap(SharedDictionary.named("lifecycle_blocking"))
        tasks.start()
        defer {
            _ = try? d.store("worker_answered", .bool(true))  // never leave the task spinning
            tasks.stop()
        }
        let deadline = Date(timeIntervalSinceNow: 60)
        while d.get("task_started") == nil && Date() < deadline { usleep(1000) }
        XCTAssertEqual(d.get("task_started"), .bool(true))
        let vars = try handleNotify(worker, [("run", [])])
        XCTAssertEqual(try SpoaAction.decodeList(vars).count, 1)
        XCTAssertTrue(tasks.waitForRuns(1, timeout: 60), "the task ends once the worker has answered")
        XCTAssertEqual(d.get("task_done"), .bool(true))
    }

    func testAScriptWithoutTasksStartsNoThread() throws {
        let tasks = try BackgroundTasks(scriptPath: try writeScript("local x = 1"), workerCount: 1, logger: Logger(label: "t"))
        tasks.start()
        XCTAssertEqual(tasks.taskCount, 0)
        XCTAssertFalse(tasks.waitForRuns(1, timeout: 0.01))
        tasks.stop()
    }

    func testTimeFunctionsFollowTheControlledClock() throws {
        LuaClock.freeze(atMilliseconds: 1_700_000_000_123)
        let h = try Harness("""
            spoa.register_message("run", function(txn)
              local t = spoa.now()
              txn:set_var("txn.r", t.sec .. "." .. t.usec .. " " .. spoa.now_ms() .. " " .. math.type(spoa.mono_ms()) .. " " .. type(spoa.version))
            end)
            """)
        XCTAssertEqual(try h.result(), "1700000000.123000 1700000000123 integer string")
        LuaClock.advance(milliseconds: 2_000)
        XCTAssertEqual(try h.result(), "1700000002.123000 1700000002123 integer string")
        LuaClock.useSystemClock()
        let mono = try Harness("""
            spoa.register_message("run", function(txn)
              local a = spoa.mono_ms(); local b = spoa.mono_ms()
              txn:set_var("txn.r", tostring(b >= a and math.abs(spoa.now_ms() - os.time() * 1000) < 5000))
            end)
            """)
        XCTAssertEqual(try mono.result(), "true")
    }
}
