import NIOCore
import SpopEngine

/// The message every NOTIFY carries, encoded once: only the ids change per frame.
public struct BenchMessage: Sendable {
    public var name: String
    public var arguments: [(name: String, value: SpopValue)]

    public init(name: String, arguments: [(name: String, value: SpopValue)]) {
        self.name = name
        self.arguments = arguments
    }

    /// `args ip=src`: one IPv4 address (a public one, so that scripts do their full work).
    public static func ipv4(name: String = "check-client-ip", address: IPv4Address = IPv4Address(192, 0, 2, 10)) -> BenchMessage {
        BenchMessage(name: name, arguments: [("ip", .ipv4(address))])
    }

    /// `args ip=src path=path ua=req.hdr(user-agent),... port=dst_port`: what a
    /// header-scoring agent typically receives.
    public static func request(name: String = "check-request") -> BenchMessage {
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        return BenchMessage(name: name, arguments: [
            ("ip", .ipv4(IPv4Address(192, 0, 2, 10))),
            ("path", .string("/api/v1/items/42?sort=desc&page=3")),
            ("ua", .binary(Array(userAgent.utf8))),
            ("port", .int32(8080)),
        ])
    }

    /// LIST-OF-MESSAGES with this one message.
    var encodedBody: ByteBuffer {
        var body = ByteBuffer()
        body.writeSpopRawString(name)
        body.writeInteger(UInt8(arguments.count))
        for argument in arguments {
            body.writeSpopRawString(argument.name)
            body.writeSpopValue(argument.value)
        }
        return body
    }
}
