import Foundation
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.netset: longest-prefix match with exclusions and values, file loading,
/// and a 100k-CIDR set checked against a reference implementation.
final class NetsetTests: XCTestCase {
    func testExclusionsNestingAndBothFamilies() throws {
        let harness = try Harness("""
            local S = spoa.netset{ "10.0.0.0/8", "!10.66.0.0/16", "10.66.6.0/24", "fc00::/7",
                                   "!fd00:dead::/32", spoa.cidr("192.0.2.0/24"), spoa.addr("198.51.100.7"),
                                   "0.0.0.0/0", "!0.0.0.0/1" }
            local probes = { "10.1.1.1", "10.66.1.1", "10.66.6.9", "10.67.0.0", "fd00::1", "fd00:dead::1",
                             "fe00::1", "192.0.2.255", "198.51.100.7", "198.51.100.8", "11.0.0.1", "200.1.1.1",
                             "::ffff:10.1.1.1" }
            spoa.register_message("q", function(txn, msg)
              local out = {}
              for _, p in ipairs(probes) do
                local cidr = S:lookup(spoa.addr(p))
                out[#out + 1] = p .. "=" .. (S:contains(p) and "in" or "out") .. ":" .. tostring(cidr)
              end
              return { ["txn.r"] = table.concat(out, " "), ["txn.size"] = S:size(), ["txn.str"] = tostring(S) }
            end)
            """)
        let vars = try harness.vars("q")
        XCTAssertEqual(vars["txn.r"]?.text?.split(separator: " "), [
            "10.1.1.1=in:10.0.0.0/8", "10.66.1.1=out:nil", "10.66.6.9=in:10.66.6.0/24", "10.67.0.0=in:10.0.0.0/8",
            "fd00::1=in:fc00::/7", "fd00:dead::1=out:nil", "fe00::1=out:nil", "192.0.2.255=in:192.0.2.0/24",
            "198.51.100.7=in:198.51.100.7/32", "198.51.100.8=in:0.0.0.0/0", "11.0.0.1=out:nil", "200.1.1.1=in:0.0.0.0/0",
            "::ffff:10.1.1.1=out:nil",
        ])
        XCTAssertEqual(vars["txn.size"], .int64(9))
        XCTAssertEqual(vars["txn.str"]?.text, "spoa.netset(9 entries)")
    }

    func testEdgesOfTheAddressSpaces() throws {
        let harness = try Harness("""
            local S = spoa.netset{ "::/0", "!::/1", "ffff::/16", "!ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                   "255.255.255.255/32", "0.0.0.0/32" }
            spoa.register_message("q", function(txn, msg)
              local out = {}
              for _, p in ipairs({ "::", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::", "fffe::1", "ffff::1",
                                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                   "255.255.255.255", "255.255.255.254", "0.0.0.0", "0.0.0.1" }) do
                out[#out + 1] = tostring(S:lookup(p))
              end
              return { ["txn.r"] = table.concat(out, " ") }
            end)
            """)
        XCTAssertEqual(try harness.vars("q")["txn.r"]?.text?.split(separator: " "), [
            "nil", "nil", "::/0", "::/0", "ffff::/16", "ffff::/16", "nil", "255.255.255.255/32", "nil", "0.0.0.0/32", "nil",
        ])
    }

