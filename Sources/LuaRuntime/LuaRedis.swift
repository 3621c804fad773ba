import CHiredis
import CLuaSpoa
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `spoa.redis` calls (luaspoa_redis.c). Each worker event loop has, per client
/// settings, `pool` connections of its own: the calls of its concurrent handlers
/// are written on them as they come, without waiting for earlier replies
/// (pipelining), and Redis answers each connection's calls in order. Replies are
/// parsed by hiredis' reader; requests are written here (RESP arrays of bulk strings).
enum LuaRedis {
    struct Settings: Hashable, Sendable {
        var host: String
        var port: Int
        var db: Int
        var password: String
        var pool: Int
    }

    private struct Key: LoopKeyed {
        let loop: ObjectIdentifier
        let settings: Settings
    }

    /// Pools by event loop and settings; each is used only on its loop.
    private static let pools = NIOLockedValueBox<[Key: RedisPool]>([:])
    /// Bytes of a reply being received at most: a larger one closes the connection.
    static let maxReplyBytes = 16 << 20

    /// args: host, port, db, password, pool, then the command's words; ms: timeout.
    static func start(_ wait: luaspoa_wait, on loop: any EventLoop) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        func string(_ i: Int) -> String {
            String(decoding: UnsafeRawBufferPointer(start: wait.args[i].ptr, count: wait.args[i].len), as: UTF8.self)
        }
        let settings = Settings(host: string(0), port: Int(string(1)) ?? 6379, db: Int(string(2)) ?? 0,
                                password: string(3), pool: max(1, Int(string(4)) ?? 1))
        var command = ByteBuffer()
        command.writeString("*\(wait.nargs - 5)\r\n")
        for i in 5..<Int(wait.nargs) {
            let word = UnsafeRawBufferPointer(start: wait.args[i].ptr, count: wait.args[i].len)
            command.writeString("$\(word.count)\r\n")
            command.writeBytes(word)
            command.writeString("\r\n")
        }
        let pool = pools.withLockedValue { pools in
            let key = Key(loop: ObjectIdentifier(loop), settings: settings)
            if let pool = pools[key] { return pool }
            let pool = RedisPool(settings: settings, loop: loop)
            pools[key] = pool
            return pool
        }
        let timeout = TimeAmount.milliseconds(max(wait.ms, 1))
        if loop.inEventLoop { return pool.send(command, timeout: timeout) }
        return (loop.flatSubmit { [command] in pool.send(command, timeout: timeout).future }, {})
    }

    /// Closes the pools of `loop`; calls waiting on them fail. Call it on `loop`.
    static func close(on loop: any EventLoop) {
        for pool in pools.removeAll(of: loop) { pool.close() }
    }

    /// A reply as the call's result: an error reply fails the call (`nil, msg`).
    static func result(_ reply: UnsafeMutablePointer<redisReply>) -> LuaWaitResult {
        if reply.pointee.type == REDIS_REPLY_ERROR {
            return .failed(String(decoding: bytes(reply), as: UTF8.self))
        }
        var values = LuaWaitReply()
        append(reply, to: &values, nested: false)
        return .values(values)
    }

    private static func bytes(_ reply: UnsafeMutablePointer<redisReply>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: reply.pointee.str, count: reply.pointee.len)
    }

    /// Strings and status replies are strings, integers integers, arrays tables.
    /// A nil inside an array is false (as in Redis' own Lua), so the array has no
    /// holes; a nil reply is nil.
    private static func append(_ reply: UnsafeMutablePointer<redisReply>, to values: inout LuaWaitReply, nested: Bool) {
        switch reply.pointee.type {
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS, REDIS_REPLY_ERROR:
            values.bytes(bytes(reply))
        case REDIS_REPLY_INTEGER:
            values.int(Int64(reply.pointee.integer))
        case REDIS_REPLY_ARRAY:
            values.array(reply.pointee.elements)
            for i in 0..<reply.pointee.elements {
                append(reply.pointee.element[i]!, to: &values, nested: true)
            }
        default:
            if nested { values.bool(false) } else { values.null() }
        }
    }
}

