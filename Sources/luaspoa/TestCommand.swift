import ArgumentParser
import LuaRuntime

/// `luaspoa test FILE SPEC...`: runs Lua spec files written with `spoa.test`
/// against the script and prints one line per case and a summary.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run spec files (spoa.test) against a script; exit status 1 if a case fails.",
        discussion: """
            Example: luaspoa test scripts/ip_reputation.lua scripts/ip_reputation_spec.lua
            Prints "ok N - name" or "not ok N - name: error" per case, then "P passed, F failed".
            """)

    @Argument(help: "The Lua agent script.")
    var script: String

    @Argument(help: "Spec files, run in order in the script's state.")
    var specs: [String]

    @OptionGroup(title: "Lua limits and failures")
    var lua: LuaOptions

    func validate() throws {
        guard !specs.isEmpty else { throw ValidationError("give at least one spec file") }
    }

    func run() throws {
        let runner: LuaSpecRunner
        do {
            runner = try LuaSpecRunner(configuration: lua.configuration(script: script, workers: 1))
        } catch {
            throw ScriptError(message: "\(error)")
        }
        var passed = 0, failed = 0
        for spec in specs {
            var results: [LuaSpecRunner.CaseResult]
            var fileError: LuaSpecRunner.SpecFileError?
            do {
                results = try runner.run(specPath: spec)
            } catch let error as LuaSpecRunner.SpecFileError {
                results = error.cases
                fileError = error
            }
            for result in results {
                let number = passed + failed + 1
                if result.passed {
                    passed += 1
                    print("ok \(number) - \(result.name)")
                } else {
                    failed += 1
                    print("not ok \(number) - \(result.name): \(result.error ?? "failed")")
                }
            }
            if let fileError {
                print("not ok - \(spec): \(fileError)")
                failed += 1
            }
        }
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode.failure }
    }
}
