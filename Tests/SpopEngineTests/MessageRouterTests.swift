import Logging
import NIOCore
import XCTest

@testable import SpopEngine

final class MessageRouterTests: XCTestCase {
    struct Refused: Error {}

    /// The ACK's actions after `router` handled one NOTIFY with these messages.
    func answer(_ router: MessageRouter, _ names: [String]) throws -> [SpoaAction] {
        var bytes = ByteBuffer()
        NotifyFrame.write(streamID: 1, frameID: 1, messages: names.map { ($0, [("n", .int32(1))]) }, to: &bytes)
        var reader = FrameReader()
        reader.append(bytes)
        let raw = try XCTUnwrap(try reader.next(maxFrameSize: 16380))
        let notify = try NotifyFrame(streamID: 1, frameID: 1, payload: raw.payload)
        var ack = AckWriter(streamID: 1, frameID: 1, maxFrameSize: 16380, buffer: ByteBuffer())
        router.handle(notify, connection: SpoaConnectionInfo(), ack: &ack)
        var acks = FrameReader()
        acks.append(ack.finish())
        return try SpoaAction.decodeList(try XCTUnwrap(try acks.next(maxFrameSize: 16380)).payload)
    }

    func testEachMessageGoesToItsHandlerAndAThrowLosesOnlyItsOwnActions() throws {
        let router = MessageRouter(logger: Logger(label: "test"))
            .on("first") { _, _, ack in try ack.setVar(.transaction, "a", .int32(1)) }
            .on("broken") { _, _, ack in
                try ack.setVar(.transaction, "half", .int32(2))
                throw Refused()
            }
            .on("last") { message, _, ack in try ack.setVar(.session, "args", .int32(Int32(message.argumentCount))) }
        XCTAssertEqual(try answer(router, ["first", "broken", "nobody", "last"]),
                       [.setVar(.transaction, "a", .int32(1)), .setVar(.session, "args", .int32(1))])
        XCTAssertEqual(router.failedMessages, 1)
        XCTAssertEqual(router.unhandledMessages, 1)
    }

    func testALaterRegistrationOfANameReplacesTheEarlierOne() throws {
        let router = MessageRouter(logger: Logger(label: "test"))
            .on("m") { _, _, ack in try ack.setVar(.transaction, "old", .int32(1)) }
            .on("m") { _, _, ack in try ack.setVar(.transaction, "new", .int32(2)) }
        XCTAssertEqual(try answer(router, ["m"]), [.setVar(.transaction, "new", .int32(2))])
    }

    /// An ACK-full error is a throw like any other: the message's actions so far are
    /// taken back, not half sent.
    func testAnAckFullErrorRollsTheMessageBack() throws {
        let router = MessageRouter(logger: Logger(label: "test"))
            .on("big") { _, _, ack in
                try ack.setVar(.transaction, "small", .int32(1))
                try ack.setVar(.transaction, "big", .string(String(repeating: "x", count: 20_000)))
            }
        XCTAssertEqual(try answer(router, ["big"]), [])
        XCTAssertEqual(router.failedMessages, 1)
    }
}
