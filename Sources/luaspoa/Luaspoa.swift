import ArgumentParser
import Foundation

@main
struct Luaspoa: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luaspoa",
        abstract: "An HAProxy SPOE agent (SPOP 2.0) whose logic is a Lua 5.4 script.",
        discussion: """
            Examples:
              luaspoa --script scripts/ip_reputation.lua
              luaspoa --script agent.lua --listen 0.0.0.0:12345 --workers 4 --log-level debug
              luaspoa --script agent.lua --pid-file /run/luaspoa.pid --lua-timeout 50 --lua-max-memory 64M
              luaspoa reload --pid-file /run/luaspoa.pid
              luaspoa check agent.lua
              luaspoa eval agent.lua --message check-client-ip --arg ip=ipv4:192.0.2.10
              luaspoa test agent.lua agent_spec.lua
              luaspoa send --to 127.0.0.1:12345 --message check-client-ip --arg ip=ipv4:192.0.2.10
              luaspoa --config /etc/luaspoa/luaspoa.yaml
              LUASPOA_WORKERS=4 luaspoa --script agent.lua --metrics 127.0.0.1:9100 --log-format json
              luaspoa bench --connect 127.0.0.1:12345 --connections 4 --in-flight 64 --expect sess.ip_score
            """,
        version: "0.1.0",
        subcommands: [
            ServeCommand.self, ReloadCommand.self, CheckCommand.self, EvalCommand.self, TestCommand.self,
            BenchCommand.self, SendCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    /// Adds the serve options from `--config FILE` and `LUASPOA_*` before parsing, and
    /// explains a failed parse in terms of what the user wrote (ArgumentDiagnosis).
    static func main() async {
        let given = Array(CommandLine.arguments.dropFirst())
        let effective: (arguments: [String], origins: [String: String])
        do {
            effective = try ConfigurationSources().effectiveArguments(given, environment: ProcessInfo.processInfo.environment)
        } catch {
            exit(withError: error)
        }
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(ArgumentDiagnosis.attachingNegativeValues(effective.arguments))
        } catch {
            ArgumentDiagnosis.exit(for: error, given: given, origins: effective.origins)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// A command failed for a reason its message states in full (printed as "Error: ...", status 1).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
