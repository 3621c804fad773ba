// A deliberately small, independent SPOP 2.0 encoder/decoder for the end-to-end
// tests (docs/spop-protocol.md §1-§4). It does not use SpopEngine on purpose: the
// tests must catch a codec bug instead of sharing it.

import Foundation
import SpopTestFrames

enum SpopType: UInt8 {
    case unset = 0, haproxyHello = 1, haproxyDisconnect = 2, notify = 3
    case agentHello = 101, agentDisconnect = 102, ack = 103
}

enum SpopFlags {
    static let fin: UInt32 = 0x1
    static let abort: UInt32 = 0x2
}

struct WireError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A typed data item (§3).
enum SpopValue: Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int32(Int64)    // the 64-bit pattern, read signed
    case uint32(UInt64)
    case int64(Int64)
    case uint64(UInt64)
    case ipv4([UInt8])
    case ipv6([UInt8])
    case string([UInt8])
    case binary([UInt8])

    static func str(_ s: String) -> SpopValue { .string(Array(s.utf8)) }

    var description: String {
        switch self {
        case .null: return "NULL"
        case .bool(let b): return "BOOL(\(b))"
        case .int32(let v): return "INT32(\(v))"
        case .uint32(let v): return "UINT32(\(v))"
        case .int64(let v): return "INT64(\(v))"
        case .uint64(let v): return "UINT64(\(v))"
        case .ipv4(let b): return "IPV4(\(b.map(String.init).joined(separator: ".")))"
        case .ipv6(let b): return "IPV6(\(hexString(b)))"
        case .string(let b): return "STRING(\(String(decoding: b, as: UTF8.self).debugDescription))"
        case .binary(let b): return "BINARY(\(hexString(b)))"
        }
    }

    /// Integer value of any of the four integer types, as HAProxy reads it (signed 64-bit).
    var intValue: Int64? {
        switch self {
        case .int32(let v), .int64(let v): return v
        case .uint32(let v), .uint64(let v): return Int64(bitPattern: v)
        default: return nil
        }
    }

    var stringValue: String? {
        if case .string(let b) = self { return String(decoding: b, as: UTF8.self) }
        return nil
    }
}

// MARK: - varint (§1.4)

func putVarint(_ v: UInt64, _ out: inout [UInt8]) {
    if v < 240 { out.append(UInt8(v)); return }
    out.append(UInt8(truncatingIfNeeded: v) | 0xF0)
    var r = (v - 240) >> 4
    while r >= 128 {
        out.append(UInt8(truncatingIfNeeded: r) | 0x80)
        r = (r - 128) >> 7
    }
    out.append(UInt8(r))
}

func varint(_ v: UInt64) -> [UInt8] {
    var out: [UInt8] = []
    putVarint(v, &out)
    return out
}

/// A cursor over a byte array; every read throws on truncation.
struct ByteReader {
    let bytes: [UInt8]
    var pos: Int = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { pos >= bytes.count }

    mutating func u8() throws -> UInt8 {
        guard pos < bytes.count else { throw WireError("truncated (u8 at \(pos))") }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func u32() throws -> UInt32 {
        let b = try take(4)
        return b.reduce(0) { ($0 << 8) | UInt32($1) }
    }

    mutating func take(_ n: Int) throws -> [UInt8] {
        guard n >= 0, pos + n <= bytes.count else { throw WireError("truncated (\(n) bytes at \(pos))") }
        defer { pos += n }
        return Array(bytes[pos..<pos + n])
    }

    mutating func varint() throws -> UInt64 {
        var v = UInt64(try u8())
        if v < 240 { return v }
        var shift: UInt64 = 4
        while true {
            guard shift <= 60 else { throw WireError("varint too long") }
            let b = UInt64(try u8())
            let part = b << shift
            guard part >> shift == b else { throw WireError("varint overflow") }
            let (s, o) = v.addingReportingOverflow(part)
            guard !o else { throw WireError("varint overflow") }
            v = s
            if b < 128 { return v }
            shift += 7
        }
    }

    mutating func rawString() throws -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(bytes.count) else { throw WireError("string length \(n) too big") }
        return try take(Int(n))
    }

