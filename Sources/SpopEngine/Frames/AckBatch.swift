import NIOCore

/// The ACKs of one read burst, encoded back to back into one buffer that is reused
/// from burst to burst: once warm, answering a NOTIFY allocates nothing.
///
/// The buffer handed to the socket is also kept as `spare`. When the socket has
/// written it, `spare` is the only reference again and the next burst writes into
/// the same memory; if the socket still holds it, the first write copies it
/// (copy-on-write), which is correct, only slower.
public struct AckBatch {
    private var pending: ByteBuffer?
    private var spare: ByteBuffer?
    /// A larger buffer is not kept between bursts, so idle connections stay small.
    public static let maxSpareCapacity = 64 * 1024

    public init() {}

    /// Bytes of ACKs encoded since the last `drain()`.
    public var byteCount: Int { pending?.readableBytes ?? 0 }

    /// Encodes one ACK after the burst's previous ones; `body` adds its actions.
    public mutating func append(
        streamID: UInt64, frameID: UInt64, maxFrameSize: Int, allocator: ByteBufferAllocator,
        _ body: (inout AckWriter) -> Void
    ) {
        append(streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize, allocator: allocator, host: nil, body)
    }

    /// As above; a frame `body` suspends goes to `host` and is not in the batch.
    /// Returns false if the frame was suspended.
    @discardableResult
    mutating func append(
        streamID: UInt64, frameID: UInt64, maxFrameSize: Int, allocator: ByteBufferAllocator,
        host: (any PendingAckHost)?, _ body: (inout AckWriter) -> Void
    ) -> Bool {
        var ack = AckWriter(streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize, buffer: takeBuffer(allocator), host: host)
        body(&ack)
        let answered = !ack.isSuspended
        let buffer = ack.finish()
        if buffer.readableBytes > 0 {
            pending = buffer
        } else if buffer.capacity <= Self.maxSpareCapacity {
            spare = buffer  // the burst's only frame was suspended: nothing to write
        }
        return answered
    }

    /// The burst's bytes to write, or nil if no ACK was added since the last call.
    public mutating func drain() -> ByteBuffer? {
        guard let buffer = pending else { return nil }
        pending = nil
        if buffer.capacity <= Self.maxSpareCapacity { spare = buffer }
        return buffer
    }

    private mutating func takeBuffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        if let buffer = pending {
            pending = nil  // moved out: AckWriter must hold the only reference
            return buffer
        }
        guard var buffer = spare else { return allocator.buffer(capacity: 512) }
        spare = nil
        buffer.clear()
        return buffer
    }
}
