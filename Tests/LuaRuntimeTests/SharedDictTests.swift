import Foundation
import Logging
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.shared from Lua: one store seen by every state, TTLs, LRU, errors.
final class SharedDictTests: XCTestCase {
    override func tearDown() {
        LuaClock.useSystemClock()
        super.tearDown()
    }

    /// A unique dict name per test: dicts are process-wide.
    private var dict: String { "t_" + name.filter { $0.isLetter || $0.isNumber } }

    /// A worker whose "run" message executes `body` (with `d` the test's dict)
    /// and reports `txn.r` as a string.
    private func worker(_ body: String, maxItems: Int = 100, index: Int = 1, options: String = "nil") throws -> Harness {
        try Harness("""
            local d = spoa.shared.declare("\(dict)", { max_items = \(maxItems) })
            local function show(...)
              local out = {}
              for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
              return table.concat(out, ",")
            end
            spoa.register_message("run", function(txn, msg)
              local arg = msg.args.arg
              txn:set_var("txn.r", show((function() \(body) end)()))
            end, \(options))
            """, workerIndex: index)
    }

    private func run(_ h: Harness, _ arg: String = "", file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        try h.result(arg, file: file, line: line)
    }

    func testValuesCrossStatesByCopyWithTheirTypes() throws {
        let writer = try worker("""
            d:set("b", true); d:set("i", 42); d:set("f", 1.5); d:set("s", "x\\0y")
            return true
            """, index: 1)
        let reader = try worker("""
            local s = d:get("s")
            return math.type(d:get("i")), math.type(d:get("f")), d:get("b"), #s, d:get("missing")
            """, index: 2)
        XCTAssertEqual(try run(writer), "true")
        XCTAssertEqual(try run(reader), "integer,float,true,3,nil")
    }

    func testTablesAndFunctionsAreRejected() throws {
        let h = try worker("return d:set('k', {})")
        XCTAssertNil(try run(h))
        XCTAssertTrue(h.errorLogs.contains { $0.message.contains("bad value: table cannot be stored") }, "\(h.errorLogs.map(\.message))")
        let keys = try worker("return d:get({})")
        XCTAssertNil(try run(keys))
        XCTAssertTrue(keys.errorLogs.contains { $0.message.contains("bad key: expected a string, got table") })
    }

    func testAddressKeysUseTheirCompactKey() throws {
        let h = try worker("""
            d:set(spoa.addr("192.0.2.1"), "v4"); d:set(spoa.addr("2001:db8::1"), "v6")
            local lens = {}
            for _, k in ipairs(d:get_keys(0)) do lens[#lens + 1] = #k end
            table.sort(lens)
            return d:get(spoa.addr("192.0.2.1")), d:get(spoa.addr("2001:db8::1")), d:get("192.0.2.1"), table.concat(lens, "+")
            """)
        XCTAssertEqual(try run(h), "v4,v6,nil,4+16", "keys are the 4 or 16 address bytes, not the text")
    }

    func testAddReplaceDeleteAndSetNil() throws {
        let h = try worker("""
            local r = {}
            r[#r+1] = show(d:add("k", 1))
            r[#r+1] = show(d:add("k", 2))
            r[#r+1] = show(d:replace("k", 3))
            r[#r+1] = show(d:replace("nope", 3))
            r[#r+1] = show(d:safe_add("k", 4))
            r[#r+1] = show(d:get("k"))
            d:set("k", nil)
            r[#r+1] = show(d:get("k"))
            d:set("k2", 1); d:delete("k2")
            r[#r+1] = show(d:get("k2"), d:count())
            return table.concat(r, "|")
            """)
        XCTAssertEqual(try run(h), "true,nil,false|false,exists,false|true,nil,false|false,not found,false|false,exists|3|nil|nil,0")
    }

    func testIncrWithInitAndErrors() throws {
        let h = try worker("""
            d:set("s", "text")
            return show(d:incr("n", 1)) .. "|" .. show(d:incr("n", 5, 10)) .. "|" .. show(d:incr("n", 1, 99))
              .. "|" .. show(d:incr("n", 0.5)) .. "|" .. show(d:incr("s", 1))
            """)
        XCTAssertEqual(try run(h), "nil,not found,false|15,nil,false|16,nil,false|16.5,nil,false|nil,not a number,false")
    }

