import NIOCore

public enum VarScope: UInt8, Sendable, CaseIterable {
    case process = 0, session, transaction, request, response

    /// The prefix HAProxy uses in variable names: proc, sess, txn, req, res.
    public var name: String {
        switch self {
        case .process: "proc"
        case .session: "sess"
        case .transaction: "txn"
        case .request: "req"
        case .response: "res"
        }
    }
}

/// Adding an action would make the ACK larger than the negotiated max-frame-size.
public struct AckFullError: Error, Hashable, Sendable, CustomStringConvertible {
    public var maxFrameSize: Int
    public var description: String { "ACK full (max-frame-size \(maxFrameSize))" }
}

/// Writes one ACK frame straight into the outbound buffer.
///
/// Each action is checked against the negotiated max-frame-size as it is added, so
/// a finished ACK always fits; `mark`/`rollback` let a failed handler take back its
/// actions while earlier messages keep theirs. A handler that must wait calls
/// `suspend()` and answers later through the returned `PendingAck`.
public struct AckWriter {
    private(set) var buffer: ByteBuffer
    let frameStart: Int
    private let maxFrameSize: Int
    let streamID: UInt64
    let frameID: UInt64
    /// Where the LIST-OF-ACTIONS starts (after the frame header).
    let actionsStart: Int
    /// Who takes the frame if the handler suspends it. Unowned: the host outlives the
    /// writer of the frame it is handling, and a retain per frame would be wasted.
    private unowned(unsafe) let host: (any PendingAckHost)?
    /// The frame left with `suspend()`: `finish()` gives the buffer back without it.
    private var suspended = false

    /// `buffer` is consumed: with no other reference to its storage, writing into it
    /// neither copies nor allocates.
    public init(streamID: UInt64, frameID: UInt64, maxFrameSize: Int, buffer: consuming ByteBuffer) {
        self.init(streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize, buffer: buffer, host: nil)
    }

    init(streamID: UInt64, frameID: UInt64, maxFrameSize: Int, buffer: consuming ByteBuffer, host: (any PendingAckHost)?) {
        self.frameStart = buffer.writerIndex
        self.buffer = consume buffer
        self.maxFrameSize = maxFrameSize
        self.streamID = streamID
        self.frameID = frameID
        self.host = host
        FrameHeader(type: .ack, streamID: streamID, frameID: frameID).writeFrameStart(to: &self.buffer)
        self.actionsStart = self.buffer.writerIndex
    }

    /// Takes over a frame already begun at the start of `frame` (a suspended ACK).
    private init(adopting frame: ByteBuffer, streamID: UInt64, frameID: UInt64, maxFrameSize: Int, actionsOffset: Int) {
        self.buffer = frame
        self.frameStart = 0
        self.maxFrameSize = maxFrameSize
        self.streamID = streamID
        self.frameID = frameID
        self.host = nil
        self.actionsStart = actionsOffset
    }

    /// A position in this ACK, relative to the start of the frame: still valid after
    /// `suspend()` moves the frame to its own buffer.
    public var mark: Int { buffer.writerIndex - frameStart }

    public mutating func rollback(to mark: Int) {
        precondition(mark <= buffer.writerIndex - frameStart && mark >= actionsStart - frameStart, "rollback mark outside this ACK")
        buffer.moveWriterIndex(to: frameStart + mark)
    }

    /// SET-VAR: action 1, 3 args: scope byte, name (rawstr), typed value.
    public mutating func setVar(_ scope: VarScope, name: UnsafeRawBufferPointer, wireValue value: SpopWireValue) throws(AckFullError) {
        try appendAction(kind: 1, scope, name: name, value: value)
    }

    public mutating func setVar(_ scope: VarScope, name: UnsafeRawBufferPointer, value: SpopValue) throws(AckFullError) {
        try value.withWireValue { wire in Result { () throws(AckFullError) in try setVar(scope, name: name, wireValue: wire) } }.get()
    }

    public mutating func setVar(_ scope: VarScope, _ name: String, _ value: SpopValue) throws(AckFullError) {
        var name = name
        try name.withUTF8 { utf8 in Result { () throws(AckFullError) in try setVar(scope, name: UnsafeRawBufferPointer(utf8), value: value) } }.get()
    }

    /// UNSET-VAR: action 2, 2 args: scope byte, name (rawstr).
    public mutating func unsetVar(_ scope: VarScope, name: UnsafeRawBufferPointer) throws(AckFullError) {
        try appendAction(kind: 2, scope, name: name, value: nil)
    }

    public mutating func unsetVar(_ scope: VarScope, _ name: String) throws(AckFullError) {
        var name = name
        try name.withUTF8 { utf8 in Result { () throws(AckFullError) in try unsetVar(scope, name: UnsafeRawBufferPointer(utf8)) } }.get()
    }

    /// One action in one write: its exact length is known before anything is
    /// written, so an action that does not fit is refused with the ACK untouched.
    private mutating func appendAction(kind: UInt8, _ scope: VarScope, name: UnsafeRawBufferPointer, value: SpopWireValue?) throws(AckFullError) {
        let length = 3 + SpopVarint.encodedLength(of: UInt64(name.count)) + name.count + (value?.encodedLength ?? 0)
        guard buffer.writerIndex - frameStart - 4 + length <= maxFrameSize else {
            throw AckFullError(maxFrameSize: maxFrameSize)
        }
        buffer.writeSpopRaw(length: length) { writer in
            writer.writeByte(kind)
            writer.writeByte(value == nil ? 2 : 3)  // argument count
            writer.writeByte(scope.rawValue)
            writer.writeRawString(name)
            if let value { writer.writeValue(value) }
        }
    }

    /// Sets the length prefix and returns the buffer holding the whole frame. Call it
    /// once, last. (`mutating`, not `consuming`: a consuming self shared the storage
    /// with the caller's copy, so setting the length copied the whole buffer.)
    /// After `suspend()` the frame is not in the buffer: it is returned without it.
    public mutating func finish() -> ByteBuffer {
        if !suspended {
            buffer.setInteger(UInt32(buffer.writerIndex - frameStart - 4), at: frameStart, endianness: .big)
        }
        return buffer
    }

    /// This frame's ACK leaves later. Actions already written are kept and leave with it.
    /// After `suspend()` the writer passed to `handle` must not be used again.
    ///
    /// Only the suspending frame pays: its bytes move to a buffer of its own (the
    /// writer's buffer also holds the ACKs of the read burst written before it).
    public mutating func suspend() -> PendingAck {
        guard let host else {
            preconditionFailure("suspend() needs the writer the server (or SpoaWorker.answer) passed to handle")
        }
        precondition(!suspended, "suspend() called twice for one frame")
        let length = buffer.writerIndex - frameStart
        var own = ByteBufferAllocator().buffer(capacity: max(length, 256))
        own.writeImmutableBuffer(buffer.getSlice(at: frameStart, length: length)!)
        buffer.moveWriterIndex(to: frameStart)
        suspended = true
        let writer = AckWriter(adopting: own, streamID: streamID, frameID: frameID, maxFrameSize: maxFrameSize,
                               actionsOffset: actionsStart - frameStart)
        let pending = PendingAck(writer: writer, host: host)
        host.suspended(pending)
        return pending
    }

    /// True once `suspend()` took the frame away (the server's batch then skips it).
    var isSuspended: Bool { suspended }
}
