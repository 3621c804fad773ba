import ArgumentParser
import Foundation
import Logging
import LuaRuntime
import SpopEngine

/// `luaspoa eval FILE --message NAME --arg name=type:value ...`: one message
/// through the real dispatch (a NOTIFY frame in, the ACK frame decoded), printing
/// the ACK's actions with their wire types.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run one message through the script and print the ACK's actions.",
        discussion: """
            Each --arg is name=type:value with type \(NotifyArgument.types); without a
            type the value is a string, and an empty name (=int32:5) sends an unnamed argument.
            Example:
              luaspoa eval scripts/ip_reputation.lua --message check-client-ip --arg ip=ipv4:127.0.0.1
              set-var(sess.ip_score) uint32:100
            Exit status: 0, or 1 when the handler failed (its on_error actions are printed)
            or no handler is registered for the message.
            """)

    @Argument(help: "The Lua agent script.")
    var script: String

    @OptionGroup var message: MessageOptions

    @OptionGroup(title: "Lua limits and failures")
    var lua: LuaOptions

    func run() throws {
        let messages = try message.parsed()
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let worker: LuaWorker
        do {
            worker = try LuaWorker(configuration: lua.configuration(script: script, workers: 1), workerIndex: 1,
                                   logger: Logger(label: "luaspoa.eval"))
        } catch {
            throw ScriptError(message: "\(error)")
        }
        let trip = try worker.roundTrip(messages)
        if trip.unhandled {
            throw ScriptError(message: "no handler registered for message '\(message.message)' in \(script)")
        }
        for action in trip.actions { print(action) }
        if trip.error != nil { throw ExitCode.failure }
    }
}
