import Foundation
@testable import LuaRuntime
@testable import SpopEngine
import XCTest

/// spoa.redis against a real redis-server started by the test, through the
/// waiting-handler machinery on a real event loop.
final class RedisClientTests: XCTestCase {
    /// A worker whose message "cmd" runs r:call(words...) (args w1, w2, ...) or,
    /// with arg eval, r:eval(eval, { k }, { a }), and reports the reply as txn.*.
    func harness(port: Int, options: String = "") throws -> LoopHarness {
        try LoopHarness("""
            local r = spoa.redis.new{ port = \(port), timeout = 2000 \(options) }
            local function show(v)
              if type(v) ~= "table" then return tostring(v) end
              local parts = {}
              for i = 1, #v do parts[i] = show(v[i]) end
              return "[" .. table.concat(parts, ",") .. "]"
            end
            spoa.register_message("cmd", function(txn, msg)
              local a = msg.args
              local reply, err
              if a.eval then
                reply, err = r:eval(a.eval, { a.k }, { a.a })
              else
                local words = {}
                for i = 1, 9 do words[i] = a["w" .. i] end
                reply, err = r:call(table.unpack(words))
              end
              txn:set_var("txn.type", type(reply))
              txn:set_var("txn.reply", show(reply))
              if err then txn:set_var("txn.err", err) end
            end, { deadline_ms = 30000 })
            """)
    }

    func call(_ h: LoopHarness, _ words: String...) throws -> [String: SpopValue] {
        try h.vars("cmd", words.enumerated().map { ("w\($0.offset + 1)", .string($0.element)) })
    }

    func frame(_ words: String...) -> TestMessage {
        ("cmd", words.enumerated().map { ("w\($0.offset + 1)", SpopValue.string($0.element)) })
    }

    func testRepliesMapToLua() throws {
        let redis = try RedisServer()
        try redis.start()
        let h = try harness(port: redis.port)
        XCTAssertEqual(try call(h, "INCR", "n")["txn.reply"]?.text, "1")
        XCTAssertEqual(try call(h, "INCR", "n")["txn.type"]?.text, "number")
        let set = try call(h, "SET", "k", "v", "EX", "60")
        XCTAssertEqual(set["txn.reply"]?.text, "OK", "a status reply is its string")
        XCTAssertEqual(try call(h, "GET", "k")["txn.reply"]?.text, "v")
        let missing = try call(h, "GET", "nothing")
        XCTAssertEqual(missing["txn.type"]?.text, "nil")
        XCTAssertNil(missing["txn.err"], "a nil reply is not an error")
        XCTAssertEqual(try call(h, "MGET", "k", "nothing", "n")["txn.reply"]?.text, "[v,false,2]",
                       "nil inside an array is false")
        XCTAssertEqual(try call(h, "RPUSH", "l", "a", "b")["txn.reply"]?.text, "2")
        XCTAssertEqual(try call(h, "LRANGE", "l", "0", "-1")["txn.reply"]?.text, "[a,b]")
        let error = try call(h, "INCR", "k")
        XCTAssertEqual(error["txn.type"]?.text, "nil")
        XCTAssertEqual(error["txn.err"]?.text, "ERR value is not an integer or out of range")
        XCTAssertEqual(try call(h, "NOSUCHCOMMAND")["txn.err"]?.text?.hasPrefix("ERR unknown command"), true)
        let eval = try h.vars("cmd", [
            ("eval", .string("redis.call('SET', KEYS[1], ARGV[1]); return { redis.call('GET', KEYS[1]), 7, { 'x' } }")),
            ("k", .string("ek")), ("a", .string("av")),
        ])
        XCTAssertEqual(eval["txn.reply"]?.text, "[av,7,[x]]")
        XCTAssertEqual(try h.vars("cmd", [("eval", .string("return redis.error_reply('nope')"))])["txn.err"]?.text, "ERR nope")
    }

    func testDatabaseIsSelected() throws {
        let redis = try RedisServer()
        try redis.start()
        let db3 = try harness(port: redis.port, options: ", db = 3")
        XCTAssertEqual(try call(db3, "SET", "only3", "x")["txn.reply"]?.text, "OK")
        XCTAssertEqual(try call(db3, "GET", "only3")["txn.reply"]?.text, "x")
        let db0 = try harness(port: redis.port)
        XCTAssertEqual(try call(db0, "GET", "only3")["txn.type"]?.text, "nil")
    }

