import CLuaSpoa
import NIOCore
import SpopEngine

extension spoa_value {
    /// The C view of a decoded value. Byte values borrow the ByteBuffer's storage:
    /// the caller keeps that storage alive and unmodified while C reads them.
    init(borrowing value: SpopValue) {
        self.init()
        type = value.type.rawValue
        switch value {
        case .null:
            break
        case .bool(let flag):
            v.i = flag ? 1 : 0
        case .int32(let n):
            v.i = Int64(n)
        case .uint32(let n):
            v.i = Int64(n)
        case .int64(let n):
            v.i = n
        case .uint64(let n):
            v.i = Int64(bitPattern: n)
        case .ipv4(let address):
            withUnsafeMutableBytes(of: &v.ip) { $0.storeBytes(of: address.value.bigEndian, as: UInt32.self) }
        case .ipv6(let address):
            withUnsafeMutableBytes(of: &v.ip) {
                $0.storeBytes(of: address.high.bigEndian, toByteOffset: 0, as: UInt64.self)
                $0.storeBytes(of: address.low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
        case .string(let bytes), .binary(let bytes):
            bytes.withUnsafeReadableBytesWithStorageManagement { raw, _ in
                v.bytes.ptr = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
                v.bytes.len = raw.count
            }
        }
    }
}

extension SpopValue {
    /// The value a C `spoa_value` holds (bytes are copied).
    init(_ value: spoa_value) {
        let data = value.v
        let bytes = { UnsafeRawBufferPointer(start: data.bytes.ptr, count: data.bytes.len) }
        switch SpopDataType(rawValue: value.type) ?? .null {
        case .null: self = .null
        case .bool: self = .bool(data.i != 0)
        case .int32: self = .int32(Int32(truncatingIfNeeded: data.i))
        case .uint32: self = .uint32(UInt32(truncatingIfNeeded: data.i))
        case .int64: self = .int64(data.i)
        case .uint64: self = .uint64(UInt64(bitPattern: data.i))
        case .ipv4: self = .ipv4(value.ipv4Address)
        case .ipv6: self = .ipv6(value.ipv6Address)
        case .string: self = .string(ByteBuffer(bytes: bytes()))
        case .binary: self = .binary(ByteBuffer(bytes: bytes()))
        }
    }
}

extension spoa_value {
    /// IPV4 bytes (network order in ip[0..3]).
    var ipv4Address: IPv4Address {
        var ip = v.ip
        return IPv4Address(UInt32(bigEndian: withUnsafeBytes(of: &ip) { $0.loadUnaligned(as: UInt32.self) }))
    }

    /// IPV6 bytes (network order in ip[0..15]).
    var ipv6Address: IPv6Address {
        var ip = v.ip
        let (high, low) = withUnsafeBytes(of: &ip) {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        return IPv6Address(high: UInt64(bigEndian: high), low: UInt64(bigEndian: low))
    }
}
