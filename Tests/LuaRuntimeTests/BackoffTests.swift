@testable import LuaRuntime
import NIOCore
import XCTest

/// The clients' back-off from a down target, on a clock the test moves.
final class BackoffTests: XCTestCase {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    func at(_ ms: Int64) -> NIODeadline { t0 + .milliseconds(ms) }

    func testDelaysDoubleUpToTheCap() {
        XCTAssertEqual(Backoff.delay(after: 0), .nanoseconds(0))
        XCTAssertEqual(Backoff.delay(after: 1), Backoff.initial)
        XCTAssertEqual(Backoff.delay(after: 2), Backoff.initial * 2)
        XCTAssertEqual(Backoff.delay(after: 3), Backoff.initial * 4)
        XCTAssertEqual(Backoff.delay(after: 20), Backoff.cap)
        XCTAssertEqual(Backoff.delay(after: 1000), Backoff.cap, "no overflow")
    }

    func testFailsFastUntilTheDelayThenOneCallTries() {
        var b = Backoff()
        XCTAssertNil(b.admit(now: at(0)), "a target never failed: every call connects")
        XCTAssertNil(b.admit(now: at(0)))
        b.failed("connection refused", now: at(0))
        XCTAssertEqual(b.admit(now: at(1)), "connection refused (backing off 100 ms)")
        XCTAssertEqual(b.admit(now: at(99)), "connection refused (backing off 100 ms)")
        XCTAssertNil(b.admit(now: at(100)), "the delay is over: this call tries")
        XCTAssertEqual(b.admit(now: at(101)), "connection refused (backing off 100 ms)", "one try at a time")
        b.failed("timeout", now: at(150))
        XCTAssertEqual(b.admit(now: at(151)), "timeout (backing off 200 ms)", "the latest reason, a doubled delay")
        XCTAssertNil(b.admit(now: at(350)))
        b.succeeded()
        XCTAssertNil(b.admit(now: at(351)), "back: calls connect again")
        XCTAssertNil(b.admit(now: at(351)))
        XCTAssertEqual(b.failures, 0)
    }

    func testAnAbandonedTryLetsTheNextCallTry() {
        var b = Backoff()
        b.failed("connection refused", now: at(0))
        XCTAssertNil(b.admit(now: at(200)))
        XCTAssertNotNil(b.admit(now: at(201)))
        b.abandoned()
        XCTAssertNil(b.admit(now: at(202)))
        XCTAssertEqual(b.failures, 1, "an abandoned try is no failure")
    }

    func testTargetsAreIndependentAndForgottenWhenBack() {
        var table = Backoffs()
        XCTAssertNil(table.admit("a:1"))
        table.connected("a:1", failure: "connection refused")
        XCTAssertNotNil(table.admit("a:1"))
        XCTAssertNil(table.admit("b:2"), "another target is not affected")
        table.connected("b:2", failure: nil)
        table.connected("a:1", failure: nil)
        XCTAssertNil(table.admit("a:1"))
    }

    func testTheTableStaysBounded() {
        var table = Backoffs()
        for i in 0..<(Backoffs.maxTargets * 3) { table.connected("h\(i):1", failure: "connection refused") }
        // Those whose delay ended meanwhile are forgotten first (a slow run drops more).
        XCTAssertLessThanOrEqual(table.count, Backoffs.maxTargets)
        XCTAssertNotNil(table.admit("h\(Backoffs.maxTargets * 3 - 1):1"), "the latest is kept")
    }
}
