import NIOCore
import SpopEngine

/// HAProxy's side of one SPOP connection: HELLO, then NOTIFYs kept in flight, each
/// ACK checked and timed, a new NOTIFY sent in its place.
///
/// Each in-flight slot is a stream-id (0..<window) with its own frame-id counter,
/// so matching an ACK to its NOTIFY is an array lookup, whatever the ACK order.
final class BenchConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Plan {
        var body: ByteBuffer
        var inFlight: Int
        var check: AckCheck
        var maxFrameSize: Int
        var engineID: String
    }

    private let plan: Plan
    private let recorder: BenchRecorder
    /// Succeeds with "pipelining negotiated" once AGENT-HELLO arrives.
    private let handshake: EventLoopPromise<Bool>
    private var frames = FrameReader()
    private var maxFrameSize: Int
    private var running = false
    private var handshakeDone = false
    private var frameIDs: [UInt64] = []
    private var sentAt: [UInt64] = []
    private var outgoing: ByteBuffer?
    /// The last burst's buffer: once NIO has written it, the next burst reuses its storage.
    private var written: ByteBuffer?

    init(plan: Plan, recorder: BenchRecorder, handshake: EventLoopPromise<Bool>) {
        self.plan = plan
        self.recorder = recorder
        self.handshake = handshake
        self.maxFrameSize = plan.maxFrameSize
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 128)
        HaproxyHello(maxFrameSize: UInt64(plan.maxFrameSize), capabilities: ["pipelining"], engineID: plan.engineID)
            .write(to: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        frames.append(unwrapInboundIn(data))
        do {
            while context.channel.isActive, let frame = try frames.next(maxFrameSize: maxFrameSize) {
                received(frame, context: context)
            }
        } catch {
            fail(.protocolError, "\(error)", context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let buffer = outgoing else { return }
        outgoing = nil
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        written = buffer
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !recorder.stopping { recorder.record(.connectionLost) }
        failHandshake(BenchRunError.handshake("connection closed before AGENT-HELLO"))
    }

    private func failHandshake(_ error: BenchRunError) {
        guard !handshakeDone else { return }
        handshakeDone = true
        handshake.fail(error)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.connectionLost, "\(error)", context: context)
    }

    private func received(_ frame: RawFrame, context: ChannelHandlerContext) {
        switch frame.header.type {
        case .ack where running:
            acknowledged(frame)
        case .agentHello where !running:
            helloReceived(frame, context: context)
        case .agentDisconnect:
            let reason = (try? Disconnect(frame)).map { "status \($0.status.rawValue): \($0.message)" } ?? "unreadable"
            fail(.disconnected, reason, context: context)
        default:
            fail(.unexpectedFrame, "type \(frame.header.typeCode)", context: context)
        }
    }

    private func helloReceived(_ frame: RawFrame, context: ChannelHandlerContext) {
        let hello: AgentHello
        do { hello = try AgentHello(frame) } catch {
            return fail(.connectFailed, "\(error)", context: context)
        }
        let pipelining = hello.capabilities.contains("pipelining")
        maxFrameSize = Int(hello.maxFrameSize)
        let window = pipelining ? plan.inFlight : 1
        frameIDs = [UInt64](repeating: 0, count: window)
        sentAt = [UInt64](repeating: 0, count: window)
        running = true
        handshakeDone = true
        handshake.succeed(pipelining)
        let now = NIODeadline.now().uptimeNanoseconds
        for slot in 0..<window { send(slot, at: now) }  // written by channelReadComplete
    }

    private func acknowledged(_ frame: RawFrame) {
        let now = NIODeadline.now().uptimeNanoseconds
        let slot = Int(truncatingIfNeeded: frame.header.streamID)
        guard slot >= 0, slot < frameIDs.count, frameIDs[slot] == frame.header.frameID, sentAt[slot] != 0 else {
            return recorder.record(.unexpectedIDs, detail: "\(frame.header.streamID)/\(frame.header.frameID)")
        }
        let latency = now - sentAt[slot]
        sentAt[slot] = 0
        if let error = plan.check.check(frame.payload) {
            recorder.record(error)
        } else {
            recorder.record(latencyNanoseconds: latency)
        }
        if !recorder.stopping { send(slot, at: now) }
    }

    /// Appends one NOTIFY to this read burst's buffer; `channelReadComplete` writes it.
    /// `now` is its send time (the ACK's arrival when it replaces one: one clock read).
    private func send(_ slot: Int, at now: UInt64) {
        frameIDs[slot] &+= 1
        if outgoing == nil {
            if var reused = written {
                written = nil
                reused.clear()  // in place when NIO is done with it, as it is once written
                outgoing = reused
            } else {
                outgoing = ByteBufferAllocator().buffer(capacity: frameIDs.count * (plan.body.readableBytes + 24))
            }
        }
        let start = outgoing!.writerIndex
        outgoing!.writeMultipleIntegers(UInt32(0), FrameType.notify.rawValue, FrameFlags.fin.rawValue)
        outgoing!.writeSpopVarint(UInt64(slot))
        outgoing!.writeSpopVarint(frameIDs[slot])
        outgoing!.writeImmutableBuffer(plan.body)
        outgoing!.setInteger(UInt32(outgoing!.writerIndex - start - 4), at: start)
        sentAt[slot] = now
    }

    private func fail(_ error: BenchError, _ detail: String, context: ChannelHandlerContext) {
        recorder.record(error, detail: detail)
        failHandshake(BenchRunError.handshake("\(error.rawValue): \(detail)"))
        context.close(promise: nil)
    }
}