    func testRedisDownThenBackAgain() throws {
        let redis = try RedisServer()
        // The script loads although nothing listens: new() does not connect.
        let h = try harness(port: redis.port)
        XCTAssertEqual(try call(h, "INCR", "n")["txn.err"]?.text, "connection refused")
        // Meanwhile calls fail at once, without a connect attempt each.
        XCTAssertEqual(try call(h, "INCR", "n")["txn.err"]?.text, "connection refused (backing off 100 ms)")
        try redis.start()
        XCTAssertEqual(try untilAnswered(h)["txn.reply"]?.text, "1")
        redis.stop()
        let closed = try call(h, "INCR", "n")["txn.err"]?.text
        XCTAssertTrue(closed == "connection closed" || closed == "connection refused", "\(closed ?? "nil")")
        try redis.start()
        XCTAssertEqual(try untilAnswered(h)["txn.reply"]?.text, "1", "a new server, empty")
    }

    func untilAnswered(_ h: LoopHarness) throws -> [String: SpopValue] {
        try afterBackoff { try call(h, "INCR", "n") }
    }

    func testDownTargetIsTriedOncePerBackoffDelay() throws {
        let redis = try RedisServer()
        let h = try harness(port: redis.port)
        try assertBacksOff(50) { try call(h, "INCR", "n")["txn.err"]?.text }
        try redis.start()
        XCTAssertEqual(try untilAnswered(h)["txn.reply"]?.text, "1")
    }

    func testStoppedWorkerClosesItsConnections() throws {
        let redis = try RedisServer()
        try redis.start()
        let h = try harness(port: redis.port, options: ", pool = 3")
        let observer = try harness(port: redis.port)
        // 3 x 8 concurrent calls open the 3 connections of the pool.
        XCTAssertEqual(try h.run(Array(repeating: frame("INCR", "s"), count: 24)).count, 24)
        func clients() throws -> Int {
            try call(observer, "CLIENT", "LIST")["txn.reply"]?.text?.split(separator: "\n").count ?? -1
        }
        XCTAssertEqual(try clients(), 4, "the pool's 3 and the observer's")
        let target = "127.0.0.1:\(redis.port)"
        XCTAssertEqual(UpstreamConnections.count("redis", target, .idle) + UpstreamConnections.count("redis", target, .busy), 4)
        h.stop()
        let deadline = Date(timeIntervalSinceNow: 10)
        while try clients() > 1, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        XCTAssertEqual(try clients(), 1, "redis saw the stopped worker's 3 connections close")
        XCTAssertEqual(UpstreamConnections.count("redis", target, .idle), 1, "the observer's")
        XCTAssertEqual(UpstreamConnections.count("redis", target, .busy), 0)
        // A call after the stop (none should come) opens a connection again.
        XCTAssertEqual(try call(h, "INCR", "s")["txn.reply"]?.text, "25")
    }

    func testTimeoutThenTheConnectionGoesOn() throws {
        let redis = try RedisServer()
        try redis.start()
        let h = try LoopHarness("""
            local r = spoa.redis.new{ port = \(redis.port), timeout = 100 }
            spoa.register_message("m", function(txn, msg)
              r:call("CLIENT", "PAUSE", "600", "ALL")
              local v, err = r:call("INCR", "t")
              txn:set_var("txn.err", err)
            end, { deadline_ms = 30000 })
            spoa.register_message("after", function(txn, msg)
              txn:set_var("txn.v", (r:call("INCR", "t")))
            end, { deadline_ms = 30000 })
            """)
        XCTAssertEqual(try h.vars("m")["txn.err"]?.text, "timeout")
        Thread.sleep(forTimeInterval: 0.7)
        // The late reply of the timed-out call is dropped, not given to the next one.
        XCTAssertEqual(try h.vars("after")["txn.v"], .int64(2))
    }

    func testConcurrentHandlersArePipelinedOnOneConnection() throws {
        let redis = try RedisServer()
        try redis.start()
        let h = try harness(port: redis.port)
        let acks = try h.run(Array(repeating: frame("INCR", "p"), count: 64))
        let values = Set(acks.compactMap { $0["txn.reply"]?.text.flatMap { Int($0) } })
        XCTAssertEqual(values, Set(1...64), "every call got its own reply")
        let clients = try call(h, "CLIENT", "LIST")["txn.reply"]?.text ?? ""
        XCTAssertEqual(clients.split(separator: "\n").count, 1, "pool = 1: one connection for 64 concurrent calls")
    }

    func testMisuseRaises() throws {
        XCTAssertThrowsError(try Harness("""
            local r = spoa.redis.new{ port = 1 }
            r:call("PING")
            """)) { error in
            XCTAssertTrue("\(error)".contains("redis:call: cannot wait while the script loads"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.redis.new{ prot = 1 }")) { error in
            XCTAssertTrue("\(error)".contains("prot"), "\(error)")
        }
        let h = try LoopHarness("""
            local r = spoa.redis.new{ port = 1 }
            spoa.register_message("m", function(txn) r:call({}) end)
            """)
        _ = try h.vars("m")
        XCTAssertTrue(h.harness.errorLogs.contains { $0.message.contains("redis:call: argument 1 must be a string or a number, not table") },
                      "\(h.harness.errorLogs)")
    }
}
