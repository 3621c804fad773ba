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
        let counted: Result<Int, SpopDecodingError> = payload.withUnsafeReadableBytes { bytes in
            var reader = SpopRawReader(bytes)
            var count = 0
            do throws(SpopDecodingError) {
                while reader.remaining > 0 {
                    _ = try reader.readMessage()
                    count += 1
                }
            } catch {
                return .failure(error)
            }
            return .success(count)
        }
        self.messageCount = try counted.get()
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
            // Validated in NotifyFrame.init: this cannot throw. The arguments are
            // only skipped here; they are decoded when iterated.
            guard payload.readableBytes > 0,
                  let (message, length) = try? payload.peekRaw({ (reader) throws(SpopDecodingError) in try reader.readMessage() })
            else { return nil }
            defer { payload.moveReaderIndex(forwardBy: length) }
            return SpoaMessage(
                name: payload.readableSlice(message.name), argumentCount: message.argumentCount,
                argumentBytes: payload.readableSlice(message.arguments))
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
    /// The encoded arguments (validated with the frame), decoded on iteration.
    let argumentBytes: ByteBuffer

    public var nameString: String { String(buffer: name) }
    public var arguments: Arguments { Arguments(bytes: argumentBytes, remaining: argumentCount) }

    /// Calls `body` with each argument read in place, without slices or reference
    /// counting: for hand-offs to C. The views point into the frame's storage: they
    /// stay valid while that storage lives unmodified, past `body` too.
    public func forEachArgument(_ body: (SpoaArgumentView) -> Void) {
        argumentBytes.withUnsafeReadableBytes { bytes in
            var reader = SpopRawReader(bytes)
            for _ in 0..<argumentCount {
                // Validated with the frame: this cannot throw.
                guard let argument = try? reader.readArgument() else { return }
                body(SpoaArgumentView(
                    name: UnsafeRawBufferPointer(rebasing: bytes[argument.name]), value: argument.value,
                    bytes: UnsafeRawBufferPointer(rebasing: bytes[argument.value.bytes])))
            }
        }
    }

    public struct Arguments: Sequence, IteratorProtocol, Sendable {
        var bytes: ByteBuffer
        var remaining: Int

        public mutating func next() -> SpoaArgument? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            // Validated with the frame: this cannot throw.
            guard let (argument, length) = try? bytes.peekRaw({ (reader) throws(SpopDecodingError) in try reader.readArgument() })
            else { return nil }
            defer { bytes.moveReaderIndex(forwardBy: length) }
            return SpoaArgument(name: bytes.readableSlice(argument.name), value: argument.value.value(slicing: bytes))
        }
    }
}

/// One argument read in place (`SpoaMessage.forEachArgument`).
public struct SpoaArgumentView {
    /// "" when HAProxy's `args` gave none.
    public let name: UnsafeRawBufferPointer
    public let value: SpopRawValue
    /// STRING and BINARY: the value's bytes.
    public let bytes: UnsafeRawBufferPointer
}

/// One argument: its name ("" when HAProxy's `args` gave none) and its value.
public struct SpoaArgument: Sendable {
    public let name: ByteBuffer
    public let value: SpopValue

    public var nameString: String { String(buffer: name) }
}
