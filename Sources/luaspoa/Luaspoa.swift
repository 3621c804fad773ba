import ArgumentParser

@main
struct Luaspoa: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luaspoa",
        abstract: "An HAProxy SPOE agent (SPOP 2.0) whose logic is a Lua 5.4 script.",
        discussion: """
            Examples:
              luaspoa --script scripts/ip_reputation.lua
              luaspoa --script agent.lua --listen 0.0.0.0:12345 --workers 4 --log-level debug
            """,
        version: "0.1.0",
        subcommands: [ServeCommand.self, ReloadCommand.self, CheckCommand.self, EvalCommand.self, TestCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
