import NIOCore
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// The state machine's side of suspended frames: counting, drain, pipelining.
final class PendingStateMachineTests: XCTestCase {
    private func running(capabilities: String = "pipelining") throws -> ConnectionStateMachine {
        var machine = ConnectionStateMachine(capabilities: AgentCapabilities())
        guard case .sendHello = machine.frameReceived(try frame(haproxyHello(capabilities: capabilities).hex)) else { throw XCTSkip("handshake failed") }
        return machine
    }

    func testSuspendedFramesAreCounted() throws {
        var machine = try running()
        machine.frameSuspended()
        machine.frameSuspended()
        XCTAssertEqual(machine.suspendedFrames, 2)
        XCTAssertFalse(machine.awaitsSuspendedFrame, "with pipelining other frames go on")
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil))
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil))
        XCTAssertEqual(machine.suspendedFrames, 0)
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil), "an extra end is ignored")
    }

    func testWithoutPipeliningASuspendedFrameHoldsInput() throws {
        var machine = try running(capabilities: "")
        machine.frameSuspended()
        XCTAssertTrue(machine.awaitsSuspendedFrame)
        _ = machine.suspendedFrameEnded()
        XCTAssertFalse(machine.awaitsSuspendedFrame)
    }

    func testDrainWaitsForSuspendedFrames() throws {
        var machine = try running()
        machine.frameSuspended()
        machine.frameSuspended()
        XCTAssertEqual(machine.drain(), .none(reason: "draining: answering the NOTIFYs already received"))
        guard case .none = machine.inputQuiet() else { return XCTFail("goodbye before the suspended frames ended") }
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil))
        guard case .disconnect(let reply, nil) = machine.suspendedFrameEnded() else { return XCTFail("no goodbye") }
        XCTAssertEqual(reply.status, .normal)
        XCTAssertTrue(machine.isClosed)
    }

    /// A frame that arrives after the input was found quiet must be seen as quiet again.
    func testNewFrameWhileDrainingResetsQuiet() throws {
        var machine = try running()
        machine.frameSuspended()
        _ = machine.drain()
        _ = machine.inputQuiet()
        guard case .processNotify = machine.frameReceived(try frame(Golden.notifyCheckClientIP)) else { return XCTFail() }
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil), "input not known quiet since the NOTIFY")
        guard case .disconnect = machine.inputQuiet() else { return XCTFail("no goodbye") }
    }

    func testClosingForgetsSuspendedFrames() throws {
        var machine = try running()
        machine.frameSuspended()
        machine.closed()
        XCTAssertEqual(machine.suspendedFrames, 0)
        XCTAssertEqual(machine.suspendedFrameEnded(), .none(reason: nil))
    }

    func testIdleDoesNotExpireWhileHandlersWait() {
        let deadlines = ConnectionDeadlines(idleTimeout: .seconds(10), frameTimeout: .zero)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let late = start + .seconds(60)
        XCTAssertEqual(deadlines.check(now: late, lastRead: start, frameStarted: nil), .idle)
        XCTAssertEqual(deadlines.check(now: late, lastRead: start, frameStarted: nil, handlersWaiting: true),
                       .rearm(at: late + .seconds(10)))
    }
}
