import Foundation
import Logging
import LuaRuntime
import XCTest

/// spoa.map: HAProxy map files, the four match kinds, one copy per process, reload.
final class MapTests: XCTestCase {
    /// Writes a map file next to a fresh script path and returns its path.
    private func mapFile(_ text: String) throws -> String {
        try writeScript(text, name: "data.map")
    }

    /// A worker whose "run" message looks `arg` up in the map and reports the value.
    private func worker(map: String, type: String, lookup: String = "arg", index: Int = 1) throws -> Harness {
        try Harness("""
            local M = spoa.map.load("\(map)", { type = "\(type)" })
            spoa.register_message("run", function(txn, msg)
              local arg = msg.args.arg
              txn:set_var("txn.r", tostring(M:lookup(\(lookup))) .. "/" .. M:size())
            end)
            """, workerIndex: index)
    }

    func testExactStringsWithCommentsBlankLinesAndDuplicates() throws {
        let path = try mapFile("""
            # comment
            example.com   site a  \t
               
            other.org b
            example.com duplicate (the first line wins)
            bare
            """)
        let h = try worker(map: path, type: "str")
        XCTAssertEqual(try h.result("example.com"), "site a/3")
        XCTAssertEqual(try h.result("other.org"), "b/3")
        XCTAssertEqual(try h.result("bare"), "/3", "a key without value maps to the empty string")
        XCTAssertEqual(try h.result("example"), "nil/3")
    }

    func testBeginningMatchesTheLongestPrefix() throws {
        let path = try mapFile("/api v1\n/api/admin admin\n/ root\n")
        let h = try worker(map: path, type: "beg")
        XCTAssertEqual(try h.result("/api/admin/users"), "admin/3")
        XCTAssertEqual(try h.result("/api/x"), "v1/3")
        XCTAssertEqual(try h.result("/static"), "root/3")
        XCTAssertEqual(try h.result("static"), "nil/3")
    }

    func testIntegerKeys() throws {
        let path = try mapFile("200 ok\n404 missing\n-1 negative\n")
        let h = try worker(map: path, type: "int", lookup: "tonumber(arg) or arg")
        XCTAssertEqual(try h.result("404"), "missing/3")
        XCTAssertEqual(try h.result("-1"), "negative/3")
        XCTAssertEqual(try h.result("500"), "nil/3")
    }

    func testIPLongestPrefixForBothFamilies() throws {
        let path = try mapFile("""
            10.0.0.0/8 private
            10.1.0.0/16 office
            10.1.2.3 host
            0.0.0.0/0 any-v4
            2001:db8::/32 doc
            2001:db8:1::/48 doc-lab
            """)
        let h = try worker(map: path, type: "ip")
        XCTAssertEqual(try h.result("10.1.2.3"), "host/6")
        XCTAssertEqual(try h.result("10.1.9.9"), "office/6")
        XCTAssertEqual(try h.result("10.200.0.1"), "private/6")
        XCTAssertEqual(try h.result("192.0.2.1"), "any-v4/6")
        XCTAssertEqual(try h.result("2001:db8:1::5"), "doc-lab/6")
        XCTAssertEqual(try h.result("2001:db8:ffff::1"), "doc/6")
        XCTAssertEqual(try h.result("2001:db9::1"), "nil/6", "0.0.0.0/0 covers IPv4 only")
        XCTAssertEqual(try h.result("::ffff:10.1.2.3"), "host/6", "IPv4-mapped addresses match IPv4 entries")
        let addr = try worker(map: path, type: "ip", lookup: "spoa.addr(arg)", index: 2)
        XCTAssertEqual(try addr.result("10.1.0.7"), "office/6", "spoa.Addr keys work too")
        XCTAssertEqual(try h.result("not-an-ip"), nil)
        XCTAssertTrue(h.errorLogs.contains { $0.message.contains("map:lookup: invalid IP address 'not-an-ip'") })
    }

