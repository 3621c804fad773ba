import CLuaSpoa
import NIOCore
import SpopEngine

// The union inside `spoa_value` is read and written only through the C accessors
// in luaspoa.h (`luaspoa_value_*`): Swift's optimizer miscompiles raw-pointer access
// to an imported C array member, which broke every IPv4 address in release builds.

extension spoa_value {
    /// The C view of a decoded value. Byte values borrow the ByteBuffer's storage:
    /// the caller keeps that storage alive and unmodified while C reads them.
    init(borrowing value: SpopValue) {
        self.init()
        let type = value.type.rawValue
        switch value {
        case .null:
            self.type = type
        case .bool(let flag):
            luaspoa_value_set_int(&self, type, flag ? 1 : 0)
        case .int32(let n):
            luaspoa_value_set_int(&self, type, Int64(n))
        case .uint32(let n):
            luaspoa_value_set_int(&self, type, Int64(n))
        case .int64(let n):
            luaspoa_value_set_int(&self, type, n)
        case .uint64(let n):
            luaspoa_value_set_int(&self, type, Int64(bitPattern: n))
        case .ipv4(let address):
            luaspoa_value_set_ipv4(&self, address.value)
        case .ipv6(let address):
            luaspoa_value_set_ipv6(&self, address.high, address.low)
        case .string(let bytes), .binary(let bytes):
            var raw = UnsafeRawBufferPointer(start: nil, count: 0)
            bytes.withUnsafeReadableBytesWithStorageManagement { bytes, _ in raw = bytes }
            luaspoa_value_set_bytes(&self, type, raw.baseAddress, raw.count)
        }
    }

    /// The C view of a value read in place; `bytes` are its STRING or BINARY bytes,
    /// borrowed like those of `init(borrowing:)`.
    init(_ value: SpopRawValue, bytes: UnsafeRawBufferPointer) {
        self.init()
        switch value.type {
        case .null:
            self.type = value.type.rawValue
        case .ipv4:
            luaspoa_value_set_ipv4(&self, UInt32(truncatingIfNeeded: value.bits))
        case .ipv6:
            luaspoa_value_set_ipv6(&self, value.bits, value.low)
        case .string, .binary:
            luaspoa_value_set_bytes(&self, value.type.rawValue, bytes.baseAddress, bytes.count)
        case .bool, .int32, .uint32, .int64, .uint64:
            luaspoa_value_set_int(&self, value.type.rawValue, Int64(bitPattern: value.bits))
        }
    }

    /// The 64-bit pattern of BOOL (0/1) and the four integer types.
    var integerBits: Int64 {
        withUnsafePointer(to: self) { luaspoa_value_int($0) }
    }

    /// STRING and BINARY bytes, borrowed from whoever filled the value.
    var borrowedBytes: UnsafeRawBufferPointer {
        let bytes = withUnsafePointer(to: self) { luaspoa_value_bytes($0) }
        return UnsafeRawBufferPointer(start: bytes.ptr, count: bytes.len)
    }

    /// IPV4 address (network order in ip[0..3] on the C side).
    var ipv4Address: IPv4Address {
        IPv4Address(withUnsafePointer(to: self) { luaspoa_value_ipv4($0) })
    }

    /// IPV6 address (network order in ip[0..15] on the C side).
    var ipv6Address: IPv6Address {
        withUnsafePointer(to: self) {
            IPv6Address(high: luaspoa_value_ipv6_half($0, 0), low: luaspoa_value_ipv6_half($0, 1))
        }
    }
}

extension spoa_arg {
    /// The C view of an argument read in place (name and bytes borrowed from its frame).
    init(_ argument: SpoaArgumentView) {
        self.init(
            name: argument.name.baseAddress?.assumingMemoryBound(to: CChar.self), name_len: argument.name.count,
            value: spoa_value(argument.value, bytes: argument.bytes))
    }
}

extension SpopValue {
    /// The value a C `spoa_value` holds (bytes are copied).
    init(_ value: spoa_value) {
        switch SpopDataType(rawValue: value.type) ?? .null {
        case .null: self = .null
        case .bool: self = .bool(value.integerBits != 0)
        case .int32: self = .int32(Int32(truncatingIfNeeded: value.integerBits))
        case .uint32: self = .uint32(UInt32(truncatingIfNeeded: value.integerBits))
        case .int64: self = .int64(value.integerBits)
        case .uint64: self = .uint64(UInt64(bitPattern: value.integerBits))
        case .ipv4: self = .ipv4(value.ipv4Address)
        case .ipv6: self = .ipv6(value.ipv6Address)
        case .string: self = .string(ByteBuffer(bytes: value.borrowedBytes))
        case .binary: self = .binary(ByteBuffer(bytes: value.borrowedBytes))
        }
    }
}

extension spoa_value {
    /// The encoder's view of a value produced by the C side (integers as 64-bit
    /// patterns; bytes borrowed from the C side for as long as it keeps them).
    var wireValue: SpopWireValue {
        switch SpopDataType(rawValue: type) ?? .null {
        case .null: .null
        case .bool: .bool(integerBits != 0)
        case let type where type.rawValue >= SpopDataType.int32.rawValue && type.rawValue <= SpopDataType.uint64.rawValue:
            .integer(type, bitPattern: UInt64(bitPattern: integerBits))
        case .ipv4: .ipv4(ipv4Address)
        case .ipv6: .ipv6(ipv6Address)
        case let type: .bytes(type, borrowedBytes)
        }
    }
}
