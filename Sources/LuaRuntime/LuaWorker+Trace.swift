import Logging
import SpopEngine

extension LuaWorker {
    /// The per-message debug line: name, decoded arguments, resulting actions.
    func trace(_ message: SpoaMessage, notify: NotifyFrame, actions: [SpoaAction]) {
        let arguments = message.arguments.map { "\($0.nameString.isEmpty ? "_" : $0.nameString)=\($0.value)" }
        logger.debug("message \(message.nameString)", metadata: [
            "stream-id": "\(notify.streamID)", "frame-id": "\(notify.frameID)",
            "args": .array(arguments.map { .string($0) }),
            "actions": .array(actions.map { .string($0.description) }),
        ])
    }
}
