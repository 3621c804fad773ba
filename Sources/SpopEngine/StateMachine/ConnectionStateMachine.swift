import NIOCore

/// The life of one SPOP connection as a pure value: frames in, actions out.
///
/// It owns every protocol decision (HELLO negotiation, state checks, fragment
/// reassembly, the status code of each violation); the channel handler only
/// executes the actions, so all of this is tested without a socket.
public struct ConnectionStateMachine {
    public enum Action: Equatable {
        /// Send AGENT-HELLO; after a health check, close once it is written.
        case sendHello(AgentHello, closeAfterWrite: Bool)
        /// Hand a complete NOTIFY to the worker; its ACK must follow (now, or when the
        /// handler completes a suspended frame).
        case processNotify(NotifyFrame)
        /// Send AGENT-DISCONNECT, then close. `peer` is HAProxy's own DISCONNECT, if that caused it.
        /// Suspended frames are cancelled: HAProxy ignores ACKs on a closing connection.
        case disconnect(Disconnect, peer: Disconnect?)
        /// Nothing to send; `reason`, when set, is worth a debug log line.
        case none(reason: String?)
    }

    enum State {
        case awaitingHello
        case running(Session)
        case closed
    }

    /// What the handshake settled, plus a fragmented NOTIFY being reassembled.
    struct Session {
        var maxFrameSize: Int
        var engineID: String?
        /// Both sides announced `async`: this connection's ACKs may leave on a sibling.
        var async = false
        var fragment: PartialNotify?
        /// The agent is stopping: frames already received are still answered, then goodbye.
        var draining = false
        /// Both sides announced `pipelining`: several NOTIFYs in flight, ACKs in any order.
        var pipelining = true
        /// NOTIFYs whose handler suspended and whose ACK has not left yet.
        var suspendedFrames = 0
        /// Draining, and nothing more arrived: goodbye once the suspended frames are answered.
        var inputQuiet = false
    }

    struct PartialNotify {
        var streamID: UInt64
        var frameID: UInt64
        var payload: ByteBuffer
    }

    public let capabilities: AgentCapabilities
    private var state: State = .awaitingHello

    public init(capabilities: AgentCapabilities) { self.capabilities = capabilities }

    /// The limit for the next frame's LEN: own limit before the handshake, negotiated after.
    public var maxFrameSize: Int {
        if case .running(let session) = state { return session.maxFrameSize }
        return capabilities.maxFrameSize
    }

    public var engineID: String? {
        if case .running(let session) = state { return session.engineID }
        return nil
    }

    /// `async` was negotiated (HAProxy offered it and the agent announced it).
    public var asyncNegotiated: Bool {
        if case .running(let session) = state { return session.async }
        return false
    }

    /// Memory the fragmented NOTIFY being reassembled keeps alive (0 when none): its
    /// buffer's whole storage, which outgrows the payload (doubling on append, or the
    /// read buffer a first fragment is a slice of).
    public var fragmentBytes: Int {
        if case .running(let session) = state { return session.fragment?.payload.storageCapacity ?? 0 }
        return 0
    }

    /// Keeping this connection's fragments would pass the process-wide bound: status 13.
    public mutating func fragmentRefused(_ reason: String) -> Action {
        if case .closed = state { return .none(reason: nil) }
        return fail(SpopProtocolError(.resourceAllocation, reason))
    }

    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    public mutating func frameReceived(_ frame: RawFrame) -> Action {
        do {
            switch state {
            case .awaitingHello:
                return try helloReceived(frame)
            case .running(var session):
                let action = try runningFrameReceived(frame, session: &session)
                if case .running = state { state = .running(session) }
                return action
            case .closed:
                return .none(reason: "frame after close ignored")
            }
        } catch {
            return fail(error)
        }
    }

    /// The frame decoder refused the byte stream (too big, too short, bad header).
    public mutating func decodingFailed(_ error: SpopProtocolError) -> Action {
        if case .closed = state { return .none(reason: nil) }
        return fail(error)
    }

    /// A hello or idle timer expired: AGENT-DISCONNECT status 2 with `reason`, then close.
    public mutating func timedOut(_ reason: String) -> Action {
        if case .closed = state { return .none(reason: nil) }
        return fail(SpopProtocolError(.timeout, reason))
    }

