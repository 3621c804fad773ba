import Logging
import NIOCore
import NIOPosix
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// The engine as a plain Swift library: a ClosureWorker answers over a real socket.
final class SpopServerTests: XCTestCase {
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
        }) { _, address in
            var bytes = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<50 as Range<UInt64> {
                NotifyFrame.write(
                    streamID: id, frameID: id + 1, messages: [("check-client-ip", [("ip", .ipv4(IPv4Address(10, 0, 0, UInt8(id))))])],
                    to: &bytes
                )
            }
            let frames = try await TestClient.exchange(address, bytes, frames: 51)
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
        try await withServer({ ClosureWorker { _, _, _ in } }) { _, address in
            let frames = try await TestClient.exchange(address, ByteBuffer(hex: "00 01 00 00"), frames: 2)
            XCTAssertEqual(frames.count, 1, "the agent closes after its DISCONNECT")
            XCTAssertEqual(frames.first?.header.type, .agentDisconnect)
            XCTAssertEqual(try Disconnect(frames[0]).status, .frameTooBig)
        }
    }

    /// A peer still sending when the agent gives up (here 256 kB behind a bad frame) must
    /// still read the DISCONNECT: closing with unread input would send a reset, and a
    /// reset discards what the peer has not read yet.
    func testDisconnectReachesAPeerThatKeepsSending() async throws {
        try await withServer({ ClosureWorker { _, _, _ in } }) { _, address in
            var bytes = ByteBuffer(hex: "00 01 00 00")
            bytes.writeRepeatingByte(0, count: 256 * 1024)
            for _ in 0..<5 {
                let frames = try await TestClient.exchange(address, bytes, frames: 2)
                XCTAssertEqual(frames.map(\.header.type), [.agentDisconnect])
                XCTAssertEqual(try frames.first.map { try Disconnect($0).status }, .frameTooBig)
            }
        }
    }

    func testHealthCheckIsAnsweredThenClosed() async throws {
        try await withServer({ ClosureWorker { _, _, _ in } }) { _, address in
            let frames = try await TestClient.exchange(address, ByteBuffer(hex: Golden.healthCheckHello), frames: 2)
            XCTAssertEqual(frames.count, 1)
            let hello = try AgentHello(frames[0])
            XCTAssertEqual(hello, AgentHello(maxFrameSize: 16380, capabilities: ["pipelining", "fragmentation"]))
        }
    }
}
