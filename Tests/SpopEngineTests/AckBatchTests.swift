import NIOCore
import XCTest
@testable import SpopEngine

/// ACKs of one burst share a buffer that is reused after it was written.
final class AckBatchTests: XCTestCase {
    private func ack(_ batch: inout AckBatch, frameID: UInt64, score: UInt32) {
        batch.append(streamID: 1, frameID: frameID, maxFrameSize: 16380, allocator: ByteBufferAllocator()) { ack in
            try! ack.setVar(.session, "score", .uint32(score))
        }
    }

    private func frames(_ buffer: ByteBuffer) throws -> [(UInt64, [SpoaAction])] {
        var reader = FrameReader()
        reader.append(buffer)
        var out: [(UInt64, [SpoaAction])] = []
        while let frame = try reader.next(maxFrameSize: 16380) {
            XCTAssertEqual(frame.header.type, .ack)
            out.append((frame.header.frameID, try SpoaAction.decodeList(frame.payload)))
        }
        XCTAssertEqual(reader.bufferedBytes, 0, "a partial frame was left over")
        return out
    }

    func testOneBurstIsOneBufferOfFramesInOrder() throws {
        var batch = AckBatch()
        XCTAssertNil(batch.drain(), "nothing to write before any ACK")
        for id in 1...3 { ack(&batch, frameID: UInt64(id), score: UInt32(id * 10)) }
        let written = try frames(XCTUnwrap(batch.drain()))
        XCTAssertEqual(written.map(\.0), [1, 2, 3])
        XCTAssertEqual(written.map(\.1), [10, 20, 30].map { [.setVar(.session, "score", .uint32($0))] })
        XCTAssertNil(batch.drain(), "a drained burst is not written twice")
    }

    /// The socket may still hold the last burst when the next one starts: reusing
    /// the buffer must then copy, never overwrite bytes not yet sent.
    func testReuseNeverOverwritesABurstStillHeld() throws {
        var batch = AckBatch()
        ack(&batch, frameID: 1, score: 11)
        let held = try XCTUnwrap(batch.drain())
        ack(&batch, frameID: 2, score: 22)
        let next = try XCTUnwrap(batch.drain())
        XCTAssertEqual(try frames(held).map(\.0), [1])
        XCTAssertEqual(try frames(held).first?.1, [.setVar(.session, "score", .uint32(11))])
        XCTAssertEqual(try frames(next).map(\.0), [2])
        XCTAssertEqual(try frames(next).first?.1, [.setVar(.session, "score", .uint32(22))])
    }
}
