import Foundation
import Logging
@testable import LuaRuntime
import NIOCore
import NIOEmbedded
@testable import SpopEngine
import XCTest

/// Handlers that wait (spoa.sleep, spoa.yield), driven on an EmbeddedEventLoop:
/// time moves only when the test says so, so nothing here depends on timing.
final class WaitingHandlerTests: XCTestCase {
    let loop = EmbeddedEventLoop()

    func notify(_ messages: [TestMessage], streamID: UInt64 = 7, frameID: UInt64 = 1) throws -> NotifyFrame {
        var frame = ByteBuffer()
        NotifyFrame.write(streamID: streamID, frameID: frameID, messages: messages, to: &frame)
        var reader = FrameReader()
        reader.append(frame)
        let raw = try XCTUnwrap(try reader.next(maxFrameSize: 1 << 20))
        return try NotifyFrame(streamID: streamID, frameID: frameID, payload: raw.payload)
    }

    /// Starts a frame through `SpoaWorker.answer` (the frame may suspend).
    func answer(_ worker: LuaWorker, _ messages: [TestMessage], streamID: UInt64 = 7) throws -> EventLoopFuture<ByteBuffer> {
        worker.answer(try notify(messages, streamID: streamID), connection: SpoaConnectionInfo(engineID: "e1"), on: loop)
    }

    func actions(_ future: EventLoopFuture<ByteBuffer>, file: StaticString = #filePath, line: UInt = #line) throws -> [SpoaAction] {
        var result: Result<ByteBuffer, Error>?
        future.assumeIsolated().whenComplete { result = $0 }
        let frame = try XCTUnwrap(result, "the ACK has not left", file: file, line: line).get()
        var reader = FrameReader()
        reader.append(frame)
        let raw = try XCTUnwrap(try reader.next(maxFrameSize: 1 << 20), file: file, line: line)
        XCTAssertEqual(raw.header.type, .ack, file: file, line: line)
        return try SpoaAction.decodeList(raw.payload)
    }

    func isDone(_ future: EventLoopFuture<ByteBuffer>) -> Bool {
        var done = false
        future.assumeIsolated().whenComplete { _ in done = true }
        return done
    }

    func testSleepKeepsActionsBeforeAndAfterTheWait() throws {
        let h = try Harness("""
            spoa.register_message("slow", function(txn, msg)
              txn:set_var("txn.before", msg.args.x)
              spoa.sleep(50)
              txn:set_var("txn.after", msg.args.x + 1)
              txn:set_var("txn.engine", txn.engine_id)
              return { ["txn.ret"] = txn.stream_id }
            end)
            """)
        let future = try answer(h.worker, [("slow", [("x", .int32(5))])])
        XCTAssertFalse(isDone(future))
        XCTAssertEqual(h.worker.waitingFrames, 1)
        loop.advanceTime(by: .milliseconds(49))
        XCTAssertFalse(isDone(future))
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(try actions(future), [
            .setVar(.transaction, "before", .int64(5)), .setVar(.transaction, "after", .int64(6)),
            .setVar(.transaction, "engine", .string("e1")), .setVar(.transaction, "ret", .int64(7)),
        ])
        XCTAssertEqual(h.worker.waitingFrames, 0)
        XCTAssertEqual(h.worker.handlerErrors, 0)
    }

    func testMsgArgsIsTheSameTableAfterAWait() throws {
        let h = try Harness("""
            spoa.register_message("m", function(txn, msg)
              local before = msg.args
              msg.args.mine = "kept"
              spoa.sleep(msg.args.ms)
              txn:set_var("txn.same", rawequal(before, msg.args))
              txn:set_var("txn.mine", msg.args.mine)
              txn:set_var("txn.ms", msg.args.ms)
            end)
            """)
        let first = try answer(h.worker, [("m", [("ms", .int32(10))])], streamID: 1)
        let second = try answer(h.worker, [("m", [("ms", .int32(5))])], streamID: 2)  // builds its own msg.args meanwhile
        loop.advanceTime(by: .milliseconds(10))
        XCTAssertEqual(try actions(first), [
            .setVar(.transaction, "same", .bool(true)), .setVar(.transaction, "mine", .string("kept")),
            .setVar(.transaction, "ms", .int64(10)),
        ])
        XCTAssertEqual(try actions(second).last, .setVar(.transaction, "ms", .int64(5)))
    }

