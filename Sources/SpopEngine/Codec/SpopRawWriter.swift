import NIOCore

/// One typed value as the encoder takes it: whoever holds a value (a `SpopValue`,
/// the Lua side's C value) describes it once, and `encodedLength` and
/// `SpopRawWriter.writeValue` both read that description.
public struct SpopWireValue {
    public let type: SpopDataType
    /// BOOL: 0 or 1. Integers: the 64-bit pattern. IPV4: the address in host order.
    /// IPV6: the upper 64 bits.
    public let bits: UInt64
    /// IPV6: the lower 64 bits.
    public let low: UInt64
    /// STRING and BINARY: the bytes, borrowed until the value is written.
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    init(type: SpopDataType, bits: UInt64 = 0, low: UInt64 = 0, bytes: UnsafeRawBufferPointer = .init(start: nil, count: 0)) {
        self.type = type
        self.bits = bits
        self.low = low
        self.bytes = bytes
    }

    @inlinable
    public static var null: SpopWireValue { SpopWireValue(type: .null) }

    /// Booleans are exactly 0x11 (true) or 0x01 (false): HAProxy checks the whole flag nibble.
    @inlinable
    public static func bool(_ value: Bool) -> SpopWireValue { SpopWireValue(type: .bool, bits: value ? 1 : 0) }

    /// All four integer types carry the 64-bit two's-complement pattern: negative
    /// INT32/INT64 values must arrive sign-extended, or HAProxy stores 2^32 - 1 for -1.
    @inlinable
    public static func integer(_ type: SpopDataType, bitPattern: UInt64) -> SpopWireValue {
        precondition(type.rawValue >= SpopDataType.int32.rawValue && type.rawValue <= SpopDataType.uint64.rawValue,
                     "integer takes .int32, .uint32, .int64 or .uint64")
        return SpopWireValue(type: type, bits: bitPattern)
    }

    @inlinable
    public static func ipv4(_ address: IPv4Address) -> SpopWireValue { SpopWireValue(type: .ipv4, bits: UInt64(address.value)) }

    @inlinable
    public static func ipv6(_ address: IPv6Address) -> SpopWireValue {
        SpopWireValue(type: .ipv6, bits: address.high, low: address.low)
    }

    /// A STRING or BINARY value; `bytes` must stay valid until it is written.
    @inlinable
    public static func bytes(_ type: SpopDataType, _ bytes: UnsafeRawBufferPointer) -> SpopWireValue {
        precondition(type == .string || type == .binary, "bytes takes .string or .binary")
        return SpopWireValue(type: type, bytes: bytes)
    }

    /// The bytes `SpopRawWriter.writeValue` stores for this value.
    @inlinable
    public var encodedLength: Int {
        switch type {
        case .null, .bool: 1
        case .int32, .uint32, .int64, .uint64: 1 + SpopVarint.encodedLength(of: bits)
        case .ipv4: 5
        case .ipv6: 17
        case .string, .binary: 1 + SpopVarint.encodedLength(of: UInt64(bytes.count)) + bytes.count
        }
    }
}

extension SpopValue {
    /// Calls `body` with this value's encoder description (bytes borrowed for the call).
    @inlinable
    public func withWireValue<R>(_ body: (SpopWireValue) throws -> R) rethrows -> R {
        switch self {
        case .null: try body(.null)
        case .bool(let v): try body(.bool(v))
        case .int32(let v): try body(.integer(.int32, bitPattern: UInt64(bitPattern: Int64(v))))
        case .uint32(let v): try body(.integer(.uint32, bitPattern: UInt64(v)))
        case .int64(let v): try body(.integer(.int64, bitPattern: UInt64(bitPattern: v)))
        case .uint64(let v): try body(.integer(.uint64, bitPattern: v))
        case .ipv4(let v): try body(.ipv4(v))
        case .ipv6(let v): try body(.ipv6(v))
        case .string(let v), .binary(let v):
            try v.withUnsafeReadableBytes { try body(.bytes(type, $0)) }
        }
    }
}