/// The connections of one event loop for one client's settings. Used only on `loop`.
private final class RedisPool: @unchecked Sendable {
    private let connections: [RedisConnection]

    init(settings: LuaRedis.Settings, loop: any EventLoop) {
        connections = (0..<settings.pool).map { _ in RedisConnection(settings: settings, loop: loop) }
    }

    /// On the connection with the fewest calls in flight: concurrent calls
    /// spread over the pool and pipeline on each connection.
    func send(_ command: ByteBuffer, timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        connections.min { $0.inFlight < $1.inFlight }!.send(command, timeout: timeout)
    }

    func close() {
        for connection in connections { connection.close() }
    }
}

/// One connection, opened at the first call and again after it closed. Used only
/// on `loop`.
private final class RedisConnection: @unchecked Sendable {
    /// A call waiting for its reply; `promise` nil: AUTH or SELECT, sent first.
    final class Call {
        let promise: EventLoopPromise<LuaWaitResult>?
        let deadline: NIODeadline
        var done = false
        init(promise: EventLoopPromise<LuaWaitResult>?, deadline: NIODeadline) {
            self.promise = promise
            self.deadline = deadline
        }
    }

    private enum State {
        case closed
        case connecting
        case ready(any Channel)
    }

    let settings: LuaRedis.Settings
    let loop: any EventLoop
    private var state = State.closed
    /// Calls sent or to send, in order: replies arrive in this order.
    private var calls = CircularBuffer<Call>()
    /// Commands written once connected.
    private var outbox = ByteBuffer()
    /// Why the connection is closing, for the calls it fails.
    var closeReason: String?
    private var backoff = Backoff()
    /// Commands written since the last flush: one flush per loop turn sends them.
    private var flushScheduled = false
    /// One timer for the calls' timeouts, due at the earliest deadline (not one per
    /// call: scheduling and cancelling a task per call costs more than the call).
    private var timer: (deadline: NIODeadline, task: Scheduled<Void>)?
    private var gauge: ConnectionGauge
    /// Connects so far: a connect that ends after `close` is not the current one.
    private var attempts = 0

    var inFlight: Int { calls.count }

    init(settings: LuaRedis.Settings, loop: any EventLoop) {
        self.settings = settings
        self.loop = loop
        self.gauge = ConnectionGauge("redis", "\(settings.host):\(settings.port)")
    }

    func send(_ command: ByteBuffer, timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        if case .closed = state, let failure = backoff.admit(now: .now()) {
            return (loop.makeSucceededFuture(.failed(failure)), {})
        }
        let call = Call(promise: loop.makePromise(), deadline: .now() + timeout)
        calls.append(call)
        // The call ends at its timeout; its reply, if it comes later, is dropped.
        if timer.map({ call.deadline < $0.deadline }) ?? true { arm(call.deadline) }
        switch state {
        case .ready(let channel):
            gauge.set(.busy)
            channel.write(command, promise: nil)
            if !flushScheduled {
                flushScheduled = true
                loop.execute { [self] in
                    flushScheduled = false
                    channel.flush()
                }
            }
        case .connecting:
            outbox.writeImmutableBuffer(command)
        case .closed:
            outbox.writeImmutableBuffer(command)
            connect(timeout: timeout)
        }
        return (call.promise!.futureResult, { [weak self] in self?.finish(call, .failed("cancelled")) })
    }

    private func finish(_ call: Call, _ result: LuaWaitResult) {
        guard !call.done else { return }
        call.done = true
        call.promise?.succeed(result)
    }

