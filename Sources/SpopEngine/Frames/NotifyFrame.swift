import NIOCore

/// A complete NOTIFY (fragments already reassembled): LIST-OF-MESSAGES until the end.
///
/// The payload is checked once when the frame is built, so iterating its messages
/// and arguments afterwards cannot fail and copies no bytes.
public struct NotifyFrame: Sendable {
    public var streamID: UInt64
    public var frameID: UInt64
    /// The validated LIST-OF-MESSAGES bytes.
    public private(set) var payload: ByteBuffer
    public let messageCount: Int

    public init(streamID: UInt64, frameID: UInt64, payload: ByteBuffer) throws(SpopDecodingError) {
        self.streamID = streamID
        self.frameID = frameID
        self.payload = payload
        var reader = payload
        var count = 0
        while reader.readableBytes > 0 {
            _ = try reader.readSpoaMessage(skippingArguments: true)
            count += 1
        }
        self.messageCount = count
    }

    /// The same frame in storage of its own, for handlers that keep it past `handle`
    /// (the payload is otherwise a slice of the connection's read buffer).
    public func copied() -> NotifyFrame {
        var copy = self
        copy.payload = ByteBufferAllocator().buffer(buffer: payload)
        return copy
    }

    public var messages: Messages { Messages(payload: payload) }

    public struct Messages: Sequence, IteratorProtocol, Sendable {
        var payload: ByteBuffer

        public mutating func next() -> SpoaMessage? {
            guard payload.readableBytes > 0 else { return nil }
            // Validated in NotifyFrame.init: this cannot throw.
            return try? payload.readSpoaMessage(skippingArguments: true)
        }
    }

    /// Encodes a NOTIFY frame (HAProxy's side: tests, the benchmark client).
    public static func write(
        streamID: UInt64, frameID: UInt64, messages: [(name: String, arguments: [(name: String, value: SpopValue)])],
        flags: FrameFlags = .fin, to buffer: inout ByteBuffer
    ) {
        buffer.writeSpopFrame(FrameHeader(type: .notify, flags: flags, streamID: streamID, frameID: frameID)) { body in
            for message in messages {
                body.writeSpopRawString(message.name)
                body.writeInteger(UInt8(message.arguments.count))
                for argument in message.arguments {
                    body.writeSpopRawString(argument.name)
                    body.writeSpopValue(argument.value)
                }
            }
        }
    }
}

/// One message of a NOTIFY: a name and up to 255 arguments.
public struct SpoaMessage: Sendable {
    public let name: ByteBuffer
    public let argumentCount: Int
    /// The encoded arguments, decoded on iteration.
    let argumentBytes: ByteBuffer

    public var nameString: String { String(buffer: name) }
    public var arguments: Arguments { Arguments(bytes: argumentBytes, remaining: argumentCount) }

    public struct Arguments: Sequence, IteratorProtocol, Sendable {
        var bytes: ByteBuffer
        var remaining: Int

        public mutating func next() -> SpoaArgument? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            return try? bytes.readSpoaArgument()
        }
    }
}

/// One argument: its name ("" when HAProxy's `args` gave none) and its value.
public struct SpoaArgument: Sendable {
    public let name: ByteBuffer
    public let value: SpopValue

    public var nameString: String { String(buffer: name) }
}

extension ByteBuffer {
    mutating func readSpoaArgument() throws(SpopDecodingError) -> SpoaArgument {
        let name = try readSpopRawString("argument name")
        return SpoaArgument(name: name, value: try readSpopValue())
    }

    mutating func readSpoaMessage(skippingArguments: Bool) throws(SpopDecodingError) -> SpoaMessage {
        let name = try readSpopRawString("message name")
        guard let count = readInteger(as: UInt8.self) else { throw .truncated("NB-ARGS of message \(String(buffer: name))") }
        var argumentBytes = self
        for index in 0..<Int(count) {
            do { _ = try readSpoaArgument() } catch {
                throw SpopDecodingError("message \(String(buffer: name)), argument \(index + 1) of \(count): \(error)")
            }
        }
        let arguments = argumentBytes.readSlice(length: readerIndex - argumentBytes.readerIndex)!
        return SpoaMessage(name: name, argumentCount: Int(count), argumentBytes: arguments)
    }
}
