import NIOCore

/// SPOP's variable-length unsigned integer (HAProxy's "peers" encoding, not LEB128).
///
/// Values below 240 take one byte. Larger values start with `value | 0xF0`, then
/// 7-bit groups whose high bit marks continuation. The decoder adds whole bytes,
/// continuation bits included; the encoder's `- 240` and `- 128` steps compensate.
public enum SpopVarint {
    /// The longest encoding (2^64 - 1) takes 10 bytes.
    public static let maxLength = 10

    @inlinable
    public static func encodedLength(of value: UInt64) -> Int {
        if value < 240 { return 1 }
        var length = 2
        var rest = (value - 240) >> 4
        while rest >= 128 {
            rest = (rest - 128) >> 7
            length += 1
        }
        return length
    }
}

public enum VarintError: Error, Equatable {
    /// The buffer ended inside the varint.
    case truncated
    /// More than 10 bytes, or a value above 2^64 - 1.
    case overflow
}

extension ByteBuffer {
    @inlinable
    @discardableResult
    public mutating func writeSpopVarint(_ value: UInt64) -> Int {
        self.writeSpopRaw(length: SpopVarint.encodedLength(of: value)) { $0.writeVarint(value) }
    }

    /// Reads one varint; on error the reader index is left unchanged.
    @inlinable
    public mutating func readSpopVarint() throws(VarintError) -> UInt64 {
        try readRaw { (reader) throws(VarintError) in try reader.readVarint() }
    }
}