    /// Random nested and overlapping CIDRs of both families against a brute-force
    /// longest-prefix match (IPv4 as ::ffff:a.b.c.d, as the map stores it).
    func testIPLookupsAgreeWithBruteForce() throws {
        struct Prefix { var high: UInt64; var low: UInt64; var bits: Int; var value: String }
        func mask(_ bits: Int) -> (UInt64, UInt64) {
            (bits >= 64 ? ~0 : bits == 0 ? 0 : ~0 << UInt64(64 - bits),
             bits >= 128 ? ~0 : bits <= 64 ? 0 : ~0 << UInt64(128 - bits))
        }
        func text(_ high: UInt64, _ low: UInt64) -> String {
            var groups: [String] = []
            for word in [high, low] {
                for shift: UInt64 in [48, 32, 16, 0] { groups.append(String((word >> shift) & 0xffff, radix: 16)) }
            }
            return groups.joined(separator: ":")
        }
        var rng = SystemRandomNumberGenerator()
        var prefixes: [Prefix] = []
        var lines: [String] = []
        for i in 0..<1500 {
            let v4 = i % 2 == 0
            // Mostly long prefixes, so that gaps (no match) exist between them.
            let bits = v4 ? 96 + Int.random(in: 12...32, using: &rng) : Int.random(in: 12...128, using: &rng)
            // Few distinct top bits, so prefixes nest and collide often.
            let top: UInt64 = UInt64.random(in: 0...3, using: &rng)
            let noise: UInt64 = UInt64.random(in: 0...UInt64.max, using: &rng)
            var high: UInt64 = v4 ? 0 : (top << 62) | (noise >> 8)
            var low: UInt64 = v4 ? 0xffff_0000_0000 | (top << 30) | (noise & 0x3fff_ffff) : UInt64.random(in: 0...UInt64.max, using: &rng)
            let (mh, ml) = mask(bits)
            high &= mh
            low &= ml
            prefixes.append(Prefix(high: high, low: low, bits: bits, value: "v\(i)"))
            lines.append("\(text(high, low))/\(bits) v\(i)")
        }
        let path = try mapFile(lines.joined(separator: "\n"))
        let h = try Harness("""
            local M = spoa.map.load("\(path)", { type = "ip" })
            spoa.register_message("run", function(txn, msg)
              local out = {}
              for a in msg.args.arg:gmatch("%S+") do out[#out + 1] = M:lookup(a) or "-" end
              txn:set_var("txn.r", table.concat(out, " "))
            end)
            """)
        var misses = 0
        for _ in 0..<10 {
            var probes: [(UInt64, UInt64)] = []
            for _ in 0..<100 {
                let p = prefixes.randomElement(using: &rng)!
                let (mh, ml) = mask(p.bits)
                // Inside a prefix, or just past its last address.
                var probe = (p.high | (UInt64.random(in: 0...UInt64.max, using: &rng) & ~mh),
                             p.low | (UInt64.random(in: 0...UInt64.max, using: &rng) & ~ml))
                if Bool.random(using: &rng) {
                    probe = (p.high | ~mh, p.low | ~ml)
                    probe.1 &+= 1
                    if probe.1 == 0 { probe.0 &+= 1 }
                }
                probes.append(probe)
            }
            let expected = probes.map { probe in
                prefixes.reduce(nil as Prefix?) { best, p in
                    let (mh, ml) = mask(p.bits)
                    guard probe.0 & mh == p.high, probe.1 & ml == p.low, p.bits > (best?.bits ?? -1) else { return best }
                    return p
                }?.value ?? "-"
            }
            let answer = try h.result(probes.map { text($0.0, $0.1) }.joined(separator: " "))
            XCTAssertEqual(answer?.split(separator: " ").map(String.init), expected)
            misses += expected.filter { $0 == "-" }.count
        }
        XCTAssertGreaterThan(misses, 0, "some probes fall between prefixes")
    }

    func testLoadErrorsNameTheFileAndLine() throws {
        let bad = try mapFile("10.0.0.0/8 ok\n10.0.0.0/33 bad\n")
        XCTAssertThrowsError(try worker(map: bad, type: "ip")) { error in
            XCTAssertTrue("\(error)".contains("spoa.map.load: \(bad):2: invalid IP address or CIDR '10.0.0.0/33'"), "\(error)")
        }
        let ints = try mapFile("12x y\n")
        XCTAssertThrowsError(try worker(map: ints, type: "int")) { error in
            XCTAssertTrue("\(error)".contains(":1: invalid integer key '12x'"), "\(error)")
        }
        XCTAssertThrowsError(try worker(map: "/nonexistent/x.map", type: "str")) { error in
            XCTAssertTrue("\(error)".contains("cannot open /nonexistent/x.map"), "\(error)")
        }
        XCTAssertThrowsError(try worker(map: ints, type: "regex")) { error in
            XCTAssertTrue("\(error)".contains("type must be \"str\", \"beg\", \"int\" or \"ip\", got regex"), "\(error)")
        }
    }

