import NIOCore

/// HAPROXY-HELLO: the first frame of every connection.
public struct HaproxyHello: Hashable, Sendable {
    public var supportedVersions: [String]
    public var maxFrameSize: UInt64
    public var capabilities: Set<String>
    public var isHealthCheck: Bool
    public var engineID: String?

    public init(
        supportedVersions: [String] = ["2.0"], maxFrameSize: UInt64 = 16380,
        capabilities: Set<String> = ["pipelining"], isHealthCheck: Bool = false, engineID: String? = nil
    ) {
        self.supportedVersions = supportedVersions
        self.maxFrameSize = maxFrameSize
        self.capabilities = capabilities
        self.isHealthCheck = isHealthCheck
        self.engineID = engineID
    }

    /// Decodes and checks the frame; each missing or malformed part has its own status code.
    public init(_ frame: RawFrame) throws(SpopProtocolError) {
        try frame.header.requireConnectionLevel("HAPROXY-HELLO")
        let kv: KVList
        do { kv = try KVList(decoding: frame.payload) } catch { throw SpopProtocolError(.invalidFrame, "HAPROXY-HELLO: \(error)") }
        do {
            guard let versions = try kv.string("supported-versions") else {
                throw SpopProtocolError(.noVersion, "HAPROXY-HELLO has no supported-versions")
            }
            guard let maxFrameSize = try kv.integer("max-frame-size") else {
                throw SpopProtocolError(.noMaxFrameSize, "HAPROXY-HELLO has no max-frame-size")
            }
            guard let capabilities = try kv.string("capabilities") else {
                throw SpopProtocolError(.noCapabilities, "HAPROXY-HELLO has no capabilities")
            }
            self.supportedVersions = Self.tokens(versions)
            self.maxFrameSize = maxFrameSize
            self.capabilities = Set(Self.tokens(capabilities))
            self.isHealthCheck = try kv.bool("healthcheck") ?? false
            self.engineID = try kv.string("engine-id")
        } catch let error as SpopDecodingError {
            throw SpopProtocolError(.invalidFrame, "HAPROXY-HELLO: \(error)")
        } catch let error as SpopProtocolError {
            throw error
        } catch {
            throw SpopProtocolError(.invalidFrame, "HAPROXY-HELLO: \(error)")
        }
    }

    /// Splits a comma-separated list, ignoring blanks.
    static func tokens(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.trimmingBlanks() }.filter { !$0.isEmpty }
    }

    /// True when HAProxy offers a 2.x version ("2.0", " 2.0 ", "2.00"): major parsed as a number.
    public var offersVersion2: Bool {
        supportedVersions.contains { version in
            let parts = version.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 2 && Int(parts[0]) == 2 && Int(parts[1]) != nil
        }
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeSpopFrame(FrameHeader(type: .haproxyHello)) { body in
            body.writeSpopKV("supported-versions", .string(supportedVersions.joined(separator: ",")))
            body.writeSpopKV("max-frame-size", .uint32(UInt32(clamping: maxFrameSize)))
            body.writeSpopKV("capabilities", .string(capabilities.sorted().joined(separator: ",")))
            if isHealthCheck { body.writeSpopKV("healthcheck", .bool(true)) }
            if let engineID { body.writeSpopKV("engine-id", .string(engineID)) }
        }
    }
}

extension FrameHeader {
    /// HELLO and DISCONNECT frames: FIN set, stream-id and frame-id 0.
    func requireConnectionLevel(_ name: String) throws(SpopProtocolError) {
        guard flags.contains(.fin) else {
            throw SpopProtocolError(.fragmentationNotSupported, "\(name) without the FIN flag")
        }
        guard streamID == 0, frameID == 0 else {
            throw SpopProtocolError(.invalidFrame, "\(name) with stream-id \(streamID) and frame-id \(frameID), both must be 0")
        }
    }
}

extension Substring {
    func trimmingBlanks() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
