import NIOCore

/// HAPROXY-DISCONNECT and AGENT-DISCONNECT share one layout: status-code and message.
public struct Disconnect: Hashable, Sendable {
    public var status: SpopStatus
    public var message: String

    public init(status: SpopStatus, message: String) {
        self.status = status
        self.message = message
    }

    public init(_ error: SpopProtocolError) {
        self.init(status: error.status, message: error.message)
    }

    public init(_ frame: RawFrame) throws(SpopProtocolError) {
        let name = frame.header.type == .agentDisconnect ? "AGENT-DISCONNECT" : "HAPROXY-DISCONNECT"
        try frame.header.requireConnectionLevel(name)
        do {
            let kv = try KVList(decoding: frame.payload)
            self.status = SpopStatus(rawValue: UInt32(clamping: try kv.integer("status-code") ?? 99))
            self.message = try kv.string("message") ?? ""
        } catch {
            throw SpopProtocolError(.invalidFrame, "\(name): \(error)")
        }
    }

    /// HAProxy 2.6 treats a message over 255 bytes as an invalid frame, so it is cut.
    public func write(as type: FrameType = .agentDisconnect, to buffer: inout ByteBuffer) {
        var text = message
        if text.utf8.count > 255 { text = String(decoding: text.utf8.prefix(255), as: UTF8.self) }
        while text.utf8.count > 255 { text.removeLast() }
        buffer.writeSpopFrame(FrameHeader(type: type)) { body in
            body.writeSpopKV("status-code", .uint32(status.rawValue))
            body.writeSpopKV("message", .string(text))
        }
    }
}
