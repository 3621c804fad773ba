import CLuaSpoa
import NIOCore
import SpopEngine

extension LuaWorker {
    /// What one NOTIFY produced, read back from the ACK frame's bytes.
    public struct RoundTrip {
        /// The ACK's LIST-OF-ACTIONS payload.
        public var payload: ByteBuffer
        public var actions: [SpoaAction]
        /// The first handler error of this NOTIFY, if any.
        public var error: String?
        /// Whether some message of this NOTIFY had no registered handler.
        public var unhandled: Bool
    }

    /// Encodes a NOTIFY frame as HAProxy does, decodes it and handles it exactly as
    /// the server would, then decodes the ACK frame the worker wrote. Only the socket
    /// is missing: `luaspoa eval` and `luaspoa test` use it. A handler that waits
    /// waits here, on this thread: real time, or the test clock once a spec froze it.
    public func roundTrip(
        _ messages: [(name: String, arguments: [(name: String, value: SpopValue)])],
        streamID: UInt64 = 1, frameID: UInt64 = 1, maxFrameSize: Int = AgentCapabilities.defaultMaxFrameSize
    ) throws -> RoundTrip {
        var frame = ByteBuffer()
        NotifyFrame.write(streamID: streamID, frameID: frameID, messages: messages, to: &frame)
        let notify = try NotifyFrame(decoding: frame, maxFrameSize: maxFrameSize)
        var ack = AckWriter(streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize, buffer: ByteBuffer())
        let errorsBefore = handlerErrors, unhandledBefore = unhandledMessages
        // No event loop here: a handler that waits blocks this thread (tools only).
        inlineWaits = true
        defer { inlineWaits = false }
        handle(notify, connection: SpoaConnectionInfo(engineID: "luaspoa-test"), ack: &ack)
        let reply = try RawFrame(decoding: ack.finish(), maxFrameSize: maxFrameSize)
        guard reply.header.type == .ack else { throw SpopDecodingError("the worker did not answer with an ACK") }
        return RoundTrip(payload: reply.payload, actions: try SpoaAction.decodeList(reply.payload),
                         error: handlerErrors > errorsBefore ? lastError : nil,
                         unhandled: unhandledMessages > unhandledBefore)
    }
}

extension NotifyFrame {
    /// Decodes a complete NOTIFY frame (length prefix included).
    init(decoding bytes: ByteBuffer, maxFrameSize: Int) throws {
        let raw = try RawFrame(decoding: bytes, maxFrameSize: maxFrameSize)
        try self.init(streamID: raw.header.streamID, frameID: raw.header.frameID, payload: raw.payload)
    }
}

extension RawFrame {
    /// Reads exactly one frame from `bytes` with the server's FrameReader.
    init(decoding bytes: ByteBuffer, maxFrameSize: Int) throws {
        var reader = FrameReader()
        reader.append(bytes)
        guard let frame = try reader.next(maxFrameSize: maxFrameSize) else {
            throw SpopDecodingError("incomplete frame")
        }
        self = frame
    }
}