    func testTTLExpiresOnTheControlledClock() throws {
        LuaClock.freeze(atMilliseconds: 1_700_000_000_000)
        let h = try worker("""
            if arg == "set" then
              d:set("a", "v", 1.5); d:incr("c", 1, 0, 0.01); d:set("forever", 1)
              return d:ttl("a"), d:ttl("forever")
            end
            return d:get("a"), d:ttl("a"), d:get("c"), show(d:get_stale("a")), d:ttl("forever")
            """)
        XCTAssertEqual(try run(h, "set"), "1.5,0.0")
        LuaClock.advance(milliseconds: 10)
        XCTAssertEqual(try run(h), "v,1.49,nil,v,false,0.0", "10 ms: the 0.01 s counter has expired")
        LuaClock.advance(milliseconds: 1489)
        XCTAssertEqual(try run(h), "v,0.001,nil,v,false,0.0")
        LuaClock.advance(milliseconds: 1)
        XCTAssertEqual(try run(h), "nil,nil,nil,v,true,0.0", "expired, still readable with get_stale")
        let flush = try worker("return d:count(), d:flush_expired(), d:count()")
        XCTAssertEqual(try run(flush), "3,2,1")
    }

    func testLRUEvictionAndSafeWrites() throws {
        let h = try worker("""
            d:set("a", 1); d:set("b", 2); d:set("c", 3)
            d:get("a")                                  -- a is now the most recent
            local r = show(d:set("d", 4))               -- evicts b, the least recent
            r = r .. "|" .. show(d:get("a"), d:get("b"), d:get("c"), d:get("d"))
            r = r .. "|" .. show(d:safe_set("e", 5)) .. "|" .. show(d:safe_add("e", 5))
            r = r .. "|" .. show(d:safe_set("a", 10))   -- an existing key needs no room
            return r .. "|" .. show(d:count(), d:capacity())
            """, maxItems: 3)
        XCTAssertEqual(try run(h), "true,nil,true|1,nil,3,4|false,no memory|false,no memory|true,nil|3,3")
    }

