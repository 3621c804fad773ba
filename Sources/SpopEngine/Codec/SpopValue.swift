import NIOCore

/// The ten SPOP data types (the low nibble of a typed value's first byte).
public enum SpopDataType: UInt8, Sendable, CaseIterable {
    case null = 0, bool, int32, uint32, int64, uint64, ipv4, ipv6, string, binary

    /// The name scripts and logs use: "null", "boolean", "int32", ...
    public var name: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int32: "int32"
        case .uint32: "uint32"
        case .int64: "int64"
        case .uint64: "uint64"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .string: "string"
        case .binary: "binary"
        }
    }
}

/// One typed value as it travels in NOTIFY arguments and SET-VAR actions.
///
/// STRING and BINARY hold slices of the frame's buffer: decoding copies no bytes.
public enum SpopValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case ipv4(IPv4Address)
    case ipv6(IPv6Address)
    case string(ByteBuffer)
    case binary(ByteBuffer)

    public var type: SpopDataType {
        switch self {
        case .null: .null
        case .bool: .bool
        case .int32: .int32
        case .uint32: .uint32
        case .int64: .int64
        case .uint64: .uint64
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        case .string: .string
        case .binary: .binary
        }
    }

    public static func string(_ text: String) -> SpopValue { .string(ByteBuffer(string: text)) }
    public static func binary(_ bytes: [UInt8]) -> SpopValue { .binary(ByteBuffer(bytes: bytes)) }
}

extension SpopValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let v): "boolean:\(v)"
        case .int32(let v): "int32:\(v)"
        case .uint32(let v): "uint32:\(v)"
        case .int64(let v): "int64:\(v)"
        case .uint64(let v): "uint64:\(v)"
        case .ipv4(let v): "ipv4:\(v)"
        case .ipv6(let v): "ipv6:\(v)"
        case .string(let v): "string:\(String(buffer: v).debugDescription)"
        case .binary(let v): "binary:\(v.readableBytesView.map { String($0, radix: 16) }.joined(separator: " "))"
        }
    }
}
