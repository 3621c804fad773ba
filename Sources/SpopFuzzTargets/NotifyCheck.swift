import NIOCore
import SpopEngine

/// Walks a decoded NOTIFY the way a worker does, and checks that the iterators agree
/// with the counts validated when the frame was built.
enum NotifyCheck {
    static func touchEveryArgument(_ notify: NotifyFrame) {
        var messages = 0
        for message in notify.messages {
            messages += 1
            _ = message.nameString
            var arguments = 0
            for argument in message.arguments {
                arguments += 1
                _ = argument.nameString
                touch(argument.value)
            }
            precondition(arguments == message.argumentCount, "message yields \(arguments) of \(message.argumentCount) arguments")
        }
        precondition(messages == notify.messageCount, "NOTIFY yields \(messages) of \(notify.messageCount) messages")
    }

    /// Re-encodes a value and decodes it again: it must come back equal.
    static func touch(_ value: SpopValue) {
        var encoded = ByteBuffer()
        encoded.writeSpopValue(value)
        let decoded = try? encoded.readSpopValue()
        precondition(decoded == value, "value \(value) does not survive a round trip")
        precondition(encoded.readableBytes == 0, "value \(value) leaves \(encoded.readableBytes) bytes behind")
        _ = value.description
    }
}

/// An ACK's LIST-OF-ACTIONS, decoded, re-encoded with AckWriter and decoded again.
enum ActionListCheck {
    static func roundTrip(_ payload: ByteBuffer) {
        guard let actions = try? SpoaAction.decodeList(payload) else { return }
        var writer = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 1 << 24, buffer: ByteBuffer())
        for action in actions {
            _ = action.description
            switch action {
            case .setVar(let scope, let name, let value): try! writer.setVar(scope, name, value)
            case .unsetVar(let scope, let name): try! writer.unsetVar(scope, name)
            }
        }
        var reader = FrameReader()
        reader.append(writer.finish())
        let frame = try! reader.next(maxFrameSize: 1 << 24)!
        let again = try! SpoaAction.decodeList(frame.payload)
        precondition(again == actions, "ACK actions change in a round trip")
    }
}
