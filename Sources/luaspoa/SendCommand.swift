import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SpopEngine

/// `luaspoa send --to HOST:PORT --message NAME --arg ...`: plays HAProxy for one
/// NOTIFY against a running agent and prints the ACK's actions (live debugging).
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one NOTIFY to a running agent and print the ACK's actions.",
        discussion: """
            Arguments are given as for `luaspoa eval` (name=type:value). Example:
              luaspoa send --to 127.0.0.1:12345 --message check-client-ip --arg ip=ipv4:192.0.2.10
              set-var(sess.ip_score) uint32:42
            Exit status: 0 with an ACK, 1 if the agent refused the connection, the
            handshake or the frame (its AGENT-DISCONNECT is printed).
            """)

    @Option(help: "The agent's address (HOST:PORT or unix:PATH).")
    var to: ListenAddress

    @OptionGroup var message: MessageOptions

    @Option(help: "Engine-id announced in HAPROXY-HELLO.")
    var engineID = "luaspoa-send"

    func run() async throws {
        let messages = try message.parsed()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let wrap: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel(wrappingChannelSynchronously: channel) }
        }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = switch to.address {
            case .tcp(let host, let port): try await bootstrap.connect(host: host, port: port, channelInitializer: wrap)
            case .unix(let path, _): try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: wrap)
            }
        } catch {
            throw CommandFailure("cannot connect to \(to): \(socketErrorText(error))")
        }
        try await channel.executeThenClose { inbound, outbound in
            var frames = SpopClientFrames(inbound: inbound.makeAsyncIterator())
            var out = ByteBuffer()
            HaproxyHello(maxFrameSize: UInt64(AgentCapabilities.defaultMaxFrameSize), capabilities: ["pipelining"], engineID: engineID)
                .write(to: &out)
            try await outbound.write(out)
            let hello = try AgentHello(try await frames.expect(.agentHello))
            out.clear()
            NotifyFrame.write(streamID: 1, frameID: 1, messages: messages, to: &out)
            guard out.readableBytes - 4 <= Int(hello.maxFrameSize) else {
                throw ValidationError("the NOTIFY (\(out.readableBytes - 4) bytes) exceeds the agent's max-frame-size \(hello.maxFrameSize)")
            }
            try await outbound.write(out)
            let ack = try await frames.expect(.ack)
            guard ack.header.streamID == 1, ack.header.frameID == 1 else {
                throw CommandFailure("ACK for \(ack.header.streamID)/\(ack.header.frameID), expected 1/1")
            }
            let actions = try SpoaAction.decodeList(ack.payload)
            for action in actions { print(action) }
            // Not an error (a handler may set nothing), but say so: silence looks like a hang or a typo'd name.
            if actions.isEmpty { FileHandle.standardError.write(Data("no actions: the agent's ACK is empty (no handler for \"\(message.message)\", or it set nothing)\n".utf8)) }
            out.clear()
            Disconnect(status: .normal, message: "luaspoa send done").write(as: .haproxyDisconnect, to: &out)
            try? await outbound.write(out)
        }
    }
}

/// Reads whole frames from the connection; an AGENT-DISCONNECT becomes an error.
struct SpopClientFrames {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var reader = FrameReader()

    mutating func expect(_ type: FrameType) async throws -> RawFrame {
        while true {
            if let frame = try reader.next(maxFrameSize: 0xFF_FFFF) {
                if frame.header.type == type { return frame }
                if frame.header.type == .agentDisconnect {
                    let disconnect = try Disconnect(frame)
                    throw CommandFailure("the agent disconnected: status \(disconnect.status): \(disconnect.message)")
                }
                continue
            }
            guard let bytes = try await inbound.next() else { throw CommandFailure("the agent closed the connection") }
            reader.append(bytes)
        }
    }
}
