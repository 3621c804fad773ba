import NIOCore
import XCTest
@testable import SpopEngine

/// The edges of encoding an action in one reservation: lengths computed before
/// writing must match the bytes written, and the max-frame-size check must count
/// the whole action.
final class ActionEncodingTests: XCTestCase {
    /// Lengths where the varint of a name or string length gains a byte.
    private let lengthBoundaries = [0, 1, 239, 240, 2287, 2288, 264_431, 264_432]

    private var everyValueType: [SpopValue] {
        var values: [SpopValue] = [.null, .bool(true), .bool(false), .string(""), .binary([]), .binary(Array(0...255))]
        values += [Int32.min, -1, 0, 239, 240, Int32.max].map { .int32($0) }
        values += [0, 239, 240, 2287, 2288, UInt32.max].map { .uint32($0) }
        values += [Int64.min, -1, 0, Int64.max].map { .int64($0) }
        values += [0, 2288, .max].map { .uint64($0) }
        values += [.ipv4(IPv4Address(192, 0, 2, 10)), .ipv6(IPv6Address("2001:db8::1")!)]
        values += lengthBoundaries.map { .string(ByteBuffer(repeating: UInt8(ascii: "s"), count: $0)) }
        return values
    }

    /// The actions of the finished ACK, read back by the frame reader and decoder.
    private func decodedActions(_ writer: inout AckWriter) throws -> [SpoaAction] {
        let ack = writer.finish()
        var reader = FrameReader()
        reader.append(ack)
        let raw = try XCTUnwrap(reader.next(maxFrameSize: ack.readableBytes))
        XCTAssertEqual(raw.header.type, .ack)
        return try SpoaAction.decodeList(raw.payload)
    }

    func testEncodedLengthMatchesTheBytesWrittenForEveryType() throws {
        for value in everyValueType {
            var buffer = ByteBuffer()
            buffer.writeSpopValue(value)
            XCTAssertEqual(value.withWireValue { $0.encodedLength }, buffer.readableBytes, "\(value)")
            XCTAssertEqual(try buffer.readSpopValue(), value)
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    func testEveryValueTypeRoundTripsThroughSetVar() throws {
        var writer = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 1 << 24, buffer: ByteBuffer())
        let expected = everyValueType.enumerated().map { SpoaAction.setVar(.transaction, "v\($0.offset)", $0.element) }
        for case .setVar(let scope, let name, let value) in expected { try writer.setVar(scope, name, value) }
        XCTAssertEqual(try decodedActions(&writer), expected)
    }

    func testNamesAtVarintBoundariesRoundTrip() throws {
        var writer = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 1 << 24, buffer: ByteBuffer())
        var expected: [SpoaAction] = []
        for (index, length) in lengthBoundaries.enumerated() {
            let name = String(repeating: "n", count: length)
            let scope = VarScope.allCases[index % VarScope.allCases.count]
            try writer.setVar(scope, name, .uint32(UInt32(length)))
            try writer.unsetVar(scope, name)
            expected += [.setVar(scope, name, .uint32(UInt32(length))), .unsetVar(scope, name)]
        }
        XCTAssertEqual(try decodedActions(&writer), expected)
    }

    func testStreamAndFrameIDsAtVarintBoundaries() throws {
        for id in [0, 239, 240, 2287, 2288, UInt64(UInt32.max), .max] {
            var writer = AckWriter(streamID: id, frameID: ~id, maxFrameSize: 16380, buffer: ByteBuffer())
            try writer.setVar(.session, "id", .uint64(id))
            let ack = writer.finish()
            XCTAssertEqual(ack.getInteger(at: 0, as: UInt32.self).map(Int.init), ack.readableBytes - 4, "length prefix")
            let raw = try frame(ack.hex)
            XCTAssertEqual(raw.header.type, .ack)
            XCTAssertEqual(raw.header.flags, .fin)
            XCTAssertEqual(raw.header.streamID, id)
            XCTAssertEqual(raw.header.frameID, ~id)
            XCTAssertEqual(try SpoaAction.decodeList(raw.payload), [.setVar(.session, "id", .uint64(id))])
        }
    }

    /// An action that makes the frame exactly max-frame-size is written; one byte
    /// more is refused and leaves the ACK as it was. The limit is found from the
    /// bytes an unlimited writer produces, for names and values around varint steps.
    func testActionThatExactlyFitsAndOneByteOver() throws {
        let kept = SpoaAction.setVar(.session, "kept", .int32(-1))
        let actions: [SpoaAction] = lengthBoundaries.prefix(6).flatMap { length in
            let text = String(repeating: "x", count: length)
            return [SpoaAction.setVar(.request, text, .string(ByteBuffer(string: text))), .unsetVar(.response, text)]
        }
        func add(_ action: SpoaAction, to writer: inout AckWriter) throws(AckFullError) {
            switch action {
            case .setVar(let scope, let name, let value): try writer.setVar(scope, name, value)
            case .unsetVar(let scope, let name): try writer.unsetVar(scope, name)
            }
        }
        for action in actions {
            var unlimited = AckWriter(streamID: 3, frameID: 4, maxFrameSize: .max, buffer: ByteBuffer())
            try add(kept, to: &unlimited)
            try add(action, to: &unlimited)
            let exactSize = unlimited.finish().readableBytes - 4

            var fits = AckWriter(streamID: 3, frameID: 4, maxFrameSize: exactSize, buffer: ByteBuffer())
            try add(kept, to: &fits)
            try add(action, to: &fits)
            XCTAssertEqual(try decodedActions(&fits), [kept, action])

            var over = AckWriter(streamID: 3, frameID: 4, maxFrameSize: exactSize - 1, buffer: ByteBuffer())
            try add(kept, to: &over)
            let before = over.mark
            XCTAssertThrowsError(try add(action, to: &over)) {
                XCTAssertEqual($0 as? AckFullError, AckFullError(maxFrameSize: exactSize - 1))
            }
            XCTAssertEqual(over.mark, before, "a refused action leaves no bytes")
            XCTAssertEqual(try decodedActions(&over), [kept])
        }
    }

    /// The ACK is written after earlier frames in the same buffer: the limit counts
    /// this frame only.
    func testLimitCountsOnlyThisFrame() throws {
        var buffer = ByteBuffer()
        buffer.writeBytes(Array(repeating: UInt8(0xAA), count: 1000))
        var writer = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 64, buffer: buffer)
        try writer.setVar(.session, "a", .string(ByteBuffer(repeating: 0x41, count: 40)))
        let all = writer.finish()
        XCTAssertEqual(try SpoaAction.decodeList(try frame(all.getSlice(at: 1000, length: all.readableBytes - 1000)!.hex).payload),
                       [.setVar(.session, "a", .string(ByteBuffer(repeating: 0x41, count: 40)))])
    }
}