    func testMaxBytesEvictsByBytesAndRefusesAnItemLargerThanIt() throws {
        let h = try Harness("""
            local d = spoa.shared.declare("\(dict)", { max_items = 100, max_bytes = 100 })
            local function show(...)
              local out = {}
              for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
              return table.concat(out, ",")
            end
            spoa.register_message("run", function(txn)
            local r = show(d:set("a", string.rep("x", 39)))      -- 40 bytes
            r = r .. "|" .. show(d:set("b", string.rep("x", 39))) -- 80
            d:get("a")                                            -- b is now the least recent
            r = r .. "|" .. show(d:set("c", string.rep("x", 39))) -- 120 > 100: evicts b
            r = r .. "|" .. show(d:get("a") ~= nil, d:get("b"), d:get("c") ~= nil, d:bytes())
            r = r .. "|" .. show(d:set("big", string.rep("x", 98)))   -- 101 bytes alone
            r = r .. "|" .. show(d:safe_set("c", string.rep("x", 59)))  -- 60 + 40 fits, no eviction
            r = r .. "|" .. show(d:safe_set("c", string.rep("x", 60)))  -- 61 + 40 does not
            d:set("c", nil)
            txn:set_var("txn.r", r .. "|" .. show(d:count(), d:bytes()))
            end)
            """)
        XCTAssertEqual(try run(h), "true,nil,false|true,nil,false|true,nil,true|true,nil,true,80,100"
                       + "|false,too large: this dict stores at most 100 bytes per item (key + value, max_bytes),false"
                       + "|true,nil|false,no memory|1,40,100")
        XCTAssertThrowsError(try Harness("spoa.shared.declare('\(dict)', { max_items = 100, max_bytes = 5 })")) { error in
            XCTAssertTrue("\(error)".contains("dict '\(dict)' already declared with max_bytes = 100 (this call asks for 5)"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.shared.declare('x_bytes', { max_bytes = 0 })")) { error in
            XCTAssertTrue("\(error)".contains("max_bytes must be an integer >= 1"), "\(error)")
        }
    }

    func testTheDefaultByteLimitBoundsWhatADictHolds() throws {
        let d = try SharedDictionary.declare("store_bytes_default", maxItems: 1000)
        XCTAssertEqual(d.maxBytes, 64 << 20)
        let megabyte = String(repeating: "v", count: 1 << 20)
        for i in 0..<100 { try d.store("k\(i)", .string(megabyte)) }
        XCTAssertLessThanOrEqual(d.bytes, 64 << 20)
        XCTAssertEqual(d.count, 63, "64 MiB hold 63 items of 1 MiB + key")
        XCTAssertThrowsError(try d.store("huge", .string(String(repeating: "v", count: 64 << 20)))) { error in
            XCTAssertEqual(error as? SharedDictionary.Failure, .tooLarge)
        }
        XCTAssertNil(d.get("huge"))
    }

    func testGetKeysAndFlushAll() throws {
        let h = try worker("""
            for i = 1, 5 do d:set("k" .. i, i) end
            local keys = d:get_keys(0)
            table.sort(keys)
            local two = #d:get_keys(2)
            d:flush_all()
            return table.concat(keys, " "), two, d:count()
            """)
        XCTAssertEqual(try run(h), "k1 k2 k3 k4 k5,2,0")
    }

    func testDeclareIsIdempotentAndChecksOptions() throws {
        let a = try worker("return tostring(spoa.shared[\"\(dict)\"]) == tostring(d)")
        XCTAssertEqual(try run(a), "true")
        XCTAssertThrowsError(try worker("return 1", maxItems: 7)) { error in
            XCTAssertTrue("\(error)".contains("dict '\(dict)' already declared with max_items = 100 (this call asks for 7)"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.shared.declare('x_opts', { size = 1 })")) { error in
            XCTAssertTrue("\(error)".contains("unknown option 'size' (supported: max_items, max_bytes)"), "\(error)")
        }
        let undeclared = try worker("return spoa.shared.never_declared")
        XCTAssertNil(try run(undeclared))
        XCTAssertTrue(undeclared.errorLogs.contains { $0.message.contains("spoa.shared.never_declared is not declared") })
    }

    func testDeclareOnlyWhileLoadingOrInInit() throws {
        let h = try worker("return spoa.shared.declare('late')")
        XCTAssertNil(try run(h))
        XCTAssertTrue(h.errorLogs.contains {
            $0.message.contains("spoa.shared.declare is only available while the script loads or in an init function")
        })
        let initDeclared = try Harness("""
            spoa.register_init(function() spoa.shared.declare("\(dict)_init"):set("k", "from init") end)
            spoa.register_message("run", function(txn) txn:set_var("txn.r", spoa.shared["\(dict)_init"]:get("k")) end)
            """)
        XCTAssertEqual(try initDeclared.vars("run")["txn.r"]?.text, "from init")
    }

    /// Two workers on two threads hammer one counter: every increment counts.
    func testConcurrentIncrFromTwoThreadsIsExact() throws {
        // No time budget: on a loaded machine a cut handler would lose increments.
        nonisolated(unsafe) let workers = try (1...2).map {
            try worker("for i = 1, 50 do d:incr('hits', 1, 0) end return d:get('hits')", index: $0, options: "{ timeout_ms = 3600000 }")
        }
        let rounds = 200
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            for _ in 0..<rounds { _ = try? workers[index].result() }
        }
        let reader = try worker("return d:get('hits')", index: 3)
        XCTAssertEqual(try run(reader), "\(2 * rounds * 50)")
        XCTAssertTrue(workers.allSatisfy { $0.errorLogs.isEmpty }, "\(workers.flatMap(\.errorLogs).map(\.message).prefix(3))")
    }

    func testResetAllEmptiesEveryDictButKeepsHandles() throws {
        let h = try worker("if arg == 'set' then d:set('k', 1) end return d:get('k')")
        XCTAssertEqual(try run(h, "set"), "1")
        SharedDictionary.resetAll()
        XCTAssertEqual(try run(h), "nil")
    }
}

extension Harness {
    /// Sends a "run" message with `arg` and returns the handler's `txn.r` string.
    func result(_ arg: String = "", file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        try vars("run", [("arg", .string(ByteBuffer(string: arg)))], file: file, line: line)["txn.r"]?.text
    }
}
