import NIOCore
import XCTest
@testable import SpopEngine

/// `async` routing applies to ACKs of suspended frames as to the others: late ACKs of
/// one connection also leave on its siblings of the same engine.
final class LateAckRoutingTests: XCTestCase {
    func testLateAcksAreSpreadOverSiblingsOfTheEngine() async throws {
        let waiting: @Sendable () -> any SpoaWorker = {
            AsyncClosureWorker { notify, _ in
                try await Task.sleep(nanoseconds: 1_000_000)
                return [.setVar(.transaction, "n", .uint64(notify.streamID))]
            }
        }
        try await withServer(capabilities: AsyncAckProbeTests.asyncAgent, asyncAck: .spread, waiting) { _, address in
            let a = try await ProbePeer.connect(address, engineID: AsyncAckProbeTests.engine, async: true)
            let b = try await ProbePeer.connect(address, engineID: AsyncAckProbeTests.engine, async: true)
            try await a.notify(streamIDs: 0..<40)
            let acks = try await ProbePeer.acks(40, on: [a, b])
            XCTAssertGreaterThan(acks[1].count, 0, "no late ACK left on the sibling")
            XCTAssertEqual((acks[0] + acks[1]).sorted(), Array(0..<40), "every NOTIFY gets exactly one ACK")
        }
    }
}
