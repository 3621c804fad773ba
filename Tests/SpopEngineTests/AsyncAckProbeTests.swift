import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
@testable import SpopEngine

/// `async` ACK routing over real sockets: raw SPOP connections play HAProxy 2.6's
/// threads (one engine-id each) and count on which connection every ACK arrives.
final class AsyncAckProbeTests: XCTestCase {
    static let engine = "5c6e0b0a-33d1-4c4e-9d5e-0a1b2c3d4e5f"
    static let asyncAgent = AgentCapabilities(async: true)

    /// Answers every NOTIFY with txn.n = its stream-id, so an ACK proves whose it is.
    static let worker: @Sendable () -> any SpoaWorker = {
        ClosureWorker { notify, _, ack in try? ack.setVar(.transaction, "n", .uint64(notify.streamID)) }
    }

    /// 12 kB ACKs: a few hundred fill the kernel buffers of a connection nobody reads.
    static let bigAck: @Sendable () -> any SpoaWorker = {
        ClosureWorker { notify, _, ack in
            try? ack.setVar(.transaction, "n", .uint64(notify.streamID))
            try? ack.setVar(.transaction, "pad", .string(String(repeating: "x", count: 12_000)))
        }
    }
    static let smallMark = ServerLimits(maxPendingOutput: 4096)

    /// Two connections of one engine that both negotiated async, against a real server.
    func withSiblings(
        _ mode: AsyncAckMode, agent: AgentCapabilities = asyncAgent, limits: ServerLimits = .init(),
        worker: @escaping @Sendable () -> any SpoaWorker = worker, stalledFirst: Bool = false,
        _ body: (ProbePeer, ProbePeer) async throws -> Void
    ) async throws {
        try await withServer(limits: limits, capabilities: agent, asyncAck: mode, worker) { _, address in
            let a = try await ProbePeer.connect(address, engineID: Self.engine, async: true, smallReceiveBuffer: stalledFirst)
            let b = try await ProbePeer.connect(address, engineID: Self.engine, async: true)
            try await body(a, b)
        }
    }

    func testSpreadSendsAcksOfOneConnectionOnItsSiblingOfTheSameEngine() async throws {
        try await withSiblings(.spread) { a, b in
            try await a.notify(streamIDs: 0..<40)
            let acks = try await ProbePeer.acks(40, on: [a, b])
            XCTAssertGreaterThan(acks[1].count, 0, "no ACK left on the sibling")
            XCTAssertGreaterThan(acks[0].count, 0, "spread leaves the own connection out")
            XCTAssertEqual((acks[0] + acks[1]).sorted(), Array(0..<40), "every NOTIFY gets exactly one ACK")
        }
    }

    func testWithoutAsyncNegotiatedOrAnotherEngineAcksStayOnTheirConnection() async throws {
        try await withServer(capabilities: Self.asyncAgent, asyncAck: .spread, Self.worker) { _, address in
            // HAProxy did not offer async here: no ACK may leave this connection.
            let plain = try await ProbePeer.connect(address, engineID: Self.engine, async: false)
            // Async, but another engine (another HAProxy thread): not a sibling.
            let other = try await ProbePeer.connect(address, engineID: "other-engine", async: true)
            // Same engine and async: a sibling for `other`'s engine never, for `plain` neither.
            let same = try await ProbePeer.connect(address, engineID: Self.engine, async: true)
            try await plain.notify(streamIDs: 0..<20)
            try await other.notify(streamIDs: 100..<120)
            let acks = try await ProbePeer.acks(40, on: [plain, other, same])
            XCTAssertEqual(acks[0], Array(0..<20))
            XCTAssertEqual(acks[1], Array(100..<120))
            XCTAssertEqual(acks[2], [])
        }
    }

