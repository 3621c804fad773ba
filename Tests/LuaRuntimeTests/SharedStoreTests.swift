import Foundation
import LuaRuntime
import XCTest

/// The C store behind spoa.shared, driven from Swift without any Lua state.
final class SharedStoreTests: XCTestCase {
    override func tearDown() {
        LuaClock.useSystemClock()
        super.tearDown()
    }

    func testDeclareReturnsTheSameDictAndRejectsOtherOptions() throws {
        let a = try SharedDictionary.declare("store_declare", maxItems: 10)
        let b = try SharedDictionary.declare("store_declare", maxItems: 10)
        try a.store("k", .string("v"))
        XCTAssertEqual(b.get("k"), .string("v"))
        XCTAssertThrowsError(try SharedDictionary.declare("store_declare", maxItems: 11)) { error in
            XCTAssertEqual(error as? SharedDictionary.Failure, .conflict(existingMaxItems: 10))
        }
        XCTAssertNil(SharedDictionary.named("store_never_declared"))
    }

    func testValuesOfEveryType() throws {
        let d = try SharedDictionary.declare("store_types", maxItems: 10)
        let values: [SharedValue] = [.bool(false), .int(-7), .double(0.25), .string(""), .string("bytes\u{0}inside")]
        for (i, v) in values.enumerated() { try d.store("k\(i)", v) }
        for (i, v) in values.enumerated() { XCTAssertEqual(d.get("k\(i)"), v) }
        try d.store("k0", nil)
        XCTAssertNil(d.get("k0"))
        XCTAssertEqual(d.count, values.count - 1)
    }

    /// A sharded dict (16 shards above 4096 items) never holds more than its
    /// capacity, and `set` keeps succeeding by evicting.
    func testShardedDictStaysWithinCapacityUnderPressure() throws {
        let d = try SharedDictionary.declare("store_pressure", maxItems: 8195)
        var evictions = 0
        for i in 0..<20_000 where try d.store("key-\(i)", .int(Int64(i))) { evictions += 1 }
        XCTAssertLessThanOrEqual(d.count, 8195, "the shards' shares add up to max_items exactly")
        XCTAssertGreaterThan(d.count, 8195 - 16, "each shard fills up to its share")
        XCTAssertEqual(evictions, 20_000 - d.count)
        XCTAssertEqual(d.get("key-19999"), .int(19999), "the most recent key survives")
        XCTAssertThrowsError(try d.store("brand-new", .int(1), mode: .safeAdd)) { error in
            XCTAssertEqual(error as? SharedDictionary.Failure, .noMemory)
        }
    }

    func testConcurrentIncrementsFromFourThreadsAreExact() throws {
        let d = try SharedDictionary.declare("store_concurrent", maxItems: 100_000)
        let perThread = 20_000
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<perThread {
                _ = try? d.incr("total", by: 1, initial: 0)
                _ = try? d.incr("t\(t)-\(i % 100)", by: 2, initial: 0)
            }
        }
        XCTAssertEqual(d.get("total"), .int(Int64(4 * perThread)))
        XCTAssertEqual(d.get("t3-99"), .int(Int64(2 * perThread / 100)))
    }

    func testTTLAndIncrInitialTTLFollowTheClock() throws {
        LuaClock.freeze(atMilliseconds: 5_000_000)
        let d = try SharedDictionary.declare("store_ttl", maxItems: 10)
        XCTAssertEqual(try d.incr("window", by: 1, initial: 0, initialTTL: 2), 1)
        XCTAssertEqual(try d.incr("window", by: 1, initial: 0, initialTTL: 2), 2, "init applies only to a missing key")
        XCTAssertEqual(d.ttl("window"), 2)
        LuaClock.advance(milliseconds: 1_999)
        XCTAssertEqual(d.ttl("window"), 0.001)
        LuaClock.advance(milliseconds: 1)
        XCTAssertNil(d.get("window"))
        XCTAssertEqual(try d.incr("window", by: 1, initial: 0, initialTTL: 2), 1, "an expired counter starts again")
        XCTAssertThrowsError(try d.incr("absent", by: 1)) { error in
            XCTAssertEqual(error as? SharedDictionary.Failure, .notFound)
        }
    }
}