    private func arm(_ deadline: NIODeadline) {
        timer?.task.cancel()
        timer = (deadline, loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in self?.expire() })
    }

    /// Fails the calls past their deadline, and sets the timer for the next one.
    private func expire() {
        timer = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        for call in calls where !call.done && call.promise != nil {
            if call.deadline <= now {
                finish(call, .failed("timeout"))
            } else {
                next = min(next ?? call.deadline, call.deadline)
            }
        }
        if let next, timer.map({ next < $0.deadline }) ?? true { arm(next) }
    }

    /// Fails the calls and closes the connection; later calls open a new one.
    func close() {
        closeReason = "the agent is stopping"
        timer?.task.cancel()
        timer = nil
        if case .ready(let channel) = state {
            channel.close(promise: nil)
        }
        state = .closed
        gauge.set(nil)
        failAll("the agent is stopping")
    }

    private func connect(timeout: TimeAmount) {
        state = .connecting
        attempts += 1
        let attempt = attempts
        closeReason = nil
        var hello = ByteBuffer()
        // AUTH and SELECT go before the queued calls; their replies are checked, not returned.
        if settings.db != 0 {
            hello.writeString("*2\r\n$6\r\nSELECT\r\n$\(String(settings.db).utf8.count)\r\n\(settings.db)\r\n")
            calls.prepend(Call(promise: nil, deadline: .distantFuture))
        }
        if !settings.password.isEmpty {
            var auth = ByteBuffer()
            auth.writeString("*2\r\n$4\r\nAUTH\r\n$\(settings.password.utf8.count)\r\n\(settings.password)\r\n")
            hello = auth.merged(with: hello)
            calls.prepend(Call(promise: nil, deadline: .distantFuture))
        }
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RedisReplyHandler(connection: self))
                }
            }
            .connect(host: settings.host, port: settings.port)
            .whenComplete { [hello] result in
                guard case .connecting = self.state, attempt == self.attempts else {
                    // Closed meanwhile (the worker stops).
                    if case .success(let channel) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let channel):
                    self.state = .ready(channel)
                    self.backoff.succeeded()
                    self.gauge.set(self.calls.isEmpty ? .idle : .busy)
                    channel.writeAndFlush(hello.merged(with: self.outbox), promise: nil)
                    self.outbox.clear()
                case .failure(let error):
                    let reason = Upstream.describe(error)
                    self.state = .closed
                    self.backoff.failed(reason, now: .now())
                    self.failAll(reason)
                }
            }
    }

    private func failAll(_ reason: String) {
        let failed = calls
        calls.removeAll()
        outbox.clear()
        for call in failed { finish(call, .failed(reason)) }
    }

    /// The next reply, for the oldest call.
    func received(_ result: LuaWaitResult, channel: any Channel) {
        guard let call = calls.popFirst() else {
            closeReason = "protocol error: unexpected reply"
            channel.close(promise: nil)
            return
        }
        if call.promise == nil, case .failed(let message) = result {
            closeReason = "redis refused AUTH or SELECT: \(message)"
            channel.close(promise: nil)
            return
        }
        if calls.isEmpty { gauge.set(.idle) }
        finish(call, result)
    }

    func closed(_ channel: any Channel) {
        // Calls queued meanwhile for a newer connection are not this one's.
        guard case .ready(let current) = state, current === channel else { return }
        state = .closed
        gauge.set(nil)
        failAll(closeReason ?? "connection closed")
    }
}

extension ByteBuffer {
    fileprivate func merged(with other: ByteBuffer) -> ByteBuffer {
        var merged = self
        var other = other
        merged.writeBuffer(&other)
        return merged
    }
}

/// Parses replies with hiredis' reader and hands them to the connection.
private final class RedisReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let connection: RedisConnection
    private let reader: UnsafeMutablePointer<redisReader>

    init(connection: RedisConnection) {
        self.connection = connection
        self.reader = redisReaderCreate()
    }

    deinit { redisReaderFree(reader) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let fed = buffer.withUnsafeReadableBytes {
            redisReaderFeed(reader, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
        }
        while fed == REDIS_OK {
            var reply: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &reply) == REDIS_OK else { break }
            guard let reply else {
                if reader.pointee.len - reader.pointee.pos > LuaRedis.maxReplyBytes {
                    connection.closeReason = "reply larger than \(LuaRedis.maxReplyBytes) bytes"
                    context.close(promise: nil)
                }
                return
            }
            let result = LuaRedis.result(reply.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(reply)
            connection.received(result, channel: context.channel)
        }
        connection.closeReason = "protocol error: " + withUnsafeBytes(of: reader.pointee.errstr) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.closed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.closeReason = Upstream.describe(error)
        context.close(promise: nil)
    }
}
