import NIOCore

/// Why a payload could not be decoded; the connection answers with status 4.
public struct SpopDecodingError: Error, Equatable, CustomStringConvertible {
    public var description: String

    @inlinable
    public init(_ description: String) { self.description = description }

    @usableFromInline
    static func truncated(_ what: String) -> SpopDecodingError { .init("truncated \(what)") }
}

extension ByteBuffer {
    /// Reads a raw string (varint length, then bytes) as a slice of this buffer.
    @inlinable
    public mutating func readSpopRawString(_ what: @autoclosure () -> String) throws(SpopDecodingError) -> ByteBuffer {
        let (bytes, length) = try peekRaw { (reader) throws(SpopDecodingError) in try reader.readRawString(what()) }
        defer { moveReaderIndex(forwardBy: length) }
        return readableSlice(bytes)
    }

    /// Reads one typed value. Strings and binaries are slices of this buffer (no copy).
    @inlinable
    public mutating func readSpopValue() throws(SpopDecodingError) -> SpopValue {
        let (value, length) = try peekRaw { (reader) throws(SpopDecodingError) in try reader.readValue() }
        defer { moveReaderIndex(forwardBy: length) }
        return value.value(slicing: self)
    }

    // MARK: writers, one per wire form; `writeSpopValue` and the Lua bridge both use them.

    @inlinable
    public mutating func writeSpopNull() { self.writeInteger(SpopDataType.null.rawValue) }

    /// Booleans are exactly 0x11 (true) or 0x01 (false): HAProxy checks the whole flag nibble.
    @inlinable
    public mutating func writeSpopBool(_ value: Bool) { self.writeInteger(value ? UInt8(0x11) : UInt8(0x01)) }

    /// All four integer types carry the 64-bit two's-complement pattern: negative
    /// INT32/INT64 values must arrive sign-extended, or HAProxy stores 2^32 - 1 for -1.
    @inlinable
    public mutating func writeSpopInteger(_ type: SpopDataType, bitPattern: UInt64) {
        self.writeInteger(type.rawValue)
        self.writeSpopVarint(bitPattern)
    }

    @inlinable
    public mutating func writeSpopIPv4(_ address: IPv4Address) {
        self.writeInteger(SpopDataType.ipv4.rawValue)
        self.writeInteger(address.value, endianness: .big)
    }

    @inlinable
    public mutating func writeSpopIPv6(_ address: IPv6Address) {
        self.writeInteger(SpopDataType.ipv6.rawValue)
        self.writeInteger(address.high, endianness: .big)
        self.writeInteger(address.low, endianness: .big)
    }

    /// A raw string: varint length, then the bytes (names, keys).
    @inlinable
    public mutating func writeSpopRawString(_ bytes: UnsafeRawBufferPointer) {
        self.writeSpopVarint(UInt64(bytes.count))
        self.writeBytes(bytes)
    }

    @inlinable
    public mutating func writeSpopRawString(_ text: String) {
        var text = text
        text.withUTF8 { self.writeSpopRawString(UnsafeRawBufferPointer($0)) }
    }

    /// A STRING or BINARY typed value.
    @inlinable
    public mutating func writeSpopBytes(_ type: SpopDataType, _ bytes: UnsafeRawBufferPointer) {
        precondition(type == .string || type == .binary, "writeSpopBytes takes .string or .binary")
        self.writeInteger(type.rawValue)
        self.writeSpopRawString(bytes)
    }

    @inlinable
    public mutating func writeSpopValue(_ value: SpopValue) {
        switch value {
        case .null: self.writeSpopNull()
        case .bool(let v): self.writeSpopBool(v)
        case .int32(let v): self.writeSpopInteger(.int32, bitPattern: UInt64(bitPattern: Int64(v)))
        case .uint32(let v): self.writeSpopInteger(.uint32, bitPattern: UInt64(v))
        case .int64(let v): self.writeSpopInteger(.int64, bitPattern: UInt64(bitPattern: v))
        case .uint64(let v): self.writeSpopInteger(.uint64, bitPattern: v)
        case .ipv4(let v): self.writeSpopIPv4(v)
        case .ipv6(let v): self.writeSpopIPv6(v)
        case .string(let v), .binary(let v):
            v.withUnsafeReadableBytes { self.writeSpopBytes(value.type, $0) }
        }
    }
}
