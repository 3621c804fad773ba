import Logging
import NIOCore

/// A worker that calls one handler per SPOE message name, as luaspoa's Lua side
/// does with `spoa.register_message`: a handler that throws loses only its own
/// message's actions (they are rolled back), the frame's other messages keep
/// theirs, and the ACK is always sent.
///
/// ```swift
/// MessageRouter(logger: logger)
///     .on("check-client-ip") { message, connection, ack in
///         try ack.setVar(.session, "ip_score", .uint32(100))
///     }
/// ```
public final class MessageRouter: SpoaWorker {
    public typealias Handler = (SpoaMessage, SpoaConnectionInfo, inout AckWriter) throws -> Void

    /// Names as bytes: routing compares the frame's bytes, no String per message.
    private var routes: [(name: [UInt8], handler: Handler)] = []
    private let logger: Logger
    /// Messages whose handler threw, and messages no handler was registered for.
    public private(set) var failedMessages = 0
    public private(set) var unhandledMessages = 0

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Registers `handler` for messages named `name` (a later registration of the same name wins).
    @discardableResult
    public func on(_ name: String, _ handler: @escaping Handler) -> MessageRouter {
        let bytes = Array(name.utf8)
        routes.removeAll { $0.name == bytes }
        routes.append((bytes, handler))
        return self
    }

    public func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
        for message in notify.messages {
            guard let handler = route(message.name) else {
                unhandledMessages += 1
                logger.debug("no handler for message \(message.nameString)")
                continue
            }
            let mark = ack.mark
            do {
                try handler(message, connection, &ack)
            } catch {
                ack.rollback(to: mark)
                failedMessages += 1
                logger.error("\(message.nameString): \(error)", metadata: ["spoa.message": "\(message.nameString)"])
            }
        }
    }

    private func route(_ name: ByteBuffer) -> Handler? {
        routes.first { name.readableBytesView.elementsEqual($0.name) }?.handler
    }
}
