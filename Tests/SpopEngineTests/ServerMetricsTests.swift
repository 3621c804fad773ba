import MetricsTestKit
import XCTest

@testable import SpopEngine

final class ServerMetricsTests: XCTestCase {
    /// A library user names its own metrics: every engine metric, limit hits
    /// included, starts with the configured prefix.
    func testEveryNameStartsWithThePrefix() throws {
        let factory = TestMetrics()
        let metrics = ServerMetrics(prefix: "myagent_", factory: factory)
        metrics.limitHit(.maxConnections)
        metrics.limitHit(.drainTimeout, count: 3)
        _ = metrics.handlersPending(worker: 2)
        XCTAssertEqual(try factory.expectCounter("myagent_limit_hits_total", [("limit", "max_connections")]).totalValue, 1)
        XCTAssertEqual(try factory.expectCounter("myagent_limit_hits_total", [("limit", "drain_timeout")]).totalValue, 3)
        _ = try factory.expectMeter("myagent_handlers_pending", [("worker", "2")])
        _ = try factory.expectMeter("myagent_connections_open")
        XCTAssertTrue(factory.counters.allSatisfy { $0.label.hasPrefix("myagent_") }, "\(factory.counters.map(\.label))")
    }
}
