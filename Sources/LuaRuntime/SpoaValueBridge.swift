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
