import ArgumentParser
import NIOCore
import SpopEngine

/// One `--arg name=type:value` of `luaspoa eval`: a typed NOTIFY argument as
/// HAProxy would send it. Without a type the value is a string; an empty name
/// (`=int32:5`) is an unnamed argument.
struct NotifyArgument: ExpressibleByArgument {
    var name: String
    var value: SpopValue

    static let types = "null, boolean, int32, uint32, int64, uint64, ipv4, ipv6, string, binary (hex digits)"

    init?(argument: String) {
        guard let parsed = try? Self.parse(argument) else { return nil }
        self = parsed
    }

    init(name: String, value: SpopValue) {
        self.name = name
        self.value = value
    }

    static func parse(_ text: String) throws -> NotifyArgument {
        guard let equals = text.firstIndex(of: "=") else {
            throw ValidationError("--arg \(text): expected name=type:value")
        }
        let name = String(text[..<equals])
        let rest = String(text[text.index(after: equals)...])
        guard let colon = rest.firstIndex(of: ":") else { return NotifyArgument(name: name, value: .string(rest)) }
        let type = String(rest[..<colon]), raw = String(rest[rest.index(after: colon)...])
        func bad() -> ValidationError { ValidationError("--arg \(text): '\(raw)' is not a valid \(type)") }
        let value: SpopValue
        switch type {
        case "null": value = .null
        case "bool", "boolean":
            guard let v = ["true": true, "1": true, "false": false, "0": false][raw] else { throw bad() }
            value = .bool(v)
        case "int32": guard let v = Int32(raw) else { throw bad() }; value = .int32(v)
        case "uint32": guard let v = UInt32(raw) else { throw bad() }; value = .uint32(v)
        case "int64": guard let v = Int64(raw) else { throw bad() }; value = .int64(v)
        case "uint64": guard let v = UInt64(raw) else { throw bad() }; value = .uint64(v)
        case "ipv4": guard let v = IPv4Address(raw) else { throw bad() }; value = .ipv4(v)
        case "ipv6": guard let v = IPv6Address(raw) else { throw bad() }; value = .ipv6(v)
        case "str", "string": value = .string(raw)
        case "bin", "binary":
            guard let bytes = hexBytes(raw) else { throw bad() }
            value = .binary(bytes)
        default:
            // "a:b" with an unknown prefix is a plain string (e.g. a URL or a time).
            return NotifyArgument(name: name, value: .string(rest))
        }
        return NotifyArgument(name: name, value: value)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