    /// Issue 11: a client from another address presenting the same engine-id is not a
    /// sibling: spread mode keeps every ACK among the original peer's connections.
    func testSameEngineIDFromAnotherAddressGetsNoAcks() async throws {
        try await withServer(capabilities: Self.asyncAgent, asyncAck: .spread, Self.worker) { _, address in
            let a = try await ProbePeer.connect(address, engineID: Self.engine, async: true)
            let intruder = try await ProbePeer.connect(address, engineID: Self.engine, async: true, from: "127.0.0.2")
            let b = try await ProbePeer.connect(address, engineID: Self.engine, async: true)
            try await a.notify(streamIDs: 0..<40)
            let acks = try await ProbePeer.acks(40, on: [a, intruder, b])
            XCTAssertEqual(acks[1], [], "ACKs of 127.0.0.1's engine went to 127.0.0.2")
            XCTAssertGreaterThan(acks[2].count, 0, "spread still uses the sibling from the same address")
            XCTAssertEqual((acks[0] + acks[2]).sorted(), Array(0..<40))
        }
    }

    func testAgentWithoutAsyncNeverReroutesEvenIfHAProxyOffersIt() async throws {
        try await withSiblings(.own, agent: .init()) { a, b in
            try await a.notify(streamIDs: 0..<20)
            let acks = try await ProbePeer.acks(20, on: [a, b])
            XCTAssertEqual(acks[0], Array(0..<20))
            XCTAssertEqual(acks[1], [])
        }
    }

    /// Own mode: NOTIFYs read in the same burst as HAProxy's DISCONNECT would be
    /// answered on a connection HAProxy no longer reads ACKs from; a sibling takes them.
    func testOwnModeMovesAcksOfAConnectionHAProxyDisconnectsToASibling() async throws {
        try await withSiblings(.own) { a, b in
            try await a.notify(streamIDs: 0..<10, thenDisconnect: true)
            let acks = try await ProbePeer.acks(10, on: [a, b])
            // The sibling's ACKs may arrive before the agent's DISCONNECT on `a` is read.
            try await ProbePeer.waitUntil { a.frames().contains { $0.header.type == .agentDisconnect } }
            XCTAssertEqual(acks[1], Array(0..<10))
            XCTAssertEqual(a.ackedStreamIDs(), [])
            XCTAssertEqual(a.frames().last?.header.type, .agentDisconnect)
        }
    }

    /// Own mode: a connection whose peer stops reading goes above the high-water mark;
    /// instead of holding its reads, the agent answers its NOTIFYs on the sibling.
    func testOwnModeAnswersOnASiblingWhileTheOwnConnectionIsNotWritable() async throws {
        try await withSiblings(.own, limits: Self.smallMark, worker: Self.bigAck, stalledFirst: true) { a, b in
            try await a.channel.setOption(.autoRead, value: false).get()  // HAProxy's thread stops reading this one
            // ~5 MB of ACKs first: more than the kernel buffers of the stalled connection hold;
            // then small batches, read in later bursts, until one is answered on the sibling.
            try await a.notify(streamIDs: 0..<400)
            var sent: UInt64 = 400
            while b.ackedStreamIDs(checking: false).isEmpty, sent < 4000 {
                try await a.notify(streamIDs: sent..<sent + 10)
                sent += 10
                try await Task.sleep(nanoseconds: 1_000_000)
            }
            try await a.channel.setOption(.autoRead, value: true).get()
            let acks = try await ProbePeer.acks(Int(sent), on: [a, b], checking: false)
            XCTAssertGreaterThan(acks[1].count, 0, "no ACK left on the sibling while the own connection was stalled")
            XCTAssertEqual((acks[0] + acks[1]).sorted(), Array(0..<sent), "every NOTIFY gets exactly one ACK")
        }
    }

    /// ACKs queued on a connection that then breaks (HAProxy resets it) are written on a
    /// sibling: the sibling connects only after the stall, so this is the rescue path alone.
    func testAcksQueuedOnABrokenConnectionAreRescuedBySibling() async throws {
        try await withServer(limits: Self.smallMark, capabilities: Self.asyncAgent, asyncAck: .own, Self.bigAck) { _, address in
            let a = try await ProbePeer.connect(address, engineID: Self.engine, async: true, smallReceiveBuffer: true)
            try await a.channel.setOption(.autoRead, value: false).get()
            // ~5 MB of ACKs: more than the kernel holds, the rest waits in the agent.
            try await a.notify(streamIDs: 0..<400)
            let b = try await ProbePeer.connect(address, engineID: Self.engine, async: true)
            let socket = try XCTUnwrap(a.channel as? any SocketOptionProvider)
            try await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            try await a.channel.close()  // RST: the agent's queued writes on `a` fail
            try await ProbePeer.waitUntil { !b.ackedStreamIDs(checking: false).isEmpty }
            let rescued = b.ackedStreamIDs(checking: false)
            XCTAssertEqual(Set(rescued).count, rescued.count, "an ACK rescued twice")
            XCTAssertTrue(rescued.allSatisfy { $0 < 400 }, "\(rescued)")
        }
    }

