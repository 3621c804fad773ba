import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.parse_hdrs_bin: HAProxy's req.hdrs_bin format, decoded robustly.
final class HeadersTests: XCTestCase {
    /// Encodes headers the way HAProxy's req.hdrs_bin does: varint-prefixed name and
    /// value for each header, then two empty strings.
    static func hdrsBin(_ headers: [(String, String)], terminated: Bool = true) -> [UInt8] {
        var buffer = ByteBuffer()
        for (name, value) in headers {
            buffer.writeSpopVarint(UInt64(name.utf8.count))
            buffer.writeString(name)
            buffer.writeSpopVarint(UInt64(value.utf8.count))
            buffer.writeString(value)
        }
        if terminated { buffer.writeBytes([0, 0]) }
        return Array(buffer.readableBytesView)
    }

    static let script = """
        spoa.register_message("h", function(txn, msg)
          local h, order = spoa.parse_hdrs_bin(msg.args.hdrs)
          if not h then return { ["txn.err"] = order } end
          local names = {}
          for k in pairs(h) do names[#names + 1] = k end
          table.sort(names)
          local pairs_ = {}
          for _, k in ipairs(names) do pairs_[#pairs_ + 1] = k .. "=" .. h[k] end
          return { ["txn.h"] = table.concat(pairs_, "|"), ["txn.order"] = table.concat(order, ",") }
        end)
        """

    func run(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> [String: SpopValue] {
        let harness = try Harness(Self.script)
        let vars = try harness.vars("h", [("hdrs", .binary(ByteBuffer(bytes: bytes)))], file: file, line: line)
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs.map(\.message))", file: file, line: line)
        return vars
    }

    func testHeadersAreLowercasedJoinedAndOrdered() throws {
        let long = String(repeating: "x", count: 300) // a 2-byte varint length
        let vars = try run(Self.hdrsBin([
            ("Host", "example.com"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"),
            ("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("X-Long", long), ("X-Empty", ""),
        ]))
        XCTAssertEqual(vars["txn.h"]?.text,
                       "accept=*/*|host=example.com|user-agent=curl/8.5.0|x-empty=|x-forwarded-for=1.1.1.1, 2.2.2.2|x-long=\(long)")
        XCTAssertEqual(vars["txn.order"]?.text, "host,user-agent,accept,x-forwarded-for,x-forwarded-for,x-long,x-empty")
    }

    func testNoHeaders() throws {
        let vars = try run([0, 0])
        XCTAssertEqual(vars["txn.h"]?.text, "")
        XCTAssertEqual(vars["txn.order"]?.text, "")
    }

    func testMalformedInputReturnsAnError() throws {
        let good = Self.hdrsBin([("Host", "a"), ("Accept", "*/*")])
        let cases: [([UInt8], String)] = [
            ([], "missing end marker at byte 0"),
            (Self.hdrsBin([("Host", "a")], terminated: false), "missing end marker at byte 7"),
            (Array(good.prefix(3)), "truncated header name at byte 0"),
            (Array(good.prefix(6)), "truncated header value at byte 5"),
            ([0xF5], "truncated header name at byte 0"),           // varint cut after its first byte
            ([0x00, 0x03, 0x61, 0x62, 0x63], "header value without a name at byte 1"),
            (good + [0x01], "trailing bytes after the end marker at byte \(good.count)"),
            ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "truncated header name at byte 0"),
        ]
        for (bytes, message) in cases {
            let vars = try run(bytes)
            XCTAssertEqual(vars["txn.err"]?.text, "spoa.parse_hdrs_bin: " + message, "\(bytes)")
        }
    }

    func testRandomTruncationsNeverCrash() throws {
        let full = Self.hdrsBin((0..<20).map { ("X-Header-\($0)", String(repeating: "v", count: $0 * 17)) })
        let harness = try Harness("""
            spoa.register_message("h", function(txn, msg)
              local h, err = spoa.parse_hdrs_bin(msg.args.hdrs)
              return { ["txn.ok"] = h ~= nil, ["txn.err"] = err == nil or type(err) == "string" }
            end)
            """)
        for cut in stride(from: 0, to: full.count, by: 7) {
            let vars = try harness.vars("h", [("hdrs", .binary(ByteBuffer(bytes: full.prefix(cut))))])
            XCTAssertEqual(vars["txn.ok"], .bool(false), "cut at \(cut)")
        }
        XCTAssertEqual(try harness.vars("h", [("hdrs", .binary(ByteBuffer(bytes: full)))])["txn.ok"], .bool(true))
    }
}
