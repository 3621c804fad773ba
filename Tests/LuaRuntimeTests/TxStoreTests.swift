import LuaRuntime
import SpopEngine
import XCTest

/// spoa.txstore: a request event stores, the response event (another worker) reads.
final class TxStoreTests: XCTestCase {
    override func tearDown() {
        LuaClock.useSystemClock()
        super.tearDown()
    }

    static let script = """
        spoa.register_message("req", function(txn, msg)
          local ok = spoa.txstore.set(msg.args.id, { path = msg.args.path, n = 7, f = 0.5, yes = true, [1] = "first" }, msg.args.ttl)
          txn:set_var("txn.stored", ok)
        end)
        spoa.register_message("res", function(txn, msg)
          local r = spoa.txstore.take(msg.args.id)
          if not r then txn:set_var("txn.found", false) return end
          txn:set_var("txn.found", true)
          txn:set_var("txn.path", r.path)
          txn:set_var("txn.n", r.n)
          txn:set_var("txn.f", tostring(r.f))
          txn:set_var("txn.yes", r.yes)
          txn:set_var("txn.first", r[1])
          txn:set_var("txn.again", spoa.txstore.get(msg.args.id) ~= nil)
        end)
        spoa.register_message("scalar", function(txn, msg)
          spoa.txstore.set("s:" .. msg.args.id, msg.args.id .. "!")
          spoa.txstore.set("i:" .. msg.args.id, -3)
          txn:set_var("txn.s", spoa.txstore.get("s:" .. msg.args.id))
          txn:set_var("txn.i", spoa.txstore.get("i:" .. msg.args.id))
          spoa.txstore.delete("s:" .. msg.args.id)
          txn:set_var("txn.gone", spoa.txstore.get("s:" .. msg.args.id) == nil)
        end)
        spoa.register_message("bad", function(txn, msg)
          local what = msg.args.what
          if what == "nested" then spoa.txstore.set("k", { { 1 } })
          elseif what == "function" then spoa.txstore.set("k", print)
          elseif what == "key" then spoa.txstore.set("", 1)
          else spoa.txstore.set("k", 1, -1) end
        end)
        """

    func testRequestStoresAndResponseOnAnotherWorkerTakes() throws {
        let request = try Harness(Self.script, workerIndex: 1)
        let response = try Harness(Self.script, workerIndex: 2)
        let id = "u-\(UUID().uuidString)"
        XCTAssertEqual(try request.vars("req", [("id", .string(id)), ("path", .string("/login"))])["txn.stored"], .bool(true))
        let got = try response.vars("res", [("id", .string(id))])
        XCTAssertEqual(got["txn.found"], .bool(true))
        XCTAssertEqual(got["txn.path"], .string("/login"))
        XCTAssertEqual(got["txn.n"], .int64(7))
        XCTAssertEqual(got["txn.f"], .string("0.5"))
        XCTAssertEqual(got["txn.yes"], .bool(true))
        XCTAssertEqual(got["txn.first"], .string("first"))
        XCTAssertEqual(got["txn.again"], .bool(false), "take removes the entry")
        XCTAssertEqual(try response.vars("res", [("id", .string(id))])["txn.found"], .bool(false))
    }

    func testScalarsRoundTripAndDelete() throws {
        let h = try Harness(Self.script)
        let got = try h.vars("scalar", [("id", .string("x\(UUID().uuidString)"))])
        XCTAssertEqual(got["txn.i"], .int64(-3))
        XCTAssertTrue(got["txn.s"].map { "\($0)".contains("!") } ?? false, "\(got)")
        XCTAssertEqual(got["txn.gone"], .bool(true))
    }

    func testEntriesExpireAfterTheirTTL() throws {
        LuaClock.freeze(atMilliseconds: 1_000_000)
        let h = try Harness(Self.script)
        let id = "ttl-\(UUID().uuidString)"
        _ = try h.vars("req", [("id", .string(id)), ("path", .string("/")), ("ttl", .int32(2))])
        LuaClock.advance(milliseconds: 1_999)
        XCTAssertEqual(try h.vars("res", [("id", .string(id))])["txn.found"], .bool(true))
        _ = try h.vars("req", [("id", .string(id)), ("path", .string("/")), ("ttl", .int32(2))])
        LuaClock.advance(milliseconds: 2_001)
        XCTAssertEqual(try h.vars("res", [("id", .string(id))])["txn.found"], .bool(false))
    }

    func testUnstorableValuesAreRefusedWithTheReason() throws {
        let h = try Harness(Self.script)
        for (what, expected) in [("nested", "nested tables are not stored"), ("function", "the value is a function"),
                                 ("key", "the key must be 1 to"), ("ttl", "ttl must be seconds > 0")] {
            _ = try h.vars("bad", [("what", .string(what))])
            let error = h.errorLogs.last?.message ?? ""
            XCTAssertTrue(error.contains(expected), "\(what): \(error)")
        }
    }

    func testAnEntryLargerThanItsShareOfMaxBytesIsRefusedAsTooLarge() throws {
        let h = try Harness("""
            spoa.register_message("big", function(txn)
              local ok, err = spoa.txstore.set("big", string.rep("x", 5 * 1024 * 1024))
              txn:set_var("txn.r", tostring(ok) .. "," .. tostring(err))
            end)
            """)
        XCTAssertEqual(try h.vars("big")["txn.r"]?.text, "false,too large")
    }
}