/// SPOP's wire forms stored into raw bytes: the one encoder behind the ByteBuffer
/// writers (`writeSpopVarint`, `writeSpopRawString`, `writeSpopValue`), the frame
/// header and the ACK's actions. A caller reserves the exact length once
/// (`ByteBuffer.writeSpopRaw`), so a whole action costs one ByteBuffer write
/// instead of one per field, each with its own exclusivity and capacity checks.
@usableFromInline
struct SpopRawWriter {
    @usableFromInline let bytes: UnsafeMutableRawBufferPointer
    @usableFromInline var offset = 0

    @inlinable
    init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    /// Every store is bounds-checked: a length computed wrong traps instead of
    /// writing past the reservation.
    @inlinable
    mutating func writeByte(_ byte: UInt8) {
        precondition(offset < bytes.count, "SPOP encoder wrote past its reservation")
        bytes.baseAddress.unsafelyUnwrapped.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
        offset += 1
    }

    @inlinable
    mutating func writeBigEndian<T: FixedWidthInteger & BitwiseCopyable>(_ value: T) {
        precondition(bytes.count - offset >= MemoryLayout<T>.size, "SPOP encoder wrote past its reservation")
        bytes.baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    @inlinable
    mutating func writeBytes(_ source: UnsafeRawBufferPointer) {
        guard let base = source.baseAddress, source.count > 0 else { return }
        precondition(bytes.count - offset >= source.count, "SPOP encoder wrote past its reservation")
        (bytes.baseAddress.unsafelyUnwrapped + offset).copyMemory(from: base, byteCount: source.count)
        offset += source.count
    }

    /// See `SpopVarint` for the encoding; takes `SpopVarint.encodedLength(of:)` bytes.
    @inlinable
    mutating func writeVarint(_ value: UInt64) {
        if value < 240 {
            writeByte(UInt8(truncatingIfNeeded: value))
            return
        }
        writeByte(UInt8(truncatingIfNeeded: value) | 0xF0)
        var rest = (value - 240) >> 4
        while rest >= 128 {
            writeByte(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest = (rest - 128) >> 7
        }
        writeByte(UInt8(truncatingIfNeeded: rest))
    }

    /// A raw string: varint length, then the bytes (names, keys).
    @inlinable
    mutating func writeRawString(_ source: UnsafeRawBufferPointer) {
        writeVarint(UInt64(source.count))
        writeBytes(source)
    }

    /// One typed value; takes `value.encodedLength` bytes.
    @inlinable
    mutating func writeValue(_ value: SpopWireValue) {
        switch value.type {
        case .null:
            writeByte(SpopDataType.null.rawValue)
        case .bool:
            writeByte(value.bits != 0 ? 0x11 : 0x01)
        case .int32, .uint32, .int64, .uint64:
            writeByte(value.type.rawValue)
            writeVarint(value.bits)
        case .ipv4:
            writeByte(SpopDataType.ipv4.rawValue)
            writeBigEndian(UInt32(truncatingIfNeeded: value.bits))
        case .ipv6:
            writeByte(SpopDataType.ipv6.rawValue)
            writeBigEndian(value.bits)
            writeBigEndian(value.low)
        case .string, .binary:
            writeByte(value.type.rawValue)
            writeRawString(value.bytes)
        }
    }
}

extension ByteBuffer {
    /// Reserves exactly `length` bytes once and lets `encode` store into them; the
    /// encoder must fill them all (checked).
    @inlinable
    @discardableResult
    mutating func writeSpopRaw(length: Int, _ encode: (inout SpopRawWriter) -> Void) -> Int {
        writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
            var writer = SpopRawWriter(UnsafeMutableRawBufferPointer(rebasing: raw[..<length]))
            encode(&writer)
            precondition(writer.offset == length, "SPOP encoder wrote \(writer.offset) bytes of \(length) reserved")
            return length
        }
    }
}
