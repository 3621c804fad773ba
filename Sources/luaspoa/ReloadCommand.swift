import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `luaspoa reload --pid-file F`: asks a running agent to reload its script (SIGHUP).
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload the script of a running agent (sends it SIGHUP).",
        discussion: """
            The agent loads the script into fresh states for every worker and swaps them in
            between frames only if all of them loaded; otherwise it keeps the running script
            and logs the error (file:line). Like `kill -HUP $(cat FILE)`, but it first checks
            that the process is luaspoa, so a stale PID file does not signal another program.
            """
    )

    @Option(help: ArgumentHelp("The file the agent was started with (serve --pid-file).", valueName: "file"))
    var pidFile: String

    func run() throws {
        let pid = try PIDFile.read(pidFile)
        try PIDFile.checkIsLuaspoa(pid, from: pidFile)
        guard kill(pid, SIGHUP) == 0 else {
            throw PIDFileError(message: "cannot signal process \(pid) from \(pidFile): \(String(cString: strerror(errno)))")
        }
        print("sent SIGHUP to luaspoa (pid \(pid)); the agent's log says whether the reload succeeded")
    }
}
