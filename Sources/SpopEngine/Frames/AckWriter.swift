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
/// actions while earlier messages keep theirs.
public struct AckWriter {
    private(set) var buffer: ByteBuffer
    private let frameStart: Int
    private let maxFrameSize: Int
    /// Where the LIST-OF-ACTIONS starts (after the frame header).
    let actionsStart: Int

    /// `buffer` is consumed: with no other reference to its storage, writing into it
    /// neither copies nor allocates.
    public init(streamID: UInt64, frameID: UInt64, maxFrameSize: Int, buffer: consuming ByteBuffer) {
        self.frameStart = buffer.writerIndex
        self.buffer = consume buffer
        self.maxFrameSize = maxFrameSize
        self.buffer.writeInteger(UInt32(0))
        FrameHeader(type: .ack, streamID: streamID, frameID: frameID).write(to: &self.buffer)
        self.actionsStart = self.buffer.writerIndex
    }

    public var mark: Int { buffer.writerIndex }

    public mutating func rollback(to mark: Int) {
        precondition(mark <= buffer.writerIndex && mark > frameStart, "rollback mark outside this ACK")
        buffer.moveWriterIndex(to: mark)
    }

    /// SET-VAR: action 1, 3 args: scope byte, name (rawstr), typed value.
    public mutating func setVar(_ scope: VarScope, name: UnsafeRawBufferPointer, writeValue: (inout ByteBuffer) -> Void) throws(AckFullError) {
        try append { buffer in
            buffer.writeMultipleIntegers(UInt8(1), UInt8(3), scope.rawValue)
            buffer.writeSpopRawString(name)
            writeValue(&buffer)
        }
    }

    public mutating func setVar(_ scope: VarScope, name: UnsafeRawBufferPointer, value: SpopValue) throws(AckFullError) {
        try setVar(scope, name: name) { $0.writeSpopValue(value) }
    }

    public mutating func setVar(_ scope: VarScope, _ name: String, _ value: SpopValue) throws(AckFullError) {
        var name = name
        try name.withUTF8 { utf8 in Result { () throws(AckFullError) in try setVar(scope, name: UnsafeRawBufferPointer(utf8), value: value) } }.get()
    }

    /// UNSET-VAR: action 2, 2 args: scope byte, name (rawstr).
    public mutating func unsetVar(_ scope: VarScope, name: UnsafeRawBufferPointer) throws(AckFullError) {
        try append { buffer in
            buffer.writeMultipleIntegers(UInt8(2), UInt8(2), scope.rawValue)
            buffer.writeSpopRawString(name)
        }
    }

    public mutating func unsetVar(_ scope: VarScope, _ name: String) throws(AckFullError) {
        var name = name
        try name.withUTF8 { utf8 in Result { () throws(AckFullError) in try unsetVar(scope, name: UnsafeRawBufferPointer(utf8)) } }.get()
    }

    private mutating func append(_ write: (inout ByteBuffer) -> Void) throws(AckFullError) {
        let start = buffer.writerIndex
        write(&buffer)
        if buffer.writerIndex - frameStart - 4 > maxFrameSize {
            buffer.moveWriterIndex(to: start)
            throw AckFullError(maxFrameSize: maxFrameSize)
        }
    }

    /// Sets the length prefix and returns the buffer holding the whole frame. Call it
    /// once, last. (`mutating`, not `consuming`: a consuming self shared the storage
    /// with the caller's copy, so setting the length copied the whole buffer.)
    public mutating func finish() -> ByteBuffer {
        buffer.setInteger(UInt32(buffer.writerIndex - frameStart - 4), at: frameStart, endianness: .big)
        return buffer
    }
}

/// An action read back from an ACK (tests, the benchmark client, `luaspoa send`).
public enum SpoaAction: Equatable, Sendable, CustomStringConvertible {
    case setVar(VarScope, String, SpopValue)
    case unsetVar(VarScope, String)

    public var description: String {
        switch self {
        case .setVar(let scope, let name, let value): "set-var(\(scope.name).\(name)) \(value)"
        case .unsetVar(let scope, let name): "unset-var(\(scope.name).\(name))"
        }
    }

    /// Decodes a LIST-OF-ACTIONS payload.
    public static func decodeList(_ payload: ByteBuffer) throws(SpopDecodingError) -> [SpoaAction] {
        var payload = payload
        var actions: [SpoaAction] = []
        while payload.readableBytes > 0 {
            guard let (kind, count, scopeByte) = payload.readMultipleIntegers(as: (UInt8, UInt8, UInt8).self) else {
                throw .truncated("action")
            }
            guard let scope = VarScope(rawValue: scopeByte) else { throw SpopDecodingError("unknown scope \(scopeByte)") }
            let name = String(buffer: try payload.readSpopRawString("variable name"))
            switch (kind, count) {
            case (1, 3): actions.append(.setVar(scope, name, try payload.readSpopValue()))
            case (2, 2): actions.append(.unsetVar(scope, name))
            default: throw SpopDecodingError("unknown action \(kind) with \(count) arguments")
            }
        }
        return actions
    }
}
