import NIOCore
import XCTest
@testable import SpopEngine

/// The idle and frame timeouts as pure rules, with made-up times.
final class ConnectionDeadlinesTests: XCTestCase {
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    private let deadlines = ConnectionDeadlines(idleTimeout: .seconds(600), frameTimeout: .seconds(30))

    /// Issue 11: one byte every 500 ms keeps `lastRead` fresh, but the frame it belongs to
    /// started 30 s ago: the frame timeout fires although the idle one never would.
    func testTricklingPeerHitsTheFrameTimeoutNotTheIdleOne() {
        let started = t0
        let now = t0 + .seconds(30)
        XCTAssertEqual(deadlines.check(now: now, lastRead: now - .milliseconds(500), frameStarted: started), .frameStalled)
        XCTAssertEqual(deadlines.check(now: now - .seconds(1), lastRead: now - .seconds(1), frameStarted: started),
                       .rearm(at: started + .seconds(30)))
    }

    func testBetweenFramesOnlyTheIdleTimeoutExpires() {
        XCTAssertEqual(deadlines.check(now: t0 + .seconds(600), lastRead: t0, frameStarted: nil), .idle)
        // Between frames the timer still looks again within one frame timeout.
        XCTAssertEqual(deadlines.check(now: t0 + .seconds(10), lastRead: t0, frameStarted: nil), .rearm(at: t0 + .seconds(40)))
        XCTAssertEqual(deadlines.check(now: t0 + .seconds(590), lastRead: t0, frameStarted: nil), .rearm(at: t0 + .seconds(600)))
    }

    func testZeroDisablesEachTimeout() {
        let off = ConnectionDeadlines(idleTimeout: .zero, frameTimeout: .zero)
        XCTAssertEqual(off.check(now: t0 + .hours(24), lastRead: t0, frameStarted: t0), .rearm(at: nil))
        let frameOnly = ConnectionDeadlines(idleTimeout: .zero, frameTimeout: .seconds(30))
        XCTAssertEqual(frameOnly.check(now: t0 + .hours(24), lastRead: t0, frameStarted: nil), .rearm(at: t0 + .hours(24) + .seconds(30)))
        XCTAssertEqual(frameOnly.check(now: t0 + .seconds(31), lastRead: t0 + .seconds(31), frameStarted: t0), .frameStalled)
        let idleOnly = ConnectionDeadlines(idleTimeout: .seconds(600), frameTimeout: .zero)
        XCTAssertEqual(idleOnly.check(now: t0 + .seconds(599), lastRead: t0 + .seconds(598), frameStarted: t0), .rearm(at: t0 + .seconds(1198)))
    }
}
