import NIOCore

/// AGENT-HELLO: the agent's answer to HAPROXY-HELLO, health checks included.
public struct AgentHello: Hashable, Sendable {
    public var version: String
    public var maxFrameSize: UInt32
    public var capabilities: [String]

    public init(version: String = "2.0", maxFrameSize: UInt32, capabilities: [String]) {
        self.version = version
        self.maxFrameSize = maxFrameSize
        self.capabilities = capabilities
    }

    /// Always all three keys, each once, flags exactly FIN: HAProxy 3.1+ checks are strict.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeSpopFrame(FrameHeader(type: .agentHello)) { body in
            body.writeSpopKV("version", .string(version))
            body.writeSpopKV("max-frame-size", .uint32(maxFrameSize))
            body.writeSpopKV("capabilities", .string(capabilities.joined(separator: ",")))
        }
    }

    public init(_ frame: RawFrame) throws(SpopProtocolError) {
        let kv: KVList
        do { kv = try KVList(decoding: frame.payload) } catch { throw SpopProtocolError(.invalidFrame, "AGENT-HELLO: \(error)") }
        do {
            guard let version = try kv.string("version") else { throw SpopProtocolError(.noVersion, "AGENT-HELLO has no version") }
            guard let size = try kv.integer("max-frame-size") else { throw SpopProtocolError(.noMaxFrameSize, "AGENT-HELLO has no max-frame-size") }
            self.version = version
            self.maxFrameSize = UInt32(clamping: size)
            self.capabilities = HaproxyHello.tokens(try kv.string("capabilities") ?? "")
        } catch let error as SpopProtocolError {
            throw error
        } catch {
            throw SpopProtocolError(.invalidFrame, "AGENT-HELLO: \(error)")
        }
    }
}