    /// The agent is shutting down. Before the handshake: goodbye at once. After it,
    /// NOTIFYs already on their way (socket buffer, reader) must still be answered,
    /// so the connection keeps reading until `inputQuiet()` says nothing more came.
    public mutating func drain() -> Action {
        switch state {
        case .closed:
            return .none(reason: nil)
        case .awaitingHello:
            return goodbye()
        case .running(var session):
            session.draining = true
            state = .running(session)
            return .none(reason: "draining: answering the NOTIFYs already received")
        }
    }

    /// Draining, and the handler saw no new bytes for a while: once everything received
    /// is answered (suspended frames included), say goodbye with status 0 and close.
    public mutating func inputQuiet() -> Action {
        guard case .running(var session) = state, session.draining else { return .none(reason: nil) }
        guard session.suspendedFrames == 0 else {
            session.inputQuiet = true
            state = .running(session)
            return .none(reason: "draining: waiting for \(session.suspendedFrames) suspended frames")
        }
        return goodbye()
    }

    /// The worker suspended the NOTIFY just processed: its ACK leaves later.
    public mutating func frameSuspended() {
        guard case .running(var session) = state else { return }
        session.suspendedFrames += 1
        state = .running(session)
    }

    /// A suspended frame's ACK left (or it was cancelled). Draining with quiet input,
    /// the last one ends the connection.
    public mutating func suspendedFrameEnded() -> Action {
        guard case .running(var session) = state, session.suspendedFrames > 0 else { return .none(reason: nil) }
        session.suspendedFrames -= 1
        state = .running(session)
        if session.draining, session.inputQuiet, session.suspendedFrames == 0 { return goodbye() }
        return .none(reason: nil)
    }

    /// Frames whose ACK waits for a suspended handler.
    public var suspendedFrames: Int {
        if case .running(let session) = state { return session.suspendedFrames }
        return 0
    }

    /// Without pipelining HAProxy has one NOTIFY in flight: while it is suspended, no
    /// further frame is taken in (HAProxy sends none before the ACK anyway).
    public var awaitsSuspendedFrame: Bool {
        if case .running(let session) = state { return !session.pipelining && session.suspendedFrames > 0 }
        return false
    }

    public var isDraining: Bool {
        if case .running(let session) = state { return session.draining }
        return false
    }

    private mutating func goodbye() -> Action {
        state = .closed
        return .disconnect(Disconnect(status: .normal, message: "agent is shutting down"), peer: nil)
    }

    public var isRunning: Bool {
        if case .running = state { return true }
        return false
    }

    /// The peer closed the TCP connection: in-flight work is dropped, nothing is sent.
    public mutating func closed() {
        state = .closed
    }

    private mutating func fail(_ error: SpopProtocolError) -> Action {
        state = .closed
        return .disconnect(Disconnect(error), peer: nil)
    }

    private mutating func helloReceived(_ frame: RawFrame) throws(SpopProtocolError) -> Action {
        guard frame.header.type == .haproxyHello else {
            throw SpopProtocolError(.invalidFrame, "expected HAPROXY-HELLO, got frame type \(frame.header.typeCode)")
        }
        let hello = try HaproxyHello(frame)
        guard hello.offersVersion2 else {
            throw SpopProtocolError(
                .unsupportedVersion, "no supported version: HAProxy offers \(hello.supportedVersions.joined(separator: ",")), the agent speaks 2.0"
            )
        }
        guard hello.maxFrameSize >= 256 else {
            throw SpopProtocolError(.badMaxFrameSize, "max-frame-size \(hello.maxFrameSize) is below 256")
        }
        let negotiated = min(capabilities.maxFrameSize, Int(clamping: hello.maxFrameSize))
        let reply = AgentHello(maxFrameSize: UInt32(negotiated), capabilities: capabilities.announced)
        if hello.isHealthCheck {
            state = .closed
            return .sendHello(reply, closeAfterWrite: true)
        }
        let async = capabilities.async && hello.capabilities.contains("async")
        let pipelining = capabilities.pipelining && hello.capabilities.contains("pipelining")
        state = .running(Session(maxFrameSize: negotiated, engineID: hello.engineID, async: async, pipelining: pipelining))
        return .sendHello(reply, closeAfterWrite: false)
    }

