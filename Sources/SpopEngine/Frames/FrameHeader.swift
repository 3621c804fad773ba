import NIOCore

public enum FrameType: UInt8, Sendable {
    case unset = 0
    case haproxyHello = 1
    case haproxyDisconnect = 2
    case notify = 3
    case agentHello = 101
    case agentDisconnect = 102
    case ack = 103
}

public struct FrameFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Last (or only) fragment.
    public static let fin = FrameFlags(rawValue: 1)
    /// Cancels a fragmented frame; always sent with FIN.
    public static let abort = FrameFlags(rawValue: 2)
}

/// TYPE(u8) FLAGS(u32 BE) STREAM-ID(varint) FRAME-ID(varint), the start of every frame.
public struct FrameHeader: Hashable, Sendable {
    /// The raw type byte: unknown types are kept so that they can be skipped or refused.
    public var typeCode: UInt8
    public var flags: FrameFlags
    public var streamID: UInt64
    public var frameID: UInt64

    public init(type: FrameType, flags: FrameFlags = .fin, streamID: UInt64 = 0, frameID: UInt64 = 0) {
        self.init(typeCode: type.rawValue, flags: flags, streamID: streamID, frameID: frameID)
    }

    public init(typeCode: UInt8, flags: FrameFlags, streamID: UInt64, frameID: UInt64) {
        self.typeCode = typeCode
        self.flags = flags
        self.streamID = streamID
        self.frameID = frameID
    }

    public var type: FrameType? { FrameType(rawValue: typeCode) }

    static func read(from buffer: inout ByteBuffer) throws(SpopDecodingError) -> FrameHeader {
        guard let typeCode = buffer.readInteger(as: UInt8.self),
              let flags = buffer.readInteger(endianness: .big, as: UInt32.self)
        else { throw .truncated("frame header") }
        do {
            let streamID = try buffer.readSpopVarint()
            let frameID = try buffer.readSpopVarint()
            return FrameHeader(typeCode: typeCode, flags: FrameFlags(rawValue: flags), streamID: streamID, frameID: frameID)
        } catch {
            throw SpopDecodingError("bad stream-id/frame-id varint (\(error))")
        }
    }

    /// The bytes `write(into:)` stores.
    var encodedLength: Int { 5 + SpopVarint.encodedLength(of: streamID) + SpopVarint.encodedLength(of: frameID) }

    func write(into writer: inout SpopRawWriter) {
        writer.writeByte(typeCode)
        writer.writeBigEndian(flags.rawValue)
        writer.writeVarint(streamID)
        writer.writeVarint(frameID)
    }

    /// Writes a frame's start: a zero length prefix to be set once the frame is
    /// complete, then this header.
    func writeFrameStart(to buffer: inout ByteBuffer) {
        buffer.writeSpopRaw(length: 4 + encodedLength) { writer in
            writer.writeBigEndian(UInt32(0))
            write(into: &writer)
        }
    }
}

/// One frame as it came off the wire: its header and its payload (a slice, no copy).
public struct RawFrame: Sendable {
    public var header: FrameHeader
    public var payload: ByteBuffer

    public init(header: FrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }
}

extension ByteBuffer {
    /// Writes a whole frame: the 4-byte length, the header, then `body`'s bytes.
    /// Returns the frame's LEN (length prefix excluded).
    @discardableResult
    mutating func writeSpopFrame(_ header: FrameHeader, body: (inout ByteBuffer) -> Void) -> Int {
        let lengthIndex = self.writerIndex
        header.writeFrameStart(to: &self)
        body(&self)
        let length = self.writerIndex - lengthIndex - 4
        self.setInteger(UInt32(length), at: lengthIndex, endianness: .big)
        return length
    }
}