    func testItemErrorsNameTheItem() throws {
        for (items, message) in [
            ("{ \"10.0.0.0/8\", \"10.0.0.0/40\" }", "spoa.netset: item 2: invalid CIDR \"10.0.0.0/40\": prefix length must be 0..32"),
            ("{ \"10.0.0.0/8\", 42 }", "spoa.netset: item 2: CIDR string, spoa.cidr() or address expected, got number"),
        ] {
            let path = try writeScript("local S = spoa.netset\(items)")
            XCTAssertThrowsError(try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: LogCapture().logger)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testLoadFileWithCommentsValuesAndRelativePath() throws {
        let list = try writeScript("""
            # reputation list
            203.0.113.0/24   5        # bad neighbourhood
              203.0.113.128/25 1
            !203.0.113.200/32
            2001:db8:bad::/48 0 very bad\r

            198.51.100.0/24
            """, name: "rep.lst")
        let listURL = URL(fileURLWithPath: list)
        let relative = "../\(listURL.deletingLastPathComponent().lastPathComponent)/rep.lst"
        let harness = try Harness("""
            local REP = spoa.netset.load("\(relative)")
            spoa.register_message("q", function(txn, msg)
              local out = {}
              for _, p in ipairs({ "203.0.113.9", "203.0.113.130", "203.0.113.200", "2001:db8:bad::1",
                                   "198.51.100.1", "8.8.8.8" }) do
                local cidr, value = REP:lookup(p)
                out[#out + 1] = tostring(cidr) .. "=" .. tostring(value)
              end
              return { ["txn.r"] = table.concat(out, ","), ["txn.size"] = REP:size() }
            end)
            """)
        let vars = try harness.vars("q")
        XCTAssertEqual(vars["txn.r"]?.text, "203.0.113.0/24=5,203.0.113.128/25=1,nil=nil,2001:db8:bad::/48=0 very bad,198.51.100.0/24=nil,nil=nil")
        XCTAssertEqual(vars["txn.size"], .int64(5))
    }

    func testLoadErrorsNameFileAndLine() throws {
        let list = try writeScript("10.0.0.0/8 1\n# fine\n10.0.0.300/24 2\n", name: "bad.lst")
        let path = try writeScript("local S = spoa.netset.load(\"\(list)\")")
        XCTAssertThrowsError(try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: LogCapture().logger)) { error in
            XCTAssertTrue("\(error)".contains("\(list):3: invalid CIDR \"10.0.0.300/24\": bad address \"10.0.0.300\""), "\(error)")
        }
        let missing = try writeScript("local S = spoa.netset.load(\"/nonexistent/luaspoa.lst\")")
        XCTAssertThrowsError(try LuaWorker(scriptPath: missing, workerIndex: 1, workerCount: 1, logger: LogCapture().logger)) { error in
            XCTAssertTrue("\(error)".contains("spoa.netset.load: cannot open /nonexistent/luaspoa.lst: No such file or directory"), "\(error)")
        }
    }

    /// A set file is built once per process: a load of the same file (every
    /// worker, or a reload) shares it; a changed file (written in place or
    /// replaced) is read again, while the states holding the old set keep it.
    func testLoadSharesAnUnchangedFileAndReadsAChangedOne() throws {
        let directory = try makeTemporaryDirectory("luaspoa-netset")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("set.lst").path
        try "10.0.0.0/8 old\n".write(toFile: path, atomically: false, encoding: .utf8)
        let script = """
            local S = spoa.netset.load("\(path)")
            spoa.register_message("q", function(txn, msg)
              local cidr, value = S:lookup("10.1.2.3")
              return { ["txn.v"] = tostring(value) .. "/" .. S:size() }
            end)
            """
        let read = "spoa.netset.load: \(path) read"
        let shared = "spoa.netset.load: \(path) unchanged, sharing the copy already loaded"
        func debugLines(_ h: Harness) -> [String] {
            h.logs.entries.filter { $0.level == .debug && $0.message.hasPrefix("spoa.netset.load: ") }.map(\.message)
        }
        func value(_ h: Harness) throws -> String? { try h.vars("q")["txn.v"]?.text }
        let first = try Harness(script, workerIndex: 1)
        let second = try Harness(script, workerIndex: 2)
        XCTAssertEqual(debugLines(first), [read])
        XCTAssertEqual(debugLines(second), [shared], "an unchanged file is not parsed again")
        XCTAssertEqual(try value(second), "old/1")

        try "10.0.0.0/8 newer\n".write(toFile: path, atomically: false, encoding: .utf8)
        let inPlace = try Harness(script)
        XCTAssertEqual(debugLines(inPlace), [read])
        XCTAssertEqual(try value(inPlace), "newer/1")
        XCTAssertEqual(try value(first), "old/1", "a running state keeps the set it loaded")

        try "10.0.0.0/8 newest\n10.1.0.0/16 more\n".write(toFile: path, atomically: true, encoding: .utf8)
        let renamed = try Harness(script)
        XCTAssertEqual(debugLines(renamed), [read])
        XCTAssertEqual(try value(renamed), "more/2")
        XCTAssertEqual(try value(inPlace), "newer/1")
        XCTAssertEqual(try value(second), "old/1")
        XCTAssertTrue((first.errorLogs + renamed.errorLogs).isEmpty)
    }

    /// Like spoa.map.load: reading a file (maybe a FIFO) must not block a handler.
    func testLoadIsRefusedInHandlers() throws {
        let list = try writeScript("10.0.0.0/8 1\n", name: "ok.lst")
        let harness = try Harness("""
            local AT_LOAD = spoa.netset.load("\(list)")
            spoa.register_init(function() assert(spoa.netset.load("\(list)"):size() == 1) end)
            spoa.register_message("load", function() return { ["txn.size"] = spoa.netset.load("\(list)"):size() } end)
            """)
        XCTAssertEqual(try harness.vars("load"), [:])
        let messages = harness.errorLogs.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("script.lua:3: spoa.netset.load is only available while the script loads or in an init function") }, "\(messages)")
    }

    // MARK: 100k CIDRs against a reference

    struct Entry { var network: UInt32; var bits: Int; var excluded: Bool; var value: String }

    /// Knuth's MMIX LCG (high bits mixed down): deterministic, so a failure can be replayed.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    static func mask(_ bits: Int) -> UInt32 { bits == 0 ? 0 : UInt32.max << UInt32(32 - bits) }

    static func text(_ v: UInt32) -> String { "\(v >> 24).\((v >> 16) & 255).\((v >> 8) & 255).\(v & 255)" }

    func testHundredThousandCidrsMatchTheReference() throws {
        var rng = Rng(state: 20261124)
        let lengths = [8, 12, 16, 20, 24, 24, 24, 24, 28, 32]
        var entries: [Entry] = []
        for i in 0..<100_000 {
            let bits = lengths[Int(rng.next() % UInt64(lengths.count))]
            let network = UInt32(truncatingIfNeeded: rng.next()) & Self.mask(bits)
            entries.append(Entry(network: network, bits: bits, excluded: rng.next() % 20 == 0, value: "v\(i)"))
        }
        // Reference: one dictionary per prefix length, later entries win; longest match first.
        var byLength: [Int: [UInt32: Entry]] = [:]
        for e in entries { byLength[e.bits, default: [:]][e.network] = e }
        let longestFirst = Set(lengths).sorted(by: >)
        func expected(_ address: UInt32) -> String {
            for bits in longestFirst {
                if let e = byLength[bits]?[address & Self.mask(bits)] {
                    return e.excluded ? "-" : "\(Self.text(e.network))/\(e.bits) \(e.value)"
                }
            }
            return "-"
        }
        let lines = entries.map { "\($0.excluded ? "!" : "")\(Self.text($0.network))/\($0.bits) \($0.value)" }
        let list = try writeScript(lines.joined(separator: "\n") + "\n", name: "big.lst")

        var queries: [UInt32] = []
        for _ in 0..<3000 {
            if rng.next() % 2 == 0 {
                queries.append(UInt32(truncatingIfNeeded: rng.next()))
            } else {
                let e = entries[Int(rng.next() % UInt64(entries.count))]
                queries.append(e.network | (UInt32(truncatingIfNeeded: rng.next()) & ~Self.mask(e.bits)))
            }
        }
        var packed: [UInt8] = []
        for q in queries { withUnsafeBytes(of: q.bigEndian) { packed.append(contentsOf: $0) } }

        let harness = try Harness("""
            local t0 = os.clock()
            local SET = spoa.netset.load("\(list)")
            local build_ms = (os.clock() - t0) * 1000
            spoa.register_message("q", function(txn, msg)
              local raw, out = msg.args.q, {}
              for i = 1, #raw, 4 do
                local cidr, value = SET:lookup(spoa.addr_from_bytes(raw:sub(i, i + 3)))
                out[#out + 1] = cidr and (cidr .. " " .. tostring(value)) or "-"
              end
              local probe, n = spoa.addr("10.1.2.3"), 200000
              local t1 = os.clock()
              for _ = 1, n do SET:contains(probe) end
              local ns = (os.clock() - t1) * 1e9 / n
              return { ["txn.r"] = table.concat(out, "\\n"), ["txn.size"] = SET:size(),
                       ["txn.timing"] = ("build %.0f ms, %.0f ns per contains()"):format(build_ms, ns) }
            end, { timeout_ms = 600000 })  -- 3000 lookups and a timing loop: not a request's budget
            """)
        let actions = try SpoaAction.decodeList(harness.ackPayload([("q", [("q", .binary(ByteBuffer(bytes: packed)))])], maxFrameSize: 1 << 20))
        var vars: [String: SpopValue] = [:]
        for case .setVar(_, let name, let value) in actions { vars[name] = value }
        XCTAssertEqual(vars["size"], .int64(100_000))
        let got = try XCTUnwrap(vars["r"]?.text).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(got.count, queries.count)
        var mismatches = 0
        for (index, q) in queries.enumerated() where index < got.count && got[index] != expected(q) {
            mismatches += 1
            if mismatches <= 5 { XCTFail("\(Self.text(q)): got \(got[index]), expected \(expected(q))") }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertGreaterThan(got.filter { $0 != "-" }.count, queries.count / 3, "the queries should mostly hit")
        print("netset 100k: \(vars["timing"]?.text ?? "?")")
    }

    struct Key6: Hashable { var hi: UInt64; var lo: UInt64 }

    static func mask6(_ k: Key6, _ bits: Int) -> Key6 {
        let hiMask: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : .max << UInt64(64 - bits))
        let loMask: UInt64 = bits >= 128 ? .max : (bits <= 64 ? 0 : .max << UInt64(128 - bits))
        return Key6(hi: k.hi & hiMask, lo: k.lo & loMask)
    }

    static func text6(_ k: Key6) -> String {
        var groups: [String] = []
        for word in [k.hi, k.lo] {
            for shift: UInt64 in [48, 32, 16, 0] { groups.append(String((word >> shift) & 0xffff, radix: 16)) }
        }
        return groups.joined(separator: ":")
    }

    func testRandomIPv6SetMatchesTheReference() throws {
        var rng = Rng(state: 6)
        let lengths = [16, 32, 48, 56, 64, 64, 96, 127, 128]
        // Few distinct top bits, so that prefixes nest often.
        func random() -> Key6 {
            let low: UInt64 = rng.next() & 0x3_ffff
            let shift: UInt64 = rng.next() % 2 == 0 ? 0 : 20
            return Key6(hi: 0x2001_0db8_0000_0000 | low << shift, lo: rng.next())
        }
        var byLength: [Int: [Key6: (value: String, excluded: Bool)]] = [:]
        var lines: [String] = []
        for i in 0..<20_000 {
            let bits = lengths[Int(rng.next() % UInt64(lengths.count))]
            let network = Self.mask6(random(), bits)
            let excluded = rng.next() % 10 == 0
            byLength[bits, default: [:]][network] = ("v\(i)", excluded)
            lines.append("\(excluded ? "!" : "")\(Self.text6(network))/\(bits) v\(i)")
        }
        let longestFirst = Set(lengths).sorted(by: >)
        func expected(_ k: Key6) -> String {
            for bits in longestFirst {
                if let e = byLength[bits]?[Self.mask6(k, bits)] { return e.excluded ? "-" : e.value }
            }
            return "-"
        }
        let list = try writeScript(lines.joined(separator: "\n"), name: "v6.lst")
        var queries: [Key6] = []
        var packed: [UInt8] = []
        for _ in 0..<3000 {
            let q = random()
            queries.append(q)
            withUnsafeBytes(of: q.hi.bigEndian) { packed.append(contentsOf: $0) }
            withUnsafeBytes(of: q.lo.bigEndian) { packed.append(contentsOf: $0) }
        }
        let harness = try Harness("""
            local SET = spoa.netset.load("\(list)")
            spoa.register_message("q", function(txn, msg)
              local raw, out = msg.args.q, {}
              for i = 1, #raw, 16 do
                out[#out + 1] = select(2, SET:lookup(spoa.addr_from_bytes(raw:sub(i, i + 15)))) or "-"
              end
              return { ["txn.r"] = table.concat(out, " ") }
            end, { timeout_ms = 600000 })  -- thousands of lookups: not a request's budget
            """)
        let actions = try SpoaAction.decodeList(harness.ackPayload([("q", [("q", .binary(ByteBuffer(bytes: packed)))])], maxFrameSize: 1 << 20))
        guard case .setVar(_, _, let value)? = actions.first, let text = value.text else { return XCTFail("\(actions)") }
        let got = text.split(separator: " ").map(String.init)
        XCTAssertEqual(got.count, queries.count)
        let wrong = zip(queries, got).filter { expected($0.0) != $0.1 }
        XCTAssertEqual(wrong.count, 0, "first: \(wrong.prefix(3).map { "\(Self.text6($0.0)) got \($0.1) expected \(expected($0.0))" })")
        XCTAssertGreaterThan(got.filter { $0 != "-" }.count, 300, "enough queries should hit")
    }
}
