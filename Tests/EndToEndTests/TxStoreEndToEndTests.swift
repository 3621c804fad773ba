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
        let (web, app) = (try freePort(), try freePort())
        var cfg = try String(contentsOf: E2EPaths.repoFile("haproxy/haproxy-txstore.cfg"), encoding: .utf8)
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-txstore.conf"), encoding: .utf8)
        cfg = cfg.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(web)")
            .replacingOccurrences(of: "127.0.0.1:8081", with: "127.0.0.1:\(app)")
            .replacingOccurrences(of: "127.0.0.1:12345", with: "127.0.0.1:\(agentPort)")
            .replacingOccurrences(of: "\nglobal\n", with: "\nglobal\n    nbthread 2\n")
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-txstore.conf": spoe], waitPort: web)

        let results = LoadResults()
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            guard let conn = try? HTTPConn(port: web) else { return results.fail("client \(client): no connection") }
            for n in 0..<50 {
                let path = "/c\(client)/r\(n)"
                guard let r = try? conn.get(path, timeout: 15) else { return results.fail("\(path): no response") }
                if r.header("X-Req-Path") == path, r.header("X-SPOE-Error") == nil {
                    results.ok()
                } else {
                    results.fail("\(path): \(r.headers)")
                }
            }
        }
        let (ok, failed, samples) = results.snapshot()
        XCTAssertEqual(ok, 400, "first failures: \(samples.prefix(3))\n\(haproxy.logTail(10))\n\(agent.problems())")
        XCTAssertEqual(failed, 0)
    }
}