    mutating func typed() throws -> SpopValue {
        let tb = try u8()
        switch tb & 0x0F {
        case 0: return .null
        case 1: return .bool((tb & 0xF0) == 0x10)
        case 2: return .int32(Int64(bitPattern: try varint()))
        case 3: return .uint32(try varint())
        case 4: return .int64(Int64(bitPattern: try varint()))
        case 5: return .uint64(try varint())
        case 6: return .ipv4(try take(4))
        case 7: return .ipv6(try take(16))
        case 8: return .string(try rawString())
        case 9: return .binary(try rawString())
        default: throw WireError("reserved type byte 0x\(String(tb, radix: 16))")
        }
    }
}

func encodeTyped(_ v: SpopValue, _ out: inout [UInt8]) {
    switch v {
    case .null: out.append(0x00)
    case .bool(let b): out.append(b ? 0x11 : 0x01)
    case .int32(let i): out.append(0x02); putVarint(UInt64(bitPattern: i), &out)
    case .uint32(let u): out.append(0x03); putVarint(u, &out)
    case .int64(let i): out.append(0x04); putVarint(UInt64(bitPattern: i), &out)
    case .uint64(let u): out.append(0x05); putVarint(u, &out)
    case .ipv4(let b): out.append(0x06); out += b
    case .ipv6(let b): out.append(0x07); out += b
    case .string(let b): out.append(0x08); putVarint(UInt64(b.count), &out); out += b
    case .binary(let b): out.append(0x09); putVarint(UInt64(b.count), &out); out += b
    }
}

func rawStr(_ s: String) -> [UInt8] {
    let b = Array(s.utf8)
    return varint(UInt64(b.count)) + b
}

// MARK: - frames

/// A decoded frame (without its LEN prefix).
struct SpopFrame: CustomStringConvertible {
    var type: UInt8
    var flags: UInt32
    var streamID: UInt64
    var frameID: UInt64
    var payload: [UInt8]

    var description: String {
        "frame(type \(type), flags 0x\(String(flags, radix: 16)), ids \(streamID)/\(frameID), payload \(payload.count) bytes: \(hexString(payload.prefix(64)))\(payload.count > 64 ? "…" : ""))"
    }

    static func decode(body: [UInt8]) throws -> SpopFrame {
        var r = ByteReader(body)
        let t = try r.u8()
        let f = try r.u32()
        let sid = try r.varint()
        let fid = try r.varint()
        return SpopFrame(type: t, flags: f, streamID: sid, frameID: fid, payload: Array(body[r.pos...]))
    }

    /// KV-LIST payload (HELLO / DISCONNECT), in order.
    func kvList() throws -> [(String, SpopValue)] {
        var r = ByteReader(payload)
        var out: [(String, SpopValue)] = []
        while !r.atEnd {
            let k = String(decoding: try r.rawString(), as: UTF8.self)
            out.append((k, try r.typed()))
        }
        return out
    }

    func kv() throws -> [String: SpopValue] {
        var d: [String: SpopValue] = [:]
        for (k, v) in try kvList() { d[k] = v }
        return d
    }

    /// LIST-OF-ACTIONS payload (ACK), in order.
    func actions() throws -> [SpopAction] {
        var r = ByteReader(payload)
        var out: [SpopAction] = []
        while !r.atEnd {
            let kind = try r.u8()
            let nb = try r.u8()
            switch (kind, nb) {
            case (1, 3):
                let scope = try r.u8()
                let name = String(decoding: try r.rawString(), as: UTF8.self)
                out.append(SpopAction(kind: .set, scope: scope, name: name, value: try r.typed()))
            case (2, 2):
                let scope = try r.u8()
                let name = String(decoding: try r.rawString(), as: UTF8.self)
                out.append(SpopAction(kind: .unset, scope: scope, name: name, value: nil))
            default:
                throw WireError("unknown action \(kind) with \(nb) args")
            }
        }
        return out
    }
}

struct SpopAction: CustomStringConvertible {
    enum Kind { case set, unset }
    var kind: Kind
    var scope: UInt8
    var name: String
    var value: SpopValue?