    func testOtherFramesRunWhileOneWaitsAndFinishFirst() throws {
        let h = try Harness("""
            spoa.register_message("m", function(txn, msg)
              if msg.args.ms > 0 then spoa.sleep(msg.args.ms) end
              txn:set_var("txn.id", txn.stream_id)
            end)
            """)
        let slow = try answer(h.worker, [("m", [("ms", .int32(200))])], streamID: 1)
        let fast = try answer(h.worker, [("m", [("ms", .int32(0))])], streamID: 2)
        let yielding = try answer(h.worker, [("m", [("ms", .int32(10))])], streamID: 3)
        XCTAssertEqual(try actions(fast), [.setVar(.transaction, "id", .int64(2))])
        XCTAssertFalse(isDone(slow))
        loop.advanceTime(by: .milliseconds(10))
        XCTAssertEqual(try actions(yielding), [.setVar(.transaction, "id", .int64(3))])
        XCTAssertFalse(isDone(slow))
        loop.advanceTime(by: .milliseconds(190))
        XCTAssertEqual(try actions(slow), [.setVar(.transaction, "id", .int64(1))])
    }

    /// More frames waiting at once than the pool of idle coroutines keeps.
    func testManyFramesWaitingAtOnce() throws {
        let h = try Harness("""
            spoa.register_message("m", function(txn, msg)
              spoa.sleep(msg.args.ms)
              txn:set_var("txn.id", txn.stream_id)
            end)
            """)
        var futures: [EventLoopFuture<ByteBuffer>] = []
        for round in 0..<3 {
            for id in 1...300 {
                futures.append(try answer(h.worker, [("m", [("ms", .int32(Int32(1 + id % 3)))])], streamID: UInt64(round * 1000 + id)))
            }
            loop.advanceTime(by: .milliseconds(1))
        }
        loop.advanceTime(by: .milliseconds(5))
        for (index, future) in futures.enumerated() {
            let id = Int64((index / 300) * 1000 + index % 300 + 1)
            XCTAssertEqual(try actions(future), [.setVar(.transaction, "id", .int64(id))])
        }
        XCTAssertEqual(h.worker.handlerErrors, 0, h.worker.lastError ?? "")
    }

    func testYieldResumesOnTheNextTurn() throws {
        let h = try Harness("""
            spoa.register_message("y", function(txn, msg)
              for i = 1, 3 do spoa.yield() end
              txn:set_var("txn.done", true)
            end)
            """)
        let future = try answer(h.worker, [("y", [])])
        XCTAssertFalse(isDone(future))
        loop.run()
        XCTAssertEqual(try actions(future), [.setVar(.transaction, "done", .bool(true))])
    }

    func testTwoWaitingMessagesInOneFrame() throws {
        let h = try Harness("""
            spoa.register_message({"a", "b"}, function(txn, msg)
              txn:set_var("txn." .. msg.name .. "1", 1)
              spoa.sleep(msg.args.ms)
              txn:set_var("txn." .. msg.name .. "2", txn:get_var("txn.a2") or 0)
            end)
            """)
        let future = try answer(h.worker, [("a", [("ms", .int32(20))]), ("b", [("ms", .int32(30))])])
        loop.advanceTime(by: .milliseconds(20))
        XCTAssertFalse(isDone(future), "the ACK waits for the frame's second message")
        loop.advanceTime(by: .milliseconds(29))
        XCTAssertFalse(isDone(future))
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(try actions(future), [
            .setVar(.transaction, "a1", .int64(1)), .setVar(.transaction, "a2", .int64(0)),
            .setVar(.transaction, "b1", .int64(1)), .setVar(.transaction, "b2", .int64(0)),
        ])
    }

