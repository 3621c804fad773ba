import NIOCore

/// Cuts the TCP byte stream into frames: a 4-byte big-endian LEN, then LEN bytes.
///
/// LEN is checked against the current limit as soon as its 4 bytes arrive, before
/// the frame is buffered, so a peer cannot make the agent hold more than one frame
/// of the negotiated size.
public struct FrameReader {
    /// The smallest frame: type, flags and two one-byte ids.
    static let minimumFrameSize = 7

    private var pending: ByteBuffer?

    public init() {}

    public var bufferedBytes: Int { pending?.readableBytes ?? 0 }

    public mutating func append(_ bytes: ByteBuffer) {
        if pending == nil {
            pending = bytes
        } else {
            var bytes = bytes
            pending!.writeBuffer(&bytes)
        }
    }

    /// The next complete frame, or nil until more bytes arrive.
    public mutating func next(maxFrameSize: Int) throws(SpopProtocolError) -> RawFrame? {
        guard var buffer = pending else { return nil }
        pending = nil  // keep `buffer` uniquely referenced while it is consumed
        defer { keep(buffer) }
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        guard length <= maxFrameSize else {
            throw SpopProtocolError(.frameTooBig, "frame of \(length) bytes exceeds max-frame-size \(maxFrameSize)")
        }
        guard length >= Self.minimumFrameSize else {
            throw SpopProtocolError(.invalidFrame, "frame of \(length) bytes is shorter than the 7-byte minimum")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var frame = buffer.readSlice(length: Int(length))!
        do {
            let header = try FrameHeader.read(from: &frame)
            return RawFrame(header: header, payload: frame)
        } catch {
            throw SpopProtocolError(.invalidFrame, "\(error)")
        }
    }

    private mutating func keep(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        var buffer = buffer
        if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
        pending = buffer
    }
}
