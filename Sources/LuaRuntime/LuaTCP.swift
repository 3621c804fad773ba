import CLuaSpoa
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `spoa.tcp()` sockets (luaspoa_tcp.c): connections owned by the event loop of
/// the worker whose handler opened them, found by the socket's id, with a
/// keep-alive pool per target (`setkeepalive`) so that a connection serves
/// several messages.
enum LuaTCP {
    /// An operation's time limit when the script set none (`settimeout`).
    static let defaultTimeout = TimeAmount.seconds(5)
    /// Bytes received and not yet read at most: a larger line or "*a" fails.
    static let maxBuffered = 1 << 20
    /// A socket unused this long is closed (a script that forgot `close()`), as is
    /// a pooled connection.
    static let idleTimeout = TimeAmount.seconds(60)
    /// Idle connections kept per target and worker.
    static let maxPooled = 16

    /// args: operation, then its arguments; target: the socket's id.
    static func start(_ wait: luaspoa_wait, on loop: any EventLoop) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        var copied: [[UInt8]] = []
        for i in 0..<Int(wait.nargs) {
            copied.append(Array(UnsafeRawBufferPointer(start: wait.args[i].ptr, count: wait.args[i].len)))
        }
        let strings = copied
        let id = wait.target
        let timeout = wait.ms > 0 ? TimeAmount.milliseconds(wait.ms) : defaultTimeout
        let sockets = TCPSockets.of(loop)
        if loop.inEventLoop { return sockets.perform(id, strings, timeout: timeout) }
        return (loop.flatSubmit { sockets.perform(id, strings, timeout: timeout).future }, {})
    }

    /// Closes the sockets and pooled connections of `loop`. Call it on `loop`.
    static func close(on loop: any EventLoop) {
        TCPSockets.remove(loop)?.close()
    }

    static func int(_ value: Int) -> LuaWaitResult {
        var reply = LuaWaitReply()
        reply.int(Int64(value))
        return .values(reply)
    }
}

/// The sockets of one event loop, and its pool of idle connections. Used only on its loop.
private final class TCPSockets: @unchecked Sendable {
    private static let all = NIOLockedValueBox<[ObjectIdentifier: TCPSockets]>([:])
    let loop: any EventLoop
    private var sockets: [Int64: TCPConnection] = [:]
    private var pool: [String: [TCPConnection]] = [:]
    private var backoffs = Backoffs()

    private init(loop: any EventLoop) { self.loop = loop }

    static func remove(_ loop: any EventLoop) -> TCPSockets? {
        all.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(loop)) }
    }

    func close() {
        for connection in Array(sockets.values) + pool.values.joined() {
            connection.idleTimer?.cancel()
            connection.channel.close(promise: nil)
        }
        sockets.removeAll()
        pool.removeAll()
    }

    static func of(_ loop: any EventLoop) -> TCPSockets {
        all.withLockedValue { all in
            if let sockets = all[ObjectIdentifier(loop)] { return sockets }
            let sockets = TCPSockets(loop: loop)
            all[ObjectIdentifier(loop)] = sockets
            return sockets
        }
    }

    func perform(_ id: Int64, _ args: [[UInt8]], timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        let op = String(decoding: args[0], as: UTF8.self)
        let done = { (result: LuaWaitResult) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) in
            (self.loop.makeSucceededFuture(result), {})
        }
        if op == "connect" {
            return connect(id, host: String(decoding: args[1], as: UTF8.self), port: Int(String(decoding: args[2], as: UTF8.self)) ?? 0,
                           timeout: timeout)
        }
        guard let connection = sockets[id] else {
            return op == "close" || op == "keepalive" ? done(LuaTCP.int(1)) : done(.failed("not connected"))
        }
        touch(id, connection)
        switch op {
        case "send":
            let promise = loop.makePromise(of: LuaWaitResult.self)
            connection.channel.writeAndFlush(ByteBuffer(bytes: args[1])).whenComplete { result in
                switch result {
                case .success: promise.succeed(LuaTCP.int(args[1].count))
                case .failure(let error): promise.succeed(.failed(connection.failure ?? Upstream.describe(error)))
                }
            }
            return (promise.futureResult, {})
        case "receive":
            return connection.receive(String(decoding: args[1], as: UTF8.self), timeout: timeout)
        case "keepalive":
            sockets[id] = nil
            connection.idleTimer?.cancel()
            if connection.reusable, pool[connection.target, default: []].count < LuaTCP.maxPooled {
                pool[connection.target, default: []].append(connection)
                connection.gauge.set(.idle)
                connection.idleTimer = loop.assumeIsolated().scheduleTask(in: LuaTCP.idleTimeout) { [weak self] in
                    self?.pool[connection.target]?.removeAll { $0 === connection }
                    connection.channel.close(promise: nil)
                }
            } else {
                connection.channel.close(promise: nil)
            }
            return done(LuaTCP.int(1))
        default:  // close
            sockets[id] = nil
            connection.idleTimer?.cancel()
            connection.channel.close(promise: nil)
            return done(LuaTCP.int(1))
        }
    }

    /// Closes a socket left unused for `idleTimeout`.
    private func touch(_ id: Int64, _ connection: TCPConnection) {
        connection.idleTimer?.cancel()
        connection.idleTimer = loop.assumeIsolated().scheduleTask(in: LuaTCP.idleTimeout) { [weak self] in
            guard let self, sockets[id] === connection else { return }
            sockets[id] = nil
            connection.channel.close(promise: nil)
        }
    }

    private func connect(_ id: Int64, host: String, port: Int, timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        if let old = sockets.removeValue(forKey: id) {
            old.idleTimer?.cancel()
            old.channel.close(promise: nil)
        }
        let target = "\(host):\(port)"
        while let pooled = pool[target]?.popLast() {
            pooled.idleTimer?.cancel()
            guard pooled.reusable else {
                pooled.channel.close(promise: nil)
                continue
            }
            sockets[id] = pooled
            pooled.gauge.set(.busy)
            touch(id, pooled)
            return (loop.makeSucceededFuture(LuaTCP.int(1)), {})
        }
        if let failure = backoffs.admit(target) { return (loop.makeSucceededFuture(.failed(failure)), {}) }
        let promise = loop.makePromise(of: LuaWaitResult.self)
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TCPReader(TCPConnection(channel: channel, target: target)))
                }
            }
            .connect(host: host, port: port)
        let cancelled = CancelFlag()
        connected.whenComplete { [self] result in
            switch result {
            case .success(let channel):
                backoffs.connected(target, failure: nil)
                guard !cancelled.value, let connection = try? channel.pipeline.syncOperations.handler(type: TCPReader.self).connection
                else {
                    channel.close(promise: nil)
                    promise.succeed(.failed("cancelled"))
                    return
                }
                sockets[id] = connection
                connection.gauge.set(.busy)
                touch(id, connection)
                promise.succeed(LuaTCP.int(1))
            case .failure(let error):
                let reason = Upstream.describe(error)
                if Upstream.isConnectFailure(error) {
                    backoffs.connected(target, failure: reason)
                } else {
                    backoffs.abandoned(target)
                }
                promise.succeed(.failed(reason))
            }
        }
        return (promise.futureResult, { cancelled.value = true })
    }
}

