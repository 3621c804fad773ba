import Foundation
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// spoa.geoip's process-wide mappings: a database file replaced on disk (as
/// geoipupdate does, by rename) is mapped anew by the next load (a reload),
/// while states still running keep the mapping they opened.
final class GeoIPTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("LuaSpecs/geoip")

    func country(_ harness: Harness) throws -> String? {
        try harness.vars("geo", [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])["txn.country"]?.text
    }

    func testAReplacedFileIsPickedUpByTheNextLoad() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("luaspoa-geoip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("geo.mmdb")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("test.mmdb"), to: database)
        let script = """
            local DB = spoa.geoip.open("\(database.path)")
            spoa.register_message("geo", function(txn, msg)
              txn:set_var("txn.country", DB:lookup(msg.args.ip, "country", "iso_code"))
            end)
            """
        let before = try Harness(script)
        XCTAssertEqual(try country(before), "FR")
        let sameFile = try Harness(script)
        XCTAssertEqual(try country(sameFile), "FR")

        let staged = directory.appendingPathComponent("geo.mmdb.tmp")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("test-v2.mmdb"), to: staged)
        XCTAssertEqual(rename(staged.path, database.path), 0)
        let after = try Harness(script)
        XCTAssertEqual(try country(after), "BE", "the new file")
        XCTAssertEqual(try country(before), "FR", "a running state keeps its mapping")
        XCTAssertTrue(before.errorLogs.isEmpty && after.errorLogs.isEmpty, "\(before.errorLogs.map(\.message))")
    }

    func testOpenErrorsNameTheFile() throws {
        XCTAssertThrowsError(try Harness("spoa.geoip.open('/nonexistent/geo.mmdb')")) { error in
            XCTAssertTrue("\(error)".contains("spoa.geoip.open: cannot open /nonexistent/geo.mmdb: No such file or directory"), "\(error)")
        }
        let notADatabase = try writeScript("not a database", name: "bad.mmdb")
        XCTAssertThrowsError(try Harness("spoa.geoip.open('\(notADatabase)')")) { error in
            XCTAssertTrue("\(error)".contains("spoa.geoip.open: \(notADatabase): "), "\(error)")
        }
    }
}
