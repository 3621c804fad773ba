// The example programs of Examples/ (products built with the tests), started as agents.

import Foundation
import XCTest

extension E2ETestCase {
    /// Starts the example `product` with `arguments(port)` and waits for it to listen on port.
    func startExample(_ product: String, arguments: (UInt16) -> [String],
                      file: StaticString = #filePath, line: UInt = #line) throws -> (ManagedProcess, UInt16) {
        guard let binary = E2EPaths.builtProduct(product) else {
            XCTFail("\(product) not found: build it with `swift build --build-tests`", file: file, line: line)
            throw WireError("no example binary")
        }
        let port = try freePort()
        let agent = try ManagedProcess(name: product, executable: binary, arguments: arguments(port), logDir: tempDir)
        children.append(agent)
        guard waitForPort(port, timeout: 20, while: { agent.isRunning }) else {
            XCTFail("\(product) did not start listening on \(port):\n\(agent.logTail())", file: file, line: line)
            throw WireError("example did not start")
        }
        return (agent, port)
    }
}
