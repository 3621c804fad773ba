import Foundation
@testable import LuaRuntime
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SpopEngine
import XCTest

/// Echoes what it receives; after a line "BYE" it closes.
private final class EchoHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bye = buffer.readableBytesView.suffix(4).elementsEqual("BYE\n".utf8)
        let channel = context.channel
        context.writeAndFlush(data).whenComplete { _ in if bye { channel.close(promise: nil) } }
    }
}

/// spoa.tcp() against a real echo server over real sockets, through the
/// waiting-handler machinery on a real event loop.
final class TCPClientTests: XCTestCase {
    var server: (any Channel)!
    let accepted = NIOLockedValueBox(0)
    var port: Int { server.localAddress!.port! }

    override func setUpWithError() throws {
        let accepted = self.accepted
        server = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    override func tearDownWithError() throws {
        try server.close().wait()
    }

    func harness() throws -> LoopHarness {
        try LoopHarness("""
            spoa.register_message("talk", function(txn, msg)
              local a = msg.args
              local s = spoa.tcp()
              if a.timeout then s:settimeout(a.timeout / 1000) end
              local ok, err = s:connect("127.0.0.1", a.port)
              if not ok then txn:set_var("txn.err", err) return end
              local sent, err2 = s:send(a.data)
              txn:set_var("txn.sent", sent)
              local r1, e1 = s:receive(a.p1)
              txn:set_var("txn.r1", r1 or ("nil:" .. e1))
              if a.p2 then
                local r2, e2 = s:receive(tonumber(a.p2) or a.p2)
                txn:set_var("txn.r2", r2 or ("nil:" .. e2))
              end
              if a.keep then s:setkeepalive() else s:close() end
              local _, e3 = s:send("x")
              txn:set_var("txn.after", e3)
            end, { deadline_ms = 30000 })
            """)
    }

    func talk(_ h: LoopHarness, _ arguments: [(name: String, value: SpopValue)]) throws -> [String: SpopValue] {
        try h.vars("talk", [("port", .int32(Int32(port)))] + arguments)
    }

    func testLinesCountsAndAll() throws {
        let h = try harness()
        let vars = try talk(h, [("data", .string("hello\r\nworld")), ("p1", .string("*l")), ("p2", .string("5"))])
        XCTAssertEqual(vars["txn.sent"], .int64(12))
        XCTAssertEqual(vars["txn.r1"]?.text, "hello")
        XCTAssertEqual(vars["txn.r2"]?.text, "world")
        XCTAssertEqual(vars["txn.after"]?.text, "not connected", "closed")
        let all = try talk(h, [("data", .string("a\nb\nBYE\n")), ("p1", .string("*a"))])
        XCTAssertEqual(all["txn.r1"]?.text, "a\nb\nBYE\n", "*a: until the peer closes")
        let cut = try talk(h, [("data", .string("BYE\n")), ("p1", .string("*l")), ("p2", .string("*l"))])
        XCTAssertEqual(cut["txn.r2"]?.text, "nil:closed")
    }

    func testKeepAliveReusesTheConnection() throws {
        let h = try harness()
        for i in 0..<3 {
            let vars = try talk(h, [("data", .string("ping \(i)\n")), ("p1", .string("*l")), ("keep", .bool(true))])
            XCTAssertEqual(vars["txn.r1"]?.text, "ping \(i)")
        }
        XCTAssertEqual(accepted.withLockedValue { $0 }, 1, "one connection for three messages")
    }

    func testDownTargetBacksOffThenRecovers() throws {
        let h = try harness()
        let closed = try closedPort()
        let attempt: [(name: String, value: SpopValue)] = [("port", .int32(Int32(closed))), ("data", .string("hi\n")), ("p1", .string("*l"))]
        try assertBacksOff(50) { try h.vars("talk", attempt)["txn.err"]?.text }
        let server = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
            }
            .bind(host: "127.0.0.1", port: closed).wait()
        defer { try? server.close().wait() }
        XCTAssertEqual(try afterBackoff { try h.vars("talk", attempt) }["txn.r1"]?.text, "hi")
    }

    func testPooledConnectionsAreCountedAndClosedOnStop() throws {
        let h = try harness()
        let target = "127.0.0.1:\(port)"
        _ = try talk(h, [("data", .string("a\n")), ("p1", .string("*l")), ("keep", .bool(true))])
        XCTAssertEqual(UpstreamConnections.count("tcp", target, .idle), 1, "pooled after setkeepalive")
        XCTAssertEqual(UpstreamConnections.count("tcp", target, .busy), 0)
        h.stop()
        let deadline = Date(timeIntervalSinceNow: 10)
        while UpstreamConnections.count("tcp", target, .idle) > 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        XCTAssertEqual(UpstreamConnections.count("tcp", target, .idle), 0, "closed when the worker stopped")
        XCTAssertEqual(try talk(h, [("data", .string("b\n")), ("p1", .string("*l"))])["txn.r1"]?.text, "b")
        XCTAssertEqual(accepted.withLockedValue { $0 }, 2, "a new connection after the stop")
    }

    func testFailures() throws {
        let h = try harness()
        XCTAssertEqual(try h.vars("talk", [("port", .int32(Int32(try closedPort()))), ("data", .string("x"))])["txn.err"]?.text,
                       "connection refused")
        let slow = try talk(h, [("data", .string("no newline")), ("p1", .string("*l")), ("p2", .string("4")),
                                ("timeout", .int32(100))])
        XCTAssertEqual(slow["txn.r1"]?.text, "nil:timeout")
        XCTAssertEqual(slow["txn.r2"]?.text, "no n", "what came before the timeout stays readable")
        XCTAssertThrowsError(try Harness("spoa.tcp():connect('127.0.0.1', 1)")) { error in
            XCTAssertTrue("\(error)".contains("socket:connect: cannot wait while the script loads"), "\(error)")
        }
    }
}