    static let scopeNames = ["proc", "sess", "txn", "req", "res"]
    var fullName: String {
        (Int(scope) < Self.scopeNames.count ? Self.scopeNames[Int(scope)] : "scope\(scope)") + "." + name
    }
    var description: String {
        kind == .set ? "set-var(\(fullName))=\(value!)" : "unset-var(\(fullName))"
    }
}

/// The last SET-VAR / UNSET-VAR per variable, keyed "scope.name" (nil value = unset).
func actionMap(_ actions: [SpopAction]) -> [String: SpopValue?] {
    var d: [String: SpopValue?] = [:]
    for a in actions { d[a.fullName] = a.value }
    return d
}

/// Build a complete frame with its LEN prefix.
func spopFrame(type: UInt8, flags: UInt32 = SpopFlags.fin, streamID: UInt64 = 0, frameID: UInt64 = 0,
               payload: [UInt8]) -> [UInt8] {
    var body: [UInt8] = [type]
    body += [UInt8(flags >> 24 & 0xFF), UInt8(flags >> 16 & 0xFF), UInt8(flags >> 8 & 0xFF), UInt8(flags & 0xFF)]
    putVarint(streamID, &body)
    putVarint(frameID, &body)
    body += payload
    return be32(UInt32(body.count)) + body
}

func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
}

func kvPayload(_ items: [(String, SpopValue)]) -> [UInt8] {
    var out: [UInt8] = []
    for (k, v) in items {
        out += rawStr(k)
        encodeTyped(v, &out)
    }
    return out
}

/// A HAPROXY-HELLO; `omit` drops keys to provoke errors.
func haproxyHello(versions: String = "2.0", maxFrameSize: UInt64 = 16380,
                  capabilities: String = "pipelining", healthcheck: Bool = false,
                  omit: Set<String> = [], flags: UInt32 = SpopFlags.fin,
                  streamID: UInt64 = 0, frameID: UInt64 = 0) -> [UInt8] {
    var items: [(String, SpopValue)] = []
    if !omit.contains("supported-versions") { items.append(("supported-versions", .str(versions))) }
    if !omit.contains("max-frame-size") { items.append(("max-frame-size", .uint32(maxFrameSize))) }
    if !omit.contains("capabilities") { items.append(("capabilities", .str(capabilities))) }
    if healthcheck {
        items.append(("healthcheck", .bool(true)))
    } else {
        items.append(("engine-id", .str("e2e-0b1e5c9a-7f3d-4a21-9c44-5e6f7a8b9c0d")))
    }
    return spopFrame(type: SpopType.haproxyHello.rawValue, flags: flags, streamID: streamID,
                     frameID: frameID, payload: kvPayload(items))
}

struct SpopMessage {
    var name: String
    var args: [(String, SpopValue)]
}

func messagesPayload(_ messages: [SpopMessage]) -> [UInt8] {
    var out: [UInt8] = []
    for m in messages {
        out += rawStr(m.name)
        out.append(UInt8(m.args.count))
        for (n, v) in m.args {
            out += rawStr(n)
            encodeTyped(v, &out)
        }
    }
    return out
}

func notifyFrame(streamID: UInt64, frameID: UInt64, _ messages: [SpopMessage],
                 flags: UInt32 = SpopFlags.fin) -> [UInt8] {
    spopFrame(type: SpopType.notify.rawValue, flags: flags, streamID: streamID, frameID: frameID,
              payload: messagesPayload(messages))
}

func haproxyDisconnect(status: UInt64, message: String) -> [UInt8] {
    spopFrame(type: SpopType.haproxyDisconnect.rawValue,
              payload: kvPayload([("status-code", .uint32(status)), ("message", .str(message))]))
}

// MARK: - hex helpers

func hexString<S: Sequence>(_ b: S) -> String where S.Element == UInt8 {
    b.map { String(format: "%02x", $0) }.joined()
}

/// FNV-1a 32-bit, the same function scripts/ip_reputation.lua uses.
func fnv1a32(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 {
        h = (h ^ UInt32(b)) &* 16_777_619
    }
    return h
}
