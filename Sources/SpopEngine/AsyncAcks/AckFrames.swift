import NIOCore

/// Cuts a buffer of back-to-back frames (4-byte length prefix each) into one slice per frame.
enum AckFrames {
    static func split(_ buffer: ByteBuffer) -> [ByteBuffer] {
        var rest = buffer
        var frames: [ByteBuffer] = []
        while let length = rest.getInteger(at: rest.readerIndex, as: UInt32.self),
              let frame = rest.readSlice(length: 4 + Int(length)) {
            frames.append(frame)
        }
        if rest.readableBytes > 0 { frames.append(rest) }  // never for AckBatch output; kept whole
        return frames
    }

    static func byteCount(_ frames: [ByteBuffer]) -> Int { frames.reduce(0) { $0 + $1.readableBytes } }
}
