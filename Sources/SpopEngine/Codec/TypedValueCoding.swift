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
        let start = self.readerIndex
        let length: UInt64
        do { length = try self.readSpopVarint() } catch { throw SpopDecodingError.truncated("\(what()) length") }
        guard length <= UInt64(self.readableBytes), let slice = self.readSlice(length: Int(length)) else {
            self.moveReaderIndex(to: start)
            throw SpopDecodingError("\(what()) of \(length) bytes runs past the end of the frame")
        }
        return slice
    }

    /// Reads one typed value. Strings and binaries are slices of this buffer (no copy).
    @inlinable
    public mutating func readSpopValue() throws(SpopDecodingError) -> SpopValue {
        guard let typeByte = self.readInteger(as: UInt8.self) else { throw .truncated("typed value") }
        guard let type = SpopDataType(rawValue: typeByte & 0x0F) else {
            throw SpopDecodingError("reserved data type \(typeByte & 0x0F)")
        }
        switch type {
        case .null:
            return .null
        case .bool:
            // HAProxy: true iff the flag nibble is exactly 0x10 (0x31 is false).
            return .bool(typeByte & 0xF0 == 0x10)
        case .int32, .uint32, .int64, .uint64:
            let bits: UInt64
            do { bits = try self.readSpopVarint() } catch { throw SpopDecodingError("bad \(type.name) varint: \(error)") }
            switch type {
            case .int32: return .int32(Int32(truncatingIfNeeded: Int64(bitPattern: bits)))
            case .uint32: return .uint32(UInt32(truncatingIfNeeded: bits))
            case .int64: return .int64(Int64(bitPattern: bits))
            default: return .uint64(bits)
            }
        case .ipv4:
            guard let value = self.readInteger(endianness: .big, as: UInt32.self) else { throw .truncated("ipv4 address") }
            return .ipv4(IPv4Address(value))
        case .ipv6:
            guard let high = self.readInteger(endianness: .big, as: UInt64.self),
                  let low = self.readInteger(endianness: .big, as: UInt64.self)
            else { throw .truncated("ipv6 address") }
            return .ipv6(IPv6Address(high: high, low: low))
        case .string:
            // HAProxy tells STRING from BINARY on the whole byte: 0x18 is a binary.
            let bytes = try self.readSpopRawString("string")
            return typeByte == SpopDataType.string.rawValue ? .string(bytes) : .binary(bytes)
        case .binary:
            return .binary(try self.readSpopRawString("binary"))
        }
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
