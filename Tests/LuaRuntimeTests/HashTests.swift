import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.hash: FNV-1a, and HAProxy's crc32 and djb2 converters, in C.
final class HashTests: XCTestCase {
    static let script = """
        spoa.register_message("h", function(txn, msg)
          local s = msg.args.s
          return {
            ["txn.fnv"] = spoa.uint32(spoa.hash.fnv1a32(s)),
            ["txn.crc"] = spoa.uint32(spoa.hash.crc32(s)),
            ["txn.djb2"] = spoa.uint32(spoa.hash.djb2(s)),
          }
        end)
        spoa.register_message("bad", function(txn, msg) return { ["txn.x"] = spoa.hash.crc32({}) } end)
        spoa.register_message("addr", function(txn, msg)
          local ip, text = msg.args.ip, tostring(msg.args.ip)
          local same = true
          for _, name in ipairs({"fnv1a32", "crc32", "djb2"}) do
            same = same and spoa.hash[name](ip) == spoa.hash[name](text)
          end
          return { ["txn.same"] = same, ["txn.fnv"] = spoa.uint32(spoa.hash.fnv1a32(ip)) }
        end)
        """

    func hashes(_ text: [UInt8]) throws -> [String: SpopValue] {
        let harness = try Harness(Self.script)
        return try harness.vars("h", [("s", .binary(ByteBuffer(bytes: text)))])
    }

    /// Published check values: FNV-1a 32 ("" = offset basis, "a", "foobar"), CRC-32
    /// ("123456789" = 0xCBF43926, the standard check), djb2 (5381 * 33 + c ...).
    func testKnownValues() throws {
        XCTAssertEqual(try hashes([])["txn.fnv"], .uint32(0x811C_9DC5))
        XCTAssertEqual(try hashes(Array("a".utf8))["txn.fnv"], .uint32(0xE40C_292C))
        XCTAssertEqual(try hashes(Array("foobar".utf8))["txn.fnv"], .uint32(0xBF9C_F968))
        XCTAssertEqual(try hashes(Array("123456789".utf8))["txn.crc"], .uint32(0xCBF4_3926))
        XCTAssertEqual(try hashes([])["txn.crc"], .uint32(0))
        XCTAssertEqual(try hashes(Array("a".utf8))["txn.djb2"], .uint32(5381 * 33 + 97))
        XCTAssertEqual(try hashes([])["txn.djb2"], .uint32(5381))
    }

    /// Binary input with NUL and high bytes is hashed byte for byte, not cut at NUL.
    func testBinaryInput() throws {
        let bytes: [UInt8] = [0, 255, 0, 128]
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        XCTAssertEqual(try hashes(bytes)["txn.crc"], .uint32(crc ^ 0xFFFF_FFFF))
        XCTAssertNotEqual(try hashes(bytes)["txn.fnv"], try hashes([0])["txn.fnv"])
    }

    /// An address is hashed as its text, tostring(ip), for IPv4 and IPv6 alike.
    func testAddressIsHashedAsItsText() throws {
        let harness = try Harness(Self.script)
        for address in [SpopValue.ipv4(IPv4Address(192, 0, 2, 10)), .ipv6(IPv6Address("2001:db8::1")!)] {
            let vars = try harness.vars("addr", [("ip", address)])
            XCTAssertEqual(vars["txn.same"], .bool(true), "\(address)")
        }
        // FNV-1a of "192.0.2.10" mod 100 is the 28 ip_reputation.lua documents.
        guard case .uint32(let fnv)? = try harness.vars("addr", [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])["txn.fnv"] else {
            return XCTFail("no txn.fnv")
        }
        XCTAssertEqual(fnv % 100, 28)
    }

    func testNonStringIsAnErrorNotACrash() throws {
        let harness = try Harness(Self.script)
        let vars = try harness.vars("bad", [])
        XCTAssertNil(vars["txn.x"])
        XCTAssertTrue(harness.errorLogs.contains { $0.message.contains("string or address expected") }, "\(harness.errorLogs.map(\.message))")
    }
}
