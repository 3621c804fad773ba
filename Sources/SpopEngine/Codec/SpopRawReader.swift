import NIOCore

/// One typed value as read in place: numbers decoded, bytes as positions in what
/// was read. No object and no reference count: validating a NOTIFY and the Lua
/// hand-off use it as is, `readSpopValue` turns it into a `SpopValue`.
public struct SpopRawValue: Sendable {
    /// STRING only when the whole type byte is 0x08 (HAProxy reads other flags as BINARY).
    public let type: SpopDataType
    /// BOOL: 0 or 1. Integers: the value as a 64-bit pattern (INT32 sign-extended,
    /// UINT32 zero-extended). IPV4: the address in host order. IPV6: the upper 64 bits.
    public let bits: UInt64
    /// IPV6: the lower 64 bits.
    public let low: UInt64
    /// STRING and BINARY: the bytes' offsets, from where reading started.
    public let bytes: Range<Int>

    @inlinable
    init(type: SpopDataType, bits: UInt64 = 0, low: UInt64 = 0, bytes: Range<Int> = 0..<0) {
        self.type = type
        self.bits = bits
        self.low = low
        self.bytes = bytes
    }

    /// The value, its bytes as slices of `buffer`'s readable bytes.
    @inlinable
    func value(slicing buffer: ByteBuffer) -> SpopValue {
        switch type {
        case .null: .null
        case .bool: .bool(bits != 0)
        case .int32: .int32(Int32(truncatingIfNeeded: bits))
        case .uint32: .uint32(UInt32(truncatingIfNeeded: bits))
        case .int64: .int64(Int64(bitPattern: bits))
        case .uint64: .uint64(bits)
        case .ipv4: .ipv4(IPv4Address(UInt32(truncatingIfNeeded: bits)))
        case .ipv6: .ipv6(IPv6Address(high: bits, low: low))
        case .string: .string(buffer.readableSlice(bytes))
        case .binary: .binary(buffer.readableSlice(bytes))
        }
    }
}

