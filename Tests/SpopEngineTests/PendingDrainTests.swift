import NIOCore
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// SIGTERM's drain on a real server while handlers wait: it answers them, then says
/// goodbye; past the drain timeout the connection is cut and their work cancelled.
final class PendingDrainTests: XCTestCase {
    private func waitingWorker(nanoseconds: UInt64) -> @Sendable () -> any SpoaWorker {
        {
            AsyncClosureWorker { notify, _ in
                try await Task.sleep(nanoseconds: nanoseconds)
                return [.setVar(.transaction, "n", .uint64(notify.streamID))]
            }
        }
    }

    /// Sends the hello and 10 NOTIFYs, runs `drain` once the handshake is done, and
    /// returns every frame read until the agent closes.
    private func drainWhileWaiting(
        handlerNanoseconds: UInt64, drainTimeout: TimeAmount, _ check: (_ cut: Int, _ frames: [RawFrame]) throws -> Void
    ) async throws {
        try await withServer(limits: ServerLimits(drainTimeout: drainTimeout), waitingWorker(nanoseconds: handlerNanoseconds)) { server, address in
            let client = try await TestClient.connect(address)
            var request = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<10 as Range<UInt64> { NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [])], to: &request) }
            try await client.channel.executeThenClose { inbound, outbound in
                var stream = FrameStream(inbound)
                var frames: [RawFrame] = []
                try await outbound.write(request)
                try await stream.read(into: &frames) { !$0.isEmpty }
                while server.connections.count == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
                let cut = await server.connections.drain(timeout: drainTimeout)
                try await stream.read(into: &frames)
                try check(cut, frames)
            }
        }
    }

    func testDrainAnswersWaitingHandlersThenSaysGoodbye() async throws {
        try await drainWhileWaiting(handlerNanoseconds: 200_000_000, drainTimeout: .seconds(60)) { cut, frames in
            XCTAssertEqual(cut, 0)
            XCTAssertEqual(frames.filter { $0.header.type == .ack }.map(\.header.streamID).sorted(), Array(0..<10))
            XCTAssertEqual(frames.last?.header.type, .agentDisconnect)
            if let last = frames.last { XCTAssertEqual(try Disconnect(last).status, .normal) }
        }
    }

    func testDrainTimeoutCutsHandlersThatStillWait() async throws {
        try await drainWhileWaiting(handlerNanoseconds: 600_000_000_000, drainTimeout: .milliseconds(300)) { cut, frames in
            XCTAssertEqual(cut, 1)
            XCTAssertEqual(frames.map(\.header.type), [.agentHello], "no ACK and no goodbye: the connection was cut")
        }
    }
}