    func testDeadlineSendsOnErrorActionsAndClosesTheCoroutine() throws {
        let h = try Harness("""
            local closed = 0
            spoa.register_message("slow", function(txn, msg)
              txn:set_var("txn.lost", 1)
              local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
              spoa.sleep(1000)
              txn:set_var("txn.never", 1)
            end, { deadline_ms = 100, on_error = { ["txn.failed"] = true } })
            spoa.register_message("closed", function(txn) txn:set_var("txn.closed", closed) end)
            """)
        let future = try answer(h.worker, [("slow", []), ("closed", [])])
        loop.advanceTime(by: .milliseconds(99))
        XCTAssertFalse(isDone(future))
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(try actions(future), [.setVar(.transaction, "failed", .bool(true)), .setVar(.transaction, "closed", .int64(1))])
        XCTAssertEqual(h.worker.deadlinesExceeded, 1)
        XCTAssertEqual(h.worker.handlerErrors, 1)
        XCTAssertTrue(h.worker.lastError?.contains("script.lua:5: deadline exceeded (100 ms") ?? false, h.worker.lastError ?? "")
        loop.advanceTime(by: .seconds(2))  // the abandoned sleep never resumes anything
        XCTAssertEqual(h.worker.waitingFrames, 0)
    }

    func testGlobalDeadlineAndErrorVariable() throws {
        var configuration = LuaConfiguration(scriptPath: try writeScript("""
            spoa.register_message("slow", function(txn) spoa.sleep(500) end)
            """), workerCount: 1)
        configuration.deadlineMilliseconds = 30
        configuration.errorVariable = "txn.lua_error"
        let worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: Logger(label: "test"))
        let future = try answer(worker, [("slow", [])])
        loop.advanceTime(by: .milliseconds(30))
        XCTAssertEqual(try actions(future), [.setVar(.transaction, "lua_error", .bool(true))])
        XCTAssertEqual(worker.deadlinesExceeded, 1)
    }

    func testCPUBudgetCountsAcrossResumes() throws {
        let h = try Harness("""
            spoa.register_message("spin", function(txn)
              spoa.sleep(10)
              while true do end
            end, { timeout_ms = 30, deadline_ms = 3600000, on_error = { ["txn.timeout"] = true } })
            """)
        let future = try answer(h.worker, [("spin", [])])
        loop.advanceTime(by: .milliseconds(10))  // resumes here and spins until its budget is used
        XCTAssertEqual(try actions(future), [.setVar(.transaction, "timeout", .bool(true))])
        XCTAssertEqual(h.worker.handlerTimeouts, 1)
        XCTAssertTrue(h.worker.lastError?.contains("execution timeout (30 ms)") ?? false, h.worker.lastError ?? "")
    }

    func testPcallAroundSleepAndFailedWaits() throws {
        let h = try Harness("""
            spoa.register_message("p", function(txn)
              local ok, err = pcall(function() spoa.sleep(5); error("after the wait") end)
              txn:set_var("txn.ok", ok)
              txn:set_var("txn.err", err)
              local ok2, err2 = pcall(spoa.sleep, -1)
              txn:set_var("txn.bad", err2)
            end)
            """)
        let future = try answer(h.worker, [("p", [])])
        loop.advanceTime(by: .milliseconds(5))
        let found = try actions(future)
        XCTAssertEqual(found.count, 3)
        XCTAssertEqual(found.first, .setVar(.transaction, "ok", .bool(false)))
        XCTAssertTrue("\(found[1])".contains("script.lua:2: after the wait"), "\(found[1])")
        XCTAssertTrue("\(found[2])".contains("spoa.sleep: milliseconds must be from 0 to 3600000"), "\(found[2])")
    }

    func testWaitingWhereItCannot() throws {
        XCTAssertThrowsError(try Harness("spoa.sleep(1)")) { error in
            XCTAssertTrue("\(error)".contains("script.lua:1: spoa.sleep: cannot wait while the script loads"), "\(error)")
        }
        let h = try Harness("""
            spoa.register_message("m", function(txn)
              local t = setmetatable({}, { __index = function(_, k) spoa.yield() return k end })
              txn:set_var("txn.meta", t.x)  -- Lua 5.4 waits inside metamethods called from Lua
              local co = coroutine.wrap(function() spoa.sleep(1) end)
              ok, err = pcall(co)
              txn:set_var("txn.co", err)
              ok, err = pcall(table.sort, {3, 2, 1}, function(a, b) spoa.yield() return a < b end)
              txn:set_var("txn.sort", err)
            end)
            """)
        let future = try answer(h.worker, [("m", [])])
        loop.run()
        let found = try actions(future)
        XCTAssertEqual(found.count, 3)
        let texts = found.map { "\($0)" }
        XCTAssertEqual(found.first, .setVar(.transaction, "meta", .string("x")))
        XCTAssertTrue(texts[1].contains("script.lua:4: spoa.sleep: cannot wait inside a coroutine the script made"), texts[1])
        XCTAssertTrue(texts[2].contains("spoa.yield: cannot wait inside a function called from C"), texts[2])
    }

    func testConnectionClosedWhileSleeping() throws {
        let h = try Harness("""
            closed = 0
            spoa.register_message("slow", function(txn)
              local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
              spoa.sleep(100)
              txn:set_var("txn.never", 1)
            end)
            spoa.register_message("closed", function(txn) txn:set_var("txn.closed", closed) end)
            """)
        let host = CancellingHost(eventLoop: loop)
        var ack = AckWriter(streamID: 7, frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer(), host: host)
        h.worker.handle(try notify([("slow", [])]), connection: SpoaConnectionInfo(), ack: &ack)
        let pending = try XCTUnwrap(host.pending)
        pending.cancel()
        XCTAssertEqual(h.worker.waitingFrames, 0)
        loop.advanceTime(by: .milliseconds(200))
        XCTAssertNil(host.completed, "nothing is written for a closed connection")
        XCTAssertEqual(try actions(try answer(h.worker, [("closed", [])])), [.setVar(.transaction, "closed", .int64(1))])
    }

    /// A frame decoded in the burst that saw its connection close is suspended on a
    /// cancelled PendingAck: its call is closed at once and never resumed.
    func testSuspendedOnAClosedConnection() throws {
        let h = try Harness("""
            spoa.register_message("slow", function(txn)
              local guard <close> = setmetatable({}, { __close = function() pcall(txn.set_var, txn, "txn.closing", 1) end })
              spoa.sleep(1)
              txn:set_var("txn.x", 1)
            end)
            """)
        let host = CancellingHost(eventLoop: loop)
        host.cancelAtOnce = true
        for _ in 0..<100 {
            var ack = AckWriter(streamID: 7, frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer(), host: host)
            h.worker.handle(try notify([("slow", [])]), connection: SpoaConnectionInfo(), ack: &ack)
        }
        XCTAssertEqual(h.worker.waitingFrames, 0)
        loop.advanceTime(by: .milliseconds(10))
        XCTAssertNil(host.completed)
        XCTAssertEqual(h.worker.handlerErrors, 0, h.worker.lastError ?? "")
        let future = try answer(h.worker, [("slow", [])])
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(try actions(future), [.setVar(.transaction, "x", .int64(1)), .setVar(.transaction, "closing", .int64(1))])
    }

    /// Two frames whose sleeps end in the same loop turn; the first one's ACK closes
    /// the connection (a write error), which cancels the second: it is not resumed.
    func testCancelledByAFrameEndingInTheSameTurn() throws {
        let h = try Harness("""
            spoa.register_message("slow", function(txn) spoa.sleep(1) txn:set_var("txn.x", 1) end,
              { deadline_ms = 2 })
            """)
        let host = CancellingHost(eventLoop: loop)
        var all: [PendingAck] = []
        host.onSuspended = { all.append($0) }
        host.onCompleted = { for pending in all { pending.cancel() } }
        for id in 1...3 {
            var ack = AckWriter(streamID: UInt64(id), frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer(), host: host)
            h.worker.handle(try notify([("slow", [])], streamID: UInt64(id)), connection: SpoaConnectionInfo(), ack: &ack)
        }
        loop.advanceTime(by: .milliseconds(5))
        XCTAssertNotNil(host.completed)
        XCTAssertEqual(h.worker.waitingFrames, 0)
        XCTAssertEqual(h.worker.handlerErrors, 0, h.worker.lastError ?? "")
        XCTAssertEqual(h.worker.deadlinesExceeded, 0)
    }

    func testReloadLetsWaitingHandlersFinishOnTheirGeneration() throws {
        let script = try writeScript("""
            spoa.register_message("gen", function(txn, msg)
              if msg.args.ms > 0 then spoa.sleep(msg.args.ms) end
              txn:set_var("txn.gen", spoa.generation)
            end)
            """)
        let configuration = LuaConfiguration(scriptPath: script, workerCount: 1)
        let worker = try LuaWorker(configuration: configuration, workerIndex: 1, logger: Logger(label: "test"))
        let waiting = try answer(worker, [("gen", [("ms", .int32(50))])])
        weak let old = worker.state
        worker.install(try LuaWorker.prepare(configuration, workerIndex: 1, generation: 1, logger: Logger(label: "test")))
        XCTAssertNotNil(old, "the old generation stays open while a handler waits on it")
        XCTAssertEqual(try actions(try answer(worker, [("gen", [("ms", .int32(0))])])), [.setVar(.transaction, "gen", .int64(1))])
        loop.advanceTime(by: .milliseconds(50))
        XCTAssertEqual(try actions(waiting), [.setVar(.transaction, "gen", .int64(0))])
        XCTAssertNil(old, "the old generation closes after its last waiting handler")
    }

    func testToolsWaitInline() throws {
        let h = try Harness("""
            spoa.register_message("slow", function(txn)
              local before = spoa.mono_ms()
              spoa.sleep(20)
              spoa.yield()
              txn:set_var("txn.slept", spoa.mono_ms() - before >= 20)
            end)
            """)
        let trip = try h.worker.roundTrip([("slow", [])])
        XCTAssertEqual(trip.actions, [.setVar(.transaction, "slept", .bool(true))])
    }

    func testTasksMayWait() throws {
        let script = try writeScript("""
            local d = spoa.shared.declare("waits", { max_items = 10 })
            spoa.register_task(function()
              d:set("a", 1)
              spoa.sleep(10)
              spoa.yield()
              d:set("b", 2)
            end)
            """)
        let tasks = try BackgroundTasks(scriptPath: script, workerCount: 1, logger: Logger(label: "test"))
        tasks.start()
        defer { tasks.stop() }
        XCTAssertTrue(tasks.waitForRuns(1, timeout: 30))
        XCTAssertEqual(tasks.failures, 0)
    }
}

/// A connection stand-in whose pending frames the test cancels.
final class CancellingHost: PendingAckHost {
    let eventLoop: any EventLoop
    var pending: PendingAck?
    var completed: ByteBuffer?
    /// The connection closes in the burst that suspends the frame.
    var cancelAtOnce = false
    var onSuspended: (PendingAck) -> Void = { _ in }
    var onCompleted: () -> Void = {}

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func suspended(_ pending: PendingAck) {
        self.pending = pending
        onSuspended(pending)
        if cancelAtOnce { pending.cancel() }
    }

    func completed(_ pending: PendingAck, frame: ByteBuffer) {
        completed = frame
        onCompleted()
    }
}