    private mutating func runningFrameReceived(_ frame: RawFrame, session: inout Session) throws(SpopProtocolError) -> Action {
        let header = frame.header
        switch header.type {
        case .notify:
            session.inputQuiet = false
            if let partial = session.fragment {
                throw SpopProtocolError(
                    .interlacedFrames,
                    "NOTIFY \(header.streamID)/\(header.frameID) while fragments of \(partial.streamID)/\(partial.frameID) are pending"
                )
            }
            if header.flags.contains(.abort) {
                return .none(reason: "NOTIFY with ABORT and no pending fragments ignored")
            }
            guard header.flags.contains(.fin) else {
                guard capabilities.fragmentation else {
                    throw SpopProtocolError(.fragmentationNotSupported, "fragmented NOTIFY, but fragmentation was not announced")
                }
                try checkReassembledSize(frame.payload.readableBytes)
                session.fragment = PartialNotify(streamID: header.streamID, frameID: header.frameID, payload: frame.payload)
                return .none(reason: nil)
            }
            return .processNotify(try notify(header.streamID, header.frameID, frame.payload))

        case .unset:
            guard capabilities.fragmentation else {
                throw SpopProtocolError(.fragmentationNotSupported, "UNSET fragment, but fragmentation was not announced")
            }
            guard var partial = session.fragment else {
                if header.flags.contains(.abort) { return .none(reason: "ABORT for a frame no longer pending ignored") }
                throw SpopProtocolError(
                    .frameIDNotFound, "UNSET fragment for \(header.streamID)/\(header.frameID), but no fragmented NOTIFY is pending"
                )
            }
            guard partial.streamID == header.streamID, partial.frameID == header.frameID else {
                throw SpopProtocolError(
                    .interlacedFrames,
                    "fragment of \(header.streamID)/\(header.frameID) while \(partial.streamID)/\(partial.frameID) is pending"
                )
            }
            if header.flags.contains(.abort) {
                session.fragment = nil
                return .none(reason: "HAProxy aborted fragmented NOTIFY \(header.streamID)/\(header.frameID)")
            }
            session.inputQuiet = false
            try checkReassembledSize(partial.payload.readableBytes + frame.payload.readableBytes)
            session.fragment = nil  // drop the reference so the append below does not copy
            var incoming = frame.payload
            partial.payload.writeBuffer(&incoming)
            guard header.flags.contains(.fin) else {
                session.fragment = partial
                return .none(reason: nil)
            }
            return .processNotify(try notify(partial.streamID, partial.frameID, partial.payload))

        case .haproxyDisconnect:
            let peer = try Disconnect(frame)
            state = .closed
            return .disconnect(Disconnect(status: .normal, message: "normal"), peer: peer)

        case .haproxyHello:
            throw SpopProtocolError(.invalidFrame, "second HAPROXY-HELLO after the handshake")

        case .agentHello, .agentDisconnect, .ack, nil:
            // The length makes skipping safe, and the spec asks agents to skip unknown types.
            return .none(reason: "frame type \(header.typeCode) is not for an agent; skipped")
        }
    }

    private func checkReassembledSize(_ size: Int) throws(SpopProtocolError) {
        guard size <= capabilities.maxReassembledSize else {
            throw SpopProtocolError(
                .frameTooBig, "fragmented NOTIFY of more than \(capabilities.maxReassembledSize) bytes refused"
            )
        }
    }

    private func notify(_ streamID: UInt64, _ frameID: UInt64, _ payload: ByteBuffer) throws(SpopProtocolError) -> NotifyFrame {
        do {
            return try NotifyFrame(streamID: streamID, frameID: frameID, payload: payload)
        } catch {
            throw SpopProtocolError(.invalidFrame, "NOTIFY \(streamID)/\(frameID): \(error)")
        }
    }
}

extension NotifyFrame: Equatable {
    public static func == (lhs: NotifyFrame, rhs: NotifyFrame) -> Bool {
        lhs.streamID == rhs.streamID && lhs.frameID == rhs.frameID && lhs.payload == rhs.payload
    }
}