    func testOwnModeKeepsAcksOnAHealthyConnection() async throws {
        try await withSiblings(.own) { a, b in
            try await a.notify(streamIDs: 0..<30)
            let acks = try await ProbePeer.acks(30, on: [a, b])
            XCTAssertEqual(acks[0], Array(0..<30))
            XCTAssertEqual(acks[1], [])
        }
    }
}

/// One raw SPOP connection playing an HAProxy thread; records every frame the agent sends.
final class ProbePeer: Sendable {
    let channel: any Channel
    private let received: NIOLockedValueBox<[RawFrame]>

    private init(channel: any Channel, received: NIOLockedValueBox<[RawFrame]>) {
        self.channel = channel
        self.received = received
    }

    /// Connects and completes the handshake (so the agent has registered the connection).
    static func connect(
        _ address: SocketAddress, engineID: String, async: Bool, smallReceiveBuffer: Bool = false, from source: String = "127.0.0.1"
    ) async throws -> ProbePeer {
        let received = NIOLockedValueBox<[RawFrame]>([])
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .channelOption(.socketOption(.so_rcvbuf), value: smallReceiveBuffer ? 4096 : 128 * 1024)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Recorder(received)) }
            }
            .connect(to: address).get()
        let peer = ProbePeer(channel: channel, received: received)
        var hello = ByteBuffer()
        HaproxyHello(capabilities: async ? ["pipelining", "async"] : ["pipelining"], engineID: engineID).write(to: &hello)
        try await channel.writeAndFlush(hello)
        try await waitUntil { peer.frames().contains { $0.header.type == .agentHello } }
        return peer
    }

    func notify(streamIDs: Range<UInt64>, thenDisconnect: Bool = false) async throws {
        var bytes = ByteBuffer()
        for id in streamIDs {
            NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [("ip", .ipv4(IPv4Address(10, 0, 0, 1)))])], to: &bytes)
        }
        if thenDisconnect { Disconnect(status: .normal, message: "idle").write(as: .haproxyDisconnect, to: &bytes) }
        try await channel.writeAndFlush(bytes)
    }

    func frames() -> [RawFrame] { received.withLockedValue { $0 } }

    /// The stream-ids of the ACKs received so far, by default checked against their txn.n.
    func ackedStreamIDs(checking: Bool = true) -> [UInt64] {
        frames().filter { $0.header.type == .ack }.map { ack in
            if checking {
                XCTAssertEqual(try? SpoaAction.decodeList(ack.payload), [.setVar(.transaction, "n", .uint64(ack.header.streamID))])
            }
            return ack.header.streamID
        }
    }

    /// Waits until `count` ACKs arrived over `peers`, then returns each peer's stream-ids, sorted.
    static func acks(_ count: Int, on peers: [ProbePeer], checking: Bool = true) async throws -> [[UInt64]] {
        try await waitUntil { peers.map { $0.ackedStreamIDs(checking: false).count }.reduce(0, +) >= count }
        return peers.map { $0.ackedStreamIDs(checking: checking).sorted() }
    }

    /// Polls `condition`; the 120 s bound only keeps a broken agent from hanging the suite
    /// (ThreadSanitizer on a loaded 2-core machine needs more than 30 s for the 4000-frame case).
    static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = NIODeadline.now() + .seconds(120)
        while !condition() {
            guard NIODeadline.now() < deadline else { throw WaitTimeout() }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    struct WaitTimeout: Error, CustomStringConvertible {
        var description: String { "the expected frames did not arrive within 120 s" }
    }

    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let received: NIOLockedValueBox<[RawFrame]>
        private var reader = FrameReader()

        init(_ received: NIOLockedValueBox<[RawFrame]>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            reader.append(unwrapInboundIn(data))
            while let frame = try? reader.next(maxFrameSize: 1 << 20) {
                received.withLockedValue { $0.append(frame) }
            }
        }
    }
}
