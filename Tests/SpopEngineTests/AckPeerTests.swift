import NIOCore
import NIOEmbedded
@testable import SpopEngine
import XCTest

/// An `async` connection's count of ACK bytes not yet written, and the wake when it
/// falls below the mark: the channel can already be writable then, so a handler that
/// paused because the count was high would otherwise wait for an event that never comes.
final class AckPeerTests: XCTestCase {
    var channel: EmbeddedChannel!
    var peer: AckPeer!
    var wakes = 0

    override func setUpWithError() throws {
        channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        peer = AckPeer(id: 1, key: EngineKey(engineID: "e", channel: channel), channel: channel, maxFrameSize: 16380,
                       maxPendingOutput: 100)
        peer.onRoom { [unowned self] in wakes += 1 }
    }

    override func tearDown() {
        _ = try? channel.finish()
    }

    /// Writes `bytes` of ACKs on the peer, counted as pending until written.
    func write(_ bytes: Int) {
        peer.addPending(bytes)
        _ = peer.write([ByteBuffer(repeating: 0, count: bytes)], counted: bytes, flush: false)
    }

    func testFallingBelowTheMarkWakesOnce() {
        write(80)
        write(60)
        XCTAssertTrue(channel.isWritable)
        XCTAssertFalse(peer.candidate.isWritable, "140 bytes pending: full at a mark of 100")
        channel.flush()  // 140 -> 60 (below the mark: a wake) -> 0 (was already below)
        XCTAssertEqual(wakes, 1)
        XCTAssertTrue(peer.candidate.isWritable)
    }

    func testWritesThatStayAboveOrBelowTheMarkDoNotWake() {
        write(30)
        channel.flush()  // below throughout
        write(150)
        write(60)
        peer.addPending(50)  // a sibling's ACKs on their way here
        channel.flush()  // 260 -> 110 -> 50: only the second write crosses
        XCTAssertEqual(wakes, 1)
        write(200)
        channel.flush()  // 250 -> 50 crosses again
        XCTAssertEqual(wakes, 2)
    }

    func testAClearedWakeIsNotCalled() {
        peer.onRoom(nil)
        write(150)
        channel.flush()
        XCTAssertEqual(wakes, 0)
    }
}
