import Logging
import NIOCore
import NIOPosix
import XCTest
@testable import SpopEngine

/// The engine as a plain Swift library: a ClosureWorker answers over a real socket.
final class SpopServerTests: XCTestCase {
    private func withServer(
        workers: Int = 2, _ worker: @escaping @Sendable () -> any SpoaWorker,
        _ body: (Int) async throws -> Void
    ) async throws {
        let server = try SpopServer(
            configuration: .init(host: "127.0.0.1", port: 0, workers: workers), logger: Logger(label: "test"),
            makeWorker: { _ in worker() }
        )
        let channel = try await server.bind()
        do {
            try await body(channel.localAddress!.port!)
        } catch {
            try await channel.close()
            try await server.shutdown()
            throw error
        }
        try await channel.close()
        try await server.shutdown()
    }

    /// Sends `bytes`, then reads until the agent closes or `frames` frames arrived.
    private func exchange(port: Int, _ bytes: ByteBuffer, frames expected: Int) async throws -> [RawFrame] {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await client.executeThenClose { inbound, outbound in
            try await outbound.write(bytes)
            var reader = FrameReader()
            var frames: [RawFrame] = []
            for try await chunk in inbound {
                reader.append(chunk)
                while let frame = try reader.next(maxFrameSize: 1 << 20) { frames.append(frame) }
                if frames.count >= expected { break }
            }
            return frames
        }
    }

    func testClosureWorkerAnswersEveryPipelinedNotify() async throws {
        try await withServer({
            ClosureWorker { notify, connection, ack in
                for message in notify.messages {
                    for argument in message.arguments {
                        guard case .ipv4(let address) = argument.value else { continue }
                        try? ack.setVar(.session, "seen", .string("\(address) via \(connection.engineID ?? "-")"))
                    }
                }
            }
        }) { port in
            var bytes = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<50 as Range<UInt64> {
                NotifyFrame.write(
                    streamID: id, frameID: id + 1, messages: [("check-client-ip", [("ip", .ipv4(IPv4Address(10, 0, 0, UInt8(id))))])],
                    to: &bytes
                )
            }
            let frames = try await exchange(port: port, bytes, frames: 51)
            XCTAssertEqual(frames.first?.header.type, .agentHello)
            let acks = frames.dropFirst()
            XCTAssertEqual(acks.count, 50)
            for (id, ack) in zip(0..<50 as Range<UInt64>, acks) {
                XCTAssertEqual(ack.header.type, .ack)
                XCTAssertEqual(ack.header.flags, .fin)
                XCTAssertEqual(ack.header.streamID, id)
                XCTAssertEqual(ack.header.frameID, id + 1)
                XCTAssertEqual(
                    try SpoaAction.decodeList(ack.payload),
                    [.setVar(.session, "seen", .string("10.0.0.\(id) via 0b1e5c9a-7f3d-4a21-9c44-5e6f7a8b9c0d"))]
                )
            }
        }
    }

    func testProtocolErrorIsAnsweredThenClosed() async throws {
        try await withServer({ ClosureWorker { _, _, _ in } }) { port in
            let frames = try await exchange(port: port, ByteBuffer(hex: "00 01 00 00"), frames: 2)
            XCTAssertEqual(frames.count, 1, "the agent closes after its DISCONNECT")
            XCTAssertEqual(frames.first?.header.type, .agentDisconnect)
            XCTAssertEqual(try Disconnect(frames[0]).status, .frameTooBig)
        }
    }

    func testHealthCheckIsAnsweredThenClosed() async throws {
        try await withServer({ ClosureWorker { _, _, _ in } }) { port in
            let frames = try await exchange(port: port, ByteBuffer(hex: Golden.healthCheckHello), frames: 2)
            XCTAssertEqual(frames.count, 1)
            let hello = try AgentHello(frames[0])
            XCTAssertEqual(hello, AgentHello(maxFrameSize: 16380, capabilities: ["pipelining", "fragmentation"]))
        }
    }
}