    /// A task reloads the file; every worker sees the new data at once. A file
    /// that is gone leaves the old data in place and reload returns nil, err.
    func testReloadFromATaskSwapsDataForEveryState() throws {
        let path = try mapFile("k old\n")
        let w1 = try worker(map: path, type: "str", index: 1)
        let w2 = try worker(map: path, type: "str", index: 2)
        XCTAssertEqual(try w1.result("k"), "old/1")
        let script = try writeScript("""
            local M = spoa.map.load("\(path)")
            local d = spoa.shared.declare("map_reload_result")
            spoa.register_task(function()
              local ok, err = M:reload()
              d:incr("runs", 1, 0)
              d:set("last", ok and "ok" or err)
            end, { every = 1, at_start = true })
            """)
        let tasks = try BackgroundTasks(scriptPath: script, workerCount: 2, logger: Logger(label: "test"))
        // Written in place (same inode): the task's reload reads it, not a load.
        try "k new\nx y\n".write(toFile: path, atomically: false, encoding: .utf8)
        tasks.start()
        XCTAssertTrue(tasks.waitForRuns(1, timeout: 30))
        XCTAssertEqual(try w1.result("k"), "new/2")
        XCTAssertEqual(try w2.result("x"), "y/2")
        XCTAssertEqual(SharedDictionary.named("map_reload_result")?.get("last"), .string("ok"))

        try FileManager.default.removeItem(atPath: path)
        // A run in progress may have read the file before: the one after it did not.
        let runs = tasks.runs
        XCTAssertTrue(tasks.waitForRuns(runs + 2, timeout: 30))
        tasks.stop()
        XCTAssertEqual(SharedDictionary.named("map_reload_result")?.get("last"), .string("cannot open \(path): No such file or directory"))
        XCTAssertEqual(try w1.result("k"), "new/2", "the old data stays")

        // A load needs the file, even when the map is loaded already.
        let loader = try writeScript("local M = spoa.map.load(\"\(path)\", { type = \"str\" })")
        XCTAssertThrowsError(try BackgroundTasks(scriptPath: loader, workerCount: 2, logger: Logger(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("spoa.map.load: cannot open \(path): No such file or directory"), "\(error)")
        }
        XCTAssertEqual(try w1.result("k"), "new/2", "the old data stays")
    }

    /// A reload (the script loaded again) reads a map file again only when it
    /// changed (written in place or replaced), and every state, old or new, then
    /// sees the new data, as with map:reload().
    func testALoadReadsAChangedFileAgainAndSharesAnUnchangedOne() throws {
        let directory = try makeTemporaryDirectory("luaspoa-map")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("data.map").path
        try "1 old\n".write(toFile: path, atomically: false, encoding: .utf8)
        let read = "spoa.map.load: \(path) read", shared = "spoa.map.load: \(path) unchanged, sharing the copy already loaded"
        func debugLines(_ h: Harness) -> [String] {
            h.logs.entries.filter { $0.level == .debug && $0.message.hasPrefix("spoa.map.load: ") }.map(\.message)
        }
        let first = try worker(map: path, type: "int")
        XCTAssertEqual(debugLines(first), [read])
        let same = try worker(map: path, type: "int")
        XCTAssertEqual(debugLines(same), [shared], "an unchanged file is not parsed again")
        XCTAssertEqual(try same.result("1"), "old/1")

        try "1 newer\n".write(toFile: path, atomically: false, encoding: .utf8)
        let inPlace = try worker(map: path, type: "int")
        XCTAssertEqual(debugLines(inPlace), [read])
        XCTAssertEqual(try inPlace.result("1"), "newer/1")
        XCTAssertEqual(try first.result("1"), "newer/1", "one map per file: the running states see it too")

        try "1 newest\n2 two\n".write(toFile: path, atomically: true, encoding: .utf8)
        let renamed = try worker(map: path, type: "int")
        XCTAssertEqual(debugLines(renamed), [read])
        XCTAssertEqual(try renamed.result("1"), "newest/2")
        XCTAssertEqual(try same.result("2"), "two/2")

        try "1 fine\nk broken\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try worker(map: path, type: "int")) { error in
            XCTAssertTrue("\(error)".contains("spoa.map.load: \(path):2: invalid integer key 'k'"), "\(error)")
        }
        XCTAssertEqual(try first.result("1"), "newest/2", "a file that fails to load leaves the data in place")
    }

    func testReloadIsRefusedInHandlersAndLoadAfterSetUp() throws {
        let path = try mapFile("a b\n")
        let h = try Harness("""
            local M = spoa.map.load("\(path)")
            spoa.register_message("reload", function() M:reload() end)
            spoa.register_message("load", function() spoa.map.load("\(path)") end)
            """)
        _ = try h.vars("reload")
        _ = try h.vars("load")
        let messages = h.errorLogs.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("map:reload is not available in message handlers (use a task)") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("spoa.map.load is only available while the script loads or in an init function") }, "\(messages)")
    }
}
