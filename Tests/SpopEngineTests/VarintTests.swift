import NIOCore
import XCTest
@testable import SpopEngine

final class VarintTests: XCTestCase {
    /// The worked examples of docs/spop-protocol.md §1.4.
    func testDigestExamples() throws {
        let examples: [(UInt64, String)] = [
            (0, "00"), (239, "ef"), (240, "f0 00"), (241, "f1 00"), (300, "fc 03"), (2287, "ff 7f"),
            (2288, "f0 80 00"), (16380, "fc f0 06"), (UInt64(UInt32.max), "ff f0 fe fe 7e"),
            (UInt64(Int64.max), "ff f0 fe fe fe fe fe fe fe 06"), (UInt64.max, "ff f0 fe fe fe fe fe fe fe 0e"),
        ]
        for (value, hex) in examples {
            var buffer = ByteBuffer()
            buffer.writeSpopVarint(value)
            XCTAssertEqual(buffer.hex, hex, "encoding \(value)")
            var input = ByteBuffer(hex: hex)
            XCTAssertEqual(try input.readSpopVarint(), value, "decoding \(hex)")
            XCTAssertEqual(input.readableBytes, 0)
            XCTAssertEqual(SpopVarint.encodedLength(of: value), buffer.readableBytes)
        }
    }

    /// Every size class boundary of docs/spop-protocol.md §1.4 round-trips with the stated length.
    func testSizeClassBoundaries() throws {
        let smallest: [UInt64] = [
            0, 240, 2288, 264_432, 33_818_864, 4_328_786_160, 554_084_600_048, 70_922_828_777_712,
            9_078_122_083_518_704, 1_161_999_626_690_365_680,
        ]
        for (index, start) in smallest.enumerated() {
            for value in [start, start &+ 1, index + 1 < smallest.count ? smallest[index + 1] - 1 : UInt64.max] {
                var buffer = ByteBuffer()
                XCTAssertEqual(buffer.writeSpopVarint(value), index + 1, "length of \(value)")
                XCTAssertEqual(try buffer.readSpopVarint(), value)
            }
        }
    }

    func testRandomRoundTrips() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let value = UInt64.random(in: 0...UInt64.max, using: &generator) >> UInt64.random(in: 0...63)
            var buffer = ByteBuffer()
            buffer.writeSpopVarint(value)
            XCTAssertEqual(try buffer.readSpopVarint(), value)
        }
    }

    func testTruncatedVarintLeavesReaderUntouched() {
        for hex in ["", "f0", "f0 80", "ff f0 fe fe"] {
            var buffer = ByteBuffer(hex: hex)
            XCTAssertThrowsError(try buffer.readSpopVarint()) { XCTAssertEqual($0 as? VarintError, .truncated) }
            XCTAssertEqual(buffer.readerIndex, 0)
        }
    }

    func testOverlongAndOverflowingVarintsAreRefused() {
        // 11 bytes, and a 10-byte form whose last byte carries bits beyond 2^64.
        for hex in ["ff f0 fe fe fe fe fe fe fe fe 0e", "ff f0 fe fe fe fe fe fe fe 7f", "ff ff ff ff ff ff ff ff ff ff ff ff"] {
            var buffer = ByteBuffer(hex: hex)
            XCTAssertThrowsError(try buffer.readSpopVarint()) { XCTAssertEqual($0 as? VarintError, .overflow, hex) }
        }
    }
}
