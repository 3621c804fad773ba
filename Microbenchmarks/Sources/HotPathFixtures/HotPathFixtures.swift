// The engine's per-message work, one step at a time: what the microbenchmarks
// (Benchmarks/SpopHotPath, malloc counts) and hot-path-cost (instruction counts
// under callgrind) both repeat.
import Foundation
import Logging
import LuaRuntime
import NIOCore
import SpopEngine

public enum HotPath {
    static let ipScore = Array("ip_score".utf8)
    static let allocator = ByteBufferAllocator()

    /// Cuts the NOTIFY out of its bytes, builds the frame (validation) and reads
    /// every argument, as a Swift worker does.
    public static func decodeStep() -> () -> Void {
        let wire = notifyFrame(streamID: 7, frameID: 42)
        var reader = FrameReader()
        return {
            reader.append(wire)
            let frame = try! reader.next(maxFrameSize: 16380)!
            let notify = try! NotifyFrame(streamID: frame.header.streamID, frameID: frame.header.frameID, payload: frame.payload)
            for message in notify.messages {
                for argument in message.arguments { blackHoleValue(argument.value) }
            }
        }
    }

    /// As SpopChannelHandler does: ACKs go into an AckBatch, drained once per read burst.
    public static func encodeStep() -> () -> Void {
        var batch = AckBatch()
        return {
            batch.append(streamID: 7, frameID: 42, maxFrameSize: 16380, allocator: allocator) { ack in setScore(&ack) }
            blackHoleValue(batch.drain())
        }
    }

    /// NOTIFY bytes in, through the state machine, ACK bytes out (a Swift worker).
    public static func engineStep() -> () -> Void {
        var connection = runningConnection()
        let wire = notifyFrame(streamID: 7, frameID: 42)
        var reader = FrameReader()
        var batch = AckBatch()
        return {
            reader.append(wire)
            let frame = try! reader.next(maxFrameSize: connection.maxFrameSize)!
            guard case .processNotify(let notify) = connection.frameReceived(frame) else { fatalError("not a NOTIFY") }
            batch.append(streamID: notify.streamID, frameID: notify.frameID, maxFrameSize: 16380, allocator: allocator) { ack in
                setScore(&ack)
            }
            blackHoleValue(batch.drain())
        }
    }

    /// One message through `LuaWorker.handle` with `scripts/<script>.lua` or
    /// `benchmarks/<script>.lua`; returns the ACK's size.
    public static func luaDispatchStep(_ script: String) throws -> () -> Int {
        luaDispatchStep(worker: try luaWorker(script))
    }

    /// One message through `worker.handle`; returns the ACK's size.
    public static func luaDispatchStep(worker: LuaWorker) -> () -> Int {
        let notify = decodedNotify()
        let info = SpoaConnectionInfo(engineID: "bench-engine")
        var batch = AckBatch()
        return {
            batch.append(streamID: 7, frameID: 42, maxFrameSize: 16380, allocator: allocator) { ack in
                worker.handle(notify, connection: info, ack: &ack)
            }
            return batch.drain()!.readableBytes
        }
    }

    public static func setScore(_ ack: inout AckWriter) {
        ipScore.withUnsafeBytes { name in try! ack.setVar(.session, name: name, value: .uint32(50)) }
    }

    public static func notifyFrame(streamID: UInt64, frameID: UInt64) -> ByteBuffer {
        var buffer = ByteBuffer()
        NotifyFrame.write(
            streamID: streamID, frameID: frameID,
            messages: [("check-client-ip", [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])], to: &buffer)
        return buffer
    }

    /// The fixture NOTIFY, decoded once.
    public static func decodedNotify() -> NotifyFrame {
        var reader = FrameReader()
        reader.append(notifyFrame(streamID: 7, frameID: 42))
        let frame = try! reader.next(maxFrameSize: 16380)!
        return try! NotifyFrame(streamID: 7, frameID: 42, payload: frame.payload)
    }

    /// A state machine past the HELLO exchange.
    public static func runningConnection() -> ConnectionStateMachine {
        var machine = ConnectionStateMachine(capabilities: AgentCapabilities())
        var hello = ByteBuffer()
        HaproxyHello(engineID: "bench-engine").write(to: &hello)
        var reader = FrameReader()
        reader.append(hello)
        _ = machine.frameReceived(try! reader.next(maxFrameSize: 16380)!)
        return machine
    }

    /// The repository: four levels above Microbenchmarks/Sources/HotPathFixtures/HotPathFixtures.swift.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static func luaWorker(_ script: String) throws -> LuaWorker {
        try luaWorker(path: script == "ip_reputation" ? "\(root)/scripts/\(script).lua" : "\(root)/benchmarks/\(script).lua")
    }

    public static func luaWorker(path: String) throws -> LuaWorker {
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        return try LuaWorker(scriptPath: path, workerIndex: 1, workerCount: 1, logger: logger)
    }

    /// Keeps a value from being optimised away.
    @inline(never)
    public static func blackHoleValue<T>(_ value: T) { withExtendedLifetime(value) {} }
}
