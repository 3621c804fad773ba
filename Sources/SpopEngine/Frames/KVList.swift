import NIOCore

/// The KV-LIST payload of HELLO and DISCONNECT frames: { KEY(rawstr) VALUE(typed) }*.
struct KVList {
    /// Later keys overwrite earlier ones, as in HAProxy.
    var values: [String: SpopValue] = [:]

    init(decoding payload: ByteBuffer) throws(SpopDecodingError) {
        var payload = payload
        while payload.readableBytes > 0 {
            let key = try payload.readSpopRawString("key")
            guard key.readableBytes > 0 else { throw SpopDecodingError("empty key in KV-LIST") }
            values[String(buffer: key)] = try payload.readSpopValue()
        }
    }

    func string(_ key: String) throws(SpopDecodingError) -> String? {
        switch values[key] {
        case nil: return nil
        case .string(let text): return String(buffer: text)
        case let other?: throw SpopDecodingError("\(key) must be a string, got \(other.type.name)")
        }
    }

    /// Any integer type is accepted, as HAProxy does.
    func integer(_ key: String) throws(SpopDecodingError) -> UInt64? {
        switch values[key] {
        case nil: return nil
        case .uint32(let v): return UInt64(v)
        case .uint64(let v): return v
        case .int32(let v): return v < 0 ? 0 : UInt64(v)
        case .int64(let v): return v < 0 ? 0 : UInt64(v)
        case let other?: throw SpopDecodingError("\(key) must be an integer, got \(other.type.name)")
        }
    }

    func bool(_ key: String) throws(SpopDecodingError) -> Bool? {
        switch values[key] {
        case nil: return nil
        case .bool(let v): return v
        case let other?: throw SpopDecodingError("\(key) must be a boolean, got \(other.type.name)")
        }
    }
}

extension ByteBuffer {
    mutating func writeSpopKV(_ key: String, _ value: SpopValue) {
        writeSpopRawString(key)
        writeSpopValue(value)
    }
}
