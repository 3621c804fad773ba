import Logging
import SpopEngine

extension LuaWorker {
    /// The per-message line at `--log-level trace`: name, decoded arguments, resulting
    /// actions (trace, not debug: debug stays readable under load).
    func trace(_ message: SpoaMessage, notify: NotifyFrame, actions: [SpoaAction]) {
        let arguments = message.arguments.map { "\($0.nameString.isEmpty ? "_" : $0.nameString)=\($0.value)" }
        logger.trace("message \(message.nameString)", metadata: [
            "lua.message": "\(message.nameString)",
            "stream-id": "\(notify.streamID)", "frame-id": "\(notify.frameID)",
            "args": .array(arguments.map { .string($0) }),
            "actions": .array(actions.map { .string($0.description) }),
        ])
    }
}
