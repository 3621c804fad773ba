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

    // MARK: writers: each reserves its exact length once and stores through `SpopRawWriter`.

    /// A raw string: varint length, then the bytes (names, keys).
    @inlinable
    public mutating func writeSpopRawString(_ bytes: UnsafeRawBufferPointer) {
        self.writeSpopRaw(length: SpopVarint.encodedLength(of: UInt64(bytes.count)) + bytes.count) { $0.writeRawString(bytes) }
    }

    @inlinable
    public mutating func writeSpopRawString(_ text: String) {
        var text = text
        text.withUTF8 { self.writeSpopRawString(UnsafeRawBufferPointer($0)) }
    }

    @inlinable
    mutating func writeSpopWireValue(_ value: SpopWireValue) {
        self.writeSpopRaw(length: value.encodedLength) { $0.writeValue(value) }
    }

    @inlinable
    public mutating func writeSpopValue(_ value: SpopValue) {
        value.withWireValue { self.writeSpopWireValue($0) }
    }
}
