import ArgumentParser
import SpopEngine

/// `--message NAME --arg name=type:value ...`: one SPOE message as `eval` and `send` take it.
struct MessageOptions: ParsableArguments {
    @Option(help: "The SPOE message name.")
    var message: String

    @Option(name: .customLong("arg"), parsing: .unconditionalSingleValue, help: ArgumentHelp(
        "An argument, name=type:value (repeatable, sent in order).", valueName: "name=type:value"))
    var arguments: [String] = []

    /// The message as NOTIFY encoding wants it; throws the first malformed --arg.
    func parsed() throws -> [(name: String, arguments: [(name: String, value: SpopValue)])] {
        [(message, try arguments.map(NotifyArgument.parse).map { (name: $0.name, value: $0.value) })]
    }
}
