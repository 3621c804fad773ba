import Foundation
@testable import LuaRuntime
import XCTest

/// luaspoa's string functions (luaspoa_strlib.c): the same results as Lua 5.4's,
/// and long calls cut at the time budget or refused by their size caps.
final class StringLibraryTests: XCTestCase {
    let logs = LogCapture()

    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/strlib")

    /// 13,000 find/match/gmatch/gsub calls (15 subjects x 70 patterns, errors
    /// included) give what stock Lua 5.4.4 gave (patterns.expected).
    func testPatternFunctionsMatchStockLua() throws {
        let cases = Self.fixtures.appendingPathComponent("patterns.lua").path
        let expected = Self.fixtures.appendingPathComponent("patterns.expected").path
        let worker = try makeWorker("""
            local function read(path) local f = assert(io.open(path, "rb")); local t = f:read("a"); f:close(); return t end
            local got = assert(load(read(\(luaString(cases))), "=patterns.lua"))()
            local identical = got == read(\(luaString(expected)))
            local want, lines, mismatches, first = {}, 0, 0, ""
            for line in read(\(luaString(expected))):gmatch("[^\\n]+") do want[#want + 1] = line end
            for line in got:gmatch("[^\\n]+") do
              lines = lines + 1
              if line ~= want[lines] then
                mismatches = mismatches + 1
                if first == "" then first = "got " .. line .. " want " .. tostring(want[lines]) end
              end
            end
            spoa.register_message("result", function()
              return { ["txn.lines"] = lines, ["txn.same"] = lines == #want, ["txn.mismatches"] = mismatches,
                       ["txn.first"] = first, ["txn.identical"] = identical }
            end)
            """, logs: logs)
        XCTAssertEqual(try setVars(worker, "result"),
                       ["txn.lines": .int64(13327), "txn.same": .bool(true), "txn.mismatches": .int64(0), "txn.first": .string(""),
                        "txn.identical": .bool(true)])
    }

    /// Calls that ran for seconds to minutes inside one C function fail at their
    /// budget (or their size cap) with file:line, and the ACK is sent.
    func testLongStringCallsEndAtTheBudgetOrTheirCap() throws {
        let worker = try makeWorker("""
            local big = string.rep("a", 16 * 2^20)
            spoa.register_message("trim", function()
              local s = "x" .. string.rep(" ", 16000) .. "x"
              return { ["txn.r"] = #s:match("^%s*(.-)%s*$") }
            end)
            spoa.register_message("cubic", function() return { ["txn.r"] = string.rep(" ", 4000):match("^%s*(.-)%s*x$") } end)
            spoa.register_message("find", function() return { ["txn.r"] = string.find(string.rep("a", 30000), ".-.-.-.-.-b") } end)
            spoa.register_message("gmatch", function()
              for w in string.rep(" ", 16000):gmatch("%s*x") do return { ["txn.r"] = w } end
            end)
            spoa.register_message("gsub", function() return { ["txn.r"] = (big:gsub(".", "b")) } end)
            spoa.register_message("lower", function() return { ["txn.r"] = #(big .. big .. big .. big):lower() } end)
            spoa.register_message("rep", function() return { ["txn.r"] = #string.rep("a", 1e8) } end)
            spoa.register_message("pack", function() return { ["txn.r"] = #string.pack("c100000000", "") } end)
            spoa.register_message("format", function() return { ["txn.r"] = #string.format("%q", big) } end)
            spoa.register_message("short", function(txn)
              local ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
              return { ["txn.bot"] = ua:lower():match("(%w+)bot/([%d.]+)"), ["txn.n"] = select(2, ua:gsub("%p", "")),
                       ["txn.rep"] = ("ab"):rep(3, "-"), ["txn.up"] = ua:sub(1, 7):upper() }
            end)
            """, logs: logs) { $0.timeoutMilliseconds = 50 }
        let timeouts = ["trim": "script.lua:4:", "cubic": "script.lua:6:", "find": "script.lua:7:", "gmatch": "script.lua:9:",
                        "gsub": "script.lua:11:", "lower": "script.lua:12:"]
        for (name, site) in timeouts.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(try finishes(within: 20) { try setVars(worker, name) }, [:], name)
            XCTAssertTrue(worker.lastError?.contains("\(site) execution timeout (50 ms)") ?? false,
                          "\(name): \(String(describing: worker.lastError))")
        }
        XCTAssertEqual(worker.handlerTimeouts, timeouts.count)
        for (name, message) in [("rep", "script.lua:13: string.rep: the result would be over 16 MiB"),
                                ("pack", "script.lua:14: string.pack: the result could be over 16 MiB"),
                                ("format", "script.lua:15: string.format: 16777218 bytes of format and string arguments, over the 1024 KiB limit")] {
            XCTAssertEqual(try finishes(within: 20) { try setVars(worker, name) }, [:], name)
            XCTAssertTrue(worker.lastError?.contains(message) ?? false, "\(name): \(String(describing: worker.lastError))")
        }
        XCTAssertEqual(try setVars(worker, "short"), ["txn.bot": .string("google"), "txn.n": .int64(16),
                                                      "txn.rep": .string("ab-ab-ab"), "txn.up": .string("MOZILLA")])
    }
}
