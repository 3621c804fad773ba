import NIOCore
import XCTest
@testable import SpopEngine

final class TypedValueTests: XCTestCase {
    private func encode(_ value: SpopValue) -> String {
        var buffer = ByteBuffer()
        buffer.writeSpopValue(value)
        return buffer.hex
    }

    func testGoldenEncodings() {
        XCTAssertEqual(encode(.null), "00")
        XCTAssertEqual(encode(.bool(false)), "01")
        XCTAssertEqual(encode(.bool(true)), "11")
        XCTAssertEqual(encode(.int32(75)), "02 4b")
        // Negative values are sign-extended 64-bit patterns (docs/spop-protocol.md §3.3).
        XCTAssertEqual(encode(.int32(-1)), "02 ff f0 fe fe fe fe fe fe fe 0e")
        XCTAssertEqual(encode(.int64(-2)), "04 fe f0 fe fe fe fe fe fe fe 0e")
        XCTAssertEqual(encode(.uint32(16380)), "03 fc f0 06")
        XCTAssertEqual(encode(.uint64(.max)), "05 ff f0 fe fe fe fe fe fe fe 0e")
        XCTAssertEqual(encode(.ipv4(IPv4Address(192, 0, 2, 10))), "06 c0 00 02 0a")
        XCTAssertEqual(encode(.ipv6(IPv6Address("2001:db8::1")!)), "07 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01")
        XCTAssertEqual(encode(.string("")), "08 00")
        XCTAssertEqual(encode(.string("2.0")), "08 03 32 2e 30")
        XCTAssertEqual(encode(.binary([0, 0x41, 0])), "09 03 00 41 00")
    }

    /// Every type at its boundaries survives encode → decode exactly.
    func testRoundTripAtEveryBoundary() throws {
        var values: [SpopValue] = [.null, .bool(true), .bool(false), .string(""), .binary([]), .binary([0, 0, 0]),
                                   .string(String(repeating: "é", count: 3000)), .binary(Array(0...255))]
        values += [Int32.min, -1, 0, 1, 239, 240, Int32.max].map { .int32($0) }
        values += [0, 239, 240, 2287, 2288, UInt32.max].map { .uint32($0) }
        values += [Int64.min, Int64.min + 1, -1, 0, Int64.max].map { .int64($0) }
        values += [0, UInt64(Int64.max), UInt64(Int64.max) + 1, .max].map { .uint64($0) }
        values += [IPv4Address(0), IPv4Address(.max), IPv4Address(127, 0, 0, 1)].map { .ipv4($0) }
        values += ["::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"].map { .ipv6(IPv6Address($0)!) }
        for value in values {
            var buffer = ByteBuffer()
            buffer.writeSpopValue(value)
            XCTAssertEqual(try buffer.readSpopValue(), value)
            XCTAssertEqual(buffer.readableBytes, 0, "\(value) left bytes behind")
        }
    }

    func testBooleanTrueOnlyWithFlag0x10() throws {
        var buffer = ByteBuffer(hex: "11 01 31")
        XCTAssertEqual(try buffer.readSpopValue(), .bool(true))
        XCTAssertEqual(try buffer.readSpopValue(), .bool(false))
        XCTAssertEqual(try buffer.readSpopValue(), .bool(false), "flags 0x30 are not exactly 0x10")
    }

    /// HAProxy's spoe_decode_data: the type is the low nibble, flags are ignored except
    /// that BOOL is true only for flags 0x10 and STRING needs the whole byte 0x08.
    func testFlagBitsAreReadAsHAProxyReadsThem() throws {
        for (hex, value) in [("01", SpopValue.bool(false)), ("11", .bool(true)), ("21", .bool(false)), ("91", .bool(false)),
                             ("f1", .bool(false)), ("92 4b", .int32(75)), ("f4 01", .int64(1)), ("50", .null),
                             ("e6 c0 00 02 0a", .ipv4(IPv4Address(192, 0, 2, 10))), ("08 01 41", .string("A")),
                             ("18 01 41", .binary([0x41])), ("f8 00", .binary([])), ("19 01 41", .binary([0x41]))] {
            var buffer = ByteBuffer(hex: hex)
            XCTAssertEqual(try buffer.readSpopValue(), value, hex)
            XCTAssertEqual(buffer.readableBytes, 0, hex)
        }
        var written = ByteBuffer()
        written.writeSpopValue(.bool(true))
        written.writeSpopValue(.bool(false))
        XCTAssertEqual(written.hex, "11 01")
    }

    func testMalformedValuesAreRefused() {
        for hex in ["", "0a", "0f", "06 c0 00 02", "07 20 01", "08 05 41 42", "02 ff f0", "09"] {
            var buffer = ByteBuffer(hex: hex)
            XCTAssertThrowsError(try buffer.readSpopValue(), "accepted \(hex)")
        }
    }

    func testAddressText() {
        XCTAssertEqual(IPv4Address("192.0.2.10")?.description, "192.0.2.10")
        XCTAssertEqual(IPv6Address("2001:0db8:0:0:0:0:0:1")?.description, "2001:db8::1")
        XCTAssertNil(IPv4Address("300.1.1.1"))
        XCTAssertNil(IPv6Address("not-an-address"))
    }
}
