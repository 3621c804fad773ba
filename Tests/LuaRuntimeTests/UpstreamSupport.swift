import Foundation
@testable import LuaRuntime
import NIOCore
import NIOPosix
@testable import SpopEngine
import XCTest

/// A value handed to an event loop's thread, which alone then uses it.
struct OnLoop<Value>: @unchecked Sendable {
    let value: Value
}

/// A server process started by a test (from Tests/Fixtures/upstreams), ended with
/// it: it prints its port, and exits when its stdin closes.
final class FixtureServer {
    let process = Process()
    private let input = Pipe()
    let port: Int

    init(script: String, arguments: [String] = []) throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/upstreams/\(script)").path
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [path] + arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), let first = byte.first, first != 10 {
            line.append(first)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw XCTSkip("\(script) did not start")
        }
        self.port = port
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
    }
}

/// A TCP port nothing listens on (bound then closed at once).
func closedPort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress!.port!
    try channel.close().wait()
    return port
}

/// Runs `call` (one request to a target nothing listens on; its error) `count`
/// times: those that tried to connect fail with "connection refused", the others
/// at once while the client backs off. The delays double from `Backoff.initial`,
/// so n tries take at least initial * (2^(n-1) - 1): the bound on tries follows
/// from the time the calls took.
func assertBacksOff(_ count: Int, file: StaticString = #filePath, line: UInt = #line,
                    _ call: () throws -> String?) rethrows {
    let started = Date()
    var attempts = 0
    for _ in 0..<count {
        let err = try call() ?? "nil"
        if err == "connection refused" {
            attempts += 1
        } else {
            XCTAssertTrue(err.hasPrefix("connection refused (backing off ") && err.hasSuffix(" ms)"), err, file: file, line: line)
        }
    }
    let initial = Double(Backoff.initial.nanoseconds) / 1e9
    let allowed = 1 + Int(log2(Date().timeIntervalSince(started) / initial + 1).rounded(.up))
    XCTAssertGreaterThanOrEqual(attempts, 1, file: file, line: line)
    XCTAssertLessThanOrEqual(attempts, min(allowed, count / 4), "connect attempts for \(count) calls", file: file, line: line)
}

/// Repeats `call` while it fails fast because its client backs off: once the
/// target is back, the next try after the delay reaches it (bounded: the delay is
/// at most `Backoff.cap`).
func afterBackoff(_ call: () throws -> [String: SpopValue]) rethrows -> [String: SpopValue] {
    let deadline = Date(timeIntervalSinceNow: Double(Backoff.cap.nanoseconds) / 1e9 + 5)
    while true {
        let vars = try call()
        guard vars["txn.err"]?.text?.contains("(backing off ") == true, Date() < deadline else { return vars }
        Thread.sleep(forTimeInterval: 0.02)
    }
}

/// Runs frames through a worker on a real event loop, as the server does, so
/// handlers wait on real sockets.
final class LoopHarness {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: any EventLoop { group.next() }
    let harness: Harness

    init(_ source: String) throws {
        harness = try Harness(source)
    }

    deinit {
        stop()
        try? group.syncShutdownGracefully()
    }

    /// Stops the worker as the server does: its clients' connections close.
    func stop() {
        let worker = OnLoop(value: harness.worker)
        try? loop.submit { worker.value.stop() }.wait()
    }

    /// Sends one frame per entry at once; returns each ACK's set-var actions by name.
    func run(_ frames: [TestMessage], timeout: TimeAmount = .seconds(60)) throws -> [[String: SpopValue]] {
        let worker = OnLoop(value: harness.worker)
        var notifies: [NotifyFrame] = []
        for (index, message) in frames.enumerated() {
            var payload = ByteBuffer()
            payload.writeSpopRawString(message.name)
            payload.writeInteger(UInt8(message.arguments.count))
            for argument in message.arguments {
                payload.writeSpopRawString(argument.name)
                payload.writeSpopValue(argument.value)
            }
            notifies.append(try NotifyFrame(streamID: UInt64(index + 1), frameID: 1, payload: payload))
        }
        let frames = OnLoop(value: notifies)
        let loop = self.loop
        let acks = try loop.flatSubmit {
            EventLoopFuture.whenAllSucceed(frames.value.map {
                worker.value.answer($0, connection: SpoaConnectionInfo(engineID: "e1"), on: loop)
            }, on: loop)
        }.wait()
        return try acks.map { frame in
            var reader = FrameReader()
            reader.append(frame)
            let raw = try XCTUnwrap(try reader.next(maxFrameSize: 1 << 22))
            var vars: [String: SpopValue] = [:]
            for action in try SpoaAction.decodeList(raw.payload) {
                if case .setVar(let scope, let name, let value) = action { vars["\(scope.name).\(name)"] = value }
            }
            return vars
        }
    }

    func vars(_ name: String, _ arguments: [(name: String, value: SpopValue)] = []) throws -> [String: SpopValue] {
        try run([(name, arguments)])[0]
    }
}


/// A real `redis-server` on a free port, without persistence, ended with the test.
final class RedisServer {
    let port: Int
    private var process: Process?

    init(port: Int? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            throw XCTSkip("redis-server is not installed (tools/ensure-deps.sh installs it)")
        }
        self.port = try port ?? closedPort()
    }

    /// Starts it and waits until it accepts connections.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--loglevel", "warning"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date(timeIntervalSinceNow: 30)
        while Date() < deadline {
            if (try? ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).flatMap { $0.close() }.wait()) != nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("redis-server did not start on port \(port)")
    }

    func stop() {
        process?.terminate()
        process?.waitUntilExit()
        process = nil
    }

    deinit { stop() }
}

/// A real dnsmasq on a free UDP/TCP port of 127.0.0.1 answering for *.test from
/// its command line only, ended with the test.
final class DNSServer {
    let port: Int
    private let process = Process()

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") else {
            throw XCTSkip("dnsmasq is not installed (tools/ensure-deps.sh installs it)")
        }
        port = try closedPort()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/dnsmasq")
        process.arguments = [
            "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--port=\(port)",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--local=/test/",
            "--local-ttl=60", "--address=/a.test/192.0.2.7", "--address=/a.test/2001:db8::7",
            "--ptr-record=7.2.0.192.in-addr.arpa,crawler.a.test", "--txt-record=t.test,hello world",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date(timeIntervalSinceNow: 30)
        while Date() < deadline {
            if (try? ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).flatMap { $0.close() }.wait()) != nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("dnsmasq did not start on port \(port)")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}
