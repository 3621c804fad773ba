// An example of scripts/ run as shipped: its script (with the test's own
// addresses put in), its haproxy/*.cfg and SPOE file, behind HAProxy 2.6 or a 3.x.

import Foundation
import XCTest

extension E2ETestCase {
    /// `script` with each (needle, replacement) applied; fails when a needle is no longer in it.
    func shippedScript(_ name: String, replacing: [(String, String)]) throws -> String {
        var script = try String(contentsOf: E2EPaths.repoFile("scripts/\(name).lua"), encoding: .utf8)
        for (needle, replacement) in replacing {
            guard script.contains(needle) else { throw WireError("scripts/\(name).lua no longer contains \(needle)") }
            script = script.replacingOccurrences(of: needle, with: replacement)
        }
        return script
    }

    /// Starts the agent on `script` and HAProxy (`binary`: a 3.x launcher, nil: 2.6)
    /// on haproxy/haproxy-<config>.cfg and haproxy/spoe-<config>.conf as shipped.
    func startShipped(script: String, config: String, binary: String? = nil, agentArgs: [String] = ["--workers", "2"])
        throws -> (web: UInt16, haproxy: ManagedProcess, agent: ManagedProcess)
    {
        if binary == nil { _ = try requireHAProxy() }
        let (agent, agentPort) = try startAgent(script: script, name: config, extraArgs: agentArgs)
        let setup = try ProxySetup(agent: agentPort)
        let cfg = try setup.shipped("haproxy/haproxy-\(config).cfg")
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-\(config).conf"), encoding: .utf8)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-\(config).conf": spoe], waitPort: setup.web, binary: binary)
        return (setup.web, haproxy, agent)
    }
}
