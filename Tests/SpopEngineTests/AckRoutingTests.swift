import NIOCore
import XCTest
@testable import SpopEngine

/// The pure decision "on which connection of the engine does this ACK leave".
final class AckRoutingTests: XCTestCase {
    typealias C = AckRouting.Candidate
    let own = C(id: 5)

    func testOwnModeKeepsAWritableOpenConnectionEvenWithIdleSiblings() {
        let siblings = [C(id: 1), C(id: 9, pendingBytes: 0)]
        XCTAssertEqual(AckRouting.decide(mode: .own, own: own, siblings: siblings, turn: 3), .own)
    }

    func testOwnModeMovesAnUnwritableConnectionsAcksToTheLeastLoadedSibling() {
        let blocked = C(id: 5, isWritable: false, pendingBytes: 70_000)
        let siblings = [C(id: 1, pendingBytes: 900), C(id: 2, pendingBytes: 40), C(id: 3, pendingBytes: 500)]
        XCTAssertEqual(AckRouting.decide(mode: .own, own: blocked, siblings: siblings, turn: 0), .sibling(id: 2))
        XCTAssertEqual(AckRouting.reason(own: blocked), .unwritable)
    }

    func testOwnModeMovesAClosingConnectionsAcks() {
        let closing = C(id: 5, isClosing: true)
        XCTAssertEqual(AckRouting.decide(mode: .own, own: closing, siblings: [C(id: 8)], turn: 0), .sibling(id: 8))
        XCTAssertEqual(AckRouting.reason(own: closing), .closing)
    }

    func testSiblingsThatCannotTakeTheAckAreSkipped() {
        let blocked = C(id: 5, isWritable: false)
        let siblings = [
            C(id: 1, isWritable: false), C(id: 2, isClosing: true), C(id: 3, maxFrameSize: 1024),  // smaller frames than own
            C(id: 5),  // own entry in the list: ignored
        ]
        XCTAssertEqual(AckRouting.decide(mode: .own, own: blocked, siblings: siblings, turn: 0), .own)
        XCTAssertEqual(AckRouting.decide(mode: .spread, own: blocked, siblings: siblings, turn: 7), .own)
        XCTAssertEqual(AckRouting.decide(mode: .own, own: blocked, siblings: siblings + [C(id: 4)], turn: 0), .sibling(id: 4))
    }

    func testNoSiblingBehavesAsWithoutAsync() {
        for mode in AsyncAckMode.allCases {
            XCTAssertEqual(AckRouting.decide(mode: mode, own: C(id: 5, isWritable: false), siblings: [], turn: 1), .own)
            XCTAssertEqual(AckRouting.decide(mode: mode, own: C(id: 5, isClosing: true), siblings: [], turn: 1), .own)
        }
    }

    func testAnUnwritableConnectionMayReadOnOnlyWhileASiblingCanTakeItsAcks() {
        let blocked = C(id: 5, isWritable: false)
        XCTAssertTrue(AckRouting.canOffload(own: blocked, siblings: [C(id: 1, isWritable: false), C(id: 2)]))
        XCTAssertFalse(AckRouting.canOffload(own: blocked, siblings: [C(id: 1, isWritable: false), C(id: 2, isClosing: true)]))
        XCTAssertFalse(AckRouting.canOffload(own: blocked, siblings: []))
    }

    func testTiesGoToTheLowerIDSoTheChoiceIsStable() {
        let blocked = C(id: 5, isWritable: false)
        XCTAssertEqual(AckRouting.decide(mode: .own, own: blocked, siblings: [C(id: 7), C(id: 3), C(id: 6)], turn: 0), .sibling(id: 3))
    }

    func testSpreadCyclesOverOwnAndSiblingsInIDOrder() {
        let siblings = [C(id: 9), C(id: 2)]
        let picks = (0..<6).map { AckRouting.decide(mode: .spread, own: own, siblings: siblings, turn: $0) }
        XCTAssertEqual(picks, [.sibling(id: 2), .own, .sibling(id: 9), .sibling(id: 2), .own, .sibling(id: 9)])
        XCTAssertEqual(AckRouting.reason(own: own), .spread)
    }

    func testSpreadLeavesOutAnUnwritableOwnConnection() {
        let blocked = C(id: 5, isWritable: false)
        let picks = (0..<4).map { AckRouting.decide(mode: .spread, own: blocked, siblings: [C(id: 1), C(id: 8)], turn: $0) }
        XCTAssertEqual(picks, [.sibling(id: 1), .sibling(id: 8), .sibling(id: 1), .sibling(id: 8)])
    }

    func testSpreadSurvivesAWrappedTurnCounter() {
        XCTAssertNotNil(AckRouting.decide(mode: .spread, own: own, siblings: [C(id: 1), C(id: 2)], turn: Int.min))
    }

    func testRescueSkipsConnectionsThatAlreadyFailed() {
        let failedOwn = C(id: 5, isClosing: true)
        let siblings = [C(id: 1, pendingBytes: 10), C(id: 2, pendingBytes: 20)]
        XCTAssertEqual(AckRouting.rescue(own: failedOwn, siblings: siblings, failed: [5]), 1)
        XCTAssertEqual(AckRouting.rescue(own: failedOwn, siblings: siblings, failed: [5, 1]), 2)
        XCTAssertNil(AckRouting.rescue(own: failedOwn, siblings: siblings, failed: [5, 1, 2]))
    }

    func testAckFramesSplitsABatchIntoWholeFrames() {
        var batch = ByteBuffer()
        for payload in [[UInt8](repeating: 1, count: 3), [2], [3, 3, 3, 3, 3, 3, 3]] {
            batch.writeInteger(UInt32(payload.count))
            batch.writeBytes(payload)
        }
        let frames = AckFrames.split(batch)
        XCTAssertEqual(frames.map(\.readableBytes), [7, 5, 11])
        XCTAssertEqual(frames.last?.getBytes(at: frames.last!.readerIndex + 4, length: 7), [UInt8](repeating: 3, count: 7))
    }
}
