import NIOCore
import SpopEngine

/// Fuzz entry point for everything a peer's bytes reach before Lua: FrameReader,
/// ConnectionStateMachine, NOTIFY message/argument iteration, HELLO/DISCONNECT
/// decoding and ACK action lists.
///
/// An input is one mode byte, then the bytes one peer sends on one connection:
/// - bit 0: the stream starts with a valid HAPROXY-HELLO (so mutations explore the
///   running state instead of dying at the handshake);
/// - bits 1-4: read-chunk size (0: all at once, n: n bytes per read), as TCP may split;
/// - bit 5: the agent drains at the end (shutdown); bit 6: a hello/idle timer fires;
/// - bit 7: fragmentation not announced.
///
/// A crash, a precondition failure or a sanitizer report is a finding; so is a
/// broken invariant, checked with `precondition` below.
public enum FrameStreamFuzzer {
    /// Small enough that the fuzzer reaches the reassembly limit.
    static let maxReassembledSize = 4096

    public static func run(_ data: UnsafeRawBufferPointer) {
        guard let mode = data.first else { return }
        let capabilities = AgentCapabilities(fragmentation: mode & 0x80 == 0, maxReassembledSize: maxReassembledSize)
        var connection = Connection(capabilities: capabilities)
        if mode & 1 != 0 { connection.receive(validHello) }
        let stream = UnsafeRawBufferPointer(rebasing: data.dropFirst())
        let chunk = Int((mode >> 1) & 0x0f)
        var offset = 0
        while offset < stream.count, !connection.done {
            let end = chunk == 0 ? stream.count : min(stream.count, offset + chunk)
            connection.receive(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: stream[offset..<end])))
            offset = end
        }
        if mode & 0x20 != 0 { connection.end(connection.drain()) }
        if mode & 0x40 != 0 { connection.end(connection.machine.timedOut("fuzz timer")) }
        // The whole input as an ACK's LIST-OF-ACTIONS (what `luaspoa bench` and tests decode).
        ActionListCheck.roundTrip(ByteBuffer(bytes: stream))
    }

    /// A HAPROXY-HELLO as HAProxy 2.6 sends it.
    static let validHello: ByteBuffer = {
        var buffer = ByteBuffer()
        HaproxyHello(supportedVersions: ["2.0"], maxFrameSize: 16380, capabilities: ["pipelining", "fragmentation"],
                     isHealthCheck: false).write(to: &buffer)
        return buffer
    }()

    /// What SpopChannelHandler does with its reader and state machine, minus the socket.
    struct Connection {
        var machine: ConnectionStateMachine
        var reader = FrameReader()
        var done = false

        init(capabilities: AgentCapabilities) { machine = ConnectionStateMachine(capabilities: capabilities) }

        mutating func receive(_ bytes: ByteBuffer) {
            reader.append(bytes)
            while !done {
                let frame: RawFrame?
                do {
                    frame = try reader.next(maxFrameSize: machine.maxFrameSize)
                } catch {
                    let action = machine.decodingFailed(error)
                    precondition(machine.isClosed, "a decoding error must close the connection")
                    if case .sendHello = action { preconditionFailure("HELLO sent after a decoding error") }
                    done = true
                    return
                }
                guard let frame else { return }
                precondition(frame.payload.readableBytes + 7 <= machine.maxFrameSize + 20, "frame larger than the limit")
                decodeAsEveryType(frame)
                perform(machine.frameReceived(frame))
            }
        }

        mutating func perform(_ action: ConnectionStateMachine.Action) {
            switch action {
            case .sendHello(let hello, let closeAfterWrite):
                precondition(Int(hello.maxFrameSize) <= machine.capabilities.maxFrameSize, "negotiated above own limit")
                precondition(Int(hello.maxFrameSize) >= 256, "negotiated below 256")
                var encoded = ByteBuffer()
                hello.write(to: &encoded)
                if closeAfterWrite { done = true }
            case .processNotify(let notify):
                NotifyCheck.touchEveryArgument(notify)
            case .disconnect(let disconnect, _):
                precondition(machine.isClosed, "DISCONNECT sent but the connection stays open")
                var encoded = ByteBuffer()
                disconnect.write(to: &encoded)
                done = true
            case .none:
                break
            }
        }

        /// A drain keeps a running connection open to answer what already came in; once
        /// the input is quiet it says goodbye.
        mutating func drain() -> ConnectionStateMachine.Action {
            let action = machine.drain()
            guard machine.isDraining else { return action }
            precondition(machine.isRunning, "a draining connection must keep answering NOTIFYs")
            return machine.inputQuiet()
        }

        /// A drain or a timer: whatever the state, the connection ends closed.
        mutating func end(_ action: ConnectionStateMachine.Action) {
            precondition(machine.isClosed && !machine.isRunning, "still open after drain/timeout")
            if case .disconnect = action { precondition(!done, "DISCONNECT sent twice") }
            done = true
        }

        /// Every frame also goes through the other decoders, whatever its type.
        func decodeAsEveryType(_ frame: RawFrame) {
            _ = try? HaproxyHello(frame)
            _ = try? AgentHello(frame)
            _ = try? Disconnect(frame)
            _ = try? NotifyFrame(streamID: frame.header.streamID, frameID: frame.header.frameID, payload: frame.payload)
            ActionListCheck.roundTrip(frame.payload)
        }
    }
}
