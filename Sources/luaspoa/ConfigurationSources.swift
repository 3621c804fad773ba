import ArgumentParser
import Foundation
import Yams

/// Settings of `luaspoa serve` from a YAML file (`--config FILE`) and `LUASPOA_*`
/// environment variables, turned into command-line arguments placed before the
/// real ones. Precedence: flag > environment > file > built-in default.
///
/// Keys are the long option names (`listen`, `lua-timeout`, or `lua_timeout`);
/// `LUASPOA_LUA_TIMEOUT` sets `--lua-timeout`. A boolean sets `--x` / `--no-x`.
struct ConfigurationSources {
    /// Long option names `serve` accepts (taken from its own help, so never out of date).
    var known: Set<String> { knownOverride ?? Self.serveOptionNames }
    private let knownOverride: Set<String>?

    init(known: Set<String>? = nil) { self.knownOverride = known }

    /// Computed on first use only: rendering the help touches ~1 MB of code that an agent
    /// started without a config file or LUASPOA_* variables never needs (idle RSS).
    static let serveOptionNames = optionNames(of: ServeCommand.self)

    /// The long option names `command` accepts, read from its own help.
    static func optionNames(of command: any ParsableCommand.Type) -> Set<String> {
        let help = Array(command.helpMessage(includeHidden: true, columns: 10_000).utf8)
        var names: Set<String> = []
        var index = 0
        while index + 2 < help.count {
            defer { index += 1 }
            guard help[index] == UInt8(ascii: "-"), help[index + 1] == UInt8(ascii: "-"),
                  (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(help[index + 2]) else { continue }
            let start = index + 2
            var end = start
            while end < help.count, isOptionNameByte(help[end]) { end += 1 }
            names.insert(String(decoding: help[start..<end], as: UTF8.self))
            index = end - 1
        }
        return names
    }

    private static func isOptionNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || byte == UInt8(ascii: "-")
    }

    static let environmentPrefix = "LUASPOA_"
    static let configKey = "config"

    /// The arguments to parse, and for each option added from the file or the
    /// environment where it came from ("/etc/luaspoa.yaml: workers", "LUASPOA_WORKERS"),
    /// so that a bad value names its source. `arguments` unchanged unless they run
    /// `serve` (explicitly or as the default subcommand).
    func effectiveArguments(_ arguments: [String], environment: [String: String],
                            readFile: (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) })
        throws -> (arguments: [String], origins: [String: String]) {
        guard Self.runsServe(arguments) else { return (arguments, [:]) }
        let configFlag = Self.value(of: "--config", in: arguments)
        guard configFlag != nil || environment.keys.contains(where: { $0.hasPrefix(Self.environmentPrefix) })
        else { return (arguments, [:]) }
        let explicit = Set(arguments.compactMap(optionName))
        var layered: [Setting] = []
        if let path = configFlag ?? environment[Self.environmentPrefix + "CONFIG"] {
            let text: String
            do { text = try readFile(path) } catch { throw ValidationError("--config \(path): cannot read: \(error.localizedDescription)") }
            layered += try fileSettings(text, path: path)
        }
        layered += try environmentSettings(environment)
        // Later entries win per key; an explicit flag (either polarity) beats both.
        var byKey: [String: Setting] = [:]
        var order: [String] = []
        for setting in layered {
            if byKey[setting.key] == nil { order.append(setting.key) }
            byKey[setting.key] = setting
        }
        let added = order.filter { !explicit.contains($0) }.map { byKey[$0]! }
        let insertAt = arguments.first == "serve" ? 1 : 0
        return (Array(arguments[..<insertAt]) + added.flatMap(\.values) + Array(arguments[insertAt...]),
                Dictionary(uniqueKeysWithValues: added.map { ($0.key, $0.source) }))
    }

    /// One option's arguments, from a file key or an environment variable.
    struct Setting {
        var key: String
        var values: [String]
        var source: String
    }

    static func runsServe(_ arguments: [String]) -> Bool {
        guard let first = arguments.first else { return true }
        if first == "serve" { return true }
        return first.hasPrefix("-") && !["-h", "--help", "--version", "--experimental-dump-help"].contains(first)
    }

    func fileSettings(_ text: String, path: String) throws -> [Setting] {
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch { throw ValidationError("\(path): not valid YAML: \(error)") }
        guard let document else { return [] }
        guard let mapping = document as? [String: Any] else {
            throw ValidationError("\(path): expected a mapping of option names to values (e.g. \"listen: 0.0.0.0:12345\")")
        }
        return try mapping.keys.sorted().map { rawKey in
            try setting(rawKey, mapping[rawKey]!, source: "\(path): \(rawKey)")
        }
    }

    func environmentSettings(_ environment: [String: String]) throws -> [Setting] {
        try environment.keys.sorted().compactMap { name in
            guard name.hasPrefix(Self.environmentPrefix), name != Self.environmentPrefix + "CONFIG" else { return nil }
            let key = name.dropFirst(Self.environmentPrefix.count).lowercased()
            let value = environment[name]!
            let typed: Any = ["true", "false"].contains(value.lowercased()) ? (value.lowercased() == "true") : value
            return try setting(key, typed, source: name)
        }
    }

    /// One key's arguments; the key is normalised to its option name.
    private func setting(_ rawKey: String, _ value: Any, source: String) throws -> Setting {
        let key = rawKey.replacingOccurrences(of: "_", with: "-").lowercased()
        guard known.contains(key), key != Self.configKey, !["help", "version"].contains(key) else {
            throw ValidationError("\(source): no option --\(key) (known: \(known.filter { !$0.hasPrefix("no-") && !["help", "version", Self.configKey].contains($0) }.sorted().joined(separator: ", ")))")
        }
        switch value {
        case let flag as Bool:
            if flag { return Setting(key: key, values: ["--\(key)"], source: source) }
            guard known.contains("no-\(key)") else { return Setting(key: key, values: [], source: source) }
            return Setting(key: key, values: ["--no-\(key)"], source: source)
        case let list as [Any]:
            return Setting(key: key, values: try list.flatMap { ["--\(key)", try scalar($0, source: source)] }, source: source)
        default:
            return Setting(key: key, values: ["--\(key)", try scalar(value, source: source)], source: source)
        }
    }

    private func scalar(_ value: Any, source: String) throws -> String {
        switch value {
        case let text as String: return text
        case let number as Int: return "\(number)"
        case let number as Double: return "\(number)"
        default: throw ValidationError("\(source): expected a string, number or boolean")
        }
    }

    /// The option an argument names: "--lua-timeout=5" and "--no-pipelining" give "lua-timeout" and "pipelining".
    private func optionName(_ argument: String) -> String? {
        guard argument.hasPrefix("--") else { return nil }
        var name = String(argument.dropFirst(2).prefix { $0 != "=" })
        if name.hasPrefix("no-"), known.contains(String(name.dropFirst(3))) { name = String(name.dropFirst(3)) }
        return name
    }

    private static func value(of option: String, in arguments: [String]) -> String? {
        for (index, argument) in arguments.enumerated() {
            if argument == option, index + 1 < arguments.count { return arguments[index + 1] }
            if argument.hasPrefix(option + "=") { return String(argument.dropFirst(option.count + 1)) }
        }
        return nil
    }
}
