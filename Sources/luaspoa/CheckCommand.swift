import ArgumentParser
import LuaRuntime

/// `luaspoa check FILE`: loads the script (body and init functions) in a scratch
/// state and reports the first error with file:line; for CI and before a reload.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load a script without serving; print file:line of the first error (exit status 1).")

    @Argument(help: "The Lua agent script.")
    var script: String

    @OptionGroup(title: "Lua limits and failures")
    var lua: LuaOptions

    func run() throws {
        do {
            try LuaWorker.check(lua.configuration(script: script, workers: 1))
        } catch {
            throw ScriptError(message: "\(error)")
        }
        print("\(script): ok")
    }
}
