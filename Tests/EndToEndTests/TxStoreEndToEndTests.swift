// scripts/txn_correlation.lua with haproxy/haproxy-txstore.cfg: HAProxy 2.6 sends
// a request and a response event per transaction (2 threads, 2 workers), tied
// only by unique-id; each response carries its own request's path.

import Foundation
import XCTest

final class TxStoreEndToEndTests: E2ETestCase {
    func testResponseEventSeesItsOwnRequestThroughUniqueID() throws {
        _ = try requireHAProxy()
        let (agent, agentPort) = try startAgent(scriptPath: E2EPaths.repoFile("scripts/txn_correlation.lua").path,
                                                extraArgs: ["--workers", "2"])
        let setup = try ProxySetup(agent: agentPort), web = setup.web
        let cfg = try setup.shipped("haproxy/haproxy-txstore.cfg", threads: 2)
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-txstore.conf"), encoding: .utf8)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-txstore.conf": spoe], waitPort: web)

        let results = Self.correlatedLoad(web: web)
        let (ok, failed, samples) = results.snapshot()
        XCTAssertEqual(ok, 400, "first failures: \(samples.prefix(3))\n\(haproxy.logTail(10))\n\(agent.problems())")
        XCTAssertEqual(failed, 0)
    }

    /// 400 requests over 8 connections, each with its own path: ok when the
    /// response carries that path back (X-Req-Path, set from the request event).
    static func correlatedLoad(web: UInt16) -> LoadResults {
        httpLoad(port: web, total: 400, connections: 8, request: { ("/c\($0 % 8)/r\($0)", []) },
                 accept: { i, r in r.header("X-Req-Path") == "/c\(i % 8)/r\(i)" && r.header("X-SPOE-Error") == nil }).results
    }
}
