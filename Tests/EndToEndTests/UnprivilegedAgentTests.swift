// The agent as packaging/luaspoa.service runs it: without any capability
// (CapabilityBoundingSet= empty, NoNewPrivileges=yes).
//
// Regression: TCP_NODELAY was requested with NIO's socketOption(), i.e. at
// SOL_SOCKET level, where option 1 is SO_DEBUG. Setting SO_DEBUG needs
// CAP_NET_ADMIN, so as any user but root every accepted SPOP connection failed
// its setup and was closed at once (found under a real systemd, tools/systemd-check.sh);
// as root it silently turned SO_DEBUG on and left Nagle's algorithm on.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class UnprivilegedAgentTests: E2ETestCase {
    func testAgentWithoutCapabilitiesServesSpop() throws {
        let setpriv = "/usr/bin/setpriv"
        var launcher: [String] = []
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: setpriv) else {
                throw XCTSkip("\(setpriv) not found (util-linux): cannot drop root's capabilities")
            }
            launcher = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]
        }
        let (agent, port) = try startAgent(scriptPath: TestScripts.ipReputationPath, launcher: launcher)
        let status = try String(contentsOfFile: "/proc/\(agent.process.processIdentifier)/status", encoding: .utf8)
        let capEff = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        XCTAssertEqual(capEff?.split(separator: "\t").last, "0000000000000000", "the agent kept capabilities: \(status)")
        for _ in 0..<3 {
            assertAgentServes(port, agent)
        }
    }
}
