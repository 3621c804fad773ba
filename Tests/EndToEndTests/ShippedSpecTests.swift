// The spec files shipped next to the example scripts pass under `luaspoa test`,
// so the examples and their documented scores stay in step.

import XCTest

extension ToolsTests {
    func testShippedSpecsPass() throws {
        for (script, passed) in [("ip_reputation", 8), ("bot_detector", 6)] {
            let r = try luaspoa(["test", E2EPaths.repoFile("scripts/\(script).lua").path,
                                 E2EPaths.repoFile("scripts/\(script)_spec.lua").path], name: "spec-\(script)")
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertEqual(r.output.split(separator: "\n").last.map(String.init), "\(passed) passed, 0 failed", r.output)
        }
    }
}
