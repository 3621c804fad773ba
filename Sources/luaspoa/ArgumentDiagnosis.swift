import ArgumentParser
import Foundation

/// Makes a failed command line say what is wrong with it. ArgumentParser reports a
/// missing required option before an unknown one (`--scirpt x` gave "Missing expected
/// argument '--script'"), reads `--workers -1` as an option named `-1`, and cannot know
/// that a bad value came from the YAML file or a LUASPOA_* variable.
enum ArgumentDiagnosis {
    /// "--workers -1" becomes "--workers=-1": a negative number after an option is its
    /// value, which validation then judges ("--workers must be at least 1").
    static func attachingNegativeValues(_ arguments: [String]) -> [String] {
        var result: [String] = []
        for argument in arguments {
            if let last = result.last, last.hasPrefix("--"), !last.contains("="), isNegativeNumber(argument) {
                result[result.count - 1] = "\(last)=\(argument)"
            } else {
                result.append(argument)
            }
        }
        return result
    }

    /// Exits with the clearest error for `error`, thrown while parsing: an unknown
    /// option in `given` (the user's own arguments) first, with the closest known name;
    /// then a bad value named with its source in `origins` (option name to source).
    static func exit(for error: any Error, given: [String], origins: [String: String]) -> Never {
        let command = subcommand(of: given)
        if let command, let unknown = firstUnknownOption(in: given, of: command) {
            fail(unknown, command: command)
        }
        let message = Luaspoa.message(for: error)
        if let origin = origins.first(where: { message.contains("'--\($0.key) ") || message.contains("'--\($0.key)'") })?.value {
            fail("\(origin): \(message)", command: command)
        }
        Luaspoa.exit(withError: error)
    }

    /// As ArgumentParser prints a usage error, with the full command name.
    private static func fail(_ message: String, command: (any ParsableCommand.Type)?) -> Never {
        let name = command.map { "luaspoa \($0._commandName)" } ?? "luaspoa"
        FileHandle.standardError.write(Data("Error: \(message)\n  See '\(name) --help' for more information.\n".utf8))
        Foundation.exit(ExitCode.validationFailure.rawValue)
    }

    private static func subcommand(of arguments: [String]) -> (any ParsableCommand.Type)? {
        if let first = arguments.first,
           let named = Luaspoa.configuration.subcommands.first(where: { $0._commandName == first }) {
            return named
        }
        return ConfigurationSources.runsServe(arguments) ? ServeCommand.self : nil
    }

    private static func firstUnknownOption(in arguments: [String], of command: any ParsableCommand.Type) -> String? {
        let known = command == ServeCommand.self ? ConfigurationSources.serveOptionNames : ConfigurationSources.optionNames(of: command)
        for argument in arguments where argument.hasPrefix("--") && argument != "--" {
            let name = String(argument.dropFirst(2).prefix { $0 != "=" })
            guard !known.contains(name) else { continue }
            let closest = known.map { (name: $0, distance: editDistance($0, name)) }.min { $0.distance < $1.distance }
            let hint = closest.map { $0.distance <= 2 ? " (did you mean '--\($0.name)'?)" : "" } ?? ""
            return "unknown option '--\(name)'\(hint)"
        }
        return nil
    }

    private static func isNegativeNumber(_ argument: String) -> Bool {
        argument.count > 1 && argument.hasPrefix("-") && Double(argument) != nil
    }

    /// Levenshtein distance, for "did you mean".
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
