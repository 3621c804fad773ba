import Foundation
import LuaRuntime
import XCTest

/// The shipped scripts/rate_limiter_spec.lua passes against scripts/rate_limiter.lua
/// (what `luaspoa test scripts/rate_limiter.lua scripts/rate_limiter_spec.lua` runs).
final class RateLimiterSpecTests: XCTestCase {
    static let scripts = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts")

    func testTheShippedSpecPasses() throws {
        let script = Self.scripts.appendingPathComponent("rate_limiter.lua").path
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: script, workerCount: 1))
        let results = try runner.run(specPath: Self.scripts.appendingPathComponent("rate_limiter_spec.lua").path)
        XCTAssertEqual(results.count, 7)
        for result in results {
            XCTAssertTrue(result.passed, "\(result.name): \(result.error ?? "")")
        }
        XCTAssertEqual(LuaClock.isFrozen, false, "the runner gives the real clock back")
    }
}