/// SPOP's wire forms read from raw bytes: the one decoder behind the ByteBuffer
/// readers (`readSpopVarint`, `readSpopRawString`, `readSpopValue`) and NOTIFY
/// validation. It builds no slices, so a pass over a frame costs no reference
/// counting. On error `offset` may have moved; the ByteBuffer readers then leave
/// their reader index where it was.
@usableFromInline
struct SpopRawReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset = 0

    @inlinable
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inlinable
    var remaining: Int { bytes.count - offset }

    @inlinable
    mutating func readByte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inlinable
    mutating func readBigEndian<T: FixedWidthInteger & BitwiseCopyable>(_: T.Type) -> T? {
        guard remaining >= MemoryLayout<T>.size else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// See `SpopVarint` for the encoding.
    @inlinable
    mutating func readVarint() throws(VarintError) -> UInt64 {
        guard let first = readByte() else { throw .truncated }
        var value = UInt64(first)
        if first < 240 { return value }
        var shift: UInt64 = 4
        while true {
            guard let byte = readByte() else { throw .truncated }
            guard shift <= 60 else { throw .overflow }
            let part = UInt64(byte) << shift
            guard part >> shift == UInt64(byte) else { throw .overflow }
            let (sum, overflowed) = value.addingReportingOverflow(part)
            guard !overflowed else { throw .overflow }
            value = sum
            if byte < 128 { return value }
            shift += 7
        }
    }

    /// A raw string (varint length, then bytes): the bytes' offsets.
    @inlinable
    mutating func readRawString(_ what: @autoclosure () -> String) throws(SpopDecodingError) -> Range<Int> {
        let length: UInt64
        do { length = try readVarint() } catch { throw SpopDecodingError.truncated("\(what()) length") }
        guard length <= UInt64(remaining) else {
            throw SpopDecodingError("\(what()) of \(length) bytes runs past the end of the frame")
        }
        defer { offset += Int(length) }
        return offset..<(offset + Int(length))
    }

    @inlinable
    mutating func readValue() throws(SpopDecodingError) -> SpopRawValue {
        guard let typeByte = readByte() else { throw .truncated("typed value") }
        guard let type = SpopDataType(rawValue: typeByte & 0x0F) else {
            throw SpopDecodingError("reserved data type \(typeByte & 0x0F)")
        }
        switch type {
        case .null:
            return SpopRawValue(type: .null)
        case .bool:
            // HAProxy: true iff the flag nibble is exactly 0x10 (0x31 is false).
            return SpopRawValue(type: .bool, bits: typeByte & 0xF0 == 0x10 ? 1 : 0)
        case .int32, .uint32, .int64, .uint64:
            let bits: UInt64
            do { bits = try readVarint() } catch { throw SpopDecodingError("bad \(type.name) varint: \(error)") }
            switch type {
            case .int32: return SpopRawValue(type: type, bits: UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: bits))))
            case .uint32: return SpopRawValue(type: type, bits: UInt64(UInt32(truncatingIfNeeded: bits)))
            default: return SpopRawValue(type: type, bits: bits)
            }
        case .ipv4:
            guard let address = readBigEndian(UInt32.self) else { throw .truncated("ipv4 address") }
            return SpopRawValue(type: .ipv4, bits: UInt64(address))
        case .ipv6:
            guard let high = readBigEndian(UInt64.self), let low = readBigEndian(UInt64.self) else {
                throw .truncated("ipv6 address")
            }
            return SpopRawValue(type: .ipv6, bits: high, low: low)
        case .string:
            // HAProxy tells STRING from BINARY on the whole byte: 0x18 is a binary.
            let bytes = try readRawString("string")
            return SpopRawValue(type: typeByte == SpopDataType.string.rawValue ? .string : .binary, bytes: bytes)
        case .binary:
            return SpopRawValue(type: .binary, bytes: try readRawString("binary"))
        }
    }

    /// One NOTIFY argument: its name's offsets and its value.
    @inlinable
    mutating func readArgument() throws(SpopDecodingError) -> (name: Range<Int>, value: SpopRawValue) {
        let name = try readRawString("argument name")
        return (name, try readValue())
    }

    /// One NOTIFY message: its name's offsets, NB-ARGS, and its arguments' offsets,
    /// every argument checked on the way.
    @usableFromInline
    mutating func readMessage() throws(SpopDecodingError) -> (name: Range<Int>, argumentCount: Int, arguments: Range<Int>) {
        let name = try readRawString("message name")
        let bytes = self.bytes
        let text = { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[name]), as: UTF8.self) }
        guard let count = readByte() else { throw .truncated("NB-ARGS of message \(text())") }
        let start = offset
        for index in 0..<Int(count) {
            do { _ = try readArgument() } catch {
                throw SpopDecodingError("message \(text()), argument \(index + 1) of \(count): \(error)")
            }
        }
        return (name, Int(count), start..<offset)
    }
}

extension ByteBuffer {
    /// Runs `body` on the readable bytes without moving the reader index: its result
    /// and how many bytes it read. (Slices of what it read must be taken before the
    /// reader index moves past them: `getSlice` serves readable bytes only.)
    @inlinable
    func peekRaw<T, E: Error>(_ body: (inout SpopRawReader) throws(E) -> T) throws(E) -> (T, length: Int) {
        let result: Result<(T, Int), E> = withUnsafeReadableBytes { bytes in
            var reader = SpopRawReader(bytes)
            do throws(E) {
                let value = try body(&reader)
                return .success((value, reader.offset))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// `peekRaw`, then the reader index moves past what `body` read (not on error).
    @inlinable
    mutating func readRaw<T, E: Error>(_ body: (inout SpopRawReader) throws(E) -> T) throws(E) -> T {
        let (value, length) = try peekRaw(body)
        moveReaderIndex(forwardBy: length)
        return value
    }

    /// Bytes at `range`, counted from the reader index, as a slice.
    @inlinable
    func readableSlice(_ range: Range<Int>) -> ByteBuffer {
        getSlice(at: readerIndex + range.lowerBound, length: range.count)!
    }
}