/// Set when the handler waiting for a connect is gone. Used only on its loop.
private final class CancelFlag: @unchecked Sendable {
    var value = false
}

/// One connection and what was received on it and not yet read. Used only on its loop.
private final class TCPConnection: @unchecked Sendable {
    let channel: any Channel
    let target: String
    var buffer = ByteBuffer()
    var closed = false
    var failure: String?
    var idleTimer: Scheduled<Void>?
    var gauge: ConnectionGauge
    private var pending: (pattern: String, promise: EventLoopPromise<LuaWaitResult>, timer: Scheduled<Void>)?

    init(channel: any Channel, target: String) {
        self.channel = channel
        self.target = target
        self.gauge = ConnectionGauge("tcp", target)
    }

    /// Open, and nothing unread: another message may use it.
    var reusable: Bool { !closed && channel.isActive && buffer.readableBytes == 0 && pending == nil }

    func receive(_ pattern: String, timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        if let result = take(pattern) { return (channel.eventLoop.makeSucceededFuture(result), {}) }
        let promise = channel.eventLoop.makePromise(of: LuaWaitResult.self)
        let timer = channel.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            // A timer due in the loop turn that cancelled it still runs.
            guard let self, let pending, pending.promise.futureResult === promise.futureResult else { return }
            self.pending = nil
            promise.succeed(.failed("timeout"))  // what came stays for the next receive
        }
        pending = (pattern, promise, timer)
        return (promise.futureResult, { [weak self] in
            guard let self, let pending, pending.promise.futureResult === promise.futureResult else { return }
            self.pending = nil
            pending.timer.cancel()
            promise.succeed(.failed("cancelled"))
        })
    }

    /// The result of `pattern` from what is buffered, or nil to wait for more.
    private func take(_ pattern: String) -> LuaWaitResult? {
        switch pattern {
        case "*l":
            if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                var line = buffer.readSlice(length: newline - buffer.readerIndex + 1)!
                line.moveWriterIndex(to: line.writerIndex - 1)
                if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
                return string(line)
            }
            if buffer.readableBytes > LuaTCP.maxBuffered { return .failed("line longer than \(LuaTCP.maxBuffered) bytes") }
        case "*a":
            if closed { return string(buffer.readSlice(length: buffer.readableBytes)!) }
            if buffer.readableBytes > LuaTCP.maxBuffered { return .failed("more than \(LuaTCP.maxBuffered) bytes") }
            return nil
        default:
            let count = Int(pattern) ?? 0
            if buffer.readableBytes >= count { return string(buffer.readSlice(length: count)!) }
        }
        return closed ? .failed(failure ?? "closed") : nil
    }

    private func string(_ bytes: ByteBuffer) -> LuaWaitResult {
        var reply = LuaWaitReply()
        reply.bytes(bytes.readableBytesView)
        return .values(reply)
    }

    private func deliver() {
        guard let waiting = pending, let result = take(waiting.pattern) else { return }
        pending = nil
        waiting.timer.cancel()
        waiting.promise.succeed(result)
    }

    func received(_ data: inout ByteBuffer) {
        buffer.writeBuffer(&data)
        deliver()
    }

    func ended() {
        closed = true
        gauge.set(nil)
        idleTimer?.cancel()
        deliver()
    }
}

private final class TCPReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let connection: TCPConnection

    init(_ connection: TCPConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        connection.received(&buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.ended()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.failure = Upstream.describe(error)
        context.close(promise: nil)
    }
}
