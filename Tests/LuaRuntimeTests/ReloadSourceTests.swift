import Logging
@testable import LuaRuntime
import XCTest

/// A reload reads the script once: every state of one generation runs the same bytes.
final class ReloadSourceTests: XCTestCase {
    /// The script rewrites its own file the first time it loads ("v1" becomes "v2"),
    /// so any state that read the file again would load v2. Each state records its
    /// version under its worker number.
    func testEveryStateOfAReloadLoadsTheSameScriptEvenIfTheFileChanges() throws {
        let dict = "reload_versions_\(UInt32.random(in: 0...UInt32.max))"
        let path = try writeScript("""
            local VERSION = "v1"
            local seen = spoa.shared.declare("\(dict)")
            seen:set("w" .. spoa.worker, VERSION)
            if VERSION == "v1" then
              local file = debug.getinfo(1, "S").source:sub(2)
              local f = assert(io.open(file)); local src = f:read("a"); f:close()
              f = assert(io.open(file, "w")); f:write((src:gsub('"v1"', '"v2"', 1))); f:close()
            end
            spoa.register_message("m", function() end)
            """)
        var configuration = LuaConfiguration(scriptPath: path, workerCount: 3)
        configuration.unsafeLibraries = true  // io: the script changes its own file
        let (background, workers) = try LuaReloader.prepare(configuration, generation: 1, logger: Logger(label: "test"))
        withExtendedLifetime(background) {}
        XCTAssertEqual(workers.count, 3)
        let seen = try XCTUnwrap(SharedDictionary.named(dict))
        XCTAssertEqual((0...3).map { seen.get("w\($0)") }, Array(repeating: .string("v1"), count: 4))
        // The file did change: the next reload picks it up, again in every state.
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).contains("\"v2\""))
        _ = try LuaReloader.prepare(configuration, generation: 2, logger: Logger(label: "test"))
        XCTAssertEqual((0...3).map { seen.get("w\($0)") }, Array(repeating: .string("v2"), count: 4))
    }

    func testErrorsInAScriptLoadedFromBytesKeepFileAndLine() throws {
        let path = try writeScript("#!/usr/bin/env luaspoa\nlocal x = 1\nerror('line three')\n", name: "bytes.lua")
        var configuration = LuaConfiguration(scriptPath: path, workerCount: 1)
        XCTAssertThrowsError(try LuaReloader.prepare(configuration, generation: 1, logger: Logger(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("bytes.lua:3: line three"), "\(error)")
        }
        configuration.scriptPath += ".missing"
        XCTAssertThrowsError(try LuaReloader.prepare(configuration, generation: 1, logger: Logger(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("cannot open \(path).missing: No such file or directory"), "\(error)")
        }
    }
}
