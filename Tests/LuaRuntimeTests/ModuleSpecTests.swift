import Foundation
@testable import LuaRuntime
import XCTest

/// The Lua modules' own specs (Tests/LuaSpecs/<module>_spec.lua: spoa.crypto,
/// spoa.re, ...) and the example scripts' specs that use them, run as
/// `luaspoa test` runs them, so they pass under both.
final class ModuleSpecTests: XCTestCase {
    static let specDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("LuaSpecs")

    func runSpec(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try runSpec(script: Self.specDirectory.appendingPathComponent("empty.lua"),
                    spec: Self.specDirectory.appendingPathComponent("\(name)_spec.lua"), file: file, line: line)
    }

    func runSpec(script: URL, spec: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let name = spec.lastPathComponent
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: script.path, workerCount: 1))
        let results = try runner.run(specPath: spec.path)
        XCTAssertFalse(results.isEmpty, "no cases in \(name)", file: file, line: line)
        for result in results where !result.passed {
            XCTFail("\(name): \(result.name): \(result.error ?? "")", file: file, line: line)
        }
    }

    func testCrypto() throws { try runSpec("crypto") }
    func testRe() throws { try runSpec("re") }
    func testJSON() throws { try runSpec("json") }
    func testJWT() throws { try runSpec("jwt") }

    func testGeoIP() throws {
        try runSpec(script: Self.specDirectory.appendingPathComponent("geoip/geo.lua"),
                    spec: Self.specDirectory.appendingPathComponent("geoip_spec.lua"))
    }

    func testJWTAuthScript() throws { try runExampleSpec("jwt_auth") }

    /// The examples whose specs stub their clients (T.stub_http, stub_dns, stub_redis).
    func testClientScripts() throws {
        for name in ["decision_bouncer", "verified_crawler", "global_rate_limiter"] { try runExampleSpec(name) }
    }

    func runExampleSpec(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let scripts = Self.specDirectory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
        try runSpec(script: scripts.appendingPathComponent("\(name).lua"), spec: scripts.appendingPathComponent("\(name)_spec.lua"),
                    file: file, line: line)
    }
}
