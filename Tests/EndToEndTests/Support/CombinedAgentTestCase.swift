import XCTest

/// Tests that talk raw SPOP to one agent running `TestScripts.combined()`, started
/// before each test (ProbeTests, RobustnessTests, HostileInputTests).
class CombinedAgentTestCase: E2ETestCase {
    var agent: ManagedProcess!
    var port: UInt16 = 0

    /// The agent's name in logs and temporary files.
    var agentName: String { "agent" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        (agent, port) = try startAgent(script: try TestScripts.combined(), name: agentName)
    }
}
